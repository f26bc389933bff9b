from __future__ import annotations

import numpy as np
import pytest

from tersify import BadRequestError, Compressor
from tersify.request import answer

from answers import check_properties, check_result, check_seed_answer
from fakes import FakeScorer
from texts import sample_text


def test_seed_shape_with_fake_scorer(fake_compressor: Compressor, seed_request: dict) -> None:
    result = fake_compressor.compress(
        seed_request["context"], question=seed_request["question"], ratio=seed_request["ratio"]
    )
    check_properties(result, seed_request["context"], seed_request["question"])
    assert result.target_tokens == 2961
    check_seed_answer(answer(result)["data"])


def test_short_prompts_are_compressed_too(fake_compressor: Compressor) -> None:
    text = "Alice met Bob in Paris on 3 May 2021 to sign the contract for the new bridge."
    result = fake_compressor.compress([text], rate=0.5)
    assert result.origin_tokens < 200
    check_properties(result, [text], "")
    assert result.target_tokens - result.compressed_tokens <= 3


def test_target_token_sizes_the_whole_prompt(fake_compressor: Compressor) -> None:
    text = sample_text("english", 6000, 1)
    result = fake_compressor.compress(
        [text], instruction="Read this.", question="Summarise it.", target_token=300
    )
    assert 297 <= result.compressed_tokens <= 300
    assert result.compressed_prompt.startswith("Read this.\n\n")
    check_properties(result, [text], "Summarise it.", "Read this.")


def test_rate_one_returns_the_prompt_unchanged(fake_compressor: Compressor) -> None:
    result = fake_compressor.compress(["a b c"], question="q?", rate=1.0)
    assert result.compressed_prompt == "a b c\n\nq?"
    check_properties(result, ["a b c"], "q?")
    assert result.rate == 1.0 and result.ratio == 1.0


def test_budget_below_the_question_is_refused_naming_both_numbers(
    fake_compressor: Compressor,
) -> None:
    question = "Which of the three documents mentions the bridge, and when was it signed?"
    with pytest.raises(BadRequestError, match=r"budget of 5 tokens is below the 15 tokens"):
        fake_compressor.compress(
            [sample_text("english", 3000, 2)], question=question, target_token=5
        )


def test_a_rate_that_leaves_no_context_is_refused(fake_compressor: Compressor) -> None:
    text = "Alice met Bob in Paris on 3 May 2021 to sign the contract for the new bridge."
    with pytest.raises(BadRequestError, match="below the 5 tokens of instruction and question"):
        fake_compressor.compress([text], question="Where did they meet?", rate=0.001)
    with pytest.raises(BadRequestError, match="leaves no room"):
        fake_compressor.compress([text], rate=0.001)


def test_most_surprising_units_are_the_ones_kept() -> None:
    class Loud(FakeScorer):
        def logprobs(self, windows):  # type: ignore[no-untyped-def]
            rows = super().logprobs(windows)
            loud = self.tokenize("ZEBRA").ids[0]
            for w, row in zip(windows, rows):
                row[np.asarray(w) == loud] = -50.0
            return rows

    text = ("the cat sat on the mat " * 20) + "ZEBRA " + ("the cat sat on the mat " * 20)
    result = Compressor(Loud()).compress([text], rate=0.1)
    check_properties(result, [text], "")
    assert "ZEBRA" in result.compressed_prompt


def test_result_is_frozen(fake_compressor: Compressor) -> None:
    result = fake_compressor.compress(["one two three four"], rate=0.5)
    check_result(result, "one two three four")
    with pytest.raises(AttributeError):
        result.compressed_tokens = 1  # type: ignore[misc]
    assert result.saving_usd() == pytest.approx(
        (result.origin_tokens - result.compressed_tokens) * 0.06 / 1000
    )


@pytest.mark.parametrize(
    ("context", "kwargs", "field"),
    [
        ([], {}, "context"),
        ([""], {}, "context"),
        ([1, 2], {}, "context[0]"),
        (b"bytes", {}, "context"),
        (["text"], {"question": 3}, "question"),
        (["text"], {"instruction": ["x"]}, "instruction"),
        (["text"], {"rate": 0}, "rate"),
        (["text"], {"rate": 2}, "rate"),
        (["text"], {"ratio": 1.2}, "ratio"),
        (["text"], {"target_token": -1}, "target_token"),
    ],
)
def test_bad_arguments_are_named(
    fake_compressor: Compressor, context: object, kwargs: dict, field: str
) -> None:
    with pytest.raises(BadRequestError, match=field.replace("[", r"\[")):
        fake_compressor.compress(context, **kwargs)  # type: ignore[arg-type]


def test_not_a_scorer_is_refused() -> None:
    with pytest.raises(BadRequestError, match="Scorer"):
        Compressor(scorer=42)  # type: ignore[arg-type]


@pytest.mark.parametrize("entry", ["compress", "compress_segments", "compress_json"])
def test_every_entry_point_takes_the_run_options_and_refuses_others(
    fake_compressor: Compressor, entry: str
) -> None:
    call = getattr(fake_compressor, entry)
    text = sample_text("english", 2_000, 3) if entry != "compress_json" else {"a": "b " * 400}
    result = call(text, target_token=120, explain=True)
    assert result.compressed_tokens == result.target_tokens == 120
    assert result.explanation is not None
    with pytest.raises(TypeError, match=f"{entry}\\(\\) got an unexpected keyword argument 'rtae'"):
        call(text, rtae=0.5)
