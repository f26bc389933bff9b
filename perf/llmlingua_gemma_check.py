"""Runs inside perf/.venv-llmlingua-gemma: checks ``harness.llmlingua_shim.legacy_cache``.

    cd perf && .venv-llmlingua-gemma/bin/python llmlingua_gemma_check.py FOLDER SEED [CHUNK]

Scores the seed's prompt with LLMLingua's own ``get_ppl`` in chunks of CHUNK tokens (200,
LLMLingua's ``iterative_size``), passing the KV cache on and cutting it by absolute
position as LLMLingua's iterative compression does, and compares the token losses with one
forward over the whole text without a cache. Prints the largest difference as JSON; exits
1 when it is over 1e-3 (the shim keeps the sliding-window layers whole, so they agree).
"""

import json
import sys
from pathlib import Path

import torch
from harness.llmlingua_runner import load_compressor
from harness.requests import load, prompt


def main() -> None:
    folder, seed = sys.argv[1], sys.argv[2]
    chunk = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    compressor = load_compressor(folder)
    encoded = compressor.tokenizer(prompt(load(Path(seed))), return_tensors="pt")
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    with torch.no_grad():
        logits = compressor.model(ids, attention_mask=mask, use_cache=False).logits
    whole = torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:], reduction="none")
    losses, past = [], None
    for end in range(chunk, ids.shape[1] + chunk, chunk):
        end = min(end, ids.shape[1])
        loss, past = compressor.get_ppl(
            "", "token", ids, mask, past_key_values=past, return_kv=True, end=end
        )
        losses.append(loss)
        # Keep the cache up to end - 1 so the next chunk predicts token `end` too.
        past = [[k[:, :, : end - 1], v[:, :, : end - 1]] for k, v in past]
        if end == ids.shape[1]:
            break
    chunked = torch.cat(losses)
    diff = (chunked - whole).abs().max().item() if chunked.shape == whole.shape else float("inf")
    print(json.dumps({"tokens": ids.shape[1], "chunk": chunk, "max_abs_diff": diff}))
    sys.exit(0 if diff <= 1e-3 else 1)


if __name__ == "__main__":
    main()
