"""A fake scorer for unit tests: a real tokenizer shape, deterministic log-probs, no model.

It splits text into words, spaces and single CJK characters, and splits each CJK
character into its UTF-8 bytes as separate tokens, as byte-level tokenizers do, so that
unit grouping is exercised. Log-probs depend on the token and its predecessor only.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import numpy as np

from tersify.scoring import FloatArray, IntArray, Tokenized

_PIECES = re.compile(r"[A-Za-z]+|\d|\s+|[\u3400-\u9fff]|.", re.DOTALL)


class FakeScorer:
    """Deterministic stand-in for an exported scorer."""

    name = "fake"
    bos_token_id: int | None = 1

    def __init__(self, max_window: int = 64) -> None:
        self.max_window = max_window
        self.calls: list[int] = []  # windows per logprobs() call

    def tokenize(self, text: str) -> Tokenized:
        ids: list[int] = []
        offsets: list[tuple[int, int]] = []
        for match in _PIECES.finditer(text):
            piece = match.group()
            if "\u3400" <= piece[0] <= "\u9fff":
                for byte in piece.encode("utf-8"):  # one token per byte, like byte fallback
                    ids.append(10 + byte)
                    offsets.append((match.start(), match.end()))
            else:
                ids.append(300 + zlib.crc32(piece.encode()) % 5000)
                offsets.append((match.start(), match.end()))
        return Tokenized(
            ids=np.asarray(ids, dtype=np.int64),
            offsets=np.asarray(offsets, dtype=np.int64).reshape(-1, 2),
        )

    def logprobs(self, windows: Sequence[IntArray]) -> list[FloatArray]:
        self.calls.append(len(windows))
        out = []
        for window in windows:
            assert len(window) <= self.max_window
            row = np.zeros(len(window), dtype=np.float32)
            for t in range(1, len(window)):
                h = zlib.crc32(f"{window[t - 1]}:{window[t]}".encode())
                row[t] = -((h % 1000) / 100.0)
            out.append(row)
        return out
