"""`tersify serve` as a child process on a free loopback port: start, wait, post, stop.

>>> with serving("--scorer", "gemma-3-270m") as service:  # doctest: +SKIP
...     post(f"{service.base}/compress", {"context": ["..."], "rate": 0.5}).status
200
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import Message
from typing import IO, Any

from harness.ports import free_port, wait_ready

JSON = "application/json"
Sink = int | IO[Any] | None


@dataclass(frozen=True)
class Service:
    """A running `tersify serve`."""

    process: subprocess.Popen[bytes]
    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, *, timeout_s: float = 120.0) -> int:
        """SIGTERM (its graceful stop), then SIGKILL after ``timeout_s``; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start(
    *flags: str,
    ready: str = "/healthz",
    timeout_s: float = 300.0,
    stdout: Sink = subprocess.DEVNULL,
    stderr: Sink = subprocess.DEVNULL,
) -> Service:
    """Start ``tersify serve --port PORT FLAGS`` and wait until ``ready`` answers 200.

    ``ready="/readyz"`` waits for the scorer too. The service is stopped again if it does
    not answer within ``timeout_s``.
    """
    port = free_port()
    command = [sys.executable, "-m", "tersify.cli", "serve", "--port", str(port), *flags]
    process = subprocess.Popen(command, stdout=stdout, stderr=stderr)
    service = Service(process, port)
    try:
        wait_ready(f"{service.base}{ready}", timeout_s=timeout_s, interval_s=0.2, process=process)
    except BaseException:
        service.stop(timeout_s=10)
        raise
    return service


@contextmanager
def serving(
    *flags: str,
    ready: str = "/healthz",
    timeout_s: float = 300.0,
    stdout: Sink = subprocess.DEVNULL,
    stderr: Sink = subprocess.DEVNULL,
) -> Iterator[Service]:
    """:func:`start`, and :meth:`Service.stop` on the way out."""
    service = start(*flags, ready=ready, timeout_s=timeout_s, stdout=stdout, stderr=stderr)
    try:
        yield service
    finally:
        service.stop()


@dataclass(frozen=True)
class Answer:
    """What the service answered: its status, headers and body (an error's too)."""

    status: int
    headers: Message  # case-insensitive: headers.get("retry-after")
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def post(
    url: str, body: bytes | Mapping[str, Any], *, media: str = JSON, timeout_s: float = 300.0
) -> Answer:
    """POST ``body`` (bytes as they are, or an object as JSON) and read the whole answer.

    An error status is an :class:`Answer` too; a connection that fails raises ``OSError``.
    """
    data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    request = urllib.request.Request(url, data=data, headers={"content-type": media})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return Answer(int(response.status), response.headers, response.read())
    except urllib.error.HTTPError as exc:
        return Answer(int(exc.code), exc.headers, exc.read())
