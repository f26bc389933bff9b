"""``tersify_compress``: a whole compression inside a real tritonserver, over BLS."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tersify import BadRequestError, ScorerUnavailableError
from tersify.cli import main, remote
from tersify.client import Bundle
from tersify.triton import server
from tersify.triton.compress_config import (
    COMPRESS_MODEL,
    CompressConfig,
)

ROOT = Path(__file__).resolve().parents[2]


def _client(state: server.ServerState) -> grpcclient.InferenceServerClient:
    return grpcclient.InferenceServerClient(state.grpc_url.removeprefix("grpc://"))


def _infer(state: server.ServerState, raw: bytes) -> grpcclient.InferResult:
    tensor = grpcclient.InferInput("REQUEST", [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[raw]], dtype=np.object_))
    return _client(state).infer(COMPRESS_MODEL, [tensor])


def _answer(result: grpcclient.InferResult) -> bytes:
    """``RESPONSE``: one BYTES element."""
    assert result.get_output("RESPONSE").datatype == "BYTES"
    answer = result.as_numpy("RESPONSE")
    assert answer.shape == (1, 1) and isinstance(answer[0, 0], bytes)
    return bytes(answer[0, 0])


def _cli(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, raw: bytes, scorer: Path
) -> tuple[int, str, str]:
    path = tmp_path / "request.json"
    path.write_bytes(raw)
    capsys.readouterr()
    code = main(["compress", str(path), "--scorer", str(scorer)])
    out, err = capsys.readouterr()
    return code, out, err


def test_answer_is_byte_identical_to_the_cli(
    triton: server.ServerState,
    tiny_scorer_dir: Path,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    raw = (ROOT / "examples" / "seed_request.json").read_bytes()
    code, out, _ = _cli(capsys, tmp_path, raw, tiny_scorer_dir)
    result = _infer(triton, raw)
    answer = _answer(result)
    assert code == 0 and answer == out.encode("utf-8")
    data = json.loads(answer)["data"]
    assert result.as_numpy("ORIGIN_TOKENS").tolist() == [[data["origin_tokens"]]]
    assert result.as_numpy("COMPRESSED_TOKENS").tolist() == [[data["compressed_tokens"]]]
    assert data["compressed_tokens"] < data["origin_tokens"]


def test_bad_requests_fail_alone_with_the_cli_message(
    triton: server.ServerState,
    tiny_scorer_dir: Path,
    seed_request: dict,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    good = json.dumps(seed_request).encode()
    bad = [
        b"{not json",
        b'{"context": ["a"], "rte": 0.5}',
        json.dumps({"context": ["x"] * 1025, "rate": 0.5}).encode(),  # over max_contexts
        json.dumps({"context": ["some text"], "rate": 1.5}).encode(),
    ]
    outcomes: dict[int, object] = {}

    def send(index: int, raw: bytes) -> None:
        try:
            outcomes[index] = _answer(_infer(triton, raw))
        except InferenceServerException as exc:
            outcomes[index] = exc

    # All at once, so that the bad ones are merged into one execution with the good one.
    threads = [threading.Thread(target=send, args=(i, r)) for i, r in enumerate([good, *bad])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert isinstance(outcomes[0], bytes)
    assert outcomes[0] == _cli(capsys, tmp_path, good, tiny_scorer_dir)[1].encode()
    for index, raw in enumerate(bad, start=1):
        error = outcomes[index]
        assert isinstance(error, InferenceServerException), raw[:40]
        code, _, err = _cli(capsys, tmp_path, raw, tiny_scorer_dir)
        assert code == 2 and err == f"tersify: error: {error.message()}\n"
        assert error.status() == "StatusCode.INVALID_ARGUMENT"


def test_windows_of_requests_in_flight_meet_in_the_scorer_batcher(
    triton: server.ServerState, seed_request: dict
) -> None:
    client = _client(triton)
    before = client.get_inference_statistics("tersify_scorer").model_stats[0]
    # Four different requests (the model's score cache would answer repeats by itself).
    raws = [
        json.dumps(
            {**seed_request, "context": [f"Request {i}. " + seed_request["context"][0]]}
        ).encode()
        for i in range(4)
    ]
    answers: list[bytes] = []
    threads = [
        threading.Thread(target=lambda raw=raw: answers.append(_answer(_infer(triton, raw))))
        for raw in raws
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after = client.get_inference_statistics("tersify_scorer").model_stats[0]
    inferences = after.inference_count - before.inference_count
    executions = after.execution_count - before.execution_count
    assert len(answers) == 4 and len(set(answers)) == 4
    assert executions < inferences  # windows were merged into shared executions


def _scorer_requests(state: server.ServerState, raw: bytes) -> tuple[bytes, int]:
    """The answer to ``raw`` and how many requests it sent to the scorer model."""
    client = _client(state)
    before = client.get_inference_statistics("tersify_scorer").model_stats[0].inference_count
    answer = _answer(_infer(state, raw))
    after = client.get_inference_statistics("tersify_scorer").model_stats[0].inference_count
    return answer, after - before


def test_cache_bytes_turns_the_instance_score_cache_on_and_off(
    triton: server.ServerState, tiny_scorer_dir: Path, seed_request: dict, tmp_path: Path
) -> None:
    # Texts no other test sends (other tests' windows may be in the module server's caches).
    context, question = seed_request["context"][0][:1500][::-1], seed_request["question"][::-1]
    raw = json.dumps({**seed_request, "context": [context], "question": question}).encode()
    run_dir = tmp_path / "uncached"
    state = server.start(
        Bundle.open(tiny_scorer_dir), run_dir, compress=CompressConfig(form="python", cache_bytes=0)
    )
    try:
        config = (run_dir / "repository" / COMPRESS_MODEL / "config.pbtxt").read_text()
        assert '{ key: "cache_bytes" value: { string_value: "0" } }' in config
        first, scored = _scorer_requests(state, raw)
        assert scored > 0
        assert _scorer_requests(state, raw) == (first, scored)  # scored again: no cache
    finally:
        server.stop(run_dir)
    # Default: each instance's cache answers every request after that instance's first.
    instances = CompressConfig(form="python").instance_count
    repeats = [_scorer_requests(triton, raw) for _ in range(instances + 2)]
    assert {answer for answer, _ in repeats} == {first}
    assert sum(n for _, n in repeats) <= instances * scored
    assert sum(n > 0 for _, n in repeats) <= instances


@pytest.fixture(scope="module")
def seed_answer(tiny_scorer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """What ``tersify compress`` prints for the seed's request with the tiny scorer."""
    command = ["compress", str(SEED), "--scorer", str(tiny_scorer_dir)]
    out = subprocess.run(
        [sys.executable, "-m", "tersify.cli", *command], capture_output=True, check=True
    )
    return out.stdout


