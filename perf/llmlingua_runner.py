"""Runs inside perf/.venv-llmlingua: LLMLingua 0.2.2 on the seed, printed as one JSON line.

python llmlingua_runner.py MODEL_FOLDER SEED_JSON REPEAT
"""

import json
import resource
import statistics
import sys
import time

from llmlingua import PromptCompressor


def main() -> None:
    folder, seed, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
    request = json.load(open(seed, encoding="utf-8"))
    compressor = PromptCompressor(model_name=folder, device_map="cpu")
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
        if i:
            times.append(time.perf_counter() - started)
    median = statistics.median(times)
    print(
        json.dumps(
            {
                "system": "LLMLingua 0.2.2 smollm2-135m (torch fp32)",
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
