"""The soak of `tersify serve`: many clients, mixed requests, its memory against its bound.

    .venv/bin/python perf/soak_http.py [--mode embedded|triton] [--clients 64] [--seconds 600]
        [--scorer gemma-3-270m] [--serve-args "--timeout 300"]

``--clients`` threads send requests for ``--seconds``, each drawn from a mix of sizes and
modes, every compression on text never sent before (the score cache cannot help):

- ``seed`` (20 %): ~5,800 characters of mixed Chinese and English, the example's question,
  ``ratio: 0.2`` (token-level);
- ``short`` (30 %): ~1,800 characters of English prose, a question, ``rate: 0.5``;
- ``qa`` (20 %): question-aware, eight ~2,100-character contexts and a question, ``rate:
  0.1`` (mode ``auto``: the ranker ranks the contexts, then the kept ones are pruned);
- ``oversized`` (15 %): a body over the byte limit, too many contexts, too many scorer
  tokens (400,000 characters);
- ``malformed`` (15 %): bad JSON, a lone surrogate, an unknown field, a huge integer,
  100,000 brackets, ``text/plain``.

A client honours ``Retry-After`` on a 429. The service runs with its default admission
(from the scorer it loads and this machine) plus ``--serve-args``; its memory bound is read
from its ``/metrics``. A monitor reads its resident memory (and Triton's) and times
``GET /healthz`` twice a second. With ``--mode triton`` the scorer and the ranker are a
local Triton started here (``tersify.triton.server``), stopped and started again at half
time; a 5xx counts against the restart when its request was in flight between the stop
and Triton being ready again, and as a failure otherwise.

Writes perf/results/soak_http.md and .json (the other mode's last run kept beside this
one's) and the per-request rows to perf/out/soak_http-MODE.csv.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import shlex
import statistics
import threading
import time
import urllib.request
from typing import Any

from harness import OUT, requests, results, serve, triton
from harness.memory import hwm_mib, rss_mib, tree_rss_mib
from harness.timing import percentile

JSON = serve.JSON
QUESTION = requests.seed()["question"]
RAG_QUESTION = requests.load(requests.RAG)["question"]
MIX = (
    ("seed", 0.20),
    ("short", 0.30),
    ("qa", 0.20),
    ("oversized", 0.15),
    ("malformed", 0.15),
)
COMPRESSIONS = ("seed", "short", "qa")


def fresh(kind: str, rng: random.Random) -> bytes:
    """A compression request of ``kind`` with text never sent before."""
    n = rng.randrange(1 << 30)
    if kind == "seed":
        text = requests.sample_text("mixed", 5_770, n)
        body: dict[str, Any] = {"context": [text], "question": QUESTION, "ratio": 0.2}
    elif kind == "short":
        text = requests.sample_text("english", 1_800, n)
        body = {"context": [text], "question": QUESTION, "rate": 0.5}
    else:
        contexts = [requests.sample_text("english", 2_100, n + i) for i in range(8)]
        body = {"context": contexts, "question": RAG_QUESTION, "rate": 0.1}
    return json.dumps(body, ensure_ascii=False).encode()


def refused() -> dict[str, list[tuple[bytes, str]]]:
    """The requests the service must refuse, by kind, with their media types."""
    return {
        "oversized": [
            (b'{"context": "' + b"a" * (9 * 1024 * 1024) + b'"}', JSON),  # over the body limit
            (json.dumps({"context": ["word"] * 2000}).encode(), JSON),  # over max_contexts
            (
                json.dumps({"context": [requests.sample_text("english", 400_000, 3)]}).encode(),
                JSON,
            ),
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


class Recorder:
    """What every request got, thread-safe: (start, end, kind, status, error type)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rows: list[tuple[float, float, str, int, str]] = []

    def add(self, started: float, kind: str, status: int, error: str) -> None:
        with self.lock:
            self.rows.append((started, time.monotonic(), kind, status, error))


def _error_type(answer: serve.Answer) -> str:
    if answer.status < 400:
        return ""
    try:
        return str(answer.json()["error"]["type"])
    except (ValueError, KeyError, TypeError):
        return "NOT-THE-ERROR-SHAPE"


def client(base: str, until: float, recorder: Recorder, seed: int) -> None:
    """One client: requests from the mix until ``until``, honouring ``Retry-After``."""
    rng = random.Random(seed)
    bad = refused()
    kinds, weights = zip(*MIX, strict=True)
    while time.monotonic() < until:
        kind = rng.choices(kinds, weights)[0]
        body, media = (fresh(kind, rng), JSON) if kind in COMPRESSIONS else rng.choice(bad[kind])
        started = time.monotonic()
        try:
            answer = serve.post(f"{base}/compress", body, media=media, timeout_s=600)
        except OSError as exc:
            recorder.add(started, kind, 0, type(exc).__name__)
            time.sleep(0.5)
            continue
        recorder.add(started, kind, answer.status, _error_type(answer))
        if answer.status == 429:
            retry = float(answer.headers.get("retry-after") or 1)
            time.sleep(min(retry, 10.0) * rng.uniform(0.5, 1.5))


