"""The compressing gateway: OpenAI's API in front of any upstream LLM, prompts compressed.

A client (the official ``openai`` package, LangChain, LiteLLM, a chat UI) talks to tersify as
it would to the LLM. The gateway answers:

- ``POST /v1/chat/completions``: the ``messages`` compressed under
  :mod:`tersify.integrations.messages`' policy;
- ``POST /v1/completions``: the ``prompt`` (a string or a list of strings) compressed the same
  way, each string as one user message (its last paragraph is the question); token-id
  prompts are forwarded as they are;
- ``GET /v1/models`` and ``GET /v1/models/{model}``: the upstream's answer, passed through
  (most clients ask for the list before anything else).

For each compressing request the gateway:

1. admits it under the service's contract (bearer token, body limit, admission slot,
   deadline; :class:`~tersify.service.guard.Guard`), as ``POST /compress`` does;
2. compresses it with the budget from the request's ``tersify`` object
   (``extra_body={"tersify": {"rate": 0.5}}``) or the server's default; the ``tersify``
   field is removed, everything else is kept;
3. forwards the request to the upstream with the server's own API key
   (``--upstream-key-env``; never the client's token, never logged) and gives back the
   upstream's answer unchanged: its status and body, errors included, and a stream
   (``"stream": true``) relayed chunk by chunk as it arrives.

The model routes take no slot (they do no compression work) but pass the same access
checks, metrics and access log. The compression's figures ride along in
``X-Tersify-Origin-Tokens``, ``X-Tersify-Compressed-Tokens`` and ``X-Tersify-Seconds``. The
request's deadline bounds the compression; the upstream call has its own timeout
(``--upstream-timeout``), since an LLM's answer may take longer than a compression should.
An upstream that cannot be reached or does not answer in time is a 502 in the service's
error shape.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

from tersify.compressor import Compressor
from tersify.errors import BadRequestError, UpstreamError
from tersify.integrations.llm import openai_url
from tersify.integrations.messages import CompressedMessages, MessagePolicy, compress_messages
from tersify.limits import Deadline
from tersify.service.guard import Guard

ROUTE = "/v1/chat/completions"
COMPLETIONS_ROUTE = "/v1/completions"
MODELS_ROUTE = "/v1/models"
DEFAULT_UPSTREAM_TIMEOUT_S = 300.0
_PASSED_HEADERS = ("content-type", "cache-control", "openai-model", "openai-processing-ms")

Compression = tuple[dict[str, Any], list[CompressedMessages]]


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
        return self.url_for("chat/completions")

    def url_for(self, path: str) -> str:
        """The upstream's address of an OpenAI ``path`` such as ``"models"``.

        >>> Upstream("http://127.0.0.1:8000/v1").url_for("completions")
        'http://127.0.0.1:8000/v1/completions'
        """
        return openai_url(self.url, path)

    def headers(self) -> dict[str, str]:
        """The headers of a forwarded request: JSON, and the server's key if it has one."""
        out = {"content-type": "application/json"}
        if self.api_key:
            out["authorization"] = f"Bearer {self.api_key}"
        return out


