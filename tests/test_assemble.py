from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tersify.assemble import Assembler, fit_budget, join_prompt
from tersify.encoding import count_tokens, load_encoding
from tersify.scoring import group_units
from tersify.tokens import selection_order

from fakes import FakeScorer

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
