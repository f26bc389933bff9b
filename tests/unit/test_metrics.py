"""GET /metrics through prometheus_client: the service's names, histograms, process metrics."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tersify import Compressor
from tersify.service import create_app
from tersify.service.metrics import LATENCY_BUCKETS, Metrics

SERVICE = {
    "tersify_requests": "counter",
    "tersify_request_duration_seconds": "histogram",
    "tersify_in_flight": "gauge",
    "tersify_queue_depth": "gauge",
    "tersify_rejections": "counter",
    "tersify_compressions": "counter",
    "tersify_scorer_tokens": "counter",
    "tersify_scorer_seconds": "counter",
}


def _families(text: str) -> dict[str, str]:
    return {family.name: family.type for family in text_string_to_metric_families(text)}


def test_the_service_names_and_process_metrics_parse() -> None:
    metrics = Metrics()
    metrics.observe_request("/compress", 200, 0.3)
    metrics.reject("overloaded")
    metrics.observe_work(120, 0.25)
    metrics.set_load(2, 3)
    families = _families(metrics.render())
    assert SERVICE.items() <= families.items()
    for name in ("process_resident_memory_bytes", "process_cpu_seconds_total", "python_info"):
        assert any(name.startswith(family) for family in families), name
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.render())
        for s in family.samples
    }
    assert samples[("tersify_requests_total", (("route", "/compress"), ("status", "200")))] == 1
    assert samples[("tersify_rejections_total", (("reason", "overloaded"),))] == 1
    assert samples[("tersify_scorer_tokens_total", ())] == 120
    assert samples[("tersify_in_flight", ())] == 2 and samples[("tersify_queue_depth", ())] == 3
    buckets = [k for k in samples if k[0] == "tersify_request_duration_seconds_bucket"]
    assert len(buckets) == len(LATENCY_BUCKETS) + 1  # and +Inf


def test_two_services_in_one_process_count_apart() -> None:
    first, second = Metrics(), Metrics()
    first.observe_request("/compress", 200, 0.1)
    assert 'route="/compress"' in first.render()
    assert 'route="/compress"' not in second.render()


def test_metrics_route_serves_the_exposition(fake_compressor: Compressor) -> None:
    with TestClient(create_app(fake_compressor)) as client:
        client.get("/healthz")
        answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = _families(answer.text)
    assert SERVICE.items() <= families.items()
    assert 'tersify_requests_total{route="/healthz",status="200"} 1.0' in answer.text