SEED = ROOT / "examples" / "seed_request.json"


def test_cli_server_option_sends_the_whole_request(
    triton: server.ServerState,
    tiny_scorer_dir: Path,
    seed_answer: bytes,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    assert remote.run(triton.grpc_url, SEED.read_bytes()).encode() == seed_answer
    capsys.readouterr()
    assert main(["compress", "--server", triton.grpc_url, str(SEED)]) == 0
    assert capsys.readouterr().out.encode() == seed_answer
    raw = b'{"context": ["a"], "rte": 0.5}'
    with pytest.raises(BadRequestError) as caught:
        remote.run(triton.grpc_url, raw)
    assert _cli(capsys, tmp_path, raw, tiny_scorer_dir)[2] == f"tersify: error: {caught.value}\n"
    with pytest.raises(ScorerUnavailableError, match="no Triton answers"):
        remote.run(f"grpc://127.0.0.1:{server.free_port()}", SEED.read_bytes())
    with pytest.raises(BadRequestError, match="grpc://HOST:PORT"):
        remote.run("http://127.0.0.1:1", b"{}")


def test_python_example(triton: server.ServerState, seed_answer: bytes) -> None:
    example = ROOT / "examples" / "triton_compress.py"
    out = subprocess.run(
        [sys.executable, str(example), triton.grpc_url, str(SEED)], capture_output=True, check=True
    )
    assert out.stdout == seed_answer
    assert out.stderr.decode().startswith("origin_tokens=")


def test_node_example_over_triton_s_published_protocol(
    triton: server.ServerState, seed_answer: bytes, tmp_path: Path
) -> None:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("Node.js is not installed (apt-get install nodejs npm)")
    folder = ROOT / "examples" / "node"
    if not (folder / "node_modules" / "@grpc" / "grpc-js").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=folder, check=True)
    example = [node, str(folder / "compress.js"), triton.grpc_url]
    out = subprocess.run([*example, str(SEED)], capture_output=True, check=True)
    assert out.stdout == seed_answer
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"{not json")
    failed = subprocess.run([*example, str(bad)], capture_output=True)
    assert failed.returncode == 2
    assert failed.stderr.decode().startswith("tersify: error: the request is not valid JSON")


def test_without_numpy_1_the_bundled_stub_refuses_with_the_fix(
    tiny_scorer_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # This stub (pybind11 2.10) under numpy 2 corrupts BYTES both ways: the model must say
    # so and how to fix it, request after request, instead of answering wrong or dying.
    if int(np.__version__.split(".")[0]) < 2:
        pytest.skip("numpy < 2 here: the stub converts BYTES right")
    monkeypatch.delenv("TERSIFY_STUB_SITE_PACKAGES", raising=False)
    monkeypatch.setattr(server, "STUB_SITE_PACKAGES", tmp_path / "absent")
    state = server.start(Bundle.open(tiny_scorer_dir), tmp_path / "run")
    try:
        for _ in range(2):
            with pytest.raises(InferenceServerException) as caught:
                _infer(state, SEED.read_bytes())
            assert caught.value.status() == "StatusCode.UNAVAILABLE"
            assert "give the stub numpy < 2" in caught.value.message()
        with pytest.raises(ScorerUnavailableError, match="TERSIFY_STUB_SITE_PACKAGES"):
            remote.run(state.grpc_url, SEED.read_bytes())
    finally:
        server.stop(tmp_path / "run")
