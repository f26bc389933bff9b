"""`tersify serve` refuses bad flags in one line, exit 2, before it opens a scorer or a port.

A real `tersify serve` on loopback: tests/integration/test_serve_process.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_bad_serve_flags_are_one_line_and_exit_2(tmp_path: Path) -> None:
    empty = tmp_path / "empty-token"
    empty.write_text("\n", encoding="utf-8")
    bad = (
        ["--token-file", str(empty)],
        ["--max-inflight", "-1"],
        ["--timeout", "0"],
        ["--port", "70000"],
        ["--max-body-bytes", "0"],
        ["--max-inflight", "0"],
        ["--max-queue", "-1"],
        ["--grace", "-1"],
        ["--grace", "nan"],
        ["--grace", "inf"],
        ["--timeout", "nan"],
        ["--read-timeout", "inf"],
    )
    for flags in bad:
        done = subprocess.run(
            [sys.executable, "-m", "tersify.cli", "serve", "--scorer", "/nonexistent", *flags],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, (flags, done.stderr)
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
        # The refusal names the flag (not a later failure, such as the missing scorer).
        name = flags[0].lstrip("-")
        assert name in done.stderr.replace("_", "-").replace("token file", "token-file"), (
            flags,
            done.stderr,
        )
