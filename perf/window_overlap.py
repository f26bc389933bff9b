"""What carrying the scorer's past keys and values across windows could save, measured.

    .venv/bin/python perf/window_overlap.py [--repeat 3]

The example request (examples/seed_request.json, one context of 2,438 scorer tokens) is
scored with the embedded default as tersify plans it (512-id windows carrying 64 ids of the
window before, each after BOS) and as the alternatives would: no overlap (the scorer tokens
a key/value carry-over would run, its lower bound), the same windows one at a time (the
carry-over's order: a window waits for the one before), larger windows, and the context as
one row. Each row says the scorer tokens run, the median seconds, and how many of the units
each keeps at rates 0.25 and 0.5 agree with today's windows (the lowest of the two).
Writes perf/results/window_overlap.{md,json}.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from harness import requests, results
from harness.timing import rounds

from tersify.client import open_scorer
from tersify.export.openvino import kept_units
from tersify.scoring import FloatArray, IntArray, Scorer
from tersify.windows import WindowPlan, token_losses

TODAY = WindowPlan(512, 64)
RATES = (0.25, 0.5)


class Counting:
    """A scorer that counts the ids it is asked to score, and can send windows one by one."""

    def __init__(self, inner: Scorer, *, one_at_a_time: bool = False) -> None:
        self.inner, self.one_at_a_time, self.tokens = inner, one_at_a_time, 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def logprobs(self, windows: list[IntArray]) -> list[FloatArray]:
        self.tokens += sum(len(w) for w in windows)
        if self.one_at_a_time:
            return [self.inner.logprobs([w])[0] for w in windows]
        return self.inner.logprobs(windows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    scorer = open_scorer()
    text = requests.seed()["context"][0]
    tokens = scorer.tokenize(text)
    ways: dict[str, tuple[WindowPlan, bool]] = {
        "512-id windows, 64 carried, batched (today)": (TODAY, False),
        "512-id windows, 64 carried, one at a time": (TODAY, True),
        "512-id windows, none carried, batched": (WindowPlan(512, 0), False),
        "512-id windows, none carried, one at a time (a carry-over's floor)": (
            WindowPlan(512, 0),
            True,
        ),
        "1024-id windows, 64 carried": (WindowPlan(1024, 64), False),
        "the context as one row": (WindowPlan(4096, 0), False),
    }
    counted = {name: Counting(scorer, one_at_a_time=one) for name, (_, one) in ways.items()}

    def work(name: str) -> Callable[[], FloatArray]:
        return lambda: token_losses(counted[name], [tokens.ids], ways[name][0])[0]

    runs = rounds({name: work(name) for name in ways}, repeat=args.repeat)
    reference = runs[next(iter(ways))].last
    rows, data = [], []
    for name, measured in runs.items():
        agreement = min(
            len(
                kept_units(measured.last, tokens.offsets, text, r)
                & kept_units(reference, tokens.offsets, text, r)
            )
            / len(kept_units(measured.last, tokens.offsets, text, r))
            for r in RATES
        )
        per_run = counted[name].tokens // (args.repeat + 1)
        over = per_run / len(tokens.ids) - 1
        rows.append(
            [name, f"{per_run:,}", f"{over:+.1%}", f"{measured.median:.2f}", f"{agreement:.3f}"]
        )
        data.append(
            {
                "scoring": name,
                "scorer_tokens": per_run,
                "median_s": measured.median,
                "seconds": measured.seconds,
                "agreement": agreement,
            }
        )
    columns = ["scoring", "scorer tokens", "over the prompt's", "median s", "kept units as today's"]
    markdown = (
        f"The example request: {len(tokens.ids):,} scorer tokens, {scorer.name} "
        f"({type(scorer).__name__}), median of {args.repeat} interleaved rounds.\n\n"
        + results.table(columns, rows, align="lrrrr")
    )
    results.write("window_overlap", markdown, {"prompt_tokens": len(tokens.ids), "rows": data})


if __name__ == "__main__":
    main()
