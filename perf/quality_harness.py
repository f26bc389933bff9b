"""Does the answer survive compression? tersify's modes and LLMLingua 0.2.2, side by side.

    .venv/bin/python perf/quality_harness.py [--positions 0,1,...,9] [--skip-llmlingua]

Multi-document QA from real text (perf/quality_data.py): 10 documents, one holding a
planted fact, at several positions, in English and Chinese; plus the seed's own request
(do its three modules' names survive?). At 2x, 4x and 10x (rate 0.5, 0.25, 0.1) it
measures whether the answer survives, where the answer's document ranks (tersify reports
its context order), the achieved rate and the latency, all on the same SmolLM2-135M
weights. LLMLingua runs in perf/.venv-llmlingua (``harness.llmlingua``). Writes
perf/results/quality.md, quality.json and quality.png.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

from harness import OUT, RESULTS, llmlingua, results
from harness.timing import Stopwatch
from quality_data import Task, seed_task, tasks

from tersify import Compressor, ContextFilter, TokenFilter

RATES = (0.5, 0.25, 0.1)
MODES = {
    "tersify default (auto)": {},
    "tersify token-level": {"mode": "token"},
    "tersify longllmlingua": {
        "context_filter": ContextFilter(
            rank_method="longllmlingua", reorder="sort", dynamic_ratio=0.3
        ),
        "token_filter": TokenFilter(condition_on_question=True, contrastive=True),
    },
}


def _survived(task: Task, prompt: str) -> bool:
    return all(k in prompt for k in task.answer.split("|"))


def run_tersify(
    all_tasks: list[Task],
    scorer: str = "smollm2-135m",
    variant: str | None = None,
    rates: tuple[float, ...] = RATES,
) -> list[dict[str, object]]:
    # No score cache: the tasks share documents, and each latency is a first request's.
    compressor = Compressor(Compressor.open(scorer, variant=variant), cache=False)
    suffix = f" ({variant})" if variant else ""
    rows = []
    for mode, options in MODES.items():
        for task in all_tasks:
            for rate in rates:
                with Stopwatch() as watch:
                    result = compressor.compress(
                        list(task.documents), question=task.question, rate=rate, **options
                    )
                order = list(result.context_order)
                rows.append(
                    {
                        "system": mode + suffix,
                        "task": task.name,
                        "rate": rate,
                        "seconds": watch.seconds,
                        "origin_tokens": result.origin_tokens,
                        "compressed_tokens": result.compressed_tokens,
                        "survived": _survived(task, result.compressed_prompt),
                        "answer_rank": order.index(task.answer_doc)
                        if task.answer_doc in order
                        else None,
                    }
                )
                print(rows[-1], flush=True)
    return rows


def run_llmlingua(
    all_tasks: list[Task], rates: tuple[float, ...] = RATES
) -> list[dict[str, object]]:
    """LLMLingua and LongLLMLingua 0.2.2 on SmolLM2-135M's weights, in their own venv."""
    OUT.mkdir(parents=True, exist_ok=True)
    tasks_file = OUT / "quality_tasks.json"
    tasks_file.write_text(
        json.dumps([t.to_json() for t in all_tasks], ensure_ascii=False), encoding="utf-8"
    )
    folder = str(llmlingua.hf_folder("smollm2-135m"))
    try:
        answers = llmlingua.run(
            llmlingua.python(), "tasks", folder, str(tasks_file), ",".join(map(str, rates))
        )
    except llmlingua.LLMLinguaFailed as exc:
        raise SystemExit(str(exc)) from None
    by_name = {t.name: t for t in all_tasks}
    rows = []
    for row in answers:
        prompt = row.pop("prompt")
        row["survived"] = _survived(by_name[row["task"]], prompt)
        row["answer_rank"] = None
        rows.append(row)
    return rows


