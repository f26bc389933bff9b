"""The memory `tersify serve` plans for, from the scorer it loaded and the machine it runs on.

A service holds its scorer (and the ranker) once: the *base*. Each compression in flight
adds its scorer's activations and its request's arrays: *per compression*, measured for
each exported variant by ``perf/memory_inflight.py`` (the highest of seed-size and
question-aware requests at 1, 2 and 4 in flight, the base with the ranker loaded) and
kept in :data:`MEASURED`. A scorer not in that table is measured when the service starts
(:func:`measure_at_start`: one seed-size compression, its growth of the peak resident
memory). Requests add what does not depend on the scorer:

- while a request's text is tokenized, up to :data:`TOKENIZE_BYTES_PER_BODY_BYTE` times
  its body (the tokenizer's encoding and its copies): 8 MB of rare CJK characters, 8
  million byte tokens, held 1.8 GB before the scorer-token limit refused it;
- each admitted request keeps its body and its parsed text, and the bodies still being
  read may buffer twice that: :data:`HOLD_BYTES_PER_BODY_BYTE` per ticket and body byte;
- the score cache, :data:`tersify.cache.DEFAULT_CACHE_BYTES`.

:class:`MemoryPlan` turns these into the default ``--max-inflight`` (one per core, fewer
where :data:`MEMORY_SHARE` of the machine's memory would not hold them) and the bound:
``base + cache + tickets x hold + (max_inflight - 1) x per + cost(max body)``, where a
compression's *cost* is ``per + tokenize x its body``. The admission reserves each
compression's cost and runs no more than the work part of that bound at once (one
always runs), so a few huge bodies wait for each other rather than add up.

>>> plan = MemoryPlan(ScorerMemory(2048 * MiB, 256 * MiB, "example"), Machine(64, 24 * GiB))
>>> plan.default_max_inflight()
19
>>> round(plan.bound_bytes(2, 8) / GiB, 1)
4.9
"""

from __future__ import annotations

import math
import os
import random
import resource
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tersify.cache import DEFAULT_CACHE_BYTES
from tersify.errors import ScorerUnavailableError
from tersify.limits import DEFAULT_MAX_BODY_BYTES
from tersify.validate import non_negative_int, positive_int

MiB = 1024 * 1024
GiB = 1024 * MiB
# The share of the machine's memory (or its cgroup's limit) the service plans to use at most.
MEMORY_SHARE = 0.5
# Measured with perf/memory_inflight.py on 2 AMD EPYC cores (AVX2), `tersify serve` with
# the ranker loaded: (model, variant) -> (base MiB, MiB per compression in flight), each
# the highest seen, rounded up to 16 MiB (perf/results/memory_inflight.md).
MEASURED: Mapping[tuple[str, str], tuple[int, int]] = {
    ("gemma-3-270m", "openvino-shortlist"): (2128, 240),
    ("gemma-3-270m", "shortlist"): (800, 256),
    ("gemma-3-270m", "fp32"): (1424, 2192),
    ("smollm2-135m", "fp32"): (832, 896),
    # The service in front of Triton: the tokenizers and the encoding, no model.
    ("gemma-3-270m", "triton"): (416, 16),
}
# Peak growth while a body's text is tokenized, per body byte: 8 MB of rare CJK (8 million
# byte tokens) 233, 8 MB of English prose (1.9 million tokens) 113.
TOKENIZE_BYTES_PER_BODY_BYTE = 256
# Per admitted request: its body and its parsed text (2), and the read buffers' own cap
# of twice the body limit per ticket (Guard's bodies.max_reading_bytes).
HOLD_BYTES_PER_BODY_BYTE = 4
QUEUE_PER_SLOT = 4


@dataclass(frozen=True)
class ScorerMemory:
    """What one scorer needs in the service: its base, and what a compression adds."""

    base_bytes: int
    per_inflight_bytes: int
    source: str

    def __post_init__(self) -> None:
        non_negative_int("base_bytes", self.base_bytes)
        positive_int("per_inflight_bytes", self.per_inflight_bytes)


def measured(model: str, variant: str) -> ScorerMemory | None:
    """The figures :data:`MEASURED` holds for ``model`` run as ``variant``, if any.

    >>> measured("gemma-3-270m", "openvino-shortlist").per_inflight_bytes // MiB
    240
    >>> measured("my-model", "fp32") is None
    True
    """
    found = MEASURED.get((model, variant))
    if found is None:
        return None
    base, per = found
    return ScorerMemory(base * MiB, per * MiB, "measured by perf/memory_inflight.py")


@dataclass(frozen=True)
class Machine:
    """The cores and the memory this process may use."""

    cores: int
    memory_bytes: int

    def __post_init__(self) -> None:
        positive_int("cores", self.cores)
        positive_int("memory_bytes", self.memory_bytes)

    @classmethod
    def this(cls) -> Machine:
        """The machine here: the cores this process may run on, its memory or cgroup limit."""
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        cores = min(cores or os.cpu_count() or 1, _cgroup_cores() or 1 << 16)
        try:
            memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            memory = 0
        limit = _cgroup_memory()
        if limit and (not memory or limit < memory):
            memory = limit
        return cls(max(1, cores), max(1, memory or 4 * GiB))


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""