class Gateway:
    """Forwards requests to one upstream over one connection pool, answers relayed."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(upstream.timeout_s, connect=min(10.0, upstream.timeout_s)),
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        """Close the connection pool (at shutdown)."""
        await self._client.aclose()

    async def forward(
        self, payload: dict[str, Any], extra: dict[str, str], path: str = "chat/completions"
    ) -> Response:
        """POST ``payload`` to the upstream's ``path``; relay the answer (a stream too)."""
        return await self.relay(
            "POST", path, json.dumps(payload, ensure_ascii=False).encode("utf-8"), extra
        )

    async def relay(
        self,
        method: str,
        path: str,
        content: bytes | None = None,
        extra: dict[str, str] | None = None,
    ) -> Response:
        """Send one request to the upstream's ``path``; its status, body and stream unchanged."""
        url = self.upstream.url_for(path)
        request = self._client.build_request(
            method, url, content=content, headers=self.upstream.headers()
        )
        try:
            answer = await self._client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise UpstreamError(
                f"the upstream LLM at {url} did not answer within {self.upstream.timeout_s:g} s"
            ) from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(
                f"cannot reach the upstream LLM at {url}: "
                f"{type(exc).__name__}; check --upstream and that it is up"
            ) from exc
        headers = {**_passed(answer.headers), **(extra or {})}
        streaming = answer.headers.get("content-type", "").startswith("text/event-stream")
        if not streaming or answer.status_code >= 400:
            try:
                body = await answer.aread()
            except httpx.HTTPError as exc:
                raise UpstreamError(
                    f"the upstream LLM at {url} broke off its answer: {type(exc).__name__}"
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


def figures(done: CompressedMessages | Sequence[CompressedMessages]) -> dict[str, str]:
    """The ``X-Tersify-*`` headers for one compression (or the sum of several)."""
    parts = [done] if isinstance(done, CompressedMessages) else list(done)
    return {
        "x-tersify-origin-tokens": str(sum(p.origin_tokens for p in parts)),
        "x-tersify-compressed-tokens": str(sum(p.compressed_tokens for p in parts)),
        "x-tersify-seconds": f"{sum(p.seconds for p in parts):.3f}",
    }


def parse_payload(body: bytes, needs: str = "messages") -> dict[str, Any]:
    """The request's JSON object; it must hold ``needs`` (``messages`` or ``prompt``)."""
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequestError(f"the request is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise BadRequestError(f"the request must be a JSON object with 'model' and '{needs}'")
    if needs not in payload:
        what = "the chat to complete" if needs == "messages" else "the text to complete"
        raise BadRequestError(f"the request has no '{needs}': give {what}")
    return payload


def prompt_texts(prompt: object) -> list[str] | None:
    """The strings of a completions ``prompt`` to compress; None for token ids (kept as sent).

    >>> prompt_texts(["a", "b"]), prompt_texts([1, 2, 3])
    (['a', 'b'], None)
    """
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return list(prompt)
    nested = isinstance(prompt, list) and bool(prompt) and all(_token_ids(p) for p in prompt)
    if nested or _token_ids(prompt):
        return None  # one list of ids, or a list of them: the upstream's own tokens
    raise BadRequestError(
        '"prompt" must be a string, a non-empty list of strings, or token ids (a list of '
        "integers, or a list of such lists)"
    )


def _token_ids(value: object) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    )


def model_path(model: str) -> str:
    """The upstream path of one model's entry; ids may hold ``/`` (``org/name``)."""
    segments = model.split("/")
    if any(s in ("", ".", "..") for s in segments):
        raise BadRequestError(f"model id {model!r} is not a model name: see GET /v1/models")
    return "models/" + "/".join(quote(s, safe="") for s in segments)


@dataclass(frozen=True)
class _Work:
    """The gateway's compression work, run in an admission slot under a deadline."""

    guard: Guard
    compressor: Compressor
    policy: MessagePolicy

    def _observed(self, done: CompressedMessages) -> CompressedMessages:
        if done.result is not None:
            self.guard.metrics.observe_work(done.result.scorer_tokens, done.result.scorer_seconds)
        return done

    def chat(self, body: bytes, deadline: Deadline) -> Compression:
        """A chat completions request with its ``messages`` compressed."""
        payload = parse_payload(body)
        chosen = self.policy.with_options(payload.pop("tersify", None))
        messages = payload["messages"]
        if isinstance(messages, list):
            self.guard.config.limits.check_contexts(len(messages))
        deadline.check()
        done = self._observed(compress_messages(self.compressor, messages, chosen, deadline))
        payload["messages"] = done.messages
        return payload, [done]

    def completion(self, body: bytes, deadline: Deadline) -> Compression:
        """A completions request with each of its prompt strings compressed on its own."""
        payload = parse_payload(body, needs="prompt")
        chosen = self.policy.with_options(payload.pop("tersify", None))
        texts = prompt_texts(payload["prompt"])
        if texts is None:
            return payload, []
        self.guard.config.limits.check_contexts(len(texts))
        parts = []
        for text in texts:  # each prompt is its own completion, with its own budget
            deadline.check()
            message = [{"role": "user", "content": text}]
            parts.append(
                self._observed(compress_messages(self.compressor, message, chosen, deadline))
            )
        short = [part.messages[0]["content"] for part in parts]
        payload["prompt"] = short[0] if isinstance(payload["prompt"], str) else short
        return payload, parts


def add_gateway(app: FastAPI, guard: Guard, compressor: Compressor, gateway: Gateway) -> None:
    """Add the gateway's routes to ``app``, under ``guard``'s contract."""
    work = _Work(guard, compressor, gateway.upstream.policy)

    async def compressed(
        request: Request, compress: Callable[[bytes, Deadline], Compression], path: str
    ) -> Response:
        async with guard.admit(request) as admitted:
            body = await admitted.body()
            payload, done = await admitted.run(lambda deadline: compress(body, deadline))
        # The compression slot is free again: the upstream call is not compression work.
        return await gateway.forward(payload, figures(done), path)

    @app.post(
        ROUTE,
        summary="OpenAI chat completions, with the messages compressed on the way",
        description=__doc__ or "",
    )
    async def chat_completions(request: Request) -> Response:
        return await compressed(request, work.chat, "chat/completions")

    @app.post(
        COMPLETIONS_ROUTE,
        summary="OpenAI (legacy) completions, with the prompt compressed on the way",
    )
    async def completions(request: Request) -> Response:
        return await compressed(request, work.completion, "completions")

    @app.get(MODELS_ROUTE, summary="The upstream's models, passed through")
    async def models() -> Response:
        return await gateway.relay("GET", "models")

    @app.get(MODELS_ROUTE + "/{model:path}", summary="One upstream model, passed through")
    async def model(model: str) -> Response:
        return await gateway.relay("GET", model_path(model))
