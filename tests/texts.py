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


# A fact hidden in real text and the question that finds it: what the needle tests ask for.
FACT = "The secret password to the archive is 4711946."
QUESTION = "What is the secret password to the archive?"
GATE_CODE = "The access code for the north gate is 4817."
GATE_QUESTION = "What is the access code for the north gate?"


def hide(fact: str, text: str, at: int | None = None) -> str:
    """``text`` with ``fact`` put in at character ``at`` (the middle by default)."""
    cut = len(text) // 2 if at is None else at
    return text[:cut] + " " + fact + " " + text[cut:]


def needle_documents(fact: str, n_chars: int, at: int) -> list[str]:
    """Five English documents of ``n_chars``; the fourth holds ``fact`` at character ``at``."""
    docs = [sample_text("english", n_chars, seed) for seed in range(5)]
    docs[3] = hide(fact, docs[3], at)
    return docs


def gate_request(**extra: object) -> dict:
    """A question-aware JSON request: the gate's code in the fourth of five documents."""
    context = needle_documents(GATE_CODE, 700, 300)
    return {"context": context, "question": GATE_QUESTION, "rate": 0.3, **extra}


def secret_request() -> dict:
    """A JSON request of one document with ``FACT`` in its middle, and ``QUESTION``."""
    return {"context": [hide(FACT, sample_text("english", 2400, 7))], "question": QUESTION}


def secret_prompt(seed: int) -> str:
    """A prompt of 3,000 characters with ``FACT`` in its middle, ending with ``QUESTION``."""
    return hide(FACT, sample_text("english", 3000, seed)) + "\n\n" + QUESTION


def secret_chat(seed: int) -> list[dict[str, str]]:
    """``secret_prompt`` as chat messages, after a system message."""
    return [
        {"role": "system", "content": "You answer questions about the documents."},
        {"role": "user", "content": secret_prompt(seed)},
    ]
