"""tersify: shorter prompts that an LLM answers just as well.

>>> from tersify import Compressor
>>> result = Compressor().compress(["..."], question="...", rate=0.5)  # doctest: +SKIP
"""

from typing import Any

from tersify.budget import Budget
from tersify.coarse import ContextFilter
from tersify.compat import PromptCompressor
from tersify.compressor import CompressionResult, Compressor
from tersify.errors import (
    BadRequestError,
    ExportError,
    ScorerError,
    ScorerTimeoutError,
    ScorerUnavailableError,
    TersifyError,
    UnsupportedOptionError,
)
from tersify.recover import recover
from tersify.scoring import Scorer, Tokenized
from tersify.sentences import SentenceFilter
from tersify.structured import Segment, parse_tagged
from tersify.tokens import TokenFilter
from tersify.windows import WindowPlan

__all__ = [
    "BadRequestError",
    "Budget",
    "CompressionResult",
    "Compressor",
    "ContextFilter",
    "ExportError",
    "PromptCompressor",
    "Scorer",
    "ScorerError",
    "ScorerTimeoutError",
    "ScorerUnavailableError",
    "Segment",
    "SentenceFilter",
    "TersifyError",
    "TokenFilter",
    "Tokenized",
    "UnsupportedOptionError",
    "WindowPlan",
    "ask",
    "parse_tagged",
    "recover",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``tersify.ask``, loaded on first use: it lives at the edge, in ``tersify.integrations``."""
    if name == "ask":
        from tersify.integrations.ask import ask

        return ask
    raise AttributeError(f"module 'tersify' has no attribute {name!r}")
