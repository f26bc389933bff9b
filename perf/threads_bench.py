"""Threads per run and compressions at once, measured: what the defaults are set by.

    .venv/bin/python perf/threads_bench.py [--scorer gemma-3-270m] [--repeat 3]

For each CPU engine of the scorer (``openvino-shortlist``, ``shortlist``): the example
request compressed one at a time with the engine's threads at 1 and at every core (its
default), and two compressions at once from two threads sharing one scorer (what
``tersify serve`` does with ``--max-inflight 2``): median seconds per compression and
compressions per second. Score cache off. The machine is shared: read ratios in one run.
Writes perf/results/threads_bench.md and .json.
"""

from __future__ import annotations

import argparse
import os
import statistics
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from harness import requests, results
from harness.timing import Stopwatch

from tersify import Compressor
from tersify.bundle import Bundle
from tersify.client import resolve_scorer_folder
from tersify.settings import Settings


def _scorer(bundle: Bundle, engine: str, threads: int | None) -> Any:
    if engine.startswith("openvino"):
        from tersify.engines.openvino import OpenVinoScorer

        return OpenVinoScorer(bundle, variant=engine, threads=threads)
    from tersify.engines.onnx import OnnxScorer

    return OnnxScorer(bundle, variant=engine, threads=threads)


def _measure(compressor: Compressor, at_once: int, repeat: int) -> tuple[float, float]:
    """Median seconds per compression and compressions per second, ``at_once`` in flight."""
    request = {**requests.seed(), "ratio": 0.2}

    def one(_: int) -> float:
        with Stopwatch() as watch:
            requests.compress(compressor, request)
        return watch.seconds

    one(0)  # warm-up
    latencies, rates = [], []
    with ThreadPoolExecutor(at_once) as pool:
        for _ in range(repeat):
            with Stopwatch() as batch:
                latencies += list(pool.map(one, range(at_once)))
            rates.append(at_once / batch.seconds)
    return statistics.median(latencies), statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scorer", default="gemma-3-270m")
    parser.add_argument("--engines", default="openvino-shortlist,shortlist")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    bundle = Bundle.open(resolve_scorer_folder(args.scorer, Settings.from_env()))
    cores = os.cpu_count() or 1
    rows = []
    for engine in args.engines.split(","):
        for threads, at_once in ((1, 1), (None, 1), (None, 2), (1, 2)):
            compressor = Compressor(_scorer(bundle, engine, threads), cache=False)
            latency, rate = _measure(compressor, at_once, args.repeat)
            label = "all (default)" if threads is None else str(threads)
            rows.append([engine, label, at_once, f"{latency:.2f}", f"{rate:.3f}"])
            print(rows[-1], flush=True)
    columns = [
        "engine", "threads per run", "compressions at once", "s per compression",
        "compressions/s",
    ]  # fmt: skip
    text = (
        f"{args.scorer}, {cores} cores, the example request, medians of {args.repeat}\n\n"
        + results.table(columns, rows, align="lrrrr")
    )
    print(results.write("threads_bench", text, {"rows": rows}))


if __name__ == "__main__":
    main()
