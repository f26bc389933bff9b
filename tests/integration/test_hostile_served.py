"""No request can freeze a real ``tersify serve``: dripped bodies, hostile text, SIGTERM.

A real ``tersify serve`` on loopback with the tiny exported scorer (drips, /healthz during
a hostile request, SIGTERM); the core's text handling and the app in process are in
tests/unit/test_hostile.py. docs/reliability.md lists what each test holds.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_serve_process import Served, start, stop

from texts import MB, hostile_text

# -- a real server: drips, a hostile request, SIGTERM -------------------------------------


@pytest.fixture(scope="module")
def hostile_served(
    tiny_scorer_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    instance = start(
        tiny_scorer_dir,
        tmp_path_factory.mktemp("hostile"),
        "--read-timeout",
        "2",
        "--max-inflight",
        "1",
        "--max-queue",
        "2",
        "--grace",
        "2",
    )
    yield instance
    stop(instance)
    assert "Traceback" not in instance.stderr()


def _drip(port: int, head: bytes, every_s: float, until_s: float) -> tuple[bytes, float]:
    """Send ``head``, then a byte every ``every_s``; return the answer and when it closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=until_s) as sock:
        started = time.monotonic()
        sock.sendall(head)
        sock.setblocking(False)
        answer = b""
        while time.monotonic() - started < until_s:
            try:
                chunk = sock.recv(65536)
            except BlockingIOError:
                chunk = None
            except OSError:
                break  # reset after the answer: the server closed it
            if chunk == b"":
                return answer, time.monotonic() - started  # closed
            if chunk:
                answer += chunk
            try:
                sock.send(b"x")
            except OSError:
                break
            time.sleep(every_s)
        return answer, time.monotonic() - started


def _head(content_type: str, length: int = 100_000) -> bytes:
    return (
        f"POST /compress HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("kind", "head", "status"),
    [
        ("wrong media type", _head("text/plain"), b"415"),
        ("over the body limit", _head("application/json", 50_000_000), b"413"),
        ("a JSON body dripped", _head("application/json"), b"408"),
    ],
    ids=["415", "413", "408"],
)
def test_no_dripped_connection_outlives_the_read_timeout(
    hostile_served: Served, kind: str, head: bytes, status: bytes
) -> None:
    results: list[tuple[bytes, float]] = []

    def one() -> None:
        results.append(_drip(hostile_served.port, head, 0.25, until_s=15))

    threads = [threading.Thread(target=one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for answer, took in results:
        assert answer.split(b" ", 2)[1] == status, (kind, answer[:200])
        assert b"connection: close" in answer.lower(), answer[:300]
        # refused at once (a drip is not drained); a dripped JSON body at the read timeout
        assert took < (1.5 if status != b"408" else 2 + 1.5), (kind, took)


def _healthz_while(served: Served, work: Callable[[], object]) -> tuple[list[float], object]:
    """/healthz latencies, one every 50 ms, while ``work()`` runs in a thread."""
    outcome: list[object] = []
    worker = threading.Thread(target=lambda: outcome.append(work()))
    worker.start()
    latencies = []
    while worker.is_alive():
        started = time.monotonic()
        with urllib.request.urlopen(f"{served.base}/healthz", timeout=30) as response:
            assert response.status == 200
        latencies.append(time.monotonic() - started)
        time.sleep(0.05)
    worker.join()
    return latencies, outcome[0] if outcome else None


def _post(served: Served, body: bytes) -> int:
    request = urllib.request.Request(
        f"{served.base}/compress", data=body, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@pytest.mark.parametrize("shape", ["one-letter", "hex", "spaces"])
def test_healthz_answers_during_a_hostile_megabyte(hostile_served: Served, shape: str) -> None:
    body = json.dumps({"context": [hostile_text(shape, MB)], "rate": 0.5}).encode()
    started = time.monotonic()
    latencies, status = _healthz_while(hostile_served, lambda: _post(hostile_served, body))
    took = time.monotonic() - started
    assert status in (200, 413, 504), status
    assert took < 60  # before: 40 kB of 'x' took 24.9 s; 1 MB, minutes
    # The goal is 100 ms (perf/hostile_serve.py measures it on the real scorer); on a
    # shared machine a test only checks that nothing stalls the event loop for long.
    assert max(latencies) < 1.0, sorted(latencies)[-5:]


def test_sigterm_during_a_hostile_request_is_obeyed_within_the_grace(
    tiny_scorer_dir: Path, tmp_path: Path
) -> None:
    served = start(tiny_scorer_dir, tmp_path, "--grace", "2", "--max-scorer-tokens", "10000000")
    try:
        body = json.dumps({"context": [hostile_text("hex", MB)], "rate": 0.5}).encode()
        poster = threading.Thread(target=lambda: _post(served, body), daemon=True)
        poster.start()
        time.sleep(3)  # well inside the work: the body is read, tokenizing or scoring
        sent = time.monotonic()
        served.process.send_signal(signal.SIGTERM)
        served.process.wait(timeout=30)
        # --grace 2, then the work is told to stop and gets 5 s at most
        assert time.monotonic() - sent < 2 + 5 + 2, served.stderr()
    finally:
        stop(served)
