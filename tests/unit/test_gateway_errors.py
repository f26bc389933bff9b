"""The compressing gateway's refusals, in process: a fake scorer and no upstream listening.

Through ``tersify serve --upstream`` to a real llama.cpp server:
tests/integration/test_gateway.py.
"""

from __future__ import annotations

from fastapi.testclient import TestClient

from tersify import Compressor
from tersify.integrations.local_llm import free_port
from tersify.service import create_app
from tersify.service.gateway import Gateway, Upstream


def test_bad_requests_and_a_missing_upstream_in_the_error_shape(
    fake_compressor: Compressor,
) -> None:
    gateway = Gateway(Upstream(f"http://127.0.0.1:{free_port()}/v1", api_key="k"))
    with TestClient(create_app(fake_compressor, gateway=gateway)) as client:
        for body, status, kind in (
            ({"model": "m"}, 400, "BadRequestError"),
            ({"model": "m", "messages": "hi"}, 400, "BadRequestError"),
            (
                {"model": "m", "messages": [{"role": "user", "content": "x"}], "tersify": 3},
                400,
                "BadRequestError",
            ),
            ({"model": "m", "messages": [{"role": "user", "content": "Hi"}]}, 502, "UpstreamError"),
        ):
            answer = client.post("/v1/chat/completions", json=body)
            assert answer.status_code == status, answer.text
            error = answer.json()["error"]
            assert error["type"] == kind and error["request_id"]
            assert "\n" not in error["message"] and "k" != error["message"]
        answer = client.post(
            "/v1/chat/completions", content=b"{}", headers={"content-type": "text/plain"}
        )
        assert answer.status_code == 415
