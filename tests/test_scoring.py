"""The score ladder, lights and roll-up, with every expected number worked out by hand."""

import pytest

from kpi_core.scoring import (
    AMBER,
    GREEN,
    GREY,
    RED,
    Ladder,
    Levels,
    achievement,
    score,
    status,
)

REVENUE = Levels(baseline=50_000_000, target=60_000_000, challenge=70_000_000)


@pytest.mark.parametrize(
    ("actual", "expected"),
    [
        (50_000_000, 60.0),  # baseline point
        (60_000_000, 100.0),  # target point
        (70_000_000, 120.0),  # challenge point
        (58_000_000, 92.0),  # 60 + 40 × 8/10
        (65_000_000, 110.0),  # 100 + 20 × 5/10
        (80_000_000, 120.0),  # capped at challenge
        (45_000_000, 40.0),  # below baseline: slope 40 per 10M continues → 60 − 20
        (30_000_000, 0.0),  # would be −20, floored at 0
    ],
)
def test_up_ladder(actual, expected):
    assert score(actual, REVENUE, "up") == pytest.approx(expected)


def test_down_ladder_mirrors_with_descending_levels():
    complaint = Levels(baseline=0.02, target=0.01, challenge=0.005)
    assert score(0.012, complaint, "down") == pytest.approx(92.0)  # 60 + 40 × 0.008/0.010
    assert score(0.0075, complaint, "down") == pytest.approx(110.0)  # 100 + 20 × 0.0025/0.005
    assert score(0.025, complaint, "down") == pytest.approx(40.0)  # 60 − 40 × 0.005/0.010
    assert status(0.012, complaint, "down") == AMBER
    assert status(0.009, complaint, "down") == GREEN
    assert status(0.03, complaint, "down") == RED
    assert achievement(0.0125, 0.01, "down") == pytest.approx(0.8)


def test_missing_levels_degrade():
    # No baseline, up: 0 at zero, 100 at target.
    assert score(30, Levels(target=60, challenge=70), "up") == pytest.approx(50.0)
    # No challenge: capped at 100.
    assert score(90, Levels(baseline=50, target=60), "up") == pytest.approx(100.0)
    # No baseline, down: 100 at target, 0 at twice the target.
    assert score(15, Levels(target=10), "down") == pytest.approx(50.0)
    # No target: nothing to judge by.
    assert score(5, Levels(baseline=1), "up") is None
    assert status(5, Levels(), "up") == GREY
    assert score(None, REVENUE, "up") is None
    assert status(None, REVENUE, "up") == GREY


def test_zero_target_down_kpi_like_safety_incidents():
    zero = Levels(baseline=0, target=0, challenge=0)
    assert score(0, zero, "down") == 100.0
    assert status(0, zero, "down") == GREEN
    assert score(1, zero, "down") == 0.0
    assert status(1, zero, "down") == RED
    assert achievement(1, 0, "down") is None


def test_range_kpi():
    days = Levels(low=25, high=35, tolerance=5)
    assert score(30, days, "range") == 100.0
    assert score(35, days, "range") == 100.0
    assert score(37.5, days, "range") == pytest.approx(80.0)  # 2.5 of 5 outside: 100 − 40 × 0.5
    assert score(40, days, "range") == pytest.approx(60.0)  # at tolerance
    assert score(20, days, "range") == pytest.approx(60.0)  # below the band by the tolerance
    assert score(42.5, days, "range") == pytest.approx(30.0)  # halfway from 60 to 0
    assert score(45, days, "range") == 0.0  # twice the tolerance
    assert status(30, days, "range") == GREEN
    assert status(38, days, "range") == AMBER
    assert status(41, days, "range") == RED


def test_configurable_ladder():
    ladder = Ladder(baseline=50, target=100, challenge=150)
    assert score(55_000_000, REVENUE, "up", ladder) == pytest.approx(75.0)
    assert score(70_000_000, REVENUE, "up", ladder) == pytest.approx(150.0)
    assert ladder.light(75) == AMBER
