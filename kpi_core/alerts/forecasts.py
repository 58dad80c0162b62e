"""The numbers behind the rules: monthly histories of (KPI, unit) pairs as one matrix, robust z-scores, trend and run-rate forecasts — numpy over the whole matrix."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

import numpy as np

from kpi_core import formula
from kpi_core.actuals import MONTHLY_SQL, base_pairs
from kpi_core.alerts.rules import (
    AnomalyRule,
)
from kpi_core.catalog import Catalog
from kpi_core.pairs import select
from kpi_core.warehouse import Warehouse


def _month_index(d) -> np.ndarray:
    return np.asarray(d, dtype="datetime64[M]").astype(np.int64)


def histories(
    wh: Warehouse, cat: Catalog, pairs: list[tuple[int, int]], months: list[date]
) -> np.ndarray:
    """Monthly values of (KPI, unit) pairs over consecutive `months`: a (pairs × months) matrix,
    NaN where there is none. The KPI's rules per month: ratios of summed parts, formulas of
    their parts; a unit with no actuals of its own for a stored KPI takes its child units'
    (`sum`/`last` add, `avg` averages)."""
    width = len(months)
    out = np.full((len(pairs), width), np.nan)
    if not pairs:
        return out
    base = sorted(base_pairs(cat, pairs))
    table = _fetch_matrix(wh, base, months)
    # Stored pairs with their own rows: one gather.
    rows: dict[tuple[int, int], np.ndarray] = table
    memo: dict[tuple[int, int], np.ndarray] = {}
    missing = [
        p for p in base if p not in rows and cat.kpis[p[0]].aggregation in ("sum", "avg", "last")
    ]
    if missing:
        extra = {(k, d) for k, u in missing for d in cat.descendants(u)[1:]} - set(rows)
        rows = {**rows, **_fetch_matrix(wh, sorted(extra), months)}
    nan = np.full(width, np.nan)

    def get(k: int, u: int) -> np.ndarray:
        key = (k, u)
        if key in memo:
            return memo[key]
        memo[key] = nan  # guards against cycles
        kpi = cat.kpis.get(k)
        own = rows.get(key)
        if kpi is None:
            value = nan
        elif kpi.aggregation == "ratio":
            num, den = (
                cat.kpi_by_code.get(kpi.numerator or ""),
                cat.kpi_by_code.get(kpi.denominator or ""),
            )
            value = nan
            if num is not None and den is not None:
                n, d = get(num.id, u), get(den.id, u)
                with np.errstate(divide="ignore", invalid="ignore"):
                    value = np.where(d == 0, np.nan, n / d)
            if own is not None:  # a ratio stored as such stands for its single month
                value = np.where(np.isnan(value), own, value)
        elif kpi.aggregation == "formula":
            value = nan
            if kpi.parsed is not None:
                parts = {}
                for code in formula.references(kpi.parsed):
                    dep = cat.kpi_by_code.get(code)
                    parts[code] = get(dep.id, u) if dep else nan
                value = formula.evaluate_arrays(kpi.parsed, parts, width)
        elif own is not None:
            value = own
        else:
            kids = [get(k, c) for c in cat.children_of.get(u, [])]
            kids = [v for v in kids if not np.isnan(v).all()]
            if not kids:
                value = nan
            else:
                stack = np.vstack(kids)
                with _quiet():
                    if kpi.aggregation == "avg":
                        value = np.nanmean(stack, axis=0)
                    else:
                        value = np.where(
                            np.isnan(stack).all(axis=0), np.nan, np.nansum(stack, axis=0)
                        )
        memo[key] = value
        return value

    for i, (k, u) in enumerate(pairs):
        own = rows.get((k, u))
        if own is not None and cat.kpis[k].aggregation in ("sum", "avg", "last"):
            out[i] = own
        else:
            out[i] = get(k, u)
    return out


def _fetch_matrix(
    wh: Warehouse, pairs: list[tuple[int, int]], months: list[date]
) -> dict[tuple[int, int], np.ndarray]:
    """The stored rows of some pairs as one row of monthly values per pair that has any."""
    if not pairs:
        return {}
    k, u = zip(*pairs, strict=True)
    got = select(wh, MONTHLY_SQL, k, u, [months[0], months[-1]])
    if len(got["kpi_id"]) == 0:
        return {}
    keys = got["kpi_id"].astype(np.int64) << 32 | got["unit_id"].astype(np.int64)
    uniq, inverse = np.unique(keys, return_inverse=True)
    col = _month_index(got["period"]) - _month_index(months[0])
    matrix = np.full((len(uniq), len(months)), np.nan)
    matrix[inverse, col] = got["value"]
    return {
        (int(key >> 32), int(key & 0xFFFFFFFF)): matrix[i] for i, key in enumerate(uniq.tolist())
    }


def robust_z(
    values: np.ndarray,
    reference: np.ndarray,
    rule: AnomalyRule = AnomalyRule(),  # noqa: B008 - frozen, so shared safely
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Robust z-scores of `values` (n) against rows of `reference` (n × m, NaN = none):
    |x − median| / (1.4826 · MAD), 1.4826 making the MAD a standard deviation for normal data.
    Returns (z, median, mad); z is NaN where the reference is too short."""
    with np.errstate(invalid="ignore"), _quiet():
        med = np.nanmedian(reference, axis=1)
        mad = np.nanmedian(np.abs(reference - med[:, None]), axis=1)
        mad = np.maximum(mad, rule.mad_floor * np.abs(med))
        z = np.abs(values - med) / (1.4826 * mad)
    z = np.where(mad > 0, z, np.where(values == med, 0.0, np.inf))
    return z, med, mad


