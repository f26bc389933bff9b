"""Runs inside an LLMLingua venv: LLMLingua 0.2.2 on the seed, printed as one JSON line.

python llmlingua_runner.py MODEL_FOLDER SEED_JSON REPEAT [MODEL_NAME]

perf/.venv-llmlingua (transformers 4.44.2) runs SmolLM2 as it is. perf/.venv-llmlingua-gemma
(transformers 4.57, the 4.x that loads Gemma 3) needs one shim around the model's forward
(``llmlingua_shim.legacy_cache``); LLMLingua's own code runs unmodified.
"""

import json
import resource
import statistics
import sys
import time

import transformers
from llmlingua import PromptCompressor
from llmlingua_shim import legacy_cache, needs_legacy_cache  # beside this file


def main() -> None:
    folder, seed, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
    name = sys.argv[4] if len(sys.argv) > 4 else "smollm2-135m"
    request = json.load(open(seed, encoding="utf-8"))
    compressor = PromptCompressor(model_name=folder, device_map="cpu")
    if needs_legacy_cache():
        legacy_cache(compressor.model)
    # Count the tokens LLMLingua's scorer sees: its windows over the whole prompt.
    scorer_tokens = len(
        compressor.tokenizer.encode("\n\n".join(request["context"] + [request["question"]]))
    )
    times = []
    out = None
    for i in range(repeat + 1):
        started = time.perf_counter()
        out = compressor.compress_prompt(
            request["context"], question=request["question"], rate=1 - request["ratio"]
        )
        if i or not repeat:  # --repeat 0: report the one (cold) run
            times.append(time.perf_counter() - started)
    median = statistics.median(times)
    print(
        json.dumps(
            {
                "system": f"LLMLingua 0.2.2 {name} (torch fp32, transformers "
                f"{transformers.__version__})",
                "median_s": median,
                "scorer_tokens": scorer_tokens,
                "scorer_tokens_per_s": scorer_tokens / median,
                "origin_tokens": out["origin_tokens"],
                "compressed_tokens": out["compressed_tokens"],
                "target_tokens": round(out["origin_tokens"] * (1 - request["ratio"])),
                "fffd": out["compressed_prompt"].count("\ufffd"),
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


if __name__ == "__main__":
    main()
