"""Does the answer survive? Real multi-document QA, tersify's modes beside LLMLingua 0.2.2.

    .venv/bin/python perf/quality_real.py [--limit N] [--rates 0.25,0.1]
        [--scorers gemma-3-270m,smollm2-135m] [--systems default,question-aware,...]
        [--skip-llmlingua] [--compare 30] [--llm URL --model NAME]

The requests are perf/data/squad2_multidoc.json (90 real SQuAD 2.0 questions, 20 Wikipedia
paragraphs each, the gold one first, 10th or last; see perf/data/README.md). A system
*recalls* a request when a gold answer, normalised as SQuAD's evaluation normalises, is
still in the compressed prompt. For each scorer and rate, every tersify system runs on the
same requests; LLMLingua and LongLLMLingua 0.2.2 (its recommended options) run on SmolLM2-135M,
the weights tersify's ``smollm2-135m`` scorer is exported from, in their own virtual
environment (perf/.venv-llmlingua, see ``harness.llmlingua``). The table gives recall overall and
by gold position, the median seconds per request and the achieved rate; the ranker's own
table says where the gold document ranked. With ``--llm URL --model NAME`` every prompt,
the full one included, is also sent to that OpenAI-compatible LLM (as `tersify ask` does)
and an answer is right when it holds a gold answer (normalised).

Writes perf/results/quality_real.json and perf/results/quality_real.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness import OUT, RESULTS, llmlingua, results
from harness.timing import Stopwatch
from quality_real_data import RealRequest, load, normalize_answer

from tersify import Compressor
from tersify.coarse import bm25_scores
from tersify.ranking import relevance

RATES = (0.25, 0.1)
POSITIONS = ("first", "middle", "last")
INSTRUCTION = "Answer the question from the documents below. Answer with a few words only."
# tersify systems: the JSON request's mode each one sends.
SYSTEMS = {
    "default": "auto",
    "question-aware": "question-aware",
    "longllmlingua preset": "longllmlingua",
    "token": "token",
}
LLMLINGUA_SYSTEMS = ("LLMLingua 0.2.2", "LongLLMLingua 0.2.2")
LLMLINGUA_SAVED = OUT / "quality_real_llmlingua.jsonl"
Row = dict[str, Any]


def run_tersify(
    scorer: str,
    systems: Sequence[str],
    requests: Sequence[RealRequest],
    rates: Sequence[float],
    compare: int,
) -> list[Row]:
    """Every (system, request, rate) through one compressor; its score cache off.

    The default runs on every request; the other systems on the first ``compare`` only.
    """
    compressor = Compressor(scorer, cache=False)
    warm = requests[0]  # loads both models
    compressor.compress(list(warm.documents), question=warm.question, rate=0.5)
    rows = []
    for system in systems:
        for request in requests if system == "default" else requests[:compare]:
            for rate in rates:
                with Stopwatch() as watch:
                    result = compressor.compress(
                        list(request.documents),
                        question=request.question,
                        rate=rate,
                        mode=SYSTEMS[system],
                    )
                rows.append(
                    _row(
                        f"tersify {system}",
                        scorer,
                        request,
                        rate,
                        watch.seconds,
                        result.compressed_prompt,
                        result.origin_tokens,
                        result.compressed_tokens,
                        gold_rank=_gold_rank(result.context_order, request.gold),
                        mode=result.mode,
                    )
                )
    return rows


def run_llmlingua(
    requests: Sequence[RealRequest], rates: Sequence[float], *, saved_only: bool = False
) -> list[Row]:
    """LLMLingua and LongLLMLingua 0.2.2 on SmolLM2-135M, in their own venv.

    Their answers are kept in perf/out/quality_real_llmlingua.jsonl (by request, rate and
    system): LongLLMLingua takes about a minute a request on 2 cores, so a rerun computes
    only what is missing. Delete the file to measure again.
    """
    OUT.mkdir(parents=True, exist_ok=True)
    saved = _saved_llmlingua()
    missing = {
        r.id: sorted({s for rate in rates for s in LLMLINGUA_SYSTEMS} - _done(saved, r.id, rates))
        for r in requests
    }
    if any(missing.values()) and not saved_only:
        _llmlingua_subprocess([r for r in requests if missing[r.id]], rates, missing)
        saved = _saved_llmlingua()
    by_id = {r.id: r for r in requests}
    rows = []
    for (request_id, rate), outs in saved.items():
        if request_id not in by_id or rate not in rates:
            continue
        for out in outs.values():
            rows.append(
                _row(
                    out["system"], "smollm2-135m", by_id[request_id], rate, out["seconds"],
                    out["prompt"], out["origin_tokens"], out["compressed_tokens"],
                )
            )
    return rows


def _saved_llmlingua() -> dict[tuple[str, float], dict[str, Row]]:
    """The saved answers by (request, rate), then by system (the last one saved)."""
    saved: dict[tuple[str, float], dict[str, Row]] = defaultdict(dict)
    if LLMLINGUA_SAVED.is_file():
        for line in LLMLINGUA_SAVED.read_text(encoding="utf-8").splitlines():
            if line.startswith("{"):
                out = json.loads(line)
                saved[(out["task"], out["rate"])][out["system"]] = out
    return saved


def _done(
    saved: dict[tuple[str, float], dict[str, Row]], request_id: str, rates: Sequence[float]
) -> set[str]:
    """The systems saved for ``request_id`` at every one of ``rates``."""
    return set.intersection(*(set(saved.get((request_id, rate), {})) for rate in rates))


def _llmlingua_subprocess(
    requests: Sequence[RealRequest], rates: Sequence[float], systems: dict[str, list[str]]
) -> None:
    tasks = OUT / "quality_real_tasks.json"
    tasks.write_text(
        json.dumps(
            [
                {"name": r.id, "documents": list(r.documents), "question": r.question,
                 "systems": systems[r.id]}
                for r in requests
            ]
        ),
        encoding="utf-8",
    )
    folder = str(llmlingua.hf_folder("smollm2-135m"))
    with LLMLINGUA_SAVED.open("a", encoding="utf-8") as sink:
        try:
            llmlingua.run(
                llmlingua.python("smollm2-135m"),
                *("tasks", folder, str(tasks), ",".join(str(r) for r in rates)),
                stdout=sink,
            )
        except llmlingua.LLMLinguaFailed as exc:
            raise SystemExit(str(exc)) from None


def ranker_table(requests: Sequence[RealRequest]) -> list[Row]:
    """Where the gold document ranks: the sentbert ranker (with BM25) and BM25 alone."""
    compressor = Compressor(cache=False)
    ranker = compressor.ranker()
    rankings: dict[str, Callable[[RealRequest], Sequence[float]]] = {
        "sentbert (MiniLM-L6 + BM25)": lambda r: relevance(
            ranker, r.question, list(r.documents)
        ).documents.tolist(),
        "bm25": lambda r: bm25_scores(list(r.documents), r.question).tolist(),
    }
    rows = []
    for name, score in rankings.items():
        ranks, seconds = [], []
        for request in requests:
            with Stopwatch() as watch:
                scores = score(request)
            seconds.append(watch.seconds)
            order = sorted(range(len(scores)), key=lambda i: -scores[i])
            ranks.append(order.index(request.gold))
        rows.append(
            {
                "ranker": name,
                "top1": sum(r < 1 for r in ranks) / len(ranks),
                "top2": sum(r < 2 for r in ranks) / len(ranks),
                "top5": sum(r < 5 for r in ranks) / len(ranks),
                "median_s": statistics.median(seconds),
                "requests": len(ranks),
            }
        )
    return rows


def ask_llm(rows: list[Row], requests: Sequence[RealRequest], url: str, model: str) -> list[Row]:
    """Each compressed prompt and each full prompt through the LLM; is a gold answer said?"""
    from tersify.integrations.llm import LLMEndpoint, chat

    endpoint = LLMEndpoint(url, model=model)
    by_id = {r.id: r for r in requests}

    def right(prompt: str, request: RealRequest) -> bool:
        content = f"{INSTRUCTION}\n\n{prompt}"
        reply = chat(endpoint, [{"role": "user", "content": content}], max_tokens=32)
        said = normalize_answer(reply.content)
        return any(normalize_answer(a) and normalize_answer(a) in said for a in request.answers)

    for row in rows:
        row["llm_right"] = right(row["prompt"], by_id[row["request"]])
    full = [
        _row("full prompt", "-", r, 1.0, 0.0, _full_prompt(r), 0, 0) for r in requests
    ]
    for row in full:
        row["llm_right"] = right(row["prompt"], by_id[row["request"]])
    return full


def _full_prompt(request: RealRequest) -> str:
    return "\n\n".join([*request.documents, request.question])


def _row(
    system: str, scorer: str, request: RealRequest, rate: float, seconds: float, prompt: str,
    origin: int, compressed: int, **extra: Any,
) -> Row:
    return {
        "system": system, "scorer": scorer, "request": request.id, "position": request.position,
        "rate": rate, "seconds": seconds, "recalled": request.recalled(prompt),
        "origin_tokens": origin, "compressed_tokens": compressed, "prompt": prompt,
        "fffd": "\ufffd" in prompt, **extra,
    }


def _gold_rank(order: Sequence[int], gold: int) -> int | None:
    return list(order).index(gold) if gold in order else None


def summarize(rows: Sequence[Row]) -> list[Row]:
    """One line per (system, scorer, rate): recall overall and by position, median time."""
    groups: dict[tuple[str, str, float], list[Row]] = defaultdict(list)
    for row in rows:
        groups[(row["system"], row["scorer"], row["rate"])].append(row)
    table = []
    for (system, scorer, rate), group in groups.items():
        line: Row = {
            "system": system, "scorer": scorer, "rate": rate, "requests": len(group),
            "recall": _share(group, "recalled"),
            "median_s": statistics.median(r["seconds"] for r in group),
            "achieved_rate": statistics.median(
                r["compressed_tokens"] / r["origin_tokens"] for r in group if r["origin_tokens"]
            ) if any(r["origin_tokens"] for r in group) else None,
            "over_budget": sum(
                r["compressed_tokens"] > int(r["origin_tokens"] * rate + 0.5) for r in group
            ),
        }
        for position in POSITIONS:
            line[position] = _share([r for r in group if r["position"] == position], "recalled")
        if any("llm_right" in r for r in group):
            line["llm_accuracy"] = _share(group, "llm_right")
        table.append(line)
    return table


def _share(rows: Sequence[Row], key: str) -> float | None:
    return sum(bool(r[key]) for r in rows) / len(rows) if rows else None


def markdown(
    tables: Sequence[tuple[str, Sequence[Row]]], ranking: Sequence[Row], command: str, cpu: str
) -> str:
    """perf/results/quality_real.md, which docs/quality.md includes: a table per request set."""
    lines = [
        f"Measured with `{command}` on {cpu}, "
        f"{time.strftime('%Y-%m-%d')}. Answer recall: a gold answer (SQuAD-normalised) is "
        "still in the compressed prompt.",
    ]
    for title, table in tables:
        lines += ["", f"**{title}**", "", *_system_lines(table)]
    lines += [
        "",
        "| ranker | gold first | gold in top 2 | gold in top 5 | median s/request |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in ranking:
        lines.append(
            f"| {r['ranker']} | {_pct(r['top1'])} | {_pct(r['top2'])} | {_pct(r['top5'])} | "
            f"{r['median_s']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f} %"


def _system_lines(table: Sequence[Row]) -> list[str]:
    asked = any("llm_accuracy" in t for t in table)
    lines = [
        "| system | scorer | rate | requests | recall | first | middle | last | "
        "median s/request | achieved rate | over budget |" + (" LLM accuracy |" if asked else ""),
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if asked else ""),
    ]
    for t in sorted(table, key=lambda t: (-t["rate"], t["scorer"], t["system"])):
        achieved = "-" if t["achieved_rate"] is None else f"{t['achieved_rate']:.3f}"
        line = (
            f"| {t['system']} | {t['scorer']} | {t['rate']} | {t['requests']} | "
            f"**{_pct(t['recall'])}** | "
            f"{_pct(t['first'])} | {_pct(t['middle'])} | {_pct(t['last'])} | "
            f"{t['median_s']:.2f} | {achieved} | {t['over_budget']} |"
        )
        if "llm_accuracy" in t:
            line += f" {_pct(t['llm_accuracy'])} |"
        lines.append(line)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="the first N requests only")
    parser.add_argument("--rates", default=",".join(str(r) for r in RATES))
    parser.add_argument("--scorers", default="gemma-3-270m,smollm2-135m")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--skip-llmlingua", action="store_true")
    parser.add_argument(
        "--llmlingua-saved-only", action="store_true",
        help="compare only on the requests whose LLMLingua answers are already saved "
        "(perf/out/quality_real_llmlingua.jsonl); run nothing of LLMLingua",
    )
    parser.add_argument(
        "--compare", type=int, default=15,
        help="every system but the default (LLMLingua's included) on the first N requests "
        "only, a third at each gold position: LongLLMLingua takes about a minute a request",
    )
    parser.add_argument("--llm", default=None, help="an OpenAI-compatible LLM's base URL")
    parser.add_argument("--model", default=None, help="the model name the LLM serves")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if bool(args.llm) != bool(args.model):
        parser.error("--llm and --model go together")
    requests = load(limit=args.limit)
    rates = [float(r) for r in args.rates.split(",")]
    systems = [s for s in args.systems.split(",") if s]
    unknown = sorted(set(systems) - set(SYSTEMS))
    if unknown:
        parser.error(f"unknown systems {unknown}; known: {', '.join(SYSTEMS)}")
    rows: list[Row] = []
    compare = requests[: args.compare]
    if args.llmlingua_saved_only:
        saved = _saved_llmlingua()
        everything = set(LLMLINGUA_SYSTEMS)
        compare = [r for r in compare if _done(saved, r.id, rates) == everything]
    for scorer in [s for s in args.scorers.split(",") if s]:
        rows += run_tersify(scorer, systems, requests, rates, len(compare))
    if not args.skip_llmlingua:
        rows += run_llmlingua(compare, rates, saved_only=args.llmlingua_saved_only)
    if args.llm:
        rows += ask_llm(rows, requests, args.llm, args.model)
    among = {r.id for r in compare}
    tables = [
        (f"All {len(requests)} requests", summarize([r for r in rows if r["system"] ==
                                                    "tersify default"])),
        (f"The first {len(compare)} requests, every system side by side",
         summarize([r for r in rows if r["request"] in among])),
    ]
    ranking = ranker_table(requests)
    cpu = results.cpu_summary()
    data = {"tables": dict(tables), "ranker": ranking,
            "rows": [{k: v for k, v in r.items() if k != "prompt"} for r in rows]}
    text = markdown(tables, ranking, results.command_line(), cpu)
    print(results.write("quality_real", text, data, directory=args.out, machine=cpu,
                        with_header=False))


if __name__ == "__main__":
    main()
