"""A real tritonserver (from the nvidia-pytriton wheel) serving the tiny scorer."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from tersify import Compressor, ScorerUnavailableError
from tersify.client import Bundle
from tersify.client import triton_server as server
from tersify.client.triton import RetryPolicy, TritonScorer, TritonTarget

from texts import sample_text


@pytest.fixture(scope="module")
def triton(
    tiny_scorer_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[server.ServerState]:
    run_dir = tmp_path_factory.mktemp("triton-run")
    state = server.start(Bundle.open(tiny_scorer_dir), run_dir)
    try:
        yield state
    finally:
        server.stop(run_dir)


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
    assert (
        remote.compress(*args, **kwargs).compressed_prompt
        == embedded.compress(*args, **kwargs).compressed_prompt
    )


def test_grpc_url_with_scorer_query(triton: server.ServerState, tiny_scorer_dir: Path) -> None:
    compressor = Compressor(f"{triton.grpc_url}?scorer={tiny_scorer_dir}")
    result = compressor.compress([sample_text("english", 3000, 1)], rate=0.3)
    assert abs(result.rate - 0.3) <= 0.02


def test_logprobs_match_the_onnx_scorer(triton: server.ServerState, tiny_scorer_dir: Path) -> None:
    from tersify.client import open_scorer

    windows = [np.arange(2, n, dtype=np.int64) for n in (10, 70, 300, 511)]
    got = _scorer(triton, tiny_scorer_dir).logprobs(windows)
    want = open_scorer(tiny_scorer_dir).logprobs(windows)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_dynamic_batching_merges_concurrent_requests(
    triton: server.ServerState, tiny_scorer_dir: Path
) -> None:
    client = grpcclient.InferenceServerClient(triton.grpc_url.removeprefix("grpc://"))
    before = client.get_inference_statistics("tersify_scorer").model_stats[0]
    scorer = _scorer(triton, tiny_scorer_dir)
    windows = [np.arange(2, 200, dtype=np.int64)] * 64
    threads = [threading.Thread(target=scorer.logprobs, args=(windows,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = client.get_inference_statistics("tersify_scorer").model_stats[0]
    inferences = after.inference_count - before.inference_count
    executions = after.execution_count - before.execution_count
    assert inferences == 256
    assert executions < inferences  # requests were merged into batches


def test_a_bad_request_fails_alone(triton: server.ServerState) -> None:
    client = grpcclient.InferenceServerClient(triton.grpc_url.removeprefix("grpc://"))
    results: dict[str, object] = {}

    def send(name: str, ids: np.ndarray) -> None:
        tensor = grpcclient.InferInput("input_ids", list(ids.shape), "INT64")
        tensor.set_data_from_numpy(ids)
        try:
            results[name] = client.infer("tersify_scorer", [tensor]).as_numpy("token_logprobs")
        except Exception as exc:
            results[name] = exc

    good = np.arange(2, 66, dtype=np.int64)[None, :]
    bad = np.full((1, 64), 10**6, dtype=np.int64)  # outside the vocabulary
    threads = [threading.Thread(target=send, args=(f"good{i}", good)) for i in range(6)]
    threads.insert(3, threading.Thread(target=send, args=("bad", bad)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert "outside [0, 600)" in str(results.pop("bad"))
    assert all(isinstance(v, np.ndarray) and v.shape == (1, 64) for v in results.values())


def test_down_server_gives_a_clear_error_then_recovers(
    tiny_scorer_dir: Path, tmp_path: Path
) -> None:
    bundle = Bundle.open(tiny_scorer_dir)
    state = server.start(bundle, tmp_path)
    compressor = Compressor(_scorer(state, tiny_scorer_dir, retry_for_s=3.0))
    text = [sample_text("mixed", 4000, 3)]
    first = compressor.compress(text, rate=0.5).compressed_prompt
    server.stop(tmp_path)
    started = time.monotonic()
    with pytest.raises(ScorerUnavailableError, match="unavailable"):
        compressor.compress(text, rate=0.5)
    assert time.monotonic() - started < 30
    server.start(bundle, tmp_path, grpc_port=state.grpc_port)
    try:
        assert compressor.compress(text, rate=0.5).compressed_prompt == first
    finally:
        server.stop(tmp_path)


def test_restart_during_a_compression_is_retried(tiny_scorer_dir: Path, tmp_path: Path) -> None:
    bundle = Bundle.open(tiny_scorer_dir)
    state = server.start(bundle, tmp_path)
    server.stop(tmp_path)
    compressor = Compressor(_scorer(state, tiny_scorer_dir, retry_for_s=60.0))
    outcome: dict[str, object] = {}

    def run() -> None:
        outcome["result"] = compressor.compress([sample_text("english", 4000, 4)], rate=0.4)

    worker = threading.Thread(target=run)
    worker.start()  # the server is down: requests are being retried
    time.sleep(1.0)
    server.start(bundle, tmp_path, grpc_port=state.grpc_port)
    try:
        worker.join(timeout=120)
        assert not worker.is_alive()
        assert abs(outcome["result"].rate - 0.4) <= 0.02  # type: ignore[attr-defined]
    finally:
        server.stop(tmp_path)


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
