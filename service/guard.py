"""The serving contract in one piece, for every HTTP route that does work.

``Guard`` holds what a route needs to obey DESIGN.md's serving contract: admission (a
ticket, then a slot), limits on the body before and while it is read, a deadline per
request and cancellation when the client leaves, auth and browser safety, the error
shape, metrics and the access log. :class:`GuardMiddleware` does the per-request part
for every route (request id, ``Host`` and bearer token checks, the error contract for
anything that escapes, metrics, one access-log line). A route that does work reads::

    @app.post("/compress")
    async def compress(request: Request) -> dict[str, Any]:
        async with guard.admit(request) as admitted:
            body = await admitted.body()
            return await admitted.run(lambda deadline: work(body, deadline))

A new front (the gateway) adds its route the same way and gets all of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tersify.errors import (
    CancelledError,
    DeadlineExceededError,
    InternalError,
    LimitExceededError,
    OverloadedError,
    TersifyError,
)
from tersify.limits import Deadline, Limits
from tersify.service.admission import Admission, Ticket
from tersify.service.errors import (
    HTTPError,
    MalformedRequestError,
    MisdirectedRequestError,
    RequestTimeoutError,
    ShuttingDownError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
    error_response,
)
from tersify.service.metrics import Metrics
from tersify.validate import non_negative_int, number, positive_int

T = TypeVar("T")
access_log = logging.getLogger("tersify.access")
error_log = logging.getLogger("tersify.service")

# Measured with the embedded Gemma 3 270M scorer (perf/memory_inflight.py, README
# "Serving"): the process holds the model once (1.3 GiB resident), and each compression
# in flight adds one batch's activations, the 262k-vocabulary logits of a 512-token window
# and their log-softmax: up to 2.5 GiB, whatever the request's length past one window.
MEMORY_PER_INFLIGHT_BYTES = 2560 * 1024 * 1024
MEMORY_BASE_BYTES = 1536 * 1024 * 1024
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_READ_TIMEOUT_S = 10.0
TIMEOUT_HEADER = "x-tersify-timeout"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
_SECONDS = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]{1,3})?")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_ALWAYS_OPEN = frozenset({"/healthz"})
_PROBES = frozenset({"/readyz", "/metrics"})
# Headers that say one thing once: sent twice, a proxy and this server could each read a
# different one (the first, the last), so a repeat is refused rather than resolved.
SINGLE_HEADERS = frozenset(
    {
        "authorization",
        "content-encoding",
        "content-length",
        "content-type",
        "expect",
        "host",
        "transfer-encoding",
        TIMEOUT_HEADER,
        "x-request-id",
    }
)
# A refused body is drained (so that the client reads the answer rather than a reset)
# only while it comes at least this fast; a drip is answered at once.
DRAIN_FLOOR_BYTES_PER_S = 64 * 1024
DRAIN_WAIT_S = 0.5


def default_max_inflight() -> int:
    """One compression per core, fewer where half the memory would not hold them.

    On 2 cores and 24 GiB: 2 (memory alone would allow 4).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = 0
    by_memory = (memory // 2 - MEMORY_BASE_BYTES) // MEMORY_PER_INFLIGHT_BYTES if memory else 1
    return max(1, min(cores or 1, int(by_memory)))


@dataclass(frozen=True)
class ServeConfig:
    """How much the service takes and from whom.

    ``max_inflight`` compressions run at once and ``max_queue`` more wait; ``timeout_s`` is
    every request's deadline (a request may ask for less with the ``X-Tersify-Timeout``
    header); ``read_timeout_s`` bounds the time to receive a whole body (and each
    request's headers); ``token``, when set, is
    the bearer token every route but ``/healthz`` needs (``/readyz`` and ``/metrics`` too
    when ``protect_probes``); ``allowed_hosts``, when set, are the only ``Host`` names
    answered (a loopback bind sets them against DNS rebinding).
    """

    max_inflight: int = field(default_factory=default_max_inflight)
    max_queue: int = -1  # -1: four waiting per slot
    timeout_s: float = DEFAULT_TIMEOUT_S
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S
    limits: Limits = field(default_factory=Limits)
    token: str | None = field(default=None, repr=False)
    allowed_hosts: frozenset[str] | None = None
    protect_probes: bool = False

    def __post_init__(self) -> None:
        positive_int("max_inflight", self.max_inflight)
        if self.max_queue == -1:
            object.__setattr__(self, "max_queue", 4 * self.max_inflight)
        non_negative_int("max_queue", self.max_queue)
        for name in ("timeout_s", "read_timeout_s"):
            if not number(name, getattr(self, name)) > 0:
                raise HTTPError(f"{name}={getattr(self, name)} must be more than 0 seconds")
        if self.token is not None and not self.token.strip():
            raise HTTPError("the token is empty: put a secret in the token file")


class Guard:
    """Admission, limits, deadlines, auth, errors and metrics, shared by every route."""

    def __init__(self, config: ServeConfig | None = None, metrics: Metrics | None = None) -> None:
        self.config = config or ServeConfig()
        self.metrics = metrics or Metrics()
        self.admission = Admission(self.config.max_inflight, self.config.max_queue, self.metrics)
        # Bodies being read hold no ticket (a client that sends slowly takes no place in
        # the queue); the bytes they buffer have their own bound, for memory.
        self.max_reading_bytes = (
            2
            * (self.config.max_inflight + self.config.max_queue)
            * self.config.limits.max_body_bytes
        )
        self._reading_bytes = 0
        self._open = set(_ALWAYS_OPEN) | (set() if self.config.protect_probes else set(_PROBES))
        self._token = None if self.config.token is None else self.config.token.strip().encode()

    def open_path(self, path: str) -> None:
        """Serve ``path`` without a token (a static page, say)."""
        self._open.add(path)

    def check_access(self, scope: Scope) -> None:
        """Refuse ambiguous framing (400), a wrong ``Host`` (421), a missing token (401).

        A header of :data:`SINGLE_HEADERS` sent twice is ambiguous framing too.
        """
        repeated = _repeated(scope)
        if repeated:
            self.metrics.reject("framing")
            raise MalformedRequestError(
                f"the header {repeated} is sent more than once: send it once"
            )
        headers = _headers(scope)
        if "content-length" in headers and "transfer-encoding" in headers:
            # h11 lets Transfer-Encoding win; a proxy in front may not (request smuggling).
            self.metrics.reject("framing")
            raise MalformedRequestError(
                "Content-Length and Transfer-Encoding together are refused: send one of them"
            )
        if self.config.allowed_hosts is not None:
            host = _hostname(headers.get("host", ""))
            if host not in self.config.allowed_hosts:
                self.metrics.reject("host")
                raise MisdirectedRequestError(
                    f"this server answers for {', '.join(sorted(self.config.allowed_hosts))}, "
                    f"not Host {host!r}: use one of those names"
                )
        if self._token is None or scope.get("path") in self._open:
            return
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), self._token
        ):
            self.metrics.reject("auth")
            raise UnauthorizedError(
                "a bearer token is required: send 'Authorization: Bearer TOKEN' with the "
                "server's token"
            )

    def deadline(self, request: Request) -> Deadline:
        """The request's deadline: the server's timeout, or less if the request asks."""
        seconds = self.config.timeout_s
        asked = request.headers.get(TIMEOUT_HEADER)
        if asked is not None:
            # Plain decimals only: float() would also take "1_0", " 1 " and "infinity".
            value = float(asked) if _SECONDS.fullmatch(asked) else float("nan")
            if not value > 0 or value == float("inf"):
                raise HTTPError(f"{TIMEOUT_HEADER}: {asked!r} must be a positive number of seconds")
            seconds = min(seconds, value)
        return Deadline(seconds)

    @contextlib.asynccontextmanager
    async def admit(self, request: Request) -> AsyncIterator[Admitted]:
        """Check the headers, read the body, take a ticket (or 429 at once); give the tools.

        A refusal raised here, before the body is read, is answered at once: the
        middleware drains what the client is sending (briefly) and closes the connection.
        """
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/json":
            self.metrics.reject("media_type")
            raise UnsupportedMediaTypeError(
                f"the body must be JSON sent as 'Content-Type: application/json', not "
                f"{media or 'no Content-Type'!r}"
            )
        encoding = request.headers.get("content-encoding", "").strip().lower()
        if encoding not in ("", "identity"):
            self.metrics.reject("media_type")
            raise UnsupportedMediaTypeError(
                f"Content-Encoding {encoding!r} is not supported: send the JSON body uncompressed"
            )
        length = request.headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                raise HTTPError(f"Content-Length {length!r} is not a byte count")
            self._check_body(int(length))
        deadline = self.deadline(request)
        # The body is read before the ticket: a client that sends it slowly holds no place
        # in the queue, and has read_timeout_s for all of it (not per chunk).
        body = await self._read_body(request, deadline)
        deadline.check()  # already past (a tiny X-Tersify-Timeout): 504, never 429
        async with self.admission.ticket(deadline.remaining()) as ticket:
            yield Admitted(self, request, deadline, ticket, body)

    async def _read_body(self, request: Request, deadline: Deadline) -> bytes:
        """The whole body within ``read_timeout_s`` (and the deadline), refused past the limit."""
        chunks: list[bytes] = []
        size = 0
        limit = self.config.read_timeout_s
        remaining = deadline.remaining()
        until = time.monotonic() + (limit if remaining is None else min(limit, remaining))
        stream = request.stream().__aiter__()
        try:
            while True:
                try:
                    chunk = await asyncio.wait_for(
                        stream.__anext__(), timeout=max(0.0, until - time.monotonic())
                    )
                except StopAsyncIteration:
                    return b"".join(chunks)
                except asyncio.TimeoutError:
                    deadline.check()  # the request's own deadline came first: 504
                    self.metrics.reject("read_timeout")
                    raise RequestTimeoutError(
                        f"the body did not arrive within {limit:g} s: send it at once"
                    ) from None
                except ClientDisconnect:
                    raise CancelledError("the client went away while sending its body") from None
                try:
                    self._check_body(size + len(chunk))
                except LimitExceededError:
                    chunks.clear()
                    raise
                if self._reading_bytes + len(chunk) > self.max_reading_bytes:
                    self.metrics.reject("reading_bytes")
                    raise OverloadedError(
                        f"the bodies being read hold {self._reading_bytes} bytes, the most "
                        "this server buffers: retry later",
                        retry_after=self.config.read_timeout_s,
                    )
                self._reading_bytes += len(chunk)
                size += len(chunk)
                chunks.append(chunk)
        finally:
            self._reading_bytes -= size

    def _check_body(self, size: int) -> None:
        try:
            self.config.limits.check_body(size)
        except LimitExceededError:
            self.metrics.reject("body_too_large")
            raise


