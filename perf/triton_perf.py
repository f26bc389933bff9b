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
``perf/.venv-pa``; it needs Debian's libb64-0d and libcudart from nvidia-cuda-runtime-cu12.
Writes ``perf/out/triton_perf.md`` and the raw CSV files.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient

from tersify import Compressor
from tersify.client import Bundle, open_scorer, resolve_scorer_folder
from tersify.client.triton_models import MODEL_NAME
from tersify.engines.tokenizer import BundleTokenizer
from tersify.request import CompressRequest, compress
from tersify.settings import Settings
from tersify.triton import server
from tersify.triton.compress_config import COMPRESS_MODEL, CompressConfig

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
VENV = HERE / ".venv-pa"
SEED = HERE.parent / "examples" / "seed_request.json"


def _perf_analyzer() -> tuple[Path, dict[str, str]]:
    binary = VENV / "bin" / "perf_analyzer"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [
                str(VENV / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--quiet",
                "tritonclient[all]==2.51.0",
                "nvidia-cuda-runtime-cu12",
            ],
            check=True,
        )
    if not Path("/usr/lib/x86_64-linux-gnu/libb64.so.0d").exists() and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "libb64-0d"], check=True)
    cudart = next(VENV.glob("lib/python*/site-packages/nvidia/cuda_runtime/lib"))
    env = dict(os.environ, LD_LIBRARY_PATH=str(cudart))
    return binary, env


def _input_data(bundle: Bundle, length: int, path: Path) -> None:
    text = json.loads(SEED.read_text(encoding="utf-8"))["context"][0]
    ids = BundleTokenizer(bundle).tokenize(text).ids
    bos = bundle.manifest.bos_token_id
    step = length - 1
    windows = [
        [bos, *ids[start : start + step].tolist()] for start in range(0, len(ids) - step, step)
    ]
    data = [{"input_ids": {"content": w, "shape": [length]}} for w in windows]
    path.write_text(json.dumps({"data": data}), encoding="utf-8")


def _stats(address: str, model: str = MODEL_NAME) -> tuple[int, int]:
    client = grpcclient.InferenceServerClient(address)
    stats = client.get_inference_statistics(model).model_stats[0]
    return int(stats.inference_count), int(stats.execution_count)


def _times(address: str, model: str) -> dict[str, int]:
    """Triton's cumulative counters for ``model``: requests, executions, queue/compute ns."""
    client = grpcclient.InferenceServerClient(address)
    stats = client.get_inference_statistics(model).model_stats[0]
    infer = stats.inference_stats
    return {
        "requests": int(infer.success.count),
        "inferences": int(stats.inference_count),
        "executions": int(stats.execution_count),
        "queue_ns": int(infer.queue.ns),
        "compute_ns": int(
            infer.compute_input.ns + infer.compute_infer.ns + infer.compute_output.ns
        ),
    }


def _breakdown(before: dict[str, int], after: dict[str, int]) -> dict[str, float]:
    delta = {k: after[k] - before[k] for k in after}
    requests = max(1, delta["requests"])
    return {
        "requests": delta["requests"],
        "mean_batch": delta["inferences"] / max(1, delta["executions"]),
        "queue_ms": delta["queue_ns"] / requests / 1e6,
        "compute_ms": delta["compute_ns"] / requests / 1e6,
    }


def _compress_data(path: Path) -> None:
    # REQUEST is one BYTES element: perf_analyzer sends a JSON string's UTF-8 bytes.
    text = SEED.read_bytes().decode("utf-8")
    data = [{"REQUEST": {"content": [text], "shape": [1]}}]
    path.write_text(json.dumps({"data": data}), encoding="utf-8")


def seed_scorer_tokens(scorer: str) -> int:
    """The ids the scorer computes log-probs for in one compression of the seed's request."""
    compressor = Compressor(open_scorer(scorer), cache=False)
    return compress(CompressRequest.from_json(SEED.read_bytes()), compressor).scorer_tokens


