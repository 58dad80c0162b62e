"""The score ladder, status lights and the weighted roll-up (DESIGN.md §4). Pure functions."""

from __future__ import annotations

import math
from dataclasses import dataclass

GREEN, AMBER, RED, GREY = "green", "amber", "red", "grey"
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


def score(
    actual: float | None, levels: Levels, direction: str, ladder: Ladder = DEFAULT_LADDER
) -> float | None:
    """Score of an actual against its levels; None when there is no actual or nothing to judge by."""
    actual = _num(actual)
    if actual is None:
        return None
    if direction == "range":
        return _range_score(actual, levels, ladder)
    b, t, c = _num(levels.baseline), _num(levels.target), _num(levels.challenge)
    if t is None:
        return None
    if direction == "down":
        # A `down` KPI is an `up` KPI on the negated axis: the same ladder with levels descending.
        actual, t = -actual, -t
        b = None if b is None else -b
        c = None if c is None else -c
    return _up_score(actual, b, t, c, ladder)


def _up_score(a: float, b: float | None, t: float, c: float | None, lad: Ladder) -> float:
    if a >= t:
        if c is None or c <= t:
            return lad.target
        if a >= c:
            return lad.challenge
        return lad.target + (lad.challenge - lad.target) * (a - t) / (c - t)
    if b is None:
        # No baseline: the line through the target point with slope target-score / |target|,
        # i.e. 0 at zero for an `up` KPI and 0 at twice the target for a `down` one.
        if t == 0:
            return 0.0
        return max(0.0, lad.target - lad.target * (t - a) / abs(t))
    if b >= t:
        # Degenerate ladder (baseline = target, e.g. a zero-incident KPI): a miss scores 0.
        return 0.0
    slope = (lad.target - lad.baseline) / (t - b)
    if a >= b:
        return lad.baseline + slope * (a - b)
    # Below baseline the baseline→target slope continues down to 0.
    return max(0.0, lad.baseline - slope * (b - a))


def _range_score(a: float, lv: Levels, lad: Ladder) -> float | None:
    low, high, tol = _num(lv.low), _num(lv.high), _num(lv.tolerance)
    if low is None and high is None:
        return None
    distance = max((low - a) if low is not None else 0.0, (a - high) if high is not None else 0.0)
    if distance <= 0:
        return lad.target
    if not tol:
        return 0.0
    if distance <= tol:
        return lad.target - (lad.target - lad.baseline) * distance / tol
    return max(0.0, lad.baseline - lad.baseline * (distance - tol) / tol)


def status(actual: float | None, levels: Levels, direction: str) -> str:
    """Light of a KPI with an actual: green = target met, amber = baseline met, red otherwise."""
    actual = _num(actual)
    if actual is None or levels.is_empty():
        return GREY
    if direction == "range":
        low, high, tol = _num(levels.low), _num(levels.high), _num(levels.tolerance) or 0.0
        distance = max(
            (low - actual) if low is not None else 0.0,
            (actual - high) if high is not None else 0.0,
        )
        if distance <= 0:
            return GREEN
        return AMBER if distance <= tol else RED
    if levels.target is None:
        return GREY
    sign = -1.0 if direction == "down" else 1.0
    a = sign * actual
    if a >= sign * levels.target - 1e-12:
        return GREEN
    if levels.baseline is not None:
        return AMBER if a >= sign * levels.baseline - 1e-12 else RED
    # Without a baseline, amber is where the score ladder would give the baseline score.
    return AMBER if (score(actual, levels, direction) or 0.0) >= DEFAULT_LADDER.baseline else RED


def achievement(actual: float | None, target: float | None, direction: str) -> float | None:
    """Actual ÷ target (target ÷ actual for `down`); shown beside the score, never used to judge."""
    actual, target = _num(actual), _num(target)
    if actual is None or target is None or direction == "range":
        return None
    if direction == "down":
        return None if actual == 0 else target / actual
    return None if target == 0 else actual / target


@dataclass(frozen=True)
class ChildScore:
    weight: float
    score: float | None
    status: str
    veto: bool = False
    label: str = ""


@dataclass(frozen=True)
class RollUp:
    score: float | None
    status: str
    coverage: float
    vetoed_by: tuple[str, ...] = ()


def roll_up(children: list[ChildScore], ladder: Ladder = DEFAULT_LADDER) -> RollUp:
    """Σ(weight × score) / Σ(weight of children with data); a veto child in red zeroes the parent."""
    total = sum(c.weight for c in children)
    scored = [c for c in children if c.score is not None]
    covered = sum(c.weight for c in scored)
    coverage = covered / total if total > 0 else 0.0
    vetoes = tuple(c.label for c in children if c.veto and c.status == RED)
    if vetoes:
        return RollUp(0.0, RED, coverage, vetoes)
    if covered <= 0:
        return RollUp(None, GREY, coverage)
    value = sum(c.weight * c.score for c in scored) / covered
    return RollUp(value, ladder.light(value), coverage)
