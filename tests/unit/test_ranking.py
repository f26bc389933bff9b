"""Question-aware compression with a ranker: mode auto, whole sentences, the scorer spared."""

from __future__ import annotations

import numpy as np
import pytest

from tersify import Compressor, ContextFilter
from tersify.errors import BadRequestError
from tersify.options import chosen_mode
from tersify.ranking import choose_sentences, piece_starts, relevance
from tersify.request import CompressRequest, answer, compress

from answers import check_properties
from fakes import FakeRanker, FakeScorer
from texts import sample_text

QUESTION = "When did the harbour bridge of Vellmar open to traffic?"
ANSWER = "The harbour bridge of Vellmar opened to traffic on 14 March 1932."


def _documents(gold: int, n: int = 8) -> list[str]:
    docs = [sample_text("english", 600, seed) for seed in range(n)]
    # A distractor on the same topic that does not answer.
    docs[(gold + 1) % n] = "The harbour of Vellmar is deep. " + docs[(gold + 1) % n]
    docs[gold] = docs[gold][:250] + " " + ANSWER + " " + docs[gold][250:]
    return docs


@pytest.mark.parametrize("gold", [0, 4, 7])
@pytest.mark.parametrize("rate", [0.25, 0.1])
def test_default_mode_keeps_the_answer_sentence_whole(gold: int, rate: float) -> None:
    scorer = FakeScorer()
    compressor = Compressor(scorer, ranker=FakeRanker(), cache=False)
    docs = _documents(gold)
    result = compressor.compress(docs, question=QUESTION, rate=rate)
    assert result.mode == "question-aware"
    assert ANSWER in result.compressed_prompt
    assert result.context_order[0] == gold
    check_properties(result, docs, QUESTION)
    assert result.target_tokens - result.compressed_tokens <= 3


def test_only_the_document_trimmed_to_the_budget_reaches_the_scorer() -> None:
    docs = _documents(3)
    token = Compressor(FakeScorer(), ranker=FakeRanker(), cache=False)
    plain = token.compress(docs, question=QUESTION, rate=0.25, mode="token")
    ranked = Compressor(FakeScorer(), ranker=FakeRanker(), cache=False)
    aware = ranked.compress(docs, question=QUESTION, rate=0.25)
    assert plain.mode == "token" and aware.mode == "question-aware"
    longest = max(len(ranked.scorer.tokenize(d).ids) for d in docs)
    assert 0 < aware.scorer_tokens <= longest + 2 * ranked.scorer.max_window
    assert aware.scorer_tokens < plain.scorer_tokens / 3


def test_auto_is_token_level_without_a_question_or_with_one_context() -> None:
    ranker = FakeRanker()
    compressor = Compressor(FakeScorer(), ranker=ranker, cache=False)
    docs = _documents(2)
    assert compressor.compress(docs, rate=0.3).mode == "token"
    assert compressor.compress(docs[0], question=QUESTION, rate=0.3).mode == "token"
    assert ranker.calls == []  # the ranker was never needed
    assert chosen_mode({"mode": "token"}, question=QUESTION, contexts=5) == "token"
    assert chosen_mode({}, question=QUESTION, contexts=2) == "question-aware"


def test_the_json_request_defaults_to_auto_and_says_which_mode_ran(
    fake_compressor: Compressor,
) -> None:
    docs = _documents(5)
    request = CompressRequest.from_mapping({"context": docs, "question": QUESTION, "rate": 0.2})
    data = answer(compress(request, fake_compressor))["data"]
    assert data["mode"] == "question-aware"
    assert ANSWER in data["compressed_prompt"]
    single = CompressRequest.from_mapping({"context": docs[:1], "question": QUESTION})
    assert answer(compress(single, fake_compressor))["data"]["mode"] == "token"
    explicit = CompressRequest.from_mapping(
        {"context": docs, "question": QUESTION, "mode": "longllmlingua", "rate": 0.5}
    )
    assert answer(compress(explicit, fake_compressor))["data"]["mode"] == "longllmlingua"


def test_relevance_puts_the_answering_document_and_sentence_first() -> None:
    docs = _documents(6)
    scored = relevance(FakeRanker(), QUESTION, docs)
    assert 6 in np.argsort(-scored.documents)[:2]  # beside the same-topic distractor
    first = [_piece(docs, scored, c, k) for c, k in scored.sentence_order()[:2]]
    assert any(ANSWER in piece for piece in first)


def test_choose_sentences_fills_the_budget_and_passes_over_what_does_not_fit() -> None:
    docs = ["Alpha beta. " + "long " * 40 + "tail.", "Beta alpha gamma."]
    scored = relevance(FakeRanker(), "alpha beta", docs)
    order, chosen = choose_sentences(scored, docs, lambda text: len(text.split()), 6)
    kept = order[:chosen]
    assert sum(len(_piece(docs, scored, c, k).split()) for c, k in kept) <= 6
    assert set(order) == {(c, k) for c in range(2) for k in range(len(scored.sentences[c]))}
    assert all(len(_piece(docs, scored, c, k).split()) <= 6 for c, k in kept)


def _piece(docs: list[str], scored: object, c: int, k: int) -> str:
    bounds = [*scored.sentences[c], len(docs[c])]  # type: ignore[attr-defined]
    return docs[c][bounds[k] : bounds[k + 1]]


def test_long_runs_are_cut_into_pieces_at_spaces() -> None:
    text = "x" * 1000 + " " + "word " * 200
    starts = piece_starts(text)
    pieces = [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]
    assert "".join(pieces) == text
    assert all(len(p) <= 400 for p in pieces)


def test_sentbert_without_a_question_or_keep_sentences_without_sentbert_is_refused() -> None:
    compressor = Compressor(FakeScorer(), ranker=FakeRanker())
    with pytest.raises(BadRequestError, match="question"):
        compressor.compress(
            ["a b c d e f", "g h i j k l"], rate=0.5, context_filter=ContextFilter("sentbert")
        )
    with pytest.raises(BadRequestError, match="keep_sentences needs rank_method='sentbert'"):
        ContextFilter("bm25", keep_sentences=True)


def test_sentbert_whole_contexts_when_sentences_are_not_asked_for() -> None:
    docs = _documents(1)
    compressor = Compressor(FakeScorer(), ranker=FakeRanker(), cache=False)
    result = compressor.compress(
        docs, question=QUESTION, rate=0.3, context_filter=ContextFilter("sentbert", reorder="sort")
    )
    assert result.mode == "custom"
    assert result.context_order[0] == 1
    check_properties(result, docs, QUESTION)


def test_a_ranker_must_embed() -> None:
    with pytest.raises(BadRequestError, match="not a Ranker"):
        Compressor(FakeScorer(), ranker=42)  # type: ignore[arg-type]
