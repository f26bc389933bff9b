"""Units: the smallest runs of scorer tokens that make whole characters (and clusters).

Tiling is checked on the fake's offsets and on real ``tokenizers`` offsets: a byte-level
BPE, whose tokens end and start inside characters, and a WordPiece that drops whitespace,
so that a text's first token may start after position 0.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tersify import TokenFilter, WindowPlan
from tersify.scoring import Units, group_units
from tersify.selection import Selection

from answers import check_graphemes, check_tiling
from fakes import FakeScorer, TokenizerScorer
from texts import sample_text
from tiny_model import byte_level_bpe, whitespace_wordpiece

TEXTS = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=st.sampled_from(list("ab 压缩\n。,1é\u0301🇯🇵👩\u200d👧")), max_size=60),
    st.builds(sample_text, st.sampled_from(["english", "chinese", "code", "mixed"]),
              st.integers(1, 400), st.integers(0, 50)),
)


@cache
def _real(name: str) -> TokenizerScorer:
    tokenizer = {
        "byte-level": lambda: byte_level_bpe(1200, ("chinese", "mixed")),
        "wordpiece": whitespace_wordpiece,
    }[name]()
    return TokenizerScorer(tokenizer)


def _units(scorer: FakeScorer, text: str) -> tuple[np.ndarray, Units]:
    """The units the compressor uses for ``text`` (through its one call site)."""
    selection = Selection(scorer, WindowPlan(), len, [text], "", TokenFilter())  # type: ignore[arg-type]
    return selection.tokens[0].offsets, selection.units(0)


def test_chinese_byte_tokens_make_one_unit() -> None:
    text = "压缩prompt"
    offsets, units = _units(FakeScorer(), text)
    assert len(offsets) == 7  # 3 + 3 bytes, then one word
    assert [text[a:b] for a, b in zip(units.starts, units.ends)] == ["压", "缩", "prompt"]


@given(TEXTS)
def test_units_tile_any_text(text: str) -> None:
    check_tiling(text, *_units(FakeScorer(), text))


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(TEXTS, st.sampled_from(["byte-level", "wordpiece"]))
def test_units_tile_real_tokenizer_offsets(text: str, tokenizer: str) -> None:
    check_tiling(text, *_units(_real(tokenizer), text))


def test_byte_level_tokens_overlapping_inside_characters_share_a_unit() -> None:
    """A byte-level BPE token may start inside the character where the previous one ended:
    (0, 2) then (1, 2). Both must land in one unit, or a unit boundary cuts a token."""
    text = sample_text("chinese", 3000, 9)
    offsets, units = _units(_real("byte-level"), text)
    starts, ends = offsets[:, 0], offsets[:, 1]
    covered = np.maximum.accumulate(ends)
    straddling = (starts[1:] < covered[:-1]) & (starts[1:] > starts[:-1]) & (ends[1:] > starts[1:])
    assert straddling.sum() >= 5  # the tokenizer really does this on this text
    check_tiling(text, offsets, units)


@pytest.mark.parametrize(
    "text", ["   leading spaces", "\n\n\tindented code()", " 压缩 first", "  é\u0301 mark"]
)
def test_first_unit_starts_at_zero_when_the_first_token_does_not(text: str) -> None:
    offsets, units = _units(_real("wordpiece"), text)
    assert offsets[0, 0] > 0  # the tokenizer skipped the leading whitespace
    assert units.starts[0] == 0
    check_tiling(text, offsets, units)


def test_overlapping_and_empty_offsets() -> None:
    offsets = np.array([[0, 2], [1, 2], [2, 2], [2, 5], [5, 6]], dtype=np.int64)
    units = group_units(offsets, 7)
    assert units.starts.tolist() == [0, 2, 5]
    assert units.ends.tolist() == [2, 5, 7]
    assert units.token_unit.tolist() == [0, 0, 0, 1, 2]


def test_a_token_starting_inside_the_covered_span_joins_its_unit() -> None:
    # (0, 2) then (1, 3): the second starts inside the first; then (3, 4) is new.
    units = group_units(np.array([[0, 2], [1, 3], [3, 4]], dtype=np.int64), 4)
    assert units.starts.tolist() == [0, 3]
    assert units.token_unit.tolist() == [0, 0, 1]


def test_a_late_first_token_still_gives_a_unit_from_zero() -> None:
    units = group_units(np.array([[2, 4], [5, 6]], dtype=np.int64), 7)
    assert units.starts.tolist() == [0, 5] and units.ends.tolist() == [5, 7]


CLUSTERS = [
    "e\u0301",  # e + combining acute
    "👩\u200d👩\u200d👧",  # a ZWJ family
    "🇫🇷",  # a flag: two regional indicators
    "👍🏽",  # emoji + skin tone modifier
    "\u0915\u094d\u0937\u093f",  # Devanagari conjunct kssi
    "\u1100\u1161\u11a8",  # Hangul jamo L V T
    "\r\n",
]


@pytest.mark.parametrize("scorer", ["fake", "byte-level"])
@pytest.mark.parametrize("cluster", CLUSTERS)
def test_no_unit_boundary_splits_a_grapheme_cluster(scorer: str, cluster: str) -> None:
    text = f"Look: {cluster} and{cluster}{cluster}, then 压{cluster}缩 end {cluster}"
    tokenizer = FakeScorer() if scorer == "fake" else _real("byte-level")
    offsets, units = _units(tokenizer, text)
    check_tiling(text, offsets, units)
    check_graphemes(text, units)


PIECES = st.sampled_from(["a", " ", "压", *CLUSTERS, "\u0301", "\u200d", "\U0001f3fd"])


@given(st.lists(PIECES, max_size=30).map("".join))
def test_units_keep_grapheme_clusters_whole(text: str) -> None:
    _, units = _units(FakeScorer(), text)
    check_graphemes(text, units)
