"""A real tritonserver (from the nvidia-pytriton wheel) serving the tiny scorer."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from tersify import Compressor, ScorerTimeoutError, ScorerUnavailableError, TokenFilter
from tersify.client import Bundle
from tersify.client.triton import AsyncTritonScorer, RetryPolicy, TritonScorer, TritonTarget
from tersify.errors import DeadlineExceededError
from tersify.limits import Deadline
from tersify.triton import server

from answers import check_properties
from texts import sample_text

MODEL = "tersify_scorer"


def _scorer(state: server.ServerState, bundle_dir: Path, **retry: float) -> TritonScorer:
    target = TritonTarget.parse(state.grpc_url)
    return TritonScorer(target, Bundle.open(bundle_dir), retry=RetryPolicy(**retry))


def test_grpc_gives_the_same_prompt_as_embedded(
    triton: server.ServerState, tiny_scorer_dir: Path, seed_request: dict
) -> None:
    embedded = Compressor(str(tiny_scorer_dir))
    remote = Compressor(_scorer(triton, tiny_scorer_dir))
    args = (seed_request["context"],)
    kwargs = {"question": seed_request["question"], "ratio": seed_request["ratio"]}
    via_triton = remote.compress(*args, **kwargs)
    check_properties(via_triton, seed_request["context"], seed_request["question"])
    assert via_triton.compressed_prompt == embedded.compress(*args, **kwargs).compressed_prompt


def test_grpc_url_with_scorer_query(triton: server.ServerState, tiny_scorer_dir: Path) -> None:
    compressor = Compressor(f"{triton.grpc_url}?scorer={tiny_scorer_dir}")
    text = sample_text("english", 3000, 1)
    result = compressor.compress([text], rate=0.3)
    check_properties(result, [text], "")
    assert abs(result.rate - 0.3) <= 0.02


def test_logprobs_match_the_onnx_scorer(triton: server.ServerState, tiny_scorer_dir: Path) -> None:
    from tersify.client import open_scorer

    windows = [np.arange(2, n, dtype=np.int64) for n in (10, 70, 300, 511)]
    got = _scorer(triton, tiny_scorer_dir).logprobs(windows)
    want = open_scorer(tiny_scorer_dir).logprobs(windows)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, atol=1e-4)


def _client(state: server.ServerState) -> grpcclient.InferenceServerClient:
    return grpcclient.InferenceServerClient(state.grpc_url.removeprefix("grpc://"))


def _input(ids: np.ndarray) -> grpcclient.InferInput:
    tensor = grpcclient.InferInput("input_ids", list(ids.shape), "INT64")
    tensor.set_data_from_numpy(ids)
    return tensor


def _stats(client: grpcclient.InferenceServerClient) -> Any:
    return client.get_inference_statistics(MODEL).model_stats[0]


def _settled(client: grpcclient.InferenceServerClient, before: Any, inferences: int) -> Any:
    """The statistics once they count ``inferences`` more than ``before``: Triton records
    them after it answers, so a client may read them a moment too early."""
    deadline = time.monotonic() + 30
    while True:
        after = _stats(client)
        if after.inference_count - before.inference_count >= inferences:
            return after
        assert time.monotonic() < deadline, "Triton's statistics never caught up"
        time.sleep(0.05)


def _batches(before: Any, after: Any) -> dict[int, int]:
    """Executions per batch size between two statistics."""
    old = {b.batch_size: b.compute_infer.count for b in before.batch_stats}
    new = {b.batch_size: b.compute_infer.count for b in after.batch_stats}
    return {size: n - old.get(size, 0) for size, n in new.items() if n > old.get(size, 0)}


def _occupy(client: grpcclient.InferenceServerClient) -> list[object]:
    """Keep the model's one instance busy with a batch of long windows (another shape, so
    never merged with the requests that follow): those queue meanwhile, and the dynamic
    batcher merges them once the instance is free. The list gets the blocker's error."""
    done: list[object] = []
    blocker = np.tile(np.arange(2, 514, dtype=np.int64), (16, 1))
    client.async_infer(MODEL, [_input(blocker)], lambda result, error: done.append(error))
    return done


