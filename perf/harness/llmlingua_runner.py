"""Runs inside an LLMLingua venv: LLMLingua 0.2.2 on the seed's request or on tasks.

    python -m harness.llmlingua_runner seed MODEL_FOLDER SEED_JSON [--repeat 3] [--name NAME]
        [--device cpu|cuda] [--modes llmlingua,longllmlingua] [--warmup 1]
    python -m harness.llmlingua_runner tasks MODEL_FOLDER TASKS_JSON RATES

run from perf/ (or the GPU kit's folder); :func:`harness.llmlingua.run` does. ``seed``: one
JSON line per mode, the median of ``--repeat`` runs after ``--warmup`` (``--repeat 0``: the
one cold run). ``tasks``: one JSON line per (task, rate, setting), task by task, so that a
run cut short leaves whole tasks behind; a task may name the settings it still needs
("systems").

perf/.venv-llmlingua (transformers 4.44.2) runs SmolLM2 as it is; a transformers that
hands out ``Cache`` objects (4.47 on: Gemma 3's venv, the GPU image's 5.x) gets the shim
around the model's forward (:mod:`harness.llmlingua_shim`). LLMLingua's own code runs
unmodified. Imports llmlingua, torch, transformers and the harness's standard-library parts.
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path
from typing import Any

import torch
import transformers
from llmlingua import PromptCompressor

from harness.llmlingua_shim import legacy_cache, needs_legacy_cache
from harness.memory import peak_rss_mb
from harness.requests import load, prompt
from harness.timing import Stopwatch, measure

# The seed's modes: LLMLingua's defaults, and LongLLMLingua's question-aware ranking.
SEED_MODES: dict[str, dict[str, Any]] = {
    "llmlingua": {},
    "longllmlingua": {
        "rank_method": "longllmlingua",
        "condition_in_question": "after_condition",
        "condition_compare": True,
    },
}
# The quality tasks' settings: LongLLMLingua with its recommended options.
TASK_SETTINGS: dict[str, dict[str, Any]] = {
    "LLMLingua 0.2.2": {},
    "LongLLMLingua 0.2.2": {
        "condition_in_question": "after_condition",
        "reorder_context": "sort",
        "dynamic_context_compression_ratio": 0.3,
        "condition_compare": True,
        "context_budget": "+100",
        "rank_method": "longllmlingua",
    },
}


def load_compressor(folder: str, device: str = "cpu") -> PromptCompressor:
    """LLMLingua's compressor on ``folder``'s model, shimmed where transformers needs it."""
    compressor = PromptCompressor(model_name=folder, device_map=device)
    if needs_legacy_cache():
        legacy_cache(compressor.model)
    return compressor


def _sync(device: str) -> Any:
    return torch.cuda.synchronize if device == "cuda" else (lambda: None)


def seed(args: argparse.Namespace) -> None:
    """The seed's request, ``--repeat`` times a mode, one JSON line a mode."""
    request = load(Path(args.seed))
    precision = "fp32" if args.device == "cpu" else args.device
    for mode in args.modes.split(","):
        compressor = load_compressor(args.folder, args.device)
        # Count the tokens LLMLingua's scorer sees: its windows over the whole prompt.
        scorer_tokens = len(compressor.tokenizer.encode(prompt(request)))
        compress = partial(
            compressor.compress_prompt,
            request["context"],
            question=request["question"],
            rate=1 - request["ratio"],
            **SEED_MODES[mode],
        )
        runs = measure(
            compress,
            repeat=max(1, args.repeat),
            warmup=args.warmup if args.repeat else 0,
            sync=_sync(args.device),
        )
        out = runs.last
        system = "LongLLMLingua" if mode == "longllmlingua" else "LLMLingua"
        row = {
            "system": f"{system} 0.2.2 {args.name} (torch {precision}, transformers "
            f"{transformers.__version__})",
            "mode": mode,
            "median_s": runs.median,
            "scorer_tokens": scorer_tokens,
            "scorer_tokens_per_s": scorer_tokens / runs.median,
            "origin_tokens": out["origin_tokens"],
            "compressed_tokens": out["compressed_tokens"],
            "target_tokens": round(out["origin_tokens"] * (1 - request["ratio"])),
            "fffd": out["compressed_prompt"].count("\ufffd"),
            "peak_rss_mb": peak_rss_mb(),
        }
        print(json.dumps(row), flush=True)


def tasks(args: argparse.Namespace) -> None:
    """Every task at every rate in each of its settings, one JSON line each."""
    rates = [float(r) for r in args.rates.split(",")]
    all_tasks = json.loads(Path(args.tasks).read_text(encoding="utf-8"))
    compressor = load_compressor(args.folder)
    for task in all_tasks:
        for rate in rates:
            for system in task.get("systems", list(TASK_SETTINGS)):
                with Stopwatch() as watch:
                    out = compressor.compress_prompt(
                        list(task["documents"]),
                        question=task["question"],
                        rate=rate,
                        **TASK_SETTINGS[system],
                    )
                row = {
                    "system": system,
                    "task": task["name"],
                    "rate": rate,
                    "seconds": watch.seconds,
                    "origin_tokens": out["origin_tokens"],
                    "compressed_tokens": out["compressed_tokens"],
                    "prompt": out["compressed_prompt"],
                }
                print(json.dumps(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("seed", help="the seed's request, timed")
    one.add_argument("folder")
    one.add_argument("seed")
    one.add_argument("--repeat", type=int, default=3)
    one.add_argument("--warmup", type=int, default=1)
    one.add_argument("--name", default="smollm2-135m", help="the model's name in the table")
    one.add_argument("--device", default="cpu", help="cpu or cuda")
    one.add_argument("--modes", default="llmlingua", help=f"of {', '.join(SEED_MODES)}")
    many = commands.add_parser("tasks", help="quality tasks, their compressed prompts")
    many.add_argument("folder")
    many.add_argument("tasks")
    many.add_argument("rates", help="comma-separated kept fractions")
    args = parser.parse_args()
    if args.command == "seed":
        seed(args)
    else:
        tasks(args)


if __name__ == "__main__":
    main()
