"""The committed model repository is what the generator writes, and both forms agree."""

from __future__ import annotations

from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from tersify.client.triton_config import BACKEND_FILE, FORMS, ScorerConfig, write_repository

ROOT = Path(__file__).resolve().parent.parent
REPO = ROOT / "model_repository"


def _parse(path: Path):  # type: ignore[no-untyped-def]
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def test_committed_repository_matches_the_generator(tmp_path: Path) -> None:
    for written in write_repository(tmp_path):
        committed = REPO / written.relative_to(tmp_path)
        assert committed.read_text() == written.read_text(), (
            f"regenerate {committed}: tersify triton repo"
        )
    assert (
        REPO / "python" / "tersify_scorer" / "1" / "model.py"
    ).read_text() == BACKEND_FILE.read_text()


def test_both_forms_parse_and_agree() -> None:
    onnx = _parse(REPO / "onnxruntime" / "tersify_scorer" / "config.pbtxt")
    python = _parse(REPO / "python" / "tersify_scorer" / "config.pbtxt")
    assert (onnx.backend, python.backend) == ("onnxruntime", "python")
    for field in (
        "name",
        "max_batch_size",
        "input",
        "output",
        "dynamic_batching",
        "parameters",
        "model_warmup",
    ):
        assert getattr(onnx, field) == getattr(python, field), field
    assert onnx.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert python.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    assert (
        onnx.input[0].name == "input_ids" and onnx.input[0].data_type == model_config_pb2.TYPE_INT64
    )
    assert (
        onnx.output[0].name == "token_logprobs"
        and onnx.output[0].data_type == model_config_pb2.TYPE_FP32
    )
    assert list(onnx.dynamic_batching.preferred_batch_size) == [4, 8, 16]
    assert onnx.dynamic_batching.max_queue_delay_microseconds > 0


def test_tensorrt_fp16_option_parses() -> None:
    config = text_format.Parse(
        ScorerConfig(form="onnxruntime", tensorrt_fp16=True).render(),
        model_config_pb2.ModelConfig(),
    )
    accelerator = config.optimization.execution_accelerators.gpu_execution_accelerator[0]
    assert accelerator.name == "tensorrt"
    assert accelerator.parameters["precision_mode"] == "FP16"


def test_forms_are_the_two_backends() -> None:
    assert FORMS == ("onnxruntime", "python")


def test_scorer_urls_parse_or_name_the_problem() -> None:
    import pytest

    from tersify import BadRequestError
    from tersify.client.triton import TritonTarget

    target = TritonTarget.parse("grpc://127.0.0.1:8001?scorer=smollm2-135m&timeout=300")
    assert (target.address, target.model, target.scorer, target.timeout_s) == (
        "127.0.0.1:8001",
        "tersify_scorer",
        "smollm2-135m",
        300.0,
    )
    for bad, words in [
        ("grpc://127.0.0.1", "grpc://HOST:PORT"),
        ("http://127.0.0.1:8000", "grpc://HOST:PORT"),
        ("grpc://127.0.0.1:8001?timeout=soon", "timeout"),
        ("grpc://127.0.0.1:8001?timeout=0", "timeout"),
        ("grpc://127.0.0.1:8001?colour=red", "colour"),
    ]:
        with pytest.raises(BadRequestError, match=words):
            TritonTarget.parse(bad)
