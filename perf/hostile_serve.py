"""Issue 25's goals, measured on a real `tersify serve` with the real scorer.

    .venv/bin/python perf/hostile_serve.py [--scorer gemma-3-270m] [--grace 5]

1. For each hostile shape (runs of one character, random hex, base64, minified JSON, CJK
   without spaces, emoji sequences), ``POST /compress`` 1 MB of it while ``GET /healthz``
   is timed every 20 ms: the answer's status and time (goal: < 10 s, compressed or
   refused by a limit) and the slowest ``/healthz`` (goal: < 100 ms).
2. SIGTERM while a hostile request works: seconds to exit (goal: within ``--grace``, plus
   the work's stop).
3. Eight connections each dripping a 415, a 413 and a JSON body a byte every 0.25 s:
   how many are still open without an answer after the read timeout (goal: none).

Writes ``perf/results/hostile_serve.json`` and prints a table. Listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import base64
import json
import platform
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

MB = 1_000_000
OUT = Path(__file__).parent / "results" / "hostile_serve.json"


def shapes() -> dict[str, str]:
    """1 MB of each hostile shape."""
    rng = random.Random(25)
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"
    rows = [{"id": i, "name": f"n{i}", "tags": ["a", "b"]} for i in range(MB // 30)]
    return {
        "x * 1M": "x" * MB,
        "7 * 1M": "7" * MB,
        "space * 1M": " " * MB,
        "= * 1M": "=" * MB,
        "hex": rng.randbytes(MB // 2).hex(),
        "base64": base64.b64encode(rng.randbytes(MB))[:MB].decode(),
        "minified JSON": json.dumps(rows, separators=(",", ":"))[:MB],
        "CJK": "".join(chr(rng.randrange(0x4E00, 0x9FFF)) for _ in range(MB)),
        "emoji ZWJ": (family * (MB // len(family)))[:MB],
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(scorer: str, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tersify.cli",
            "serve",
            "--scorer",
            scorer,
            "--port",
            str(port),
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2):
                return process, base
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("tersify serve did not start")


def post(base: str, text: str) -> int:
    body = json.dumps({"context": [text], "rate": 0.5}).encode()
    request = urllib.request.Request(
        f"{base}/compress", data=body, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def timed_with_healthz(base: str, text: str) -> dict[str, Any]:
    """Post ``text``; time ``/healthz`` every 20 ms meanwhile."""
    result: dict[str, Any] = {}

    def work() -> None:
        started = time.monotonic()
        result["status"] = post(base, text)
        result["seconds"] = round(time.monotonic() - started, 2)

    worker = threading.Thread(target=work)
    worker.start()
    latencies = []
    while worker.is_alive():
        started = time.monotonic()
        with urllib.request.urlopen(f"{base}/healthz", timeout=60):
            latencies.append(time.monotonic() - started)
        time.sleep(0.02)
    worker.join()
    latencies.sort()
    result["healthz_probes"] = len(latencies)
    result["healthz_p50_ms"] = round(1000 * latencies[len(latencies) // 2], 1)
    result["healthz_max_ms"] = round(1000 * latencies[-1], 1)
    return result


def sigterm_during_work(scorer: str, grace: float, text: str) -> float:
    """Seconds from SIGTERM (sent 2 s into a hostile request) to the process's exit."""
    process, base = serve(scorer, "--grace", str(grace), "--max-scorer-tokens", "10000000")
    threading.Thread(target=lambda: post(base, text), daemon=True).start()
    time.sleep(2)
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        return float("inf")
    return round(time.monotonic() - sent, 2)


def drips(base: str, read_timeout: float) -> dict[str, int]:
    """Connections still open without an answer ``read_timeout + 1`` s after they began."""
    port = int(base.rsplit(":", 1)[1])
    heads = {
        "415": b"Content-Type: text/plain\r\nContent-Length: 100000\r\n",
        "413": b"Content-Type: application/json\r\nContent-Length: 50000000\r\n",
        "408": b"Content-Type: application/json\r\nContent-Length: 100000\r\n",
    }
    unanswered = dict.fromkeys(heads, 0)
    lock = threading.Lock()

    def one(kind: str) -> None:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"POST /compress HTTP/1.1\r\nHost: 127.0.0.1\r\n" + heads[kind] + b"\r\n")
            sock.setblocking(False)
            started, answered = time.monotonic(), False
            while time.monotonic() - started < read_timeout + 1:
                try:
                    if sock.recv(65536) == b"":
                        answered = True
                        break
                except BlockingIOError:
                    pass
                except OSError:
                    answered = True
                    break
                try:
                    sock.send(b"x")
                except OSError:
                    answered = True
                    break
                time.sleep(0.25)
            if not answered:
                with lock:
                    unanswered[kind] += 1

    threads = [threading.Thread(target=one, args=(k,)) for k in heads for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return unanswered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scorer", default="gemma-3-270m")
    parser.add_argument("--grace", type=float, default=5.0)
    args = parser.parse_args()
    texts = shapes()
    process, base = serve(args.scorer, "--read-timeout", "10")
    rows = {}
    try:
        for name, text in texts.items():
            rows[name] = timed_with_healthz(base, text)
            print(name, rows[name], flush=True)
        unanswered = drips(base, 10.0)
        print("dripped connections unanswered after the read timeout:", unanswered, flush=True)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    exit_s = sigterm_during_work(args.scorer, args.grace, texts["hex"])
    print(f"SIGTERM during a hostile request (--grace {args.grace:g}): exited in {exit_s} s")
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    OUT.write_text(
        json.dumps(
            {
                "scorer": args.scorer,
                "cpu": cpu,
                "requests_1mb": rows,
                "dripped_unanswered": unanswered,
                "sigterm_exit_s": exit_s,
                "grace_s": args.grace,
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
