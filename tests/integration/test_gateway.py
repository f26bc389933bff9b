"""The compressing gateway: the official ``openai`` client -> ``tersify serve --upstream`` -> a
real llama.cpp server (SmolLM2-135M-Instruct) that demands its own API key. No mock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from openai import OpenAI

from tersify.integrations.local_llm import LocalLLM, free_port

from processes import wait_until_up
from texts import secret_chat

UPSTREAM_KEY = "sk-upstream-secret-4242"
TOKEN = "gateway-token-7"


@dataclass
class Served:
    url: str
    upstream: LocalLLM
    log: Path


@pytest.fixture(scope="module")
def served(
    smollm2_scorer_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("gateway")
    token_file = folder / "token"
    token_file.write_text(TOKEN)
    log = folder / "serve.log"
    port = free_port()
    with LocalLLM(api_key=UPSTREAM_KEY) as upstream, log.open("wb") as sink:
        env = {**os.environ, "GATEWAY_TEST_KEY": UPSTREAM_KEY}
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tersify.cli",
                "serve",
                "--scorer",
                str(smollm2_scorer_dir),
                "--port",
                str(port),
                "--token-file",
                str(token_file),
                "--upstream",
                upstream.url,
                "--upstream-key-env",
                "GATEWAY_TEST_KEY",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(base + "/healthz", process, "tersify serve")
            yield Served(base, upstream, log)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)


def _client(served: Served, api_key: str = TOKEN) -> OpenAI:
    return OpenAI(base_url=served.url + "/v1", api_key=api_key, max_retries=0)


def test_openai_client_through_the_gateway(served: Served) -> None:
    client = _client(served)
    raw = client.chat.completions.with_raw_response.create(
        model="smollm2",
        messages=secret_chat(11),
        max_tokens=12,
        temperature=0,
        extra_body={"tersify": {"rate": 0.4}},
    )
    completion = raw.parse()
    assert completion.choices[0].message.content
    origin = int(raw.headers["x-tersify-origin-tokens"])
    compressed = int(raw.headers["x-tersify-compressed-tokens"])
    # rate 0.4 of the context, the question (a dozen tokens) kept on top
    assert 0 < compressed < 0.5 * origin and float(raw.headers["x-tersify-seconds"]) > 0
    # The same request straight to the upstream: the gateway's prompt is far shorter.
    direct = OpenAI(base_url=served.upstream.url, api_key=UPSTREAM_KEY, max_retries=0)
    full = direct.chat.completions.create(
        model="smollm2", messages=secret_chat(11), max_tokens=12, temperature=0
    )
    assert completion.usage.prompt_tokens < 0.6 * full.usage.prompt_tokens


def test_streaming_is_relayed_chunk_by_chunk(served: Served) -> None:
    client = _client(served)
    with client.chat.completions.with_streaming_response.create(
        model="smollm2",
        messages=secret_chat(11),
        max_tokens=24,
        temperature=0,
        stream=True,
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert int(response.headers["x-tersify-compressed-tokens"]) > 0
        chunks = list(response.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(chunks) > 3 and text.strip()


def test_upstream_errors_keep_status_and_body(served: Served) -> None:
    bad = {"model": "smollm2", "messages": secret_chat(11), "max_tokens": "many"}
    statuses = []
    for url, key in ((served.url, TOKEN), (served.upstream.url.removesuffix("/v1"), UPSTREAM_KEY)):
        request = urllib.request.Request(
            url + "/v1/chat/completions",
            data=json.dumps(bad).encode(),
            headers={"content-type": "application/json", "authorization": f"Bearer {key}"},
        )
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=120)
        statuses.append((caught.value.code, json.loads(caught.value.read())))
    (through, body), (direct, direct_body) = statuses
    assert through == direct and through >= 400
    assert body == direct_body


def test_gateway_obeys_the_service_contract(served: Served) -> None:
    from openai import AuthenticationError

    client = _client(served, api_key="wrong")
    with pytest.raises(AuthenticationError) as caught:
        client.chat.completions.create(model="smollm2", messages=secret_chat(11), max_tokens=4)
    assert caught.value.status_code == 401
    assert caught.value.body["type"] == "UnauthorizedError"  # type: ignore[index]
    request = urllib.request.Request(
        served.url + "/metrics", headers={"authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        metrics = answer.read().decode()
    assert 'route="/v1/chat/completions"' in metrics
    # The upstream's key is the server's: used (the upstream demands it) but never logged.
    assert UPSTREAM_KEY not in served.log.read_text(errors="replace")


def test_models_and_completions_with_the_openai_client(served: Served) -> None:
    client = _client(served)
    assert served.upstream.model in [m.id for m in client.models.list()]
    prompt = secret_chat(11)[1]["content"]
    raw = client.completions.with_raw_response.create(
        model="smollm2",
        prompt=prompt,
        max_tokens=8,
        temperature=0,
        extra_body={"tersify": {"rate": 0.4}},
    )
    completion = raw.parse()
    assert completion.choices[0].text is not None
    assert int(raw.headers["x-tersify-compressed-tokens"]) < int(
        raw.headers["x-tersify-origin-tokens"]
    )
    direct = OpenAI(base_url=served.upstream.url, api_key=UPSTREAM_KEY, max_retries=0)
    full = direct.completions.create(model="smollm2", prompt=prompt, max_tokens=8, temperature=0)
    assert completion.usage is not None and full.usage is not None
    assert completion.usage.prompt_tokens < 0.6 * full.usage.prompt_tokens


def test_langchain_chat_openai_through_the_gateway(served: Served) -> None:
    langchain_openai = pytest.importorskip("langchain_openai")
    llm = langchain_openai.ChatOpenAI(
        base_url=served.url + "/v1",
        api_key=TOKEN,
        model="smollm2",
        max_tokens=12,
        temperature=0,
        max_retries=0,
        extra_body={"tersify": {"rate": 0.4}},
    )
    messages = [(m["role"], m["content"]) for m in secret_chat(11)]
    reply = llm.invoke(messages)
    assert reply.content
    direct = OpenAI(base_url=served.upstream.url, api_key=UPSTREAM_KEY, max_retries=0)
    full = direct.chat.completions.create(
        model="smollm2", messages=secret_chat(11), max_tokens=12, temperature=0
    )
    assert full.usage is not None
    assert reply.response_metadata["token_usage"]["prompt_tokens"] < 0.6 * full.usage.prompt_tokens
