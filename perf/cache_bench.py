"""The score cache on a RAG workload: documents retrieved again cost (almost) nothing.

    .venv/bin/python perf/cache_bench.py [--scorer gemma-3-270m] [--requests 24] [--pool 12]

A pool of documents (Python's own reference topics and paragraphs of the seed's request,
English and Chinese) and a stream of requests, each retrieving ``--docs`` of them, drawn so
that a few documents come back often (Zipf-like, as retrieval does), each with its own
question. The same requests run three ways on one loaded scorer:

- without cache (today's path);
- with the cache, first pass: it starts empty, so only documents retrieved earlier hit;
- with the cache, repeated pass: the same requests again, every document seen before.

Every output must be the same in the three runs (text and counts); the table gives the
median latency per request and the speed-up over the uncached path. Writes
perf/results/cache_bench.md and .json.
"""

from __future__ import annotations

import argparse
import random
import statistics
from collections.abc import Callable

from harness import requests as examples
from harness import results
from harness.memory import peak_rss_mb
from harness.timing import Stopwatch

QUESTIONS = (
    "What does this say about errors?",
    "How is the value computed?",
    "Which rule applies here?",
    "What happens at the end?",
    "Summarise the key steps.",
)


def documents(n: int, size: int) -> list[str]:
    """``n`` documents of about ``size`` characters: reference topics, then the seed's text."""
    from pydoc_data.topics import topics

    seed = examples.seed()["context"][0]
    seed_parts = [p for p in seed.split("\n\n") if len(p) > 200]
    english = [topics[k] for k in sorted(topics) if len(topics[k]) > size]
    pool: list[str] = []
    for k in range(n):
        # one in four from the seed (Chinese and English), the rest reference topics
        source = seed_parts if k % 4 == 3 and seed_parts else english
        pool.append(source[(k * 7) % len(source)][:size])
    return pool


def requests(pool: int, n: int, docs: int, seed: int) -> list[tuple[list[int], str]]:
    """``n`` requests of ``docs`` distinct documents each, popular ones more often."""
    rng = random.Random(seed)
    weights = [1.0 / (rank + 1) for rank in range(pool)]
    out = []
    for _ in range(n):
        chosen: list[int] = []
        while len(chosen) < docs:
            pick = rng.choices(range(pool), weights)[0]
            if pick not in chosen:
                chosen.append(pick)
        out.append((chosen, rng.choice(QUESTIONS)))
    return out


def run_pass(
    compress: Callable[[list[str], str], object], work: list[tuple[list[str], str]]
) -> tuple[list[float], list[object]]:
    """Latency and result of each request, in order."""
    times, answers = [], []
    for contexts, question in work:
        with Stopwatch() as watch:
            answers.append(compress(contexts, question))
        times.append(watch.seconds)
    return times, answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scorer", default=None, help="scorer name or folder (default scorer)")
    parser.add_argument("--requests", type=int, default=24)
    parser.add_argument("--pool", type=int, default=12)
    parser.add_argument("--docs", type=int, default=4, help="documents per request")
    parser.add_argument("--size", type=int, default=1500, help="characters per document")
    parser.add_argument("--rate", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from tersify import Compressor
    from tersify.cache import ScoreCache
    from tersify.client import open_scorer

    scorer = open_scorer(args.scorer)
    pool = documents(args.pool, args.size)
    work = [
        ([pool[i] for i in chosen], question)
        for chosen, question in requests(args.pool, args.requests, args.docs, args.seed)
    ]
    plain = Compressor(scorer, cache=False)
    cache = ScoreCache()
    cached = Compressor(scorer, cache=cache)  # one loaded model behind both
    plain.compress(work[0][0][:1], question="warm-up", rate=args.rate)  # onnxruntime warm-up

    def through(compressor: Compressor) -> Callable[[list[str], str], object]:
        return lambda contexts, q: compressor.compress(contexts, question=q, rate=args.rate)

    base_t, base_r = run_pass(through(plain), work)
    first_t, first_r = run_pass(through(cached), work)
    after_first = cache.stats()
    again_t, again_r = run_pass(through(cached), work)
    stats = cache.stats()

    def same(answers: list[object]) -> bool:
        return all(_output(a) == _output(b) for a, b in zip(base_r, answers, strict=True))

    base = statistics.median(base_t)
    rows = [
        ("no cache", base_t, True, "-"),
        ("cache, first pass", first_t, same(first_r), f"{after_first.hit_rate:.0%}"),
        ("cache, repeated pass", again_t, same(again_r), f"{_pass_rate(after_first, stats):.0%}"),
    ]
    cells = [
        [
            name, f"{statistics.median(times):.3f}", f"{statistics.mean(times):.3f}",
            f"{base / statistics.median(times):.1f}x", hits, "yes" if ok else "NO",
        ]
        for name, times, ok, hits in rows
    ]  # fmt: skip
    columns = [
        "run", "median per request (s)", "mean (s)", "speed-up (median)", "window hit rate",
        "same output",
    ]  # fmt: skip
    report = (
        f"scorer {scorer.name}; {args.requests} requests x {args.docs} documents from a pool of "
        f"{args.pool} (~{args.size} characters each), rate {args.rate}\n\n"
        + results.table(columns, cells, align="lrrrrl")
        + f"\n\ncache: {stats.entries} windows, {stats.bytes / 2**20:.1f} MiB; "
        f"peak RSS {peak_rss_mb():.0f} MB"
    )
    data = {
        name: {"seconds": times, "same": ok, "hit_rate": hits} for name, times, ok, hits in rows
    }
    print(results.write("cache_bench", report, {"runs": data}))
    if not (same(first_r) and same(again_r)):
        raise SystemExit("the cached runs changed an output")


def _output(result: object) -> tuple[object, ...]:
    """What must not change: text, counts and order (not the timings)."""
    return tuple(
        getattr(result, name)
        for name in ("compressed_prompt", "origin_tokens", "compressed_tokens", "context_order")
    )


def _pass_rate(before: object, after: object) -> float:
    hits = after.hits - before.hits  # type: ignore[attr-defined]
    misses = after.misses - before.misses  # type: ignore[attr-defined]
    return hits / (hits + misses) if hits + misses else 0.0


if __name__ == "__main__":
    main()
