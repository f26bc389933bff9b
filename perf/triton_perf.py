"""perf_analyzer against both models of a local Triton: the scorer, and whole compressions.

    .venv/bin/python perf/triton_perf.py [--scorer smollm2-135m] [--length 256]

Starts tritonserver (the python-backend form) on free ports. The scorer: perf_analyzer
gets real token ids from the seed's text (windows of ``--length`` ids, BOS first),
concurrency 1 to 8. ``tersify_compress``: perf_analyzer sends the seed's request itself,
concurrency 1 to 16, with the model's score cache off (``cache_bytes`` 0: the same
request again would otherwise be answered from the cache) and no deadline (a request
waits behind up to 15 others on two cores, past the default 60 s). For each level
Triton's statistics are read before and after, for both models: more inferences than
executions means the dynamic batcher merged requests, and the queue and compute times
say where a request's time went. perf_analyzer is the binary inside
``tritonclient[all]==2.51.0`` (newer builds need a newer glibc), in its own venv
``perf/.venv-pa``. Writes perf/results/triton_perf.md and .json; the raw CSV files go to
perf/out/.
"""

from __future__ import annotations

import argparse
from typing import Any

from harness import OUT, PERF, requests, results
from harness.triton import Counters, PerfAnalyzer, counters, grpc_address, input_data, running

from tersify import Compressor
from tersify.client import Bundle, open_scorer, resolve_scorer_folder
from tersify.client.triton_models import MODEL_NAME
from tersify.engines.tokenizer import BundleTokenizer
from tersify.request import CompressRequest, compress
from tersify.settings import Settings
from tersify.triton.compress_config import COMPRESS_MODEL, CompressConfig

MODELS = (COMPRESS_MODEL, MODEL_NAME)


def seed_windows(bundle: Bundle, length: int) -> list[dict[str, Any]]:
    """perf_analyzer's inputs: the seed's text as windows of ``length`` ids, BOS first."""
    ids = BundleTokenizer(bundle).tokenize(requests.seed()["context"][0]).ids
    bos, step = bundle.manifest.bos_token_id, length - 1
    windows = [
        [bos, *ids[start : start + step].tolist()] for start in range(0, len(ids) - step, step)
    ]
    return [{"input_ids": {"content": w, "shape": [length]}} for w in windows]


def seed_scorer_tokens(scorer: str) -> int:
    """The ids the scorer computes log-probs for in one compression of the seed's request."""
    compressor = Compressor(open_scorer(scorer), cache=False)
    return compress(CompressRequest.from_json(requests.SEED.read_bytes()), compressor).scorer_tokens


def bench_scorer(
    analyzer: PerfAnalyzer, address: str, bundle: Bundle, length: int, levels: list[int], ms: int
) -> list[dict[str, Any]]:
    """perf_analyzer on the scorer with the seed's windows, one row per concurrency level."""
    data = input_data(OUT / f"perf_input_{length}.json", seed_windows(bundle, length))
    rows = []
    for concurrency in levels:
        before = counters(address, MODEL_NAME)
        measured = analyzer.run(
            MODEL_NAME, address, data, concurrency,
            "--shape", f"input_ids:{length}",
            "--measurement-interval", str(ms),
            "--stability-percentage", "25", "--max-trials", "6",
            report=OUT / f"perf_c{concurrency}.csv",
        )  # fmt: skip
        delta = counters(address, MODEL_NAME) - before
        rows.append(
            {
                "concurrency": concurrency,
                "infer_per_s": measured.infer_per_s,
                "p50_ms": measured.p50_us / 1000,
                "p99_ms": measured.p99_us / 1000,
                "inferences": delta.inferences,
                "executions": delta.executions,
            }
        )
        print(rows[-1], flush=True)
    return rows


def bench_compress(analyzer: PerfAnalyzer, address: str, levels: list[int]) -> list[dict[str, Any]]:
    """perf_analyzer on ``tersify_compress`` with the seed's request, one row per level."""
    # REQUEST is one BYTES element: perf_analyzer sends a JSON string's UTF-8 bytes.
    text = requests.SEED.read_bytes().decode("utf-8")
    data = input_data(
        OUT / "perf_input_compress.json", [{"REQUEST": {"content": [text], "shape": [1]}}]
    )
    rows = []
    for concurrency in levels:
        before = {m: counters(address, m) for m in MODELS}
        measured = analyzer.run(
            COMPRESS_MODEL, address, data, concurrency,
            # Whole compressions take seconds: count requests, not milliseconds.
            "--measurement-mode", "count_windows",
            "--measurement-request-count", str(max(2, concurrency)),
            # perf_analyzer wants three windows; any three are "stable" at 999 %.
            "--stability-percentage", "999", "--max-trials", "3",
            report=OUT / f"perf_compress_c{concurrency}.csv",
        )  # fmt: skip
        delta = {m: counters(address, m) - before[m] for m in MODELS}
        rows.append(
            {
                "concurrency": concurrency,
                "per_s": measured.infer_per_s,
                "p50_s": measured.p50_us / 1e6,
                "p99_s": measured.p99_us / 1e6,
                "compress": _breakdown(delta[COMPRESS_MODEL]),
                "scorer": _breakdown(delta[MODEL_NAME]),
            }
        )
        print(rows[-1], flush=True)
    return rows


