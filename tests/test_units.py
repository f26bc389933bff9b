from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from tersify.scoring import group_units

from fakes import FakeScorer


def _check_tiling(text: str) -> None:
    tokens = FakeScorer().tokenize(text)
    units = group_units(tokens.offsets, len(text))
    if not text:
        assert len(units) == 0
        return
    assert units.starts[0] == 0 and units.ends[-1] == len(text)
    assert (units.starts[1:] == units.ends[:-1]).all()
    assert (units.ends > units.starts).all()
    assert "".join(text[a:b] for a, b in zip(units.starts, units.ends)) == text
    # tokens map to units in order, and a unit's tokens all lie inside it
    assert (np.diff(units.token_unit) >= 0).all()
    for (start, end), unit in zip(tokens.offsets.tolist(), units.token_unit.tolist()):
        if end > start:
            assert units.starts[unit] <= start and end <= units.ends[unit]


def test_chinese_byte_tokens_make_one_unit() -> None:
    text = "压缩prompt"
    tokens = FakeScorer().tokenize(text)
    assert len(tokens.ids) == 7  # 3 + 3 bytes, then one word
    units = group_units(tokens.offsets, len(text))
    assert [text[a:b] for a, b in zip(units.starts, units.ends)] == ["压", "缩", "prompt"]


@given(st.text(alphabet=st.sampled_from(list("ab 压缩\n。,1")), max_size=60))
def test_units_tile_the_text(text: str) -> None:
    _check_tiling(text)


@given(st.text(max_size=80))
def test_units_tile_any_text(text: str) -> None:
    _check_tiling(text)


def test_overlapping_and_empty_offsets() -> None:
    offsets = np.array([[0, 2], [1, 2], [2, 2], [2, 5], [5, 6]], dtype=np.int64)
    units = group_units(offsets, 7)
    assert units.starts.tolist() == [0, 2, 5]
    assert units.ends.tolist() == [2, 5, 7]
    assert units.token_unit.tolist() == [0, 0, 0, 1, 2]
