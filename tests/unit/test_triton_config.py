"""The committed model repository is what the generator writes, and both forms agree."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from tersify.errors import BadRequestError
from tersify.triton.config import FORMS, ScorerConfig, write_repository

ROOT = Path(__file__).resolve().parents[2]
REPO = ROOT / "model_repository"


def _parse(path: Path):  # type: ignore[no-untyped-def]
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def test_committed_repository_matches_the_generator(tmp_path: Path) -> None:
    for written in write_repository(tmp_path):
        committed = REPO / written.relative_to(tmp_path)
        assert committed.read_text() == written.read_text(), (
            f"regenerate {committed}: tersify triton repo"
        )


def test_model_files_are_a_few_lines_that_import_the_installed_backend() -> None:
    files = sorted(REPO.rglob("*.py"))
    assert len(files) == 4, files  # scorer, ranker, compress (python form); compress (onnxruntime)
    for path in files:
        lines = path.read_text().splitlines()
        assert len(lines) <= 20, f"{path}: {len(lines)} lines; the backend belongs in the package"
        model = path.parent.parent.name
        module = model.removeprefix("tersify_")
        assert lines[-1] == f"from tersify.triton.backends.{module} import TritonPythonModel"


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
        "model_warmup",
    ):
        assert getattr(onnx, field) == getattr(python, field), field
    assert (
        onnx.parameters["padded_lengths"].string_value
        == python.parameters["padded_lengths"].string_value
        == "64,128,256,512"
    )
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


def test_onnxruntime_form_runs_tensorrt_fp16_with_cache_graphs_and_a_profile_per_bucket() -> None:
    config = _parse(REPO / "onnxruntime" / "tersify_scorer" / "config.pbtxt")
    (accelerator,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert accelerator.name == "tensorrt"
    trt = accelerator.parameters
    assert trt["precision_mode"] == "FP16"
    assert trt["trt_engine_cache_enable"] == "1" and trt["trt_engine_cache_path"]
    assert trt["trt_cuda_graph_enable"] == "1"
    lengths = config.parameters["padded_lengths"].string_value.split(",")
    batch = config.max_batch_size
    for key, rows in (
        ("min", 1),
        ("opt", max(config.dynamic_batching.preferred_batch_size)),
        ("max", batch),
    ):
        profiles = trt[f"trt_profile_{key}_shapes"].split(",")
        assert profiles == [f"input_ids:{rows}x{n}" for n in lengths], key
    plain = text_format.Parse(
        ScorerConfig(form="onnxruntime", tensorrt_fp16=False).render(),
        model_config_pb2.ModelConfig(),
    )
    assert not plain.HasField("optimization")


def test_python_form_carries_the_cuda_engine_settings() -> None:
    from tersify.engines.torch_engine import EngineOptions

    config = _parse(REPO / "python" / "tersify_scorer" / "config.pbtxt")
    parameters = {k: v.string_value for k, v in config.parameters.items()}
    assert parameters["engine"] == "auto"
    options = EngineOptions.from_parameters(parameters)
    assert options.cuda_graphs and options.dtype == "auto"
    # a graph for every batch the batcher may form at a preferred size, and every length
    assert set(config.dynamic_batching.preferred_batch_size) <= set(options.batch_sizes)
    assert max(options.batch_sizes) == config.max_batch_size
    assert options.lengths == tuple(int(n) for n in parameters["padded_lengths"].split(","))
    assert not config.HasField("optimization")


def test_engine_settings_are_checked_when_the_config_is_made() -> None:
    with pytest.raises(BadRequestError, match="engine_head='half'"):
        ScorerConfig(form="python", engine_head="half")
    with pytest.raises(BadRequestError, match="engine='tensorrt'"):
        ScorerConfig(form="python", engine="tensorrt")


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


def test_the_production_form_serves_the_shortlist_graph_on_the_device_asked(
    tmp_path: Path,
) -> None:
    onnx = _parse(REPO / "onnxruntime" / "tersify_scorer" / "config.pbtxt")
    assert onnx.default_model_filename == "model.shortlist.onnx"  # the embedded default's graph
    assert [g.kind for g in onnx.instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_GPU]
    full = ScorerConfig(form="onnxruntime", graph="fp32").render()
    assert 'default_model_filename: "model.onnx"' in full
    with pytest.raises(BadRequestError, match="graph="):
        ScorerConfig(form="onnxruntime", graph="int8")
    for device, kind, tensorrt in (("cpu", "KIND_CPU", False), ("auto", "KIND_AUTO", True)):
        write_repository(tmp_path / device, device=device)
        for model in ("tersify_scorer", "tersify_ranker"):
            text = (tmp_path / device / "onnxruntime" / model / "config.pbtxt").read_text()
            assert f"kind: {kind}" in text
            assert ("tensorrt" in text) is tensorrt
    with pytest.raises(BadRequestError, match="device="):
        ScorerConfig(form="onnxruntime", device="tpu").render()
