"""``tersify_compress``'s committed configuration and its parameters, without a server.

A whole compression inside a real tritonserver, over BLS:
tests/integration/test_triton_compress.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from tersify import BadRequestError
from tersify.triton.backends import model_file
from tersify.triton.compress_config import (
    COMPRESS_MODEL,
    DEFAULT_CACHE_BYTES,
    CompressConfig,
    cache_bytes_parameter,
)

ROOT = Path(__file__).resolve().parents[2]


def test_committed_configuration_is_the_generator_s() -> None:
    for form in ("onnxruntime", "python"):
        folder = ROOT / "model_repository" / form / COMPRESS_MODEL
        assert (folder / "config.pbtxt").read_text() == CompressConfig(form=form).render()
        assert (folder / "1" / "model.py").read_text() == model_file(COMPRESS_MODEL), (
            "regenerate it: tersify triton repo"
        )
        config = text_format.Parse(
            (folder / "config.pbtxt").read_text(), model_config_pb2.ModelConfig()
        )
        assert config.backend == "python"
        assert [(i.name, i.data_type, list(i.dims)) for i in config.input] == [
            ("REQUEST", model_config_pb2.TYPE_STRING, [1])
        ]
        assert [o.data_type for o in config.output] == [
            model_config_pb2.TYPE_STRING,
            model_config_pb2.TYPE_INT64,
            model_config_pb2.TYPE_INT64,
        ]
        assert [o.name for o in config.output] == [
            "RESPONSE",
            "ORIGIN_TOKENS",
            "COMPRESSED_TOKENS",
        ]


def test_cache_bytes_parameter_is_checked() -> None:
    assert cache_bytes_parameter("") == DEFAULT_CACHE_BYTES  # a config from before it
    assert cache_bytes_parameter("0") == 0
    assert cache_bytes_parameter(" 1048576 ") == 1048576
    for bad in ("-1", "64MiB", "1e6", "1.5", "\u00b2", "off"):
        with pytest.raises(BadRequestError, match=r"cache_bytes=.*whole number of bytes >= 0"):
            cache_bytes_parameter(bad)
    with pytest.raises(BadRequestError, match="cache_bytes=-1 must be a non-negative integer"):
        CompressConfig(form="python", cache_bytes=-1)
    assert CompressConfig(form="python").parameters()["cache_bytes"] == str(DEFAULT_CACHE_BYTES)
