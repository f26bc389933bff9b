"""The algorithm's choices, made observable by fakes: which context ranks first, and what
each iterative window is conditioned on."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tersify import Compressor, ContextFilter, TokenFilter, WindowPlan
from tersify.coarse import question_scores
from tersify.windows import iterative_losses

from answers import check_properties
from fakes import AnsweringScorer, FakeScorer, WindowSpy
from texts import sample_text

QUESTION = "What is the secret code of the vault?"
# The answer shares no word with the question but "the": only a scorer that knows what
# answers what (here AnsweringScorer) can rank its passage first.
ANSWER = "The caretaker wrote 4817 on a card pinned inside the museum office."
ANSWER_WORDS = ("caretaker",)
# A passage that repeats the question's words and answers nothing: BM25's favourite.
DECOY = "Vault secret: what code? The secret code of the vault is a secret of the vault."
NEEDLE_AT, DECOY_AT = 6, 2


def _documents() -> list[str]:
    docs = [sample_text("english", 1500, 700 + i).replace("\n\n", " ") for i in range(8)]
    for doc in docs:
        assert "caretaker" not in doc and "vault" not in doc.lower()
    docs[NEEDLE_AT] = docs[NEEDLE_AT][:600] + " " + ANSWER + " " + docs[NEEDLE_AT][600:]
    docs[DECOY_AT] = docs[DECOY_AT][:500] + " " + DECOY + " " + docs[DECOY_AT][500:]
    return docs


def _first(method: str, docs: list[str]) -> int:
    scorer = AnsweringScorer(QUESTION, ANSWER_WORDS)
    result = Compressor(scorer).compress(
        docs,
        question=QUESTION,
        rate=0.3,
        context_filter=ContextFilter(rank_method=method, reorder="sort"),  # type: ignore[arg-type]
    )
    check_properties(result, docs, QUESTION)
    return result.context_order[0]


def test_only_question_aware_ranking_finds_the_answer_first() -> None:
    docs = _documents()
    assert _first("longllmlingua", docs) == NEEDLE_AT
    assert _first("bm25", docs) == DECOY_AT
    assert _first("llmlingua", docs) != NEEDLE_AT


def test_question_scores_prefer_the_answering_context() -> None:
    scorer = AnsweringScorer(QUESTION, ANSWER_WORDS)
    docs = [scorer.tokenize(d).ids for d in _documents()]
    scores = question_scores(scorer, docs, scorer.tokenize(QUESTION).ids, "after")
    assert int(np.argmax(scores)) == NEEDLE_AT
    # the answering context wins by a margin, not by a tie broken in its favour
    assert scores[NEEDLE_AT] > np.sort(scores)[-2] + 0.1


def test_question_aware_compression_keeps_the_answer() -> None:
    docs = _documents()
    result = Compressor(AnsweringScorer(QUESTION, ANSWER_WORDS)).compress(
        docs,
        question=QUESTION,
        rate=0.2,
        context_filter=ContextFilter(rank_method="longllmlingua", reorder="sort"),
        token_filter=TokenFilter(contrastive=True),
    )
    check_properties(result, docs, QUESTION)
    assert result.context_order[0] == NEEDLE_AT
    assert "caretaker" in result.compressed_prompt  # what the question makes likely stays


def _replay_iterative(
    spy: WindowSpy, sequences: list[np.ndarray], context: int, keep_fraction: float, head: int
) -> list[np.ndarray]:
    """Check every recorded window against an obviously correct replay; return the losses.

    Window ``j`` of a sequence must hold the head, then the last ``context`` tokens kept by
    windows ``0..j-1`` (each keeps its ``keep_fraction`` most surprising tokens, earlier
    ones first on ties), then the next tokens of the sequence.
    """
    kept: list[list[int]] = [[] for _ in sequences]
    position = [0] * len(sequences)
    losses = [np.zeros(len(s), dtype=np.float32) for s in sequences]
    carried_any = 0 if context else 3
    for call in spy.calls:
        active = [s for s in range(len(sequences)) if position[s] < len(sequences[s])]
        assert len(call) == len(active)  # one window per unfinished sequence per step
        for s, (window, row) in zip(active, call):
            carried = kept[s][-context:] if context else []
            body = window[head:]
            assert body[: len(carried)].tolist() == carried, f"sequence {s} at {position[s]}"
            new = body[len(carried) :]
            assert len(new) > 0
            start = position[s]
            assert new.tolist() == sequences[s][start : start + len(new)].tolist()
            surprisal = -row[head + len(carried) :]
            losses[s][start : start + len(new)] = surprisal
            n_keep = max(1, math.ceil(keep_fraction * len(new)))
            top = sorted(range(len(new)), key=lambda i: (-float(surprisal[i]), i))[:n_keep]
            kept[s].extend(int(new[i]) for i in sorted(top))
            position[s] += len(new)
            carried_any += len(carried) > 0
    assert position == [len(s) for s in sequences]
    assert carried_any >= 3  # the check above was not vacuous
    return losses


@pytest.mark.parametrize("keep_fraction", [0.01, 0.2, 0.6])
def test_each_iterative_window_carries_what_earlier_windows_kept(keep_fraction: float) -> None:
    spy = WindowSpy(FakeScorer(max_window=40))
    sequences = [
        spy.tokenize(sample_text("english", 900, 31)).ids,
        spy.tokenize(sample_text("mixed", 500, 32)).ids,
    ]
    plan = WindowPlan(size=40, overlap=8)
    got = iterative_losses(spy, sequences, plan, keep_fraction)  # type: ignore[arg-type]
    want = _replay_iterative(spy, sequences, context=8, keep_fraction=keep_fraction, head=1)
    for g, w in zip(got, want):
        assert g.dtype == np.float32
        np.testing.assert_array_equal(g, w)
    # conditioned on kept tokens only: not the original text before the window
    window, _ = spy.calls[1][0]
    assert window[1:9].tolist() != sequences[0][39 - 8 : 39].tolist()


def test_iterative_windows_without_overlap_carry_nothing() -> None:
    spy = WindowSpy(FakeScorer(max_window=40))
    sequences = [spy.tokenize(sample_text("english", 600, 35)).ids]
    iterative_losses(spy, sequences, WindowPlan(size=40, overlap=0), 0.5)  # type: ignore[arg-type]
    assert len(spy.calls) > 2
    position = 0
    for call in spy.calls:
        ((window, _),) = call
        assert window[1:].tolist() == sequences[0][position : position + len(window) - 1].tolist()
        position += len(window) - 1


def test_iterative_windows_with_a_question_prefix() -> None:
    spy = WindowSpy(FakeScorer(max_window=48))
    sequences = [spy.tokenize(sample_text("english", 1200, 33)).ids]
    prefix = spy.tokenize("Which one?").ids
    iterative_losses(spy, sequences, WindowPlan(size=48, overlap=10), 0.4, prefix)  # type: ignore[arg-type]
    for call in spy.calls:
        for window, _ in call:
            assert window[1 : 1 + len(prefix)].tolist() == prefix.tolist()
    _replay_iterative(spy, sequences, context=10, keep_fraction=0.4, head=1 + len(prefix))


def test_the_compressor_conditions_iterative_windows_on_the_kept_fraction() -> None:
    spy = WindowSpy(FakeScorer(max_window=64))
    text = sample_text("english", 4000, 34)
    result = Compressor(spy).compress(  # type: ignore[arg-type]
        [text], question="Why?", rate=0.3, token_filter=TokenFilter(iterative=True)
    )
    check_properties(result, [text], "Why?")
    fraction = result.target_tokens / result.origin_tokens
    sequences = [spy.tokenize(text).ids]
    _replay_iterative(spy, sequences, context=64 // 2 - 1, keep_fraction=fraction, head=1)
