"""The reliability benchmark of `tersify serve`: many clients, mixed requests, one Triton restart.

    .venv/bin/python perf/soak_http.py [--mode embedded|triton] [--clients 64] [--seconds 600]
                                       [--scorer gemma-3-270m] [--serve-args "--max-queue 8"]

``--clients`` threads send requests for ``--seconds``: seed-size, short (~400 tokens),
oversized (a body over the byte limit, too many contexts, too many scorer tokens) and
malformed (bad JSON, a lone surrogate, an unknown field, a huge integer, text/plain).
A client honours ``Retry-After`` on a 429. With ``--mode triton`` the scorer is a local
Triton started here, restarted once at half time. A monitor reads the service's RSS
(and Triton's) and times ``GET /healthz`` twice a second.

Reports requests, 2xx / 4xx by code / 5xx by code, requests lost without an answer,
p50 / p99 latency of admitted requests by kind, peak RSS, the slowest ``/healthz``, and
the time from the restart to the first compression that succeeds again. Writes
``perf/out/soak_http-MODE.md`` and ``.json``. Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import shlex
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tersify.client import Bundle, resolve_scorer_folder
from tersify.settings import Settings
from tersify.triton import server

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
sys.path.insert(0, str(HERE.parent / "tests"))
from texts import sample_text  # noqa: E402

SEED = (HERE.parent / "examples" / "seed_request.json").read_bytes()
JSON = "application/json"


QUESTION = json.loads(SEED)["question"]


def _fresh(kind: str, rng: random.Random) -> tuple[bytes, str]:
    """A seed-size or short request with text never sent before (the score cache misses)."""
    n = rng.randrange(1 << 30)
    if kind == "seed":  # the seed's size: ~5,800 characters of mixed text, ratio 0.2
        body = {"context": [sample_text("mixed", 5_770, n)], "question": QUESTION, "ratio": 0.2}
    else:  # ~400 target tokens of prose
        body = {"context": [sample_text("english", 1_800, n)], "question": QUESTION, "rate": 0.5}
    return json.dumps(body, ensure_ascii=False).encode(), JSON


def _refused() -> dict[str, list[tuple[bytes, str]]]:
    return {
        "oversized": [
            (b'{"context": "' + b"a" * (9 * 1024 * 1024) + b'"}', JSON),  # over the body limit
            (json.dumps({"context": ["word"] * 2000}).encode(), JSON),  # over max_contexts
            (json.dumps({"context": [sample_text("english", 400_000, 3)]}).encode(), JSON),
        ],
        "malformed": [
            (b'{"context": ', JSON),
            (b'{"context": "\\ud800 lone"}', JSON),
            (b'{"context": "x", "colour": "red"}', JSON),
            (b'{"context": "x", "target_token": 1' + b"0" * 5000 + b"}", JSON),
            (b"[" * 100_000, JSON),
            (b'{"context": "x"}', "text/plain"),
        ],
    }


MIX = (("seed", 0.25), ("short", 0.45), ("oversized", 0.15), ("malformed", 0.15))


class Recorder:
    """What every request got, thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rows: list[tuple[float, str, int, float, str]] = []  # t, kind, status, s, error

    def add(self, kind: str, status: int, seconds: float, error: str) -> None:
        with self.lock:
            self.rows.append((time.monotonic(), kind, status, seconds, error))


def _send(url: str, body: bytes, media: str) -> tuple[int, str, float]:
    request = urllib.request.Request(url, data=body, headers={"content-type": media})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            json.loads(response.read())
            return response.status, "", 0.0
    except urllib.error.HTTPError as exc:
        try:
            error = json.loads(exc.read())["error"]["type"]
        except (ValueError, KeyError, TypeError):
            error = "NOT-THE-ERROR-SHAPE"
        retry = float(exc.headers.get("retry-after") or 0)
        return exc.code, error, retry
    except OSError as exc:
        return 0, type(exc).__name__, 0.0


def _client(base: str, until: float, recorder: Recorder, seed: int) -> None:
    rng = random.Random(seed)
    refused = _refused()
    kinds, weights = zip(*MIX, strict=True)
    while time.monotonic() < until:
        kind = rng.choices(kinds, weights)[0]
        body, media = _fresh(kind, rng) if kind in ("seed", "short") else rng.choice(refused[kind])
        started = time.monotonic()
        status, error, retry = _send(f"{base}/compress", body, media)
        recorder.add(kind, status, time.monotonic() - started, error)
        if status == 429:
            time.sleep(min(retry, 10.0) * rng.uniform(0.5, 1.5))


