"""A process's memory, read from /proc: resident now (VmRSS), its high-water mark (VmHWM).

Standard library only. ``MiB`` here is KiB / 1024 of what the kernel reports.

>>> import os
>>> hwm_mib(os.getpid()) >= rss_mib(os.getpid()) > 0
True
"""

from __future__ import annotations

import resource
import threading
import time
from collections.abc import Callable
from pathlib import Path


def status_kib(pid: int, field: str) -> int:
    """``field`` (``VmRSS``, ``VmHWM``, ...) of /proc/PID/status, in KiB.

    Raises ``OSError`` when there is no such process, ``KeyError`` when no such field.
    """
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(f"no {field} in /proc/{pid}/status")


def rss_mib(*pids: int) -> float:
    """Resident memory of ``pids`` together, now; a process that is gone counts 0."""
    total = 0
    for pid in pids:
        try:
            total += status_kib(pid, "VmRSS")
        except (OSError, KeyError):  # gone, or a zombie (no memory left)
            pass
    return total / 1024


def hwm_mib(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM)."""
    return status_kib(pid, "VmHWM") / 1024


def peak_rss_mb() -> float:
    """This process's peak resident memory (``getrusage``), as the tables' "peak RSS (MB)"."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (a server's workers, Triton's backend stubs)."""
    parent_of = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text(encoding="ascii", errors="replace")
        except OSError:  # gone meanwhile
            continue
        # The command (field 2) may hold spaces and parentheses: the parent follows its ')'.
        parent_of[int(stat.parent.name)] = int(fields[fields.rfind(")") + 2 :].split()[1])
    tree = [pid]
    for member in tree:  # grows while it is walked: children, then theirs
        tree += sorted(child for child, parent in parent_of.items() if parent == member)
    return tree


def tree_rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants together, now."""
    return rss_mib(*descendants(pid))


class Sampler:
    """Samples memory in a thread every ``interval_s`` while a block runs.

    ``measure`` is what is read (default: the resident memory of ``pids``).

    >>> import os
    >>> with Sampler(os.getpid(), interval_s=0.01) as sampler:
    ...     time.sleep(0.05)
    >>> sampler.peak_mib > 0 and len(sampler.samples) >= 1
    True
    """

    def __init__(
        self,
        *pids: int,
        interval_s: float = 0.5,
        measure: Callable[[], float] | None = None,
    ) -> None:
        self.samples: list[tuple[float, float]] = []  # (time.monotonic(), MiB)
        self._measure = measure or (lambda: rss_mib(*pids))
        self._interval = interval_s
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self.samples.append((time.monotonic(), self._measure()))

    def _run(self) -> None:
        while not self._done.is_set():
            self.samples.append((time.monotonic(), self._measure()))
            self._done.wait(self._interval)

    @property
    def peak_mib(self) -> float:
        return max((mib for _, mib in self.samples), default=0.0)
