"""What the compressor needs from a scorer, and how a text becomes units.

A scorer is a small causal LM behind one narrow interface: it tokenizes text (ids and
character offsets) and returns per-token log-probabilities for windows of ids. Where the
log-probs come from (onnxruntime in-process, Triton over gRPC, a fake in tests) is the
scorer's business; ``tersify.client`` holds the real ones.

A *unit* is the smallest run of scorer tokens whose bytes make whole characters: a
Chinese character split into three byte tokens is one unit. Pruning keeps or drops
units, never tokens, so the result is always valid text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Tokenized:
    """A text in scorer tokens: ``ids[i]`` covers characters ``offsets[i, 0]:offsets[i, 1]``."""

    ids: IntArray
    offsets: IntArray


@runtime_checkable
class Scorer(Protocol):
    """Token ids in, per-token log-probabilities out.

    ``logprobs(windows)[i][t]`` is ``log p(windows[i][t] | windows[i][:t])`` for ``t >= 1``
    and 0 at ``t = 0``; every window is at most ``max_window`` ids long.
    """

    @property
    def name(self) -> str:
        """A short name for the model behind the scorer."""
        ...

    @property
    def bos_token_id(self) -> int | None:
        """The id to put before a window so that its first token gets a score, if any."""
        ...

    @property
    def max_window(self) -> int:
        """The longest window, in ids, that one log-prob row may cover."""
        ...

    def tokenize(self, text: str) -> Tokenized:
        """Token ids of ``text`` (no special tokens) with their character offsets."""
        ...

    def logprobs(self, windows: Sequence[IntArray]) -> list[FloatArray]:
        """Per-token log-probabilities of each window, batched as the scorer sees fit."""
        ...


@runtime_checkable
class Ranker(Protocol):
    """Texts in, one L2-normalised embedding per text out (``[len(texts), dim]``)."""

    @property
    def name(self) -> str:
        """A short name for the model behind the ranker."""
        ...

    def embed(self, texts: Sequence[str]) -> FloatArray:
        """The texts' embeddings, each of unit length."""
        ...


class ScorerWrapper:
    """A scorer in front of another (a cache, a meter): everything but ``logprobs`` is its.

    Subclasses set ``self._scorer`` and define ``logprobs``.
    """

    _scorer: Scorer

    @property
    def name(self) -> str:
        """The wrapped scorer's name."""
        return self._scorer.name

    @property
    def bos_token_id(self) -> int | None:
        """The wrapped scorer's BOS id."""
        return self._scorer.bos_token_id

    @property
    def max_window(self) -> int:
        """The wrapped scorer's longest window."""
        return self._scorer.max_window

    def tokenize(self, text: str) -> Tokenized:
        """The wrapped scorer's tokenization (no log-probs are computed)."""
        return self._scorer.tokenize(text)


@dataclass(frozen=True)
class Units:
    """Units of one text: unit ``u`` spans characters ``starts[u]:starts[u + 1]``.

    The spans tile the text (the first starts at 0, the last ends at its end), so any
    subset of units, joined in order, is a subsequence of the text made of whole
    characters. ``token_unit[i]`` is the unit of token ``i``.
    """

    starts: IntArray
    ends: IntArray
    token_unit: IntArray

    def __len__(self) -> int:
        return len(self.starts)


def group_units(offsets: IntArray, text: str | int) -> Units:
    """Group tokens into units: a token that shares a character with the one before joins it.

    With the ``text`` itself (not only its length), units also never split a grapheme
    cluster (an emoji sequence, a flag, a letter and its marks; ``tersify.graphemes``).

    >>> u = group_units(np.array([[0, 1], [0, 1], [1, 3]]), 3)
    >>> u.starts.tolist(), u.ends.tolist(), u.token_unit.tolist()
    ([0, 1], [1, 3], [0, 0, 1])
    >>> flag = np.array([[0, 1], [1, 2]])  # two regional indicators, one token each
    >>> len(group_units(flag, "🇯🇵")), len(group_units(flag, 2))
    (1, 2)
    """
    text_length = text if isinstance(text, int) else len(text)
    offsets = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    if len(offsets) == 0:
        begin = np.zeros(1 if text_length else 0, dtype=np.int64)
        return _units(begin, text_length, np.zeros(0, dtype=np.int64))
    start, end = offsets[:, 0], offsets[:, 1]
    # A token begins a unit when it covers a character and starts at or after every
    # character the tokens before it cover (and after 0); the first always does (its unit
    # starts at 0).
    covered = np.empty_like(end)
    covered[0] = np.iinfo(np.int64).min
    np.maximum.accumulate(end[:-1], out=covered[1:])
    begins = (end > start) & (start >= covered) & (start > 0)
    begins[0] = True
    token_unit = np.cumsum(begins) - 1
    begin = start[begins]
    begin[0] = 0
    if not isinstance(text, int) and len(begin) > 1:
        from tersify.graphemes import cluster_spans, inside

        keep = ~inside(begin, cluster_spans(text))
        if not keep.all():
            keep[0] = True
            token_unit = (np.cumsum(keep) - 1)[token_unit]
            begin = begin[keep]
    return _units(begin, text_length, token_unit)


def _units(begin: IntArray, text_length: int, token_unit: IntArray) -> Units:
    end = np.append(begin[1:], np.int64(text_length)).astype(np.int64)
    return Units(starts=begin.astype(np.int64), ends=end, token_unit=token_unit.astype(np.int64))
