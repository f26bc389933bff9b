"""The exported ranker: checked at export, trusted only as a ranker, the same alone or batched."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tersify import Compressor
from tersify.bundle import MANIFEST_FILE, RANKER_KIND, Bundle
from tersify.client.ranker import open_ranker
from tersify.engines.ranker import OnnxRanker
from tersify.errors import ScorerUnavailableError
from tersify.export.ranker import export_ranker, is_ranker


@pytest.fixture(scope="module")
def ranker_folder() -> Path:
    """The default ranker, exported once under TERSIFY_HOME (as `make scorer` does)."""
    return export_ranker(skip_existing=True)


def test_the_export_is_a_checked_ranker(ranker_folder: Path) -> None:
    manifest = Bundle.open(ranker_folder).manifest
    assert manifest.kind == RANKER_KIND
    assert manifest.verification["max_abs_diff"] <= 1e-4
    assert manifest.verification["dimension"] == 384
    assert is_ranker("all-minilm-l6-v2") and not is_ranker("gemma-3-270m")


def test_a_text_embeds_the_same_alone_and_in_a_padded_batch(ranker_folder: Path) -> None:
    ranker = OnnxRanker(Bundle.open(ranker_folder))
    texts = [
        "When was the bridge opened?",
        "The bridge opened to traffic on 14 March 1932, after six years of work. " * 3,
        "桥于1932年通车。",
        "",
        "word " * 400,  # past the model's 256 tokens: truncated, not refused
    ]
    together = ranker.embed(texts)
    alone = np.stack([ranker.embed([t])[0] for t in texts])
    assert together.shape == (5, 384)
    assert np.abs(together - alone).max() < 1e-5
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-4)
    question, answer, chinese = together[0], together[1], together[2]
    assert float(question @ answer) > float(question @ together[4])
    assert float(answer @ chinese) > 0.0


def test_the_default_compressor_finds_the_answer_with_the_real_ranker(ranker_folder: Path) -> None:
    from fakes import FakeScorer

    documents = [
        "The harbour of Vellmar is deep and cold. Ferries leave it every hour for the islands.",
        "Cats sleep for most of the day and hunt at night. They are kept as pets everywhere.",
        "The harbour bridge of Vellmar opened to traffic on 14 March 1932. It took six years.",
        "Rain falls often in autumn. Farmers bring the harvest in before the first frost.",
    ] * 3
    compressor = Compressor(FakeScorer(), ranker=open_ranker(ranker_folder), cache=False)
    result = compressor.compress(documents, question="When did the Vellmar bridge open?", rate=0.2)
    assert result.mode == "question-aware"
    assert "14 March 1932" in result.compressed_prompt


def test_a_scorer_folder_is_not_a_ranker(tmp_path: Path, ranker_folder: Path) -> None:
    folder = tmp_path / "not-a-ranker"
    folder.mkdir()
    for file in ranker_folder.iterdir():
        (folder / file.name).write_bytes(file.read_bytes())
    manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    manifest["kind"] = "scorer"
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ScorerUnavailableError, match="not a ranker"):
        open_ranker(folder)
