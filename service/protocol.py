"""uvicorn's h11 protocol, hardened: stalled headers are dropped, broken HTTP gets the error shape.

uvicorn times out an idle kept-alive connection, but not one that opens and sends
nothing, or half a request line, or headers a byte at a time. Here every request's
headers must arrive within ``timeout_keep_alive`` seconds of its first byte (or of the
connection); the body has its own read timeout in :class:`~tersify.service.body.BodyReader`.

A request that h11 itself refuses (a bad or conflicting ``Content-Length``, a
``Transfer-Encoding`` other than chunked, headers over ``h11_max_incomplete_event_size``)
never reaches the app: uvicorn answers it with a plain-text 400. Here it is answered in
the service's error shape, with h11's status (400, 431 for headers too large, 501 for an
unsupported transfer coding), and the connection is closed.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from http import HTTPStatus
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from tersify.service.errors import HTTPError, error_body


class GuardedH11Protocol(H11Protocol):
    """:class:`H11Protocol` that closes a connection whose request headers stall."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._armed_for: object = None
        self._refusal: h11.RemoteProtocolError | None = None
        next_event = self.conn.next_event

        def remembered() -> Any:
            try:
                return next_event()
            except h11.RemoteProtocolError as exc:
                self._refusal = exc  # uvicorn drops it; send_400_response uses it
                raise

        self.conn.next_event = remembered  # type: ignore[method-assign]

    def send_400_response(self, msg: str) -> None:
        """Answer a request h11 refused in the error shape, with h11's status; then close."""
        refusal = self._refusal
        status = getattr(refusal, "error_status_hint", 400) if refusal else 400
        reason = " ".join((str(refusal) if refusal else msg).split())
        reason = reason if len(reason) <= 200 else reason[:200] + "..."
        request_id = uuid.uuid4().hex
        error = HTTPError(f"the HTTP request is malformed ({reason}): fix the client")
        body = json.dumps(error_body(error, request_id)).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode()),
            (b"connection", b"close"),
        ]
        try:
            phrase = HTTPStatus(status).phrase.encode()
            self.transport.write(
                self.conn.send(h11.Response(status_code=status, headers=headers, reason=phrase))
                or b""
            )
            self.transport.write(self.conn.send(h11.Data(data=body)) or b"")
            self.transport.write(self.conn.send(h11.EndOfMessage()) or b"")
        except h11.LocalProtocolError:
            pass  # h11 cannot answer in this state: just close
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the clock for the first request's headers."""
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        """Start the clock when bytes of a new request arrive."""
        super().data_received(data)
        if self.cycle is None or self.cycle.response_complete:
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the clock."""
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._header_timer is None:
            self._armed_for = self.cycle
            self._header_timer = self.loop.call_later(self.timeout_keep_alive, self._expire)

    def _expire(self) -> None:
        self._header_timer = None
        waiting = self.cycle is None or self.cycle.response_complete
        if self.cycle is self._armed_for and waiting and not self.transport.is_closing():
            self.transport.close()
