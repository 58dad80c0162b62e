"""The score ladder, status lights and the weighted roll-up (DESIGN.md §4). Pure functions."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kpi_core.texts import N_

# The status words; a page names a status with t(status), hence N_ (kpi_core.extraction).
GREEN, AMBER, RED, GREY = N_("green"), N_("amber"), N_("red"), N_("grey")
STATUS_ORDER = {RED: 0, AMBER: 1, GREEN: 2, GREY: 3}


@dataclass(frozen=True)
class Ladder:
    """Scores given at each target level; configurable, these are the method's defaults."""

    baseline: float = 60.0
    target: float = 100.0
    challenge: float = 120.0

    def light(self, score: float | None) -> str:
        """Light of a rolled-up score: the ladder's target and baseline points are the cut-offs."""
        if score is None:
            return GREY
        if score >= self.target - 1e-9:
            return GREEN
        if score >= self.baseline - 1e-9:
            return AMBER
        return RED


DEFAULT_LADDER = Ladder()


@dataclass(frozen=True)
class Levels:
    """Target levels for one KPI, unit and period. `range` KPIs use low/high/tolerance."""

    baseline: float | None = None
    target: float | None = None
    challenge: float | None = None
    low: float | None = None
    high: float | None = None
    tolerance: float | None = None

    def is_empty(self) -> bool:
        return all(v is None for v in (self.target, self.low, self.high))


def _num(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def _arr(x) -> np.ndarray:
    return np.asarray(np.where(pd.isna(x), np.nan, x), dtype=float)


def scores(
    actual,
    baseline,
    target,
    challenge,
    low,
    high,
    tolerance,
    direction,
    ladder: Ladder = DEFAULT_LADDER,
) -> np.ndarray:
    """The score ladder over arrays (NaN = missing); `direction` holds 'up'/'down'/'range'.

    This is the one implementation of the ladder: `score()` calls it with single values.
    """
    a, b, t, c = _arr(actual), _arr(baseline), _arr(target), _arr(challenge)
    direction = np.asarray(direction)
    down = direction == "down"
    # A `down` KPI is an `up` KPI on the negated axis: the same ladder with levels descending.
    sign = np.where(down, -1.0, 1.0)
    a, b, t, c = a * sign, b * sign, t * sign, c * sign
    lb, lt, lc = ladder.baseline, ladder.target, ladder.challenge
    with np.errstate(divide="ignore", invalid="ignore"):
        over = np.where(
            np.isnan(c) | (c <= t), lt, np.where(a >= c, lc, lt + (lc - lt) * (a - t) / (c - t))
        )
        # No baseline: the line through the target point with slope target-score / |target|,
        # i.e. 0 at zero for `up` and 0 at twice the target for `down`.
        no_base = np.where(t == 0, 0.0, np.maximum(0.0, lt - lt * (t - a) / np.abs(t)))
        slope = (lt - lb) / (t - b)
        # Below baseline the baseline→target slope continues down to 0; a degenerate ladder
        # (baseline = target, e.g. zero incidents) scores a miss 0.
        with_base = np.where(
            b >= t,
            0.0,
            np.where(a >= b, lb + slope * (a - b), np.maximum(0.0, lb - slope * (b - a))),
        )
        under = np.where(np.isnan(b), no_base, with_base)
        updown = np.where(a >= t, over, under)
        updown = np.where(np.isnan(t), np.nan, updown)

        lo, hi, tol = _arr(low), _arr(high), _arr(tolerance)
        raw_a = _arr(actual)
        dist = np.maximum(
            np.where(np.isnan(lo), 0.0, lo - raw_a), np.where(np.isnan(hi), 0.0, raw_a - hi)
        )
        has_tol = ~np.isnan(tol) & (tol > 0)
        ranged = np.where(
            dist <= 0,
            lt,
            np.where(
                ~has_tol,
                0.0,
                np.where(
                    dist <= tol,
                    lt - (lt - lb) * dist / tol,
                    np.maximum(0.0, lb - lb * (dist - tol) / tol),
                ),
            ),
        )
        ranged = np.where(np.isnan(lo) & np.isnan(hi), np.nan, ranged)
    out = np.where(direction == "range", ranged, updown)
    return np.where(np.isnan(_arr(actual)), np.nan, out)


def statuses(actual, baseline, target, low, high, tolerance, direction) -> np.ndarray:
    """Lights over arrays: green = target met, amber = baseline met, red otherwise, grey = none."""
    a, b, t = _arr(actual), _arr(baseline), _arr(target)
    direction = np.asarray(direction)
    sign = np.where(direction == "down", -1.0, 1.0)
    with np.errstate(invalid="ignore"):
        meets_t = sign * a >= sign * t - 1e-12
        meets_b = sign * a >= sign * b - 1e-12
        # Without a baseline, amber is where the ladder would give the baseline score.
        no_base_score = scores(a, np.nan, t, np.nan, np.nan, np.nan, np.nan, direction)
        amber = np.where(np.isnan(b), no_base_score >= DEFAULT_LADDER.baseline, meets_b)
        updown = np.where(meets_t, GREEN, np.where(amber, AMBER, RED))
        updown = np.where(np.isnan(t), GREY, updown)
        lo, hi, tol = _arr(low), _arr(high), np.nan_to_num(_arr(tolerance))
        dist = np.maximum(np.where(np.isnan(lo), 0.0, lo - a), np.where(np.isnan(hi), 0.0, a - hi))
        ranged = np.where(dist <= 0, GREEN, np.where(dist <= tol, AMBER, RED))
        ranged = np.where(np.isnan(lo) & np.isnan(hi), GREY, ranged)
    out = np.where(direction == "range", ranged, updown)
    return np.where(np.isnan(a), GREY, out)


def _levels_args(levels: Levels) -> tuple:
    return tuple(
        np.nan if v is None else v
        for v in (
            levels.baseline,
            levels.target,
            levels.challenge,
            levels.low,
            levels.high,
            levels.tolerance,
        )
    )


def score(
    actual: float | None, levels: Levels, direction: str, ladder: Ladder = DEFAULT_LADDER
) -> float | None:
    """Score of an actual against its levels; None when there is no actual or nothing to judge by."""
    actual = _num(actual)
    if actual is None:
        return None
    value = float(scores(actual, *_levels_args(levels), direction, ladder))
    return None if math.isnan(value) else value


def status(actual: float | None, levels: Levels, direction: str) -> str:
    """Light of a KPI with an actual: green = target met, amber = baseline met, red otherwise."""
    b, t, _, lo, hi, tol = _levels_args(levels)
    actual = _num(actual)
    return str(statuses(np.nan if actual is None else actual, b, t, lo, hi, tol, direction))


def achievement(actual: float | None, target: float | None, direction: str) -> float | None:
    """Actual ÷ target (target ÷ actual for `down`); shown beside the score, never used to judge."""
    actual, target = _num(actual), _num(target)
    if actual is None or target is None or direction == "range":
        return None
    if target == 0:
        return None  # a ratio to zero (zero incidents) says nothing
    if direction == "down":
        return None if actual == 0 else target / actual
    return actual / target
