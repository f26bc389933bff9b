"""The PyTorch (CUDA) engine's options and its refusal of a folder without engine files.

What export writes for it, and that it agrees with ONNX on a CPU:
tests/integration/test_torch_engine.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tersify.engines.torch_engine import (
    EngineOptions,
    TorchEngine,
    has_engine,
)
from tersify.errors import ScorerUnavailableError


def test_options_from_triton_parameters_and_bad_values() -> None:
    options = EngineOptions.from_parameters(
        {
            "engine_dtype": "float16",
            "engine_batch_sizes": "1,2,8",
            "engine_cuda_graphs": "false",
            "engine_head": "full",
            "engine_compile": "true",
        }
    )
    assert (options.dtype, options.batch_sizes, options.cuda_graphs) == (
        "float16",
        (1, 2, 8),
        False,
    )
    assert (options.head, options.compile) == ("full", True)
    assert EngineOptions.from_parameters({}) == EngineOptions()
    with pytest.raises(ScorerUnavailableError, match="dtype"):
        EngineOptions(dtype="int4")  # type: ignore[arg-type]
    with pytest.raises(ScorerUnavailableError, match="lengths"):
        EngineOptions(lengths=(0,))


def test_missing_engine_files_say_how_to_fix(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({}))
    assert not has_engine(tmp_path)
    with pytest.raises(ScorerUnavailableError, match="tersify export"):
        TorchEngine.load(tmp_path)
