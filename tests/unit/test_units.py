"""Units: the smallest runs of scorer tokens that make whole characters (and clusters).

Tiling is checked on the fake's offsets and on real ``tokenizers`` offsets: a byte-level
BPE, whose tokens end and start inside characters, and a WordPiece that drops whitespace,
so that a text's first token may start after position 0.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
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


# -- group_units itself: the vectorised grouping, clusters and bidi spans -------------------


def _loop_reference(offsets: np.ndarray, text_length: int) -> tuple[list[int], list[int]]:
    """The obviously correct grouping, one token at a time."""
    starts: list[int] = []
    token_unit, covered = [], 0
    for start, end in offsets.tolist():
        if not starts or (end > start and start >= covered and start > starts[-1]):
            starts.append(0 if not starts else start)
        covered = max(covered, end)
        token_unit.append(len(starts) - 1)
    if not starts and text_length:
        starts.append(0)
    return starts, token_unit


@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 6)), max_size=40))
def test_vectorised_grouping_matches_the_loop(pairs: list[tuple[int, int]]) -> None:
    # offsets as tokenizers give them: starts never decrease, a token may be empty
    starts = np.sort(np.array([p[0] for p in pairs], dtype=np.int64))
    offsets = np.stack([starts, starts + [p[1] for p in pairs]], axis=1) if pairs else (
        np.zeros((0, 2), dtype=np.int64)
    )
    length = int(offsets.max()) + 1 if pairs else 3
    units = group_units(offsets, length)
    want_starts, want_units = _loop_reference(offsets, length)
    assert units.starts.tolist() == want_starts
    assert units.token_unit.tolist() == want_units


def test_safe_characters_never_join_a_neighbour() -> None:
    """Between two characters of SAFE_RANGES there is always a cluster boundary."""
    import re

    import regex

    from tersify.graphemes import SAFE_RANGES

    safe = re.compile(f"[{SAFE_RANGES}]")
    chars = [chr(c) for c in range(0x110000) if 0xD800 > c or c > 0xDFFF]
    chars = [c for c in chars if safe.fullmatch(c)]
    assert len(chars) > 25_000
    for left in ("a", "压", "\u00a9"):
        joined = "".join(left + c for c in chars)
        assert len(regex.findall(r"\X", joined)) == 2 * len(chars)


SEGMENT_PIECES = st.sampled_from(
    ["a", "压", " ", "\n", "\r", "©", "\u0301", "\u200d", "\u0600", "\u0915", "\u094d",
     "\U0001f1ef", "\U0001f1f5", "\U0001f469", "\U0001f3fd", "\u1100", "\u1161", "\u11a8",
     "\uac00", "\u0e33", "\uff9e", "ｶ", "\u302a", "\u3099", "か", "\u202e", "\u2069"]
)


@settings(max_examples=300)
@given(st.lists(SEGMENT_PIECES, max_size=40).map("".join))
def test_cluster_spans_equal_whole_text_segmentation(text: str) -> None:
    import regex

    from tersify.graphemes import cluster_spans

    whole = [(m.start(), m.end()) for m in regex.finditer(r"\X", text) if len(m.group()) > 1]
    assert cluster_spans(text) == whole


BIDI_TEXTS = [
    "pay \u202eevil.exe\u202c now",  # an override closed by PDF
    "a \u2067\u05e9\u05dc\u05d5\u05dd world\u2069 b",  # an isolate closed by PDI
    "x \u202b\u2066 nested \u202c inner\u2069 still open\u202c y",  # nesting
    "open \u202e never closed\nnext paragraph \u202d again",  # closed by paragraph ends
]


@pytest.mark.parametrize("text", BIDI_TEXTS)
def test_bidi_controls_and_the_paragraph_ends_closing_them_are_forced_units(text: str) -> None:
    from tersify.graphemes import bidi_anchors
    from tersify.tokens import TokenFilter

    offsets = FakeScorer().tokenize(text).offsets
    units = group_units(offsets, text)
    check_tiling(text, offsets, units)
    anchors = bidi_anchors(text)
    assert anchors
    forced = TokenFilter().forced(text, units)
    for at in anchors:
        assert text[at] in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\n"
        holding = int(np.searchsorted(units.starts, at, side="right")) - 1
        assert units.starts[holding] <= at < units.ends[holding] and forced[holding]
    # Only the anchors' units: the text between them is cut and dropped like any other.
    assert forced.sum() <= len(anchors) < len(units)


BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
BIDI_WORDS = st.sampled_from(
    ["word", " ", "text", ".", "\n", "\u05e9\u05dc\u05d5\u05dd", "42", *BIDI_CONTROLS]
)


def _controls_and_closers(text: str) -> list[str]:
    from tersify.graphemes import bidi_anchors

    return [text[at] for at in bidi_anchors(text)]


@settings(max_examples=60, deadline=None)
@given(st.lists(BIDI_WORDS, min_size=30, max_size=120).map("".join), st.sampled_from([0.3, 0.6]))
# Found by hypothesis: the budget holds every control but not the last paragraph end.
@example("word" * 16 + "\u202a" * 8 + "\n" + "\u202a" * 4 + "\n", 0.6)
def test_a_compression_keeps_every_bidi_span_closed_as_it_was(text: str, rate: float) -> None:
    from tersify import Compressor
    from tersify.errors import BadRequestError

    try:
        result = Compressor(FakeScorer()).compress([text], rate=rate)
    except BadRequestError:
        return  # a budget below the anchors alone: refused, never broken
    kept = result.compressed_prompt
    controls = [c for c in text if c in BIDI_CONTROLS]
    units = group_units(FakeScorer().tokenize(text).offsets, text)
    forced = TokenFilter().forced(text, units)
    anchor_text = "".join(
        text[a:b] for a, b, f in zip(units.starts, units.ends, forced, strict=True) if f
    )
    below_the_anchors = kept != anchor_text and anchor_text.startswith(kept)
    if [c for c in kept if c in BIDI_CONTROLS] == controls and not below_the_anchors:
        # Each opener is still closed by what closed it (a terminator or a paragraph end).
        assert _controls_and_closers(kept) == _controls_and_closers(text)
        return
    # A budget below the forced units alone keeps a prefix of them in text order and
    # nothing else (every control may be in it, a last paragraph end not): no text that was
    # outside a span can come after an opener left open.
    assert anchor_text.startswith(kept)


@pytest.mark.parametrize("first", ["\u2066", "\u2067", "\u2068", "\u2069", "\u200e", "\u202e"])
def test_a_context_that_begins_with_a_format_character_compresses_like_any_other(
    first: str,
) -> None:
    from tersify import Compressor

    body = sample_text("english", 2000, 3)
    plain = Compressor(FakeScorer()).compress([body], rate=0.5)
    marked = Compressor(FakeScorer()).compress([first + body], rate=0.5)
    assert marked.compressed_prompt.startswith(first)
    assert abs(marked.compressed_tokens - plain.compressed_tokens) <= 3
    assert marked.compressed_tokens <= marked.target_tokens


def test_a_text_without_tokens_is_one_unit_and_an_empty_text_none() -> None:
    none = np.zeros((0, 2), dtype=np.int64)
    units = group_units(none, 5)
    assert units.starts.tolist() == [0] and units.ends.tolist() == [5] and len(units) == 1
    assert units.token_unit.tolist() == []
    assert len(group_units(none, 0)) == 0
    # tokens that cover nothing join the unit before them
    units = group_units(np.array([[0, 3], [3, 3], [3, 5]], dtype=np.int64), 5)
    assert units.starts.tolist() == [0, 3] and units.token_unit.tolist() == [0, 0, 1]
