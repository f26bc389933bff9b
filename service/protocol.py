"""uvicorn's h11 protocol with a header timeout: a client that connects and stalls is dropped.

uvicorn times out an idle kept-alive connection, but not one that opens and sends
nothing, or half a request line, or headers a byte at a time. Here every request's
headers must arrive within ``timeout_keep_alive`` seconds of its first byte (or of the
connection); the body has its own read timeout in :class:`~tersify.service.guard.Admitted`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol


class GuardedH11Protocol(H11Protocol):
    """:class:`H11Protocol` that closes a connection whose request headers stall."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._armed_for: object = None

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
