"""Imports run one way between the rooms: the contracts in pyproject.toml, run by lint-imports.

docs/architecture.md draws the rooms. Here: the contracts hold, they name every module of
the core and every package, and importing the core loads no runtime.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]
RUNTIMES = {"onnxruntime", "tritonclient", "grpc", "torch", "transformers", "onnx", "tokenizers"}


def _config() -> dict:  # type: ignore[type-arg]
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _contracts() -> dict[str, dict]:  # type: ignore[type-arg]
    return {c["name"]: c for c in _config()["tool"]["importlinter"]["contracts"]}


def test_the_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]


def test_the_core_contracts_name_every_module_of_the_core() -> None:
    core = {"tersify"} | {f"tersify.{p.stem}" for p in (ROOT / "compressor").glob("[!_]*.py")}
    for contract in _contracts().values():
        if contract["name"].startswith("The core"):
            assert set(contract["source_modules"]) == core, contract["name"]


def test_every_package_is_in_a_contract() -> None:
    packages = set(_config()["tool"]["setuptools"]["packages"]) - {"tersify", "tersify.encodings"}
    layers = next(c for c in _contracts().values() if c["type"] == "layers")
    named = {
        f"tersify.{n.strip()}"
        for layer in layers["layers"]
        for n in layer.replace(":", "|").split("|")
    }
    assert {p for p in packages if p.count(".") == 1} == named


def test_importing_tersify_loads_no_runtime() -> None:
    code = (
        "import sys, tersify, tersify.cli, tersify.request, tersify.compat; "
        f"print(sorted(m for m in {sorted(RUNTIMES)!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
