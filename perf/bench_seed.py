"""Compress the seed's request with tersify and with LLMLingua 0.2.2, side by side.

    .venv/bin/python perf/bench_seed.py [--repeat 5] [--skip-llmlingua]
        [--llmlingua-model smollm2-135m|gemma-3-270m] [--variants fp32,shortlist]
        [--scorers smollm2-135m,gemma-3-270m] [--skip-tersify]

Each configuration runs in its own process (so peak memory is its own) and compresses
the seed's request ``--repeat`` times after one warm-up, with tersify's score cache off
(each run scores); the table gives medians. tersify runs each of ``--scorers`` in each of
``--variants`` (a variant a scorer was not exported with is a "skipped" row). LLMLingua
runs in its own virtual environment on the same weights as tersify's scorer of that name
(``harness.llmlingua`` says which venv and versions). Writes perf/results/bench_seed.md
(``bench_seed_gemma`` with ``--llmlingua-model gemma-3-270m``) and .json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from typing import Any

from harness import llmlingua, requests, results, worker
from harness.memory import peak_rss_mb
from harness.timing import measure


def run_tersify(scorer: str, variant: str, repeat: int) -> dict[str, Any]:
    """Worker: compress the seed ``repeat`` times with one tersify scorer, cache off."""
    from tersify import Compressor
    from tersify.client import open_scorer
    from tersify.errors import TersifyError

    system = f"tersify {scorer} ({variant})"
    request = requests.seed()
    try:
        compressor = Compressor(open_scorer(scorer, variant=variant), cache=False)
    except TersifyError as exc:  # e.g. a variant this scorer was not exported with
        return {"system": system, "skipped": str(exc)}
    # The first run warms onnxruntime up; --repeat 0 reports that one (cold) run.
    runs = measure(
        lambda: requests.compress(compressor, request), repeat=max(1, repeat), warmup=min(1, repeat)
    )
    result = runs.last
    scorer_seconds = statistics.median(r.scorer_seconds for r in runs.results)
    return {
        "system": system,
        "median_s": runs.median,
        "scorer_tokens": result.scorer_tokens,
        "scorer_tokens_per_s": result.scorer_tokens / scorer_seconds,
        "origin_tokens": result.origin_tokens,
        "compressed_tokens": result.compressed_tokens,
        "target_tokens": result.target_tokens,
        "fffd": result.compressed_prompt.count("\ufffd"),
        "peak_rss_mb": peak_rss_mb(),
    }


def run_llmlingua(repeat: int, model: str) -> dict[str, Any]:
    """LLMLingua 0.2.2 on the seed, in its own venv, on the weights of tersify's ``model``."""
    args = ["seed", str(llmlingua.hf_folder(model)), str(requests.SEED), "--repeat", str(repeat)]
    try:
        return llmlingua.run(llmlingua.python(model), *args, "--name", model)[-1]
    except llmlingua.LLMLinguaFailed as exc:
        raise SystemExit(str(exc)) from None


def _row(r: dict[str, Any]) -> list[object]:
    if "skipped" in r:
        return [r["system"], f"skipped: {r['skipped']}", "", "", "", "", ""]
    return [
        r["system"],
        f"{r['median_s']:.2f}",
        r["scorer_tokens"],
        f"{r['scorer_tokens_per_s']:.0f}",
        f"{r['compressed_tokens']} / {r['target_tokens']} ({r['origin_tokens']})",
        r["fffd"],
        f"{r['peak_rss_mb']:.0f}",
    ]


def _table(rows: list[dict[str, Any]]) -> str:
    columns = [
        "system", "median latency (s)", "scorer tokens", "scorer tokens/s",
        "compressed / target (origin)", "U+FFFD", "peak RSS (MB)",
    ]  # fmt: skip
    return results.table(columns, [_row(r) for r in rows], align="lrrrlrr")


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-llmlingua", action="store_true")
    parser.add_argument("--skip-tersify", action="store_true")
    parser.add_argument(
        "--llmlingua-model",
        choices=sorted(llmlingua.SETUPS),
        default="smollm2-135m",
        help="the model LLMLingua scores with (its row goes after tersify's rows of that scorer)",
    )
    parser.add_argument(
        "--scorers", default="smollm2-135m,gemma-3-270m", help="tersify scorers, comma-separated"
    )
    parser.add_argument(
        "--variants", default="fp32", help="tersify variants, comma-separated (fp32,shortlist)"
    )
    parser.add_argument("--worker", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        scorer, variant = args.worker
        worker.answer(run_tersify(scorer, variant, args.repeat))
        return
    from tersify.export import export_scorer

    rows = []
    repeat = ("--repeat", str(args.repeat))
    scorers = [] if args.skip_tersify else _names(args.scorers)
    for scorer in scorers:
        if scorer == "smollm2-135m":
            export_scorer("smollm2-135m", skip_existing=True)
        for variant in _names(args.variants):
            try:
                rows.append(worker.run(__file__, "--worker", scorer, variant, *repeat))
            except worker.WorkerFailed as exc:
                raise SystemExit(str(exc)) from None
            print(_table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
        if scorer == args.llmlingua_model and not args.skip_llmlingua:
            rows.append(run_llmlingua(args.repeat, args.llmlingua_model))
            print(_table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    if args.llmlingua_model not in scorers and not args.skip_llmlingua:
        rows.append(run_llmlingua(args.repeat, args.llmlingua_model))
    name = "bench_seed" if args.llmlingua_model == "smollm2-135m" else "bench_seed_gemma"
    print(results.write(name, _table(rows), {"rows": rows}))


if __name__ == "__main__":
    main()
