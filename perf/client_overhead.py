"""The compressor's own cost on the seed, with an instant scorer, beside the unavoidable work.

    .venv/bin/python perf/client_overhead.py [--repeat 50] [--tokenizer PATH/tokenizer.json]

The scorer answers at once (random log-probs) but tokenizes with the real scorer's
tokenizer (Gemma 3's, from the exported scorer folder), and the budget is counted with the
real target encoding (cl100k_base): what remains is the compressor's own work (units,
scores, selection, budget fitting, assembly). Beside it, in the same run: one tiktoken
encoding and one scorer tokenization of the same prompt, which any compressor must do.
Medians of ``--repeat`` runs after warm-up, each compression cold (no target-token piece
counts remembered from the run before); the answer's counts are printed. CPU time
(``time.process_time``) is reported beside wall time: on a shared machine it is the
steadier figure.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from harness import requests, results
from harness.timing import measure
from tokenizers import Tokenizer

from tersify import Compressor
from tersify.encoding import forget_counts, load_encoding
from tersify.scoring import FloatArray, IntArray, Tokenized
from tersify.settings import Settings


class InstantScorer:
    """A real tokenizer and random log-probs: a scorer that costs nothing."""

    def __init__(self, tokenizer_file: Path) -> None:
        self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self._rng = np.random.default_rng(0)

    name = "instant"
    bos_token_id = 2
    max_window = 512

    def tokenize(self, text: str) -> Tokenized:
        encoding = self._tokenizer.encode(text, add_special_tokens=False)
        return Tokenized(
            ids=np.asarray(encoding.ids, dtype=np.int64),
            offsets=np.asarray(encoding.offsets, dtype=np.int64).reshape(-1, 2),
        )

    def logprobs(self, windows: Sequence[IntArray]) -> list[FloatArray]:
        return [-self._rng.exponential(3.0, size=len(w)).astype(np.float32) for w in windows]


def _median_ms(work: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median wall and CPU milliseconds of ``work`` after three warm-up runs."""
    runs = measure(work, repeat=repeat, warmup=3)
    return runs.median * 1e3, runs.cpu_median * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument(
        "--tokenizer",
        type=Path,
        default=Settings.from_env().home / "scorers" / "gemma-3-270m" / "tokenizer.json",
    )
    parser.add_argument("--profile", action="store_true", help="print the top functions")
    args = parser.parse_args()

    request = requests.seed()
    scorer = InstantScorer(args.tokenizer)
    compressor = Compressor(scorer, cache=False)  # every run scores, as a first request would
    encoding = load_encoding()
    prompt = requests.prompt(request)

    def compress() -> Any:
        forget_counts()  # cold: no piece counts remembered from the previous run
        return requests.compress(compressor, request)

    result = compress()
    own = _median_ms(compress, args.repeat)
    encode = _median_ms(lambda: encoding.encode_ordinary(prompt), args.repeat)
    tokenize = _median_ms(lambda: scorer.tokenize(prompt), args.repeat)
    rows = [
        ("Compressor.compress, instant scorer", own),
        ("one tiktoken cl100k_base encoding of the prompt (unavoidable)", encode),
        ("one scorer tokenization of the prompt, Gemma 3 (unavoidable)", tokenize),
        (
            "the compressor's own work beyond those two",
            (own[0] - encode[0] - tokenize[0], own[1] - encode[1] - tokenize[1]),
        ),
    ]
    counts = f"{result.origin_tokens} -> {result.compressed_tokens} target tokens"
    table = results.table(
        ["work", "median wall ms", "median CPU ms"],
        [[label, f"{wall:.2f}", f"{cpu:.2f}"] for label, (wall, cpu) in rows],
        align="lrr",
    )
    data = {
        "repeat": args.repeat,
        "rows": {label: {"wall_ms": w, "cpu_ms": c} for label, (w, c) in rows},
    }
    print(results.write("client_overhead", f"The seed: {counts}.\n\n{table}", data))
    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(lambda: [compress() for _ in range(20)])
        pstats.Stats(profile).sort_stats("cumtime").print_stats(25)


if __name__ == "__main__":
    main()