def bench_compress(
    binary: Path, env: dict[str, str], address: str, levels: list[int], scorer_tokens: int
) -> str:
    """perf_analyzer on ``tersify_compress`` with the seed's request; a Markdown table.

    ``scorer_tokens`` per compression turn compressions/s into the scorer's tokens/s.
    """
    data_file = OUT / "perf_input_compress.json"
    _compress_data(data_file)
    rows = []
    for concurrency in levels:
        before = {m: _times(address, m) for m in (COMPRESS_MODEL, MODEL_NAME)}
        report = OUT / f"perf_compress_c{concurrency}.csv"
        command = [
            str(binary), "-m", COMPRESS_MODEL, "-u", address, "-i", "grpc",
            "--input-data", str(data_file),
            "--concurrency-range", f"{concurrency}:{concurrency}",
            # Whole compressions take seconds: count requests, not milliseconds.
            "--measurement-mode", "count_windows",
            "--measurement-request-count", str(max(2, concurrency)),
            # perf_analyzer wants three windows; any three are "stable" at 999 %.
            "--stability-percentage", "999", "--max-trials", "3",
            "-f", str(report),
        ]  # fmt: skip
        with report.with_suffix(".log").open("w") as log:
            subprocess.run(command, check=True, env=env, stdout=log)
        after = {m: _times(address, m) for m in (COMPRESS_MODEL, MODEL_NAME)}
        with report.open() as handle:
            measured = next(csv.DictReader(handle))
        row = {
            "concurrency": concurrency,
            "per_s": float(measured["Inferences/Second"]),
            "p50_s": int(measured["p50 latency"]) / 1e6,
            "p99_s": int(measured["p99 latency"]) / 1e6,
            "compress": _breakdown(before[COMPRESS_MODEL], after[COMPRESS_MODEL]),
            "scorer": _breakdown(before[MODEL_NAME], after[MODEL_NAME]),
        }
        rows.append(row)
        print(row, flush=True)
    lines = [
        "| concurrency | compressions/s | scorer tokens/s | p50 (s) | p99 (s) "
        "| compress queue (ms) | compress compute (ms) | compress batch | scorer requests "
        "| scorer batch | scorer queue (ms) | scorer compute (ms) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        c, k = r["compress"], r["scorer"]
        lines.append(
            f"| {r['concurrency']} | {r['per_s']:.3f} | {r['per_s'] * scorer_tokens:.0f} "
            f"| {r['p50_s']:.1f} | {r['p99_s']:.1f} "
            f"| {c['queue_ms']:.0f} | {c['compute_ms']:.0f} | {c['mean_batch']:.2f} "
            f"| {k['requests']:.0f} | {k['mean_batch']:.2f} | {k['queue_ms']:.0f} "
            f"| {k['compute_ms']:.0f} |"
        )
    return "\n".join(lines) + "\n"


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

    binary, env = _perf_analyzer()
    bundle = Bundle.open(resolve_scorer_folder(args.scorer, Settings.from_env()))
    OUT.mkdir(exist_ok=True)
    data_file = OUT / f"perf_input_{args.length}.json"
    _input_data(bundle, args.length, data_file)
    compress_levels = [int(c) for c in args.compress_concurrency.split(",") if c]
    scorer_tokens = seed_scorer_tokens(args.scorer) if compress_levels else 0
    run_dir = OUT / "triton-run"
    run_dir.mkdir(exist_ok=True)
    # No score cache and no deadline in tersify_compress (see the docstring).
    compress_config = CompressConfig(form="python", cache_bytes=0, timeout_s=0)
    state = server.start(bundle, run_dir, compress=compress_config)
    address = state.grpc_url.removeprefix("grpc://")
    rows = []
    compress_table = ""
    try:
        levels = [] if args.skip_scorer else [int(c) for c in args.concurrency.split(",")]
        for concurrency in levels:
            before = _stats(address)
            report = OUT / f"perf_c{concurrency}.csv"
            with report.with_suffix(".log").open("w") as log:
                subprocess.run(
                    [
                        str(binary),
                        "-m",
                        MODEL_NAME,
                        "-u",
                        address,
                        "-i",
                        "grpc",
                        "--input-data",
                        str(data_file),
                        "--shape",
                        f"input_ids:{args.length}",
                        "--concurrency-range",
                        f"{concurrency}:{concurrency}",
                        "--measurement-interval",
                        str(args.measurement_ms),
                        "--stability-percentage",
                        "25",
                        "--max-trials",
                        "6",
                        "-f",
                        str(report),
                    ],
                    check=True,
                    env=env,
                    stdout=log,
                )
            after = _stats(address)
            with report.open() as handle:
                measured = next(csv.DictReader(handle))
            inferences, executions = after[0] - before[0], after[1] - before[1]
            rows.append(
                {
                    "concurrency": concurrency,
                    "infer_per_s": float(measured["Inferences/Second"]),
                    "p50_ms": int(measured["p50 latency"]) / 1000,
                    "p99_ms": int(measured["p99 latency"]) / 1000,
                    "inferences": inferences,
                    "executions": executions,
                }
            )
            print(rows[-1], flush=True)
        if compress_levels:
            compress_table = bench_compress(binary, env, address, compress_levels, scorer_tokens)
    finally:
        server.stop(run_dir)
    lines = [
        f"perf_analyzer 2.51.0, gRPC, `{bundle.manifest.name}` in Triton's python backend "
        f"(onnxruntime, CPU), windows of {args.length} real token ids from the seed.",
        "",
        "| concurrency | inferences/s | tokens/s | p50 latency (ms) | p99 latency (ms) "
        "| inferences | executions | mean batch |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['concurrency']} | {r['infer_per_s']:.2f} | {r['infer_per_s'] * args.length:.0f} "
            f"| {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {r['inferences']} | {r['executions']} "
            f"| {r['inferences'] / max(1, r['executions']):.2f} |"
        )
    table = "\n".join(lines) + "\n"
    if compress_table:
        table += (
            f"\n`tersify_compress` (BLS to `{bundle.manifest.name}`), the seed's request "
            f"({scorer_tokens} scorer tokens), score cache off (`cache_bytes` 0: every "
            "request is scored) and no deadline; Triton's statistics per request:\n\n"
            + compress_table
        )
    (OUT / "triton_perf.md").write_text(table, encoding="utf-8")
    print(table)


if __name__ == "__main__":
    np.set_printoptions(linewidth=120)
    main()
