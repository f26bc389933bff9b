"""A scorer folder with nothing in it is refused with the command that exports one.

The real export and in-process scorer path on a tiny random model:
tests/integration/test_tiny_model.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tersify import ScorerUnavailableError
from tersify.client import open_scorer


def test_missing_scorer_says_how_to_export(tmp_path: Path) -> None:
    with pytest.raises(ScorerUnavailableError, match="tersify export"):
        open_scorer(tmp_path / "nothing-here")
