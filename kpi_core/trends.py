"""A KPI's history for the Trends page (DESIGN.md §6): plain frames, every number from the engine.

- `kpi_months`: each month's actual with that month's levels (a `sum` KPI's phased share);
- `trend`: that, plus the same month last year, and the year-to-date value through each month
  against the levels of those months (for a `sum` KPI the phased target so far — the pace; for
  the others the annual levels), each computed by `actuals.node_values` / `targets.node_levels`,
  so a ratio's YTD is Σ numerator / Σ denominator and an average's is the mean of its months;
- `compare_units`: the same KPI over the same months for sibling (or child) units, ranked;
- `comment_markers`: review comments placed on the line, for the chart's markers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from kpi_core import actuals, completeness, i18n, scoring, targets
from kpi_core.access import Scope
from kpi_core.catalog import SCORECARD, Catalog
from kpi_core.errors import KpiError
from kpi_core.library import Kpi
from kpi_core.memo import by_data_version
from kpi_core.messages import Message
from kpi_core.periods import add_months, months_between
from kpi_core.scoring import DEFAULT_LADDER, Ladder
from kpi_core.warehouse import Warehouse

LEVELS = targets.LEVEL_FIELDS
MAX_MONTHS = 120
_MARKER_TEXT = 200  # characters of one comment shown in a marker's tooltip


class RangeError(KpiError):
    """A range of months that cannot be shown."""


def month_range(first: date, last: date) -> list[date]:
    """The months from `first` to `last`, refused when empty or longer than ten years."""
    if last < first:
        raise RangeError(Message("tr_err_backwards", last=f"{last:%Y-%m}", first=f"{first:%Y-%m}"))
    months = months_between(first, last)
    if len(months) > MAX_MONTHS:
        raise RangeError(Message("tr_err_too_long", n=len(months), max=MAX_MONTHS))
    return months


def kpi_months(
    wh: Warehouse, cat: Catalog, kpi_id: int, unit_id: int, months: list[date]
) -> pd.DataFrame:
    """`month`, `actual` and each month's own levels (`levels_by_month`) of one KPI node."""
    pair = (kpi_id, unit_id)
    values = actuals.monthly(wh, cat, [pair], months)
    n = len(months)
    levels = targets.levels_by_month(
        wh, cat, np.full(n, kpi_id), np.full(n, unit_id), np.array(months, dtype="datetime64[D]")
    )
    df = pd.DataFrame(
        {
            "month": pd.to_datetime(months),
            "actual": np.array([_nan(values[m].value(*pair)) for m in months], dtype=float),
        }
    )
    for f in LEVELS:
        df[f] = levels[f]
    return df


def _nan(v: float | None) -> float:
    return np.nan if v is None else v


def tree_kpis(cat: Catalog, scope: Scope, unit_id: int, month: date) -> list[tuple[int, int]]:
    """(KPI id, unit id) of every KPI node in a unit's tree inside the scope: the unit's own
    first, in scorecard order, then those of the units below in tree order."""
    tree = cat.tree(month)
    seen: dict[tuple[int, int], None] = {}
    stack = [(unit_id, SCORECARD)]
    visited = set()
    while stack:
        node = stack.pop()
        if node in visited:
            continue
        visited.add(node)
        if node[1] != SCORECARD:
            seen[(node[1], node[0])] = None
        stack.extend(reversed([c for c, _ in tree.get(node, []) if scope.allows(c[0])]))
    order = {u: i for i, u in enumerate(cat.descendants(unit_id))}
    return sorted(seen, key=lambda p: (p[1] != unit_id, order.get(p[1], len(order))))


@dataclass
class Trend:
    kpi_id: int
    unit_id: int
    months: list[date]
    # month, actual, last_year, and that month's levels
    monthly: pd.DataFrame
    # month, actual (year to date through the month), and the levels of those months
    ytd: pd.DataFrame


