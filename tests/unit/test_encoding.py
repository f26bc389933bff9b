"""Counting in target tokens piece by piece gives exactly the whole-text count."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tersify.encoding import (
    _CUT_BEFORE,
    _PIECES,
    SHIPPED_ENCODINGS,
    count_tokens,
    forget_counts,
    load_encoding,
)

from texts import sample_text

# Characters that move tiktoken's pre-tokenizer boundaries: cases, digits of every kind,
# apostrophes (contractions), marks, whitespace runs, CR LF, CJK and its punctuation.
TRICKY = [
    "a", "Z", "x", "The", "HTTP", "ǅ", "é", "e\u0301", "\u0301", "\u093e", "क", "ि", "ß",
    "0", "7", "²", "Ⅷ", "١", "'", "'s", "'T", "’", "\u02bc", "_", "-", ".", ",", "!", "?",
    "/", "…", "—", "“", "”", " ", "  ", "\t", "\n", "\r\n", "\r", "\n\n", "\u00a0",
    "\u3000", "压", "缩", "，", "。", "、", "（", "）", "🙂", "👩\u200d👧", "\u200d", "ا",
]


@pytest.mark.parametrize("name", SHIPPED_ENCODINGS)
@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(TRICKY), max_size=120).map("".join))
def test_piecewise_count_equals_whole_text_encoding(name: str, text: str) -> None:
    encoding = load_encoding(name)
    forget_counts()
    assert count_tokens(encoding, text) == len(encoding.encode_ordinary(text))
    # and again from remembered pieces
    assert count_tokens(encoding, text) == len(encoding.encode_ordinary(text))


@pytest.mark.parametrize("name", SHIPPED_ENCODINGS)
@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from(TRICKY), min_size=60, max_size=400),
    st.lists(st.integers(0, 5), min_size=400, max_size=400),
    st.booleans(),
)
def test_a_text_sharing_some_pieces_with_one_counted_before(
    name: str, words: list[str], drops: list[int], coarse: bool
) -> None:
    # As in the budget search: the second text drops words here and there, so its new
    # pieces come from all over it and are counted together, in one encoding.
    encoding = load_encoding(name)
    forget_counts()
    text = "".join(words)
    kept = "".join(word for word, drop in zip(words, drops, strict=False) if drop)
    assert count_tokens(encoding, text, coarse=coarse) == len(encoding.encode_ordinary(text))
    assert count_tokens(encoding, kept) == len(encoding.encode_ordinary(kept))
    assert count_tokens(encoding, kept, coarse=True) == len(encoding.encode_ordinary(kept))


@pytest.mark.parametrize("name", SHIPPED_ENCODINGS)
@pytest.mark.parametrize("kind", ["english", "chinese", "code", "mixed"])
@pytest.mark.parametrize("coarse", [False, True])
def test_piecewise_count_on_real_text(name: str, kind: str, coarse: bool) -> None:
    encoding = load_encoding(name)
    for seed in range(5):
        text = sample_text(kind, 3000, seed)
        expected = len(encoding.encode_ordinary(text))
        assert count_tokens(encoding, text, coarse=coarse) == expected
        shorter = text[: len(text) // 2] + text[len(text) // 2 + 7 :]  # new pieces mid-text
        assert count_tokens(encoding, shorter) == len(encoding.encode_ordinary(shorter))


@settings(deadline=None)
@given(st.text(max_size=200))
def test_piecewise_count_on_any_text(text: str) -> None:
    encoding = load_encoding()
    assert count_tokens(encoding, text) == len(encoding.encode_ordinary(text))


# The obviously right way to find pieces: the first cut at least 25 characters in.
SLOW_PIECES = re.compile(rf"(?s).{{24,}}?[^\W_](?=[{_CUT_BEFORE}])")


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from([*TRICKY, "ab", "x y", "压缩提示"]), max_size=300).map("".join))
def test_pieces_found_a_run_at_a_time_are_the_slow_patterns(text: str) -> None:
    assert _PIECES.findall(text) == SLOW_PIECES.findall(text)
