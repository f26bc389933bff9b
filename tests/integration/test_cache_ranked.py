"""The score cache under question-aware ranking (the exported default ranker orders contexts).

The cache itself: tests/unit/test_cache.py.
"""

from __future__ import annotations

from tersify import Compressor, WindowPlan
from tersify.cache import CachedScorer

from fakes import FakeScorer
from texts import sample_text


class PrintedFake(FakeScorer):
    """A fake scorer with a fingerprint, as exported scorers have."""

    def __init__(self, fingerprint: str = "fake-v1", max_window: int = 64) -> None:
        super().__init__(max_window=max_window)
        self.fingerprint = fingerprint


def test_repeated_documents_hit_whatever_their_neighbours() -> None:
    """Windows start at each context's first token, so a document repeats its windows."""
    docs = [sample_text("english", 700, seed) for seed in range(3)]
    inner = PrintedFake(max_window=64)
    plain = Compressor(PrintedFake(max_window=64))
    cached = Compressor(CachedScorer(inner))
    first = cached.compress([docs[0], docs[1]], question="Why?", rate=0.5)
    assert _without_times(first) == _without_times(
        plain.compress([docs[0], docs[1]], question="Why?", rate=0.5)
    )
    scored = sum(inner.calls)
    again = cached.compress([docs[2], docs[1], docs[0]], question="How?", rate=0.4)
    expected = plain.compress([docs[2], docs[1], docs[0]], question="How?", rate=0.4)
    assert _without_times(again) == _without_times(expected)
    ids = inner.tokenize(docs[2]).ids
    n_new = len(WindowPlan().spans(len(ids), inner.max_window - 1))
    assert sum(inner.calls) - scored == n_new  # only the new document was scored


def _without_times(result: object) -> object:
    from dataclasses import replace

    return replace(result, scorer_seconds=0.0, total_seconds=0.0)  # type: ignore[type-var]
