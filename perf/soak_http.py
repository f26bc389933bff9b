"""Ten concurrent HTTP clients send the seed's request to `tersify serve` for a minute.

    .venv/bin/python perf/soak_http.py [--scorer smollm2-135m] [--clients 10] [--seconds 60]
                                       [--embedded]

By default the service takes log-probs from a local Triton (python backend) started here;
``--embedded`` runs the scorer in the service's process instead. Every client sends the
seed's request again as soon as it has an answer, until the time is up; requests already
sent are awaited. Reports requests, errors, p50/p99 latency and throughput, and writes
``perf/out/soak_http.md``. Everything listens on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from tersify.client import Bundle, resolve_scorer_folder
from tersify.client import triton_server as server
from tersify.settings import Settings

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
SEED = (HERE.parent / "examples" / "seed_request.json").read_bytes()


def _client(url: str, until: float, results: list[tuple[float, int]], lock: threading.Lock) -> None:
    while time.monotonic() < until:
        request = urllib.request.Request(
            url, data=SEED, headers={"content-type": "application/json"}
        )
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=900) as response:
                status = response.status
                json.loads(response.read())
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError:
            status = 0
        with lock:
            results.append((time.monotonic() - started, status))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scorer", default="smollm2-135m")
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--embedded", action="store_true")
    args = parser.parse_args()

    bundle = Bundle.open(resolve_scorer_folder(args.scorer, Settings.from_env()))
    run_dir = OUT / "soak-triton"
    run_dir.mkdir(parents=True, exist_ok=True)
    scorer = str(bundle.folder)
    if not args.embedded:
        state = server.start(bundle, run_dir)
        # On a CPU, ten clients queue many windows: give each request a long deadline.
        scorer = f"{state.grpc_url}?scorer={bundle.folder}&timeout=900"
    port = server.free_port()
    service = subprocess.Popen(
        [sys.executable, "-m", "tersify.cli", "serve", "--scorer", scorer, "--port", str(port)]
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=5):
                    break
            except OSError:
                time.sleep(0.5)
        results: list[tuple[float, int]] = []
        lock = threading.Lock()
        started = time.monotonic()
        until = started + args.seconds
        clients = [
            threading.Thread(target=_client, args=(f"{base}/compress", until, results, lock))
            for _ in range(args.clients)
        ]
        for c in clients:
            c.start()
        for c in clients:
            c.join()
        elapsed = time.monotonic() - started
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(timeout=60)
        if not args.embedded:
            server.stop(run_dir)
    latencies = sorted(t for t, s in results if s == 200)
    errors = sum(1 for _, s in results if s != 200)
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] if latencies else 0.0
    mode = "embedded" if args.embedded else "Triton (python backend)"
    table = (
        "\n".join(
            [
                f"{args.clients} clients, seed request, {args.seconds:.0f} s of sending, scorer "
                f"`{bundle.manifest.name}` via {mode}, 2-core CPU.",
                "",
                "| requests | errors | p50 latency (s) | p99 latency (s) "
                "| requests/min | wall (s) |",
                "|---:|---:|---:|---:|---:|---:|",
                f"| {len(results)} | {errors} "
                f"| {statistics.median(latencies) if latencies else 0:.1f} "
                f"| {p99:.1f} | {len(latencies) / elapsed * 60:.1f} | {elapsed:.0f} |",
            ]
        )
        + "\n"
    )
    OUT.mkdir(exist_ok=True)
    (OUT / "soak_http.md").write_text(table, encoding="utf-8")
    print(table)


if __name__ == "__main__":
    main()
