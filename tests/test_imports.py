"""Imports run one way: fronts -> core; client/ and export/ -> the core's protocol only.

    cli/, service/, integrations/  (fronts: may import everything)
        |
    compressor/  (the core, package `tersify`)  --lazy door: Compressor.open-->  client/
        ^
    client/, export/  import only the core's protocol, errors, settings and on-disk format

The core imports no runtime or transport library at all.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {"onnxruntime", "tritonclient", "grpc", "torch", "transformers", "onnx", "tokenizers"}
COMPRESSOR = ROOT / "compressor"
# What client/ and export/ may use of the core.
CORE_FOR_TRANSPORTS = {
    "tersify.scoring",
    "tersify.errors",
    "tersify.settings",
    "tersify.bundle",
    "tersify.validate",
    "tersify.limits",
}
FRONTS = {"tersify.cli", "tersify.service", "tersify.integrations"}
# Triton model files run inside Triton as fronts of their own (a compression model may
# import the whole core); standalone backends import nothing of tersify.
TRITON_MODELS = {"compress_backend.py"}


def _imports(path: Path, *, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _tersify(names: set[str]) -> set[str]:
    return {n for n in names if n == "tersify" or n.startswith("tersify.")}


def _under(name: str, packages: set[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def test_core_imports_no_runtime_and_no_outer_folder() -> None:
    for path in COMPRESSOR.rglob("*.py"):
        names = _imports(path)
        deep = {n.split(".")[0] for n in names} & FORBIDDEN
        assert not deep, f"{path} imports {deep}"
        outer = {n for n in _tersify(names) if _under(n, {"tersify.client", "tersify.export"})}
        outer |= {n for n in _tersify(names) if _under(n, {"tersify.service", "tersify.cli"})}
        if path.name == "compressor.py":
            # the lazy doors to the default scorer and ranker, inside Compressor.open / ranker
            assert outer <= {"tersify.client", "tersify.client.ranker"}, outer
            assert not (_tersify(_imports(path, top_level_only=True)) & outer)
        else:
            assert not outer, f"{path} imports {outer}"


def test_client_and_export_import_only_the_core_protocol() -> None:
    for folder, own in ((ROOT / "client", "tersify.client"), (ROOT / "export", "tersify.export")):
        for path in folder.rglob("*.py"):
            if path.name in TRITON_MODELS:
                continue
            used = {n for n in _tersify(_imports(path)) if not _under(n, {own})}
            assert used <= CORE_FOR_TRANSPORTS, f"{path} imports {used - CORE_FOR_TRANSPORTS}"


def test_python_backend_needs_nothing_of_the_core() -> None:
    backend = ROOT / "client" / "triton_backend.py"
    used = {n for n in _tersify(_imports(backend)) if not _under(n, {"tersify.client"})}
    assert not used, f"the scorer's python backend imports {used}"


def test_importing_tersify_loads_no_runtime() -> None:
    code = (
        "import sys, tersify, tersify.cli, tersify.request, tersify.compat; "
        f"print(sorted(m for m in {sorted(FORBIDDEN)!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
