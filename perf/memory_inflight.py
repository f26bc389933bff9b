"""Memory per compression in flight in `tersify serve`, for every scorer variant it can run.

    .venv/bin/python perf/memory_inflight.py [--scorers gemma-3-270m,smollm2-135m]
        [--variants all|fp32,shortlist,...] [--inflight 1,2,4] [--sizes short,qa,seed]
        [--triton gemma-3-270m|none]

For each scorer, each variant it was exported with that this machine runs (``torch``, the
CUDA engine inside Triton, is left out), each K of ``--inflight`` and each request size, a
fresh ``tersify serve --variant V --max-inflight K --max-queue 0`` is started and warmed
with one tiny request of each mode (token-level, and question-aware, which loads the
ranker); its resident memory then is the *idle base*. The process's peak (VmHWM) is reset,
K requests of that size are sent at once, and ``(peak - idle) / K`` is what one
compression in flight adds. Every request's text is fresh (the score cache cannot help):

- ``short``: ~1,800 characters of English prose (~400 target tokens), a question, rate 0.5;
- ``seed``: the example request's size, ~5,800 characters of mixed Chinese and English
  with its question and ``ratio: 0.2`` (token-level: one context);
- ``qa``: question-aware, eight ~2,100-character English contexts and the RAG example's
  question, rate 0.1 (mode ``auto``: ranks the contexts with the ranker, then prunes).

With ``--triton NAME`` the same is measured for a service whose scorer (and ranker) is a
local Triton started here (``tersify.triton.server``); Triton's own memory (its process
tree, sampled) is reported beside it.

Writes perf/results/memory_inflight.md and .json; the figures the service sizes its
admission by (``tersify.service.memory``) are taken from the JSON's ``summary``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import random
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness import OUT, requests, results, serve
from harness.memory import Sampler, rss_mib, status_kib, tree_rss_mib
from harness.timing import Stopwatch

QUESTION = requests.seed()["question"]
RAG_QUESTION = requests.load(requests.RAG)["question"]
SIZES = ("short", "qa", "seed")  # measured in this order: smallest first
LABELS = {"short": "short", "seed": "seed-size", "qa": "question-aware"}
OPENVINO = ("openvino", "openvino-int8", "openvino-shortlist")


def body(size: str, n: int) -> dict[str, Any]:
    """A fresh request of ``size``; ``n`` picks its text."""
    if size == "short":
        text = requests.sample_text("english", 1_800, n)
        return {"context": [text], "question": QUESTION, "rate": 0.5}
    if size == "seed":
        text = requests.sample_text("mixed", 5_770, n)
        return {"context": [text], "question": QUESTION, "ratio": 0.2}
    contexts = [requests.sample_text("english", 2_100, 1000 * n + i) for i in range(8)]
    return {"context": contexts, "question": RAG_QUESTION, "rate": 0.1}


WARM_UP = (
    {"context": ["Warm the scorer up with a few words."], "rate": 0.5},
    {
        "context": ["The treaty was signed in 1992.", "Rain fell all week."],
        "question": "When was the treaty signed?",
        "rate": 0.5,
    },
)


def reset_peak(pid: int) -> None:
    """Set the process's VmHWM back to its VmRSS (Linux: ``5`` into clear_refs)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5", encoding="ascii")


def variants(scorer: str) -> list[str]:
    """The variants ``scorer`` was exported with that `tersify serve` runs on this machine."""
    from tersify.client import Bundle, resolve_scorer_folder
    from tersify.settings import Settings

    bundle = Bundle.open(resolve_scorer_folder(scorer, Settings.from_env()))
    has_openvino = importlib.util.find_spec("openvino") is not None
    return [
        v
        for v in sorted(bundle.manifest.model_files)
        if v != "torch" and (has_openvino or v not in OPENVINO)
    ]


