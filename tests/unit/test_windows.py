from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tersify import BadRequestError, WindowPlan
from tersify.windows import iterative_losses, token_losses

from fakes import FakeScorer
from texts import sample_text


@given(st.integers(0, 3000), st.integers(8, 600), st.integers(0, 300), st.integers(4, 700))
def test_windows_score_every_token_once(n: int, size: int, overlap: int, capacity: int) -> None:
    overlap = min(overlap, size // 2)
    spans = WindowPlan(size=size, overlap=overlap).spans(n, capacity)
    scored = [t for _, begin, stop in spans for t in range(begin, stop)]
    assert scored == list(range(n))
    for context_start, begin, stop in spans:
        assert context_start <= begin < stop
        assert stop - context_start <= capacity


@given(st.integers(8, 200), st.integers(8, 200))
def test_windows_never_exceed_plan_or_scorer(size: int, max_window: int) -> None:
    scorer = FakeScorer(max_window=max_window)
    ids = scorer.tokenize("lorem ipsum dolor sit amet " * 30).ids
    lengths: list[int] = []
    original = scorer.logprobs

    def spy(windows):  # type: ignore[no-untyped-def]
        lengths.extend(len(w) for w in windows)
        return original(windows)

    scorer.logprobs = spy  # type: ignore[method-assign]
    token_losses(scorer, [ids], WindowPlan(size=size, overlap=size // 4))
    assert max(lengths) <= min(size, max_window)  # BOS included


def test_losses_match_one_long_window_where_context_is_enough() -> None:
    # The fake's log-probs depend on the previous token only, so any window with at least
    # one token of context gives the same scores as scoring the whole sequence at once.
    scorer = FakeScorer(max_window=10_000)
    ids = scorer.tokenize("the quick brown fox jumps over the lazy dog " * 40).ids
    whole = token_losses(scorer, [ids], WindowPlan(size=5000, overlap=0))[0]
    windowed = token_losses(scorer, [ids], WindowPlan(size=32, overlap=4))[0]
    np.testing.assert_allclose(whole, windowed)


def test_all_windows_go_in_one_scorer_call() -> None:
    scorer = FakeScorer(max_window=64)
    seqs = [scorer.tokenize("word " * n).ids for n in (10, 200, 90)]
    losses = token_losses(scorer, seqs, WindowPlan(size=64, overlap=8))
    assert len(scorer.calls) == 1 and scorer.calls[0] > 3
    assert [len(x) for x in losses] == [len(s) for s in seqs]


def test_first_token_scored_from_bos_or_marked_informative() -> None:
    scorer = FakeScorer()
    ids = scorer.tokenize("alpha beta gamma delta").ids
    with_bos = token_losses(scorer, [ids], WindowPlan(size=16, overlap=2))[0]
    assert with_bos[0] > 0
    scorer.bos_token_id = None
    without = token_losses(scorer, [ids], WindowPlan(size=16, overlap=2))[0]
    assert without[0] == without[1:].max()


def test_bad_plans_are_refused() -> None:
    with pytest.raises(BadRequestError, match="size"):
        WindowPlan(size=4)
    with pytest.raises(BadRequestError, match="overlap"):
        WindowPlan(size=64, overlap=40)


def test_iterative_windows_condition_on_kept_tokens() -> None:
    scorer = FakeScorer(max_window=40)
    seqs = [
        scorer.tokenize("alpha beta gamma delta epsilon " * 30).ids,
        scorer.tokenize("x y " * 50).ids,
    ]
    plan = WindowPlan(size=40, overlap=8)
    parallel = token_losses(scorer, seqs, plan)
    scorer.calls.clear()
    iterative = iterative_losses(scorer, seqs, plan, keep_fraction=0.3)
    assert len(scorer.calls) > 1  # sequential steps, each batching both sequences
    assert scorer.calls[0] == 2
    assert [len(x) for x in iterative] == [len(s) for s in seqs]
    first = 40 - 1  # the first window sees the same context either way
    np.testing.assert_allclose(iterative[0][:first], parallel[0][:first])
    assert not np.allclose(iterative[0], parallel[0])  # later windows see kept tokens only


def test_iterative_mode_lands_on_budget() -> None:
    from tersify import Compressor, TokenFilter

    from answers import check_properties

    text = sample_text("mixed", 5000, 3)
    result = Compressor(FakeScorer()).compress(
        [text], question="Why?", rate=0.3, token_filter=TokenFilter(iterative=True)
    )
    check_properties(result, [text], "Why?")
    assert abs(result.rate - 0.3) <= 0.02


def test_plan_edges() -> None:
    assert WindowPlan(size=8, overlap=4).size == 8
    assert WindowPlan(size=64, overlap=0).overlap == 0
    assert WindowPlan(size=64, overlap=32).overlap == 32
    with pytest.raises(BadRequestError, match="window size=7 must be at least 8 tokens"):
        WindowPlan(size=7, overlap=0)
    with pytest.raises(BadRequestError, match=r"overlap=33 must be between 0 and size // 2 \(32\)"):
        WindowPlan(size=64, overlap=33)
    with pytest.raises(BadRequestError, match="overlap=-1"):
        WindowPlan(size=64, overlap=-1)
    assert WindowPlan().size == 512 and WindowPlan().overlap == 64


def test_spans_cap_the_overlap_at_half_the_capacity() -> None:
    assert WindowPlan(size=100, overlap=40).spans(30, 20) == [(0, 0, 20), (10, 20, 30)]
    assert WindowPlan(size=100, overlap=4).spans(30, 20) == [(0, 0, 20), (16, 20, 30)]
    assert WindowPlan(size=100, overlap=0).spans(30, 10) == [(0, 0, 10), (10, 10, 20), (20, 20, 30)]
    assert WindowPlan().spans(0, 10) == []


def _reference_losses(scorer: FakeScorer, ids: np.ndarray, prefix: list[int]) -> np.ndarray:
    """Obviously correct: the whole sequence in one window after BOS and the prefix."""
    head = [scorer.bos_token_id, *prefix]
    row = FakeScorer(max_window=10**6).logprobs([np.array(head + ids.tolist())])[0]
    return -row[len(head) :]


@pytest.mark.parametrize("prefix", [[], [17, 18, 19]])
def test_losses_are_each_tokens_surprisal_given_what_precedes_it(prefix: list[int]) -> None:
    scorer = FakeScorer(max_window=24)
    seqs = [scorer.tokenize(sample_text("mixed", n, 7)).ids for n in (5, 120, 300)]
    got = token_losses(scorer, seqs, WindowPlan(size=24, overlap=6), np.array(prefix, np.int64))
    for ids, loss in zip(seqs, got):
        assert loss.dtype == np.float32
        np.testing.assert_allclose(loss, _reference_losses(scorer, ids, prefix), rtol=1e-6)


def test_windows_leave_room_after_the_prefix() -> None:
    scorer = FakeScorer(max_window=16)
    ids = scorer.tokenize("a b c d e f g h i j").ids
    plan = WindowPlan(size=16, overlap=2)
    token_losses(scorer, [ids], plan, np.arange(11, dtype=np.int64))  # 16 - 1 - 11 = 4: fits
    with pytest.raises(BadRequestError, match="windows of 16 ids leave no room after a 13-id"):
        token_losses(scorer, [ids], plan, np.arange(12, dtype=np.int64))
    # iterative: capacity 16 - 1 - 7 = 8, of which 4 carried: 4 new tokens per window fit
    plan = WindowPlan(size=16, overlap=4)
    iterative_losses(scorer, [ids], plan, 0.5, np.arange(7, dtype=np.int64))
    with pytest.raises(
        BadRequestError, match=r"^windows leave no room after the prefix; use larger windows$"
    ):
        iterative_losses(scorer, [ids], plan, 0.5, np.arange(9, dtype=np.int64))


def test_without_bos_a_single_token_has_nothing_to_compare_with() -> None:
    scorer = FakeScorer()
    scorer.bos_token_id = None
    one = scorer.tokenize("alpha").ids
    assert token_losses(scorer, [one], WindowPlan(size=16, overlap=2))[0].tolist() == [0.0]
    assert iterative_losses(scorer, [one], WindowPlan(size=16, overlap=2), 0.5)[0].tolist() == [0.0]
    ids = scorer.tokenize("alpha beta gamma delta").ids
    iterative = iterative_losses(scorer, [ids], WindowPlan(size=16, overlap=2), 0.5)[0]
    assert iterative[0] == iterative[1:].max() > 0
    assert iterative.dtype == np.float32
    two = scorer.tokenize("alpha beta").ids[::2]  # two tokens: the first ranks as the second
    assert len(two) == 2
    for losses in (token_losses, lambda *a: iterative_losses(*a, 0.5)):
        got = losses(scorer, [two], WindowPlan(size=16, overlap=2))[0]
        assert got[0] == got[1] > 0
    assert token_losses(scorer, [], WindowPlan()) == []
