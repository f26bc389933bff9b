"""Compress the seed's request with tersify and with LLMLingua 0.2.2, side by side.

    .venv/bin/python perf/bench_seed.py [--repeat 5] [--skip-llmlingua]

Each configuration runs in its own process (so peak memory is its own) and compresses
the seed's request ``--repeat`` times after one warm-up; the table gives medians.
LLMLingua runs in its own virtual environment (``perf/.venv-llmlingua``: llmlingua 0.2.2,
transformers 4.44.2, torch 2.13.0 CPU), created on first use, on the same SmolLM2-135M
weights as tersify's ``smollm2-135m`` scorer, saved as a Hugging Face folder.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SEED = ROOT / "examples" / "seed_request.json"
LLMLINGUA_VENV = HERE / ".venv-llmlingua"
OUT = HERE / "out"


def run_tersify(scorer: str, variant: str, repeat: int) -> dict[str, object]:
    """Worker: compress the seed ``repeat`` times with one tersify scorer."""
    from tersify import Compressor
    from tersify.client import open_scorer

    request = json.loads(SEED.read_text(encoding="utf-8"))
    compressor = Compressor(open_scorer(scorer, variant=variant))
    times, scorer_times = [], []
    result = None
    for i in range(repeat + 1):
        started = time.perf_counter()
        result = compressor.compress(
            request["context"], question=request["question"], ratio=request["ratio"]
        )
        if i:  # the first run warms up onnxruntime
            times.append(time.perf_counter() - started)
            scorer_times.append(result.scorer_seconds)
    assert result is not None
    return {
        "system": f"tersify {scorer} ({variant})",
        "median_s": statistics.median(times),
        "scorer_tokens": result.scorer_tokens,
        "scorer_tokens_per_s": result.scorer_tokens / statistics.median(scorer_times),
        "origin_tokens": result.origin_tokens,
        "compressed_tokens": result.compressed_tokens,
        "target_tokens": result.target_tokens,
        "fffd": result.compressed_prompt.count("\ufffd"),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _worker(args: list[str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, __file__, "--worker", *args], capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise SystemExit(f"worker {args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _smollm2_hf_folder() -> Path:
    """SmolLM2 rebuilt in fp32 and saved as a plain HF folder, for LLMLingua to load."""
    folder = OUT / "smollm2-135m-hf"
    if (folder / "config.json").is_file():
        return folder
    from tersify.export.models import load, resolve
    from tersify.settings import Settings

    model, tokenizer = load(resolve("smollm2-135m", Settings.from_env().home))
    model.config._attn_implementation = "eager"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    # transformers 5 records its own tokenizer class name; 4.44 knows the fast tokenizer.
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    # tokenizers 0.19 (what transformers 4.44 takes) reads BPE merges as "a b" strings.
    tokenizer_path = folder / "tokenizer.json"
    data = json.loads(tokenizer_path.read_text(encoding="utf-8"))
    data["model"]["merges"] = [
        " ".join(m) if isinstance(m, list) else m for m in data["model"]["merges"]
    ]
    tokenizer_path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return folder


def _llmlingua_python() -> Path:
    python = LLMLINGUA_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(LLMLINGUA_VENV)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "llmlingua==0.2.2",
                "transformers==4.44.2",
                "torch==2.13.0",
                "accelerate<1.0",
                "numpy<2",
            ],
            check=True,
        )
    return python


def llmlingua_env() -> dict[str, str]:
    """The environment LLMLingua runs in: offline, tiktoken's cl100k_base from tersify's file.

    LLMLingua asks tiktoken for cl100k_base, which tiktoken downloads; give it the file
    tersify ships, under tiktoken's cache key.
    """
    cache = OUT / "tiktoken-cache"
    cache.mkdir(parents=True, exist_ok=True)
    key = cache / "9b5ad71b2ce5302211f9c61530b329a4922fc6a4"
    if not key.exists():
        key.write_bytes((ROOT / "compressor" / "encodings" / "cl100k_base.tiktoken").read_bytes())
    return dict(os.environ, TIKTOKEN_CACHE_DIR=str(cache), HF_HUB_OFFLINE="1")


def run_llmlingua(repeat: int) -> dict[str, object]:
    folder = _smollm2_hf_folder()
    python = _llmlingua_python()
    env = llmlingua_env()
    done = subprocess.run(
        [str(python), str(HERE / "llmlingua_runner.py"), str(folder), str(SEED), str(repeat)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode:
        raise SystemExit(f"LLMLingua failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _table(rows: list[dict[str, object]]) -> str:
    head = (
        "| system | median latency (s) | scorer tokens | scorer tokens/s "
        "| compressed / target (origin) | U+FFFD | peak RSS (MB) |"
    )
    lines = [head, "|---|---:|---:|---:|---|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['system']} | {r['median_s']:.2f} | {r['scorer_tokens']} | "
            f"{r['scorer_tokens_per_s']:.0f} | {r['compressed_tokens']} / {r['target_tokens']} "
            f"({r['origin_tokens']}) | {r['fffd']} | {r['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-llmlingua", action="store_true")
    parser.add_argument("--worker", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        scorer, variant = args.worker
        print(json.dumps(run_tersify(scorer, variant, args.repeat)))
        return
    from tersify.export import export_scorer

    export_scorer("smollm2-135m", skip_existing=True)
    rows = [
        _worker(["smollm2-135m", "fp32", "--repeat", str(args.repeat)]),
        _worker(["gemma-3-270m", "fp32", "--repeat", str(args.repeat)]),
    ]
    if not args.skip_llmlingua:
        rows.insert(1, run_llmlingua(args.repeat))
    table = _table(rows)
    print(table)
    OUT.mkdir(exist_ok=True)
    (OUT / "bench_seed.md").write_text(table + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
