"""The requests the benchmarks send: the example requests, compressed the way they ask.

>>> request = seed()
>>> request["ratio"], len(request["context"])
(0.2, 1)
"""

from __future__ import annotations

import importlib.util
import json
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from harness import ROOT

EXAMPLES = ROOT / "examples"
# The seed's request: 3,701 target tokens of Chinese and English, {"ratio": 0.2}.
SEED = EXAMPLES / "seed_request.json"
# A real 20-document request from perf/data (quality_real.py's benchmark).
RAG = EXAMPLES / "rag_request.json"


def load(path: Path = SEED) -> dict[str, Any]:
    """A JSON request as the HTTP API takes it."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or "context" not in data:
        raise ValueError(f"{path} is not a compression request (a JSON object with 'context')")
    return data


def seed() -> dict[str, Any]:
    """The seed's request (examples/seed_request.json)."""
    return load(SEED)


def prompt(request: dict[str, Any]) -> str:
    """The whole prompt, contexts then question, as one text (what a scorer would read)."""
    return "\n\n".join([*request["context"], request["question"]])


def compress(compressor: Any, request: dict[str, Any]) -> Any:
    """``request`` through ``compressor`` with its own question and ratio (the seed's way)."""
    return compressor.compress(
        request["context"], question=request["question"], ratio=request["ratio"]
    )


@cache
def _test_texts() -> ModuleType:
    found = sorted((ROOT / "tests").rglob("texts.py"))
    if not found:
        raise FileNotFoundError(f"no texts.py under {ROOT / 'tests'}: the tests' text helper moved")
    spec = importlib.util.spec_from_file_location("_tersify_test_texts", found[0])
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {found[0]}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sample_text(kind: str, n_chars: int, random_seed: int) -> str:
    """About ``n_chars`` characters of real ``kind`` text (english, chinese, code, mixed).

    The tests' own generator (tests/texts.py, wherever the tests keep it), so that a
    benchmark's "short" request is the tests' short request.
    """
    text: str = _test_texts().sample_text(kind, n_chars, random_seed)
    return text
