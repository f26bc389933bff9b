"""What the service takes and from whom: :class:`ServeConfig` and the limits' defaults.

The admission's defaults come from the memory plan (:mod:`tersify.service.memory`): the
scorer loaded, the machine's cores and memory, the body limit.

>>> ServeConfig(max_inflight=2).max_queue  # four waiting per slot unless told
8
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from tersify.limits import Limits
from tersify.service.errors import HTTPError
from tersify.service.memory import MEASURED, QUEUE_PER_SLOT, Machine, MemoryPlan, MiB, ScorerMemory
from tersify.validate import non_negative_int, number, positive_int

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_READ_TIMEOUT_S = 10.0
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def cautious_memory() -> ScorerMemory:
    """Figures for a service told nothing of its scorer: the largest measured ones."""
    base, per = (max(values) for values in zip(*MEASURED.values(), strict=True))
    return ScorerMemory(base * MiB, per * MiB, "the largest measured figures (scorer unknown)")


@dataclass(frozen=True)
class ServeConfig:
    """How much the service takes and from whom.

    ``max_inflight`` compressions run at once and ``max_queue`` more wait: by default as
    many as ``memory`` (the plan from the scorer loaded and the machine) allows, and four
    waiting per slot; without a plan, the largest measured scorer's figures stand in for
    it (:func:`cautious_memory`). ``timeout_s`` is
    every request's deadline (a request may ask for less with the ``X-Tersify-Timeout``
    header); ``read_timeout_s`` bounds the time to receive a whole body (and each
    request's headers); ``token``, when set, is
    the bearer token every route but ``/healthz`` needs (``/readyz`` and ``/metrics`` too
    when ``protect_probes``); ``allowed_hosts``, when set, are the only ``Host`` names
    answered (a loopback bind sets them against DNS rebinding).
    """

    max_inflight: int = -1  # -1: from the memory plan
    max_queue: int = -1  # -1: four waiting per slot
    timeout_s: float = DEFAULT_TIMEOUT_S
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S
    limits: Limits = field(default_factory=Limits)
    token: str | None = field(default=None, repr=False)
    allowed_hosts: frozenset[str] | None = None
    protect_probes: bool = False
    memory: MemoryPlan | None = None

    @property
    def plan(self) -> MemoryPlan:
        """The memory plan (set on construction)."""
        if self.memory is None:  # pragma: no cover - __post_init__ always sets it
            raise HTTPError("ServeConfig has no memory plan")
        return self.memory

    @property
    def bound_bytes(self) -> int:
        """The most the service's resident memory may reach with these limits."""
        return self.plan.bound_bytes(self.max_inflight, self.max_queue)

    def __post_init__(self) -> None:
        plan = self.memory or MemoryPlan(cautious_memory(), Machine.this())
        # The plan's body limit is the service's own.
        plan = replace(plan, max_body_bytes=self.limits.max_body_bytes)
        object.__setattr__(self, "memory", plan)
        if self.max_inflight == -1:
            object.__setattr__(self, "max_inflight", plan.default_max_inflight())
        positive_int("max_inflight", self.max_inflight)
        if self.max_queue == -1:
            object.__setattr__(self, "max_queue", QUEUE_PER_SLOT * self.max_inflight)
        non_negative_int("max_queue", self.max_queue)
        for name in ("timeout_s", "read_timeout_s"):
            if not number(name, getattr(self, name)) > 0:
                raise HTTPError(f"{name}={getattr(self, name)} must be more than 0 seconds")
        if self.token is not None and not self.token.strip():
            raise HTTPError("the token is empty: put a secret in the token file")
