"""The PyTorch (CUDA) engine: what export writes for it, and that it agrees with ONNX on a CPU."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tersify.bundle import Bundle
from tersify.engines.onnx import OnnxScorer
from tersify.engines.torch_engine import (
    ENGINE_FILES,
    VARIANT,
    EngineOptions,
    TorchEngine,
    has_engine,
)
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


@pytest.mark.skipif(shutil.which("cc") is None, reason="inductor needs a C compiler on a CPU")
def test_compiled_decoder_agrees_with_eager(tiny_scorer_dir: Path) -> None:
    """torch.compile (inductor; on a CPU it needs a C compiler) changes no score."""
    eager = TorchEngine.load(tiny_scorer_dir, EngineOptions(device="cpu"))
    compiled = TorchEngine(eager.model, EngineOptions(device="cpu", compile=True))
    assert compiled.compiled, compiled.compile_error
    assert "compiled in" in compiled.describe()
    rng = np.random.default_rng(5)
    for shape in ((3, 40), (1, 7), (2, 64)):  # shapes the warm-up did not see
        ids = rng.integers(2, 500, size=shape)
        np.testing.assert_allclose(compiled.score(ids), eager.score(ids), atol=1e-4)


def test_a_failing_compile_leaves_the_engine_eager(
    tiny_scorer_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    def broken(module: object, **_: object) -> object:
        def run(**__: object) -> object:
            raise RuntimeError("no compiler here")

        return run

    monkeypatch.setattr(torch, "compile", broken)
    engine = TorchEngine.load(tiny_scorer_dir, EngineOptions(device="cpu", compile=True))
    assert not engine.compiled
    assert engine.compile_error == "RuntimeError: no compiler here"
    assert "not compiled (RuntimeError: no compiler here)" in engine.describe()
    ids = np.random.default_rng(6).integers(2, 500, size=(2, 30))
    plain = TorchEngine(engine.model, EngineOptions(device="cpu"))
    np.testing.assert_allclose(engine.score(ids), plain.score(ids), atol=1e-6)


@pytest.mark.skipif(shutil.which("cc") is None, reason="inductor needs a C compiler on a CPU")
def test_triton_serves_the_compiled_engine(tiny_scorer_dir: Path, tmp_path: Path) -> None:
    """The python backend's stub opens files as ASCII unless the backend sets the locale:
    torch.compile's UTF-8 templates then fail to load. Served compiled, scores agree."""
    from tersify.client.triton import TritonScorer, TritonTarget
    from tersify.triton import server
    from tersify.triton.config import ScorerConfig

    config = ScorerConfig(form="python", engine="torch", engine_compile=True, cuda_graphs=False)
    state = server.start(Bundle.open(tiny_scorer_dir), tmp_path, scorer=config)
    try:
        log = (tmp_path / "tritonserver.log").read_text(errors="replace")
        assert "torch engine on cpu in torch.float32, full head, compiled in" in log, log[-3000:]
        client = TritonScorer(TritonTarget.parse(state.grpc_url), Bundle.open(tiny_scorer_dir))
        windows = [np.arange(2, n, dtype=np.int64) for n in (10, 70, 300)]
        want = OnnxScorer(Bundle.open(tiny_scorer_dir)).logprobs(windows)
        for got, expected in zip(client.logprobs(windows), want, strict=True):
            np.testing.assert_allclose(got, expected, atol=1e-3)
        client.close()
    finally:
        server.stop(tmp_path)