class Admitted:
    """An admitted request: its body, read within limits, and its work, run in a slot."""

    def __init__(
        self,
        guard: Guard,
        request: Request,
        deadline: Deadline,
        ticket: Ticket | None = None,
        body: bytes = b"",
    ) -> None:
        self.guard = guard
        self.request = request
        self.deadline = deadline
        self.ticket = ticket
        self._body = body

    async def body(self) -> bytes:
        """The body, read before the ticket was taken (within the limit and read timeout)."""
        return self._body

    async def run(self, work: Callable[[Deadline], T]) -> T:
        """Run ``work(deadline)`` in a compression slot; stop it when the client leaves.

        Raises :class:`DeadlineExceededError` when the deadline passes first, and
        :class:`CancelledError` when the client disconnects first (the work is told to
        stop and keeps its slot until it does).
        """
        task = asyncio.ensure_future(self.guard.admission.run(work, self.deadline, self.ticket))
        task.add_done_callback(_retrieve)
        watcher = asyncio.ensure_future(_disconnected(self.request))
        try:
            remaining = self.deadline.remaining()
            done, _ = await asyncio.wait(
                {task, watcher},
                timeout=None if remaining is None else remaining + 0.05,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if task in done:
                return task.result()
            self.deadline.cancel()
            if watcher in done:
                raise CancelledError("the client went away; its compression was stopped")
            raise DeadlineExceededError(
                f"the request did not finish within its {self.deadline.seconds:g} s deadline: "
                "ask for less (a smaller context) or allow more time"
            )
        except asyncio.CancelledError:
            self.deadline.cancel()  # the server is stopping: stop the work too
            raise
        finally:
            watcher.cancel()
            if not task.done():
                task.cancel()


async def drain(
    stream: AsyncIterator[bytes],
    *,
    max_bytes: int,
    within_s: float,
    wait_s: float = DRAIN_WAIT_S,
    floor_bytes_per_s: float = DRAIN_FLOOR_BYTES_PER_S,
) -> int:
    """Read and drop what a refused request's client is sending; return the bytes dropped.

    A client that sends a refused body whole before it reads the answer (most do) would
    otherwise see the connection reset and never read the 413. Nothing is kept, and it
    stops, so that the answer goes out, at the first of: the body's end, ``max_bytes``,
    ``within_s`` seconds (the read timeout), a pause of ``wait_s``, or, past ``wait_s``, a
    client sending slower than ``floor_bytes_per_s`` (a body dripped a byte at a time
    gets its answer at once). The answer then closes the connection (GuardMiddleware).

    >>> async def chunks():
    ...     yield b"abc"
    ...     yield b"de"
    >>> asyncio.run(drain(chunks(), max_bytes=100, within_s=1.0))
    5
    """
    started = time.monotonic()
    dropped = 0
    with contextlib.suppress(
        StopAsyncIteration, asyncio.TimeoutError, ClientDisconnect, RuntimeError
    ):
        while dropped <= max_bytes:
            elapsed = time.monotonic() - started
            left = within_s - elapsed
            if left <= 0 or (elapsed >= wait_s and dropped < floor_bytes_per_s * elapsed):
                break
            chunk = await asyncio.wait_for(stream.__anext__(), timeout=min(wait_s, left))
            dropped += len(chunk)
    return dropped


async def _chunks(receive: Receive) -> AsyncIterator[bytes]:
    """The request body's chunks, as they come; none once the client has gone."""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


async def _disconnected(request: Request) -> None:
    while True:
        message: Message = await request.receive()
        if message["type"] == "http.disconnect":
            return


class _Exchange:
    """One request's ASGI channels as the app sees them: an id, HEAD as GET, refusals closed.

    ``scope`` is what the app gets (a copy saying ``GET`` for a ``HEAD``); ``receive``
    notes when the body has been read to its end; ``send`` adds the request id, drops a
    ``HEAD`` answer's body, and, for an error sent before the body was read, drains what
    the client is sending (within the read timeout, and only while it comes fast) and
    closes the connection.
    """

    def __init__(self, scope: Scope, receive: Receive, send: Send, config: ServeConfig) -> None:
        self._headers = _headers(scope)
        given = self._headers.get("x-request-id", "")
        self.request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = self.request_id
        self.head = scope.get("method") == "HEAD"
        if self.head:
            state["method"] = "HEAD"  # what error messages name; the routes see GET
        self.scope = {**scope, "method": "GET"} if self.head else scope
        self.status = 0
        self._receive = receive
        self._send = send
        self._config = config
        self._has_body = (
            self._headers.get("content-length", "0") != "0" or "transfer-encoding" in self._headers
        )
        self._body_read = False

    async def receive(self) -> Message:
        """The next message from the client."""
        message = await self._receive()
        if message["type"] == "http.request" and not message.get("more_body", False):
            self._body_read = True
        return message

    async def send(self, message: Message) -> None:
        """Send ``message`` with the request id (and the rest of the class's rules)."""
        if message["type"] == "http.response.start":
            self.status = message["status"]
            extra = [(b"x-request-id", self.request_id.encode())]
            if self.status >= 400 and self._has_body and not self._body_read:
                await self._drain()
                if not self._body_read:
                    extra.append((b"connection", b"close"))
            names = {name for name, _ in extra}
            message["headers"] = [
                *[(k, v) for k, v in message.get("headers", []) if k.lower() not in names],
                *extra,
            ]
        elif self.head and message["type"] == "http.response.body":
            message = {**message, "body": b""}  # the headers (Content-Length) stay
        await self._send(message)

    async def refuse(self, exc: BaseException) -> None:
        """Answer with ``exc`` in the error shape."""
        await error_response(exc, self.request_id)(self.scope, self.receive, self.send)

    async def _drain(self) -> None:
        # A client that waits for 100 Continue has sent nothing (reading would invite the
        # body); one that sent too slowly (408) has had its time.
        if self.status == 408 or "expect" in self._headers:
            return
        await drain(
            _chunks(self.receive),
            max_bytes=2 * self._config.limits.max_body_bytes,
            within_s=self._config.read_timeout_s,
        )


def _repeated(scope: Scope) -> str | None:
    """The first header of :data:`SINGLE_HEADERS` that ``scope`` carries twice, if any."""
    seen: set[str] = set()
    for key, _ in scope.get("headers", ()):
        name: str = key.decode("latin-1").lower()
        if name in SINGLE_HEADERS:
            if name in seen:
                return name
            seen.add(name)
    return None


def _headers(scope: Scope) -> dict[str, str]:
    return {
        key.decode("latin-1").lower(): value.decode("latin-1")
        for key, value in scope.get("headers", ())
    }


def _hostname(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class GuardMiddleware:
    """Per request: an id, access checks, the error contract, metrics and one log line.

    ``HEAD`` is answered wherever ``GET`` is, as ``GET`` without the body. A refusal sent
    before the request's body was read closes the connection: what follows on it is the
    rest of a body nobody reads, and a client dripping it must not keep it open.
    """

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection scope."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        exchange = _Exchange(scope, receive, send, self.guard.config)
        failure: BaseException | None = None
        try:
            self.guard.check_access(scope)
            await self.app(exchange.scope, exchange.receive, exchange.send)
        except Exception as exc:  # the error contract's last line: nothing escapes
            failure = exc
            if exchange.status == 0:
                await exchange.refuse(exc)
        except asyncio.CancelledError:
            # The server stops and its grace period is over: say so if the client listens.
            failure = ShuttingDownError("the server is shutting down: retry on another")
            if exchange.status == 0:
                with contextlib.suppress(Exception):
                    await exchange.refuse(failure)
        finally:
            self._record(
                exchange.scope,
                exchange.request_id,
                exchange.status or 499,
                time.monotonic() - started,
                failure,
            )

    def _record(
        self,
        scope: Scope,
        request_id: str,
        status: int,
        seconds: float,
        failure: BaseException | None,
    ) -> None:
        route = getattr(scope.get("route"), "path", None) or "other"
        self.guard.metrics.observe_request(route, status, seconds)
        fields = {
            "request_id": request_id,
            "method": scope.get("method", ""),
            "path": scope.get("path", ""),
            "status": status,
            "duration_ms": round(seconds * 1000, 1),
            "client": (scope.get("client") or ("", 0))[0],
        }
        if failure is not None and (
            not isinstance(failure, TersifyError) or isinstance(failure, InternalError)
        ):
            error_log.error("request %s failed", request_id, exc_info=failure)
        if failure is not None:
            fields["error"] = type(failure).__name__
            if status >= 500 and isinstance(failure, TersifyError):
                fields["message"] = " ".join(str(failure).split())[:500]
        access_log.info(
            "%s %s %s %s %.1fms%s",
            request_id,
            fields["method"],
            fields["path"],
            status,
            fields["duration_ms"],
            f" {fields['error']}: {fields.get('message', '')}" if "error" in fields else "",
            extra={"fields": fields},
        )
