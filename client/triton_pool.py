"""Many Triton instances behind one scorer: ``grpc://h1:p1,h2:p2,h3:p3[/model][?...]``.

Each window goes to the instance with the fewest requests outstanding. An instance that
fails (unreachable, or no answer in time) is taken out and its window is sent again to
another; a prober thread asks the instances that are out whether their scorer is ready
and puts each back when it answers. A compression in flight when an instance dies
finishes on the others; only when every instance stays out for the retry period does a
window fail, with one :class:`ScorerUnavailableError`.

>>> [t.address for t in pool_targets("grpc://a:8001,b:8001/tersify_scorer?timeout=30")]
['a:8001', 'b:8001']
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tersify.bundle import Bundle
from tersify.client.triton import RetryPolicy, TritonScorer, TritonTarget
from tersify.engines.tokenizer import BundleScorerBase
from tersify.errors import BadRequestError, ScorerTimeoutError, ScorerUnavailableError
from tersify.scoring import FloatArray, IntArray

# Errors after which a window is sent to another instance: the instance is gone or stuck.
_FAILOVER = (ScorerUnavailableError, ScorerTimeoutError)


def pool_targets(url: str) -> list[TritonTarget]:
    """One target per ``host:port`` of a comma-separated scorer URL; the rest is shared."""
    parts = urlsplit(url)
    hosts = [h.strip() for h in parts.netloc.split(",")]
    if parts.scheme != "grpc" or not all(hosts):
        raise BadRequestError(
            f"scorer={url!r}: several Triton instances are grpc://HOST:PORT,HOST:PORT[,...]"
        )
    targets = [
        TritonTarget.parse(urlunsplit((parts.scheme, host, parts.path, parts.query, "")))
        for host in hosts
    ]
    if len({t.address for t in targets}) != len(targets):
        raise BadRequestError(f"scorer={url!r}: an instance is listed twice")
    return targets


def is_pool_url(url: str) -> bool:
    """Whether ``url`` lists several Triton instances."""
    return url.startswith("grpc://") and "," in urlsplit(url).netloc


@dataclass
class _Instance:
    scorer: TritonScorer
    address: str
    outstanding: int = 0
    healthy: bool = True
    failures: int = 0


@dataclass(frozen=True)
class PoolPolicy:
    """How long a window may wait for some instance, and how often the ones out are probed."""

    retry_for_s: float = 30.0
    probe_every_s: float = 0.5
    wait_step_s: float = 0.05


class TritonPoolScorer(BundleScorerBase):
    """A scorer over several Triton instances serving the same scorer model."""

    def __init__(
        self,
        targets: Sequence[TritonTarget],
        bundle: Bundle,
        *,
        retry: RetryPolicy | None = None,
        policy: PoolPolicy | None = None,
        max_in_flight: int = 16,
        **options: Any,
    ) -> None:
        if not targets:
            raise BadRequestError("a Triton pool needs at least one instance")
        super().__init__(bundle)
        self._policy = policy or PoolPolicy()
        timeout = targets[0].timeout_s or RetryPolicy().timeout_s
        # Each instance fails fast (no retries of its own): the pool retries elsewhere.
        per_instance = replace(retry or RetryPolicy(timeout_s=timeout), retry_for_s=0.0)
        self._instances = [
            _Instance(TritonScorer(t, bundle, retry=per_instance, **options), t.address)
            for t in targets
        ]
        self._max_in_flight = max_in_flight
        self._lock = threading.Condition()
        self._closed = threading.Event()
        self._prober = threading.Thread(target=self._probe_loop, daemon=True, name="triton-probe")
        self._prober.start()

    @property
    def max_window(self) -> int:
        """The longest window every instance takes."""
        return min(i.scorer.max_window for i in self._instances)

    @property
    def instances(self) -> list[dict[str, Any]]:
        """Each instance's address, health, outstanding requests and failures."""
        with self._lock:
            return [
                {
                    "address": i.address,
                    "healthy": i.healthy,
                    "outstanding": i.outstanding,
                    "failures": i.failures,
                }
                for i in self._instances
            ]

    def logprobs(self, windows: Sequence[IntArray]) -> list[FloatArray]:
        """Per-token log-probs of each window, spread over the healthy instances."""
        if not windows:
            return []
        # Each window's thread sees the caller's deadline (a context of its own each).
        contexts = [contextvars.copy_context() for _ in windows]
        with ThreadPoolExecutor(max_workers=min(self._max_in_flight, len(windows))) as pool:
            return list(pool.map(lambda c, w: c.run(self._one, w), contexts, windows))

    def is_ready(self) -> bool:
        """Whether at least one instance is ready."""
        return any(i.scorer.is_ready() for i in self._instances)

    def close(self) -> None:
        """Stop probing and close every channel."""
        self._closed.set()
        self._prober.join(timeout=5)
        for instance in self._instances:
            instance.scorer.close()

    def _one(self, window: IntArray) -> FloatArray:
        deadline = time.monotonic() + self._policy.retry_for_s
        last: Exception | None = None
        while True:
            instance = self._acquire(deadline)
            if instance is None:
                raise ScorerUnavailableError(
                    f"no Triton instance of {', '.join(i.address for i in self._instances)} "
                    f"answered for {self._policy.retry_for_s:g}s"
                    + (f" (last: {last})" if last else "")
                    + "; are they running? `tersify triton status`"
                ) from last
            try:
                result = instance.scorer.logprobs([window])[0]
            except _FAILOVER as exc:
                last = exc
                self._release(instance, failed=True)
                continue
            except BaseException:
                self._release(instance, failed=False)
                raise
            self._release(instance, failed=False)
            return result

    def _acquire(self, deadline: float) -> _Instance | None:
        """The healthy instance with the fewest outstanding requests; wait for one if none."""
        with self._lock:
            while True:
                healthy = [i for i in self._instances if i.healthy]
                if healthy:
                    chosen = min(healthy, key=lambda i: i.outstanding)
                    chosen.outstanding += 1
                    return chosen
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._lock.wait(timeout=min(left, self._policy.probe_every_s))

    def _release(self, instance: _Instance, *, failed: bool) -> None:
        with self._lock:
            instance.outstanding -= 1
            if failed:
                instance.failures += 1
                instance.healthy = False
            self._lock.notify_all()

    def _probe_loop(self) -> None:
        while not self._closed.wait(self._policy.probe_every_s):
            with self._lock:
                out = [i for i in self._instances if not i.healthy]
            for instance in out:
                if instance.scorer.is_ready():
                    with self._lock:
                        instance.healthy = True
                        self._lock.notify_all()
