"""Admission control: a fixed number of compressions in flight and a bounded wait queue.

A request takes a *ticket* once its body is read; at most ``max_inflight + max_queue``
tickets exist, and one more is refused at once (:class:`~tersify.errors.OverloadedError`,
HTTP 429 with ``Retry-After``). A ticket then waits, until its deadline at most, for one
of ``max_inflight`` *slots*, and runs its work in the admission's own thread pool, which
has exactly that many threads. A slot is given back when the work's thread ends, not
when the answer is sent: work that outlives its request (a deadline, a client that left)
still counts until it stops, so the cores and memory in use never exceed the bound.

A request is refused for its deadline only when no slot is free and the queue ahead of
it alone (not its own work) would outlast the deadline by the recent compressions'
times: an idle server always admits, so a slow past can never lock it out.

With a memory plan (:class:`~tersify.service.memory.MemoryPlan`), a compression that has
its slot also reserves its *cost* in bytes (the scorer's figure per compression, plus
what tokenizing its body may take) before it runs, and the reservations in flight stay
within the plan's work bytes: seed-size compressions fill every slot, while the largest
bodies wait for each other, first come first served. Nothing running, one always runs.

Runs on one event loop; only the work runs in threads.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from tersify.errors import DeadlineExceededError, OverloadedError
from tersify.limits import Deadline, deadline_scope
from tersify.service.memory import MemoryPlan
from tersify.service.metrics import Metrics
from tersify.validate import non_negative_int, positive_int

T = TypeVar("T")


class Admission:
    """Bounded in-flight work and a bounded queue in front of it."""

    def __init__(
        self,
        max_inflight: int,
        max_queue: int,
        metrics: Metrics | None = None,
        memory: MemoryPlan | None = None,
    ) -> None:
        self.max_inflight = positive_int("max_inflight", max_inflight)
        self.max_queue = non_negative_int("max_queue", max_queue)
        self._metrics = metrics or Metrics()
        self._memory = memory
        self.work_bytes = None if memory is None else memory.work_bytes(max_inflight)
        self._reserved = 0  # bytes reserved by the compressions in flight
        self._memory_waiters: collections.deque[tuple[int, asyncio.Future[None]]] = (
            collections.deque()
        )
        self._tickets = 0
        self._waiting = 0  # tickets without a slot yet
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
    def reserved_bytes(self) -> int:
        """The memory the compressions in flight have reserved (0 without a plan)."""
        return self._reserved

    @property
    def waiting(self) -> int:
        """Admitted requests that hold a ticket but no slot yet (the queue's depth)."""
        return self._waiting

    def retry_after(self) -> float:
        """A fair wait before trying again: the queue's length in compressions."""
        rounds = (self.waiting + 1) / self.max_inflight
        return min(60.0, max(1.0, self._work_seconds * rounds))

    def expected_wait(self) -> float | None:
        """How long a request admitted now would wait for a slot, from recent work times.

        0 when a slot is free for it; ``None`` until a few compressions have finished
        (nothing to go by yet).
        """
        ahead = self._running + self._waiting - self.max_inflight
        if ahead < 0:
            return 0.0
        if self._finished < 3:
            return None
        return (ahead // self.max_inflight + 1) * self._work_seconds

    def enter(self, budget_s: float | None = None) -> Ticket:
        """Take a ticket or refuse at once; pair with :meth:`leave` (use :meth:`ticket`).

        Refused when the queue is full, and when no slot is free and the wait for one
        alone would pass ``budget_s`` (a 429 now rather than a 504 later).
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
        wait = self.expected_wait()
        if budget_s is not None and wait is not None and wait > budget_s:
            self._metrics.reject("queue_too_slow")
            raise OverloadedError(
                f"{self._running} compressions running and {self.waiting} waiting: a slot "
                f"would come free in about {wait:.1f} s, past this request's {budget_s:g} s "
                "deadline: retry later",
                retry_after=self.retry_after(),
            )
        self._tickets += 1
        self._waiting += 1
        self._publish()
        return Ticket()

    def leave(self, ticket: Ticket) -> None:
        """Give a ticket back."""
        self._tickets -= 1
        if not ticket.started:
            self._waiting -= 1
        ticket.started = True  # counted once
        self._publish()

    @contextlib.asynccontextmanager
    async def ticket(self, budget_s: float | None = None) -> AsyncIterator[Ticket]:
        """``async with admission.ticket() as ticket:`` holds a ticket for the block."""
        held = self.enter(budget_s)
        try:
            yield held
        finally:
            self.leave(held)

    async def run(
        self,
        work: Callable[[Deadline], T],
        deadline: Deadline,
        ticket: Ticket | None = None,
        body_bytes: int = 0,
    ) -> T:
        """Run ``work(deadline)`` in a slot, waiting for one until ``deadline`` at most.

        Returns when the work ends, or raises as soon as ``deadline`` passes or is
        cancelled (the work then stops at its next check; its slot is kept until it does).
        ``ticket`` (the request's) stops counting as waiting once the work has its slot.
        With a memory plan the work also waits for its cost (of a ``body_bytes`` request)
        to fit in the work bytes.
        """
        deadline.check()  # a deadline already passed is a 504, whatever the queue
        slots = self._semaphore()
        try:
            if slots.locked():
                await asyncio.wait_for(slots.acquire(), timeout=deadline.remaining())
            else:
                await slots.acquire()  # free: taken at once, even with no time left
        except asyncio.TimeoutError:
            self._metrics.reject("deadline_in_queue")
            raise DeadlineExceededError(
                f"no compression slot came free within the {deadline.seconds:g} s deadline: "
                "the server is busy, retry later or allow more time"
            ) from None
        try:
            cost = await self._reserve(body_bytes, deadline)
        except BaseException:
            slots.release()
            raise
        self._running += 1
        if ticket is not None and not ticket.started:
            ticket.started = True
            self._waiting -= 1
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
            self._release(cost)
            slots.release()
            self._publish()

        future.add_done_callback(finished)
        return await asyncio.shield(future)

    async def _reserve(self, body_bytes: int, deadline: Deadline) -> int:
        """Reserve the work's memory, waiting in turn until it fits; the bytes reserved."""
        if self._memory is None or self.work_bytes is None:
            return 0
        cost = self._memory.cost(body_bytes)
        if not self._memory_waiters and self._fits(cost):
            self._reserved += cost
            return cost
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._memory_waiters.append((cost, waiter))
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout=deadline.remaining())
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self._release(cost)  # granted as it gave up: hand it on
            else:
                waiter.cancel()
                self._grant()  # it may have been the head of the line
            if isinstance(exc, asyncio.TimeoutError):
                self._metrics.reject("deadline_in_queue")
                raise DeadlineExceededError(
                    f"the memory for this compression did not come free within the "
                    f"{deadline.seconds:g} s deadline: the server is busy with large "
                    "requests, retry later or allow more time"
                ) from None
            raise
        return cost

    def _fits(self, cost: int) -> bool:
        return self._reserved == 0 or self._reserved + cost <= (self.work_bytes or 0)

    def _grant(self) -> None:
        """Give memory to the waiters in order, while the first of them fits."""
        while self._memory_waiters:
            cost, waiter = self._memory_waiters[0]
            if waiter.done():  # gave up
                self._memory_waiters.popleft()
                continue
            if not self._fits(cost):
                return
            self._memory_waiters.popleft()
            self._reserved += cost
            waiter.set_result(None)

    def _release(self, cost: int) -> None:
        if cost:
            self._reserved -= cost
            self._grant()

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
            # In scope for the whole work, not only its scorer calls: long steps between
            # them (the budget search's counts) check it too.
            with deadline_scope(deadline):
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
        self._metrics.set_load(self._running, self.waiting, self._reserved)


class Ticket:
    """One admitted request's place: ``started`` once its work has a slot."""

    __slots__ = ("started",)

    def __init__(self) -> None:
        self.started = False
