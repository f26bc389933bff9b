"""The PyTorch (CUDA) engine: what export writes for it, and that it agrees with ONNX on a CPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from tersify.bundle import Bundle
from tersify.client.onnx import OnnxScorer
from tersify.client.torch_engine import (
    ENGINE_FILES,
    VARIANT,
    EngineOptions,
    TorchEngine,
    has_engine,
)
from tersify.errors import ScorerUnavailableError
from tersify.export import torch_engine as exported

from texts import sample_text


def test_export_writes_the_engine_hashed_in_the_manifest(tiny_scorer_dir: Path) -> None:
    assert (exported.VARIANT, (exported.CONFIG_FILE, exported.WEIGHTS_FILE)) == (
        VARIANT,
        ENGINE_FILES,
    )
    bundle = Bundle.open(tiny_scorer_dir)
    assert bundle.manifest.model_files[VARIANT] == "model.safetensors"
    for name in ENGINE_FILES:
        assert name in bundle.manifest.sha256
    assert bundle.manifest.verification["torch_max_abs_diff"] <= 1e-3
    assert has_engine(tiny_scorer_dir)


@pytest.mark.parametrize("kind", ["english", "mixed", "code"])
def test_engine_agrees_with_the_onnx_graph_in_fp32(tiny_scorer_dir: Path, kind: str) -> None:
    onnx = OnnxScorer(Bundle.open(tiny_scorer_dir))
    engine = TorchEngine.load(tiny_scorer_dir, EngineOptions(device="cpu"))
    assert engine.dtype.is_floating_point and str(engine.dtype) == "torch.float32"
    rng = np.random.default_rng(len(kind))
    text = sample_text(kind, 1500, int(rng.integers(1000)))
    ids = onnx.tokenize(text).ids
    windows = [ids[:300], ids[300:420], ids[:7]]
    expected = onnx.logprobs(windows)
    width = max(len(w) for w in windows)
    batch = np.zeros((len(windows), width), dtype=np.int64)
    for row, window in enumerate(windows):
        batch[row, : len(window)] = window
    got = engine.score(batch)
    assert got.shape == batch.shape and got.dtype == np.float32
    for row, (window, want) in enumerate(zip(windows, expected, strict=True)):
        assert got[row, 0] == 0.0
        np.testing.assert_allclose(got[row, : len(window)], want, atol=1e-3)
    # Padding never changes a real token's score: one window alone scores the same.
    alone = engine.score(windows[2][None, :])
    np.testing.assert_allclose(alone[0], got[2, : len(windows[2])], atol=1e-5)


def test_chunked_log_softmax_matches_one_chunk(tiny_scorer_dir: Path) -> None:
    ids = np.random.default_rng(3).integers(0, 500, size=(2, 40))
    whole = TorchEngine.load(tiny_scorer_dir, EngineOptions(device="cpu", rows_per_chunk=1000))
    chunked = TorchEngine(whole.model, EngineOptions(device="cpu", rows_per_chunk=3))
    np.testing.assert_allclose(whole.score(ids), chunked.score(ids), atol=1e-6)


def test_options_from_triton_parameters_and_bad_values() -> None:
    options = EngineOptions.from_parameters(
        {"engine_dtype": "float16", "engine_batch_sizes": "1,2,8", "engine_cuda_graphs": "false"}
    )
    assert (options.dtype, options.batch_sizes, options.cuda_graphs) == (
        "float16",
        (1, 2, 8),
        False,
    )
    with pytest.raises(ScorerUnavailableError, match="dtype"):
        EngineOptions(dtype="int4")  # type: ignore[arg-type]
    with pytest.raises(ScorerUnavailableError, match="lengths"):
        EngineOptions(lengths=(0,))


def test_missing_engine_files_say_how_to_fix(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({}))
    assert not has_engine(tmp_path)
    with pytest.raises(ScorerUnavailableError, match="tersify export"):
        TorchEngine.load(tmp_path)
