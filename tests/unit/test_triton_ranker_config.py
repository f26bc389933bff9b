"""``tersify_ranker``'s configuration and requests, without a server.

The ranker as a Triton model, over gRPC and through BLS: tests/integration/test_triton_ranker.py.
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from tersify import BadRequestError
from tersify.client.triton_models import RANKER_BATCHING, RANKER_MODEL, ranker_requests
from tersify.client.triton_ranker import ranker_target
from tersify.settings import Settings
from tersify.triton.backends import model_file
from tersify.triton.compress_config import CompressConfig
from tersify.triton.config import RankerConfig

ROOT = Path(__file__).resolve().parents[2]
REPO = ROOT / "model_repository"


def test_docstring_examples() -> None:
    for name in ("tersify.client.triton_ranker", "tersify.client.triton_models"):
        result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0, name


def test_ranker_urls_name_the_ranker_model_and_the_local_export() -> None:
    settings = Settings(home=Path("/nowhere"), default_ranker="mini")
    target = ranker_target("grpc://127.0.0.1:8001", settings=settings)
    assert (target.address, target.model, target.ranker, target.scorer) == (
        "127.0.0.1:8001",
        RANKER_MODEL,
        "mini",
        "mini",
    )
    # A scorer URL's path and scorer= are the scorer's; timeout= is both's.
    url = "grpc://h:9/tersify_scorer?scorer=smollm2-135m&ranker=other&timeout=5"
    target = ranker_target(url, settings=settings)
    assert (target.model, target.ranker, target.timeout_s) == (RANKER_MODEL, "other", 5.0)
    assert ranker_target("grpc://h:9").ranker == Settings.from_env().default_ranker
    for bad in ("http://h:9", "grpc://h", "grpc://h:9?rankr=x", "grpc://h:9?timeout=-1"):
        with pytest.raises(BadRequestError, match="scorer="):
            ranker_target(bad)


def test_ranker_requests_pad_to_the_lengths_and_split_at_max_batch() -> None:
    rng = np.random.default_rng(0)
    encoded = [rng.integers(1, 1000, size=n) for n in (3, 40, 31, 32, 300, 1, 64, 65) * 5]
    requests = ranker_requests(encoded, lengths=(32, 64, 128), max_batch=7, pad_id=0)
    seen: list[int] = []
    for indices, ids, mask in requests:
        assert ids.shape == mask.shape and ids.dtype == mask.dtype == np.int64
        assert 1 <= len(indices) <= 7 and ids.shape[0] == len(indices)
        for row, index in enumerate(indices):
            n = len(encoded[index])
            want = next((m for m in (32, 64, 128) if m >= n), n)
            assert ids.shape[1] == want
            assert ids[row, :n].tolist() == encoded[index].tolist()
            assert mask[row].tolist() == [1] * n + [0] * (want - n)
            assert not ids[row, n:].any()
        seen += indices
    assert sorted(seen) == list(range(len(encoded)))
    assert ranker_requests([], lengths=(32,), max_batch=4, pad_id=0) == []


def test_ranker_config_in_both_forms() -> None:
    onnx = text_format.Parse(
        (REPO / "onnxruntime" / RANKER_MODEL / "config.pbtxt").read_text(),
        model_config_pb2.ModelConfig(),
    )
    python = text_format.Parse(
        (REPO / "python" / RANKER_MODEL / "config.pbtxt").read_text(),
        model_config_pb2.ModelConfig(),
    )
    assert (onnx.backend, python.backend) == ("onnxruntime", "python")
    assert onnx.default_model_filename == "ranker.onnx"
    for field in ("name", "max_batch_size", "input", "output", "dynamic_batching", "model_warmup"):
        assert getattr(onnx, field) == getattr(python, field), field
    assert [(i.name, i.data_type) for i in onnx.input] == [
        ("input_ids", model_config_pb2.TYPE_INT64),
        ("attention_mask", model_config_pb2.TYPE_INT64),
    ]
    assert [(o.name, o.data_type) for o in onnx.output] == [
        ("embeddings", model_config_pb2.TYPE_FP32)
    ]
    assert onnx.max_batch_size == RANKER_BATCHING.max_batch_size
    assert list(onnx.dynamic_batching.preferred_batch_size) == [16, 32, 64]
    assert python.parameters["padded_lengths"].string_value == "32,64,128,256"
    trt = onnx.optimization.execution_accelerators.gpu_execution_accelerator[0].parameters
    profiles = trt["trt_profile_max_shapes"].split(",")
    assert len(profiles) == 2 * len(RANKER_BATCHING.padded_lengths)
    assert "input_ids:64x256" in profiles and "attention_mask:64x256" in profiles
    assert (REPO / "python" / RANKER_MODEL / "1" / "model.py").read_text() == model_file(
        RANKER_MODEL
    )
    assert RankerConfig(form="onnxruntime", tensorrt_fp16=False).render().count("tensorrt") == 0


def test_compress_config_carries_the_ranker() -> None:
    parameters = CompressConfig(form="python").parameters()
    assert parameters["ranker_model"] == RANKER_MODEL
    assert parameters["ranker_padded_lengths"] == "32,64,128,256"
    assert parameters["ranker_max_batch_size"] == "64"
