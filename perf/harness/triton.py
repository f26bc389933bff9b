"""Triton for the benchmarks: a local tritonserver, its counters, and perf_analyzer.

The server is started and stopped by the package's own code (``tersify.triton.server``,
what ``tersify triton start/stop`` run); ``tritonclient`` is imported only to read
counters.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from tersify.bundle import Bundle
from tersify.triton import server
from tersify.triton.server import ServerState


@contextmanager
def running(bundle: Bundle, run_dir: Path, **options: Any) -> Iterator[ServerState]:
    """``tersify.triton.server.start(bundle, run_dir, **options)``, stopped on the way out."""
    run_dir.mkdir(parents=True, exist_ok=True)
    state = server.start(bundle, run_dir, **options)
    try:
        yield state
    finally:
        server.stop(run_dir)


def restart(bundle: Bundle, run_dir: Path, state: ServerState, **options: Any) -> ServerState:
    """Stop ``run_dir``'s server and start it again on the same three ports (a clients' outage)."""
    server.stop(run_dir)
    ports = {"http_port": state.http_port, "grpc_port": state.grpc_port}
    return server.start(bundle, run_dir, metrics_port=state.metrics_port, **ports, **options)


def grpc_address(state: ServerState) -> str:
    """``127.0.0.1:PORT``, as tritonclient and perf_analyzer take it."""
    return state.grpc_url.removeprefix("grpc://")


@dataclass(frozen=True)
class Counters:
    """Triton's cumulative counters for one model (subtract two for what happened between)."""

    requests: int
    inferences: int
    executions: int
    failed: int
    queue_ns: int
    compute_ns: int

    def __sub__(self, before: Counters) -> Counters:
        return Counters(
            **{f.name: getattr(self, f.name) - getattr(before, f.name) for f in fields(self)}
        )

    @property
    def mean_batch(self) -> float:
        """Inferences per execution: above 1, the dynamic batcher merged requests."""
        return self.inferences / self.executions if self.executions else float("nan")

    @property
    def queue_ms(self) -> float:
        """Mean queue time per request."""
        return self.queue_ns / max(1, self.requests) / 1e6

    @property
    def compute_ms(self) -> float:
        """Mean compute time (input, inference, output) per request."""
        return self.compute_ns / max(1, self.requests) / 1e6


def counters(address: str, model: str) -> Counters:
    """``model``'s counters now, over gRPC at ``address`` (``127.0.0.1:PORT``)."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(address)
    try:
        stats = client.get_inference_statistics(model).model_stats[0]
    finally:
        client.close()
    infer = stats.inference_stats
    return Counters(
        requests=int(infer.success.count),
        inferences=int(stats.inference_count),
        executions=int(stats.execution_count),
        failed=int(infer.fail.count),
        queue_ns=int(infer.queue.ns),
        compute_ns=int(infer.compute_input.ns + infer.compute_infer.ns + infer.compute_output.ns),
    )


def input_data(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    """perf_analyzer's ``--input-data`` file: one entry a request, by input name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"data": list(rows)}), encoding="utf-8")
    return path


class PerfAnalyzerError(RuntimeError):
    """perf_analyzer failed or wrote no report; the message ends with its output."""


@dataclass(frozen=True)
class Measured:
    """One concurrency level as perf_analyzer's CSV report gives it."""

    infer_per_s: float
    p50_us: int
    p99_us: int


@dataclass(frozen=True)
class PerfAnalyzer:
    """The perf_analyzer binary and the environment it runs in."""

    binary: Path
    env: dict[str, str]

    @classmethod
    def install(cls, venv: Path) -> PerfAnalyzer:
        """The binary inside ``tritonclient[all]==2.51.0``, in ``venv`` (made on first use).

        Newer builds need a newer glibc than these machines have. It needs Debian's
        libb64-0d and libcudart from nvidia-cuda-runtime-cu12.
        """
        binary = venv / "bin" / "perf_analyzer"
        if not binary.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            packages = ["tritonclient[all]==2.51.0", "nvidia-cuda-runtime-cu12"]
            pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
            subprocess.run([*pip, *packages], check=True)
        libb64 = Path("/usr/lib/x86_64-linux-gnu/libb64.so.0d")
        if not libb64.exists() and shutil.which("apt-get"):
            subprocess.run(["apt-get", "install", "-y", "-qq", "libb64-0d"], check=True)
        cudart = next(venv.glob("lib/python*/site-packages/nvidia/cuda_runtime/lib"))
        return cls(binary, dict(os.environ, LD_LIBRARY_PATH=str(cudart)))

    def run(
        self,
        model: str,
        address: str,
        data: Path,
        concurrency: int,
        *options: str,
        report: Path,
        timeout_s: float | None = None,
    ) -> Measured:
        """One concurrency level against ``model`` over gRPC; the CSV goes to ``report``.

        perf_analyzer's output goes to ``report`` with the suffix ``.log``.
        """
        report.unlink(missing_ok=True)
        command = [
            str(self.binary), "-m", model, "-u", address, "-i", "grpc",
            "--input-data", str(data),
            "--concurrency-range", f"{concurrency}:{concurrency}",
            *options,
            "-f", str(report),
        ]  # fmt: skip
        log = report.with_suffix(".log")
        with log.open("w") as sink:
            done = subprocess.run(
                command,
                env=self.env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                timeout=timeout_s,
                check=False,
            )
        if done.returncode or not report.is_file():
            output = log.read_text(errors="replace")[-800:]
            raise PerfAnalyzerError(f"perf_analyzer exited with {done.returncode}: {output}")
        with report.open() as handle:
            row = next(csv.DictReader(handle))
        return Measured(
            float(row["Inferences/Second"]), int(row["p50 latency"]), int(row["p99 latency"])
        )