def _at_once(base: str, bodies: Sequence[dict[str, Any]]) -> list[int]:
    statuses: list[int] = [0] * len(bodies)

    def one(i: int) -> None:
        statuses[i] = serve.post(f"{base}/compress", bodies[i], timeout_s=1800).status

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def measure(
    flags: Sequence[str], inflight: int, size: str, triton_pid: int | None = None
) -> dict[str, float]:
    """A fresh service with ``--max-inflight K``: its idle base, then K ``size`` requests.

    Each size gets a service of its own, so that what one round leaves in the allocator's
    arenas is not counted against the next.
    """
    extra = ["--max-inflight", str(inflight), "--max-queue", "0", "--timeout", "1800"]
    with serve.serving(*flags, *extra, ready="/readyz", timeout_s=600) as service:
        loaded = rss_mib(service.pid)
        for warm in WARM_UP:
            answer = serve.post(f"{service.base}/compress", warm, timeout_s=600)
            if answer.status != 200:
                raise RuntimeError(f"warm-up answered {answer.status}: {answer.body[:300]!r}")
        idle = rss_mib(service.pid)
        reset_peak(service.pid)  # loading may have peaked above what stays
        bodies = [body(size, random.randrange(1 << 30)) for _ in range(inflight)]
        watch = (lambda: tree_rss_mib(triton_pid)) if triton_pid else (lambda: 0.0)
        with Sampler(interval_s=0.25, measure=watch) as triton:
            with Stopwatch() as took:
                statuses = _at_once(service.base, bodies)
        if statuses != [200] * inflight:
            raise RuntimeError(f"{size} x{inflight}: answers {statuses}")
        peak = status_kib(service.pid, "VmHWM") / 1024
    measured = {
        "loaded_mib": round(loaded, 1),
        "idle_mib": round(idle, 1),
        "peak_mib": round(peak, 1),
        "per_inflight_mib": round((peak - idle) / inflight, 1),
        "triton_peak_mib": round(triton.peak_mib, 1),
        "seconds": round(took.seconds, 1),
    }
    print(f"  {size} x{inflight}: {measured}", file=sys.stderr, flush=True)
    return measured


def available_mib() -> float:
    """The machine's MemAvailable now (other engineers' jobs share it)."""
    for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return float("inf")


def measure_all(
    flags: Sequence[str], args: argparse.Namespace, triton_pid: int | None = None
) -> dict[str, Any]:
    """Every K and size for one service configuration, K ascending.

    A round whose peak, judged from the same size at the smallest K, would not fit in 80 %
    of the memory free now is skipped (and says so), rather than push the shared machine
    into its OOM killer.
    """
    by_k: dict[str, Any] = {}
    for k in args.inflight:
        sizes: dict[str, Any] = {}
        for size in args.sizes:
            first = by_k.get(str(args.inflight[0]), {}).get("sizes", {}).get(size, {})
            need = k * first.get("per_inflight_mib", 0.0) + first.get("idle_mib", 0.0)
            free = available_mib()
            if need > 0.8 * free:
                sizes[size] = {"skipped": f"needs ~{need:.0f} MiB, {free:.0f} MiB free"}
                print(f"  {size} x{k}: skipped ({sizes[size]['skipped']})", file=sys.stderr)
                continue
            try:
                sizes[size] = measure(flags, k, size, triton_pid)
            except (RuntimeError, OSError) as exc:  # the shared machine: try once more
                print(f"  {size} x{k}: {exc}; once more", file=sys.stderr, flush=True)
                time.sleep(30)
                sizes[size] = measure(flags, k, size, triton_pid)
        by_k[str(k)] = {"sizes": sizes}
    return by_k


def run_config(name: str, scorer: str, variant: str, args: argparse.Namespace) -> dict[str, Any]:
    """Every K for one (scorer, variant); ``variant="triton"`` runs a local Triton."""
    print(f"{name}", file=sys.stderr, flush=True)
    if variant != "triton":
        by_k = measure_all(["--scorer", scorer, "--variant", variant], args)
        return {"scorer": scorer, "variant": variant, "by_inflight": by_k}
    from harness.triton import running

    from tersify.client import Bundle, resolve_scorer_folder
    from tersify.settings import Settings

    bundle = Bundle.open(resolve_scorer_folder(scorer, Settings.from_env()))
    with running(bundle, OUT / "memory-triton") as state:
        url = f"{state.grpc_url}?scorer={scorer}&timeout=600"
        triton_idle = tree_rss_mib(state.pid)
        by_k = measure_all(["--scorer", url], args, state.pid)
    return {
        "scorer": scorer,
        "variant": "triton",
        "triton_idle_mib": round(triton_idle, 1),
        "by_inflight": by_k,
    }


def summarize(config: dict[str, Any]) -> dict[str, Any]:
    """What the service sizes itself by: the idle base and the worst per-compression figure.

    Both rounded up to the next 16 MiB: the base is the highest idle seen, the figure per
    compression in flight the highest of the seed-size and question-aware rounds at any K.
    """
    rounds = [
        (size, r)
        for m in config["by_inflight"].values()
        for size, r in m["sizes"].items()
        if "skipped" not in r
    ]
    base = max(r["idle_mib"] for _, r in rounds)
    per = max(r["per_inflight_mib"] for size, r in rounds if size in ("seed", "qa"))
    return {
        "base_mib": 16 * math.ceil(base / 16),
        "per_inflight_mib": 16 * math.ceil(max(per, 1.0) / 16),
    }


