"""compressor/ (the ``tersify`` package) imports no runtime or transport."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

FORBIDDEN = {"onnxruntime", "tritonclient", "grpc", "torch", "transformers", "onnx", "tokenizers"}
COMPRESSOR = Path(__file__).resolve().parent.parent / "compressor"


def _top_level_imports(path: Path) -> set[str]:
    """Modules imported at module level (function-level imports load on demand)."""
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _all_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_runtime_in_compressor_sources() -> None:
    for path in COMPRESSOR.rglob("*.py"):
        assert not (_top_level_imports(path) & FORBIDDEN), path
        # anything beyond tersify's own client boundary is off limits, even lazily
        deep = {name.split(".")[0] for name in _all_imports(path)} & FORBIDDEN
        assert not deep, f"{path} imports {deep}"


def test_importing_tersify_loads_no_runtime() -> None:
    code = (
        "import sys, tersify, tersify.cli, tersify.request, tersify.compat; "
        f"print(sorted(m for m in {sorted(FORBIDDEN)!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
