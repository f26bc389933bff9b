from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tersify.assemble import Assembler, fit_budget, join_prompt
from tersify.encoding import count_tokens, load_encoding
from tersify.scoring import Units, group_units
from tersify.tokens import selection_order

from fakes import FakeScorer
from texts import sample_text

ENC = load_encoding()


def _assembler(texts: list[str]) -> Assembler:
    scorer = FakeScorer()
    units = [group_units(scorer.tokenize(t).offsets, len(t)) for t in texts]
    return Assembler(texts, units)


def _build(assembler: Assembler, keep: np.ndarray) -> str:
    return join_prompt("Instruction.", assembler.kept_parts(keep), "Question?")


def _slow_build(texts: list[str], assembler: Assembler, keep: np.ndarray) -> str:
    """Obviously correct: concatenate every kept unit one by one."""
    scorer = FakeScorer()
    parts, index = [], 0
    for text in texts:
        units = group_units(scorer.tokenize(text).offsets, len(text))
        pieces = []
        for a, b in zip(units.starts.tolist(), units.ends.tolist()):
            if keep[index]:
                pieces.append(text[a:b])
            index += 1
        parts.append("".join(pieces))
    return join_prompt("Instruction.", parts, "Question?")


@given(
    st.lists(
        st.text(alphabet=st.sampled_from(list("ab 压缩\n.")), max_size=40), min_size=1, max_size=4
    ),
    st.data(),
)
def test_build_matches_slow_reference(texts: list[str], data: st.DataObject) -> None:
    assembler = _assembler(texts)
    keep = np.array(
        data.draw(st.lists(st.booleans(), min_size=assembler.n_units, max_size=assembler.n_units)),
        dtype=bool,
    )
    assert _build(assembler, keep) == _slow_build(texts, assembler, keep)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 400))
def test_fit_budget_lands_on_the_largest_prefix_that_fits(seed: int, budget: int) -> None:
    rng = np.random.default_rng(seed)
    texts = ["the fox 压缩 jumps over the dog. " * 10]
    assembler = _assembler(texts)
    scores = rng.random(assembler.n_units).astype(np.float32)
    order = selection_order([scores], [np.zeros(assembler.n_units, dtype=bool)], None)
    prompt, tokens, _ = fit_budget(
        order, lambda k: _build(assembler, k), lambda s: count_tokens(ENC, s), budget
    )
    assert tokens == count_tokens(ENC, prompt)
    floor = count_tokens(ENC, join_prompt("Instruction.", [], "Question?"))
    if floor > budget:
        assert prompt == join_prompt("Instruction.", [], "Question?")
        return
    assert tokens <= budget
    # one more unit would not fit, unless everything is already kept
    k = next(
        k
        for k in range(assembler.n_units + 1)
        if _build(assembler, np.isin(np.arange(assembler.n_units), order[:k])) == prompt
    )
    if k < assembler.n_units:
        bigger = _build(assembler, np.isin(np.arange(assembler.n_units), order[: k + 1]))
        assert count_tokens(ENC, bigger) > budget


def test_order_is_descending_and_stable() -> None:
    scores = np.array([1, 3, 3, 0, 2], dtype=np.float32)
    assert selection_order([scores], [np.zeros(5, dtype=bool)], None).tolist() == [1, 2, 4, 0, 3]


def _counting() -> tuple[list[str], object]:
    seen: list[str] = []

    def count(text: str) -> int:
        seen.append(text)
        return count_tokens(ENC, text)

    return seen, count


@pytest.mark.parametrize("n_chars", [2_000, 20_000, 80_000])
@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_fit_budget_counts_few_prompts(n_chars: int, fraction: float) -> None:
    """The search counts about log2(units) prompts, not one per unit."""
    assembler = _assembler([sample_text("english", n_chars, 3)])
    order = np.random.default_rng(0).permutation(assembler.n_units).astype(np.int64)
    full = count_tokens(ENC, _build(assembler, np.ones(assembler.n_units, dtype=bool)))
    seen, count = _counting()
    budget = int(full * fraction)
    prompt, tokens, keep = fit_budget(order, lambda k: _build(assembler, k), count, budget)
    assert tokens == count_tokens(ENC, prompt) <= budget
    assert len(seen) <= np.log2(assembler.n_units) + 6
    k = int(keep.sum())
    assert keep[order[:k]].all() and not keep[order[k:]].any()  # a prefix of the order
    bigger = np.zeros(assembler.n_units, dtype=bool)
    bigger[order[: k + 1]] = True
    assert count_tokens(ENC, _build(assembler, bigger)) > budget


def test_fit_budget_edges() -> None:
    assembler = _assembler(["alpha beta gamma delta"])
    n = assembler.n_units
    order = np.arange(n, dtype=np.int64)
    build = lambda keep: _build(assembler, keep)  # noqa: E731
    count = lambda text: count_tokens(ENC, text)  # noqa: E731
    whole = _build(assembler, np.ones(n, dtype=bool))
    # everything fits: everything is kept, also when it fills the budget exactly
    assert fit_budget(order, build, count, 10_000)[0] == whole
    assert fit_budget(order, build, count, count(whole))[0] == whole
    assert fit_budget(order, build, count, count(whole) - 1)[0] != whole
    # nothing fits, not even instruction and question: they alone are returned
    prompt, tokens, keep = fit_budget(order, build, count, 1)
    assert prompt == _build(assembler, np.zeros(n, dtype=bool)) and not keep.any()
    assert tokens == count(prompt) > 1
    # exactly the floor: no unit
    floor = count(_build(assembler, np.zeros(n, dtype=bool)))
    assert not fit_budget(order, build, count, floor)[2].any()
    # an empty order keeps nothing; units left out of the order are never kept
    assert not fit_budget(order[:0], build, count, 10_000, n_units=n)[2].any()
    _, _, keep = fit_budget(order[:2], build, count, 10_000, n_units=n)
    assert keep.tolist() == [True, True] + [False] * (n - 2)


def test_assembler_keeps_runs_in_order() -> None:
    units = [Units(np.array([0, 2, 4]), np.array([2, 4, 6]), np.arange(3))] * 2
    assembler = Assembler(["aabbcc", "ddeeff"], units)
    assert assembler.n_units == 6
    keep = np.array([True, False, True, False, True, True])
    assert assembler.kept_parts(keep) == ["aacc", "eeff"]
    assert assembler.kept_parts(np.zeros(6, dtype=bool)) == ["", ""]
    assert assembler.kept_parts(np.ones(6, dtype=bool)) == ["aabbcc", "ddeeff"]
    assert join_prompt("", ["", "x", ""], "") == "x"
    assert join_prompt("I", [], "Q") == "I\n\nQ"
