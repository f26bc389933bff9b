"""Honest edges: what a caller can get wrong is refused at once, in one line, by kind."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from tersify import BadRequestError, Compressor, PromptCompressor
from tersify.client.triton import RetryPolicy
from tersify.client.triton_models import Batching
from tersify.errors import ExportError, InternalError, UnsupportedOptionError
from tersify.tokens import TokenFilter, unit_scores

from fakes import FakeScorer


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
