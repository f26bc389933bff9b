"""Timing: warm-up and repeats, median and tail percentiles, a stopwatch (standard library only).

>>> runs = measure(lambda: sum(range(1000)), repeat=5, warmup=1)
>>> len(runs.seconds), runs.last
(5, 499500)
>>> percentile([4.0, 1.0, 3.0, 2.0], 0.99)
4.0
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0 to 1) of ``values``, nearest rank: a value that was measured.

    >>> percentile([10.0, 20.0, 30.0], 0.5)
    20.0
    """
    if not values:
        raise ValueError("percentile of no values: measure at least once (repeat >= 1)")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q={q} is not between 0 and 1 (0.99 for p99)")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Stopwatch:
    """Wall and CPU (this process's) seconds of a block.

    >>> with Stopwatch() as watch:
    ...     _ = sum(range(1000))
    >>> watch.seconds >= 0.0 and watch.cpu_seconds >= 0.0
    True
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        self._wall = time.perf_counter()
        self._cpu = time.process_time()

    def __enter__(self) -> Stopwatch:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Stopwatch:
        """Start (again) from now."""
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def stop(self) -> float:
        """Record the wall and CPU seconds since :meth:`start`; return the wall seconds."""
        self.seconds = time.perf_counter() - self._wall
        self.cpu_seconds = time.process_time() - self._cpu
        return self.seconds

    @property
    def elapsed(self) -> float:
        """Wall seconds since :meth:`start`, the watch still running."""
        return time.perf_counter() - self._wall


@dataclass(frozen=True)
class Runs(Generic[T]):
    """The measured runs of one piece of work: seconds, CPU seconds and what each returned."""

    seconds: tuple[float, ...]
    cpu_seconds: tuple[float, ...]
    results: tuple[T, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu_seconds)

    @property
    def mean(self) -> float:
        return statistics.mean(self.seconds)

    @property
    def p95(self) -> float:
        return percentile(self.seconds, 0.95)

    @property
    def p99(self) -> float:
        return percentile(self.seconds, 0.99)

    @property
    def last(self) -> T:
        return self.results[-1]


def _no_sync() -> None:
    return None


def measure(
    work: Callable[[], T],
    *,
    repeat: int,
    warmup: int = 1,
    sync: Callable[[], object] = _no_sync,
) -> Runs[T]:
    """Run ``work`` ``warmup`` times unmeasured, then ``repeat`` times measured.

    ``sync`` runs before each start and before each stop (a device's
    ``torch.cuda.synchronize``), so that a run's time holds all of its queued work.
    """
    if repeat < 1:
        raise ValueError(f"repeat={repeat}: measure at least once")
    for _ in range(warmup):
        sync()
        work()
        sync()
    seconds, cpu, results = [], [], []
    for _ in range(repeat):
        sync()
        watch = Stopwatch().start()
        result = work()
        sync()
        watch.stop()
        seconds.append(watch.seconds)
        cpu.append(watch.cpu_seconds)
        results.append(result)
    return Runs(tuple(seconds), tuple(cpu), tuple(results))


def rounds(
    works: Mapping[str, Callable[[], T]], *, repeat: int, warmup: int = 1
) -> dict[str, Runs[T]]:
    """Each of ``works`` once a round, in turn, ``warmup`` rounds unmeasured then ``repeat``.

    Interleaved, so that a machine that slows down part-way slows every one alike.
    """
    measured: dict[str, list[tuple[float, float, T]]] = {name: [] for name in works}
    for round_ in range(warmup + repeat):
        for name, work in works.items():
            watch = Stopwatch().start()
            result = work()
            watch.stop()
            if round_ >= warmup:
                measured[name].append((watch.seconds, watch.cpu_seconds, result))
    return {
        name: Runs(
            tuple(s for s, _, _ in runs), tuple(c for _, c, _ in runs), tuple(r for _, _, r in runs)
        )
        for name, runs in measured.items()
    }
