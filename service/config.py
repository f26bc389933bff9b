"""What the service takes and from whom: :class:`ServeConfig` and the limits' defaults.

>>> ServeConfig(max_inflight=2).max_queue  # four waiting per slot unless told
8
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from tersify.limits import Limits
from tersify.service.errors import HTTPError
from tersify.validate import non_negative_int, number, positive_int

# Measured with the embedded Gemma 3 270M scorer (perf/memory_inflight.py, README
# "Serving"): the process holds the model once (1.3 GiB resident), and each compression
# in flight adds one batch's activations, the 262k-vocabulary logits of a 512-token window
# and their log-softmax: up to 2.5 GiB, whatever the request's length past one window.
MEMORY_PER_INFLIGHT_BYTES = 2560 * 1024 * 1024
MEMORY_BASE_BYTES = 1536 * 1024 * 1024
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_READ_TIMEOUT_S = 10.0
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def default_max_inflight() -> int:
    """One compression per core, fewer where half the memory would not hold them.

    On 2 cores and 24 GiB: 2 (memory alone would allow 4).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = 0
    by_memory = (memory // 2 - MEMORY_BASE_BYTES) // MEMORY_PER_INFLIGHT_BYTES if memory else 1
    return max(1, min(cores or 1, int(by_memory)))


@dataclass(frozen=True)
class ServeConfig:
    """How much the service takes and from whom.

    ``max_inflight`` compressions run at once and ``max_queue`` more wait; ``timeout_s`` is
    every request's deadline (a request may ask for less with the ``X-Tersify-Timeout``
    header); ``read_timeout_s`` bounds the time to receive a whole body (and each
    request's headers); ``token``, when set, is
    the bearer token every route but ``/healthz`` needs (``/readyz`` and ``/metrics`` too
    when ``protect_probes``); ``allowed_hosts``, when set, are the only ``Host`` names
    answered (a loopback bind sets them against DNS rebinding).
    """

    max_inflight: int = field(default_factory=default_max_inflight)
    max_queue: int = -1  # -1: four waiting per slot
    timeout_s: float = DEFAULT_TIMEOUT_S
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S
    limits: Limits = field(default_factory=Limits)
    token: str | None = field(default=None, repr=False)
    allowed_hosts: frozenset[str] | None = None
    protect_probes: bool = False

    def __post_init__(self) -> None:
        positive_int("max_inflight", self.max_inflight)
        if self.max_queue == -1:
            object.__setattr__(self, "max_queue", 4 * self.max_inflight)
        non_negative_int("max_queue", self.max_queue)
        for name in ("timeout_s", "read_timeout_s"):
            if not number(name, getattr(self, name)) > 0:
                raise HTTPError(f"{name}={getattr(self, name)} must be more than 0 seconds")
        if self.token is not None and not self.token.strip():
            raise HTTPError("the token is empty: put a secret in the token file")
