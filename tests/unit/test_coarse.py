"""Context-level filtering and token-level options (LongLLMLingua's features)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tersify import BadRequestError, Compressor, ContextFilter, TokenFilter
from tersify.coarse import bm25_scores, keep_within_budget, question_scores, reorder

from answers import check_properties
from fakes import FakeScorer
from texts import sample_text

NEEDLE = "The vault's secret code is 4817, said the caretaker of the museum."
QUESTION = "What is the secret code of the vault?"


def _documents(n: int = 8, at: int = 5) -> list[str]:
    docs = [sample_text("english", 1500, 100 + i) for i in range(n)]
    docs[at] = docs[at][:700] + " " + NEEDLE + " " + docs[at][700:]
    return docs


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"rank_method": "random"}, "rank_method"),
        ({"reorder": "shuffle"}, "reorder="),
        ({"context_budget": "__import__('os')"}, "context_budget"),
        ({"context_budget": "+"}, "context_budget"),
        ({"dynamic_ratio": 1.5}, "dynamic_ratio="),
        ({"force_context_ids": (-1,)}, "force_context_ids"),
    ],
)
def test_context_filter_checks_its_fields(kwargs: dict, field: str) -> None:
    with pytest.raises(BadRequestError, match=field):
        ContextFilter(**kwargs)


@pytest.mark.parametrize(
    ("text", "want"), [("+100", 1100), ("-100", 900), ("*1.5", 1500), (" + 0 ", 1000)]
)
def test_context_budget_strings(text: str, want: int) -> None:
    assert ContextFilter(context_budget=text).context_tokens(1000) == want


def test_bm25_finds_the_needle() -> None:
    docs = _documents()
    assert int(np.argmax(bm25_scores(docs, QUESTION))) == 5


@given(st.lists(st.integers(1, 500), min_size=1, max_size=20), st.integers(0, 3000), st.data())
def test_keep_within_budget(costs: list[int], budget: int, data: st.DataObject) -> None:
    ranked = data.draw(st.permutations(range(len(costs))))
    forced = data.draw(st.lists(st.sampled_from(range(len(costs))), max_size=2))
    kept = keep_within_budget(ranked, costs, budget, forced)
    assert kept and len(set(kept)) == len(kept)
    assert set(forced) <= set(kept)
    others = [i for i in kept if i not in forced]
    assert others == [i for i in ranked if i in others][: len(others)]  # a prefix of the ranking
    # all but the last kept context fit under the budget
    assert sum(costs[i] for i in kept[:-1]) < budget or len(kept) <= max(1, len(set(forced)))


def test_reorders() -> None:
    ranked = [4, 2, 0, 1, 3]
    kept = [0, 1, 2, 4]
    assert reorder(kept, ranked, "original") == [0, 1, 2, 4]
    assert reorder(kept, ranked, "sort") == [4, 2, 0, 1]
    assert reorder(kept, ranked, "two_stage") == [4, 0, 1, 2]  # best ones at both ends


def test_question_scores_use_one_call_and_fit_windows() -> None:
    scorer = FakeScorer(max_window=64)
    docs = [scorer.tokenize(d).ids for d in _documents(4, 1)]
    question = scorer.tokenize(QUESTION).ids
    for placement in ("after", "before"):
        scorer.calls.clear()
        scores = question_scores(scorer, docs, question, placement)  # type: ignore[arg-type]
        assert scorer.calls == [sum(-(-len(d) // (64 - 1 - len(question))) for d in docs)]
        assert scores.shape == (4,) and np.isfinite(scores).all()


@pytest.mark.parametrize("reorder_how", ["original", "sort", "two_stage"])
def test_compressor_keeps_the_relevant_context(reorder_how: str) -> None:
    docs = _documents()
    compressor = Compressor(FakeScorer())
    result = compressor.compress(
        docs,
        question=QUESTION,
        rate=0.1,
        context_filter=ContextFilter(rank_method="bm25", reorder=reorder_how),  # type: ignore[arg-type]
    )
    assert 5 in result.context_order
    assert len(result.context_order) < len(docs)
    if reorder_how != "original":
        assert result.context_order[0] == 5
    assert result.compressed_tokens <= result.target_tokens
    assert abs(result.rate - 0.1) <= 0.02
    assert result.compressed_prompt.endswith(QUESTION)


def test_forced_contexts_are_kept() -> None:
    docs = _documents()
    result = Compressor(FakeScorer()).compress(
        docs,
        question=QUESTION,
        rate=0.1,
        context_filter=ContextFilter(rank_method="bm25", force_context_ids=(1,)),
    )
    assert {1, 5} <= set(result.context_order)
    with pytest.raises(BadRequestError, match="force_context_ids"):
        Compressor(FakeScorer()).compress(
            docs, question=QUESTION, context_filter=ContextFilter(force_context_ids=(99,))
        )


def test_dynamic_ratio_keeps_more_of_better_contexts() -> None:
    docs = [sample_text("english", 3000, 200 + i).replace("\n\n", " ") for i in range(4)]
    docs[2] += " " + NEEDLE
    how = ContextFilter(rank_method="bm25", context_budget="*10", reorder="sort", dynamic_ratio=0.8)
    result = Compressor(FakeScorer()).compress(
        docs, question=QUESTION, rate=0.4, context_filter=how
    )
    assert result.context_order[0] == 2 and len(result.context_order) == 4
    body = result.compressed_prompt[: -len(QUESTION)].split("\n\n")
    kept = [len(part) / len(docs[i]) for part, i in zip(body, result.context_order)]
    assert kept[0] > 1.5 * kept[-1]
    assert abs(result.rate - 0.4) <= 0.02


def test_llmlingua_and_longllmlingua_ranking_run() -> None:
    docs = _documents(5, 2)
    for method in ("llmlingua", "longllmlingua"):
        result = Compressor(FakeScorer()).compress(
            docs,
            question=QUESTION,
            rate=0.3,
            context_filter=ContextFilter(rank_method=method),  # type: ignore[arg-type]
        )
        assert result.compressed_tokens <= result.target_tokens
    with pytest.raises(BadRequestError, match="question"):
        Compressor(FakeScorer()).compress(docs, rate=0.3, context_filter=ContextFilter())


def test_forced_tokens_digits_and_newlines_are_kept() -> None:
    text = sample_text("english", 4000, 300) + "\nOrder 66 was given on 19 May.\n"
    how = TokenFilter(force_tokens=("Order",), force_digits=True, keep_newlines=True)
    result = Compressor(FakeScorer()).compress([text], rate=0.3, token_filter=how)
    prompt = result.compressed_prompt
    assert prompt.count("\n") == text.count("\n")
    assert "Order" in prompt and "66" in prompt and "19" in prompt
    check_properties(result, [text], "")


@pytest.mark.parametrize(
    "how",
    [TokenFilter(condition_on_question=True), TokenFilter(contrastive=True)],
)
def test_question_conditioned_scores(how: TokenFilter) -> None:
    docs = [sample_text("mixed", 3000, 400)]
    result = Compressor(FakeScorer()).compress(docs, question=QUESTION, rate=0.3, token_filter=how)
    check_properties(result, docs, QUESTION)
    assert abs(result.rate - 0.3) <= 0.02
    with pytest.raises(BadRequestError, match="question"):
        Compressor(FakeScorer()).compress(docs, rate=0.3, token_filter=how)


def test_bad_force_tokens() -> None:
    with pytest.raises(BadRequestError, match="force_tokens"):
        TokenFilter(force_tokens=("",))


def test_selection_order_follows_weights() -> None:
    from tersify.tokens import selection_order

    scores = [np.arange(100, dtype=np.float32), np.arange(100, dtype=np.float32)]
    forced = [np.zeros(100, dtype=bool), np.zeros(100, dtype=bool)]
    forced[1][7] = True
    order = selection_order(scores, forced, np.array([1.8, 0.2], dtype=np.float32))
    assert order[0] == 107  # forced first
    first = order[:50]
    assert (first < 100).sum() > 5 * (first >= 100).sum()
    plain = selection_order(scores, [np.zeros(100, bool)] * 2, None)
    assert plain[0] in (99, 199)


def test_sentence_filter_draws_only_from_kept_sentences() -> None:
    from tersify import SentenceFilter
    from tersify.sentences import sentence_starts

    text = " ".join(sample_text("english", 6000, 600).split())  # one paragraph, many sentences
    first = text[: sentence_starts(text)[1]]
    how = SentenceFilter(keep_first=1, keep_number=6, budget_ratio=1.5)
    result = Compressor(FakeScorer()).compress([text], rate=0.1, sentence_filter=how)
    assert result.compressed_tokens <= result.target_tokens
    check_properties(result, [text], "")
    # the first sentence is among the kept ones: its first word survives
    assert first.split()[0] in result.compressed_prompt
    with pytest.raises(BadRequestError, match="keep_first"):
        SentenceFilter(keep_first=-1)
    with pytest.raises(BadRequestError, match=r"budget_ratio=0.5"):
        SentenceFilter(budget_ratio=0.5)


def test_keep_last_sentence_in_chinese() -> None:
    from tersify import SentenceFilter
    from tersify.sentences import sentence_starts

    text = (
        "".join(f"第{i}句话讲的是一个很长的故事，内容非常丰富。" for i in range(40))
        + "最后一句必须保留。"
    )
    assert len(sentence_starts(text)) == 41
    how = SentenceFilter(keep_last=1, keep_number=3, budget_ratio=1.2)
    result = Compressor(FakeScorer()).compress([text], rate=0.3, sentence_filter=how)
    assert result.compressed_tokens <= result.target_tokens
    check_properties(result, [text], "")
    # which units may be kept: those of three sentences, the last one among them
    from tersify.encoding import count_tokens, load_encoding
    from tersify.scoring import group_units

    tokens = FakeScorer().tokenize(text)
    units = group_units(tokens.offsets, len(text))
    scores = np.bincount(units.token_unit, minlength=len(units)).astype(np.float32)
    enc = load_encoding()
    (allowed,) = how.allowed([text], [units], [scores], lambda t: count_tokens(enc, t), 10_000)
    kept = {
        int(s)
        for s in np.searchsorted(sentence_starts(text), units.starts[allowed], side="right") - 1
    }
    assert 40 in kept and len(kept) == 3


def _bm25_reference(docs: list[list[str]], query: set[str]) -> list[float]:
    """Okapi BM25 (k1 = 1.5, b = 0.75, idf = ln(1 + (N - n + 0.5) / (n + 0.5))), by hand."""
    average = sum(len(d) for d in docs) / len(docs)
    scores = []
    for doc in docs:
        score = 0.0
        for term in query:
            having = sum(term in d for d in docs)
            idf = np.log(1 + (len(docs) - having + 0.5) / (having + 0.5))
            tf = doc.count(term)
            score += idf * tf * 2.5 / (tf + 1.5 * (0.25 + 0.75 * len(doc) / average))
        scores.append(score)
    return scores


def test_bm25_is_okapi_bm25() -> None:
    docs = ["the cat sat on the mat", "a dog, a dog and a cat", "Dogs ran 3 km", "压缩 the 压"]
    terms = [["the", "cat", "sat", "on", "the", "mat"], ["a", "dog", "a", "dog", "and", "a", "cat"],
             ["dogs", "ran", "3", "km"], ["压", "缩", "the", "压"]]
    got = bm25_scores(docs, "The dog, the CAT and 压?")
    want = _bm25_reference(terms, {"the", "dog", "cat", "and", "压"})
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert got.dtype == np.float32
    assert bm25_scores(["", "x"], "x").tolist()[0] == 0.0


def test_question_scores_are_the_best_chunks_mean_question_log_prob() -> None:
    scorer = FakeScorer(max_window=40)
    docs = [scorer.tokenize(sample_text("english", n, 50 + n)).ids for n in (30, 200, 400)]
    docs.append(np.zeros(0, dtype=np.int64))  # an empty context
    question = scorer.tokenize("Which one is it?").ids
    room = 40 - 1 - len(question)
    whole = FakeScorer(max_window=10**6)
    for placement in ("after", "before"):
        got = question_scores(scorer, docs, question, placement)  # type: ignore[arg-type]
        for ids, score in zip(docs, got):
            chunks = [ids[i : i + room] for i in range(0, max(1, len(ids)), room)]
            best = -np.inf
            for chunk in chunks:
                if placement == "after":
                    row = whole.logprobs([np.concatenate([[1], chunk, question])])[0]
                    part = row[1 + len(chunk) :]
                else:
                    row = whole.logprobs([np.concatenate([[1], question, chunk])])[0]
                    part = row[1 + len(question) :]
                if len(part):
                    best = max(best, float(np.mean(part)))
            assert score == pytest.approx(best, rel=1e-6)
    assert got.dtype == np.float32
    without_bos = FakeScorer(max_window=40)
    without_bos.bos_token_id = None
    got = question_scores(without_bos, docs[:1], question, "after")
    row = whole.logprobs([np.concatenate([docs[0], question])])[0]
    assert got[0] == pytest.approx(float(np.mean(row[len(docs[0]) :])), rel=1e-6)
    with pytest.raises(BadRequestError, match=r"the question \(25 scorer tokens\) leaves no room"):
        question_scores(scorer, docs, np.arange(25, dtype=np.int64), "after")
    question_scores(scorer, docs, np.arange(23, dtype=np.int64), "after")  # 40 - 1 - 23 = 16


def test_context_budget_never_goes_below_zero() -> None:
    assert ContextFilter(context_budget="-500").context_tokens(100) == 0
    assert ContextFilter(context_budget="*0.5").context_tokens(101) == 50
    assert ContextFilter(context_budget="+2.5").context_tokens(10) == 12
    assert ContextFilter().context_tokens(10) == 110  # "+100", LLMLingua's default


@pytest.mark.parametrize(
    ("ranked", "costs", "budget", "forced", "want"),
    [
        ([2, 0, 1], [50, 60, 70], 100, (), [2, 0]),
        ([1, 0], [5, 5], 0, (), [1]),  # at least one is kept
        ([0, 1, 2], [10, 10, 10], 15, (2,), [2, 0]),
        ([0, 1, 2], [10, 10, 10], 10, (2,), [2]),
        ([0, 1, 2], [10, 10, 10], 100, (), [0, 1, 2]),
        ([0, 1, 2], [10, 10, 10], 20, (), [0, 1]),  # reaching the budget is enough
        ([1, 0], [10, 10], 5, (1, 1), [1]),
    ],
)
def test_keep_within_budget_cases(
    ranked: list[int], costs: list[int], budget: int, forced: tuple, want: list[int]
) -> None:
    assert keep_within_budget(ranked, costs, budget, forced) == want


def test_dynamic_weights_by_rank_with_a_floor() -> None:
    from tersify.coarse import dynamic_weights

    # best keeps overall + strength, worst overall - strength, never below 5 % of overall
    got = dynamic_weights([0, 1, 2], [0, 1, 2], 0.5, 0.4)
    np.testing.assert_allclose(got, [0.9 / 0.4, 0.4 / 0.4, 0.05], rtol=1e-6)
    got = dynamic_weights([2, 0], [0, 1, 2], 0.2, 0.5)  # ranks among the kept: 0 first
    np.testing.assert_allclose(got, [0.3 / 0.5, 0.7 / 0.5], rtol=1e-6)
    np.testing.assert_allclose(dynamic_weights([1], [1], 0.3, 0.5), [0.8 / 0.5], rtol=1e-6)
    assert got.dtype == np.float32


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"question_placement": "middle"}, "question_placement='middle' must be one of after"),
        ({"force_context_ids": (True,)}, r"force_context_ids\[0\]=True must be a non-negative"),
        ({"force_context_ids": (0, -2)}, r"force_context_ids\[1\]=-2"),
        ({"dynamic_ratio": -0.1}, r"dynamic_ratio=-0.1 must be in \[0, 1\]"),
        ({"rank_method": "random"}, "rank_method='random' must be one of sentbert, longllmlingua"),
        ({"reorder": "shuffle"}, "reorder='shuffle' must be one of original, sort, two_stage"),
        ({"context_budget": "100"}, "context_budget='100' must look like '\\+100', '-50' or"),
        ({"context_budget": "*1234567890"}, r"or '\*1.5' \(at most 9 digits\)$"),
        (
            {"rank_method": "bm25", "keep_sentences": True},
            "^keep_sentences needs rank_method='sentbert', not 'bm25'$",
        ),
    ],
)
def test_context_filter_messages(kwargs: dict, message: str) -> None:
    with pytest.raises(BadRequestError, match=message):
        ContextFilter(**kwargs)


def test_context_filter_edges_are_accepted() -> None:
    assert ContextFilter(rank_method="sentbert", keep_sentences=True).keep_sentences
    assert ContextFilter(dynamic_ratio=0.0).dynamic_ratio == 0.0
    assert ContextFilter(dynamic_ratio=1.0).dynamic_ratio == 1.0
    assert ContextFilter(force_context_ids=(0, 3)).force_context_ids == (0, 3)
    assert ContextFilter(question_placement="before").question_placement == "before"
