"""Token-level options: which units are forced, how units are scored, in what order kept."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tersify import BadRequestError, TokenFilter
from tersify.errors import TersifyError
from tersify.scoring import Units
from tersify.tokens import selection_order, unit_scores

TEXT = "Order 66\nwas given; reorder nothing.\n"
# units: "Order", " 66", "\n", "was", " given;", " reorder", " nothing.", "\n"
STARTS = [0, 5, 8, 9, 12, 19, 27, 36]


def _units(starts: list[int] = STARTS, length: int = len(TEXT)) -> Units:
    begin = np.array(starts, dtype=np.int64)
    return Units(begin, np.append(begin[1:], length), np.arange(len(starts)))


@pytest.mark.parametrize(
    ("how", "kept"),
    [
        (TokenFilter(), []),
        (TokenFilter(force_tokens=("Order",)), [0]),  # " reorder" holds "order", not "Order"
        (TokenFilter(force_tokens=("order",)), [5]),
        (TokenFilter(force_digits=True), [1]),
        (TokenFilter(keep_newlines=True), [2, 7]),
        (TokenFilter(force_tokens=(";",), force_digits=True, keep_newlines=True), [1, 2, 4, 7]),
        (TokenFilter(force_tokens=("given; re",)), []),  # marks are looked for inside a unit
    ],
)
def test_forced_units(how: TokenFilter, kept: list[int]) -> None:
    assert np.flatnonzero(how.forced(TEXT, _units())).tolist() == kept


def test_force_tokens_must_be_non_empty_strings() -> None:
    for bad in [("",), ("a", 3), (None,)]:
        with pytest.raises(BadRequestError, match=r"force_tokens=.* must be non-empty strings"):
            TokenFilter(force_tokens=bad)  # type: ignore[arg-type]
    assert TokenFilter(force_tokens=("a", "b")).force_tokens == ("a", "b")


def test_which_filters_need_the_question() -> None:
    assert not TokenFilter().needs_question
    assert not TokenFilter(iterative=True, force_digits=True).needs_question
    assert TokenFilter(condition_on_question=True).needs_question
    assert TokenFilter(contrastive=True).needs_question


def test_unit_scores_sum_the_chosen_token_scores() -> None:
    units = Units(np.array([0, 2, 5]), np.array([2, 5, 9]), np.array([0, 0, 1, 2, 2, 2]))
    plain = np.array([1, 2, 3, 4, 5, 6], dtype=np.float32)
    conditioned = np.array([0.5, 0.5, 1, 1, 1, 1], dtype=np.float32)
    got = unit_scores(units, plain, conditioned, TokenFilter())
    assert got.tolist() == [3, 3, 15] and got.dtype == np.float32
    got = unit_scores(units, plain, conditioned, TokenFilter(condition_on_question=True))
    assert got.tolist() == [1, 1, 3]
    got = unit_scores(units, plain, conditioned, TokenFilter(contrastive=True))
    assert got.tolist() == [2, 2, 12]
    both = TokenFilter(contrastive=True, condition_on_question=True)
    assert unit_scores(units, plain, conditioned, both).tolist() == [2, 2, 12]
    # a unit without tokens scores 0, and every unit gets a score
    empty = Units(np.array([0, 1, 2]), np.array([1, 2, 3]), np.array([0, 0]))
    assert unit_scores(empty, plain[:2], None, TokenFilter()).tolist() == [3, 0, 0]
    only_conditioned = TokenFilter(condition_on_question=True)
    assert unit_scores(units, None, conditioned, only_conditioned).tolist() == [1, 1, 3]
    assert unit_scores(units, plain, None, TokenFilter(contrastive=True)).tolist() == [3, 3, 15]
    with pytest.raises(TersifyError, match=r"^unit_scores got no token scores to rank units by$"):
        unit_scores(units, None, None, TokenFilter())
    with pytest.raises(TersifyError, match="no token scores"):
        unit_scores(units, None, conditioned, TokenFilter())


def test_selection_order_by_score_forced_first() -> None:
    scores = [np.array([3, 1, 2], dtype=np.float32), np.array([5, 4], dtype=np.float32)]
    none = [np.zeros(3, dtype=bool), np.zeros(2, dtype=bool)]
    assert selection_order(scores, none, None).tolist() == [3, 4, 0, 2, 1]
    forced = [np.array([False, True, False]), np.zeros(2, dtype=bool)]
    assert selection_order(scores, forced, None).tolist() == [1, 3, 4, 0, 2]
    assert selection_order([], [], None).tolist() == []


def test_selection_order_with_weights_ranks_within_each_context() -> None:
    scores = [np.array([3, 1, 2], dtype=np.float32), np.array([5, 4], dtype=np.float32)]
    none = [np.zeros(3, dtype=bool), np.zeros(2, dtype=bool)]
    # rank keys: context 0 (weight 1): 0.5/3, 2.5/3, 1.5/3; context 1 (weight 2): 0.25/2, 0.75/2
    weights = np.array([1.0, 2.0], dtype=np.float32)
    assert selection_order(scores, none, weights).tolist() == [3, 0, 4, 2, 1]
    weights = np.array([4.0, 1.0], dtype=np.float32)  # 0.5/12, 2.5/12, 1.5/12; 0.25, 0.75
    assert selection_order(scores, none, weights).tolist() == [0, 2, 1, 3, 4]
    forced = [np.zeros(3, dtype=bool), np.array([False, True])]
    assert selection_order(scores, forced, weights).tolist() == [4, 0, 2, 1, 3]


def test_selection_order_keeps_ties_in_text_order_and_ranks_by_fraction() -> None:
    ties = [np.zeros(100, dtype=np.float32)]
    none = [np.zeros(100, dtype=bool)]
    assert selection_order(ties, none, None).tolist() == list(range(100))
    assert selection_order(ties, none, np.ones(1, dtype=np.float32)).tolist() == list(range(100))
    # a one-unit context ranks at 0.5 of itself; a four-unit one at 0.125, 0.375, 0.625, 0.875
    scores = [np.array([9], dtype=np.float32), np.array([4, 3, 2, 1], dtype=np.float32)]
    none = [np.zeros(1, dtype=bool), np.zeros(4, dtype=bool)]
    assert selection_order(scores, none, np.ones(2, dtype=np.float32)).tolist() == [1, 2, 0, 3, 4]


@given(st.lists(st.lists(st.floats(-50, 50, width=32), max_size=30), min_size=1, max_size=4))
def test_selection_order_is_a_permutation_best_first(raw: list[list[float]]) -> None:
    scores = [np.array(s, dtype=np.float32) for s in raw]
    forced = [np.zeros(len(s), dtype=bool) for s in raw]
    order = selection_order(scores, forced, None)
    flat = np.concatenate(scores)
    assert sorted(order.tolist()) == list(range(len(flat)))
    assert (np.diff(flat[order]) <= 0).all()
    weighted = selection_order(scores, forced, np.ones(len(raw), dtype=np.float32))
    assert sorted(weighted.tolist()) == list(range(len(flat)))


def _reference_order(
    scores: list[np.ndarray],
    forced: list[np.ndarray],
    weights: np.ndarray | None,
    priority: list[np.ndarray] | None,
) -> list[int]:
    """selection_order spelled out with Python's sort: one key per unit, ties in text order.

    Forced units first: by score under a priority, in text order otherwise. Then by
    priority and score; or by rank within the unit's context (best first, from 0.5 of a
    unit) over the context's size and weight; or by score.
    """
    keys: list[tuple[float, ...]] = []
    for c, (score, force) in enumerate(zip(scores, forced)):
        best_first = sorted(range(len(score)), key=lambda i: (-float(score[i]), i))
        place = {unit: rank for rank, unit in enumerate(best_first)}
        for i in range(len(score)):
            index = float(len(keys))
            if priority is not None:
                first = -np.inf if force[i] else float(priority[c][i])
                keys.append((first, -float(score[i]), index))
            elif force[i]:
                keys.append((-np.inf, index))
            elif weights is not None:
                keys.append(((place[i] + 0.5) / len(score) / float(weights[c]), index))
            else:
                keys.append((-float(score[i]), index))
    return [int(key[-1]) for key in sorted(keys)]


# Few distinct values, so that ties (and 0.0 beside -0.0) are common.
_SCORE = st.sampled_from([-3.5, -1.0, -0.0, 0.0, 0.25, 2.0, 7.0])
_CONTEXT = st.lists(st.tuples(_SCORE, st.booleans(), st.sampled_from([0.0, 1.0, 2.0])), max_size=40)


@given(
    st.lists(_CONTEXT, max_size=4),
    st.sampled_from(["score", "weights", "priority"]),
    st.sampled_from([np.float32, np.float64]),
)
def test_selection_order_is_the_reference_order(
    contexts: list[list[tuple[float, bool, float]]], how: str, dtype: type
) -> None:
    scores = [np.array([u[0] for u in c], dtype=dtype) for c in contexts]
    forced = [np.array([u[1] for u in c], dtype=bool) for c in contexts]
    weights = np.array([1.0 + i for i in range(len(contexts))], dtype=np.float32)
    priority = [np.array([u[2] for u in c], dtype=np.float64) for c in contexts]
    chosen = (weights if how == "weights" else None, priority if how == "priority" else None)
    order = selection_order(scores, forced, *chosen)
    assert order.dtype == np.int64
    assert order.tolist() == _reference_order(scores, forced, *chosen)


def test_selection_order_puts_a_nan_score_last_and_tells_neighbouring_floats_apart() -> None:
    scores = np.zeros(50, dtype=np.float32)
    scores[20] = np.nan
    none = [np.zeros(50, dtype=bool)]
    assert selection_order([scores], none, None).tolist() == [*range(20), *range(21, 50), 20]
    # -1.0 and the float just below it differ in their last bit only: the lower comes last
    below = np.nextafter(np.float32(-1.0), np.float32(-2.0))
    close = np.array([below, -1.0], dtype=np.float32)
    assert selection_order([close], [np.zeros(2, dtype=bool)], None).tolist() == [1, 0]


def test_selection_order_of_nothing_is_empty_in_every_form() -> None:
    assert selection_order([], [], None, []).tolist() == []
    assert selection_order([], [], np.zeros(0, dtype=np.float32)).tolist() == []


def test_bidi_anchors_stay_forced_beside_the_options_marks() -> None:
    text = "ab \u2067cd\u2069 ef 42"
    units = _units([0, 3, 4, 6, 7, 11], len(text))  # "ab ", RLI, "cd", PDI, " ef ", "42"
    anchored = np.flatnonzero(TokenFilter().forced(text, units)).tolist()
    assert anchored == [1, 3]
    both = TokenFilter(force_digits=True).forced(text, units)
    assert np.flatnonzero(both).tolist() == [1, 3, 5]
    nothing = Units(*(np.zeros(0, dtype=np.int64) for _ in range(3)))
    assert TokenFilter().forced(text, nothing).tolist() == []