def test_dynamic_batching_merges_concurrent_requests(
    triton: server.ServerState, tiny_scorer_dir: Path
) -> None:
    client = _client(triton)
    before = _stats(client)
    scorer = _scorer(triton, tiny_scorer_dir)
    windows = [np.arange(2, 200, dtype=np.int64)] * 64
    results: list[list[np.ndarray]] = []
    blocker = _occupy(client)
    threads = [
        threading.Thread(target=lambda: results.append(scorer.logprobs(windows)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = _settled(client, before, 16 + 256)
    assert blocker == [None] and len(results) == 4
    assert after.inference_count - before.inference_count == 16 + 256
    batches = _batches(before, after)
    executions = sum(batches.values()) - 1  # ours, less the blocker's
    assert after.execution_count - before.execution_count == executions + 1
    assert executions < 256, batches  # requests were merged
    assert all(len(r) == 64 for r in results)
    for rows in results:
        for row in rows:
            np.testing.assert_allclose(row, results[0][0], atol=1e-6)


def _store(answers: dict[int, tuple[Any, Any]], i: int) -> Callable[[Any, Any], None]:
    return lambda result, error: answers.__setitem__(i, (result, error))


def test_a_bad_request_in_a_merged_batch_fails_alone(triton: server.ServerState) -> None:
    """Seven good requests and one bad, merged into one execution of eight (Triton's
    statistics say so): only the bad one fails."""
    client = _client(triton)
    good = np.arange(2, 66, dtype=np.int64)[None, :]
    bad = np.full((1, 64), 10**6, dtype=np.int64)  # outside the vocabulary
    for _ in range(10):
        before = _stats(client)
        blocker = _occupy(client)
        answers: dict[int, tuple[Any, Any]] = {}
        for i in range(8):
            ids = bad if i == 3 else good
            client.async_infer(MODEL, [_input(ids)], _store(answers, i))
        after = _settled(client, before, 16 + 8)
        while len(answers) < 8 or not blocker:
            time.sleep(0.01)
        if _batches(before, after).get(8) != 1:
            continue  # not merged this time (the blocker finished too soon): try again
        assert after.execution_count - before.execution_count == 2  # the blocker, then ours
        result, error = answers.pop(3)
        assert result is None and "outside [0, 600)" in str(error)
        for result, error in answers.values():
            assert error is None
            assert result.as_numpy("token_logprobs").shape == (1, 64)
        return
    pytest.fail("eight queued requests were never merged into one execution")


def test_down_server_gives_a_clear_error_then_recovers(
    tiny_scorer_dir: Path, tmp_path: Path
) -> None:
    bundle = Bundle.open(tiny_scorer_dir)
    state = server.start(bundle, tmp_path)
    scorer = _scorer(state, tiny_scorer_dir, retry_for_s=3.0)
    before, after = [sample_text("mixed", 4000, 3)], [sample_text("mixed", 4000, 30)]
    expected = Compressor(scorer).compress(after, rate=0.5)  # another compressor, own cache
    compressor = Compressor(scorer)
    compressor.compress(before, rate=0.5)
    server.stop(tmp_path)
    started = time.monotonic()
    with pytest.raises(ScorerUnavailableError, match="unavailable"):
        compressor.compress(after, rate=0.5)  # texts it never scored: the scorer is asked
    assert time.monotonic() - started < 30
    server.start(bundle, tmp_path, grpc_port=state.grpc_port)
    try:
        recovered = compressor.compress(after, rate=0.5)
        assert recovered.compressed_prompt == expected.compressed_prompt
        check_properties(recovered, after, "")
    finally:
        server.stop(tmp_path)


class Hooked:
    """A real scorer, with ``after(call_number)`` run after each of its calls returns."""

    def __init__(self, scorer: TritonScorer, after: Callable[[int], None]) -> None:
        self._scorer, self._after = scorer, after
        self.name, self.bos_token_id = scorer.name, scorer.bos_token_id
        self.max_window = scorer.max_window
        self.started: list[float] = []

    def tokenize(self, text: str) -> Any:
        return self._scorer.tokenize(text)

    def logprobs(self, windows: Sequence[np.ndarray]) -> list[np.ndarray]:
        self.started.append(time.monotonic())
        rows = self._scorer.logprobs(windows)
        self._after(len(self.started))
        return rows


def test_restart_in_the_middle_of_a_compression_is_retried(
    tiny_scorer_dir: Path, tmp_path: Path
) -> None:
    """The server stops right after the compression's first scorer call and comes back a
    second later, while the second call is being retried; the answer is the one an
    undisturbed server gives."""
    bundle = Bundle.open(tiny_scorer_dir)
    state = server.start(bundle, tmp_path)
    text = sample_text("english", 4000, 4)
    iterative = TokenFilter(iterative=True)  # one scorer call per window step
    restarted_at: list[float] = []
    try:
        scorer = _scorer(state, tiny_scorer_dir, retry_for_s=120.0)
        undisturbed = Compressor(scorer).compress([text], rate=0.4, token_filter=iterative)

        def restart() -> None:
            server.start(bundle, tmp_path, grpc_port=state.grpc_port)
            restarted_at.append(time.monotonic())

        def after(call: int) -> None:
            if call == 1:
                server.stop(tmp_path)
                threading.Timer(1.0, restart).start()

        hooked = Hooked(scorer, after)
        result = Compressor(hooked).compress([text], rate=0.4, token_filter=iterative)  # type: ignore[arg-type]
    finally:
        deadline = time.monotonic() + 120
        while not restarted_at and time.monotonic() < deadline:
            time.sleep(0.1)
        server.stop(tmp_path)
    assert len(hooked.started) >= 3
    assert hooked.started[1] < restarted_at[0]  # the second call began while it was down
    check_properties(result, [text], "")
    assert result.compressed_prompt == undisturbed.compressed_prompt


def test_the_async_scorer_matches_the_sync_one(
    triton: server.ServerState, tiny_scorer_dir: Path
) -> None:
    windows = [np.arange(2, n, dtype=np.int64) for n in (10, 70, 300, 511)] * 3
    target = TritonTarget.parse(triton.grpc_url)

    async def score() -> list[np.ndarray]:
        scorer = AsyncTritonScorer(target, Bundle.open(tiny_scorer_dir), max_in_flight=3)
        try:
            return await scorer.logprobs(windows)
        finally:
            await scorer.close()

    got = asyncio.run(score())
    want = _scorer(triton, tiny_scorer_dir).logprobs(windows)
    assert [len(g) for g in got] == [len(w) for w in windows]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=1e-6)


def test_the_async_scorer_says_when_no_server_answers(tiny_scorer_dir: Path) -> None:
    target = TritonTarget.parse(f"grpc://127.0.0.1:{server.free_port()}")
    retry = RetryPolicy(retry_for_s=1.0)

    async def score() -> list[np.ndarray]:
        scorer = AsyncTritonScorer(target, Bundle.open(tiny_scorer_dir), retry=retry)
        try:
            return await scorer.logprobs([np.arange(2, 40, dtype=np.int64)])
        finally:
            await scorer.close()

    started = time.monotonic()
    with pytest.raises(ScorerUnavailableError, match="tersify triton status"):
        asyncio.run(score())
    assert time.monotonic() - started < 30


def test_a_request_that_outlives_its_grpc_deadline_times_out(
    triton: server.ServerState, tiny_scorer_dir: Path
) -> None:
    scorer = _scorer(triton, tiny_scorer_dir, timeout_s=1e-6)
    with pytest.raises(ScorerTimeoutError, match="did not answer within"):
        scorer.logprobs([np.arange(2, 511, dtype=np.int64)])
    assert _scorer(triton, tiny_scorer_dir).logprobs([np.arange(2, 9, dtype=np.int64)])


def test_a_compression_deadline_that_passes_stops_at_the_next_scorer_call(
    triton: server.ServerState, tiny_scorer_dir: Path
) -> None:
    deadline = Deadline(3.0)

    def outlast(call: int) -> None:
        time.sleep((deadline.remaining() or 0.0) + 0.05)  # the first call takes it all

    hooked = Hooked(_scorer(triton, tiny_scorer_dir), outlast)
    with pytest.raises(DeadlineExceededError, match="3 s deadline"):
        Compressor(hooked).compress(  # type: ignore[arg-type]
            [sample_text("english", 4000, 5)],
            rate=0.4,
            token_filter=TokenFilter(iterative=True),
            deadline=deadline,
        )
    assert len(hooked.started) == 1  # no scorer call after the deadline passed


def test_cli_start_status_stop(tiny_scorer_dir: Path, tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tersify.cli", "triton", *args, "--run-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    started = cli("start", "--scorer", str(tiny_scorer_dir))
    assert started.returncode == 0, started.stderr
    info = json.loads(started.stdout)
    assert info["grpc"].startswith("grpc://127.0.0.1:")
    assert server._alive(info["pid"])
    status = cli("status")
    assert status.returncode == 0 and json.loads(status.stdout)["ready"] is True
    again = cli("start", "--scorer", str(tiny_scorer_dir))
    assert again.returncode == 1 and "is running" in again.stderr
    assert cli("stop").stdout.strip() == "stopped"
    assert not server._alive(info["pid"])
    down = cli("status")
    assert down.returncode == 1 and json.loads(down.stdout)["ready"] is False
