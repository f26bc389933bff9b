"""deploy/: every manifest is valid against the Kubernetes schemas, and says what it must."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tersify.cli import _parser

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
KUBERNETES = "1.30.0"


def _documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return docs


def _find(kind: str, name: str) -> dict[str, Any]:
    return next(d for d in _documents() if d["kind"] == kind and d["metadata"]["name"] == name)


@pytest.mark.parametrize("doc", _documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_valid_against_the_kubernetes_schema(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_triton_ready_on_health_with_a_gpu_and_autoscaled_on_queue_time() -> None:
    pod = _find("Deployment", "tersify-triton")["spec"]["template"]["spec"]
    (triton,) = pod["containers"]
    assert triton["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert triton["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert {p["containerPort"] for p in triton["ports"]} == {8000, 8001, 8002}
    hpa = _find("HorizontalPodAutoscaler", "tersify-triton")["spec"]
    assert hpa["scaleTargetRef"]["name"] == "tersify-triton"
    metric = hpa["metrics"][0]["pods"]["metric"]["name"]
    rules = yaml.safe_load(_find("ConfigMap", "tersify-prometheus-adapter")["data"]["config.yaml"])
    (rule,) = rules["rules"]
    assert rule["name"]["as"] == metric and "nv_inference_queue_duration_us" in rule["metricsQuery"]


def test_serve_args_parse_and_point_at_the_triton_service() -> None:
    (serve,) = _find("Deployment", "tersify-serve")["spec"]["template"]["spec"]["containers"]
    assert serve["command"] == ["tersify", "serve"]
    args = _parser().parse_args(["serve", *serve["args"]])
    service = _find("Service", "tersify-triton")["spec"]
    grpc = next(p["port"] for p in service["ports"] if p["name"] == "grpc")
    assert args.scorer.startswith(f"grpc://tersify-triton:{grpc}")
    assert serve["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_the_validator_catches_a_broken_manifest() -> None:
    doc = _find("Deployment", "tersify-triton")
    broken = {**doc, "spec": {**doc["spec"], "replicas": "two"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)