def _rss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def _monitor(
    base: str, service: int, triton: list[int], until: float, samples: list[dict[str, float]]
) -> None:
    while time.monotonic() < until:
        started = time.monotonic()
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=10):
                healthz = time.monotonic() - started
        except OSError:
            healthz = float("inf")
        samples.append(
            {
                "t": started,
                "healthz_s": healthz,
                "service_mib": _rss_mib([service]),
                "triton_mib": _rss_mib(server._process_tree(triton[0])) if triton else 0.0,
            }
        )
        time.sleep(max(0.0, 0.5 - (time.monotonic() - started)))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def _wait_ready(base: str, service: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if service.poll() is not None:
            raise RuntimeError("tersify serve exited before it was ready")
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=5):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("tersify serve was not ready in 300 s")


def run(args: argparse.Namespace) -> dict[str, Any]:
    bundle = Bundle.open(resolve_scorer_folder(args.scorer, Settings.from_env()))
    run_dir = OUT / "soak-triton"
    run_dir.mkdir(parents=True, exist_ok=True)
    scorer, triton_pid, restart = str(bundle.folder), [], {}
    state = None
    if args.mode == "triton":
        state = server.start(bundle, run_dir)
        triton_pid.append(state.pid)
        scorer = f"{state.grpc_url}?scorer={bundle.folder}&timeout=120"
    port = server.free_port()
    command = [sys.executable, "-m", "tersify.cli", "serve", "--scorer", scorer]
    command += ["--port", str(port), *shlex.split(args.serve_args)]
    log = (OUT / f"soak_http-{args.mode}.log").open("wb")
    service = subprocess.Popen(command, stderr=log)
    base = f"http://127.0.0.1:{port}"
    recorder, samples = Recorder(), []
    try:
        _wait_ready(base, service)
        started = time.monotonic()
        until = started + args.seconds
        threads = [
            threading.Thread(target=_client, args=(base, until, recorder, seed))
            for seed in range(args.clients)
        ]
        threads.append(
            threading.Thread(target=_monitor, args=(base, service.pid, triton_pid, until, samples))
        )
        for thread in threads:
            thread.start()
        if state is not None:
            time.sleep(args.seconds / 2)
            restart["stop"] = time.monotonic()
            server.stop(run_dir)
            state = server.start(
                bundle,
                run_dir,
                http_port=state.http_port,
                grpc_port=state.grpc_port,
                metrics_port=state.metrics_port,
            )
            triton_pid[0] = state.pid
            restart["ready"] = time.monotonic()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        peak_hwm = _hwm_mib(service.pid) if service.poll() is None else 0.0
        died = _death(service, samples)
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(timeout=120)
        if args.mode == "triton":
            server.stop(run_dir)
    with (OUT / f"soak_http-{args.mode}.csv").open("w", encoding="utf-8") as rows:
        rows.write("t,kind,status,seconds,error\n")
        for t, kind, status, seconds, error in recorder.rows:
            rows.write(f"{t - started:.3f},{kind},{status},{seconds:.3f},{error}\n")
    result = _summary(args, recorder, samples, restart, elapsed, peak_hwm)
    result["service_died"] = None if died is None else round(died - started, 1)
    result["service_exit"] = service.returncode if died is not None else None
    return result


def _death(service: subprocess.Popen[bytes], samples: list[dict[str, float]]) -> float | None:
    """When the service stopped answering for good, if it died during the run."""
    if service.poll() is None:
        return None
    answered = [s["t"] for s in samples if s["healthz_s"] != float("inf")]
    return max(answered) if answered else None


