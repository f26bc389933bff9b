"""Choosing which units to keep so that the prompt lands on its budget.

Units come in the order they should be kept (``tersify.tokens.selection_order``: forced
units, then by surprisal: what the scorer predicts badly carries information); the
first ``k`` are kept. The prompt's size in target tokens is not a sum of unit sizes (BPE
merges across unit boundaries), so ``k`` is found on the real count of the assembled
prompt: a ``k`` whose prompt fits while ``k + 1``'s does not. Adding one unit changes the
count by a few tokens at most, so the prompt that fits is also within a few tokens of the
budget. The search interpolates first, then brackets and bisects near its guess: the
prompts it counts share most of their text, and ``count_tokens`` counts a shared piece
once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from tersify.limits import check_deadline
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
        sizes = [len(u) for u in units]
        self._bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        # All texts' code points one after the other, and each unit's length in them (units
        # tile their text): a keep mask becomes a character mask, the kept text one decoding.
        self._lengths = np.concatenate(
            [u.ends - u.starts for u in units] or [np.zeros(0, dtype=np.int64)]
        ).astype(np.int64)
        self._codes = np.frombuffer(
            "".join(self._texts).encode(_CODE_POINTS, "surrogatepass"), dtype=np.uint32
        )
        self._unit_of_char = np.repeat(np.arange(len(self._lengths)), self._lengths)

    @property
    def n_units(self) -> int:
        """How many units all texts hold together."""
        return int(self._bounds[-1])

    def kept_parts(self, keep: BoolArray) -> list[str]:
        """What each text keeps of its units where ``keep`` is true, in order."""
        kept = self._codes[keep[self._unit_of_char]].tobytes()
        text = kept.decode(_CODE_POINTS, "surrogatepass")
        if len(self._texts) == 1:
            return [text]
        ends = np.concatenate([[0], np.cumsum(self._lengths * keep)])[self._bounds].tolist()
        return [text[a:b] for a, b in pairwise(ends)]


_CODE_POINTS = "utf-32-le"  # one 32-bit number per character: numpy can mask them


def fit_budget(
    order: npt.NDArray[np.int64],
    build: Callable[[BoolArray], str],
    count: Callable[[str], int],
    budget: int,
    n_units: int | None = None,
) -> tuple[str, int, BoolArray]:
    """The prompt keeping the most top-ranked units that fits ``budget``, its count, its units.

    The answer keeps ``k`` units such that its count fits and keeping ``k + 1`` does not
    (or every unit fits). When even keeping no unit is over budget (instruction and
    question alone exceed it), that prompt is returned: they are kept verbatim whatever the
    budget. ``order`` may leave units out (``n_units`` is then the total): those are never
    kept. Every count is exact; ``k`` is found by interpolating between exact counts, then
    bracketing and bisecting around that guess, so that only the first counts see a prompt
    far from the previous one (``count_tokens`` remembers the pieces the others share).
    """
    total = len(order) if n_units is None else n_units
    n = len(order)
    rank = np.full(total, n, dtype=np.int64)  # where each unit comes in the order (n: never)
    rank[order] = np.arange(n)

    def prompt_for(k: int) -> tuple[int, tuple[str, int, BoolArray]]:
        check_deadline()  # each count is a long step on a long prompt: stop between them
        keep = rank < k
        text = build(keep)
        return k, (text, count(text), keep)

    low = prompt_for(0)
    if low[1][1] > budget or n == 0:
        return low[1]
    high = prompt_for(n)
    if high[1][1] <= budget:
        return high[1]
    # The count grows about linearly with k: one interpolation lands near the answer.
    guess = prompt_for(_interpolated(low, high, budget))
    low, high = (guess, high) if guess[1][1] <= budget else (low, guess)
    # Bracket the answer close to the guess, widening the step until the budget is crossed.
    step = max(2, (high[0] - low[0]) // 64)
    while high[0] - low[0] > 2 * step:
        fits = guess[1][1] <= budget
        probe = prompt_for(guess[0] + step if fits else guess[0] - step)
        if (probe[1][1] <= budget) == fits:
            low, high = (probe, high) if fits else (low, probe)
            guess, step = probe, step * 2
            continue
        low, high = (guess, probe) if fits else (probe, guess)
        break
    while high[0] - low[0] > 1:
        middle = prompt_for((low[0] + high[0]) // 2)
        low, high = (middle, high) if middle[1][1] <= budget else (low, middle)
    return low[1]


def _interpolated(
    low: tuple[int, tuple[str, int, BoolArray]],
    high: tuple[int, tuple[str, int, BoolArray]],
    budget: int,
) -> int:
    (k0, (_, c0, _)), (k1, (_, c1, _)) = low, high
    k = k0 + int((budget + 0.5 - c0) * (k1 - k0) / max(1, c1 - c0))
    return min(max(k, k0 + 1), k1 - 1) if k1 - k0 > 1 else k0
