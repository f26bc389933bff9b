"""The HTTP compression service: in-process with TestClient, and as a real `tersify serve`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tersify import Budget, Compressor
from tersify.client import Bundle
from tersify.request import request_schema
from tersify.service import create_app
from tersify.triton import server

from answers import check_answer, check_seed_answer
from texts import sample_text

ROOT = Path(__file__).resolve().parents[2]
SEED = (ROOT / "examples" / "seed_request.json").read_bytes()


@pytest.fixture(scope="module")
def client(tiny_scorer_dir: Path) -> TestClient:
    return TestClient(create_app(Compressor(str(tiny_scorer_dir))))


def test_compress_answers_in_the_seed_format(client: TestClient) -> None:
    response = client.post("/compress", content=SEED, headers={"content-type": "application/json"})
    assert response.status_code == 200
    check_seed_answer(response.json()["data"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{oops", "JSON"),
        (b'{"question": "q"}', "context"),
        (b'{"context": [1]}', "context[0]"),
        (b'{"context": "x", "rate": 3}', "rate"),
        (b'{"context": "x", "ratio": 1}', "ratio"),
        (b'{"context": "x", "target_token": 0}', "target_token"),
        (b'{"context": "x", "colour": "red"}', "colour"),
    ],
)
def test_bad_requests_are_400_naming_the_field(client: TestClient, body: bytes, field: str) -> None:
    response = client.post("/compress", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "BadRequestError" and field in error["message"]
    assert client.get("/healthz").json() == {"status": "ok"}  # still up


def test_health_readiness_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["scorer"] == "tiny-llama"
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/compress"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    assert body == request_schema()  # generated from the definitions the parser checks
    for name in ("context", "segments", "json", "target_token", "mode", "rank_method"):
        assert "description" in body["properties"][name]


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_tersify_serve_through_triton(tiny_scorer_dir: Path, tmp_path: Path) -> None:
    bundle = Bundle.open(tiny_scorer_dir)
    state = server.start(bundle, tmp_path / "triton")
    port = server.free_port()
    scorer = f"{state.grpc_url}?scorer={tiny_scorer_dir}"
    service = subprocess.Popen(
        [sys.executable, "-m", "tersify.cli", "serve", "--scorer", scorer, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if _get(f"{base}/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        assert _get(f"{base}/readyz")[0] == 200
        status, answer = _post(f"{base}/compress", SEED)
        assert status == 200
        check_seed_answer(answer["data"])
        request = json.dumps({"context": [sample_text("code", 3000, 5)], "rate": 0.5}).encode()
        status, answer = _post(f"{base}/compress", request)
        assert status == 200
        check_answer(answer["data"], Budget(rate=0.5).target(answer["data"]["origin_tokens"]))

        server.stop(tmp_path / "triton")
        status, body = _get(f"{base}/readyz")
        assert status == 503 and body["status"] == "scorer unavailable"
        assert body["error"]["type"] == "ScorerUnavailableError"
        fresh = json.dumps({"context": [sample_text("english", 3000, 6)], "rate": 0.5}).encode()
        status, body = _post(f"{base}/compress", fresh)  # retried for 10 s, then a clear error
        assert status == 503 and body["error"]["type"] == "ScorerUnavailableError"
        assert "tersify triton status" in body["error"]["message"]
        assert _get(f"{base}/healthz")[0] == 200
    finally:
        server.stop(tmp_path / "triton")
        service.send_signal(signal.SIGTERM)
        service.wait(timeout=30)
