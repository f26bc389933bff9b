"""What the PyTorch engine's precision does to the selection, with the real weights, on a CPU.

    .venv/bin/python perf/engine_precision.py [--scorer gemma-3-270m] [--dtypes float32,bfloat16]

The GPU kit times the architecture with random weights, so it cannot say whether bf16 keeps
the same text; this does, on the CPU (slow, but the arithmetic is the same format). The
example request is compressed with the embedded default (onnxruntime, fp32, the exported
default variant) and with the PyTorch engine in each precision and head, at the request's
own ratio and at rate 0.25; the table gives the share of the compressed prompts' words in
common (difflib's matching blocks over the longer prompt) and whether they are identical.
Writes perf/results/engine_precision.md and .json.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Sequence
from typing import Any

import numpy as np
from harness import requests, results

from tersify import Compressor
from tersify.bundle import Bundle
from tersify.client import default_variant, open_scorer, resolve_scorer_folder
from tersify.engines.torch_engine import EngineOptions, TorchEngine
from tersify.scoring import FloatArray, IntArray, Scorer, Tokenized
from tersify.settings import Settings


class EngineScorer:
    """The PyTorch engine behind the scorer protocol; tokenizes as the embedded scorer does."""

    def __init__(self, engine: TorchEngine, tokenizer: Scorer) -> None:
        self._engine, self._tokenizer = engine, tokenizer
        self.name = tokenizer.name
        self.bos_token_id = tokenizer.bos_token_id
        self.max_window = tokenizer.max_window

    def tokenize(self, text: str) -> Tokenized:
        return self._tokenizer.tokenize(text)

    def logprobs(self, windows: Sequence[IntArray]) -> list[FloatArray]:
        batch = np.zeros((len(windows), max(len(w) for w in windows)), dtype=np.int64)
        for row, window in enumerate(windows):
            batch[row, : len(window)] = window
        scores = self._engine.score(batch)
        return [scores[row, : len(window)] for row, window in enumerate(windows)]


def _compressed(scorer: Scorer, request: dict[str, Any]) -> list[str]:
    compressor = Compressor(scorer, cache=False)
    asked = requests.compress(compressor, request)
    quarter = compressor.compress(request["context"], rate=0.25)
    return [asked.compressed_prompt, quarter.compressed_prompt]


def _in_common(a: str, b: str) -> float:
    left, right = a.split(), b.split()
    matcher = difflib.SequenceMatcher(None, left, right, autojunk=False)
    return sum(m.size for m in matcher.get_matching_blocks()) / max(len(left), len(right))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scorer", default=None, help="an exported scorer (name or folder)")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--heads", default="auto,full")
    args = parser.parse_args()
    folder = resolve_scorer_folder(args.scorer, Settings.from_env())
    request = requests.seed()
    bundle = Bundle.open(folder)
    embedded = open_scorer(str(folder))
    references = {"auto": _compressed(embedded, request)}
    references["full"] = _compressed(open_scorer(str(folder), variant="fp32"), request)
    rows = []
    for head in args.heads.split(","):
        for dtype in args.dtypes.split(","):
            options = EngineOptions(device="cpu", dtype=dtype, head=head)  # type: ignore[arg-type]
            engine = TorchEngine.load(folder, options)
            got = _compressed(EngineScorer(engine, embedded), request)
            cells = [
                f"{_in_common(a, b):.1%}" + (" (identical)" if a == b else "")
                for a, b in zip(references[head], got, strict=True)
            ]
            against = "embedded default" if head == "auto" else "fp32 graph"
            rows.append([f"{engine.head} head, {dtype} (vs the {against})", *cells])
            print(rows[-1], flush=True)
    columns = ["engine", "request's ratio: words in common", "rate 0.25: words in common"]
    text = (
        f"scorer {folder.name}; the embedded default: {default_variant(bundle)}, fp32\n\n"
        + results.table(columns, rows)
    )
    print(results.write("engine_precision", text, {"rows": rows}))


if __name__ == "__main__":
    main()
