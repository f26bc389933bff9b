"""A scorer wrapper that measures the scorer's work and stops it when the caller must.

Every log-prob call goes through :class:`Metered`: it counts the ids sent (BOS, question
prefixes and overlaps included: what the scorer really computed) and the seconds spent,
and checks the request's :class:`~tersify.limits.Deadline` before each call and puts it in
scope for the scorer, which checks it between its own batches (onnxruntime runs, Triton
requests), so that a deadline or a client that left stops the work within one batch.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from tersify.limits import Deadline, deadline_scope
from tersify.scoring import FloatArray, IntArray, Scorer, ScorerWrapper


class Metered(ScorerWrapper):
    """``scorer`` with a meter and a deadline; a :class:`~tersify.scoring.Scorer` itself.

    >>> from tersify.limits import Deadline
    >>> class Echo:
    ...     name, bos_token_id, max_window = "echo", None, 8
    ...     def tokenize(self, text): ...
    ...     def logprobs(self, windows): return [w * 0.0 for w in windows]
    >>> import numpy as np
    >>> meter = Metered(Echo(), Deadline(None))
    >>> _ = meter.logprobs([np.arange(3), np.arange(5)])
    >>> meter.tokens, meter.calls
    (8, 1)
    """

    def __init__(self, scorer: Scorer, deadline: Deadline) -> None:
        self._scorer = scorer
        self._deadline = deadline
        self.tokens = 0
        self.calls = 0
        self.seconds = 0.0

    def logprobs(self, windows: Sequence[IntArray]) -> list[FloatArray]:
        """Check the deadline, then score ``windows`` and count the work."""
        self._deadline.check()
        started = time.perf_counter()
        try:
            with deadline_scope(self._deadline):  # the scorer checks it between its batches
                return self._scorer.logprobs(windows)
        finally:
            self.seconds += time.perf_counter() - started
            self.calls += 1
            self.tokens += sum(len(w) for w in windows)