def _hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _summary(
    args: argparse.Namespace,
    recorder: Recorder,
    samples: list[dict[str, float]],
    restart: dict[str, float],
    elapsed: float,
    peak_hwm: float,
) -> dict[str, Any]:
    rows = recorder.rows
    codes = collections.Counter(status for _, _, status, _, _ in rows)
    errors = collections.Counter(
        f"{status} {error}" for _, _, status, _, error in rows if status >= 500 or status == 0
    )
    latency = {
        kind: [s for _, k, status, s, _ in rows if k == kind and status == 200]
        for kind in ("seed", "short")
    }
    healthz = [s["healthz_s"] for s in samples]
    recovery = None
    if restart:
        after = [t for t, _, status, _, _ in rows if status == 200 and t > restart["ready"]]
        recovery = {
            "outage_s": restart["ready"] - restart["stop"],
            "first_200_after_stop_s": (min(after) - restart["stop"]) if after else None,
            "5xx_in_window": sum(
                1
                for t, _, status, _, _ in rows
                if status >= 500 and restart["stop"] <= t <= restart["ready"] + 130
            ),
        }
    return {
        "mode": args.mode,
        "clients": args.clients,
        "seconds": round(elapsed, 1),
        "serve_args": args.serve_args,
        "requests": len(rows),
        "by_status": dict(sorted(codes.items())),
        "errors_5xx_or_lost": dict(errors),
        "not_the_error_shape": sum(1 for r in rows if r[4] == "NOT-THE-ERROR-SHAPE"),
        "latency_200_s": {
            kind: {
                "n": len(values),
                "p50": round(statistics.median(values), 2) if values else None,
                "p99": round(_percentile(values, 0.99), 2) if values else None,
            }
            for kind, values in latency.items()
        },
        "peak_rss_mib": {
            "service_sampled": round(max((s["service_mib"] for s in samples), default=0)),
            "service_hwm": round(peak_hwm),
            "triton_sampled": round(max((s["triton_mib"] for s in samples), default=0)),
        },
        "healthz_s": {
            "p50": round(_percentile(healthz, 0.5), 4),
            "p99": round(_percentile(healthz, 0.99), 4),
            "max": round(max(healthz, default=0), 4),
            "over_100ms": sum(1 for h in healthz if h > 0.1),
            "samples": len(healthz),
        },
        "restart": recovery,
    }


def _markdown(result: dict[str, Any]) -> str:
    lat = result["latency_200_s"]
    rss = result["peak_rss_mib"]
    hz = result["healthz_s"]
    lines = [
        f"`tersify serve` ({result['mode']} scorer), {result['clients']} clients for "
        f"{result['seconds']:.0f} s, serve flags `{result['serve_args'] or 'defaults'}`.",
        "",
        f"- requests: {result['requests']}; by status: "
        + ", ".join(f"{code}: {n}" for code, n in result["by_status"].items()),
        f"- 5xx or lost: {result['errors_5xx_or_lost'] or 'none'}; answers not in the error "
        f"shape: {result['not_the_error_shape']}",
        f"- admitted latency (200): seed p50 {lat['seed']['p50']} s, p99 {lat['seed']['p99']} s "
        f"(n={lat['seed']['n']}); short p50 {lat['short']['p50']} s, p99 {lat['short']['p99']} s "
        f"(n={lat['short']['n']})",
        f"- peak RSS: service {rss['service_hwm']} MiB (high-water mark), Triton "
        f"{rss['triton_sampled']} MiB (sampled)",
        f"- /healthz: p50 {hz['p50'] * 1000:.1f} ms, p99 {hz['p99'] * 1000:.1f} ms, max "
        f"{hz['max'] * 1000:.1f} ms, {hz['over_100ms']} of {hz['samples']} samples over 100 ms",
    ]
    if result.get("service_died") is not None:
        lines.append(
            f"- the service DIED {result['service_died']} s into the run (exit "
            f"{result['service_exit']}); requests after that are counted as lost"
        )
    if result["restart"]:
        r = result["restart"]
        lines.append(
            f"- Triton restart: down for {r['outage_s']:.1f} s; first 200 "
            f"{r['first_200_after_stop_s']:.1f} s after the stop; 5xx in that window: "
            f"{r['5xx_in_window']}"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("embedded", "triton"), default="embedded")
    parser.add_argument("--scorer", default="gemma-3-270m")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--serve-args", default="", help="extra `tersify serve` flags")
    args = parser.parse_args()
    result = run(args)
    OUT.mkdir(exist_ok=True)
    (OUT / f"soak_http-{args.mode}.json").write_text(json.dumps(result, indent=2) + "\n")
    text = _markdown(result)
    (OUT / f"soak_http-{args.mode}.md").write_text(text, encoding="utf-8")
    print(json.dumps(result, indent=2))
    print(text)


if __name__ == "__main__":
    main()
