"""Honest edges: what a caller can get wrong is refused at once, in one line, by kind."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from tersify import BadRequestError, Compressor, PromptCompressor
from tersify.client.triton import RetryPolicy
from tersify.client.triton_models import Batching
from tersify.errors import CancelledError, ExportError, InternalError, UnsupportedOptionError
from tersify.limits import Deadline
from tersify.tokens import TokenFilter, unit_scores

from fakes import FakeScorer
from texts import sample_text


class _AsyncScorer(FakeScorer):
    async def logprobs(self, windows):  # type: ignore[no-untyped-def, override]
        await asyncio.sleep(0)
        return super().logprobs(windows)


def test_an_async_scorer_is_refused_up_front() -> None:
    with pytest.raises(BadRequestError, match="asynchronous"):
        Compressor(_AsyncScorer())


@pytest.mark.parametrize(
    "kwargs",
    [{"timeout_s": 0}, {"retry_for_s": -1}, {"first_backoff_s": 3, "max_backoff_s": 1}],
)
def test_retry_policy_is_checked(kwargs: dict) -> None:
    with pytest.raises(BadRequestError, match="RetryPolicy"):
        RetryPolicy(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"padded_lengths": ()},
        {"padded_lengths": (128, 64)},
        {"preferred_batch_sizes": (4, 32)},
        {"max_batch_size": 0},
    ],
)
def test_batching_is_checked(kwargs: dict) -> None:
    with pytest.raises(BadRequestError):
        Batching(**kwargs)


def test_a_failing_export_step_is_one_export_error() -> None:
    from tersify.export import _step

    with pytest.raises(ExportError, match="tracing failed: RuntimeError: boom") as caught:
        with _step(lambda _: None, "tracing"):
            raise RuntimeError("boom")
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_a_broken_invariant_is_not_the_callers_fault() -> None:
    from tersify.scoring import Units

    units = Units(np.array([0]), np.array([1]), np.array([0]))
    with pytest.raises(InternalError):
        unit_scores(units, None, None, TokenFilter())
    assert not issubclass(InternalError, BadRequestError)


def test_compat_errors_are_consistent() -> None:
    front = PromptCompressor(FakeScorer())
    for method in (front.compress_prompt, front.structured_compress_prompt):
        with pytest.raises(BadRequestError, match="unexpected keyword argument 'ratee'"):
            method("some text", ratee=0.5)
        with pytest.raises(UnsupportedOptionError, match="keep_split"):
            method("some text", keep_split=True)


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
