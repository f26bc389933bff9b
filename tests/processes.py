"""Programs the tests run as a user runs them: the ``tersify`` command, and servers to wait for."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def tersify(
    *args: str, stdin: bytes | None = None, home: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    """``tersify ARGS`` in a subprocess of this interpreter, with ``TERSIFY_HOME`` at ``home``."""
    env = dict(os.environ)
    if home is not None:
        env["TERSIFY_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "tersify.cli", *args],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=600,
        check=False,
    )


def wait_until_up(
    url: str,
    process: subprocess.Popen[bytes],
    what: str,
    *,
    log: Path | None = None,
    within: float = 180.0,
) -> None:
    """Wait until ``url`` answers; fail, with the end of ``log``, if ``process`` exits first."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited at start{_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{what} did not start{_tail(log)}")


def _tail(log: Path | None) -> str:
    return "" if log is None else ":\n" + log.read_text(errors="replace")[-3000:]
