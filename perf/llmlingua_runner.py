"""Runs inside an LLMLingua venv: LLMLingua 0.2.2 on the seed, printed as one JSON line.

python llmlingua_runner.py MODEL_FOLDER SEED_JSON REPEAT [MODEL_NAME]

perf/.venv-llmlingua (transformers 4.44.2) runs SmolLM2 as it is. perf/.venv-llmlingua-gemma
(transformers 4.57, the 4.x that loads Gemma 3) needs one shim, :func:`legacy_cache`, around
the model's forward; LLMLingua's own code runs unmodified.
"""

import json
import resource
import statistics
import sys
import time

import transformers
from llmlingua import PromptCompressor


def legacy_cache(model):
    """Give LLMLingua 0.2.2 the tuple KV cache of transformers <= 4.46 back.

    LLMLingua passes ``past_key_values`` around as a list of ``[key, value]`` per layer:
    it reads ``past_key_values[0][0].shape[2]``, slices ``k[:, :, :n]`` and passes the
    lists back in. transformers 4.57's Gemma 3 takes and returns only ``Cache`` objects
    (a list in fails with ``'list' object has no attribute 'get_seq_length'``), and the cache
    it makes itself keeps only the last 512 positions of the sliding-window layers, which
    LLMLingua's slicing by absolute position would cut wrong. So: a list coming in becomes
    a ``DynamicCache`` of full layers (``from_legacy_cache``), a call with ``use_cache`` and
    no cache starts an empty full one, and the cache going out goes back to tuples
    (``to_legacy_cache``). Full layers keep every position, as 4.44 did; the sliding
    window is still applied by the attention mask, so the log-probs are those of one
    forward over the whole text (checked by perf/llmlingua_gemma_check.py).
    """
    from transformers.cache_utils import Cache, DynamicCache

    forward = model.forward

    def call(*args, past_key_values=None, **kwargs):
        if past_key_values is not None and not isinstance(past_key_values, Cache):
            past_key_values = DynamicCache.from_legacy_cache(past_key_values)
        elif past_key_values is None and kwargs.get("use_cache"):
            past_key_values = DynamicCache()
        out = forward(*args, past_key_values=past_key_values, **kwargs)
        if isinstance(out.past_key_values, Cache):
            out.past_key_values = out.past_key_values.to_legacy_cache()
        return out

    model.forward = call
    return model


def needs_legacy_cache() -> bool:
    """True on the transformers that return ``Cache`` objects where LLMLingua wants tuples."""
    major, minor = (int(p) for p in transformers.__version__.split(".")[:2])
    return (major, minor) >= (4, 47)


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
