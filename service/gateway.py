"""The compressing gateway: OpenAI's ``POST /v1/chat/completions`` in front of any upstream LLM.

A client (the official ``openai`` package, LangChain, curl) talks to tersify as it would to
the LLM. For each request the gateway:

1. admits it under the service's contract (bearer token, body limit, admission slot,
   deadline; :class:`~tersify.service.guard.Guard`), as ``POST /compress`` does;
2. compresses its ``messages`` under :mod:`tersify.integrations.messages`' policy, with the
   budget from the request's ``tersify`` object (``extra_body={"tersify": {"rate": 0.5}}``)
   or the server's default; the ``tersify`` field is removed, everything else is kept;
3. forwards the request to the upstream with the server's own API key
   (``--upstream-key-env``; never the client's token, never logged) and gives back the
   upstream's answer unchanged: its status and body, errors included, and a stream
   (``"stream": true``) relayed chunk by chunk as it arrives.

The compression's figures ride along in ``X-Tersify-Origin-Tokens``,
``X-Tersify-Compressed-Tokens`` and ``X-Tersify-Seconds``. The request's deadline bounds
the compression; the upstream call has its own timeout (``--upstream-timeout``), since an
LLM's answer may take longer than a compression should. An upstream that cannot be
reached or does not answer in time is a 502 in the service's error shape.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

from tersify.compressor import Compressor
from tersify.errors import BadRequestError, UpstreamError
from tersify.integrations.llm import chat_completions_url
from tersify.integrations.messages import CompressedMessages, MessagePolicy, compress_messages
from tersify.limits import Deadline
from tersify.service.guard import Guard

ROUTE = "/v1/chat/completions"
DEFAULT_UPSTREAM_TIMEOUT_S = 300.0
_PASSED_HEADERS = ("content-type", "cache-control", "openai-model", "openai-processing-ms")


@dataclass(frozen=True)
class Upstream:
    """The LLM behind the gateway: its base URL, the server's key for it, and a timeout."""

    url: str
    api_key: str | None = field(default=None, repr=False)
    timeout_s: float = DEFAULT_UPSTREAM_TIMEOUT_S
    policy: MessagePolicy = field(default_factory=MessagePolicy)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise BadRequestError(
                f"--upstream {self.url!r} is not an http(s) URL: give e.g. http://127.0.0.1:8000/v1"
            )
        if not self.timeout_s > 0:
            raise BadRequestError(f"--upstream-timeout {self.timeout_s} must be more than 0")

    @property
    def chat_url(self) -> str:
        """Where chat completions are forwarded."""
        return chat_completions_url(self.url)

    def headers(self) -> dict[str, str]:
        """The headers of a forwarded request: JSON, and the server's key if it has one."""
        out = {"content-type": "application/json"}
        if self.api_key:
            out["authorization"] = f"Bearer {self.api_key}"
        return out


class Gateway:
    """Forwards compressed chat completions to one upstream over one connection pool."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(upstream.timeout_s, connect=min(10.0, upstream.timeout_s)),
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        """Close the connection pool (at shutdown)."""
        await self._client.aclose()

    async def forward(self, payload: dict[str, Any], extra: dict[str, str]) -> Response:
        """Send ``payload`` upstream; relay the answer (a stream chunk by chunk) unchanged."""
        request = self._client.build_request(
            "POST",
            self.upstream.chat_url,
            content=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
            headers=self.upstream.headers(),
        )
        try:
            answer = await self._client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise UpstreamError(
                f"the upstream LLM at {self.upstream.chat_url} did not answer within "
                f"{self.upstream.timeout_s:g} s"
            ) from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(
                f"cannot reach the upstream LLM at {self.upstream.chat_url}: "
                f"{type(exc).__name__}; check --upstream and that it is up"
            ) from exc
        headers = {**_passed(answer.headers), **extra}
        streaming = answer.headers.get("content-type", "").startswith("text/event-stream")
        if not streaming or answer.status_code >= 400:
            try:
                body = await answer.aread()
            except httpx.HTTPError as exc:
                raise UpstreamError(
                    f"the upstream LLM at {self.upstream.chat_url} broke off its answer: "
                    f"{type(exc).__name__}"
                ) from exc
            finally:
                await answer.aclose()
            return Response(body, status_code=answer.status_code, headers=headers)
        return StreamingResponse(_relay(answer), status_code=answer.status_code, headers=headers)


async def _relay(answer: httpx.Response) -> AsyncIterator[bytes]:
    """The upstream's bytes as they come; the upstream is closed when the client leaves."""
    try:
        async for chunk in answer.aiter_raw():
            yield chunk
    except httpx.HTTPError:
        return  # the status line is sent: a cut stream is all a client can be told
    finally:
        await answer.aclose()


def _passed(headers: httpx.Headers) -> dict[str, str]:
    return {name: headers[name] for name in _PASSED_HEADERS if name in headers}


def figures(done: CompressedMessages) -> dict[str, str]:
    """The ``X-Tersify-*`` headers for one compression."""
    return {
        "x-tersify-origin-tokens": str(done.origin_tokens),
        "x-tersify-compressed-tokens": str(done.compressed_tokens),
        "x-tersify-seconds": f"{done.seconds:.3f}",
    }


def parse_payload(body: bytes) -> dict[str, Any]:
    """The request's JSON object; it must hold ``messages``."""
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequestError(f"the request is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise BadRequestError("the request must be a JSON object with 'model' and 'messages'")
    if "messages" not in payload:
        raise BadRequestError("the request has no 'messages': give the chat to complete")
    return payload


def add_gateway(app: FastAPI, guard: Guard, compressor: Compressor, gateway: Gateway) -> None:
    """Add ``POST /v1/chat/completions`` to ``app``, under ``guard``'s contract."""
    policy = gateway.upstream.policy

    def compress(body: bytes, deadline: Deadline) -> tuple[dict[str, Any], CompressedMessages]:
        payload = parse_payload(body)
        chosen = policy.with_options(payload.pop("tersify", None))
        messages = payload["messages"]
        if isinstance(messages, list):
            guard.config.limits.check_contexts(len(messages))
        deadline.check()
        done = compress_messages(compressor, messages, chosen, deadline)
        if done.result is not None:
            guard.metrics.observe_work(done.result.scorer_tokens, done.result.scorer_seconds)
        payload["messages"] = done.messages
        return payload, done

    @app.post(
        ROUTE,
        summary="OpenAI chat completions, with the messages compressed on the way",
        description=__doc__ or "",
    )
    async def chat_completions(request: Request) -> Response:
        async with guard.admit(request) as admitted:
            body = await admitted.body()
            payload, done = await admitted.run(lambda deadline: compress(body, deadline))
        # The compression slot is free again: the upstream call is not compression work.
        return await gateway.forward(payload, figures(done))
