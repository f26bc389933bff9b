"""End to end: ask an LLM with the full and with the compressed prompt, and compare.

    .venv/bin/python perf/ask_bench.py [--llm URL --model NAME] [--rate 0.25] [--tasks seed,qa]

For the seed's request and the quality harness's tasks (``quality_data.tasks()``: a planted
fact among 10 documents, English and Chinese, four positions), each task is compressed
(question-aware, the harness's mode, ``--scorer`` default SmolLM2-135M) and the LLM is asked
with the full and with the compressed prompt (temperature 0), as ``tersify ask
--question-aware`` does. The table gives the LLM's
``usage.prompt_tokens`` and response time for both, the compression's time, the end-to-end
time (full: the LLM; compressed: compression + LLM), whether the compressed prompt still
holds the expected fact and whether each answer does (the planted code; for the seed, the
names of LLMLingua's three modules).

With no ``--llm`` the script starts the local LLM (llama.cpp's server with
SmolLM2-135M-Instruct, ``tersify[llm]``); the same script runs against any
OpenAI-compatible endpoint (vLLM, OpenAI, ...): pass ``--llm``, ``--model`` and, if the
endpoint needs one, ``--api-key-env``. Before each call a one-token request clears the
server's reuse of a common prompt prefix (llama.cpp keeps the last prompt's KV cache), so
neither prompt rides on the other's cache. Writes perf/results/ask_bench.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from harness import RESULTS, results
from quality_data import Task, seed_task, tasks

from tersify import Compressor
from tersify.assemble import join_prompt
from tersify.integrations.ask import question_aware_options
from tersify.integrations.llm import LLMEndpoint, chat
from tersify.integrations.local_llm import LocalLLM


def _holds(task: Task, answer: str) -> bool:
    """Whether the answer holds the expected fact (all of the seed's module names)."""
    return all(k.lower() in answer.lower() for k in task.answer.split("|"))


def _flush(endpoint: LLMEndpoint) -> None:
    chat(endpoint, [{"role": "user", "content": "Hi"}], max_tokens=1)


def run(args: argparse.Namespace, url: str, model: str, key: str | None) -> list[dict[str, Any]]:
    compressor = Compressor(args.scorer)
    endpoint = LLMEndpoint(url, model=model, api_key=key, timeout=args.timeout)
    chosen: list[Task] = []
    if "seed" in args.tasks:
        chosen.append(seed_task())
    if "qa" in args.tasks:
        chosen += tasks()
    _flush(endpoint)  # warm-up: model loaded, first-call costs paid
    rows = []
    for task in chosen:
        result = compressor.compress(
            list(task.documents),
            question=task.question,
            rate=args.rate,
            **question_aware_options(),
        )
        replies = []
        for prompt in (
            join_prompt("", list(task.documents), task.question),
            result.compressed_prompt,
        ):
            _flush(endpoint)  # neither prompt may reuse the other's cached prefix
            replies.append(
                chat(
                    endpoint,
                    [{"role": "user", "content": prompt}],
                    temperature=0.0,
                    max_tokens=args.max_tokens,
                )
            )
        full, short = replies
        row = {
            "task": task.name,
            "full_prompt_tokens": full.prompt_tokens,
            "compressed_prompt_tokens": short.prompt_tokens,
            "full_llm_s": full.seconds,
            "compressed_llm_s": short.seconds,
            "compression_s": result.total_seconds,
            "full_e2e_s": full.seconds,
            "compressed_e2e_s": result.total_seconds + short.seconds,
            "fact_in_compressed_prompt": _holds(task, result.compressed_prompt),
            "full_holds": _holds(task, full.content),
            "compressed_holds": _holds(task, short.content),
            "target_origin_tokens": result.origin_tokens,
            "target_compressed_tokens": result.compressed_tokens,
            "full_answer": full.content,
            "compressed_answer": short.content,
        }
        rows.append(row)
        print(json.dumps(row, ensure_ascii=False), flush=True)
    return rows


def _yes(value: object) -> str:
    return "yes" if value else "no"


def _cells(r: dict[str, Any]) -> list[object]:
    return [
        r["task"],
        f"{r['full_prompt_tokens']} → {r['compressed_prompt_tokens']}",
        f"{r['full_llm_s']:.2f} → {r['compressed_llm_s']:.2f}",
        f"{r['compression_s']:.2f}",
        f"{r['full_e2e_s']:.2f} → {r['compressed_e2e_s']:.2f}",
        _yes(r["fact_in_compressed_prompt"]),
        f"{_yes(r['full_holds'])} / {_yes(r['compressed_holds'])}",
    ]


def _median_cells(rows: list[dict[str, Any]]) -> list[object]:
    def median(key: str) -> float:
        return statistics.median(float(r[key]) for r in rows)

    held = [sum(bool(r[k]) for r in rows) for k in ("full_holds", "compressed_holds")]
    kept = sum(bool(r["fact_in_compressed_prompt"]) for r in rows)
    return [
        "**median**",
        f"{median('full_prompt_tokens'):.0f} → {median('compressed_prompt_tokens'):.0f}",
        f"{median('full_llm_s'):.2f} → {median('compressed_llm_s'):.2f}",
        f"{median('compression_s'):.2f}",
        f"{median('full_e2e_s'):.2f} → {median('compressed_e2e_s'):.2f}",
        f"{kept}/{len(rows)}",
        f"{held[0]}/{len(rows)} / {held[1]}/{len(rows)}",
    ]


def table(rows: list[dict[str, Any]]) -> str:
    """The docs' markdown table, one row per task and a median row."""
    columns = [
        "task", "LLM prompt tokens full → compressed", "LLM s full → compressed",
        "compression s", "end-to-end s full → compressed", "fact in compressed prompt",
        "answer holds the fact full / compressed",
    ]  # fmt: skip
    cells = [*(_cells(r) for r in rows), _median_cells(rows)]
    return results.table(columns, cells, align="lrrrrll")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llm", default=None, help="OpenAI-compatible base URL (default: local)")
    parser.add_argument("--model", default=None, help="model name (required with --llm)")
    parser.add_argument("--api-key-env", default=None, help="variable holding the API key")
    parser.add_argument("--scorer", default="smollm2-135m", help="tersify scorer")
    parser.add_argument("--rate", type=float, default=0.25, help="fraction kept (default 0.25)")
    parser.add_argument("--tasks", default="seed,qa", help="seed, qa, or both")
    parser.add_argument("--max-tokens", type=int, default=64, help="cap on each answer")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--threads", type=int, default=1, help="local LLM threads (default 1)")
    parser.add_argument("--out", default=str(RESULTS / "ask_bench"), help="output path stem")
    args = parser.parse_args()
    # A SIGTERM unwinds like Ctrl-C, so the local LLM server is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    key = os.environ.get(args.api_key_env, "") if args.api_key_env else None
    with ExitStack() as stack:
        if args.llm is None:
            local = stack.enter_context(LocalLLM(n_ctx=8192, n_threads=args.threads))
            url, model = local.url, local.model
        elif args.model is None:
            sys.exit("--model is required with --llm")
        else:
            url, model = args.llm, args.model
        rows = run(args, url, model, key or None)
    out = Path(args.out)
    data = {"llm": model, "rate": args.rate, "rows": rows}
    print(results.write(out.name, table(rows), data, directory=out.parent))


if __name__ == "__main__":
    main()
