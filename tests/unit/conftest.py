"""The unit tier's guard: no export, no server, no LLM, no browser (docs/testing.md).

Every test here sees an empty ``TERSIFY_HOME``, so nothing finds a scorer exported before,
and fails if it exports a scorer, a ranker or the tiny model, or starts tritonserver,
uvicorn, llama.cpp's server or a browser. Such a test belongs in ``tests/integration``,
whose fixtures (``tiny_scorer_dir``, ``local_llm``, ...) are not even defined here.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, NoReturn

import pytest

import tersify.export
import tersify.export.ranker

import tiny_model

# Parts of a command line that start a server, an LLM or a browser.
SERVERS = ("uvicorn", "llama_cpp.server", "playwright", "chromium")


def _refuse(what: str) -> NoReturn:
    raise AssertionError(f"a unit test {what}: move it to tests/integration")


def _started(args: Any) -> str | None:
    """What ``args`` (Popen's first argument) starts that a unit test may not, else None."""
    argv = [str(a) for a in ([args] if isinstance(args, str | Path) else args)]
    program = Path(argv[0]) if argv else Path()
    if program.name == "tritonserver" and "pytriton" in program.parts:
        return "the real tritonserver"
    found = [part for part in SERVERS for arg in argv if part in arg]
    return found[0] if found else None


@pytest.fixture(autouse=True)
def _unit_tier(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERSIFY_HOME", str(tmp_path_factory.mktemp("empty-home")))
    popen_init = subprocess.Popen.__init__

    def guarded(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
        started = _started(args)
        if started:
            _refuse(f"starts {started}")
        popen_init(self, args, *rest, **kwargs)

    def exports(*args: object, **kwargs: object) -> NoReturn:
        _refuse("exports a model")

    monkeypatch.setattr(subprocess.Popen, "__init__", guarded)
    monkeypatch.setattr(tersify.export, "export_scorer", exports)
    monkeypatch.setattr(tersify.export.ranker, "export_ranker", exports)
    monkeypatch.setattr(tiny_model, "build_tiny_model", exports)
