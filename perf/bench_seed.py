"""Compress the seed's request with tersify and with LLMLingua 0.2.2, side by side.

    .venv/bin/python perf/bench_seed.py [--repeat 5] [--skip-llmlingua]
        [--llmlingua-model smollm2-135m|gemma-3-270m] [--variants fp32,shortlist]
        [--scorers smollm2-135m,gemma-3-270m] [--skip-tersify]

Each configuration runs in its own process (so peak memory is its own) and compresses
the seed's request ``--repeat`` times after one warm-up, with tersify's score cache off
(each run scores); the table gives medians. tersify runs each of ``--scorers`` in each of
``--variants`` (a variant a scorer was not exported with is a "skipped" row). LLMLingua
runs in its own virtual environment, created on first use, on the same weights as
tersify's scorer of that name, rebuilt in fp32 and saved as a Hugging Face folder:

- ``smollm2-135m`` (default): ``perf/.venv-llmlingua``, llmlingua 0.2.2, transformers
  4.44.2, torch 2.13.0 CPU.
- ``gemma-3-270m``: ``perf/.venv-llmlingua-gemma``, llmlingua 0.2.2, transformers 4.57.6
  (4.44 cannot load Gemma 3), torch 2.13.0 CPU, with the
  KV-cache shim (``llmlingua_shim.legacy_cache``) around the model's forward.
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
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SEED = ROOT / "examples" / "seed_request.json"
OUT = HERE / "out"


@dataclass(frozen=True)
class LLMLinguaSetup:
    """The venv LLMLingua 0.2.2 runs a model in, and what is installed there."""

    venv: Path
    packages: tuple[str, ...]


LLMLINGUA = {
    "smollm2-135m": LLMLinguaSetup(
        HERE / ".venv-llmlingua",
        ("llmlingua==0.2.2", "transformers==4.44.2", "torch==2.13.0", "accelerate<1.0", "numpy<2"),
    ),
    # Gemma 3 needs transformers >= 4.50; 4.57.6 is the last 4.x (LLMLingua 0.2.2 breaks on 5.x).
    "gemma-3-270m": LLMLinguaSetup(
        HERE / ".venv-llmlingua-gemma",
        (
            "llmlingua==0.2.2",
            "transformers==4.57.6",
            "torch==2.13.0",
            "accelerate==1.15.0",
            "numpy<2",
        ),
    ),
}
LLMLINGUA_VENV = LLMLINGUA["smollm2-135m"].venv


def run_tersify(scorer: str, variant: str, repeat: int) -> dict[str, object]:
    """Worker: compress the seed ``repeat`` times with one tersify scorer, cache off."""
    from tersify import Compressor
    from tersify.client import open_scorer
    from tersify.errors import TersifyError

    system = f"tersify {scorer} ({variant})"
    request = json.loads(SEED.read_text(encoding="utf-8"))
    try:
        compressor = Compressor(open_scorer(scorer, variant=variant), cache=False)
    except TersifyError as exc:  # e.g. a variant this scorer was not exported with
        return {"system": system, "skipped": str(exc)}
    times, scorer_times = [], []
    result = None
    for i in range(repeat + 1):
        started = time.perf_counter()
        result = compressor.compress(
            request["context"], question=request["question"], ratio=request["ratio"]
        )
        if i or not repeat:  # the first run warms up onnxruntime
            times.append(time.perf_counter() - started)
            scorer_times.append(result.scorer_seconds)
    assert result is not None
    return {
        "system": system,
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


def save_hf_folder(model: str, folder: Path) -> None:
    """Rebuild tersify's ``model`` in fp32 and save it as a plain HF folder for LLMLingua.

    The folder is written for the transformers of the model's LLMLingua venv: the fast
    tokenizer by its generic class name (transformers 5 records its own class names), and
    for 4.44 (tokenizers 0.19) BPE merges as "a b" strings; Gemma's per-layer-type RoPE
    (transformers 5's ``rope_parameters``) also as the 4.x fields ``rope_theta`` and
    ``rope_local_base_freq``.
    """
    from tersify.export.models import load, resolve
    from tersify.settings import Settings

    loaded, tokenizer = load(resolve(model, Settings.from_env().home))
    loaded.config._attn_implementation = "eager"
    loaded.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    if model == "smollm2-135m":
        tokenizer_path = folder / "tokenizer.json"
        data = json.loads(tokenizer_path.read_text(encoding="utf-8"))
        data["model"]["merges"] = [
            " ".join(m) if isinstance(m, list) else m for m in data["model"]["merges"]
        ]
        tokenizer_path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    model_config_path = folder / "config.json"
    model_config = json.loads(model_config_path.read_text(encoding="utf-8"))
    rope = model_config.get("rope_parameters") or {}
    if "full_attention" in rope and "sliding_attention" in rope:
        model_config["rope_theta"] = rope["full_attention"]["rope_theta"]
        model_config["rope_local_base_freq"] = rope["sliding_attention"]["rope_theta"]
        model_config.setdefault("rope_scaling", None)
        model_config_path.write_text(json.dumps(model_config, indent=2), encoding="utf-8")


def hf_folder(model: str) -> Path:
    """The HF folder of ``model`` for LLMLingua, made (in a child process) on first use."""
    folder = OUT / f"{model}-hf"
    if not (folder / "config.json").is_file():
        subprocess.run([sys.executable, __file__, "--save-hf-folder", model], check=True)
    return folder


def _smollm2_hf_folder() -> Path:
    return hf_folder("smollm2-135m")


def _llmlingua_python(model: str = "smollm2-135m") -> Path:
    setup = LLMLINGUA[model]
    python = setup.venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(setup.venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *setup.packages], check=True
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


def run_llmlingua(repeat: int, model: str = "smollm2-135m") -> dict[str, object]:
    folder = hf_folder(model)
    python = _llmlingua_python(model)
    done = subprocess.run(
        [
            str(python),
            str(HERE / "llmlingua_runner.py"),
            str(folder),
            str(SEED),
            str(repeat),
            model,
        ],
        capture_output=True,
        text=True,
        env=llmlingua_env(),
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
        if "skipped" in r:
            lines.append(f"| {r['system']} | skipped: {r['skipped']} | | | | | |")
            continue
        lines.append(
            f"| {r['system']} | {r['median_s']:.2f} | {r['scorer_tokens']} | "
            f"{r['scorer_tokens_per_s']:.0f} | {r['compressed_tokens']} / {r['target_tokens']} "
            f"({r['origin_tokens']}) | {r['fffd']} | {r['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-llmlingua", action="store_true")
    parser.add_argument("--skip-tersify", action="store_true")
    parser.add_argument(
        "--llmlingua-model",
        choices=sorted(LLMLINGUA),
        default="smollm2-135m",
        help="the model LLMLingua scores with (its row goes after tersify's rows of that scorer)",
    )
    parser.add_argument(
        "--scorers", default="smollm2-135m,gemma-3-270m", help="tersify scorers, comma-separated"
    )
    parser.add_argument(
        "--variants", default="fp32", help="tersify variants, comma-separated (fp32,shortlist)"
    )
    parser.add_argument("--worker", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--save-hf-folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        scorer, variant = args.worker
        print(json.dumps(run_tersify(scorer, variant, args.repeat)))
        return
    if args.save_hf_folder:
        save_hf_folder(args.save_hf_folder, OUT / f"{args.save_hf_folder}-hf")
        return
    from tersify.export import export_scorer

    rows = []
    scorers = [] if args.skip_tersify else _names(args.scorers)
    for scorer in scorers:
        if scorer == "smollm2-135m":
            export_scorer("smollm2-135m", skip_existing=True)
        for variant in _names(args.variants):
            rows.append(_worker([scorer, variant, "--repeat", str(args.repeat)]))
            print(_table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
        if scorer == args.llmlingua_model and not args.skip_llmlingua:
            rows.append(run_llmlingua(args.repeat, args.llmlingua_model))
            print(_table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    if args.llmlingua_model not in scorers and not args.skip_llmlingua:
        rows.append(run_llmlingua(args.repeat, args.llmlingua_model))
    table = _table(rows)
    print(table)
    OUT.mkdir(exist_ok=True)
    name = "bench_seed.md" if args.llmlingua_model == "smollm2-135m" else "bench_seed_gemma.md"
    (OUT / name).write_text(table + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