def monitor(
    base: str, pid: int, triton_pids: list[int], until: float, samples: list[dict[str, float]]
) -> None:
    """Twice a second: /healthz's time, the service's and Triton's resident memory."""
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
                "service_mib": rss_mib(pid),
                "triton_mib": tree_rss_mib(triton_pids[0]) if triton_pids else 0.0,
            }
        )
        time.sleep(max(0.0, 0.5 - (time.monotonic() - started)))


def plan_from_metrics(base: str) -> dict[str, float]:
    """The service's memory plan and limits, as its /metrics gives them."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=30) as response:
        text = response.read().decode()
    plan: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(("tersify_memory_plan_bytes{", "tersify_admission_limit{")):
            plan[line.split('"')[1]] = float(line.split()[-1])
    return plan


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start Triton (in triton mode) and the service, soak it, return what happened."""
    from tersify.client import Bundle, resolve_scorer_folder
    from tersify.settings import Settings
    from tersify.triton import server

    bundle = Bundle.open(resolve_scorer_folder(args.scorer, Settings.from_env()))
    run_dir = OUT / "soak-triton"
    run_dir.mkdir(parents=True, exist_ok=True)
    scorer, triton_pid, restart = args.scorer, [], {}
    state = None
    if args.mode == "triton":
        state = server.start(bundle, run_dir)
        triton_pid.append(state.pid)
        scorer = f"{state.grpc_url}?scorer={args.scorer}&timeout=120"
    log = (OUT / f"soak_http-{args.mode}.log").open("wb")
    flags = ["--scorer", scorer, *shlex.split(args.serve_args)]
    service = serve.start(*flags, ready="/readyz", timeout_s=600, stderr=log)
    recorder, samples = Recorder(), []
    try:
        plan = plan_from_metrics(service.base)
        idle = rss_mib(service.pid)
        started = time.monotonic()
        until = started + args.seconds
        threads = [
            threading.Thread(target=client, args=(service.base, until, recorder, seed))
            for seed in range(args.clients)
        ]
        threads.append(
            threading.Thread(
                target=monitor, args=(service.base, service.pid, triton_pid, until, samples)
            )
        )
        for thread in threads:
            thread.start()
        if state is not None:
            time.sleep(args.seconds / 2)
            restart["stop"] = time.monotonic()
            state = triton.restart(bundle, run_dir, state)
            triton_pid[0] = state.pid
            restart["ready"] = time.monotonic()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        alive = service.process.poll() is None
        peak = hwm_mib(service.pid) if alive else 0.0
    finally:
        exit_code = service.stop()
        if args.mode == "triton":
            server.stop(run_dir)
    _write_rows(args.mode, recorder, started)
    result = summary(args, recorder, samples, restart, elapsed)
    result["memory"] = {
        "idle_mib": round(idle),
        "peak_mib": round(peak),
        "sampled_peak_mib": round(max((s["service_mib"] for s in samples), default=0)),
        "bound_mib": round(plan.get("bound", 0) / 2**20),
        "within_bound": 0 < peak <= plan.get("bound", 0) / 2**20,
        "triton_peak_mib": round(max((s["triton_mib"] for s in samples), default=0)),
        "plan_mib": {k: round(v / 2**20) for k, v in plan.items() if k not in _LIMITS},
    }
    result["admission"] = {k: int(v) for k, v in plan.items() if k in _LIMITS}
    result["service_alive_at_end"] = alive
    result["command"] = results.command_line()
    result["machine"] = results.cpu_summary()
    result["date"] = time.strftime("%Y-%m-%d")
    result["service_exit"] = exit_code
    return result


_LIMITS = ("max_inflight", "max_queue")


def _write_rows(mode: str, recorder: Recorder, started: float) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with (OUT / f"soak_http-{mode}.csv").open("w", encoding="utf-8") as rows:
        rows.write("start,end,kind,status,error\n")
        for t0, t1, kind, status, error in recorder.rows:
            rows.write(f"{t0 - started:.3f},{t1 - started:.3f},{kind},{status},{error}\n")


