from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tersify import BadRequestError, WindowPlan
from tersify.windows import token_losses

from fakes import FakeScorer


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
    from tersify.windows import iterative_losses

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
    from texts import sample_text

    text = sample_text("mixed", 5000, 3)
    result = Compressor(FakeScorer()).compress(
        [text], question="Why?", rate=0.3, token_filter=TokenFilter(iterative=True)
    )
    check_properties(result, [text], "Why?")
    assert abs(result.rate - 0.3) <= 0.02
