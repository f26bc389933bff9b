"""How much one request may ask for, and until when: the serving contract's core half.

Every front (Python API, CLI, HTTP service, Triton model) checks the same ``Limits`` and
stops work through the same ``Deadline``; the fronts add what only they can see (body
bytes before reading, admission, a closed connection).

>>> Limits().max_contexts
1024
>>> Deadline(None).remaining() is None
True
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from tersify.errors import (
    BadRequestError,
    CancelledError,
    DeadlineExceededError,
    LimitExceededError,
)
from tersify.validate import number, positive_int

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_CONTEXTS = 1024
# About four minutes of the embedded Gemma scorer on two CPU cores, half a second on a GPU.
DEFAULT_MAX_SCORER_TOKENS = 65_536


@dataclass(frozen=True)
class Limits:
    """The largest request tersify takes; each limit is checked before the work it bounds.

    ``max_body_bytes``: the request's JSON size (HTTP: from ``Content-Length``, then while
    reading); ``max_contexts``: how many contexts (or segments, or JSON strings);
    ``max_scorer_tokens``: the scorer tokens the request's texts make, question included.
    """

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_contexts: int = DEFAULT_MAX_CONTEXTS
    max_scorer_tokens: int = DEFAULT_MAX_SCORER_TOKENS

    def __post_init__(self) -> None:
        positive_int("max_body_bytes", self.max_body_bytes)
        positive_int("max_contexts", self.max_contexts)
        positive_int("max_scorer_tokens", self.max_scorer_tokens)

    def check_body(self, size: int) -> None:
        """Refuse a body of ``size`` bytes above ``max_body_bytes``."""
        if size > self.max_body_bytes:
            raise LimitExceededError(
                f"the request is {size} bytes, over the limit of {self.max_body_bytes} bytes: "
                "send less text or raise max_body_bytes"
            )

    def check_contexts(self, count: int) -> None:
        """Refuse more than ``max_contexts`` texts."""
        if count > self.max_contexts:
            raise LimitExceededError(
                f"the request has {count} contexts, over the limit of {self.max_contexts}: "
                "join short ones or raise max_contexts"
            )

    def check_scorer_tokens(self, count: int) -> None:
        """Refuse texts of more than ``max_scorer_tokens`` scorer tokens."""
        if count > self.max_scorer_tokens:
            raise LimitExceededError(
                f"the request makes {count} scorer tokens, over the limit of "
                f"{self.max_scorer_tokens}: send less text or raise max_scorer_tokens"
            )


class Deadline:
    """Until when a request may run, and whether its caller still waits.

    ``seconds`` from now (``None``: no deadline). ``cancel()`` (from another thread, say
    when the client disconnects) makes the next ``check()`` raise. The compressor checks
    between scorer calls, so work stops within one batch of windows.

    >>> deadline = Deadline(30.0)
    >>> deadline.check()
    >>> deadline.cancel()
    >>> deadline.cancelled
    True
    """

    def __init__(self, seconds: float | None = None) -> None:
        if seconds is not None and not number("timeout", seconds) > 0:
            raise BadRequestError(f"timeout={seconds} must be more than 0 seconds")
        self._seconds = seconds
        self._until = None if seconds is None else time.monotonic() + seconds
        self._cancelled = threading.Event()

    @property
    def seconds(self) -> float | None:
        """The time the request was given, in seconds (``None``: unbounded)."""
        return self._seconds

    @property
    def cancelled(self) -> bool:
        """Whether ``cancel()`` was called."""
        return self._cancelled.is_set()

    def cancel(self) -> None:
        """Stop the work at its next check (thread-safe)."""
        self._cancelled.set()

    def remaining(self) -> float | None:
        """Seconds left (at least 0), or ``None`` when there is no deadline."""
        if self._until is None:
            return None
        return max(0.0, self._until - time.monotonic())

    def check(self) -> None:
        """Raise when the caller went away or the deadline passed."""
        if self._cancelled.is_set():
            raise CancelledError("the request was cancelled: its caller went away")
        remaining = self.remaining()
        if remaining is not None and remaining <= 0:
            raise DeadlineExceededError(
                f"the request did not finish within its {self._seconds:g} s deadline: "
                "ask for less (a smaller context) or allow more time"
            )


_CURRENT: ContextVar[Deadline | None] = ContextVar("tersify_deadline", default=None)


@contextlib.contextmanager
def deadline_scope(deadline: Deadline) -> Iterator[None]:
    """Make ``deadline`` the one :func:`check_deadline` sees in this thread, for a while.

    A scorer that runs a call in several steps (onnxruntime batches, Triton requests)
    checks it between steps, so that one big scorer call stops within one batch; the
    service puts a request's whole work in its deadline's scope, so that long steps
    outside the scorer (the budget search's counts) stop between their steps too.
    """
    token = _CURRENT.set(deadline)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def current_deadline() -> Deadline | None:
    """The deadline of the scorer call running in this thread, if any."""
    return _CURRENT.get()


def check_deadline() -> None:
    """Raise if the work running in this thread must stop (see :func:`deadline_scope`).

    A no-op outside a scope: cheap enough to call between any two long steps.
    """
    deadline = _CURRENT.get()
    if deadline is not None:
        deadline.check()
