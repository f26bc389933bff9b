"""Request bodies: read whole within the limits and the read timeout, or drained when refused.

:class:`BodyReader` reads a body before its request takes a place in the queue (a client
that sends slowly holds none), refuses it past the byte limit while it streams (413) or
past the read timeout (408), and bounds the bytes that all bodies being read buffer
together (429 beyond). :func:`drain` reads and drops what a refused request's client is
still sending, so that it reads the answer rather than a reset connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive

from tersify.errors import CancelledError, LimitExceededError, OverloadedError
from tersify.limits import Deadline
from tersify.service.config import ServeConfig
from tersify.service.errors import RequestTimeoutError
from tersify.service.metrics import Metrics

# A refused body is drained (so that the client reads the answer rather than a reset)
# only while it comes at least this fast; a drip is answered at once.
DRAIN_FLOOR_BYTES_PER_S = 64 * 1024
DRAIN_WAIT_S = 0.5


class BodyReader:
    """Reads bodies within one service's limits; counts the bytes being read."""

    def __init__(self, config: ServeConfig, metrics: Metrics) -> None:
        self._config = config
        self._metrics = metrics
        # Bodies being read hold no ticket (a client that sends slowly takes no place in
        # the queue); the bytes they buffer have their own bound, for memory.
        self.max_reading_bytes = (
            2 * (config.max_inflight + config.max_queue) * config.limits.max_body_bytes
        )
        self._reading_bytes = 0

    @property
    def reading_bytes(self) -> int:
        """The bytes that bodies being read hold now."""
        return self._reading_bytes

    def check_size(self, size: int) -> None:
        """Refuse a body of ``size`` bytes over the limit (413), counted as a rejection."""
        try:
            self._config.limits.check_body(size)
        except LimitExceededError:
            self._metrics.reject("body_too_large")
            raise

    async def read(self, request: Request, deadline: Deadline) -> bytes:
        """The whole body within ``read_timeout_s`` (and the deadline), refused past the limit."""
        chunks: list[bytes] = []
        size = 0
        limit = self._config.read_timeout_s
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
                    self._metrics.reject("read_timeout")
                    raise RequestTimeoutError(
                        f"the body did not arrive within {limit:g} s: send it at once"
                    ) from None
                except ClientDisconnect:
                    raise CancelledError("the client went away while sending its body") from None
                try:
                    self.check_size(size + len(chunk))
                except LimitExceededError:
                    chunks.clear()
                    raise
                if self._reading_bytes + len(chunk) > self.max_reading_bytes:
                    self._metrics.reject("reading_bytes")
                    raise OverloadedError(
                        f"the bodies being read hold {self._reading_bytes} bytes, the most "
                        "this server buffers: retry later",
                        retry_after=self._config.read_timeout_s,
                    )
                self._reading_bytes += len(chunk)
                size += len(chunk)
                chunks.append(chunk)
        finally:
            self._reading_bytes -= size


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


async def body_chunks(receive: Receive) -> AsyncIterator[bytes]:
    """The request body's chunks, as they come; none once the client has gone."""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return