def _cell(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "-"
    if "skipped" in entry:
        return "skipped"
    return f"{entry['per_inflight_mib']:.0f}"


def markdown(configs: Sequence[dict[str, Any]], inflight: Sequence[int]) -> str:
    """One row per (scorer, variant): idle base, then MiB per compression at each K."""
    ks = [str(k) for k in inflight]
    columns = ["scorer", "variant", "idle (MiB)"]
    columns += [f"{LABELS[s]}, {'/'.join(ks)} in flight (MiB each)" for s in SIZES]
    columns += ["peak, seed-size (MiB)", "service sizes by (MiB)"]
    rows = []
    for config in configs:
        by_k = config["by_inflight"]
        done = [r for m in by_k.values() for r in m["sizes"].values() if "skipped" not in r]
        at = {k: by_k.get(k, {}).get("sizes", {}) for k in ks}
        cells = [" / ".join(_cell(at[k].get(size)) for k in ks) for size in SIZES]
        seed_peaks = [
            (k, at[k]["seed"]["peak_mib"]) for k in ks if "peak_mib" in at[k].get("seed", {})
        ]
        peak = f"{seed_peaks[-1][1]:.0f} (x{seed_peaks[-1][0]})" if seed_peaks else "-"
        variant = config["variant"]
        if variant == "triton":
            tri = max(r["triton_peak_mib"] for r in done)
            idle = config["triton_idle_mib"]
            variant = f"Triton (Triton itself: {idle:.0f} idle, {tri:.0f} peak)"
        summary = config["summary"]
        rows.append(
            [
                config["scorer"],
                variant,
                f"{max(r['idle_mib'] for r in done):.0f}",
                *cells,
                peak,
                f"{summary['base_mib']} + {summary['per_inflight_mib']} x K",
            ]
        )
    note = (
        "Idle: `tersify serve`'s resident memory with the scorer and the ranker loaded and "
        "warmed. Each cell: (peak - idle) / K with K fresh requests of that size at once "
        "under `--max-inflight K`, each in a fresh service. The last column is what the "
        "service sizes its admission by (`tersify.service.memory`): the highest idle and the "
        "highest seed-size or question-aware figure, rounded up to 16 MiB. The machine was "
        "shared with other engineers' jobs; a round that would not have fit in the memory "
        "free then is marked skipped."
    )
    return results.table(columns, rows, align="ll" + "r" * (len(columns) - 2)) + "\n\n" + note


def merged(path: Path, fresh: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The configurations of ``path``'s results with ``fresh`` rounds in place of theirs."""
    old = json.loads(path.read_text(encoding="utf-8"))["configs"] if path.is_file() else []
    by_key = {(c["scorer"], c["variant"]): c for c in old}
    for config in fresh:
        key = (config["scorer"], config["variant"])
        if key not in by_key:
            by_key[key] = config
            continue
        kept = by_key[key]
        for k, rounds in config["by_inflight"].items():
            sizes = kept["by_inflight"].setdefault(k, {"sizes": {}})["sizes"]
            sizes.update({s: r for s, r in rounds["sizes"].items() if "skipped" not in r})
        kept.update({name: v for name, v in config.items() if name not in ("by_inflight",)})
    return list(by_key.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scorers", default="gemma-3-270m,smollm2-135m")
    parser.add_argument("--variants", default="all", help="all, or a comma-separated list")
    parser.add_argument("--inflight", default="1,2,4")
    parser.add_argument("--sizes", default=",".join(SIZES))
    parser.add_argument("--triton", default="gemma-3-270m", help="a scorer name, or none")
    parser.add_argument("--name", default="memory_inflight", help="results file name")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the rounds of the results file that this run does not measure again",
    )
    args = parser.parse_args()
    args.inflight = [int(k) for k in args.inflight.split(",")]
    args.sizes = [s for s in SIZES if s in args.sizes.split(",")]
    configs = []
    for scorer in args.scorers.split(","):
        chosen = variants(scorer)
        if args.variants != "all":
            chosen = [v for v in chosen if v in args.variants.split(",")]
        for variant in chosen:
            configs.append(run_config(f"{scorer} {variant}", scorer, variant, args))
    if args.triton != "none":
        configs.append(run_config(f"{args.triton} triton", args.triton, "triton", args))
    if args.merge:
        configs = merged(results.RESULTS / f"{args.name}.json", configs)
    for config in configs:
        config["summary"] = summarize(config)
    summary = {f"{c['scorer']}:{c['variant']}": c["summary"] for c in configs}
    inflight = sorted({int(k) for c in configs for k in c["by_inflight"]})
    header = results.header()
    if args.merge:  # say which rounds this run measured again
        again = results.header(command="python perf/memory_inflight.py").removesuffix(".")
        header = f"{again}; the rounds of `{results.command_line()}` measured again later."
    text = results.write(
        args.name,
        header + "\n\n" + markdown(configs, inflight),
        {"inflight": inflight, "sizes": args.sizes, "summary": summary, "configs": configs},
        with_header=False,
    )
    print(text)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
