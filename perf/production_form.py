"""The production form's graph against the embedded default: do they keep the same units?

    .venv/bin/python perf/production_form.py [--requests 90] [--scorer gemma-3-270m]

Triton's onnxruntime form (production: NGC's Triton, TensorRT FP16 on a GPU) serves
``model.shortlist.onnx``, the graph the embedded default runs in OpenVINO. The tritonserver
here has only the python backend: its onnxruntime engine serves that same file on
onnxruntime's CPU provider. For the example request and the real-documents benchmark's
requests (perf/data/squad2_multidoc.json, every document of each), both score every token
(512-id windows, as tersify plans them); the table gives the share of the units the
production graph keeps at rates 0.25 and 0.5 that the default keeps too (its lowest over
the two rates), and the compressed example request through both (token mode).
Writes perf/results/production_form.{md,json}.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from harness import requests, results
from harness.triton import running
from quality_real_data import load

from tersify import Compressor
from tersify.client import Bundle, open_scorer
from tersify.client.triton import RetryPolicy, TritonScorer, TritonTarget
from tersify.export.openvino import kept_units
from tersify.scoring import Scorer
from tersify.settings import Settings
from tersify.triton.config import ScorerConfig
from tersify.windows import WindowPlan, token_losses

RATES = (0.25, 0.5)
BAR = 0.97


def agreement(production: Scorer, default: Scorer, texts: list[str]) -> float:
    """The lowest share, over texts and rates, of production's kept units the default keeps."""
    tokens = [default.tokenize(t) for t in texts]
    ours = token_losses(production, [t.ids for t in tokens], WindowPlan())
    theirs = token_losses(default, [t.ids for t in tokens], WindowPlan())
    lowest = 1.0
    for text, tok, a, b in zip(texts, tokens, ours, theirs, strict=True):
        for rate in RATES:
            kept = kept_units(a, tok.offsets, text, rate)
            lowest = min(lowest, len(kept & kept_units(b, tok.offsets, text, rate)) / len(kept))
    return lowest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--requests", type=int, default=30, help="benchmark requests, every position alike (90)"
    )
    parser.add_argument("--scorer", default="gemma-3-270m")
    args = parser.parse_args()
    bundle = Bundle.open(Settings.from_env().scorer_folder(args.scorer))
    graph = ScorerConfig(form="onnxruntime").for_bundle(bundle).graph
    default = open_scorer(bundle.folder)
    seed = requests.seed()
    engine = ScorerConfig(form="python", engine="onnxruntime")
    with (
        tempfile.TemporaryDirectory() as run,
        running(bundle, Path(run), scorer=engine, ranker=None) as state,
    ):
        # The python backend runs every window of a request on the CPU: minutes under load.
        retry = RetryPolicy(timeout_s=1800.0)
        production = TritonScorer(TritonTarget.parse(state.grpc_url), bundle, retry=retry)
        on_seed = agreement(production, default, list(seed["context"]))
        kwargs = {"question": seed["question"], "ratio": seed["ratio"], "mode": "token"}
        prompts = [
            Compressor(s, cache=False).compress(seed["context"], **kwargs)
            for s in (production, default)
        ]
        benchmark = [
            agreement(production, default, list(r.documents)) for r in load(limit=args.requests)
        ]
        production.close()
    same_tokens = prompts[0].compressed_tokens == prompts[1].compressed_tokens
    same_prompt = prompts[0].compressed_prompt == prompts[1].compressed_prompt
    rows = [
        ["the example request", "1", f"{on_seed:.3f}", f"{on_seed:.3f}"],
        [
            "real documents (SQuAD 2.0, 20 each)",
            str(len(benchmark)),
            f"{min(benchmark):.3f}",
            f"{statistics.median(benchmark):.3f}",
        ],
    ]
    markdown = (
        f"{args.scorer}: the production form's graph ({graph}, onnxruntime on the CPU, "
        f"through tritonserver) against the embedded default ({type(default).__name__}); "
        f"kept units in common at rates {RATES[0]} and {RATES[1]}, bar {BAR}. The example "
        f"request compressed through both: {prompts[0].compressed_tokens} and "
        f"{prompts[1].compressed_tokens} tokens"
        f"{', the same prompt' if same_prompt else ''}"
        ".\n\n" + results.table(["requests", "how many", "lowest", "median"], rows, align="lrrr")
    )
    results.write(
        "production_form",
        markdown,
        {
            "scorer": args.scorer,
            "graph": graph,
            "seed": on_seed,
            "benchmark": benchmark,
            "same_budget": same_tokens,
            "same_prompt": same_prompt,
        },
    )


if __name__ == "__main__":
    main()