def _breakdown(delta: Counters) -> dict[str, float]:
    return {
        "requests": delta.requests,
        "mean_batch": delta.inferences / max(1, delta.executions),
        "queue_ms": delta.queue_ms,
        "compute_ms": delta.compute_ms,
    }


def scorer_table(rows: list[dict[str, Any]], length: int, name: str) -> str:
    columns = [
        "concurrency", "inferences/s", "tokens/s", "p50 latency (ms)", "p99 latency (ms)",
        "inferences", "executions", "mean batch",
    ]  # fmt: skip
    cells = [
        [
            r["concurrency"], f"{r['infer_per_s']:.2f}", f"{r['infer_per_s'] * length:.0f}",
            f"{r['p50_ms']:.0f}", f"{r['p99_ms']:.0f}", r["inferences"], r["executions"],
            f"{r['inferences'] / max(1, r['executions']):.2f}",
        ]
        for r in rows
    ]  # fmt: skip
    return (
        f"perf_analyzer 2.51.0, gRPC, `{name}` in Triton's python backend "
        f"(onnxruntime, CPU), windows of {length} real token ids from the seed.\n\n"
        + results.table(columns, cells, align="r" * len(columns))
    )


def _compress_cells(r: dict[str, Any], scorer_tokens: int) -> list[object]:
    c, k = r["compress"], r["scorer"]
    return [
        r["concurrency"], f"{r['per_s']:.3f}", f"{r['per_s'] * scorer_tokens:.0f}",
        f"{r['p50_s']:.1f}", f"{r['p99_s']:.1f}",
        f"{c['queue_ms']:.0f}", f"{c['compute_ms']:.0f}", f"{c['mean_batch']:.2f}",
        f"{k['requests']:.0f}", f"{k['mean_batch']:.2f}", f"{k['queue_ms']:.0f}",
        f"{k['compute_ms']:.0f}",
    ]  # fmt: skip


def compress_table(rows: list[dict[str, Any]], scorer_tokens: int, name: str) -> str:
    """``scorer_tokens`` per compression turn compressions/s into the scorer's tokens/s."""
    columns = [
        "concurrency", "compressions/s", "scorer tokens/s", "p50 (s)", "p99 (s)",
        "compress queue (ms)", "compress compute (ms)", "compress batch", "scorer requests",
        "scorer batch", "scorer queue (ms)", "scorer compute (ms)",
    ]  # fmt: skip
    cells = [_compress_cells(r, scorer_tokens) for r in rows]
    return (
        f"`tersify_compress` (BLS to `{name}`), the seed's request "
        f"({scorer_tokens} scorer tokens), score cache off (`cache_bytes` 0: every "
        "request is scored) and no deadline; Triton's statistics per request:\n\n"
        + results.table(columns, cells, align="r" * len(columns))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scorer", default="smollm2-135m")
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--concurrency", default="1,2,3,4,5,6,7,8", help="comma-separated levels")
    parser.add_argument("--measurement-ms", type=int, default=10000)
    parser.add_argument(
        "--compress-concurrency", default="1,2,4,8,16", help="levels for tersify_compress"
    )
    parser.add_argument("--skip-scorer", action="store_true", help="only tersify_compress")
    args = parser.parse_args()

    analyzer = PerfAnalyzer.install(PERF / ".venv-pa")
    bundle = Bundle.open(resolve_scorer_folder(args.scorer, Settings.from_env()))
    levels = [] if args.skip_scorer else [int(c) for c in args.concurrency.split(",")]
    compress_levels = [int(c) for c in args.compress_concurrency.split(",") if c]
    scorer_tokens = seed_scorer_tokens(args.scorer) if compress_levels else 0
    # No score cache and no deadline in tersify_compress (see the docstring).
    config = CompressConfig(form="python", cache_bytes=0, timeout_s=0)
    with running(bundle, OUT / "triton-run", compress=config) as state:
        address = grpc_address(state)
        rows = bench_scorer(analyzer, address, bundle, args.length, levels, args.measurement_ms)
        compress_rows = bench_compress(analyzer, address, compress_levels)
    name = bundle.manifest.name
    text = scorer_table(rows, args.length, name)
    if compress_rows:
        text += "\n\n" + compress_table(compress_rows, scorer_tokens, name)
    data = {"scorer": rows, "compress": compress_rows, "scorer_tokens": scorer_tokens}
    print(results.write("triton_perf", text, data))


if __name__ == "__main__":
    main()