@contextmanager
def _quiet() -> Iterator[None]:
    """All-NaN rows are expected (a pair without history); numpy's warning about them is not."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def anomaly_reference(
    hist: np.ndarray,
    col: int,
    rule: AnomalyRule = AnomalyRule(),  # noqa: B008 - frozen, so shared safely
) -> tuple[np.ndarray, np.ndarray]:
    """For the month at column `col` of a (pairs × months) history: the reference values per
    pair — the same calendar month of up to `rule.years` earlier years when at least
    `rule.min_years` of them have data, else the 12 months before — and which was used
    (True = same month)."""
    same_cols = [col - 12 * y for y in range(1, rule.years + 1) if col - 12 * y >= 0]
    same = hist[:, same_cols] if same_cols else np.full((len(hist), 0), np.nan)
    recent = hist[:, max(0, col - 12) : col]
    use_same = (~np.isnan(same)).sum(axis=1) >= rule.min_years
    width = max(same.shape[1], recent.shape[1])
    ref = np.full((len(hist), width), np.nan)
    ref[:, : recent.shape[1]] = np.where(use_same[:, None], np.nan, recent)
    if same.shape[1]:
        ref[use_same, : same.shape[1]] = same[use_same]
    enough = np.where(use_same, True, (~np.isnan(recent)).sum(axis=1) >= rule.min_history)
    ref[~enough] = np.nan
    return ref, use_same


def trend_forecast(
    values: np.ndarray, horizon: np.ndarray | int, min_points: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares line through each row of `values` (n × m, consecutive months, NaN = none),
    extrapolated `horizon` months past the row's last column. Returns (forecast, slope per
    month); NaN where fewer than `min_points` months have data."""
    y = np.asarray(values, dtype=float)
    x = np.arange(y.shape[1], dtype=float)[None, :]
    w = ~np.isnan(y)
    yz = np.where(w, y, 0.0)
    n = w.sum(axis=1).astype(float)
    sx, sy = (w * x).sum(axis=1), yz.sum(axis=1)
    sxx, sxy = (w * x * x).sum(axis=1), (yz * x).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = (n * sxy - sx * sy) / (n * sxx - sx * sx)
        intercept = (sy - slope * sx) / n
    at = y.shape[1] - 1 + np.asarray(horizon, dtype=float)
    forecast = intercept + slope * at
    ok = n >= max(min_points, 2)
    return np.where(ok, forecast, np.nan), np.where(ok, slope, np.nan)


def run_rate_forecast(
    ytd_actual: np.ndarray,
    months_with_data: np.ndarray,
    period_months: int = 12,
    *,
    ytd_target: np.ndarray | None = None,
    period_target: np.ndarray | None = None,
) -> np.ndarray:
    """A `sum` KPI's total at the end of the period at the pace so far: YTD / months × period
    months; or, given the phased targets, YTD × period target / target of the months so far."""
    with np.errstate(invalid="ignore", divide="ignore"):
        plain = ytd_actual / months_with_data * period_months
        if ytd_target is None or period_target is None:
            return np.where(months_with_data > 0, plain, np.nan)
        phased = ytd_actual * period_target / ytd_target
        phased = np.where(np.isfinite(phased) & (ytd_target != 0), phased, plain)
    return np.where(months_with_data > 0, phased, np.nan)


def misses(forecast, target, low, high, direction) -> np.ndarray:
    """Whether forecasts miss: below target (`up`), above it (`down`), outside [low, high]."""
    f = np.asarray(forecast, dtype=float)
    t, lo, hi = (np.asarray(a, dtype=float) for a in (target, low, high))
    direction = np.asarray(direction)
    eps = 1e-9 * np.maximum(1.0, np.abs(np.nan_to_num(t)))
    with np.errstate(invalid="ignore"):
        up = f < t - eps
        down = f > t + eps
        ranged = (f < np.where(np.isnan(lo), -np.inf, lo)) | (
            f > np.where(np.isnan(hi), np.inf, hi)
        )
        ranged &= ~(np.isnan(lo) & np.isnan(hi))
    out = np.select([direction == "up", direction == "down"], [up, down], ranged)
    return out & ~np.isnan(f)
