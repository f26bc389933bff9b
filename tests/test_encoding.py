"""Counting in target tokens piece by piece gives exactly the whole-text count."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tersify.encoding import SHIPPED_ENCODINGS, count_tokens, forget_counts, load_encoding

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
@pytest.mark.parametrize("kind", ["english", "chinese", "code", "mixed"])
def test_piecewise_count_on_real_text(name: str, kind: str) -> None:
    encoding = load_encoding(name)
    for seed in range(5):
        text = sample_text(kind, 3000, seed)
        assert count_tokens(encoding, text) == len(encoding.encode_ordinary(text))


@settings(deadline=None)
@given(st.text(max_size=200))
def test_piecewise_count_on_any_text(text: str) -> None:
    encoding = load_encoding()
    assert count_tokens(encoding, text) == len(encoding.encode_ordinary(text))
