"""The per-request part of the serving contract, for every route: :class:`GuardMiddleware`.

Each request gets an id (the client's ``X-Request-Id`` if it is sane), the access checks
(:mod:`tersify.service.access`), the error contract for anything that escapes a route,
``HEAD`` wherever ``GET`` is, metrics, and one access-log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tersify.errors import InternalError, TersifyError
from tersify.service.access import header_map
from tersify.service.body import body_chunks, drain
from tersify.service.config import ServeConfig
from tersify.service.errors import ShuttingDownError, error_response
from tersify.service.guard import Guard

access_log = logging.getLogger("tersify.access")
error_log = logging.getLogger("tersify.service")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class _Exchange:
    """One request's ASGI channels as the app sees them: an id, HEAD as GET, refusals closed.

    ``scope`` is what the app gets (a copy saying ``GET`` for a ``HEAD``); ``receive``
    notes when the body has been read to its end; ``send`` adds the request id, drops a
    ``HEAD`` answer's body, and, for an error sent before the body was read, drains what
    the client is sending (within the read timeout, and only while it comes fast) and
    closes the connection.
    """

    def __init__(self, scope: Scope, receive: Receive, send: Send, config: ServeConfig) -> None:
        self._headers = header_map(scope)
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
            body_chunks(self.receive),
            max_bytes=2 * self._config.limits.max_body_bytes,
            within_s=self._config.read_timeout_s,
        )


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
