"""Sentence-level filtering: keep the most informative sentences before token pruning.

Sentences are found by punctuation (English ``.!?;``, Chinese ``。！？；``) and line
breaks, with no downloaded data (nltk's punkt is not needed). Each sentence scores its
mean token surprisal; the best are kept while they fit ``budget_ratio`` times the
prompt's budget, with the first and last sentences of each context first if asked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tersify.errors import BadRequestError
from tersify.scoring import FloatArray, Units
from tersify.validate import non_negative_int, number

_END = re.compile(r"(?<=[.!?;])\s+|(?<=[。！？；])|\n+")

BoolArray = npt.NDArray[np.bool_]


def sentence_starts(text: str) -> list[int]:
    r"""Character offsets where sentences begin; they tile the text.

    >>> text = "One. Two!\n三。四"
    >>> [text[a:b] for a, b in zip(sentence_starts(text), sentence_starts(text)[1:] + [len(text)])]
    ['One. ', 'Two!\n', '三。', '四']
    """
    starts = [0]
    for match in _END.finditer(text):
        if 0 < match.end() < len(text) and match.end() != starts[-1]:
            starts.append(match.end())
    return starts


# Kept sentences may hold at most this many times the budget (more keeps everything).
MAX_BUDGET_RATIO = 100.0

@dataclass(frozen=True)
class SentenceFilter:
    """Which sentences token-level compression may draw from.

    ``keep_first`` / ``keep_last``: that many sentences at each context's start and end
    come first; ``keep_number``: at most that many sentences per context (0: no limit);
    ``budget_ratio``: the kept sentences may total this many times the prompt's budget
    (LLMLingua's ``token_budget_ratio``).
    """

    keep_first: int = 0
    keep_last: int = 0
    keep_number: int = 0
    budget_ratio: float = 1.4

    def __post_init__(self) -> None:
        for name in ("keep_first", "keep_last", "keep_number"):
            non_negative_int(name, getattr(self, name))
        if not 1.0 <= number("budget_ratio", self.budget_ratio) <= MAX_BUDGET_RATIO:
            raise BadRequestError(
                f"budget_ratio={self.budget_ratio} must be between 1 and {MAX_BUDGET_RATIO:g}"
            )

    def allowed(
        self,
        texts: Sequence[str],
        units: Sequence[Units],
        unit_losses: Sequence[FloatArray],
        count: Callable[[str], int],
        budget: int,
    ) -> list[BoolArray]:
        """Per context, which units lie in kept sentences."""
        candidates = []  # (0 if forced else 1, -mean loss, context, sentence index)
        spans: list[list[tuple[int, int]]] = []
        for c, text in enumerate(texts):
            starts = sentence_starts(text)
            bounds = list(zip(starts, [*starts[1:], len(text)], strict=True))
            spans.append(bounds)
            unit_sentence = np.searchsorted(starts, units[c].starts, side="right") - 1
            per = np.bincount(unit_sentence, weights=unit_losses[c], minlength=len(bounds))
            sizes = np.maximum(np.bincount(unit_sentence, minlength=len(bounds)), 1)
            mean = per / sizes
            first = set(range(min(self.keep_first, len(bounds))))
            last = set(range(max(0, len(bounds) - self.keep_last), len(bounds)))
            forced = first | last
            ranked = sorted(range(len(bounds)), key=lambda s: (s not in forced, -mean[s]))
            if self.keep_number:
                ranked = ranked[: max(self.keep_number, len(forced))]
            candidates += [(0 if s in forced else 1, -float(mean[s]), c, s) for s in ranked]
        candidates.sort()  # forced sentences first, then the most informative
        limit = int(budget * self.budget_ratio)
        chosen: set[tuple[int, int]] = set()
        total = 0
        for _, _, c, s in candidates:
            a, b = spans[c][s]
            cost = count(texts[c][a:b])
            if total + cost > limit and chosen:
                continue
            chosen.add((c, s))
            total += cost
        out = []
        for c in range(len(texts)):
            starts = [a for a, _ in spans[c]]
            unit_sentence = np.searchsorted(starts, units[c].starts, side="right") - 1
            out.append(np.array([(c, int(s)) in chosen for s in unit_sentence], dtype=np.bool_))
        return out
