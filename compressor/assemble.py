"""Choosing which units to keep so that the prompt lands on its budget.

Units come in the order they should be kept (``tersify.tokens.selection_order``: forced
units, then by surprisal: what the scorer predicts badly carries information); the
first ``k`` are kept. The prompt's size in target tokens is not a sum of unit sizes (BPE
merges across unit boundaries), so ``k`` is found by bisection on the real count of the
assembled prompt: the largest ``k`` whose prompt fits. Adding one unit changes the count
by a few tokens at most, so the prompt that fits is also within a few tokens of the budget.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from tersify.scoring import Units

BoolArray = npt.NDArray[np.bool_]
SEPARATOR = "\n\n"


def join_prompt(instruction: str, contexts: Sequence[str], question: str) -> str:
    r"""LLMLingua's layout: instruction, contexts, question, blank lines between, empties skipped.

    >>> join_prompt("Answer.", ["a", "", "b"], "Why?")
    'Answer.\n\na\n\nb\n\nWhy?'
    """
    return SEPARATOR.join(part for part in (instruction, *contexts, question) if part)


class Assembler:
    """What each text keeps of its units, for a keep mask over all texts' units in order.

    >>> import numpy as np
    >>> from tersify.scoring import Units
    >>> units = Units(np.array([0, 2]), np.array([2, 4]), np.array([0, 1]))
    >>> Assembler(["abcd"], [units]).kept_parts(np.array([False, True]))
    ['cd']
    """

    def __init__(self, texts: Sequence[str], units: Sequence[Units]) -> None:
        self._texts = list(texts)
        self._units = list(units)
        sizes = [len(u) for u in self._units]
        self._bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    @property
    def n_units(self) -> int:
        """How many units all texts hold together."""
        return int(self._bounds[-1])

    def kept_parts(self, keep: BoolArray) -> list[str]:
        """What each text keeps of its units where ``keep`` is true, in order."""
        return [
            _kept_text(text, units, keep[self._bounds[index] : self._bounds[index + 1]])
            for index, (text, units) in enumerate(zip(self._texts, self._units, strict=True))
        ]


def _kept_text(text: str, units: Units, mask: BoolArray) -> str:
    kept = np.flatnonzero(mask)
    if len(kept) == 0:
        return ""
    # Consecutive kept units are one contiguous slice of the text: cut once per run.
    breaks = np.flatnonzero(np.diff(kept) != 1)
    firsts = np.concatenate([[kept[0]], kept[breaks + 1]])
    lasts = np.concatenate([kept[breaks], [kept[-1]]])
    starts, ends = units.starts[firsts].tolist(), units.ends[lasts].tolist()
    return "".join(text[a:b] for a, b in zip(starts, ends, strict=True))


def fit_budget(
    order: npt.NDArray[np.int64],
    build: Callable[[BoolArray], str],
    count: Callable[[str], int],
    budget: int,
    n_units: int | None = None,
) -> tuple[str, int, BoolArray]:
    """The prompt keeping the most top-ranked units that fits ``budget``, its count, its units.

    When even keeping no unit is over budget (instruction and question alone exceed it),
    that prompt is returned: they are kept verbatim whatever the budget. ``order`` may
    leave units out (``n_units`` is then the total): those are never kept.
    """
    total = len(order) if n_units is None else n_units

    def prompt_for(k: int) -> tuple[str, int, BoolArray]:
        keep = np.zeros(total, dtype=np.bool_)
        keep[order[:k]] = True
        text = build(keep)
        return text, count(text), keep

    best = prompt_for(0)
    if best[1] > budget:
        return best
    low, high = 0, len(order) + 1  # prompt_for(low) fits; prompt_for(high) does not
    while high - low > 1:
        middle = (low + high) // 2
        candidate = prompt_for(middle)
        if candidate[1] <= budget:
            low, best = middle, candidate
        else:
            high = middle
    return best
