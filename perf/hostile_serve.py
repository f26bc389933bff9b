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

Writes perf/results/hostile_serve.md (the table) and hostile_serve.json. Listens on
127.0.0.1.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from typing import Any

from harness import results, serve
from harness.timing import Stopwatch

MB = 1_000_000


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


def post(base: str, text: str) -> int:
    """The status of a compression of ``text`` at rate 0.5."""
    body = {"context": [text], "rate": 0.5}
    return serve.post(f"{base}/compress", json.dumps(body).encode()).status


def timed_with_healthz(base: str, text: str) -> dict[str, Any]:
    """Post ``text``; time ``/healthz`` every 20 ms meanwhile."""
    result: dict[str, Any] = {}

    def work() -> None:
        with Stopwatch() as watch:
            result["status"] = post(base, text)
        result["seconds"] = round(watch.seconds, 2)

    worker = threading.Thread(target=work)
    worker.start()
    latencies = []
    while worker.is_alive():
        with Stopwatch() as probe, urllib.request.urlopen(f"{base}/healthz", timeout=60):
            pass
        latencies.append(probe.seconds)
        time.sleep(0.02)
    worker.join()
    latencies.sort()
    result["healthz_probes"] = len(latencies)
    result["healthz_p50_ms"] = round(1000 * latencies[len(latencies) // 2], 1)
    result["healthz_max_ms"] = round(1000 * latencies[-1], 1)
    return result


def sigterm_during_work(scorer: str, grace: float, text: str) -> float:
    """Seconds from SIGTERM (sent 2 s into a hostile request) to the process's exit."""
    service = serve.start(
        "--scorer", scorer, "--grace", str(grace), "--max-scorer-tokens", "10000000"
    )
    threading.Thread(target=lambda: post(service.base, text), daemon=True).start()
    time.sleep(2)
    with Stopwatch() as watch:
        service.process.send_signal(signal.SIGTERM)
        try:
            service.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            service.stop(timeout_s=0)
            return float("inf")
    return round(watch.seconds, 2)


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


def table(rows: dict[str, dict[str, Any]]) -> str:
    """One row per shape: the answer, its seconds, the slowest ``/healthz`` meanwhile."""
    cells = [
        [
            name, r["status"], r["seconds"],
            f"{r['healthz_max_ms']} ms (p50 {r['healthz_p50_ms']})",
        ]
        for name, r in rows.items()
    ]  # fmt: skip
    columns = ["1 MB of", "answer", "seconds", "slowest `/healthz`"]
    return results.table(columns, cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scorer", default="gemma-3-270m")
    parser.add_argument("--grace", type=float, default=5.0)
    args = parser.parse_args()
    texts = shapes()
    rows = {}
    with serve.serving("--scorer", args.scorer, "--read-timeout", "10") as service:
        for name, text in texts.items():
            rows[name] = timed_with_healthz(service.base, text)
            print(name, rows[name], flush=True)
        unanswered = drips(service.base, 10.0)
        print("dripped connections unanswered after the read timeout:", unanswered, flush=True)
    exit_s = sigterm_during_work(args.scorer, args.grace, texts["hex"])
    print(f"SIGTERM during a hostile request (--grace {args.grace:g}): exited in {exit_s} s")
    text = (
        f"`tersify serve` with `{args.scorer}`, 1 MB of each shape with `/healthz` timed every "
        f"20 ms meanwhile\n\n{table(rows)}\n\n"
        f"- connections dripping a body, unanswered after the read timeout: {unanswered}\n"
        f"- SIGTERM during a hostile request (`--grace {args.grace:g}`): exited in {exit_s} s"
    )
    data = {
        "scorer": args.scorer,
        "requests_1mb": rows,
        "dripped_unanswered": unanswered,
        "sigterm_exit_s": exit_s,
        "grace_s": args.grace,
    }
    print(results.write("hostile_serve", text, data))


if __name__ == "__main__":
    main()
