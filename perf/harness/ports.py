"""Ports and readiness: a free loopback port, and waiting until a server answers."""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request

from tersify.triton.server import free_port

__all__ = ["free_port", "wait_ready"]


def wait_ready(
    url: str,
    *,
    timeout_s: float = 300.0,
    interval_s: float = 0.25,
    process: subprocess.Popen[bytes] | None = None,
) -> float:
    """Wait until ``url`` answers 200; return the seconds it took.

    Raises ``RuntimeError`` when ``process`` (the server, if given) exits first or the time
    is up.
    """
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(interval_s)
    raise RuntimeError(f"{url} did not answer within {timeout_s:g} s")
