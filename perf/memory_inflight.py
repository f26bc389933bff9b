"""Memory per in-flight compression of `tersify serve` with the embedded scorer.

    .venv/bin/python perf/memory_inflight.py [--scorer gemma-3-270m] [--inflight 1,2,4]
                                             [--sizes short,seed]

For each K in ``--inflight`` and each request size, a fresh `tersify serve
--max-inflight K --max-queue 0` is started, warmed with one tiny request, and sent K
requests at once. The process's resident memory is read from /proc before (after the
warm-up) and its high-water mark (VmHWM) after: ``(peak - idle) / K`` is the memory one
compression in flight adds. Writes ``perf/out/memory_inflight.md``.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from tersify.triton.server import free_port

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
sys.path.insert(0, str(HERE.parent / "tests"))
from texts import sample_text  # noqa: E402

SEED = (HERE.parent / "examples" / "seed_request.json").read_bytes()
SIZES = {
    # About 400 target tokens of English prose with a question.
    "short": json.dumps(
        {
            "context": [sample_text("english", 1_800, 5)],
            "question": "What is it about?",
            "rate": 0.5,
        }
    ).encode(),
    "seed": SEED,
}


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _post(url: str, body: bytes, results: list[int]) -> None:
    request = urllib.request.Request(url, data=body, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=1800) as response:
            response.read()
            results.append(response.status)
    except urllib.error.HTTPError as exc:
        results.append(exc.code)


def measure(scorer: str, inflight: int, body: bytes) -> dict[str, float]:
    port = free_port()
    command = [sys.executable, "-m", "tersify.cli", "serve", "--scorer", scorer]
    command += ["--port", str(port), "--max-inflight", str(inflight), "--max-queue", "0"]
    command += ["--timeout", "1800"]
    service = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=5):
                    break
            except OSError:
                if service.poll() is not None:
                    raise RuntimeError("tersify serve exited") from None
                time.sleep(0.5)
        loaded = _kib(service.pid, "VmRSS")
        _post(f"{base}/compress", b'{"context": "warm up the scorer", "rate": 0.5}', [])
        idle = _kib(service.pid, "VmRSS")
        results: list[int] = []
        started = time.monotonic()
        clients = [
            threading.Thread(target=_post, args=(f"{base}/compress", body, results))
            for _ in range(inflight)
        ]
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        seconds = time.monotonic() - started
        peak = _kib(service.pid, "VmHWM")
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(timeout=120)
    assert results == [200] * inflight, results
    return {
        "loaded_mib": loaded / 1024,
        "idle_mib": idle / 1024,
        "peak_mib": peak / 1024,
        "per_request_mib": (peak - idle) / 1024 / inflight,
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scorer", default="gemma-3-270m")
    parser.add_argument("--inflight", default="1,2,4")
    parser.add_argument("--sizes", default="short,seed")
    args = parser.parse_args()
    rows = [
        "| request | in flight | RSS loaded (MiB) | RSS idle (MiB) | peak RSS (MiB) "
        "| per request (MiB) | wall (s) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for size in args.sizes.split(","):
        for inflight in (int(k) for k in args.inflight.split(",")):
            m = measure(args.scorer, inflight, SIZES[size])
            rows.append(
                f"| {size} | {inflight} | {m['loaded_mib']:.0f} | {m['idle_mib']:.0f} "
                f"| {m['peak_mib']:.0f} | {m['per_request_mib']:.0f} | {m['seconds']:.1f} |"
            )
            print(rows[-1], flush=True)
    table = (
        f"`tersify serve` with the embedded `{args.scorer}` scorer; K requests at once with "
        "--max-inflight K.\n\n" + "\n".join(rows) + "\n"
    )
    OUT.mkdir(exist_ok=True)
    (OUT / "memory_inflight.md").write_text(table, encoding="utf-8")
    print(table)


if __name__ == "__main__":
    main()
