"""Engines and precisions side by side: seed latency, scorer tokens/s, selection agreement, memory.

    python perf/engines_bench.py --scorer smollm2-135m \
        --engines fp32,openvino,openvino:bf16,openvino-int8 [--repeat 3]

An engine is a variant of the exported scorer (``fp32``: onnxruntime, today's path;
``openvino``, ``openvino-int8``: OpenVINO, which needs ``tersify[openvino]``), with an
optional OpenVINO inference precision after a colon (unless given, the one picked for
this CPU). For each:

- **agreement**: the seed, English, Chinese and code texts compressed at rates 0.25 and
  0.5 (explain=True); the share of the units the engine keeps that fp32 keeps too (the
  issue's bar is 97 %); each engine in its own process, whose peak RSS is reported;
- **latency**: the seed's request (its question and ratio), the engines loaded in one
  process and run in turn, ``--repeat`` rounds, medians (the machine is shared: only
  ratios within one run mean anything); the score cache is off.

Writes perf/results/engines_SCORER.md and .json.
"""

from __future__ import annotations

import argparse
import inspect
import statistics
from pathlib import Path
from typing import Any

from harness import requests, results, worker
from harness.memory import peak_rss_mb
from harness.timing import rounds

RATES = (0.25, 0.5)
BAR = 0.97


def texts() -> dict[str, str]:
    """The texts whose kept units are compared: the seed's context, English, Chinese, code."""
    import json as json_module
    import textwrap
    from pydoc_data.topics import topics

    seed = requests.seed()["context"][0]
    chinese = "\n".join(
        line for line in seed.splitlines() if sum("\u4e00" <= c <= "\u9fff" for c in line) > 8
    )
    english = "\n\n".join(topics[k] for k in ("assert", "for", "try", "with", "lambda"))
    code = inspect.getsource(textwrap)[:6000] + inspect.getsource(json_module)[:2000]
    return {"seed": seed, "english": english, "chinese": chinese, "code": code}


def open_engine(scorer: str, engine: str) -> Any:
    """A scorer for ``variant[:precision]``."""
    from tersify.bundle import Bundle
    from tersify.client import open_scorer, resolve_scorer_folder
    from tersify.settings import Settings

    variant, _, precision = engine.partition(":")
    if variant.startswith("openvino"):
        from tersify.engines.openvino import OpenVinoScorer

        bundle = Bundle.open(resolve_scorer_folder(scorer, Settings.from_env()))
        return OpenVinoScorer(bundle, variant=variant, precision=precision or None)
    return open_scorer(scorer, variant=variant)


def kept_units(result: Any) -> list[int]:
    """Indices of the kept units of the first context, from the explanation."""
    context = result.explanation.contexts[0]
    kept = set()
    for start, end in context.kept_spans:
        kept.update(range(start, end))
    units, at = [], 0
    for u, length in enumerate(context.unit_lengths):
        if at in kept:
            units.append(u)
        at += length
    return units


def run_worker(scorer: str, engine: str) -> dict[str, Any]:
    """Kept units of every text at every rate with one engine, and the process's peak RSS."""
    from tersify import Compressor

    compressor = Compressor(open_engine(scorer, engine), cache=False)
    kept: dict[str, list[int]] = {}
    for name, text in texts().items():
        for rate in RATES:
            result = compressor.compress([text], rate=rate, explain=True)
            kept[f"{name}@{rate}"] = kept_units(result)
    return {"engine": engine, "kept": kept, "peak_rss_mb": peak_rss_mb()}


def time_engines(scorer: str, engines: list[str], repeat: int) -> dict[str, dict[str, float]]:
    """Seed latency and scorer tokens/s per engine, run in turn in one process."""
    from tersify import Compressor

    request = requests.seed()
    compressors = {e: Compressor(open_engine(scorer, e), cache=False) for e in engines}
    # One round warms every engine up; then each engine once a round, in turn.
    runs = rounds(
        {e: (lambda c=c: requests.compress(c, request)) for e, c in compressors.items()},
        repeat=repeat,
    )
    return {
        e: {
            "latency_s": r.median,
            "tokens_per_s": statistics.median(
                x.scorer_tokens / x.scorer_seconds for x in r.results
            ),
        }
        for e, r in runs.items()
    }


def agreement(ours: list[int], reference: list[int]) -> float:
    """The share of the units kept by ``ours`` that ``reference`` keeps too."""
    return len(set(ours) & set(reference)) / len(ours) if ours else 1.0


def _worker(scorer: str, engine: str) -> dict[str, Any]:
    try:
        return worker.run(__file__, "--scorer", scorer, "--worker", engine)
    except worker.WorkerFailed as exc:
        return {"engine": engine, "error": exc.last_line[:300]}


def _row(row: dict[str, Any], reference: dict[str, list[int]], timing: dict[str, Any]) -> list[Any]:
    engine = row["engine"]
    if "error" in row:
        return [engine, f"failed: {row['error']}", "", "", "", "", "", ""]
    scores = {k: agreement(row["kept"][k], reference[k]) for k in reference}
    low = {rate: min(v for k, v in scores.items() if k.endswith(f"@{rate}")) for rate in RATES}
    worst = min(scores, key=lambda k: scores[k])
    t = timing.get(engine, {"latency_s": float("nan"), "tokens_per_s": float("nan")})
    return [
        engine,
        f"{t['latency_s']:.2f}",
        f"{timing['fp32']['latency_s'] / t['latency_s']:.2f}x",
        f"{t['tokens_per_s']:.0f}",
        f"{low[0.25]:.1%}",
        f"{low[0.5]:.1%}",
        f"{worst} {scores[worst]:.1%}",
        f"{row['peak_rss_mb']:.0f}",
    ]


def report(scorer: str, rows: list[dict[str, Any]], timing: dict[str, dict[str, float]]) -> str:
    """The markdown table: one row per engine, ratios against fp32 in this run."""
    reference = next(r for r in rows if r["engine"] == "fp32")["kept"]
    columns = [
        "engine", "seed latency (s)", "speed-up", "scorer tokens/s", "agreement @0.25",
        "agreement @0.5", "lowest text", "peak RSS (MB)",
    ]  # fmt: skip
    table = results.table(columns, [_row(r, reference, timing) for r in rows], align="lrrrrrlr")
    return (
        f"scorer {scorer}; seed request latency (median), agreement = share of the units the "
        f"engine keeps that fp32 keeps (min over seed/English/Chinese/code; bar {BAR:.0%})\n\n"
        + table
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scorer", default="smollm2-135m")
    parser.add_argument("--engines", default="fp32,openvino,openvino:bf16,openvino-int8")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker.answer(run_worker(args.scorer, args.worker))
        return
    engines = args.engines.split(",")
    if engines[0] != "fp32":
        engines.insert(0, "fp32")
    rows = [_worker(args.scorer, e) for e in engines]
    working = [r["engine"] for r in rows if "error" not in r]
    timing = time_engines(args.scorer, working, args.repeat)
    name = f"engines_{Path(args.scorer).name}"
    print(results.write(name, report(args.scorer, rows, timing), {"rows": rows, "timing": timing}))


if __name__ == "__main__":
    main()