def _cells(system: str, rate: float, group: list[dict[str, object]], qa: list[str]) -> list[object]:
    qa_rows = [r for r in group if r["task"] in qa]
    kept = [r for r in qa_rows if r["survived"]]
    en = sum(1 for r in kept if str(r["task"]).startswith("en"))
    zh = sum(1 for r in kept if str(r["task"]).startswith("zh"))
    n_en = sum(1 for r in qa_rows if str(r["task"]).startswith("en"))
    positions = sorted({str(r["task"]).split("pos")[1] for r in kept}, key=int)
    seed = [r for r in group if r["task"] == "seed"]
    ranks = [int(r["answer_rank"]) for r in qa_rows if r["answer_rank"] is not None]
    achieved = statistics.mean(
        float(r["compressed_tokens"]) / float(r["origin_tokens"]) for r in group
    )
    return [
        system,
        f"{1 / rate:.0f}x",
        f"{len(kept)}/{len(qa_rows)}",
        f"{en}/{n_en}",
        f"{zh}/{len(qa_rows) - n_en}",
        ",".join(positions) or "-",
        "yes" if seed and seed[0]["survived"] else "no",
        f"{statistics.mean(ranks) if ranks else float('nan'):.2f}",
        f"{achieved:.3f}",
        f"{statistics.median(float(r['seconds']) for r in group):.1f}",
    ]


def _table(rows: list[dict[str, object]], all_tasks: list[Task]) -> str:
    qa = [t.name for t in all_tasks if t.name != "seed"]
    groups: dict[tuple[str, float], list[dict[str, object]]] = defaultdict(list)
    for r in rows:
        groups[(str(r["system"]), float(r["rate"]))].append(r)
    columns = [
        "system", "compression", "answer kept (QA)", "English", "Chinese", "positions kept",
        "seed's modules kept", "answer doc rank (mean)", "achieved rate", "median latency (s)",
    ]  # fmt: skip
    cells = [_cells(system, rate, group, qa) for (system, rate), group in groups.items()]
    return results.table(columns, cells, align="llrrrlrrrr")


def _plot(rows: list[dict[str, object]], path: Path, rates: tuple[float, ...], scorer: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = list(dict.fromkeys(str(r["system"]) for r in rows))
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(systems)
    for k, system in enumerate(systems):
        values = []
        for rate in rates:
            group = [
                r
                for r in rows
                if r["system"] == system and r["rate"] == rate and r["task"] != "seed"
            ]
            values.append(100 * sum(1 for r in group if r["survived"]) / max(1, len(group)))
        ax.bar([i + k * width for i in range(len(rates))], values, width, label=system)
    ax.set_xticks(
        [i + 0.4 - width / 2 for i in range(len(rates))], [f"{1 / r:.0f}x" for r in rates]
    )
    ax.set_ylabel("answer kept (%)")
    ax.set_ylim(0, 105)
    ax.set_title(f"Planted fact kept after compression ({scorer} scorer)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--positions", default="0,1,2,3,4,5,6,7,8,9", help="answer positions")
    parser.add_argument("--skip-llmlingua", action="store_true")
    parser.add_argument("--scorer", default="smollm2-135m", help="tersify's scorer")
    parser.add_argument(
        "--variants", default="", help="comma-separated variants to compare (default: its default)"
    )
    parser.add_argument("--rates", default=",".join(map(str, RATES)), help="kept fractions")
    parser.add_argument("--name", default="quality", help="output files' name in perf/results")
    args = parser.parse_args()
    positions = tuple(int(p) for p in args.positions.split(","))
    rates = tuple(float(r) for r in args.rates.split(","))
    all_tasks = [*tasks(positions=positions), seed_task()]
    rows = []
    for variant in args.variants.split(",") if args.variants else [None]:
        rows += run_tersify(all_tasks, args.scorer, variant, rates)
    if not args.skip_llmlingua:  # LLMLingua runs on SmolLM2's weights
        rows += run_llmlingua(all_tasks, rates)
    text = results.write(args.name, _table(rows, all_tasks), {"rows": rows})
    _plot(rows, RESULTS / f"{args.name}.png", rates, args.scorer)
    print(text)


if __name__ == "__main__":
    main()
