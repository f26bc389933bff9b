"""The real-data quality benchmark's requests and its measure (answer recall).

The requests live in perf/data/squad2_multidoc.json (built by quality_real_build.py from
SQuAD 2.0's dev set; see perf/data/README.md). A compressed prompt *recalls* a request's
answer when one of its gold answers, normalised as SQuAD's official evaluation normalises
(lower case, no punctuation, no articles, single spaces), is a substring of the
compressed prompt normalised the same way.

>>> normalize_answer("The  Norman-French, dukes!")
'normanfrench dukes'
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass
from pathlib import Path

DATA_FILE = Path(__file__).resolve().parent / "data" / "squad2_multidoc.json"
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no articles, single spaces."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


@dataclass(frozen=True)
class RealRequest:
    """One multi-document question: its documents, gold answers and where the gold one is."""

    id: str
    question: str
    answers: tuple[str, ...]
    documents: tuple[str, ...]
    gold: int
    position: str

    def recalled(self, prompt: str) -> bool:
        """Whether a gold answer survives in ``prompt`` (both normalised)."""
        kept = normalize_answer(prompt)
        return any(normalize_answer(a) in kept for a in self.answers if normalize_answer(a))


def load(path: Path = DATA_FILE, limit: int | None = None) -> list[RealRequest]:
    """The benchmark's requests; ``limit`` takes the first ones, every position alike."""
    data = json.loads(path.read_text(encoding="utf-8"))
    paragraphs = data["paragraphs"]
    requests = [
        RealRequest(
            id=r["id"],
            question=r["question"],
            answers=tuple(r["answers"]),
            documents=tuple(paragraphs[i] for i in r["documents"]),
            gold=r["gold"],
            position=r["position"],
        )
        for r in data["requests"]
    ]
    return requests if limit is None else requests[:limit]
