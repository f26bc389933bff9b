"""Prometheus metrics of the service, in the text exposition format (version 0.0.4).

A few counters, gauges and one histogram, kept in memory and guarded by one lock: all
that ``GET /metrics`` needs, without a dependency. Label values come from a closed set
(route templates, status codes, rejection reasons), so the series stay few.

>>> metrics = Metrics()
>>> metrics.observe_request("/compress", 200, 0.25)
>>> "tersify_requests_total" in metrics.render()
True
"""

from __future__ import annotations

import threading
from collections import defaultdict

# Seconds: from a cached short request to a long CPU compression near the deadline.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _labels(**labels: str) -> str:
    inner = ",".join(
        f'{key}="{value.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for key, value in labels.items()
    )
    return "{" + inner + "}" if inner else ""


class Metrics:
    """The service's counters; every method is thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, int], int] = defaultdict(int)
        self._latency_counts: dict[str, list[int]] = {}
        self._latency_sums: dict[str, float] = defaultdict(float)
        self._rejections: dict[str, int] = defaultdict(int)
        self._scorer_tokens = 0
        self._scorer_seconds = 0.0
        self._compressions = 0
        self.in_flight = 0
        self.queued = 0

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        """Count one answered request on ``route`` and its latency."""
        with self._lock:
            self._requests[(route, status)] += 1
            counts = self._latency_counts.setdefault(route, [0] * (len(LATENCY_BUCKETS) + 1))
            for index, bound in enumerate(LATENCY_BUCKETS):
                if seconds <= bound:
                    counts[index] += 1
            counts[-1] += 1
            self._latency_sums[route] += seconds

    def reject(self, reason: str) -> None:
        """Count a request refused before its work (``overloaded``, ``body_too_large``, ...)."""
        with self._lock:
            self._rejections[reason] += 1

    def observe_work(self, scorer_tokens: int, scorer_seconds: float) -> None:
        """Count one finished compression's scorer work."""
        with self._lock:
            self._compressions += 1
            self._scorer_tokens += scorer_tokens
            self._scorer_seconds += scorer_seconds

    def set_load(self, in_flight: int, queued: int) -> None:
        """Record the admission's state (called by it on every change)."""
        with self._lock:
            self.in_flight = in_flight
            self.queued = queued

    def render(self) -> str:
        """The exposition text for ``GET /metrics``."""
        with self._lock:
            lines = [
                "# HELP tersify_requests_total HTTP requests answered, by route and status.",
                "# TYPE tersify_requests_total counter",
            ]
            for (route, status), count in sorted(self._requests.items()):
                lines.append(
                    f"tersify_requests_total{_labels(route=route, status=str(status))} {count}"
                )
            lines += [
                "# HELP tersify_request_duration_seconds Time from request to answer, by route.",
                "# TYPE tersify_request_duration_seconds histogram",
            ]
            for route, counts in sorted(self._latency_counts.items()):
                for bound, count in zip((*LATENCY_BUCKETS, "+Inf"), counts, strict=True):
                    labels = _labels(route=route, le=str(bound))
                    lines.append(f"tersify_request_duration_seconds_bucket{labels} {count}")
                lines.append(
                    f"tersify_request_duration_seconds_sum{_labels(route=route)} "
                    f"{self._latency_sums[route]:.6f}"
                )
                lines.append(
                    f"tersify_request_duration_seconds_count{_labels(route=route)} {counts[-1]}"
                )
            lines += [
                "# HELP tersify_in_flight Compressions running now.",
                "# TYPE tersify_in_flight gauge",
                f"tersify_in_flight {self.in_flight}",
                "# HELP tersify_queue_depth Requests waiting for a compression slot.",
                "# TYPE tersify_queue_depth gauge",
                f"tersify_queue_depth {self.queued}",
                "# HELP tersify_rejections_total Requests refused before their work, by reason.",
                "# TYPE tersify_rejections_total counter",
            ]
            for reason, count in sorted(self._rejections.items()):
                lines.append(f"tersify_rejections_total{_labels(reason=reason)} {count}")
            lines += [
                "# HELP tersify_compressions_total Compressions finished.",
                "# TYPE tersify_compressions_total counter",
                f"tersify_compressions_total {self._compressions}",
                "# HELP tersify_scorer_tokens_total Scorer tokens scored by finished compressions.",
                "# TYPE tersify_scorer_tokens_total counter",
                f"tersify_scorer_tokens_total {self._scorer_tokens}",
                "# HELP tersify_scorer_seconds_total Seconds spent waiting for the scorer.",
                "# TYPE tersify_scorer_seconds_total counter",
                f"tersify_scorer_seconds_total {self._scorer_seconds:.6f}",
            ]
        return "\n".join(lines) + "\n"
