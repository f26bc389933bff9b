from __future__ import annotations

import pytest

from tersify import BadRequestError, Budget


def test_rate_is_fraction_kept() -> None:
    assert Budget(rate=0.25).target(1000) == 250


def test_ratio_is_fraction_removed_like_the_seed() -> None:
    assert Budget(ratio=0.2).target(3701) == 2961


def test_target_token_overrides_rate_and_ratio() -> None:
    assert Budget(rate=0.1, target_token=500).target(1000) == 500
    assert Budget(ratio=0.9, target_token=500).target(1000) == 500


def test_target_never_exceeds_origin() -> None:
    assert Budget(target_token=5000).target(1000) == 1000
    assert Budget(rate=1.0).target(1000) == 1000


def test_default_keeps_half() -> None:
    assert Budget().target(1000) == 500


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rate": 0.0},
        {"rate": 1.5},
        {"rate": -0.1},
        {"ratio": 1.0},
        {"ratio": -0.5},
        {"rate": "0.5"},
        {"rate": True},
        {"rate": float("nan")},
        {"target_token": 0},
        {"target_token": 2.5},
        {"target_token": "100"},
        {"rate": 0.5, "ratio": 0.5},
    ],
)
def test_invalid_budgets_name_the_field(kwargs: dict) -> None:
    with pytest.raises(BadRequestError) as info:
        Budget(**kwargs)
    assert any(name in str(info.value) for name in kwargs)
