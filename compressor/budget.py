"""How many target tokens a compressed prompt may use.

Three ways to say it, as in LLMLingua and its service examples:

- ``rate``: the fraction kept, ``compressed / original`` (LLMLingua >= 0.2);
- ``ratio``: LLMLingua 0.1's meaning, the fraction *removed*
  (``ratio=0.2`` keeps 80 %);
- ``target_token``: the whole compressed prompt's size; it overrides the other two.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tersify.errors import BadRequestError
from tersify.validate import fraction, positive_int

DEFAULT_RATE = 0.5


@dataclass(frozen=True)
class Budget:
    """A compression budget, checked on construction.

    >>> Budget(ratio=0.2).target(3701)
    2961
    >>> Budget(rate=0.25).target(1000)
    250
    """

    rate: float | None = None
    ratio: float | None = None
    target_token: int | None = None

    def __post_init__(self) -> None:
        if self.rate is not None:
            fraction("rate", self.rate, low_open=True, hint=": the fraction kept")
        if self.ratio is not None:
            fraction(
                "ratio",
                self.ratio,
                high_open=True,
                hint=": the fraction removed (ratio=0.2 keeps 80 %); rate is the fraction kept",
            )
        if self.rate is not None and self.ratio is not None and self.target_token is None:
            raise BadRequestError("give rate or ratio, not both (rate = 1 - ratio)")
        if self.target_token is not None:
            positive_int("target_token", self.target_token)

    def target(self, origin_tokens: int) -> int:
        """The budget in target tokens for a prompt of ``origin_tokens`` tokens."""
        if self.target_token is not None:
            return min(self.target_token, origin_tokens)
        fraction = self.rate if self.rate is not None else DEFAULT_RATE
        if self.ratio is not None:
            fraction = 1.0 - self.ratio
        return min(origin_tokens, math.floor(origin_tokens * fraction + 0.5))

