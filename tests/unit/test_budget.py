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


@pytest.mark.parametrize(
    ("budget", "origin", "want"),
    [
        (Budget(rate=0.5), 3, 2),  # 1.5 rounds half up
        (Budget(rate=0.25), 3, 1),  # 0.75 rounds to 1
        (Budget(rate=0.1), 4, 0),  # 0.4 rounds down
        (Budget(ratio=0.2), 5, 4),
        (Budget(ratio=0.0), 100, 100),
        (Budget(rate=1.0), 7, 7),
        (Budget(target_token=1), 10, 1),
        (Budget(target_token=10), 10, 10),
        (Budget(rate=0.5, ratio=0.5, target_token=3), 10, 3),  # target_token settles it
        (Budget(), 0, 0),
    ],
)
def test_targets_round_half_up_and_never_exceed_the_origin(
    budget: Budget, origin: int, want: int
) -> None:
    assert budget.target(origin) == want


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate": 0.0}, r"rate=0.0 must be in \(0, 1\]: the fraction kept"),
        ({"rate": 1.01}, r"rate=1.01 must be in \(0, 1\]"),
        ({"ratio": 1.0}, r"ratio=1.0 must be in \[0, 1\): the fraction removed"),
        ({"ratio": -0.01}, r"ratio=-0.01 must be in \[0, 1\)"),
        ({"rate": 0.5, "ratio": 0.5}, r"^give rate or ratio, not both \(rate = 1 - ratio\)$"),
        ({"target_token": 0}, "target_token=0 must be a positive integer"),
        ({"target_token": True}, "target_token=True must be a positive integer"),
    ],
)
def test_refusals_say_what_the_field_means(kwargs: dict, message: str) -> None:
    with pytest.raises(BadRequestError, match=message):
        Budget(**kwargs)


def test_the_edges_of_each_field_are_accepted() -> None:
    assert Budget(rate=1.0).rate == 1.0
    assert Budget(ratio=0.0).target(10) == 10
    assert Budget(rate=1e-9).target(10) == 0
    assert Budget(target_token=1).target_token == 1
