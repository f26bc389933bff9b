"""A measurement in a child process of its own: its peak memory and warm-up are its own.

The parent runs the script again with the worker's arguments (:func:`run`); the child
measures and prints its answer as the last line of its output (:func:`answer`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


class WorkerFailed(RuntimeError):
    """The child exited with an error; ``stderr`` is its standard error."""

    def __init__(self, message: str, stderr: str) -> None:
        super().__init__(message)
        self.stderr = stderr

    @property
    def last_line(self) -> str:
        """The last line of the child's standard error (the exception, usually)."""
        lines = self.stderr.strip().splitlines()
        return lines[-1] if lines else "(no output)"


def run(script: str | Path, *args: str) -> dict[str, Any]:
    """Run ``python SCRIPT ARGS`` with this interpreter; the JSON object it printed last."""
    done = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise WorkerFailed(
            f"{Path(script).name} {' '.join(args)} failed:\n{done.stderr[-3000:]}", done.stderr
        )
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


def answer(data: dict[str, Any]) -> None:
    """The child's side: print ``data`` as one JSON line, the last of the output."""
    print(json.dumps(data, ensure_ascii=False), flush=True)
