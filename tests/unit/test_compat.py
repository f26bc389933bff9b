"""``tersify.PromptCompressor`` answers like LLMLingua 0.2.2."""

from __future__ import annotations

import pytest

from tersify import BadRequestError, Budget, PromptCompressor, UnsupportedOptionError

from answers import LLMLINGUA_KEYS, check_answer
from fakes import FakeScorer
from texts import sample_text


@pytest.fixture()
def llm_lingua() -> PromptCompressor:
    return PromptCompressor(FakeScorer())  # type: ignore[arg-type]


def _budget(out: dict, rate: float) -> int:
    return Budget(rate=rate).target(out["origin_tokens"])


def test_keys_and_display_strings(llm_lingua: PromptCompressor) -> None:
    context = [sample_text("english", 4000, 3), sample_text("english", 2000, 4)]
    out = llm_lingua.compress_prompt(
        context, instruction="Answer briefly.", question="Who?", rate=0.25
    )
    check_answer(out, _budget(out, 0.25), keys=LLMLINGUA_KEYS)
    assert out["ratio"] == f"{out['origin_tokens'] / out['compressed_tokens']:.1f}x"
    assert out["rate"] == f"{out['compressed_tokens'] / out['origin_tokens'] * 100:.1f}%"
    assert abs(out["compressed_tokens"] / out["origin_tokens"] - 0.25) <= 0.02
    assert out["compressed_prompt"].startswith("Answer briefly.\n\n")


def test_target_token_overrides_rate(llm_lingua: PromptCompressor) -> None:
    out = llm_lingua.compress_prompt(sample_text("code", 5000, 5), rate=0.9, target_token=200)
    check_answer(out, 200, keys=LLMLINGUA_KEYS)
    assert 197 <= out["compressed_tokens"] <= 200


def test_default_valued_options_are_accepted(llm_lingua: PromptCompressor) -> None:
    out = llm_lingua.compress_prompt(
        [sample_text("english", 2000, 6)],
        rate=0.5,
        iterative_size=200,
        condition_in_question="none",
        reorder_context="original",
        dynamic_context_compression_ratio=0,
        force_tokens=[],
        use_token_level_filter=True,
        context_budget="+100",
        token_budget_ratio=1.4,
    )
    check_answer(out, _budget(out, 0.5), keys=LLMLINGUA_KEYS)
    assert out["compressed_tokens"] < out["origin_tokens"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("add_instruction", True),
        ("context_segs", ["a"]),
        ("use_token_level_filter", False),
        ("rank_method", "cohere"),
    ],
)
def test_unimplemented_options_raise(
    llm_lingua: PromptCompressor, name: str, value: object
) -> None:
    with pytest.raises(UnsupportedOptionError, match=name):
        llm_lingua.compress_prompt(["some text here", "and more"], rate=0.5, **{name: value})


def test_longllmlingua_readme_example(llm_lingua: PromptCompressor) -> None:
    docs = [sample_text("english", 1500, 20 + i) for i in range(6)]
    docs[4] += " The vault's secret code is 4817."
    out = llm_lingua.compress_prompt(
        docs,
        question="What is the secret code of the vault?",
        rate=0.55,
        condition_in_question="after_condition",
        reorder_context="sort",
        dynamic_context_compression_ratio=0.3,
        condition_compare=True,
        context_budget="+100",
        rank_method="longllmlingua",
    )
    check_answer(out, _budget(out, 0.55), keys=LLMLINGUA_KEYS)


@pytest.mark.parametrize(
    "options",
    [
        {"rank_method": "bm25", "force_context_ids": [0], "reorder_context": "two_stage"},
        {
            "use_context_level_filter": False,
            "force_tokens": ["\n", "?"],
            "force_reserve_digit": True,
        },
        {"condition_in_question": "before", "rank_method": "longllmlingua"},
        {"iterative_size": 100, "token_budget_ratio": 1.2},
        {"use_sentence_level_filter": True, "keep_first_sentence": 1, "keep_sentence_number": 5},
    ],
)
def test_supported_options(llm_lingua: PromptCompressor, options: dict) -> None:
    docs = [sample_text("english", 1500, 40 + i) for i in range(4)]
    out = llm_lingua.compress_prompt(docs, question="Which one?", rate=0.3, **options)
    check_answer(out, _budget(out, 0.3), keys=LLMLINGUA_KEYS)
    if "keep_sentence_number" not in options:  # a sentence cap may leave less than the budget
        assert abs(out["compressed_tokens"] / out["origin_tokens"] - 0.3) <= 0.02


def test_bad_condition_in_question(llm_lingua: PromptCompressor) -> None:
    with pytest.raises(BadRequestError, match="condition_in_question"):
        llm_lingua.compress_prompt(["a b", "c d"], question="q", condition_in_question="middle")


def test_unknown_option_is_a_type_error_like_message(llm_lingua: PromptCompressor) -> None:
    with pytest.raises(BadRequestError, match="unexpected keyword argument 'ratee'"):
        llm_lingua.compress_prompt(["x y z"], ratee=0.5)


def test_llmlingua2_and_model_config_are_refused() -> None:
    with pytest.raises(UnsupportedOptionError, match="use_llmlingua2"):
        PromptCompressor(FakeScorer(), use_llmlingua2=True)  # type: ignore[arg-type]
    with pytest.raises(UnsupportedOptionError, match="model_config"):
        PromptCompressor(FakeScorer(), model_config={"revision": "main"})  # type: ignore[arg-type]


def test_concate_question_false_leaves_the_question_out(llm_lingua: PromptCompressor) -> None:
    docs = [sample_text("english", 2000, 60)]
    out = llm_lingua.compress_prompt(
        docs, question="Which one is it?", rate=0.4, concate_question=False
    )
    assert not out["compressed_prompt"].endswith("Which one is it?")
    assert out["compressed_tokens"] < round(out["origin_tokens"] * 0.4)
    check_answer(out, _budget(out, 0.4), keys=LLMLINGUA_KEYS)


def test_structured_compress_prompt(llm_lingua: PromptCompressor) -> None:
    prompt = (
        f"<llmlingua, compress=False>Keep <this> exactly.</llmlingua>"
        f"<llmlingua, rate=0.5>{sample_text('english', 3000, 61)}</llmlingua>"
        f"{sample_text('code', 2000, 62)}"
    )
    out = llm_lingua.structured_compress_prompt(
        prompt, question="Why?", rate=0.3, force_reserve_digit=True
    )
    check_answer(out, _budget(out, 0.3), keys=LLMLINGUA_KEYS)
    assert out["compressed_prompt"].startswith("Keep <this> exactly.")
    with pytest.raises(UnsupportedOptionError, match="rank_method"):
        llm_lingua.structured_compress_prompt(prompt, rank_method="bm25")
