"""The framework drop-ins refuse bad options when built, before any scorer is opened.

Each with its real framework, a real scorer and a real LLM: tests/integration/test_dropins.py.
"""

from __future__ import annotations

import pytest


def test_langchain_compressor_checks_its_options() -> None:
    from tersify.integrations.langchain import TersifyCompressor

    # pydantic wraps the BadRequestError in its ValidationError; both are ValueErrors.
    with pytest.raises(ValueError, match="rank_method"):
        TersifyCompressor(rank_method="magic")
