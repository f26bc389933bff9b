"""A cancelled request stops within one onnxruntime batch of the tiny exported scorer.

The other honest edges, refused at once in one line: tests/unit/test_edges.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tersify import Compressor
from tersify.errors import CancelledError
from tersify.limits import Deadline

from texts import sample_text


class _CancelOnCheck(Deadline):
    """A deadline whose caller leaves at its ``n``-th check."""

    def __init__(self, n: int) -> None:
        super().__init__(None)
        self.checks = 0
        self._n = n

    def check(self) -> None:
        self.checks += 1
        if self.checks >= self._n:
            self.cancel()
        super().check()


def test_a_cancelled_request_stops_within_one_onnx_batch(tiny_scorer_dir: Path) -> None:
    from tersify.bundle import Bundle
    from tersify.engines.onnx import OnnxScorer

    scorer = OnnxScorer(Bundle.open(tiny_scorer_dir), batch_tokens=64)
    text = sample_text("english", 6000, 5)
    runs = 0
    real = scorer._session.run

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal runs
        runs += 1
        return real(*args, **kwargs)

    scorer._session.run = counted  # type: ignore[method-assign]
    compressor = Compressor(scorer, cache=False)
    full = compressor.compress([text], rate=0.5)
    total_runs, runs = runs, 0
    assert total_runs >= 4 and full.scorer_tokens > 0
    deadline = _CancelOnCheck(3)  # Metered's check, then one per onnxruntime batch
    with pytest.raises(CancelledError):
        compressor.compress([text], rate=0.5, deadline=deadline)
    assert runs == 1  # one batch ran, then the cancellation was seen
