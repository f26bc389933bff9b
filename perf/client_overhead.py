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
import json
import pstats
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from tersify import Compressor
from tersify.encoding import forget_counts, load_encoding
from tersify.scoring import FloatArray, IntArray, Tokenized
from tersify.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "examples" / "seed_request.json"


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
    for _ in range(3):
        work()
    wall, cpu = [], []
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        work()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return statistics.median(wall) * 1e3, statistics.median(cpu) * 1e3


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

    request = json.loads(SEED.read_text(encoding="utf-8"))
    scorer = InstantScorer(args.tokenizer)
    compressor = Compressor(scorer, cache=False)  # every run scores, as a first request would
    encoding = load_encoding()
    prompt = "\n\n".join([*request["context"], request["question"]])

    def compress() -> object:
        forget_counts()  # cold: no piece counts remembered from the previous run
        return compressor.compress(
            request["context"], question=request["question"], ratio=request["ratio"]
        )

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
    print(f"seed: {result.origin_tokens} -> {result.compressed_tokens} target tokens")  # type: ignore[attr-defined]
    print("| work | median wall ms | median CPU ms |\n| --- | --- | --- |")
    for label, (wall, cpu) in rows:
        print(f"| {label} | {wall:.2f} | {cpu:.2f} |")
    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(lambda: [compress() for _ in range(20)])
        pstats.Stats(profile).sort_stats("cumtime").print_stats(25)


if __name__ == "__main__":
    main()
