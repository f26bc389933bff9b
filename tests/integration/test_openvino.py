"""The openvino variant: exported, checked against fp32, same log-probs and same kept units."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tersify import Compressor
from tersify.bundle import Bundle
from tersify.engines.onnx import OnnxScorer
from tersify.engines.openvino import OpenVinoScorer
from tersify.errors import ExportError, ScorerUnavailableError
from tersify.export import openvino as ov_variant

from texts import sample_text


@pytest.fixture(scope="module")
def ov_scorer_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tersify.export import export_scorer

    return export_scorer(
        str(tiny_model_dir), tmp_path_factory.mktemp("ov") / "tiny", openvino=True, shortlist=False
    )


def test_export_records_the_checked_variant(ov_scorer_dir: Path) -> None:
    manifest = Bundle.open(ov_scorer_dir).manifest
    assert manifest.model_files["openvino"] == ov_variant.GRAPH_FILE
    assert ov_variant.GRAPH_FILE in manifest.sha256
    assert manifest.verification["openvino_max_abs_diff"] <= 1e-3
    assert manifest.verification["openvino_unit_agreement"] >= ov_variant.AGREEMENT_BAR


def test_openvino_gives_the_fp32_log_probs_in_batches(ov_scorer_dir: Path) -> None:
    bundle = Bundle.open(ov_scorer_dir)
    fp32, ov = OnnxScorer(bundle), OpenVinoScorer(bundle)
    rng = np.random.default_rng(0)
    windows = [rng.integers(2, 500, size=n).astype(np.int64) for n in (40, 7, 300, 300, 1)]
    for a, b in zip(fp32.logprobs(windows), ov.logprobs(windows), strict=True):
        assert a.shape == b.shape
        assert np.max(np.abs(a - b), initial=0.0) < 1e-3
    assert fp32.fingerprint != ov.fingerprint  # their rows are cached apart


def test_openvino_compresses_like_fp32(ov_scorer_dir: Path) -> None:
    bundle = Bundle.open(ov_scorer_dir)
    text = sample_text("mixed", 3000, 5)
    for rate in (0.25, 0.5):
        a = Compressor(OnnxScorer(bundle), cache=False).compress([text], rate=rate)
        b = Compressor(OpenVinoScorer(bundle), cache=False).compress([text], rate=rate)
        assert a.compressed_prompt == b.compressed_prompt


def test_a_disagreeing_engine_is_refused(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tersify.export import export_scorer

    real = ov_variant.openvino_logprobs

    def off_by_a_nat(path: Path, windows: list[np.ndarray]) -> list[np.ndarray]:
        return [row - 1.0 * (np.arange(len(row)) % 2) for row in real(path, windows)]

    monkeypatch.setattr(ov_variant, "openvino_logprobs", off_by_a_nat)
    with pytest.raises(ExportError, match="OpenVINO disagrees"):
        export_scorer(str(tiny_model_dir), tmp_path / "refused", openvino=True, shortlist=False)
    assert not (tmp_path / "refused").exists()


def test_openvino_runs_when_asked_for(ov_scorer_dir: Path) -> None:
    from tersify.client import open_scorer

    # Not the default: it holds more memory at its peak than onnxruntime (README).
    assert isinstance(open_scorer(ov_scorer_dir), OnnxScorer)
    assert isinstance(open_scorer(ov_scorer_dir, variant="openvino"), OpenVinoScorer)
    assert isinstance(open_scorer(ov_scorer_dir, variant="fp32"), OnnxScorer)
    with pytest.raises(ScorerUnavailableError, match="has no 'openvino-int8' variant"):
        open_scorer(ov_scorer_dir, variant="openvino-int8")


def test_cli_variants_answer_alike(ov_scorer_dir: Path) -> None:
    import json
    import subprocess
    import sys

    request = json.dumps({"context": sample_text("mixed", 2000, 9), "rate": 0.4}).encode()
    answers = [
        subprocess.run(
            [
                sys.executable,
                "-m",
                "tersify.cli",
                "compress",
                "--scorer",
                str(ov_scorer_dir),
                *flags,
                "-",
            ],
            input=request,
            capture_output=True,
            check=True,
            timeout=600,
        ).stdout
        for flags in ([], ["--variant", "fp32"], ["--variant", "openvino"])
    ]
    assert answers[0] == answers[1] == answers[2]


def test_compressor_variant_argument(ov_scorer_dir: Path) -> None:
    assert isinstance(Compressor(str(ov_scorer_dir), variant="openvino").scorer, OpenVinoScorer)
    assert isinstance(Compressor(str(ov_scorer_dir), variant="fp32").scorer, OnnxScorer)
    assert isinstance(Compressor(str(ov_scorer_dir)).scorer, OnnxScorer)


def test_each_cpu_runs_the_precision_the_export_checked_for_it() -> None:
    from tersify.engines.openvino import pick_precision

    checked = {"openvino_shortlist_bf16_unit_agreement": 0.985}
    variant = "openvino-shortlist"
    assert pick_precision(variant, ["FP32", "BF16", "INT8"], checked) == "bf16"
    # A CPU without bf16 (AVX2 only, or AVX-512 with VNNI alone) runs f32: int8 weights or
    # activations were no faster there, and int8 activations lost the selection.
    assert pick_precision(variant, ["FP32", "INT8"], checked) == "f32"
    # bf16 that the export did not check, or that missed the bar, is never run.
    assert pick_precision(variant, ["FP32", "BF16"], {}) == "f32"
    low = {"openvino_shortlist_bf16_unit_agreement": 0.9}
    assert pick_precision(variant, ["FP32", "BF16"], low) == "f32"
    assert pick_precision("openvino", ["FP32", "BF16"], checked) == "f32"  # another variant's


def test_the_scorer_opens_in_the_precision_picked_for_this_cpu(ov_scorer_dir: Path) -> None:
    import openvino as ov

    from tersify.engines.openvino import pick_precision

    bundle = Bundle.open(ov_scorer_dir)
    capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    expected = pick_precision("openvino", capabilities, bundle.manifest.verification)
    picked = OpenVinoScorer(bundle, precision=expected)
    assert OpenVinoScorer(bundle).fingerprint == picked.fingerprint
    assert expected == "f32"  # this variant has no bf16 check in its manifest
