"""The models a Triton serves, as their callers see them: names, batching, padded shapes.

The clients (``TritonScorer``, ``TritonRanker``, the BLS callers inside ``tersify_compress``)
pad their requests to the shapes that ``tersify.triton.config`` writes into each model's
``config.pbtxt``, so that the dynamic batcher merges requests from many callers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tersify.errors import BadRequestError
from tersify.scoring import IntArray
from tersify.validate import non_negative_int, positive_int

MODEL_NAME = "tersify_scorer"
RANKER_MODEL = "tersify_ranker"


@dataclass(frozen=True)
class Batching:
    """Dynamic batching: requests of one padded length are merged up to ``max_batch_size``."""

    max_batch_size: int = 16
    preferred_batch_sizes: tuple[int, ...] = (4, 8, 16)
    # How long a lone request waits for others: 100 us gave the lowest latency at
    # concurrency 1 on an H100, and Triton still merged 14 requests at concurrency 32.
    max_queue_delay_us: int = 100
    # Windows are padded to these lengths so that requests from many callers match.
    padded_lengths: tuple[int, ...] = (64, 128, 256, 512)
    warmup_length: int = 128

    def __post_init__(self) -> None:
        positive_int("max_batch_size", self.max_batch_size)
        non_negative_int("max_queue_delay_us", self.max_queue_delay_us)
        positive_int("warmup_length", self.warmup_length)
        for name in ("preferred_batch_sizes", "padded_lengths"):
            values = getattr(self, name)
            if not values or list(values) != sorted(set(values)):
                raise BadRequestError(f"{name}={values!r} must be increasing and not empty")
            for value in values:
                positive_int(name, value)
        if self.preferred_batch_sizes[-1] > self.max_batch_size:
            raise BadRequestError(
                f"preferred_batch_sizes {self.preferred_batch_sizes} go past "
                f"max_batch_size={self.max_batch_size}"
            )


# The ranker reads at most 256 tokens (all-MiniLM-L6-v2); a question-aware request embeds
# the question and every sentence of its documents (hundreds of short texts) in one call.
RANKER_BATCHING = Batching(
    max_batch_size=64,
    preferred_batch_sizes=(16, 32, 64),
    padded_lengths=(32, 64, 128, 256),
    warmup_length=64,
)


def ranker_requests(
    encoded: Sequence[IntArray], *, lengths: Sequence[int], max_batch: int, pad_id: int
) -> list[tuple[list[int], IntArray, IntArray]]:
    """Tokenized texts as ranker requests: ``(indices, ids, mask)``, ``[rows, length]`` each.

    Each text is right-padded to the first of ``lengths`` that holds it (its own length past
    the last), texts of one length go together, at most ``max_batch`` rows a request, so
    that requests from many callers have the shapes the dynamic batcher merges.

    >>> reqs = ranker_requests([np.arange(5), np.arange(40), np.arange(3)],
    ...                        lengths=(32, 64), max_batch=16, pad_id=0)
    >>> [(indices, ids.shape) for indices, ids, _ in reqs]
    [([0, 2], (2, 32)), ([1], (1, 64))]
    """
    groups: dict[int, list[int]] = {}
    for index, ids in enumerate(encoded):
        length = next((n for n in sorted(lengths) if n >= len(ids)), max(1, len(ids)))
        groups.setdefault(length, []).append(index)
    out = []
    for length in sorted(groups):
        members = groups[length]
        for start in range(0, len(members), max_batch):
            part = members[start : start + max_batch]
            ids = np.full((len(part), length), pad_id, dtype=np.int64)
            mask = np.zeros((len(part), length), dtype=np.int64)
            for row, index in enumerate(part):
                ids[row, : len(encoded[index])] = encoded[index]
                mask[row, : len(encoded[index])] = 1
            out.append((part, ids, mask))
    return out