def summary(
    args: argparse.Namespace,
    recorder: Recorder,
    samples: list[dict[str, float]],
    restart: dict[str, float],
    elapsed: float,
) -> dict[str, Any]:
    """Counts by status and kind, 5xx in and outside the restart, latency, /healthz."""
    rows = recorder.rows

    def in_restart(t0: float, t1: float) -> bool:
        return bool(restart) and t0 <= restart["ready"] and t1 >= restart["stop"]

    failures = [r for r in rows if r[3] >= 500 or r[3] == 0]
    outside = collections.Counter(
        f"{status} {error}" for t0, t1, _, status, error in failures if not in_restart(t0, t1)
    )
    during = collections.Counter(
        f"{status} {error}" for t0, t1, _, status, error in failures if in_restart(t0, t1)
    )
    by_kind = {
        kind: dict(sorted(collections.Counter(r[3] for r in rows if r[2] == kind).items()))
        for kind, _ in MIX
    }
    latency = {}
    for kind in COMPRESSIONS:
        took = [t1 - t0 for t0, t1, k, status, _ in rows if k == kind and status == 200]
        latency[kind] = {
            "n": len(took),
            "p50": round(statistics.median(took), 1) if took else None,
            "p99": round(percentile(took, 0.99), 1) if took else None,
        }
    healthz = [s["healthz_s"] for s in samples]
    recovery = None
    if restart:
        after = [t1 for _, t1, _, status, _ in rows if status == 200 and t1 > restart["ready"]]
        recovery = {
            "outage_s": round(restart["ready"] - restart["stop"], 1),
            "first_200_after_stop_s": round(min(after) - restart["stop"], 1) if after else None,
        }
    return {
        "mode": args.mode,
        "scorer": args.scorer,
        "clients": args.clients,
        "seconds": round(elapsed, 1),
        "serve_args": args.serve_args,
        "requests": len(rows),
        "by_status": dict(sorted(collections.Counter(r[3] for r in rows).items())),
        "by_kind": by_kind,
        "5xx_or_lost_outside_restart": dict(outside),
        "5xx_or_lost_in_restart": dict(during),
        "not_the_error_shape": sum(1 for r in rows if r[4] == "NOT-THE-ERROR-SHAPE"),
        "latency_200_s": latency,
        "healthz_s": {
            "p50": round(percentile(healthz, 0.5), 4) if healthz else None,
            "p99": round(percentile(healthz, 0.99), 4) if healthz else None,
            "max": round(max(healthz, default=0.0), 4),
        },
        "restart": recovery,
    }


def markdown(run: dict[str, Any]) -> str:
    """One section per mode."""
    memory, lat, hz = run["memory"], run["latency_200_s"], run["healthz_s"]
    admission = run["admission"]
    title = "embedded scorer" if run["mode"] == "embedded" else "Triton scorer, restarted once"
    lines = [
        f"### {run['scorer']}, {title}",
        "",
        f"Measured with `{run['command']}` on {run['machine']}, {run['date']}, while other "
        "engineers' jobs shared the machine (latencies measure it more than tersify).",
        "",
        f"{run['clients']} clients for {run['seconds']:.0f} s; `tersify serve "
        f"{run['serve_args'] or ''}` with its default admission: --max-inflight "
        f"{admission.get('max_inflight')}, --max-queue {admission.get('max_queue')}.",
        "",
        f"- requests: {run['requests']}; by status: "
        + ", ".join(f"{code}: {n}" for code, n in run["by_status"].items()),
        f"- **5xx or lost outside the restart: {sum(run['5xx_or_lost_outside_restart'].values())}**"
        + (f" ({run['5xx_or_lost_outside_restart']})" if run["5xx_or_lost_outside_restart"] else "")
        + f"; answers not in the error shape: {run['not_the_error_shape']}",
        f"- **peak RSS {memory['peak_mib']} MiB against the bound of {memory['bound_mib']} MiB"
        f" ({'within' if memory['within_bound'] else 'OVER'})**; idle {memory['idle_mib']} MiB",
        "- admitted (200) latency, p50 / p99 s: "
        + "; ".join(f"{k} {v['p50']} / {v['p99']} (n={v['n']})" for k, v in lat.items()),
        f"- /healthz: p50 {1000 * (hz['p50'] or 0):.1f} ms, p99 {1000 * (hz['p99'] or 0):.1f} ms",
    ]
    if run["restart"]:
        r = run["restart"]
        lines.append(
            f"- Triton restart: down {r['outage_s']} s, first 200 "
            + (
                f"{r['first_200_after_stop_s']} s after the stop"
                if r["first_200_after_stop_s"] is not None
                else "not before the end"
            )
            + "; 5xx or lost in flight during it: "
            + f"{sum(run['5xx_or_lost_in_restart'].values())}; Triton's peak RSS "
            f"{memory['triton_peak_mib']} MiB"
        )
    if not run["service_alive_at_end"]:
        lines.append(f"- the service DIED during the run (exit {run['service_exit']})")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("embedded", "triton"), default="embedded")
    parser.add_argument("--scorer", default="gemma-3-270m")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--serve-args", default="--timeout 300", help="more `tersify serve` flags")
    args = parser.parse_args()
    outcome = run(args)
    path = results.RESULTS / "soak_http.json"
    runs = json.loads(path.read_text(encoding="utf-8")).get("runs", {}) if path.is_file() else {}
    runs[args.mode] = outcome
    text = "\n".join(markdown(runs[mode]) for mode in ("embedded", "triton") if mode in runs)
    print(results.write("soak_http", text, {"runs": runs}, with_header=False))


if __name__ == "__main__":
    main()
