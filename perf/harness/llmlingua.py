"""LLMLingua 0.2.2 beside tersify: its virtual environment, its model folder, its runner.

LLMLingua runs in a venv of its own, created on first use, on the same weights as
tersify's scorer of that name, rebuilt in fp32 and saved as a Hugging Face folder:

- ``smollm2-135m``: ``perf/.venv-llmlingua``, llmlingua 0.2.2, transformers 4.44.2,
  torch 2.13.0 CPU;
- ``gemma-3-270m``: ``perf/.venv-llmlingua-gemma``, transformers 4.57.6 (4.44 cannot load
  Gemma 3; LLMLingua 0.2.2 breaks on 5.x), with the KV-cache shim
  (:mod:`harness.llmlingua_shim`) around the model's forward.

:func:`run` starts :mod:`harness.llmlingua_runner` in that venv (or in any Python that has
llmlingua, as the GPU kit does), offline, and reads its JSON lines.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import IO, Any

from harness import OUT, PERF

# Where ``python -m harness.llmlingua_runner`` finds the package: the folder above it.
_HARNESS_PARENT = Path(__file__).resolve().parent.parent
# tiktoken's cache key for cl100k_base (the SHA-1 of its download URL).
_CL100K_KEY = "9b5ad71b2ce5302211f9c61530b329a4922fc6a4"


@dataclass(frozen=True)
class Setup:
    """The venv LLMLingua 0.2.2 runs a model in, and what is installed there."""

    venv: Path
    packages: tuple[str, ...]


SETUPS = {
    "smollm2-135m": Setup(
        PERF / ".venv-llmlingua",
        ("llmlingua==0.2.2", "transformers==4.44.2", "torch==2.13.0", "accelerate<1.0", "numpy<2"),
    ),
    "gemma-3-270m": Setup(
        PERF / ".venv-llmlingua-gemma",
        (
            "llmlingua==0.2.2",
            "transformers==4.57.6",
            "torch==2.13.0",
            "accelerate==1.15.0",
            "numpy<2",
        ),
    ),
}


class LLMLinguaFailed(RuntimeError):
    """The runner exited with an error; the message ends with its standard error."""


def python(model: str = "smollm2-135m") -> Path:
    """The Python of ``model``'s LLMLingua venv, made and filled on first use."""
    setup = SETUPS[model]
    interpreter = setup.venv / "bin" / "python"
    if not interpreter.exists():
        subprocess.run([sys.executable, "-m", "venv", str(setup.venv)], check=True)
        pip = [str(interpreter), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, *setup.packages], check=True)
    return interpreter


def environment(cache: Path = OUT / "tiktoken-cache") -> dict[str, str]:
    """The environment LLMLingua runs in: offline, tiktoken's cl100k_base from tersify's file.

    LLMLingua asks tiktoken for cl100k_base, which tiktoken would download: give it the file
    tersify ships, under tiktoken's cache key. No network, no Hugging Face Hub.
    """
    cache.mkdir(parents=True, exist_ok=True)
    key = cache / _CL100K_KEY
    if not key.exists():
        shipped = resources.files("tersify").joinpath("encodings/cl100k_base.tiktoken")
        key.write_bytes(shipped.read_bytes())
    return dict(os.environ, TIKTOKEN_CACHE_DIR=str(cache), HF_HUB_OFFLINE="1")


def run(
    interpreter: Path | str,
    *args: str,
    env: dict[str, str] | None = None,
    stdout: IO[str] | None = None,
    timeout_s: float | None = None,
) -> list[dict[str, Any]]:
    """``INTERPRETER -m harness.llmlingua_runner ARGS``; the JSON lines it printed.

    With ``stdout`` the lines go there as they come (and ``[]`` is returned), so that a run
    cut short keeps what it did.
    """
    command = [str(interpreter), "-m", "harness.llmlingua_runner", *args]
    done = subprocess.run(
        command,
        cwd=_HARNESS_PARENT,
        env=env if env is not None else environment(),
        stdout=stdout if stdout is not None else subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode:
        raise LLMLinguaFailed(f"LLMLingua failed:\n{done.stderr[-3000:]}")
    lines = [] if stdout is not None else done.stdout.splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


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
    _edit_json(folder / "tokenizer_config.json", _generic_tokenizer)
    if model == "smollm2-135m":
        _edit_json(folder / "tokenizer.json", _merges_as_strings)
    _edit_json(folder / "config.json", _rope_4x)


def _edit_json(path: Path, edit: Callable[[dict[str, Any]], bool]) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    if edit(data):
        path.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")


def _generic_tokenizer(config: dict[str, Any]) -> bool:
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    return True


def _merges_as_strings(data: dict[str, Any]) -> bool:
    merges = data["model"]["merges"]
    data["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in merges]
    return True


def _rope_4x(config: dict[str, Any]) -> bool:
    rope = config.get("rope_parameters") or {}
    if "full_attention" not in rope or "sliding_attention" not in rope:
        return False
    config["rope_theta"] = rope["full_attention"]["rope_theta"]
    config["rope_local_base_freq"] = rope["sliding_attention"]["rope_theta"]
    config.setdefault("rope_scaling", None)
    return True


def hf_folder(model: str) -> Path:
    """The HF folder of ``model`` for LLMLingua, made (in a child process) on first use."""
    folder = OUT / f"{model}-hf"
    if not (folder / "config.json").is_file():
        command = [sys.executable, "-m", "harness.llmlingua", model, str(folder)]
        subprocess.run(command, cwd=_HARNESS_PARENT, check=True)
    return folder


if __name__ == "__main__":  # hf_folder's child: python -m harness.llmlingua MODEL FOLDER
    save_hf_folder(sys.argv[1], Path(sys.argv[2]))
