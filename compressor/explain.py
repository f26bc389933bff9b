"""Why a compression kept what it kept: kept spans, context ranks, unit surprisal.

An :class:`Explanation` says, for every context of a request (in the request's order):
which characters of it the compressed prompt kept, where the coarse filter ranked it and
where it went in the prompt (when a coarse filter ran), and the score each unit was kept or
dropped on. It is built from what the compression already knows (:func:`explain`) and does
no scorer work of its own.

Its JSON form (:meth:`Explanation.to_json`), compact and read back by
:meth:`Explanation.from_json`::

    {"offsets": "code points",           # every length below counts Unicode code points
     "score": "surprisal",               # or "question-conditioned surprisal", "contrastive"
     "contexts": [
       {"index": 0,                      # the context's place in the request
        "length": 1234,                  # its length
        "kept": [40, 12, 0, 3, ...],     # run lengths, kept first: 40 kept, 12 dropped, ...
        "kept_fraction": 0.752,          # kept characters / length, 3 decimals
        "rank": 2,                       # coarse rank, 0 = most relevant; null: no coarse filter
        "position": 1,                   # place in the compressed prompt; null: dropped whole
        "units": [5, 1, 3, ...],         # unit lengths (they tile the context); [] if not scored
        "surprisal": [3.41, 0.2, ...]}]} # the unit's score in nats, 2 decimals, one per unit

A unit's score is the sum over its scorer tokens of ``-log p`` (nats); with
``"question-conditioned surprisal"`` the question stands before the context; with
``"contrastive"`` it is how much more surprising the token is without the question.
Kept units are those with the highest scores, after the forced ones, until the budget is met.

>>> import numpy as np
>>> from tersify.scoring import Units
>>> units = Units(np.array([0, 3, 5]), np.array([3, 5, 9]), np.array([0, 1, 2]))
>>> e = explain(["abcdefghi"], [0], [units], [np.array([2.0, 0.5, 4.0])],
...             np.array([True, False, True]))
>>> e.contexts[0].kept_spans
((0, 3), (5, 9))
>>> e.to_json()["contexts"][0]["kept"]
[3, 2, 4]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt

from tersify.errors import BadRequestError
from tersify.scoring import FloatArray, Units

ScoreKind = Literal["surprisal", "question-conditioned surprisal", "contrastive"]
SCORE_KINDS: tuple[str, ...] = get_args(ScoreKind)
OFFSETS = "code points"
SURPRISAL_DECIMALS = 2


@dataclass(frozen=True)
class ContextExplanation:
    """One context: what was kept of it, how it ranked, and its units' scores.

    ``kept_runs`` alternates kept and dropped run lengths, kept first (a context that
    starts with dropped text starts with a 0); the runs add up to ``length``.
    ``unit_lengths`` tile the context when it was scored and are empty otherwise.
    """

    index: int
    length: int
    kept_runs: tuple[int, ...]
    rank: int | None = None
    position: int | None = None
    unit_lengths: tuple[int, ...] = ()
    surprisal: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.index < 0 or self.length < 0:
            raise BadRequestError(
                f"context {self.index}: index and length must be >= 0, got length {self.length}"
            )
        if any(n < 0 for n in self.kept_runs) or sum(self.kept_runs) != self.length:
            raise BadRequestError(
                f"context {self.index}: kept runs {list(self.kept_runs)[:8]}... must be >= 0 "
                f"and add up to its length {self.length}"
            )
        if self.unit_lengths and sum(self.unit_lengths) != self.length:
            raise BadRequestError(
                f"context {self.index}: unit lengths add up to {sum(self.unit_lengths)}, "
                f"not to its length {self.length}"
            )
        if len(self.surprisal) != len(self.unit_lengths):
            raise BadRequestError(
                f"context {self.index}: {len(self.surprisal)} scores for "
                f"{len(self.unit_lengths)} units: give one score per unit"
            )
        for name, value in (("rank", self.rank), ("position", self.position)):
            if value is not None and value < 0:
                raise BadRequestError(f"context {self.index}: {name} must be >= 0 or None")

    @property
    def kept_spans(self) -> tuple[tuple[int, int], ...]:
        """The ``(start, end)`` character spans of the context that were kept, in order."""
        spans = []
        at = 0
        for i, run in enumerate(self.kept_runs):
            if i % 2 == 0 and run:
                spans.append((at, at + run))
            at += run
        return tuple(spans)

    @property
    def kept_characters(self) -> int:
        """How many characters of the context were kept."""
        return sum(self.kept_runs[0::2])

    @property
    def kept_fraction(self) -> float:
        """The fraction of the context's characters that were kept (1.0 for an empty one)."""
        return self.kept_characters / self.length if self.length else 1.0

    def kept_text(self, text: str) -> str:
        """What the compressed prompt holds of ``text``, this context's original."""
        return "".join(text[a:b] for a, b in self.kept_spans)

    def to_json(self) -> dict[str, Any]:
        """The context's part of :meth:`Explanation.to_json`."""
        return {
            "index": self.index,
            "length": self.length,
            "kept": list(self.kept_runs),
            "kept_fraction": round(self.kept_fraction, 3),
            "rank": self.rank,
            "position": self.position,
            "units": list(self.unit_lengths),
            "surprisal": list(self.surprisal),
        }

    @classmethod
    def from_json(cls, data: Any) -> ContextExplanation:
        """Read back what :meth:`to_json` wrote; anything else is a :class:`BadRequestError`."""
        if not isinstance(data, Mapping):
            raise BadRequestError("an explained context must be a JSON object")
        try:
            return cls(
                index=_int(data["index"]),
                length=_int(data["length"]),
                kept_runs=tuple(_int(n) for n in data["kept"]),
                rank=None if data.get("rank") is None else _int(data["rank"]),
                position=None if data.get("position") is None else _int(data["position"]),
                unit_lengths=tuple(_int(n) for n in data.get("units", ())),
                surprisal=tuple(float(x) for x in data.get("surprisal", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, BadRequestError):
                raise
            raise BadRequestError(f"an explained context is malformed: {exc!r}") from exc


@dataclass(frozen=True)
class Explanation:
    """What a compression kept of each context, and the scores it decided on."""

    contexts: tuple[ContextExplanation, ...]
    score: ScoreKind = "surprisal"

    def __post_init__(self) -> None:
        if self.score not in SCORE_KINDS:
            raise BadRequestError(f"score={self.score!r} must be one of {', '.join(SCORE_KINDS)}")
        if [c.index for c in self.contexts] != list(range(len(self.contexts))):
            raise BadRequestError("explained contexts must be given in request order, 0, 1, ...")

    @property
    def coarse(self) -> bool:
        """Whether a coarse filter ranked the contexts."""
        return any(c.rank is not None for c in self.contexts)

    def to_json(self) -> dict[str, Any]:
        """The compact JSON form described in this module's docstring."""
        return {
            "offsets": OFFSETS,
            "score": self.score,
            "contexts": [c.to_json() for c in self.contexts],
        }

    @classmethod
    def from_json(cls, data: Any) -> Explanation:
        """Read back what :meth:`to_json` wrote."""
        if not isinstance(data, Mapping) or not isinstance(data.get("contexts"), list):
            raise BadRequestError("an explanation must be a JSON object with a 'contexts' list")
        if data.get("offsets", OFFSETS) != OFFSETS:
            raise BadRequestError(f"explanation offsets must count {OFFSETS}")
        return cls(
            contexts=tuple(ContextExplanation.from_json(c) for c in data["contexts"]),
            score=data.get("score", "surprisal"),
        )


def explain(
    contexts: Sequence[str],
    order: Sequence[int],
    units: Sequence[Units],
    scores: Sequence[FloatArray],
    keep: npt.NDArray[np.bool_],
    *,
    ranking: Sequence[int] | None = None,
    score: ScoreKind = "surprisal",
) -> Explanation:
    """The explanation of one compression.

    ``order`` lists the contexts that reached the token level, in the compressed prompt's
    order; ``units[k]`` and ``scores[k]`` belong to context ``order[k]``, and ``keep`` is
    the keep mask over all their units, concatenated in that order (as ``Assembler``
    reads it). ``ranking`` is the coarse filter's ranking, most relevant first, or
    ``None`` when no coarse filter ran. Contexts missing from ``order`` were dropped whole.
    """
    if not (len(order) == len(units) == len(scores)):
        raise BadRequestError(
            f"order ({len(order)}), units ({len(units)}) and scores ({len(scores)}) "
            "must have one entry per context that reached the token level"
        )
    sizes = [len(u) for u in units]
    if len(keep) != sum(sizes):
        raise BadRequestError(f"keep has {len(keep)} entries for {sum(sizes)} units")
    rank = {} if ranking is None else {c: r for r, c in enumerate(ranking)}
    position = {c: p for p, c in enumerate(order)}
    bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    per_context: dict[int, tuple[Units, FloatArray, npt.NDArray[np.bool_]]] = {
        c: (units[k], scores[k], keep[bounds[k] : bounds[k + 1]]) for k, c in enumerate(order)
    }
    explained = []
    for index, text in enumerate(contexts):
        length = len(text)
        found = per_context.get(index)
        if found is None:
            runs: tuple[int, ...] = (0, length) if length else ()
            lengths: tuple[int, ...] = ()
            surprisal: tuple[float, ...] = ()
        else:
            unit, unit_score, mask = found
            runs = _runs(unit, mask, length)
            lengths = tuple((unit.ends - unit.starts).tolist())
            surprisal = tuple(
                float(x) for x in np.round(unit_score.astype(np.float64), SURPRISAL_DECIMALS)
            )
        explained.append(
            ContextExplanation(
                index=index,
                length=length,
                kept_runs=runs,
                rank=rank.get(index),
                position=position.get(index),
                unit_lengths=lengths,
                surprisal=surprisal,
            )
        )
    return Explanation(contexts=tuple(explained), score=score)


def _runs(units: Units, mask: npt.NDArray[np.bool_], length: int) -> tuple[int, ...]:
    """Kept/dropped run lengths over characters, kept first, for units kept where ``mask``."""
    if len(units) == 0:
        return (length,) if length else ()
    per_char = np.repeat(mask.astype(np.bool_), (units.ends - units.starts).astype(np.int64))
    changes = np.flatnonzero(np.diff(per_char.astype(np.int8))) + 1
    edges = np.concatenate([[0], changes, [len(per_char)]])
    lengths = np.diff(edges).tolist()
    return tuple(([0] if not per_char[0] else []) + lengths)


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequestError(f"{value!r} must be an integer")
    return value
