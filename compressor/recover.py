"""``recover``: map an answer written from a compressed prompt back to the original text.

An LLM that read a compressed prompt may quote its fragments ("LLua" for "LLMLingua").
The compressed prompt is a subsequence of the original, so each of its characters has
a place in the original; a fragment of the answer found in the compressed prompt is
replaced by the original text between its first and last characters' places.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[A-Za-z0-9_\-.]+|[\u3400-\u9fff]+")
_MAX_GAP = 40  # characters of the original a recovered fragment may add, beyond its own


def align(original: str, compressed: str) -> list[int] | None:
    """Where each character of ``compressed`` sits in ``original`` (greedy), or None.

    >>> align("abcdef", "bdf")
    [1, 3, 5]
    """
    places = []
    position = 0
    for ch in compressed:
        position = original.find(ch, position)
        if position < 0:
            return None
        places.append(position)
        position += 1
    return places


def recover(original: str, compressed: str, response: str) -> str:
    """Rewrite ``response`` with compressed fragments expanded from ``original``.

    Fragments that already appear in the original, or that cannot be placed, are left
    as they are.

    >>> recover("LLMLingua compresses prompts.", "LLua compress prompts.", "LLua is fast")
    'LLMLingua is fast'
    """
    places = align(original, compressed)
    if places is None:
        return response
    pieces = []
    last = 0
    for match in _WORD.finditer(response):
        word = match.group()
        if _whole_word_in(word, original):
            continue
        found = compressed.find(word)
        if found < 0:
            continue
        start, end = places[found], places[found + len(word) - 1] + 1
        if end - start > len(word) + _MAX_GAP:
            continue
        # widen to whole words of the original around the span
        while start > 0 and original[start - 1].isalnum() and original[start].isalnum():
            start -= 1
        while end < len(original) and original[end].isalnum() and original[end - 1].isalnum():
            end += 1
        pieces.append(response[last : match.start()])
        pieces.append(original[start:end])
        last = match.end()
    pieces.append(response[last:])
    return "".join(pieces)


def _whole_word_in(word: str, text: str) -> bool:
    if not word.isascii():
        return word in text
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(word)}(?![A-Za-z0-9])", text) is not None
