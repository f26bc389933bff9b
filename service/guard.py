"""The serving contract in one piece, for every HTTP route that does work.

``Guard`` holds what a route needs to obey DESIGN.md's serving contract: admission (a
ticket, then a slot), limits on the body before and while it is read, a deadline per
request and cancellation when the client leaves, auth and browser safety, the error
shape, metrics and the access log. It is made of one piece per concern:

- :mod:`.config`: :class:`ServeConfig`, what the service takes, and the limits' defaults;
- :mod:`.memory`: the memory plan from the scorer loaded, which sets those defaults;
- :mod:`.access`: framing, ``Host`` and bearer-token checks;
- :mod:`.body`: reading a body within its limits, draining a refused one;
- :mod:`.admission`: tickets, slots and the work's threads;
- :mod:`.middleware`: :class:`GuardMiddleware`, the per-request part for every route
  (request id, access checks, the error contract for anything that escapes, metrics,
  one access-log line).

A route that does work reads::

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
import re
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.types import Message, Scope

from tersify.errors import CancelledError, DeadlineExceededError
from tersify.limits import Deadline
from tersify.service.access import TIMEOUT_HEADER, Access
from tersify.service.admission import Admission, Ticket
from tersify.service.body import BodyReader
from tersify.service.config import ServeConfig
from tersify.service.errors import HTTPError, UnsupportedMediaTypeError
from tersify.service.metrics import Metrics

T = TypeVar("T")
_SECONDS = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]{1,3})?")


class Guard:
    """Admission, limits, deadlines, auth, errors and metrics, shared by every route."""

    def __init__(self, config: ServeConfig | None = None, metrics: Metrics | None = None) -> None:
        self.config = config or ServeConfig()
        self.metrics = metrics or Metrics()
        config = self.config
        self.admission = Admission(
            config.max_inflight, config.max_queue, self.metrics, memory=config.plan
        )
        self.metrics.set_limits(
            config.max_inflight,
            config.max_queue,
            config.plan.as_dict(config.max_inflight, config.max_queue),
        )
        self.bodies = BodyReader(self.config, self.metrics)
        self.access = Access(self.config, self.metrics)

    def open_path(self, path: str) -> None:
        """Serve ``path`` without a token (a static page, say)."""
        self.access.open_path(path)

    def check_access(self, scope: Scope) -> None:
        """Refuse ambiguous framing (400), a wrong ``Host`` (421), a missing token (401)."""
        self.access.check(scope)

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
            self.bodies.check_size(int(length))
        deadline = self.deadline(request)
        # The body is read before the ticket: a client that sends it slowly holds no place
        # in the queue, and has read_timeout_s for all of it (not per chunk).
        body = await self.bodies.read(request, deadline)
        deadline.check()  # already past (a tiny X-Tersify-Timeout): 504, never 429
        async with self.admission.ticket(deadline.remaining()) as ticket:
            yield Admitted(self, request, deadline, ticket, body)


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
        task = asyncio.ensure_future(
            self.guard.admission.run(work, self.deadline, self.ticket, len(self._body))
        )
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


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


async def _disconnected(request: Request) -> None:
    while True:
        message: Message = await request.receive()
        if message["type"] == "http.disconnect":
            return
