"""A small client for OpenAI-compatible chat completions (vLLM, llama.cpp, OpenAI, ...).

Standard library only, so that ``tersify ask`` needs no extra. Every failure of the LLM
(unreachable, 4xx, 5xx, timeout, an answer that is not a chat completion) becomes one
:class:`tersify.errors.UpstreamError` whose message is one line and never holds the key.

>>> endpoint = LLMEndpoint("http://127.0.0.1:8080", model="smollm2")
>>> endpoint.chat_url
'http://127.0.0.1:8080/v1/chat/completions'
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from tersify.errors import BadRequestError, UpstreamError

DEFAULT_TIMEOUT = 300.0
_DETAIL_CHARS = 200


def chat_completions_url(url: str) -> str:
    """The chat-completions address for a base URL: ``.../v1`` and the full path both work.

    >>> chat_completions_url("https://api.openai.com/v1")
    'https://api.openai.com/v1/chat/completions'
    """
    return openai_url(url, "chat/completions")


def openai_url(url: str, path: str) -> str:
    """The address of ``path`` (``"models"``, ``"completions"``) under an OpenAI base URL.

    The base may end in ``/v1`` or not, or be a full chat-completions address.

    >>> openai_url("http://127.0.0.1:8080/v1/chat/completions", "models")
    'http://127.0.0.1:8080/v1/models'
    """
    base = url.rstrip("/")
    if base.endswith("/chat/completions"):
        base = base.removesuffix("/chat/completions")
    elif not base.endswith("/v1"):
        base += "/v1"
    return f"{base}/{path}"


@dataclass(frozen=True)
class LLMEndpoint:
    """Where an OpenAI-compatible LLM answers, which model, and with which key."""

    url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    timeout: float = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise BadRequestError(
                f"--llm {self.url!r} is not an http(s) URL: give e.g. http://127.0.0.1:8080/v1"
            )
        if not isinstance(self.model, str) or not self.model.strip():
            raise BadRequestError("--model is empty: name the model the LLM server serves")
        if not self.timeout > 0:
            raise BadRequestError(f"timeout={self.timeout} must be a positive number of seconds")

    @property
    def chat_url(self) -> str:
        """The address of ``POST /v1/chat/completions``."""
        return chat_completions_url(self.url)

    def headers(self) -> dict[str, str]:
        """Request headers, with the bearer key when there is one."""
        out = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            out["Authorization"] = f"Bearer {self.api_key}"
        return out


@dataclass(frozen=True)
class ChatReply:
    """One chat completion: the answer's text, the LLM's token counts, and the wall time."""

    content: str
    prompt_tokens: int | None
    completion_tokens: int | None
    seconds: float
    response: Mapping[str, Any]


def chat(
    endpoint: LLMEndpoint,
    messages: Sequence[Mapping[str, Any]],
    *,
    temperature: float = 0.0,
    max_tokens: int | None = None,
) -> ChatReply:
    """Ask ``endpoint`` for one chat completion of ``messages``.

    >>> chat(LLMEndpoint("http://127.0.0.1:9", model="m"), [])  # doctest: +SKIP
    """
    body: dict[str, Any] = {
        "model": endpoint.model,
        "messages": list(messages),
        "temperature": temperature,
    }
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    request = urllib.request.Request(  # noqa: S310 (the scheme is checked to be http(s))
        endpoint.chat_url,
        data=json.dumps(body, ensure_ascii=False).encode("utf-8"),
        headers=endpoint.headers(),
        method="POST",
    )
    started = time.perf_counter()
    raw = _send(endpoint, request)
    seconds = time.perf_counter() - started
    return parse_reply(raw, seconds, endpoint.chat_url)


def _send(endpoint: LLMEndpoint, request: urllib.request.Request) -> bytes:
    url = endpoint.chat_url
    try:
        with urllib.request.urlopen(request, timeout=endpoint.timeout) as response:  # noqa: S310
            data: bytes = response.read()
            return data
    except urllib.error.HTTPError as exc:
        raise status_error(url, exc.code, exc.read()) from exc
    except TimeoutError as exc:
        raise _timeout(url, endpoint.timeout) from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, (TimeoutError, socket.timeout)):
            raise _timeout(url, endpoint.timeout) from exc
        raise UpstreamError(
            f"cannot reach the LLM at {url}: {exc.reason}; check --llm and that the server is up"
        ) from exc
    except OSError as exc:
        raise UpstreamError(f"the connection to the LLM at {url} failed: {exc}") from exc


def _timeout(url: str, seconds: float) -> UpstreamError:
    return UpstreamError(
        f"the LLM at {url} did not answer within {seconds:g} s; "
        "raise --timeout or check the server's load"
    )


def status_error(url: str, status: int, body: bytes) -> UpstreamError:
    """The one-line error for an HTTP error answer, with the LLM's own message in short."""
    detail = error_detail(body)
    if status in (401, 403):
        hint = "check the API key (--api-key-env)"
    elif status == 404:
        hint = "check --llm and --model"
    elif status == 429:
        hint = "the LLM is rate-limiting: try again later"
    elif status < 500:
        hint = "the LLM refused the request"
    else:
        hint = "the LLM failed: try again later or read its log"
    return UpstreamError(
        f"the LLM at {url} answered HTTP {status} ({hint}): {detail}", status=status
    )


def error_detail(body: bytes) -> str:
    """The message of an error body (OpenAI's ``{"error": {"message"}}`` or text), one line."""
    text = body.decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
    if isinstance(data, Mapping):
        error = data.get("error", data.get("detail", data))
        if isinstance(error, Mapping) and "message" in error:
            error = error["message"]
        text = error if isinstance(error, str) else json.dumps(error, ensure_ascii=False)
    line = " ".join(text.split())
    if len(line) > _DETAIL_CHARS:
        line = line[: _DETAIL_CHARS - 3] + "..."
    return line or "(empty body)"


def parse_reply(raw: bytes, seconds: float, url: str) -> ChatReply:
    """Read a chat completion's JSON; anything else is an :class:`UpstreamError`."""
    try:
        data = json.loads(raw)
        content = data["choices"][0]["message"].get("content") or ""
        usage = data.get("usage") or {}
    except (
        json.JSONDecodeError,
        UnicodeDecodeError,
        KeyError,
        IndexError,
        TypeError,
        AttributeError,
    ) as exc:
        raise UpstreamError(
            f"the LLM at {url} answered with something that is not a chat completion: "
            f"{error_detail(raw)}"
        ) from exc
    return ChatReply(
        content=str(content),
        prompt_tokens=_count(usage, "prompt_tokens"),
        completion_tokens=_count(usage, "completion_tokens"),
        seconds=seconds,
        response=data,
    )


def _count(usage: Mapping[str, Any], name: str) -> int | None:
    value = usage.get(name) if isinstance(usage, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
