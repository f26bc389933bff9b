"""Token-level options: question-conditioned and contrastive scores, forced units."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tersify.errors import BadRequestError, InternalError
from tersify.graphemes import bidi_anchors
from tersify.scoring import FloatArray, Units

_DIGIT = re.compile(r"\d")


@dataclass(frozen=True)
class TokenFilter:
    """How units are scored and which are always kept.

    ``condition_on_question`` scores each token with the question before its window
    (LongLLMLingua's question-conditioned perplexity); ``contrastive`` scores it by how
    much the question makes it more predictable (``condition_compare``). ``iterative``
    scores each window given what earlier windows kept (LLMLingua's iterative mode)
    instead of the original text before it (all windows at once). Units holding
    any of ``force_tokens``, a digit (``force_digits``) or a line break
    (``keep_newlines``) are always kept and count against the budget.
    """

    condition_on_question: bool = False
    contrastive: bool = False
    force_tokens: tuple[str, ...] = ()
    force_digits: bool = False
    keep_newlines: bool = False
    iterative: bool = False

    def __post_init__(self) -> None:
        if any(not isinstance(t, str) or not t for t in self.force_tokens):
            raise BadRequestError(
                f"force_tokens={list(self.force_tokens)} must be non-empty strings"
            )

    @property
    def needs_question(self) -> bool:
        """Whether scores depend on the question."""
        return self.condition_on_question or self.contrastive

    def forced(self, text: str, units: Units) -> npt.NDArray[np.bool_]:
        """Which units of ``text`` must be kept.

        Besides the options' marks, the units holding bidi controls and the paragraph
        ends that close them (``tersify.graphemes.bidi_anchors``), whatever the options:
        the text between them is compressed like any other, and no opener loses what
        closes it.
        """
        marks = list(self.force_tokens) + (["\n"] if self.keep_newlines else [])
        keep = np.zeros(len(units), dtype=np.bool_)
        anchors = bidi_anchors(text)
        if anchors and len(units):
            at = np.searchsorted(units.starts, np.asarray(anchors, dtype=np.int64), side="right")
            keep[at - 1] = True
        if not marks and not self.force_digits:
            return keep
        for u, (a, b) in enumerate(zip(units.starts.tolist(), units.ends.tolist(), strict=True)):
            piece = text[a:b]
            keep[u] |= any(m in piece for m in marks) or bool(
                self.force_digits and _DIGIT.search(piece)
            )
        return keep


def unit_scores(
    units: Units, plain: FloatArray | None, conditioned: FloatArray | None, how: TokenFilter
) -> FloatArray:
    """Sum per unit of the chosen token score (surprisal, conditioned, or their difference)."""
    if how.contrastive and plain is not None and conditioned is not None:
        token = plain - conditioned
    elif how.condition_on_question and conditioned is not None:
        token = conditioned
    elif plain is not None:
        token = plain
    else:
        raise InternalError("unit_scores got no token scores to rank units by")
    return np.bincount(units.token_unit, weights=token, minlength=len(units)).astype(np.float32)


def selection_order(
    scores: Sequence[FloatArray],
    forced: Sequence[npt.NDArray[np.bool_]],
    weights: FloatArray | None,
    priority: Sequence[npt.NDArray[np.float64]] | None = None,
) -> npt.NDArray[np.int64]:
    """Global order in which units are kept: forced units first, then by score.

    With per-context ``weights`` (dynamic ratio), units are ordered by their rank within
    their own context divided by its weight, so that a context of weight 2 keeps about
    twice the fraction of units of one of weight 1. With ``priority`` (a rank per unit,
    lower first: its sentence's place in keeping order), units go by that rank, and by
    score within it.

    >>> selection_order([np.array([1.0, 3.0, 2.0], np.float32)], [np.zeros(3, bool)], None,
    ...                 [np.array([1.0, 0.0, 1.0])]).tolist()
    [1, 2, 0]
    """
    flat_scores = np.concatenate(scores) if scores else np.zeros(0, dtype=np.float32)
    flat_forced = np.concatenate(forced) if forced else np.zeros(0, dtype=np.bool_)
    if priority is not None:
        rank = np.concatenate(priority) if priority else np.zeros(0)
        rank = np.where(flat_forced, -np.inf, rank)
        return np.lexsort((-flat_scores.astype(np.float64), rank)).astype(np.int64)
    if weights is None and flat_scores.dtype == np.float32:
        return _stable_order(np.where(flat_forced, np.float32(-np.inf), -flat_scores))
    if weights is None:
        key = -flat_scores.astype(np.float64)
    else:
        keys = []
        for score, weight in zip(scores, weights.tolist(), strict=True):
            within = np.empty(len(score), dtype=np.float64)
            within[np.argsort(-score, kind="stable")] = (np.arange(len(score)) + 0.5) / max(
                1, len(score)
            )
            keys.append(within / weight)
        key = np.concatenate(keys) if keys else np.zeros(0)
    key = np.where(flat_forced, -np.inf, key)
    return np.argsort(key, kind="stable").astype(np.int64)


def _stable_order(key: FloatArray) -> npt.NDArray[np.int64]:
    """``np.argsort(key, kind="stable")``, as a plain sort of distinct integers (4x faster).

    Each float becomes an integer in the same order (its bits, sign-folded; -0.0 as 0.0)
    in the high 32 bits, with its index in the low 32: equal keys keep their order, and
    the sorted integers' low halves are the order.
    """
    if len(key) >= 1 << 32 or np.isnan(key).any():
        return np.argsort(key, kind="stable").astype(np.int64)
    bits = (key + np.float32(0.0)).view(np.uint32).astype(np.uint64)
    ordered = np.where(bits >> 31, bits ^ 0xFFFFFFFF, bits | 0x80000000)
    ranked = np.sort((ordered << 32) | np.arange(len(key), dtype=np.uint64))
    return (ranked & 0xFFFFFFFF).astype(np.int64)
