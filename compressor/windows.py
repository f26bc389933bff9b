"""Cutting token sequences into scorer windows and stitching the log-probs back.

Each window scores a stretch of tokens and carries some tokens before it as context, so
that a token near a window's start is still predicted from what precedes it. All windows
of all contexts go to the scorer in one call, which batches them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tersify.errors import BadRequestError
from tersify.scoring import FloatArray, IntArray, Scorer


@dataclass(frozen=True)
class WindowPlan:
    """Window sizes in scorer ids: ``size`` per window (BOS included), ``overlap`` as context.

    A scorer with a shorter ``max_window`` gets windows of its length instead.
    """

    size: int = 512
    overlap: int = 64

    def __post_init__(self) -> None:
        if self.size < 8:
            raise BadRequestError(f"window size={self.size} must be at least 8 tokens")
        if not 0 <= self.overlap <= self.size // 2:
            raise BadRequestError(
                f"window overlap={self.overlap} must be between 0 and size // 2 ({self.size // 2})"
            )

    def spans(self, n_tokens: int, capacity: int) -> list[tuple[int, int, int]]:
        """``(context_start, score_start, stop)`` for windows of at most ``capacity`` tokens.

        >>> WindowPlan(size=10, overlap=2).spans(20, 10)
        [(0, 0, 10), (8, 10, 18), (16, 18, 20)]
        """
        overlap = min(self.overlap, capacity // 2)
        spans = []
        score_start = 0
        while score_start < n_tokens:
            context_start = max(0, score_start - overlap)
            stop = min(n_tokens, context_start + capacity)
            spans.append((context_start, score_start, stop))
            score_start = stop
        return spans


def token_losses(
    scorer: Scorer,
    sequences: Sequence[IntArray],
    plan: WindowPlan,
    prefix: IntArray | None = None,
) -> list[FloatArray]:
    """Surprisal ``-log p`` of every token of every sequence, from one batched scorer call.

    A sequence's first token is predicted from the scorer's BOS when it has one; without
    one it has no prediction and gets the highest surprisal of its sequence, so that it
    ranks as informative rather than as free to drop. With ``prefix`` (a question, say),
    every window starts with it, so that each token is scored given the prefix.
    """
    head = _head(scorer, prefix)
    capacity = min(plan.size, scorer.max_window) - len(head)
    if capacity < 4:
        raise BadRequestError(
            f"windows of {min(plan.size, scorer.max_window)} ids leave no room after a "
            f"{len(head)}-id prefix; shorten the question or use larger windows"
        )
    windows: list[IntArray] = []
    placements: list[tuple[int, int, int, int]] = []
    for seq_index, ids in enumerate(sequences):
        for context_start, score_start, stop in plan.spans(len(ids), capacity):
            windows.append(np.concatenate([head, ids[context_start:stop]]).astype(np.int64))
            placements.append((seq_index, context_start, score_start, stop))
    rows = scorer.logprobs(windows) if windows else []
    losses = [np.zeros(len(ids), dtype=np.float32) for ids in sequences]
    shift = len(head)
    for (seq_index, context_start, score_start, stop), row in zip(placements, rows, strict=True):
        first = score_start - context_start + shift
        losses[seq_index][score_start:stop] = -row[first : first + stop - score_start]
    if shift == 0:
        _unpredicted_first(losses)
    return losses


def _head(scorer: Scorer, prefix: IntArray | None) -> IntArray:
    """What every window starts with: the scorer's BOS (if any), then ``prefix``."""
    bos = [] if scorer.bos_token_id is None else [scorer.bos_token_id]
    rest = [] if prefix is None else prefix.tolist()
    return np.asarray(bos + rest, dtype=np.int64)


def _unpredicted_first(losses: list[FloatArray]) -> None:
    """Without BOS or prefix a first token has no prediction: rank it as informative."""
    for loss in losses:
        if len(loss) > 1:
            loss[0] = loss[1:].max()


def _most_surprising(stretch: FloatArray, fraction: float) -> IntArray:
    """Positions of the ``fraction`` most surprising tokens of ``stretch``, in order."""
    n_keep = max(1, int(np.ceil(fraction * len(stretch))))
    return np.sort(np.argsort(-stretch, kind="stable")[:n_keep]).astype(np.int64)


def iterative_losses(
    scorer: Scorer,
    sequences: Sequence[IntArray],
    plan: WindowPlan,
    keep_fraction: float,
    prefix: IntArray | None = None,
) -> list[FloatArray]:
    """Surprisal of every token, each window conditioned on what was kept before it.

    LLMLingua's iterative token-level compression: a window's context is the last
    ``plan.overlap`` tokens that earlier windows kept (their most surprising
    ``keep_fraction``), not the original text, so that scores follow the distribution
    of the compressed prompt. Windows of all sequences at the same step go to the scorer
    in one call; the steps are sequential.
    """
    head = _head(scorer, prefix)
    capacity = min(plan.size, scorer.max_window) - len(head)
    context = min(plan.overlap, capacity // 2)
    if capacity - context < 4:
        raise BadRequestError("windows leave no room after the prefix; use larger windows")
    losses = [np.zeros(len(ids), dtype=np.float32) for ids in sequences]
    kept: list[list[int]] = [[] for _ in sequences]
    position = [0] * len(sequences)
    while True:
        batch = []
        for s, ids in enumerate(sequences):
            if position[s] < len(ids):
                carried = kept[s][-context:] if context else []
                stop = min(len(ids), position[s] + capacity - len(carried))
                window = np.concatenate(
                    [head, np.asarray(carried, np.int64), ids[position[s] : stop]]
                )
                batch.append((s, len(head) + len(carried), stop, window.astype(np.int64)))
        if not batch:
            break
        rows = scorer.logprobs([w for *_, w in batch])
        for (s, first, stop, _), row in zip(batch, rows, strict=True):
            start = position[s]
            losses[s][start:stop] = -row[first : first + stop - start]
            chosen = _most_surprising(losses[s][start:stop], keep_fraction)
            kept[s].extend(sequences[s][start + chosen].tolist())
            position[s] = stop
    if len(head) == 0:
        _unpredicted_first(losses)
    return losses
