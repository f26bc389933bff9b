"""Real text for tests, from what every machine has: Python's own docs and source, and
the seed's request (Chinese and English mixed)."""

from __future__ import annotations

import inspect
import json
import random
import re
from functools import cache
from pathlib import Path

KINDS = ("english", "chinese", "code", "mixed")
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
