"""The score cache: same rows as the scorer, fewer scorer calls, bounded, thread-safe, on disk."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tersify import BadRequestError, Compressor, WindowPlan
from tersify.cache import CachedScorer, ScoreCache
from tersify.windows import token_losses

from fakes import FakeScorer
from texts import sample_text


class PrintedFake(FakeScorer):
    """A fake scorer with a fingerprint, as exported scorers have."""

    def __init__(self, fingerprint: str = "fake-v1", max_window: int = 64) -> None:
        super().__init__(max_window=max_window)
        self.fingerprint = fingerprint


def _windows(seed: int, n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 50, size=int(rng.integers(1, 40))).astype(np.int64) for _ in range(n)]


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 30), st.integers(0, 4000))
def test_cached_rows_equal_the_scorers(seed: int, n: int, max_bytes: int) -> None:
    inner = FakeScorer()
    cached = CachedScorer(FakeScorer(), ScoreCache(max_bytes))
    windows = _windows(seed, n)
    expected = inner.logprobs(windows)
    for _ in range(2):  # cold, then (partly, as the bound allows) warm
        got = cached.logprobs(windows)
        assert len(got) == len(expected)
        for a, b in zip(got, expected, strict=True):
            assert a.dtype == np.float32 and np.array_equal(a, b)
    assert cached.cache.stats().bytes <= max_bytes


def test_seen_windows_are_not_scored_again() -> None:
    inner = FakeScorer()
    cached = CachedScorer(inner)
    a, b, c = _windows(1, 3)
    cached.logprobs([a, b, a])  # a twice in one call: scored once
    assert inner.calls == [2]
    cached.logprobs([b, a])
    assert inner.calls == [2]
    cached.logprobs([c, a])
    assert inner.calls == [2, 1]
    stats = cached.cache.stats()
    assert (stats.hits, stats.misses, stats.entries) == (3, 4, 3)


def test_returned_rows_are_copies() -> None:
    cached = CachedScorer(FakeScorer())
    (window,) = _windows(2, 1)
    first = cached.logprobs([window])[0]
    first[:] = 99.0
    assert not np.any(cached.logprobs([window])[0] == 99.0)


def test_lru_evicts_least_recently_used_within_bytes() -> None:
    inner = FakeScorer()
    windows = [np.arange(k, k + 30, dtype=np.int64) for k in range(3)]
    row_bytes = 30 * 4 + 120
    cached = CachedScorer(inner, ScoreCache(max_bytes=2 * row_bytes))
    cached.logprobs([windows[0]])
    cached.logprobs([windows[1]])
    cached.logprobs([windows[0]])  # 0 is now the most recent
    cached.logprobs([windows[2]])  # evicts 1
    assert cached.cache.stats().bytes <= 2 * row_bytes
    inner.calls.clear()
    cached.logprobs([windows[0]])
    assert inner.calls == []
    cached.logprobs([windows[1]])
    assert inner.calls == [1]


def test_fingerprint_is_part_of_the_key() -> None:
    cache = ScoreCache()
    old, new = PrintedFake("v1"), PrintedFake("v2")
    (window,) = _windows(3, 1)
    CachedScorer(old, cache).logprobs([window])
    CachedScorer(PrintedFake("v1"), cache).logprobs([window])
    CachedScorer(new, cache).logprobs([window])
    assert new.calls == [1]  # a re-exported scorer never gets the old rows
    assert cache.stats().hits == 1


def test_scorers_without_fingerprint_never_share_rows() -> None:
    cache = ScoreCache()
    first, second = FakeScorer(), FakeScorer()
    (window,) = _windows(4, 1)
    CachedScorer(first, cache).logprobs([window])
    CachedScorer(second, cache).logprobs([window])
    assert second.calls == [1]


def test_disk_cache_outlives_the_process_and_stays_bounded(tmp_path: Path) -> None:
    windows = _windows(5, 20)
    expected = FakeScorer().logprobs(windows)
    first = CachedScorer(PrintedFake(), ScoreCache(directory=tmp_path))
    first.logprobs(windows)
    first.cache.close()
    inner = PrintedFake()
    again = CachedScorer(inner, ScoreCache(directory=tmp_path))
    got = again.logprobs(windows)
    assert inner.calls == []
    assert again.cache.stats().disk_hits == len({w.tobytes() for w in windows})
    assert all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))
    bounded = ScoreCache(max_disk_bytes=200, directory=tmp_path / "small")
    CachedScorer(PrintedFake(), bounded).logprobs(windows)
    assert bounded._disk is not None and bounded._disk._bytes <= 200


def test_disk_cache_needs_a_fingerprint(tmp_path: Path) -> None:
    with pytest.raises(BadRequestError, match="fingerprint"):
        CachedScorer(FakeScorer(), ScoreCache(directory=tmp_path))


def test_unusable_disk_folder_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(BadRequestError, match="score cache"):
        ScoreCache(directory=blocker)


def test_threads_share_one_cache() -> None:
    inner = FakeScorer()
    cached = CachedScorer(inner, ScoreCache(max_bytes=20_000))
    pool = _windows(6, 40)
    expected = FakeScorer().logprobs(pool)
    errors: list[str] = []

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        for _ in range(30):
            picks = rng.integers(0, len(pool), size=5).tolist()
            rows = cached.logprobs([pool[i] for i in picks])
            if not all(np.array_equal(r, expected[i]) for r, i in zip(rows, picks, strict=True)):
                errors.append(f"thread {seed}: wrong row")

    threads = [threading.Thread(target=work, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    stats = cached.cache.stats()
    assert stats.bytes <= 20_000 and stats.hits + stats.misses == 8 * 30 * 5


def test_question_conditioned_windows_hit_only_for_the_same_question() -> None:
    inner = FakeScorer()
    cached = CachedScorer(inner)
    ids = inner.tokenize(sample_text("mixed", 600, 7)).ids
    plan = WindowPlan(size=64, overlap=8)
    for question in ("why", "why", "how"):
        prefix = inner.tokenize(question).ids
        token_losses(cached, [ids], plan, prefix)
    assert inner.calls[1:] == [inner.calls[0]]  # "why" again: nothing scored; "how": all


def _without_times(result: object) -> object:
    from dataclasses import replace

    return replace(result, scorer_seconds=0.0, total_seconds=0.0)  # type: ignore[type-var]


def test_compressor_caches_by_default_and_not_when_told() -> None:
    doc = sample_text("english", 1500, 11)
    inner = PrintedFake()
    compressor = Compressor(inner)
    first = compressor.compress([doc], rate=0.5)
    scored = len(inner.calls)
    again = compressor.compress([doc], rate=0.5)
    assert len(inner.calls) == scored  # every window came from the cache
    assert _without_times(first) == _without_times(again)
    plain_inner = PrintedFake()
    plain = Compressor(plain_inner, cache=False)
    plain.compress([doc], rate=0.5)
    plain.compress([doc], rate=0.5)
    assert len(plain_inner.calls) == 2 * scored


def test_compressors_share_a_given_cache() -> None:
    doc = sample_text("code", 1200, 3)
    shared = ScoreCache()
    Compressor(PrintedFake("same"), cache=shared).compress([doc], rate=0.4)
    second = PrintedFake("same")
    Compressor(second, cache=shared).compress([doc], rate=0.4)
    assert second.calls == []


def test_cache_argument_is_checked() -> None:
    with pytest.raises(BadRequestError, match="cache="):
        Compressor(FakeScorer(), cache="yes")  # type: ignore[arg-type]


def test_variant_is_for_scorers_tersify_opens() -> None:
    with pytest.raises(BadRequestError, match="variant="):
        Compressor(FakeScorer(), variant="fp32")
