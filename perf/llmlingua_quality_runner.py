"""Runs inside perf/.venv-llmlingua: LLMLingua 0.2.2 on the quality tasks.

    python llmlingua_quality_runner.py MODEL_FOLDER TASKS_JSON RATES

Prints one JSON line per (task, rate, setting), task by task, so that a run cut short
leaves whole tasks behind; a task may name the settings it still needs ("systems").
"""

import json
import sys
import time

from llmlingua import PromptCompressor

SETTINGS = {
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


def main() -> None:
    folder, tasks_path, rates = sys.argv[1], sys.argv[2], [float(r) for r in sys.argv[3].split(",")]
    tasks = json.load(open(tasks_path, encoding="utf-8"))
    compressor = PromptCompressor(model_name=folder, device_map="cpu")
    for task in tasks:
        for rate in rates:
            for system in task.get("systems", list(SETTINGS)):
                options = SETTINGS[system]
                started = time.perf_counter()
                out = compressor.compress_prompt(
                    list(task["documents"]), question=task["question"], rate=rate, **options
                )
                print(
                    json.dumps(
                        {
                            "system": system,
                            "task": task["name"],
                            "rate": rate,
                            "seconds": time.perf_counter() - started,
                            "origin_tokens": out["origin_tokens"],
                            "compressed_tokens": out["compressed_tokens"],
                            "prompt": out["compressed_prompt"],
                        }
                    ),
                    flush=True,
                )


if __name__ == "__main__":
    main()
