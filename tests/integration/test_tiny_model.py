"""The real export and in-process scorer path, on a tiny random model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tersify import Compressor, ScorerUnavailableError, TokenFilter, WindowPlan
from tersify.bundle import Bundle, file_sha256
from tersify.client import open_scorer
from tersify.export import graph
from tersify.selection import Selection

from answers import check_properties, check_tiling
from texts import KINDS, sample_text


def test_manifest_describes_the_export(tiny_scorer_dir: Path) -> None:
    bundle = Bundle.open(tiny_scorer_dir)
    manifest = bundle.manifest
    assert manifest.name == "tiny-llama"
    assert manifest.vocab_size == 600
    assert manifest.max_positions == 1024
    assert manifest.bos_token_id == 0
    assert set(manifest.model_files) == {"fp32", "int8", "torch"}  # torch: the CUDA engine
    for name, digest in manifest.sha256.items():
        assert file_sha256(tiny_scorer_dir / name) == digest
    assert manifest.verification["fp32_max_abs_diff"] <= 1e-3


def test_onnx_agrees_with_pytorch_on_english_chinese_and_code(
    tiny_model_dir: Path, tiny_scorer_dir: Path
) -> None:
    from tersify.export.models import ModelSource, load

    model, tokenizer = load(ModelSource("tiny", str(tiny_model_dir)))
    module = graph.logprob_module(model)
    windows = [
        np.asarray([0, *tokenizer.encode(t, add_special_tokens=False)], dtype=np.int64)
        for t in graph.SAMPLES
    ]
    reference = graph.torch_logprobs(module, windows)
    scorer = open_scorer(tiny_scorer_dir)
    got = scorer.logprobs(windows)  # batched and right-padded by the scorer
    assert graph.max_difference(reference, got) <= 1e-3
    assert all(row[0] == 0 and (row[1:] < 0).all() for row in got)


def test_padding_never_changes_a_score(tiny_scorer_dir: Path) -> None:
    scorer = open_scorer(tiny_scorer_dir)
    short = np.arange(2, 30, dtype=np.int64)
    alone = scorer.logprobs([short])[0]
    padded = scorer.logprobs([short, np.arange(2, 300, dtype=np.int64)])[0]
    np.testing.assert_allclose(alone, padded, atol=1e-5)


def test_chinese_units_never_split(tiny_compressor: Compressor) -> None:
    scorer = tiny_compressor.scorer
    text = "我们制作了一个Project Page，来展示现实场景中压缩的cases"
    tokens = scorer.tokenize(text)
    assert len(tokens.ids) > len(text) // 2  # byte tokens present
    long = text * 20
    # tokens that share a character (byte tokens of one Chinese character) share a unit
    selection = Selection(scorer, WindowPlan(), len, [long], "", TokenFilter())
    check_tiling(long, selection.tokens[0].offsets, selection.units(0))
    result = tiny_compressor.compress([long], rate=0.3)
    check_properties(result, [long], "")


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    kind=st.sampled_from(KINDS),
    # The tiny tokenizer splits Chinese into ~1.7 byte tokens a character: 30,000 stays
    # under the default 65,536 scorer tokens a request may make (38,934 made 65,537).
    n_chars=st.integers(600, 30_000),
    seed=st.integers(0, 1000),
    rate=st.floats(0.1, 0.9),
)
def test_real_scorer_lands_on_budget(
    tiny_compressor: Compressor, kind: str, n_chars: int, seed: int, rate: float
) -> None:
    text = sample_text(kind, n_chars, seed)
    question = "Which part matters?"
    result = tiny_compressor.compress([text], question=question, rate=rate)
    check_properties(result, [text], question)
    assert abs(result.rate - rate) <= 0.02 or result.target_tokens - result.compressed_tokens <= 3


def test_int8_variant_opens(tiny_scorer_dir: Path) -> None:
    scorer = open_scorer(tiny_scorer_dir, variant="int8")
    assert scorer.logprobs([np.arange(2, 40, dtype=np.int64)])[0].shape == (38,)


def test_incomplete_scorer_is_refused(tiny_scorer_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text((tiny_scorer_dir / "manifest.json").read_text())
    with pytest.raises(ScorerUnavailableError, match="incomplete"):
        open_scorer(broken)
    manifest = json.loads((tiny_scorer_dir / "manifest.json").read_text())
    manifest["format_version"] = 99
    (broken / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ScorerUnavailableError, match="format"):
        open_scorer(broken)
