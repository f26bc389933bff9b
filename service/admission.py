"""Admission control: a fixed number of compressions in flight and a bounded wait queue.

A request takes a *ticket* before it reads its body; at most ``max_inflight + max_queue``
tickets exist, and one more is refused at once (:class:`~tersify.errors.OverloadedError`,
HTTP 429 with ``Retry-After``). A ticket then waits, until its deadline at most, for one
of ``max_inflight`` *slots*, and runs its work in the admission's own thread pool, which
has exactly that many threads. A slot is given back when the work's thread ends, not
when the answer is sent: work that outlives its request (a deadline, a client that left)
still counts until it stops, so the cores and memory in use never exceed the bound.

Runs on one event loop; only the work runs in threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from tersify.errors import DeadlineExceededError, OverloadedError
from tersify.limits import Deadline
from tersify.service.metrics import Metrics
from tersify.validate import non_negative_int, positive_int

T = TypeVar("T")


class Admission:
    """Bounded in-flight work and a bounded queue in front of it."""

    def __init__(self, max_inflight: int, max_queue: int, metrics: Metrics | None = None) -> None:
        self.max_inflight = positive_int("max_inflight", max_inflight)
        self.max_queue = non_negative_int("max_queue", max_queue)
        self._metrics = metrics or Metrics()
        self._tickets = 0
        self._running = 0
        self._slots: asyncio.Semaphore | None = None
        self._executor = ThreadPoolExecutor(max_inflight, thread_name_prefix="tersify-work")
        self._work_seconds = 5.0  # moving average of one compression's time
        self._finished = 0
        self._deadlines: set[Deadline] = set()
        self._closed = False
        self._active = 0  # threads inside work now; changed by the threads themselves
        self._active_lock = threading.Lock()

    @property
    def running(self) -> int:
        """Compressions whose thread is running now."""
        return self._running

    @property
    def waiting(self) -> int:
        """Admitted requests that are not running (reading their body or queued)."""
        return self._tickets - self._running

    def retry_after(self) -> float:
        """A fair wait before trying again: the queue's length in compressions."""
        rounds = (self.waiting + 1) / self.max_inflight
        return min(60.0, max(1.0, self._work_seconds * rounds))

    def expected_seconds(self) -> float | None:
        """When a request admitted now would finish, from the recent compressions' times.

        ``None`` until a few compressions have finished (nothing to go by yet).
        """
        if self._finished < 3:
            return None
        ahead = max(0, self._tickets + 1 - self.max_inflight)
        return (ahead / self.max_inflight + 1) * self._work_seconds

    def enter(self, budget_s: float | None = None) -> None:
        """Take a ticket or refuse at once; pair with :meth:`leave` (use :meth:`ticket`).

        Refused when the queue is full, and when the queue ahead is so long that the
        request would not finish within ``budget_s`` (a 429 now rather than a 504 later).
        """
        if self._closed:
            raise OverloadedError("the server is shutting down: send the request elsewhere")
        if self._tickets >= self.max_inflight + self.max_queue:
            self._metrics.reject("overloaded")
            raise OverloadedError(
                f"{self._running} compressions running and {self.waiting} waiting, the "
                f"most this server takes ({self.max_inflight} + {self.max_queue}): retry later",
                retry_after=self.retry_after(),
            )
        expected = self.expected_seconds()
        if budget_s is not None and expected is not None and expected > budget_s:
            self._metrics.reject("queue_too_slow")
            raise OverloadedError(
                f"{self._running} compressions running and {self.waiting} waiting would "
                f"take about {expected:.0f} s, past this request's {budget_s:g} s deadline: "
                "retry later",
                retry_after=self.retry_after(),
            )
        self._tickets += 1
        self._publish()

    def leave(self) -> None:
        """Give a ticket back."""
        self._tickets -= 1
        self._publish()

    @contextlib.asynccontextmanager
    async def ticket(self, budget_s: float | None = None) -> AsyncIterator[None]:
        """``async with admission.ticket():`` holds a ticket for the block."""
        self.enter(budget_s)
        try:
            yield
        finally:
            self.leave()

    async def run(self, work: Callable[[Deadline], T], deadline: Deadline) -> T:
        """Run ``work(deadline)`` in a slot, waiting for one until ``deadline`` at most.

        Returns when the work ends, or raises as soon as ``deadline`` passes or is
        cancelled (the work then stops at its next check; its slot is kept until it does).
        """
        slots = self._semaphore()
        try:
            await asyncio.wait_for(slots.acquire(), timeout=deadline.remaining())
        except asyncio.TimeoutError:
            self._metrics.reject("deadline_in_queue")
            raise DeadlineExceededError(
                f"no compression slot came free within the {deadline.seconds:g} s deadline: "
                "the server is busy, retry later or allow more time"
            ) from None
        self._running += 1
        self._deadlines.add(deadline)
        self._publish()
        started = time.monotonic()
        future = asyncio.get_running_loop().run_in_executor(
            self._executor, self._call, work, deadline
        )

        def finished(done: asyncio.Future[T]) -> None:
            if not done.cancelled():
                done.exception()  # retrieved: an abandoned future must not log a warning
            took = time.monotonic() - started
            self._work_seconds = (
                took if self._finished == 0 else 0.8 * self._work_seconds + 0.2 * took
            )
            self._finished += 1
            self._running -= 1
            self._deadlines.discard(deadline)
            slots.release()
            self._publish()

        future.add_done_callback(finished)
        return await asyncio.shield(future)

    def cancel_all(self) -> None:
        """Stop every running compression at its next check (shutdown after the grace)."""
        self._closed = True
        for deadline in list(self._deadlines):
            deadline.cancel()

    def close(self, wait_s: float) -> bool:
        """Refuse new work, stop running work, and wait ``wait_s`` for the threads to end.

        Returns whether every thread ended in time.
        """
        self.cancel_all()
        self._executor.shutdown(wait=False, cancel_futures=True)
        until = time.monotonic() + wait_s
        while self._executor_busy() and time.monotonic() < until:
            time.sleep(0.05)
        return not self._executor_busy()

    def _executor_busy(self) -> bool:
        with self._active_lock:
            return self._active > 0

    def _call(self, work: Callable[[Deadline], T], deadline: Deadline) -> T:
        with self._active_lock:
            self._active += 1
        try:
            return work(deadline)
        finally:
            with self._active_lock:
                self._active -= 1

    def _semaphore(self) -> asyncio.Semaphore:
        # Made on first use, inside the event loop that serves the requests.
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_inflight)
        return self._slots

    def _publish(self) -> None:
        self._metrics.set_load(self._running, self.waiting)
