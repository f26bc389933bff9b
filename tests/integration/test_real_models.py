"""Real pretrained scorers: the default (Gemma 3 270M) and SmolLM2-135M.

``make test`` exports the default scorer first; SmolLM2 is exported here once and kept
under TERSIFY_HOME.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tersify import Compressor
from tersify.bundle import Bundle
from tersify.client import open_scorer
from tersify.export import graph
from tersify.export.models import load, resolve
from tersify.settings import Settings

from answers import check_properties
from texts import sample_text

ENGLISH = (
    "The committee met on Tuesday to review the budget for the new library. After a long "
    "discussion, it approved the plan, but asked the architects to reduce the cost of the "
    "roof by ten percent before construction begins in March."
)
CHINESE = (
    "LongLLMLingua利用Prompt压缩增强大语言模型在长上下文场景下感知关键信息的能力，"
    "能够有效缓解Lost in the Middle问题，十分适合检索增强生成场景中使用。"
)


@pytest.fixture(scope="module")
def default_compressor() -> Compressor:
    return Compressor()


def test_seed_request_meets_the_acceptance(
    default_compressor: Compressor, seed_request: dict
) -> None:
    result = default_compressor.compress(
        seed_request["context"], question=seed_request["question"], ratio=seed_request["ratio"]
    )
    assert default_compressor.scorer.name == "gemma-3-270m"
    check_properties(result, seed_request["context"], seed_request["question"])
    assert result.origin_tokens == 3701
    assert result.compressed_tokens == result.target_tokens == 2961  # exactly, as the README says


@pytest.mark.parametrize(
    ("kind", "rate"), [("english", 0.1), ("chinese", 0.5), ("code", 0.9), ("mixed", 0.33)]
)
def test_rates_hold_on_the_real_scorer(
    default_compressor: Compressor, kind: str, rate: float
) -> None:
    text = sample_text(kind, 2500, 11)
    result = default_compressor.compress([text], question="What is this about?", rate=rate)
    check_properties(result, [text], "What is this about?")
    assert abs(result.rate - rate) <= 0.02 or result.target_tokens - result.compressed_tokens <= 3


def test_long_prompt_lands_on_budget(smollm2_scorer_dir: Path) -> None:
    text = sample_text("english", 80_000, 12)  # about 18k target tokens
    compressor = Compressor(str(smollm2_scorer_dir))
    result = compressor.compress([text], rate=0.2)
    assert result.origin_tokens > 15_000
    assert abs(result.rate - 0.2) <= 0.02
    check_properties(result, [text], "")


def _compare_with_pytorch(model: str, folder: Path) -> float:
    lm, tokenizer = load(resolve(model, Settings.from_env().home))
    module = graph.logprob_module(lm)
    bos = Bundle.open(folder).manifest.bos_token_id
    windows = [
        np.asarray([bos, *tokenizer.encode(text, add_special_tokens=False)], dtype=np.int64)
        for text in (ENGLISH, CHINESE)
    ]
    reference = graph.torch_logprobs(module, windows)
    got = open_scorer(folder, variant="fp32").logprobs(windows)  # the full-vocabulary graph
    return graph.max_difference(reference, got)


def test_smollm2_onnx_agrees_with_pytorch(smollm2_scorer_dir: Path) -> None:
    assert _compare_with_pytorch("smollm2-135m", smollm2_scorer_dir) <= 1e-3


def test_gemma_onnx_agrees_with_pytorch() -> None:
    folder = Settings.from_env().scorer_folder("gemma-3-270m")
    assert _compare_with_pytorch("gemma-3-270m", folder) <= 1e-3


def test_gemma_ships_a_checked_shortlist() -> None:
    """The default scorer's export carries the shortlist variant, checked against fp32."""
    manifest = Bundle.open(Settings.from_env().scorer_folder("gemma-3-270m")).manifest
    assert manifest.model_files["shortlist"] == "model.shortlist.onnx"
    assert manifest.verification["shortlist_unit_agreement"] >= 0.97
    assert manifest.verification["shortlist_size"] < manifest.vocab_size


def test_seed_through_triton_matches_embedded(
    default_compressor: Compressor, seed_request: dict, tmp_path: Path
) -> None:
    from tersify.triton import server

    folder = Settings.from_env().scorer_folder("gemma-3-270m")
    state = server.start(Bundle.open(folder), tmp_path)
    try:
        remote = Compressor(state.grpc_url)  # tokenizes with the default scorer's export
        kwargs = {"question": seed_request["question"], "ratio": seed_request["ratio"]}
        via_triton = remote.compress(seed_request["context"], **kwargs)
        embedded = default_compressor.compress(seed_request["context"], **kwargs)
        check_properties(via_triton, seed_request["context"], seed_request["question"])
        assert via_triton.compressed_prompt == embedded.compressed_prompt
        assert via_triton.compressed_tokens == embedded.compressed_tokens == 2961
    finally:
        server.stop(tmp_path)


def test_question_aware_ranking_finds_the_planted_fact(default_compressor: Compressor) -> None:
    from tersify import ContextFilter, TokenFilter

    question = "What is the secret code of the vault?"
    docs = [sample_text("english", 1200, 500 + i) for i in range(8)]
    docs[6] = (
        docs[6][:600] + " The vault's secret code is 4817, said the caretaker. " + docs[6][600:]
    )
    result = default_compressor.compress(
        docs,
        question=question,
        rate=0.25,
        context_filter=ContextFilter(rank_method="longllmlingua", reorder="sort"),
        token_filter=TokenFilter(condition_on_question=True),
    )
    check_properties(result, docs, question)
    assert result.context_order[0] == 6
    assert "4817" in result.compressed_prompt
    assert abs(result.rate - 0.25) <= 0.02
