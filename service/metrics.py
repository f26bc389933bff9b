"""Prometheus metrics of the service, through Prometheus' own client library.

Each :class:`Metrics` has its own registry (no global state: two services in one process,
as in tests, keep their counts apart) holding the service's counters, gauges and latency
histogram, and the standard ``process_*`` and ``python_*`` collectors that dashboards
expect (memory, CPU seconds, open files, garbage collection). Label values come from a
closed set (route templates, status codes, rejection reasons), so the series stay few.

>>> metrics = Metrics()
>>> metrics.observe_request("/compress", 200, 0.25)
>>> "tersify_requests_total" in metrics.render()
True
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

# Seconds: from a cached short request to a long CPU compression near the deadline.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# What generate_latest writes: the text format that every Prometheus reads.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """The service's metrics in one registry; every method is thread-safe."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        where = self.registry
        self._requests = Counter(
            "tersify_requests",
            "HTTP requests answered, by route and status.",
            ["route", "status"],
            registry=where,
        )
        self._latency = Histogram(
            "tersify_request_duration_seconds",
            "Time from request to answer, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=where,
        )
        self._in_flight = Gauge("tersify_in_flight", "Compressions running now.", registry=where)
        self._queued = Gauge(
            "tersify_queue_depth", "Requests waiting for a compression slot.", registry=where
        )
        self._rejections = Counter(
            "tersify_rejections",
            "Requests refused before their work, by reason.",
            ["reason"],
            registry=where,
        )
        self._compressions = Counter(
            "tersify_compressions", "Compressions finished.", registry=where
        )
        self._scorer_tokens = Counter(
            "tersify_scorer_tokens",
            "Scorer tokens scored by finished compressions.",
            registry=where,
        )
        self._scorer_seconds = Counter(
            "tersify_scorer_seconds", "Seconds spent waiting for the scorer.", registry=where
        )
        self._reserved = Gauge(
            "tersify_memory_reserved_bytes",
            "Memory reserved by the compressions in flight (with a memory plan).",
            registry=where,
        )
        self._plan = Gauge(
            "tersify_memory_plan_bytes",
            "The memory plan from the scorer loaded: base, per_inflight (one compression), "
            "work (what compressions in flight may reserve), bound, budget.",
            ["figure"],
            registry=where,
        )
        self._limits = Gauge(
            "tersify_admission_limit",
            "The admission's limits: max_inflight and max_queue.",
            ["limit"],
            registry=where,
        )
        self.in_flight = 0
        self.queued = 0

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        """Count one answered request on ``route`` and its latency."""
        self._requests.labels(route=route, status=str(status)).inc()
        self._latency.labels(route=route).observe(seconds)

    def reject(self, reason: str) -> None:
        """Count a request refused before its work (``overloaded``, ``body_too_large``, ...)."""
        self._rejections.labels(reason=reason).inc()

    def observe_work(self, scorer_tokens: int, scorer_seconds: float) -> None:
        """Count one finished compression's scorer work."""
        self._compressions.inc()
        self._scorer_tokens.inc(scorer_tokens)
        self._scorer_seconds.inc(scorer_seconds)

    def set_load(self, in_flight: int, queued: int, reserved_bytes: int = 0) -> None:
        """Record the admission's state (called by it on every change)."""
        self.in_flight = in_flight
        self.queued = queued
        self._in_flight.set(in_flight)
        self._queued.set(queued)
        self._reserved.set(reserved_bytes)

    def set_limits(
        self, max_inflight: int, max_queue: int, plan: Mapping[str, int] | None = None
    ) -> None:
        """Record the admission's limits and, with a memory plan, its figures in bytes."""
        self._limits.labels(limit="max_inflight").set(max_inflight)
        self._limits.labels(limit="max_queue").set(max_queue)
        for figure, value in (plan or {}).items():
            self._plan.labels(figure=figure.removesuffix("_bytes")).set(value)

    def render(self) -> str:
        """The exposition text for ``GET /metrics``."""
        return generate_latest(self.registry).decode("utf-8")
