"""A ranker that was never exported is refused with the command that exports it.

The exported ranker itself: tests/integration/test_ranker_export.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tersify.client.ranker import open_ranker
from tersify.errors import ScorerUnavailableError
from tersify.settings import Settings


def test_a_missing_ranker_says_how_to_export_it(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    with pytest.raises(ScorerUnavailableError, match="tersify export --model all-minilm-l6-v2"):
        open_ranker(settings=settings)