@by_data_version
def trend(
    wh: Warehouse, cat: Catalog, scope: Scope, kpi_id: int, unit_id: int, months: list[date]
) -> Trend:
    """A KPI node's months with last year's values and its year-to-date pace."""
    scope.check(unit_id, cat.units[unit_id].code if unit_id in cat.units else "")
    if kpi_id not in cat.kpis:
        raise KpiError(Message("tr_err_no_kpi", id=kpi_id))
    monthly = kpi_months(wh, cat, kpi_id, unit_id, months)
    before = [add_months(m, -12) for m in months]
    past = actuals.monthly(wh, cat, [(kpi_id, unit_id)], before)
    monthly.insert(2, "last_year", [_nan(past[m].value(kpi_id, unit_id)) for m in before])
    return Trend(kpi_id, unit_id, list(months), monthly, _ytd(wh, cat, kpi_id, unit_id, monthly))


def _ytd(wh: Warehouse, cat: Catalog, kpi_id: int, unit_id: int, monthly: pd.DataFrame):
    """Year to date through each month that has an actual: the engine's value of January..month
    and the levels it is judged by (a `sum` KPI's phased shares up to its last month with data)."""
    rows = []
    k, u = np.array([kpi_id]), np.array([unit_id])
    for ts, has in zip(monthly["month"], monthly["actual"].notna(), strict=True):
        m = ts.date()
        row = {"month": ts, "actual": np.nan, **{f: np.nan for f in LEVELS}}
        if has:
            run = months_between(date(m.year, 1, 1), m)
            value, _, _, levels = targets.values_and_levels(wh, cat, k, u, run)
            row["actual"] = value[0]
            row.update({f: levels[f][0] for f in LEVELS})
        rows.append(row)
    return pd.DataFrame(rows, columns=["month", "actual", *LEVELS])


def siblings(cat: Catalog, scope: Scope, unit_id: int) -> list[int]:
    """The unit and the other units under its parent (the roots in scope for a top unit)."""
    parent = cat.units[unit_id].parent_id
    units = cat.children_of.get(parent, []) if parent is not None else cat.scope_roots(scope)
    return [u for u in units if scope.allows(u)] or [unit_id]


def children(cat: Catalog, scope: Scope, unit_id: int) -> list[int]:
    return [u for u in cat.children_of.get(unit_id, []) if scope.allows(u)]


COMPARE_COLUMNS = ["unit_id", "actual", *LEVELS, "score", "status", "rank"]


@by_data_version
def compare_units(
    wh: Warehouse,
    cat: Catalog,
    scope: Scope,
    kpi_id: int,
    unit_ids: list[int],
    months: list[date],
    ladder: Ladder = DEFAULT_LADDER,
) -> pd.DataFrame:
    """One KPI for several units over the same months (aggregated by the KPI's rule), scored
    against each unit's own levels and ranked: by score, then by value in the KPI's direction.
    Units with neither a value nor targets are left out."""
    for u in unit_ids:
        scope.check(u, cat.units[u].code)
    if not unit_ids:
        return pd.DataFrame(columns=COMPARE_COLUMNS)
    kpi = cat.kpis[kpi_id]
    uid = np.array(unit_ids, dtype=np.int32)
    kid = np.full(len(uid), kpi_id, dtype=np.int32)
    value, _, _, levels = targets.values_and_levels(wh, cat, kid, uid, months)
    direction = np.full(len(uid), kpi.direction, dtype=object).astype(str)
    lv = [levels[f] for f in LEVELS]
    score = scoring.scores(value, *lv, direction, ladder)
    status = scoring.statuses(value, lv[0], lv[1], lv[3], lv[4], lv[5], direction)
    df = pd.DataFrame({"unit_id": unit_ids, "actual": value, **levels})
    has_levels = ~np.isnan(levels["target"]) | ~np.isnan(levels["low"])
    df["score"] = np.where(~np.isnan(value) & has_levels, score, np.nan)
    df["status"] = np.where(~np.isnan(value) & has_levels, status, scoring.GREY)
    df = df[df["actual"].notna() | pd.Series(has_levels, index=df.index)]
    sign = -1.0 if kpi.direction == "down" else 1.0
    df = df.assign(_s=df["score"].fillna(-np.inf), _v=(sign * df["actual"]).fillna(-np.inf))
    df = df.sort_values(["_s", "_v"], ascending=False, kind="stable").drop(columns=["_s", "_v"])
    ranked = df["actual"].notna()
    df["rank"] = pd.array([None] * len(df), dtype="Int64")
    df.loc[ranked, "rank"] = np.arange(1, int(ranked.sum()) + 1)
    return df.reset_index(drop=True)