def _cgroup_memory() -> int:
    """The cgroup's memory limit (v2 ``memory.max``, v1 ``limit_in_bytes``), 0 if none."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        value = _read(path)
        if value.isdigit() and int(value) < 1 << 60:
            return int(value)
    return 0


def _cgroup_cores() -> int:
    """The cgroup's CPU quota in whole cores (v2 ``cpu.max``), 0 if none."""
    quota, _, period = _read("/sys/fs/cgroup/cpu.max").partition(" ")
    if quota.isdigit() and period.isdigit() and int(period) > 0:
        return max(1, math.ceil(int(quota) / int(period)))
    return 0


@dataclass(frozen=True)
class MemoryPlan:
    """A scorer's figures on a machine, with a body limit: the defaults and the bound."""

    scorer: ScorerMemory
    machine: Machine
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    cache_bytes: int = DEFAULT_CACHE_BYTES

    @property
    def budget_bytes(self) -> int:
        """The memory the service may plan for: :data:`MEMORY_SHARE` of the machine's."""
        return int(self.machine.memory_bytes * MEMORY_SHARE)

    def cost(self, body_bytes: int) -> int:
        """What one compression of a ``body_bytes`` request may add while in flight."""
        return self.scorer.per_inflight_bytes + TOKENIZE_BYTES_PER_BODY_BYTE * body_bytes

    def work_bytes(self, max_inflight: int) -> int:
        """What the compressions in flight may hold together (the admission reserves it).

        ``max_inflight`` seed-size compressions, or one of the largest body with the rest.
        """
        return (max_inflight - 1) * self.scorer.per_inflight_bytes + self.cost(self.max_body_bytes)

    def bound_bytes(self, max_inflight: int, max_queue: int) -> int:
        """The most the service's resident memory may reach with these limits."""
        tickets = max_inflight + max_queue
        return (
            self.scorer.base_bytes
            + self.cache_bytes
            + tickets * HOLD_BYTES_PER_BODY_BYTE * self.max_body_bytes
            + self.work_bytes(max_inflight)
        )

    def default_max_inflight(self) -> int:
        """One compression per core, fewer where the bound would pass the budget.

        The bound with K in flight and four waiting per slot is
        ``fixed - per + K x (per + (1 + 4) x hold)``: the largest K within the budget.
        """
        per = self.scorer.per_inflight_bytes
        fixed = self.scorer.base_bytes + self.cache_bytes + self.cost(self.max_body_bytes)
        per_slot = per + (1 + QUEUE_PER_SLOT) * HOLD_BYTES_PER_BODY_BYTE * self.max_body_bytes
        by_memory = (self.budget_bytes - fixed + per) // per_slot
        return int(max(1, min(self.machine.cores, by_memory)))

    def describe(self, max_inflight: int, max_queue: int) -> str:
        """One line for the start-up log: the figures, the machine, the limits, the bound."""
        return (
            f"{self.scorer.base_bytes / MiB:.0f} MiB base + "
            f"{self.scorer.per_inflight_bytes / MiB:.0f} MiB per compression in flight "
            f"({self.scorer.source}); {self.machine.cores} cores, "
            f"{self.machine.memory_bytes / GiB:.1f} GiB: --max-inflight {max_inflight}, "
            f"--max-queue {max_queue}, memory bound "
            f"{self.bound_bytes(max_inflight, max_queue) / GiB:.1f} GiB"
        )

    def as_dict(self, max_inflight: int, max_queue: int) -> dict[str, Any]:
        """The plan's figures in bytes, for ``/metrics``."""
        return {
            "base_bytes": self.scorer.base_bytes,
            "per_inflight_bytes": self.scorer.per_inflight_bytes,
            "work_bytes": self.work_bytes(max_inflight),
            "bound_bytes": self.bound_bytes(max_inflight, max_queue),
            "budget_bytes": self.budget_bytes,
        }


# Words for the start-up measurement's text: its memory depends on its size in tokens.
_WORDS = (
    "the treaty was signed in spring after long talks between delegations who met in "
    "geneva and vienna while rain fell on the old city 1992 numbers rose sharply"
).split()


def _peak_bytes() -> int:
    """The peak resident memory of this process so far (VmHWM, else getrusage)."""
    for line in _read("/proc/self/status").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _rss_bytes() -> int:
    for line in _read("/proc/self/status").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return _peak_bytes()


def measure_at_start(compressor: Any, *, words: int = 5_500) -> ScorerMemory:
    """Measure a scorer :data:`MEASURED` does not know, in this process, before serving.

    One seed-size compression (``words`` common words, about as many scorer tokens as
    the example request makes for SmolLM2, enough to fill a scorer batch) and one tiny
    question-aware one (which loads the ranker): the growth of the peak resident memory
    over what the process held before is counted as one compression in flight (at 1 in
    flight the measured variants' figure is their highest), and what it holds after as
    the base. It also warms the scorer up.
    """
    rng = random.Random(0)  # noqa: S311 - filler text, not a secret
    text = " ".join(rng.choice(_WORDS) for _ in range(words))
    try:
        compressor.compress(
            ["The treaty was signed in 1992.", "Rain fell all week."],
            question="When was the treaty signed?",
            rate=0.5,
        )
    except ScorerUnavailableError:
        pass  # no ranker exported: question-aware requests will say so; the base holds none
    before = _rss_bytes()
    _reset_peak()
    compressor.compress([text], rate=0.5)
    grown = max(0, _peak_bytes() - before)
    return ScorerMemory(
        _rss_bytes(),
        max(MiB, grown),
        "measured at start: one seed-size compression",
    )


def _reset_peak() -> None:
    """Set VmHWM back to VmRSS (Linux); elsewhere the peak stays, which only overcounts."""
    try:
        Path("/proc/self/clear_refs").write_text("5", encoding="ascii")
    except OSError:
        pass
