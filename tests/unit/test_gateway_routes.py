"""The gateway's routes as a client calls them: ``GET /v1/models``, ``POST /v1/completions``.

The official ``openai`` client drives the app in-process (a fake scorer compresses); the
upstream is a small standard-library server that records what it received, since what the
gateway sends is the point. The same routes against the real llama.cpp server are in
tests/integration/test_gateway.py.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

import openai
import pytest
from fastapi.testclient import TestClient
from openai import OpenAI

from tersify import Compressor
from tersify.errors import BadRequestError
from tersify.service import create_app
from tersify.service.config import ServeConfig
from tersify.service.gateway import Gateway, Upstream, model_path, prompt_texts

from texts import QUESTION, secret_prompt

KEY = "sk-upstream-77"
TOKEN = "gateway-token-3"


@dataclass
class Recorded:
    """What the fake upstream received: (method, path, JSON body or None) per request."""

    requests: list[tuple[str, str, Any]] = field(default_factory=list)

    def last(self) -> Any:
        return self.requests[-1][2]


def _completion(body: dict[str, Any]) -> dict[str, Any]:
    prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
    words = sum(len(str(p).split()) for p in prompts)
    return {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 0,
        "model": body["model"],
        "choices": [
            {"text": "4711946", "index": i, "logprobs": None, "finish_reason": "stop"}
            for i in range(len(prompts))
        ],
        "usage": {"prompt_tokens": words, "completion_tokens": 1, "total_tokens": words + 1},
    }


def _events(model: str) -> bytes:
    chunks = [
        {
            "id": "c",
            "object": "text_completion",
            "created": 0,
            "model": model,
            "choices": [{"text": word, "index": 0, "finish_reason": None, "logprobs": None}],
        }
        for word in ("The", " password", " is", " 4711946.")
    ]
    return ("".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n").encode()


class _Upstream(BaseHTTPRequestHandler):
    recorded: Recorded  # set per server

    def _answer(self, status: int, body: Any, media: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", media)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        if self.headers.get("authorization") == f"Bearer {KEY}":
            return True
        self._answer(401, {"error": {"message": "Incorrect API key", "type": "auth"}})
        return False

    def do_GET(self) -> None:
        self.recorded.requests.append(("GET", self.path, None))
        if not self._authorized():
            return
        if self.path == "/v1/models":
            entry = {"id": "smollm2", "object": "model", "created": 0, "owned_by": "me"}
            self._answer(200, {"object": "list", "data": [entry]})
        elif self.path.startswith("/v1/models/"):
            name = unquote(self.path.removeprefix("/v1/models/"))
            self._answer(200, {"id": name, "object": "model", "created": 0, "owned_by": "me"})
        else:
            self._answer(404, {"error": {"message": "no such route"}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.recorded.requests.append(("POST", self.path, body))
        if not self._authorized():
            return
        if body.get("stream"):
            self._answer(200, _events(body["model"]), "text/event-stream")
        else:
            self._answer(200, _completion(body))

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def upstream() -> Iterator[tuple[str, Recorded]]:
    recorded = Recorded()
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), type("Upstream", (_Upstream,), {"recorded": recorded})
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", recorded
    server.shutdown()
    server.server_close()


@pytest.fixture()
def http(fake_compressor: Compressor, upstream: tuple[str, Recorded]) -> Iterator[TestClient]:
    gateway = Gateway(Upstream(upstream[0], api_key=KEY))
    app = create_app(fake_compressor, gateway=gateway, config=ServeConfig(token=TOKEN))
    with TestClient(app) as client:
        yield client


def _openai(http: TestClient, api_key: str = TOKEN) -> OpenAI:
    return OpenAI(base_url="http://testserver/v1", api_key=api_key, http_client=http, max_retries=0)


def _is_subsequence(short: str, full: str) -> bool:
    rest = iter(full)
    return all(char in rest for char in short)


def test_models_are_the_upstreams_under_the_gateways_token(
    http: TestClient, upstream: tuple[str, Recorded]
) -> None:
    client = _openai(http)
    assert [m.id for m in client.models.list()] == ["smollm2"]
    assert client.models.retrieve("org/some-model").id == "org/some-model"
    # the upstream was asked with the server's key, never the client's token
    assert [r[:2] for r in upstream[1].requests] == [
        ("GET", "/v1/models"),
        ("GET", "/v1/models/org/some-model"),
    ]
    with pytest.raises(openai.AuthenticationError) as caught:
        _openai(http, api_key="wrong").models.list()
    assert caught.value.body["type"] == "UnauthorizedError"  # type: ignore[index]
    assert len(upstream[1].requests) == 2  # refused by the gateway, not forwarded
    metrics = http.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"}).text
    assert 'route="/v1/models",status="200"' in metrics
    assert 'status="401"' in metrics  # refused before routing: route "other"


def test_a_model_id_cannot_climb_out_of_models(http: TestClient) -> None:
    assert model_path("org/name v2") == "models/org/name%20v2"
    for bad in ("..", "org/../../admin", "a//b"):
        with pytest.raises(BadRequestError):
            model_path(bad)
    answer = http.get("/v1/models/org/%2E%2E/x", headers={"authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 400 and answer.json()["error"]["type"] == "BadRequestError"


def test_upstream_errors_on_models_keep_status_and_body(
    fake_compressor: Compressor, upstream: tuple[str, Recorded]
) -> None:
    gateway = Gateway(Upstream(upstream[0], api_key="not-the-key"))
    with TestClient(create_app(fake_compressor, gateway=gateway)) as client:
        answer = client.get("/v1/models")
    assert answer.status_code == 401
    assert answer.json() == {"error": {"message": "Incorrect API key", "type": "auth"}}


def test_completions_prompt_is_compressed_the_rest_forwarded(
    http: TestClient, upstream: tuple[str, Recorded]
) -> None:
    prompt = secret_prompt(5)
    raw = _openai(http).completions.with_raw_response.create(
        model="smollm2",
        prompt=prompt,
        max_tokens=8,
        temperature=0,
        extra_body={"tersify": {"rate": 0.3}},
    )
    completion = raw.parse()
    assert completion.choices[0].text == "4711946"
    sent = upstream[1].last()
    assert "tersify" not in sent
    assert sent["max_tokens"] == 8 and sent["temperature"] == 0 and sent["model"] == "smollm2"
    short = sent["prompt"]
    assert isinstance(short, str) and short.endswith(QUESTION)
    assert len(short) < 0.5 * len(prompt) and _is_subsequence(short, prompt)
    origin = int(raw.headers["x-tersify-origin-tokens"])
    compressed = int(raw.headers["x-tersify-compressed-tokens"])
    assert 0 < compressed < 0.5 * origin
    assert completion.usage is not None and completion.usage.prompt_tokens == len(short.split())


def test_completions_with_several_prompts_and_token_ids(
    http: TestClient, upstream: tuple[str, Recorded]
) -> None:
    client = _openai(http)
    prompts = [secret_prompt(5), "Say hi."]
    raw = client.completions.with_raw_response.create(
        model="smollm2", prompt=prompts, extra_body={"tersify": {"rate": 0.3}}
    )
    assert len(raw.parse().choices) == 2
    first, second = upstream[1].last()["prompt"]
    assert len(first) < 0.5 * len(prompts[0]) and first.endswith(QUESTION)
    assert second == "Say hi."  # all question: nothing to compress
    # the upstream's own token ids are not text: forwarded as they are
    for ids in ([1, 2, 3], [[1, 2], [3]]):
        raw = client.completions.with_raw_response.create(model="smollm2", prompt=ids)
        assert upstream[1].last()["prompt"] == ids
        assert raw.headers["x-tersify-compressed-tokens"] == "0"


def test_completions_stream_is_relayed(http: TestClient) -> None:
    stream = _openai(http).completions.create(model="smollm2", prompt=secret_prompt(5), stream=True)
    assert "".join(chunk.choices[0].text for chunk in stream) == "The password is 4711946."


@pytest.mark.parametrize(
    "body",
    [
        {"model": "m"},
        {"model": "m", "prompt": 3},
        {"model": "m", "prompt": []},
        {"model": "m", "prompt": ["a", 1]},
        {"model": "m", "prompt": [True]},
        {"model": "m", "prompt": "x", "tersify": {"rate": 7}},
    ],
)
def test_bad_completions_are_400_in_the_error_shape(
    http: TestClient, upstream: tuple[str, Recorded], body: dict[str, Any]
) -> None:
    answer = http.post("/v1/completions", json=body, headers={"authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["type"] == "BadRequestError" and error["request_id"]
    assert upstream[1].requests == []


def test_prompt_texts() -> None:
    assert prompt_texts("a") == ["a"]
    assert prompt_texts(["a", "b"]) == ["a", "b"]
    assert prompt_texts([[1], [2, 3]]) is None