def partial_months(
    wh: Warehouse, cat: Catalog, kpi_id: int, unit_id: int, months: list[date]
) -> dict[date, tuple[completeness.MonthStatus, tuple[int, ...]]]:
    """The months of `months` after the unit's latest complete or published month (with
    everything below it) — the partial months the boards' pickers mark (completeness.in_view) —
    each with the units whose values this KPI's roll-up lacks in it, in org order. Walking back
    from the range's end stops at the first settled month: judging every month of a long range
    would cost a read per month, and the months before a settled one are nearly always in."""
    if not months:
        return {}
    view = completeness.in_view(wh, cat, [unit_id], max(months), min(months))
    found = {m: s for m, s in view.newer.items() if m in set(months)}
    # A settled range end returns at once with nothing newer; the end with newer months under
    # it means nothing was settled within reach (in_view's fallback): judge the end itself.
    end = max(months)
    if view.default == end and (view.newer or len(months) == 1):
        status = completeness.month_status(wh, cat, unit_id, end)
        if not status.settled:
            found[end] = status
    out = {}
    for month, status in found.items():
        lacking = set(status.node_gaps.get((kpi_id, unit_id), ()))
        out[month] = (status, tuple(u for u in cat.descendants(unit_id) if u in lacking))
    return out


def comment_markers(monthly: pd.DataFrame, notes: pd.DataFrame) -> pd.DataFrame:
    """One marker per month with comments: on the actual (or the target where there is none),
    with the comments' authors and texts for the tooltip. `notes` is `review.comments(...)`."""
    cols = ["month", "y", "n", "text"]
    if notes.empty:
        return pd.DataFrame(columns=cols)
    at = monthly.set_index("month")
    y_of = at["actual"].fillna(at["target"])
    rows = []
    notes = notes.sort_values("created_at")
    for month, group in notes.groupby(pd.to_datetime(notes["period"]), sort=True):
        if month not in at.index:
            continue
        lines = []
        for _, c in group.iterrows():
            text = str(c["text"])
            if len(text) > _MARKER_TEXT:
                text = text[:_MARKER_TEXT] + "…"
            lines.append(f"{c['author']}: {text}")
        rows.append(
            {"month": month, "y": y_of.get(month), "n": len(group), "text": " ｜ ".join(lines)}
        )
    return pd.DataFrame(rows, columns=cols)


def table(t: Trend, kpi: Kpi, lang: str, notes: pd.DataFrame | None = None) -> pd.DataFrame:
    """The trend as one sheet for a download: the numbers as stored (percent KPIs as fractions)
    with bilingual headers, and the comments of each month as text."""
    tr = {
        "month": i18n.t("month", lang),
        "actual": i18n.t("actual", lang),
        "last_year": i18n.t("tr_last_year", lang),
        "baseline": i18n.t("baseline", lang),
        "target": i18n.t("target", lang),
        "challenge": i18n.t("challenge", lang),
        "low": i18n.t("tree_low", lang),
        "high": i18n.t("tree_high", lang),
        "tolerance": i18n.t("tree_tolerance", lang),
    }
    fields = (
        ["actual", "last_year", "low", "high", "tolerance"]
        if kpi.direction == "range"
        else ["actual", "last_year", "baseline", "target", "challenge"]
    )
    out = pd.DataFrame({tr["month"]: t.monthly["month"].dt.strftime("%Y-%m")})
    for f in fields:
        out[tr[f]] = t.monthly[f].to_numpy()
    ytd = i18n.t("tr_ytd_prefix", lang)
    for f in ["actual", *(f for f in fields if f not in ("actual", "last_year", "tolerance"))]:
        out[f"{ytd}{tr[f]}"] = t.ytd[f].to_numpy()
    if notes is not None and not notes.empty:
        by_month = {
            pd.Timestamp(m): " | ".join(f"{c['text']} ({c['author']})" for _, c in g.iterrows())
            for m, g in notes.sort_values("created_at").groupby("period")
        }
        out[i18n.t("rv_comments", lang)] = [by_month.get(m) for m in t.monthly["month"]]
    return out
