"""The target LLM's tokenizer: budgets are counted in its tokens.

The BPE files ship inside the package (``tersify/encodings``), so counting never
downloads anything. ``cl100k_base`` (GPT-4, GPT-3.5) is the default; ``o200k_base``
(GPT-4o and later) is the other one shipped.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
from importlib import resources
from typing import Any

import numpy as np
import numpy.typing as npt
import tiktoken

from tersify.errors import BadRequestError, InternalError

DEFAULT_ENCODING = "cl100k_base"
SHIPPED_ENCODINGS = ("cl100k_base", "o200k_base")


@functools.lru_cache(maxsize=len(SHIPPED_ENCODINGS))
def load_encoding(name: str = DEFAULT_ENCODING) -> tiktoken.Encoding:
    """Return the shipped tiktoken encoding called ``name``, read from package files.

    >>> len(load_encoding("cl100k_base").encode("hello world"))
    2
    """
    if name not in SHIPPED_ENCODINGS:
        raise BadRequestError(
            f"encoding={name!r} is not shipped with tersify; use one of {list(SHIPPED_ENCODINGS)}"
        )
    folder = resources.files("tersify").joinpath("encodings")
    spec = json.loads(folder.joinpath(f"{name}.json").read_text(encoding="utf-8"))
    raw = folder.joinpath(f"{name}.tiktoken").read_bytes()
    if hashlib.sha256(raw).hexdigest() != spec["sha256"]:
        raise InternalError(f"the installed {name}.tiktoken is corrupt; reinstall tersify")
    ranks = {
        base64.b64decode(token): int(rank)
        for token, rank in (line.split() for line in raw.splitlines() if line)
    }
    return tiktoken.Encoding(
        name=name,
        pat_str=spec["pat_str"],
        mergeable_ranks=ranks,
        special_tokens={str(k): int(v) for k, v in spec["special_tokens"].items()},
    )


# Between a letter or digit and a space or punctuation mark (not an apostrophe, which may
# open a contraction, nor a combining mark) both shipped encodings' pre-tokenizers always
# cut, so a text's count is the sum of its pieces' counts cut there. Pieces of at least
# _PIECE characters are counted once each and remembered: the prompts that the budget
# bisection counts share most of their pieces. A whole prompt, which the search's prompts
# share few pieces with, is cut coarser, in chunks of at least _CHUNK characters: fewer to
# remember, and a later request with the same documents shares all but the last ones.
# The parts not remembered yet are counted together, in one encoding of their
# concatenation (each one after the first starts with a cut character and each one before
# the last ends with a letter or digit, so their joins are cuts too); each part's count is
# read off the token ends in bytes. tests/test_encoding.py checks the sum against
# whole-text encoding on adversarial text.
_CUT_BEFORE = (
    " \t\n!\"#$%&()*+,\\-./:;<=>?@\\[\\]^_`{|}~"
    "\u3001\u3002\uff0c\uff1b\uff1a\uff1f\uff01\uff08\uff09\u300a\u300b\u3010\u3011"
    "\u201c\u201d\u2018\u2019\u2026\u2014"
)
_PIECE = 24
_CHUNK = 256


class _Cutter:
    r"""Cuts a text into parts of ``size + 1`` characters or more, each ending at the first cut.

    The parts are those of ``(?s).{size,}?[^\W_](?=[cut])`` (tests/test_encoding.py keeps
    that pattern as the reference), found in time linear in the text whatever its shape:
    each search starts ``size`` characters past the previous part's end and stops at the
    next cut, so no character is looked at twice. The pattern itself, run by ``re``,
    retries every start of a run without cuts: quadratic (40,000 ``x`` took 8.6 s, with
    the GIL held throughout).

    >>> _Cutter(3).findall("one two three four")
    ['one two', ' three']
    """

    def __init__(self, size: int) -> None:
        self.size = size
        # A letter or digit followed by a cut: the part ends after the letter or digit.
        self._end = re.compile(rf"[^\W_](?=[{_CUT_BEFORE}])")

    def findall(self, text: str) -> list[str]:
        """The parts of ``text`` in order; what follows the last part is left out."""
        parts: list[str] = []
        start = 0
        while (end := self._next_end(text, start + self.size)) is not None:
            parts.append(text[start:end])
            start = end
        return parts

    def _next_end(self, text: str, position: int) -> int | None:
        """The first part end after ``position``, looked for a stretch at a time.

        ``re`` holds the GIL for a whole search: a 1 MB run without cuts would stop every
        other thread (a server's event loop) for 50-80 ms; a stretch takes about 3 ms.
        """
        while position < len(text):
            # A match at j needs text[j + 1]: stretches overlap by one character.
            found = self._end.search(text, position, position + _STRETCH + 1)
            if found is not None:
                return found.end()
            position += _STRETCH
        return None


_STRETCH = 1 << 16
_PIECES = _Cutter(_PIECE)
_CHUNKS = _Cutter(_CHUNK)
_REMEMBERED = 1 << 16
# A part longer than this (a run without cuts: a hex blob, a line of one character) is
# counted each time rather than kept: 65,536 of them could hold gigabytes.
_REMEMBERED_LENGTH = 4096
_ONE_BY_ONE = 12  # up to this many new parts, encoding each costs less than the batch


def count_tokens(encoding: tiktoken.Encoding, text: str, *, coarse: bool = False) -> int:
    """Count ``text`` in target tokens; special-token text counts as ordinary text.

    ``coarse`` remembers it by chunks rather than pieces: for a whole prompt, whose
    pieces the prompts of its budget search seldom share.

    >>> count_tokens(load_encoding(), "Prompt compression, piece by piece: 压缩提示。" * 3)
    42
    """
    if len(text) < 4 * _PIECE:
        return len(encoding.encode_ordinary(text))
    parts: list[str] = (_CHUNKS if coarse else _PIECES).findall(text)
    covered = sum(map(len, parts))
    if covered < len(text):
        parts.append(text[covered:])
    remembered = _remembered(encoding)
    found = list(map(remembered.get, parts))
    if None not in found:
        return sum(found)  # type: ignore[arg-type]  # no None in it
    new = [part for part, count in zip(parts, found, strict=True) if count is None]
    counts = _count_each(encoding, new)
    if len(remembered) + len(new) > _REMEMBERED:
        remembered.clear()
    remembered.update(
        (part, count)
        for part, count in zip(new, counts, strict=True)
        if len(part) <= _REMEMBERED_LENGTH
    )
    return sum(filter(None, found)) + sum(counts)


def _count_each(encoding: tiktoken.Encoding, pieces: list[str]) -> list[int]:
    """The count of each part, in the order of the text they were cut from."""
    if len(pieces) > _ONE_BY_ONE:
        try:
            tokens = encoding.encode_to_numpy("".join(pieces), disallowed_special=())
        except UnicodeEncodeError:  # a lone surrogate: tiktoken replaces it piece by piece
            pass
        else:
            # A part ends where the characters begun so far are those before its end: the
            # tokens up to there are its and its predecessors' (none straddles a cut).
            begun = np.cumsum(_token_starts(encoding)[tokens], dtype=np.int64)
            ends = np.fromiter(map(len, pieces), np.int64, len(pieces)).cumsum()
            counts = np.searchsorted(begun, ends, side="right")
            counts[1:] -= counts[:-1].copy()
            return counts.tolist()  # type: ignore[no-any-return]
    return [len(encoding.encode_ordinary(piece)) for piece in pieces]


@functools.lru_cache(maxsize=len(SHIPPED_ENCODINGS))
def _remembered(encoding: tiktoken.Encoding) -> dict[str, int]:
    """The piece and chunk counts remembered for ``encoding``."""
    return {}


@functools.lru_cache(maxsize=len(SHIPPED_ENCODINGS))
def _token_starts(encoding: tiktoken.Encoding) -> npt.NDArray[np.integer[Any]]:
    """How many characters each ordinary token begins (its UTF-8 lead bytes), by token id."""
    ranks = getattr(encoding, "_mergeable_ranks", None)  # 5x faster than asking each token
    if not isinstance(ranks, dict) or not ranks:
        ranks = {}
        for token in range(encoding.n_vocab):
            try:
                ranks[encoding.decode_single_token_bytes(token)] = token
            except KeyError:
                continue
    ids = np.fromiter(ranks.values(), dtype=np.int64, count=len(ranks))
    sizes = np.fromiter(map(len, ranks), dtype=np.int64, count=len(ranks))
    leads = (np.frombuffer(b"".join(ranks), dtype=np.uint8) & 0xC0) != 0x80
    begun = np.concatenate([[0], np.cumsum(leads)])
    ends = np.cumsum(sizes)
    starts = np.zeros(encoding.n_vocab, dtype=np.int64)
    starts[ids] = begun[ends] - begun[ends - sizes]
    # The smallest type that holds them (one byte for the shipped encodings): a smaller
    # table stays in the cache while token ids index it at random.
    return starts.astype(np.min_scalar_type(int(starts.max(initial=0))))


def forget_counts() -> None:
    """Forget the remembered piece and chunk counts (for benchmarks that must start cold)."""
    _remembered.cache_clear()
