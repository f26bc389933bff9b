"""Engines and precisions side by side: seed latency, scorer tokens/s, selection agreement, memory.

    python perf/engines_bench.py --scorer smollm2-135m \
        --engines fp32,openvino,openvino:bf16,openvino-int8 [--repeat 3]

An engine is a variant of the exported scorer (``fp32``: onnxruntime, today's path;
``openvino``, ``openvino-int8``: OpenVINO, which needs ``tersify[openvino]``), with an
optional OpenVINO inference precision after a colon (``f32`` unless given). For each:

- **agreement**: the seed, English, Chinese and code texts compressed at rates 0.25 and
  0.5 (explain=True); the share of the units the engine keeps that fp32 keeps too (the
  issue's bar is 97 %); each engine in its own process, whose peak RSS is reported;
- **latency**: the seed's request (its question and ratio), the engines loaded in one
  process and run in turn, ``--repeat`` rounds, medians (the machine is shared: only
  ratios within one run mean anything); the score cache is off.
"""

from __future__ import annotations

import argparse
import inspect
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "examples" / "seed_request.json"
OUT = Path(__file__).resolve().parent / "out"
RATES = (0.25, 0.5)
BAR = 0.97


def texts() -> dict[str, str]:
    """The texts whose kept units are compared: the seed's context, English, Chinese, code."""
    import json as json_module
    import textwrap
    from pydoc_data.topics import topics

    seed = json.loads(SEED.read_text(encoding="utf-8"))["context"][0]
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
        return OpenVinoScorer(bundle, variant=variant, precision=precision or "f32")
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
    return {
        "engine": engine,
        "kept": kept,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def time_engines(scorer: str, engines: list[str], repeat: int) -> dict[str, dict[str, float]]:
    """Seed latency and scorer tokens/s per engine, run in turn in one process."""
    from tersify import Compressor

    request = json.loads(SEED.read_text(encoding="utf-8"))
    compressors = {e: Compressor(open_engine(scorer, e), cache=False) for e in engines}
    latency: dict[str, list[float]] = {e: [] for e in engines}
    speed: dict[str, list[float]] = {e: [] for e in engines}
    for round_ in range(repeat + 1):
        for engine, compressor in compressors.items():
            started = time.perf_counter()
            result = compressor.compress(
                request["context"], question=request["question"], ratio=request["ratio"]
            )
            if round_:  # the first round warms every engine up
                latency[engine].append(time.perf_counter() - started)
                speed[engine].append(result.scorer_tokens / result.scorer_seconds)
    return {
        e: {"latency_s": statistics.median(latency[e]), "tokens_per_s": statistics.median(speed[e])}
        for e in engines
    }


def agreement(ours: list[int], reference: list[int]) -> float:
    """The share of the units kept by ``ours`` that ``reference`` keeps too."""
    return len(set(ours) & set(reference)) / len(ours) if ours else 1.0


def _worker(scorer: str, engine: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--scorer", scorer, "--worker", engine],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        return {"engine": engine, "error": done.stderr.strip().splitlines()[-1][:300]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(scorer: str, rows: list[dict[str, Any]], timing: dict[str, dict[str, float]]) -> str:
    """The markdown table: one row per engine, ratios against fp32 in this run."""
    reference = next(r for r in rows if r["engine"] == "fp32")["kept"]
    base = timing["fp32"]["latency_s"]
    keys = list(reference)
    lines = [
        f"scorer {scorer}; seed request latency (median), agreement = share of the units the "
        f"engine keeps that fp32 keeps (min over seed/English/Chinese/code; bar {BAR:.0%})",
        "",
        "| engine | seed latency (s) | speed-up | scorer tokens/s | agreement @0.25 "
        "| agreement @0.5 | lowest text | peak RSS (MB) |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for row in rows:
        engine = row["engine"]
        if "error" in row:
            lines.append(f"| {engine} | failed: {row['error']} | | | | | | |")
            continue
        scores = {k: agreement(row["kept"][k], reference[k]) for k in keys}
        low = {rate: min(v for k, v in scores.items() if k.endswith(f"@{rate}")) for rate in RATES}
        worst = min(scores, key=lambda k: scores[k])
        t = timing.get(engine, {"latency_s": float("nan"), "tokens_per_s": float("nan")})
        lines.append(
            f"| {engine} | {t['latency_s']:.2f} | {base / t['latency_s']:.2f}x | "
            f"{t['tokens_per_s']:.0f} | {low[0.25]:.1%} | {low[0.5]:.1%} | "
            f"{worst} {scores[worst]:.1%} | {row['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scorer", default="smollm2-135m")
    parser.add_argument("--engines", default="fp32,openvino,openvino:bf16,openvino-int8")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_worker(args.scorer, args.worker)))
        return
    engines = args.engines.split(",")
    if engines[0] != "fp32":
        engines.insert(0, "fp32")
    rows = [_worker(args.scorer, e) for e in engines]
    working = [r["engine"] for r in rows if "error" not in r]
    timing = time_engines(args.scorer, working, args.repeat)
    table = report(args.scorer, rows, timing)
    print(table)
    OUT.mkdir(exist_ok=True)
    name = Path(args.scorer).name
    (OUT / f"engines_{name}.md").write_text(table + "\n", encoding="utf-8")
    (OUT / f"engines_{name}.json").write_text(
        json.dumps({"rows": rows, "timing": timing}, indent=1), encoding="utf-8"
    )


if __name__ == "__main__":
    main()
