"""``tersify_ranker``: the ranker as a Triton model, over gRPC and through BLS."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tersify import Compressor, ScorerUnavailableError
from tersify.cli import main
from tersify.client import Bundle
from tersify.client.ranker import open_ranker
from tersify.client.triton import RetryPolicy
from tersify.client.triton_models import RANKER_MODEL, ranker_requests
from tersify.client.triton_ranker import TritonRanker, ranker_target
from tersify.engines.ranker import OnnxRanker, RankerTokenizer
from tersify.triton import server
from tersify.triton.compress_config import COMPRESS_MODEL
from tersify.triton.config import write_repository

from answers import check_properties
from texts import sample_text

QUESTION = "When did the harbour bridge of Vellmar open to traffic?"
ANSWER = "The harbour bridge of Vellmar opened to traffic on 14 March 1932."


def _documents(gold: int, n: int = 6) -> list[str]:
    docs = [sample_text("english", 500, seed) for seed in range(n)]
    docs[(gold + 1) % n] = "The harbour of Vellmar is deep. " + docs[(gold + 1) % n]
    docs[gold] = docs[gold][:200] + " " + ANSWER + " " + docs[gold][200:]
    return docs


# The exported ranker: in a repository, in process, and a server without it.


@pytest.fixture(scope="module")
def ranker_dir() -> Path:
    """The default ranker, exported once under TERSIFY_HOME."""
    from tersify.export.ranker import export_ranker

    return export_ranker(skip_existing=True)


def test_repository_places_the_ranker_or_leaves_it_out(
    tiny_scorer_dir: Path, ranker_dir: Path, tmp_path: Path
) -> None:
    scorer, ranker = Bundle.open(tiny_scorer_dir), Bundle.open(ranker_dir)
    with_ranker = write_repository(tmp_path / "a", bundle=scorer, ranker=ranker)
    for form in ("onnxruntime", "python"):
        version = tmp_path / "a" / form / RANKER_MODEL / "1"
        assert {version / "ranker.onnx", version / "manifest.json"} <= set(with_ranker)
        compress = (tmp_path / "a" / form / COMPRESS_MODEL / "config.pbtxt").read_text()
        assert f'"ranker" value: {{ string_value: "{ranker_dir}" }}' in compress
    without = write_repository(tmp_path / "b", bundle=scorer)
    assert not any(RANKER_MODEL in str(path) for path in without)
    compress = (tmp_path / "b" / "python" / COMPRESS_MODEL / "config.pbtxt").read_text()
    assert '{ key: "ranker_model" value: { string_value: "" } }' in compress


def test_cli_repo_says_when_no_ranker_is_exported(
    tiny_scorer_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TERSIFY_HOME", str(tmp_path / "home"))
    out = tmp_path / "repo"
    assert main(["triton", "repo", "--out", str(out), "--scorer", str(tiny_scorer_dir)]) == 0
    err = capsys.readouterr().err
    assert "no ranker exported" in err and "tersify export --model all-minilm-l6-v2" in err
    assert not (out / "python" / RANKER_MODEL).exists()
    assert (out / "python" / "tersify_scorer" / "1" / "manifest.json").exists()


def test_no_server_is_one_clear_error(ranker_dir: Path) -> None:
    ranker = TritonRanker(
        ranker_target("grpc://127.0.0.1:9"),
        Bundle.open(ranker_dir),
        retry=RetryPolicy(timeout_s=2.0, retry_for_s=0.5),
    )
    with pytest.raises(ScorerUnavailableError, match="does it serve the ranker"):
        ranker.embed(["a text"])
    assert not ranker.is_ready()
    ranker.close()


# The real bundled tritonserver.


@pytest.fixture(scope="module")
def triton_ranker(ranker_dir: Path) -> Bundle:
    """``triton`` (tests/integration/conftest.py) serves the exported ranker here."""
    return Bundle.open(ranker_dir)


def _client(state: server.ServerState) -> grpcclient.InferenceServerClient:
    return grpcclient.InferenceServerClient(state.grpc_url.removeprefix("grpc://"))


def _texts() -> list[str]:
    # Short and long (past the ranker's 256 tokens: truncated), and more than one request.
    texts = [sample_text("english", n, seed) for seed, n in enumerate((5, 80, 300, 1500) * 25)]
    return [QUESTION, "", *texts, ANSWER]


def test_embeddings_match_the_in_process_ranker(
    triton: server.ServerState, ranker_dir: Path
) -> None:
    remote = open_ranker(f"{triton.grpc_url}?ranker={ranker_dir}")
    assert isinstance(remote, TritonRanker) and remote.is_ready()
    texts = _texts()
    got = remote.embed(texts)
    want = OnnxRanker(Bundle.open(ranker_dir)).embed(texts)
    assert got.shape == want.shape == (len(texts), 384) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    assert remote.name == "all-minilm-l6-v2"
    assert remote.embed([]).shape == (0, 384)


def test_a_remote_compressor_ranks_over_grpc_as_the_embedded_one_does(
    triton: server.ServerState, tiny_scorer_dir: Path, ranker_dir: Path
) -> None:
    docs = _documents(gold=3)
    remote = Compressor(f"{triton.grpc_url}?scorer={tiny_scorer_dir}&ranker={ranker_dir}")
    embedded = Compressor(str(tiny_scorer_dir), ranker=str(ranker_dir))
    assert isinstance(remote.ranker(), TritonRanker)
    before = _client(triton).get_inference_statistics(RANKER_MODEL).model_stats[0]
    for rate in (0.25, 0.1):
        got = remote.compress(docs, question=QUESTION, rate=rate)
        want = embedded.compress(docs, question=QUESTION, rate=rate)
        assert got.mode == want.mode == "question-aware"
        assert got.compressed_prompt == want.compressed_prompt
        assert got.context_order == want.context_order
        check_properties(got, docs, QUESTION)
    after = _client(triton).get_inference_statistics(RANKER_MODEL).model_stats[0]
    assert after.inference_count > before.inference_count


def _infer(state: server.ServerState, raw: bytes) -> bytes:
    tensor = grpcclient.InferInput("REQUEST", [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[raw]], dtype=np.object_))
    result = _client(state).infer(COMPRESS_MODEL, [tensor])
    return bytes(result.as_numpy("RESPONSE")[0, 0])


def test_tersify_compress_answers_a_question_aware_request(
    triton: server.ServerState,
    tiny_scorer_dir: Path,
    ranker_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    raw = json.dumps({"context": _documents(gold=1), "question": QUESTION, "rate": 0.2}).encode()
    client = _client(triton)
    before = client.get_inference_statistics(RANKER_MODEL).model_stats[0].inference_count
    answer = _infer(triton, raw)
    after = client.get_inference_statistics(RANKER_MODEL).model_stats[0].inference_count
    data = json.loads(answer)["data"]
    assert data["mode"] == "question-aware" and ANSWER in data["compressed_prompt"]
    assert after > before  # ranked by tersify_ranker, through BLS
    # Byte for byte what `tersify compress` prints with the same scorer and ranker.
    monkeypatch.setenv("TERSIFY_RANKER", str(ranker_dir))
    path = tmp_path / "request.json"
    path.write_bytes(raw)
    capsys.readouterr()
    assert main(["compress", str(path), "--scorer", str(tiny_scorer_dir)]) == 0
    assert capsys.readouterr().out.encode() == answer


def test_requests_of_many_callers_meet_in_the_ranker_batcher(
    triton: server.ServerState, ranker_dir: Path
) -> None:
    bundle = Bundle.open(ranker_dir)
    tokenizer = RankerTokenizer(bundle)
    texts = [sample_text("english", 200, seed) for seed in range(8)]
    (_, ids, mask), *_ = ranker_requests(
        tokenizer.encode(texts), lengths=(256,), max_batch=8, pad_id=tokenizer.pad_id
    )
    client = _client(triton)
    before = client.get_inference_statistics(RANKER_MODEL).model_stats[0]
    answers: list[np.ndarray] = []

    def send() -> None:
        inputs = []
        for name, array in (("input_ids", ids), ("attention_mask", mask)):
            tensor = grpcclient.InferInput(name, list(array.shape), "INT64")
            tensor.set_data_from_numpy(array)
            inputs.append(tensor)
        answers.append(_client(triton).infer(RANKER_MODEL, inputs).as_numpy("embeddings"))

    threads = [threading.Thread(target=send) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after = client.get_inference_statistics(RANKER_MODEL).model_stats[0]
    assert len(answers) == 12
    for answer in answers:
        np.testing.assert_allclose(answer, answers[0], atol=1e-5)
    assert after.execution_count - before.execution_count < 12  # merged executions


def test_a_bad_ranker_request_fails_alone(triton: server.ServerState) -> None:
    ids = np.zeros((1, 300), dtype=np.int64)  # past the ranker's 256 positions
    inputs = []
    for name in ("input_ids", "attention_mask"):
        tensor = grpcclient.InferInput(name, [1, 300], "INT64")
        tensor.set_data_from_numpy(ids)
        inputs.append(tensor)
    with pytest.raises(InferenceServerException, match="256"):
        _client(triton).infer(RANKER_MODEL, inputs)


def test_a_server_without_a_ranker_refuses_question_aware_with_the_fix(
    tiny_scorer_dir: Path, ranker_dir: Path, tmp_path: Path
) -> None:
    state = server.start(Bundle.open(tiny_scorer_dir), tmp_path, ranker=None)
    try:
        assert state.ranker == "" and server.is_ready(state)
        docs = _documents(gold=2)
        with pytest.raises(InferenceServerException, match="no ranker") as caught:
            _infer(state, json.dumps({"context": docs, "question": QUESTION}).encode())
        assert "tersify export --model all-minilm-l6-v2" in caught.value.message()
        token = json.dumps({"context": docs, "question": QUESTION, "mode": "token"}).encode()
        assert json.loads(_infer(state, token))["data"]["mode"] == "token"
        remote = TritonRanker(
            ranker_target(state.grpc_url),
            Bundle.open(ranker_dir),
            retry=RetryPolicy(retry_for_s=0.5),
        )
        with pytest.raises(ScorerUnavailableError, match="does it serve the ranker"):
            remote.embed(["a text"])
    finally:
        server.stop(tmp_path)
