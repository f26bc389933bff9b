r"""Where a text may be cut without changing what it shows.

An *extended grapheme cluster* (Unicode UAX #29) stays whole when units are kept or
dropped: a ZWJ emoji sequence, a flag (a pair of regional indicators), a letter with its
combining marks, a Hangul syllable of jamo, CR LF. Segmentation is the ``regex``
module's ``\X`` (a dependency of tiktoken), run only around the characters that can join a
neighbour: text made of ASCII, Latin, general punctuation, CJK ideographs, kana and
fullwidth forms is cut anywhere between code points at no cost.

A *bidi embedding, override or isolate* (U+202A-202E, U+2066-2069) is closed by a PDF
(U+202C) or PDI (U+2069), or by the end of its paragraph when nothing closes it. Keeping
an opener without its terminator would reorder the text after it; keeping the whole span
as one unit would make it incompressible (a context that begins with an isolate never
closed is one paragraph-long unit). So the text inside is cut like any other, and the
controls themselves, with the paragraph ends that close a span, are *anchors*: the units
holding them are always kept (``tersify.tokens.TokenFilter.forced``).
"""

from __future__ import annotations

import functools
import re

import numpy as np
import numpy.typing as npt
import regex

IntArray = npt.NDArray[np.int64]

# Characters whose Grapheme_Cluster_Break is Other or Control (never Extend, ZWJ,
# SpacingMark, Prepend, Regional_Indicator, Hangul jamo or CR): between two of them there
# is always a cluster boundary. tests/test_units.py checks every one against ``\X``.
SAFE_RANGES = (
    "\t\n\x0b\x0c\x20-\x7e\xa0-\u02ff\u2000-\u200a\u2010-\u2027\u2030-\u205e"
    "\u3000-\u3029\u3030-\u303f\u3041-\u3096\u30a0-\u30ff\u3400-\u4dbf\u4e00-\u9fff"
    "\uff01-\uff60"
)
_UNSAFE_RUNS = re.compile(f"[^{SAFE_RANGES}]+")
_CLUSTER = regex.compile(r"\X")

EMBEDDINGS = "\u202a\u202b\u202d\u202e"  # LRE, RLE, LRO, RLO: closed by PDF
PDF = "\u202c"
ISOLATES = "\u2066\u2067\u2068"  # LRI, RLI, FSI: closed by PDI
PDI = "\u2069"
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069\n\r\u2029\x1c-\x1e\x85]")
_PARAGRAPH_END = "\n\r\u2029\x1c\x1d\x1e\x85"
_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")


def cluster_spans(text: str) -> list[tuple[int, int]]:
    """Spans ``(start, end)`` of the grapheme clusters longer than one code point.

    >>> cluster_spans("ok 👍🏽 🇯🇵!")
    [(3, 5), (6, 8)]
    """
    if _all_safe(text):
        return []
    # Regions: each run of unsafe characters with one safe character either side. Rules
    # that look back (emoji ZWJ sequences, flag pairs, Indic conjuncts) cross only unsafe
    # characters, so a region's segmentation is the whole text's.
    regions: list[list[int]] = []
    for run in _UNSAFE_RUNS.finditer(text):
        start, end = max(0, run.start() - 1), min(len(text), run.end() + 1)
        if regions and start <= regions[-1][1]:
            regions[-1][1] = end
        else:
            regions.append([start, end])
    return [
        (cluster.start(), cluster.end())
        for start, end in regions
        for cluster in _CLUSTER.finditer(text, start, end)
        if cluster.end() - cluster.start() > 1
    ]


def _all_safe(text: str) -> bool:
    """Whether ``text`` holds only safe characters (a table look-up per character)."""
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    return bool(_safe_table().take(codes, mode="clip").all())  # clip: past the BMP, unsafe


@functools.cache
def _safe_table() -> npt.NDArray[np.bool_]:
    """Whether each code point of the BMP is safe; index 0x10000 stands for all past it."""
    table = np.ones(0x10001, dtype=np.bool_)
    table[0x10000] = False
    for run in _UNSAFE_RUNS.finditer("".join(map(chr, range(0x10000)))):
        table[run.start() : run.end()] = False
    return table


def bidi_spans(text: str) -> list[tuple[int, int]]:
    """Outermost spans from a bidi opener to its terminator (or its paragraph's end).

    >>> bidi_spans("a\u202eevil\u202c b \u2067x")
    [(1, 7), (10, 12)]
    """
    if not any(c in text for c in EMBEDDINGS + ISOLATES):
        return []
    spans: list[tuple[int, int]] = []
    stack: list[str] = []
    opened = 0
    for match in _BIDI.finditer(text):
        char, at = match.group(), match.start()
        if char in _PARAGRAPH_END:  # a paragraph end closes everything still open
            if stack:
                spans.append((opened, at))
                stack.clear()
            continue
        was_open = bool(stack)
        _step(stack, char)
        if stack and not was_open:
            opened = at
        elif was_open and not stack:
            spans.append((opened, at + 1))
    if stack:
        spans.append((opened, len(text)))
    return spans


def _step(stack: list[str], char: str) -> None:
    """UAX #9's matching: PDF closes an embedding, PDI an isolate and all opened inside it."""
    if char in EMBEDDINGS or char in ISOLATES:
        stack.append(char)
    elif char == PDF and stack and stack[-1] in EMBEDDINGS:
        stack.pop()
    elif char == PDI and any(c in ISOLATES for c in stack):
        while stack.pop() not in ISOLATES:
            pass


def bidi_anchors(text: str) -> list[int]:
    r"""Positions of the characters a compression keeps so that bidi spans close as before.

    Every bidi control, and each paragraph end that closes a span still open.

    >>> bidi_anchors("\u2067x y\nz \u202eq\u202c")
    [0, 4, 7, 9]
    """
    if not any(c in text for c in EMBEDDINGS + ISOLATES):
        return []
    controls = [m.start() for m in _CONTROLS.finditer(text)]
    spans = bidi_spans(text)
    closing = [end for _, end in spans if end < len(text) and text[end] in _PARAGRAPH_END]
    return sorted(controls + closing)


def inside(positions: IntArray, spans: list[tuple[int, int]]) -> npt.NDArray[np.bool_]:
    """Which ``positions`` fall strictly inside one of ``spans`` (a cut there splits it)."""
    if not spans:
        return np.zeros(len(positions), dtype=np.bool_)
    ordered = np.asarray(sorted(spans), dtype=np.int64)
    reach = np.maximum.accumulate(ordered[:, 1])
    before = np.searchsorted(ordered[:, 0], positions, side="left") - 1
    covered = np.where(before >= 0, reach[np.maximum(before, 0)], -1)
    return np.asarray((before >= 0) & (covered > positions), dtype=np.bool_)
