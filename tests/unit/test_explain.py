"""The explanation of a compression: kept spans, ranks and unit scores, and its JSON form."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tersify.assemble import Assembler
from tersify.errors import BadRequestError
from tersify.explain import ContextExplanation, Explanation, explain
from tersify.scoring import group_units

from fakes import FakeScorer

TEXTS = st.text(alphabet=st.sampled_from(list("ab 压缩\n。,1é🇯🇵")), max_size=40)


def _units_and_scores(texts: list[str]) -> tuple[list, list]:
    scorer = FakeScorer()
    units, scores = [], []
    for text in texts:
        tokens = scorer.tokenize(text)
        u = group_units(tokens.offsets, len(text))
        units.append(u)
        scores.append(np.linspace(0.0, 9.0, len(u)).astype(np.float32))
    return units, scores


@given(st.lists(TEXTS, min_size=1, max_size=4), st.data())
def test_kept_spans_are_what_the_assembler_keeps(texts: list[str], data: st.DataObject) -> None:
    n = len(texts)
    order = data.draw(st.permutations(range(n)))
    order = order[: data.draw(st.integers(0, n))]  # the rest dropped whole
    units, scores = _units_and_scores([texts[i] for i in order])
    total = sum(len(u) for u in units)
    keep = np.array(data.draw(st.lists(st.booleans(), min_size=total, max_size=total)), bool)
    ranking = data.draw(st.permutations(range(n)))
    result = explain(texts, order, units, scores, keep, ranking=ranking)

    kept_parts = Assembler([texts[i] for i in order], units).kept_parts(keep)
    for k, i in enumerate(order):
        context = result.contexts[i]
        assert context.kept_text(texts[i]) == kept_parts[k]
        assert context.position == k and context.rank == ranking.index(i)
        assert sum(context.unit_lengths) == len(texts[i])
        # dropped text and kept text interleave back into the original
        spans = context.kept_spans
        assert all(a < b for a, b in spans)
        assert all(spans[j][1] < spans[j + 1][0] for j in range(len(spans) - 1))
    for i in set(range(n)) - set(order):
        assert result.contexts[i].position is None
        assert result.contexts[i].kept_spans == () and result.contexts[i].unit_lengths == ()
    assert Explanation.from_json(json.loads(json.dumps(result.to_json()))) == result


def test_json_form_is_compact_and_documented() -> None:
    texts = ["one two three", "dropped", "压缩 four"]
    units, scores = _units_and_scores([texts[2], texts[0]])
    keep = np.zeros(sum(len(u) for u in units), dtype=bool)
    keep[:2] = True  # "压缩" of context 2
    keep[len(units[0]) :][[0, 2]] = True  # "one", "two" of context 0
    data = explain(texts, [2, 0], units, scores, keep, ranking=[2, 0, 1]).to_json()
    assert data["offsets"] == "code points" and data["score"] == "surprisal"
    first, dropped, third = data["contexts"]
    assert first["kept"] == [3, 1, 3, 6] and first["kept_fraction"] == round(6 / 13, 3)
    assert (first["rank"], first["position"]) == (1, 1)
    assert dropped == {
        "index": 1,
        "length": 7,
        "kept": [0, 7],
        "kept_fraction": 0.0,
        "rank": 2,
        "position": None,
        "units": [],
        "surprisal": [],
    }
    assert third["kept"] == [2, 5] and third["units"][:2] == [1, 1]
    assert all(round(x, 2) == x for x in third["surprisal"])


def test_no_coarse_filter_means_no_rank() -> None:
    units, scores = _units_and_scores(["abc def"])
    result = explain(["abc def"], [0], units, scores, np.ones(len(units[0]), bool))
    assert not result.coarse and result.contexts[0].rank is None
    assert result.contexts[0].kept_runs == (7,) and result.contexts[0].kept_fraction == 1.0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kept_runs": (3, 2)}, "add up"),
        ({"kept_runs": (7, -2, 2)}, ">= 0"),
        ({"unit_lengths": (3, 3), "surprisal": (1.0, 2.0)}, "unit lengths"),
        ({"unit_lengths": (7,), "surprisal": ()}, "one score per unit"),
        ({"rank": -1}, "rank"),
    ],
)
def test_inconsistent_explanations_are_refused(fields: dict, message: str) -> None:
    base = {"index": 0, "length": 7, "kept_runs": (7,)}
    with pytest.raises(BadRequestError, match=message):
        ContextExplanation(**{**base, **fields})


def test_mismatched_inputs_are_refused() -> None:
    units, scores = _units_and_scores(["abc"])
    with pytest.raises(BadRequestError, match="keep has"):
        explain(["abc"], [0], units, scores, np.ones(9, bool))
    with pytest.raises(BadRequestError, match="one entry per context"):
        explain(["abc"], [0], units, [], np.ones(1, bool))
    with pytest.raises(BadRequestError, match="contexts"):
        Explanation.from_json({"contexts": "no"})
