"""Real text for tests, from what every machine has: Python's own docs and source, and
the seed's request (Chinese and English mixed); and the hostile shapes a client may send."""

from __future__ import annotations

import base64
import inspect
import json
import random
import re
from functools import cache
from pathlib import Path

KINDS = ("english", "chinese", "code", "mixed")
MB = 1_000_000
SEED = Path(__file__).resolve().parent.parent / "examples" / "seed_request.json"


@cache
def _pool(kind: str) -> tuple[str, ...]:
    if kind == "english":
        from pydoc_data.topics import topics

        text = "\n\n".join(topics[k] for k in sorted(topics))
        return tuple(p for p in re.split(r"\n\s*\n", text) if len(p) > 80)
    if kind == "code":
        import argparse
        import json as json_module
        import textwrap

        source = "\n".join(inspect.getsource(m) for m in (argparse, json_module, textwrap))
        return tuple(b for b in re.split(r"\n(?=def |class |    def )", source) if len(b) > 80)
    seed = json.loads(SEED.read_text(encoding="utf-8"))["context"][0]
    lines = [line for line in seed.splitlines() if line.strip()]
    if kind == "chinese":
        return tuple(line for line in lines if re.search(r"[\u4e00-\u9fff]{4}", line))
    return tuple(lines) + _pool("english")[:200] + _pool("code")[:50]


def sample_text(kind: str, n_chars: int, seed: int) -> str:
    """About ``n_chars`` characters of ``kind`` text, paragraphs drawn at random."""
    rng = random.Random(seed)
    pool = _pool(kind)
    parts: list[str] = []
    size = 0
    while size < n_chars:
        piece = rng.choice(pool)
        parts.append(piece)
        size += len(piece) + 2
    return "\n\n".join(parts)[: max(n_chars, 1)]


def hostile_text(shape: str, size: int) -> str:
    """``size`` characters of one shape a hostile (or unlucky) client sends."""
    rng = random.Random(size)
    if shape == "one-letter":
        return "x" * size
    if shape == "one-digit":
        return "7" * size
    if shape == "spaces":
        return " " * size
    if shape == "hex":
        return rng.randbytes(size // 2 + 1).hex()[:size]
    if shape == "base64":
        return base64.b64encode(rng.randbytes(size)).decode()[:size]
    if shape == "minified-json":
        rows = [{"id": i, "name": f"n{i}", "tags": ["a", "b"]} for i in range(size // 30 + 1)]
        return json.dumps(rows, separators=(",", ":"))[:size]
    if shape == "cjk":
        return "".join(chr(rng.randrange(0x4E00, 0x9FFF)) for _ in range(size))
    if shape == "emoji":
        family = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466\U0001f1ef\U0001f1f5"
        return (family * (size // len(family) + 1))[:size]
    if shape == "bidi":
        return ("\u2067abc\u202e def\u2069 " * (size // 12 + 1))[:size]
    raise ValueError(shape)
