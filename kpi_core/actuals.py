"""KPI values for a period: aggregated over months and over org units by the KPI's own rule.

- over months: `sum` adds, `avg` averages, `last` takes the latest month with data;
- over units (a unit with no actual of its own for the KPI takes its child units'): `sum` and
  `last` add (revenue, headcount), `avg` averages;
- `ratio` is Σ numerator / Σ denominator of the same period and unit — never a mean of ratios;
- `formula` applies its formula to the other KPIs' values of the same period and unit.

The heavy part (scanning millions of actuals) is one grouped DuckDB query; the composition rules
run in Python over the few thousand aggregates that come back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from kpi_core import formula
from kpi_core.access import Scope
from kpi_core.catalog import Catalog
from kpi_core.library import AGGREGATIONS, PERCENT_UNITS
from kpi_core.memo import by_data_version
from kpi_core.pairs import pair_keys, select
from kpi_core.warehouse import Warehouse

Pair = tuple[int, int]  # (kpi id, unit id)


@dataclass(frozen=True)
class Agg:
    """A base KPI's actuals of one unit over some months."""

    total: float
    mean: float
    last: float
    count: int
    last_month: date


@dataclass(frozen=True)
class Value:
    value: float | None
    last_month: date | None  # latest month behind the value (for pace against phased targets)
    own: bool  # from the unit's own actuals, not from its child units


MONTHLY_SQL = """
SELECT a.kpi_id, a.unit_id, a.period, a.value
FROM actual a {join}
WHERE {match} AND a.period BETWEEN ? AND ?
"""


@by_data_version
def data_range(wh: Warehouse, scope: Scope, cat: Catalog) -> tuple[date, date] | None:
    """First and latest month with any actual inside the scope (the latest is 'data as of')."""
    ids = [u for u in cat.units if scope.allows(u)]
    row = wh.one(
        "SELECT min(period), max(period) FROM actual WHERE list_contains(?, unit_id)", [ids]
    )
    return None if row is None or row[0] is None else (row[0], row[1])


def base_pairs(cat: Catalog, pairs: Iterable[Pair]) -> set[Pair]:
    """The stored KPIs a set of (kpi, unit) pairs is computed from, themselves included."""
    out: set[Pair] = set()
    stack = list(pairs)
    while stack:
        k, u = stack.pop()
        if (k, u) in out or k not in cat.kpis:
            continue
        out.add((k, u))
        for code in cat.kpis[k].dependencies():
            dep = cat.kpi_by_code.get(code)
            if dep is not None:
                stack.append((dep.id, u))
    return out


def _fetch(wh: Warehouse, pairs: set[Pair], first: date, last: date) -> list[tuple]:
    """(kpi, unit, month, value) of the pairs' stored months from `first` to `last`."""
    if not pairs:
        return []
    kpi_ids, unit_ids = zip(*pairs, strict=True)
    got = select(wh, MONTHLY_SQL, kpi_ids, unit_ids, [first, last])
    columns = (got["kpi_id"], got["unit_id"], got["period"].astype("datetime64[D]"), got["value"])
    return list(zip(*(c.tolist() for c in columns), strict=True))


def _with_fallback_units(cat: Catalog, pairs: set[Pair], found: set[Pair]) -> set[Pair]:
    """Pairs of descendant units for the stored KPIs that have no actual of their own."""
    extra: set[Pair] = set()
    for k, u in pairs:
        if (k, u) not in found and cat.kpis[k].aggregation in ("sum", "avg", "last"):
            extra.update((k, d) for d in cat.descendants(u)[1:])
    return extra - pairs


def monthly(
    wh: Warehouse, cat: Catalog, pairs: Iterable[Pair], months: list[date]
) -> dict[date, Values]:
    """Values of the pairs for each month of `months` (trends, sparklines)."""
    wanted = base_pairs(cat, pairs)
    rows = _fetch(wh, wanted, months[0], months[-1])
    extra = _with_fallback_units(cat, wanted, {(r[0], r[1]) for r in rows})
    if extra:
        rows += _fetch(wh, extra, months[0], months[-1])
    per_month: dict[date, dict[Pair, Agg]] = {m: {} for m in months}
    for k, u, m, v in rows:
        per_month[m][(k, u)] = Agg(v, v, v, 1, m)
    return {m: Values(cat, aggs) for m, aggs in per_month.items()}


class Values:
    """Composes stored aggregates into KPI values; memoised, so shared components count once."""

    def __init__(self, cat: Catalog, aggs: dict[Pair, Agg] | AggTable):
        self.cat = cat
        self.aggs = aggs
        self._memo: dict[Pair, Value] = {}

    def get(self, kpi_id: int, unit_id: int) -> Value:
        key = (kpi_id, unit_id)
        if key not in self._memo:
            self._memo[key] = Value(None, None, False)  # guards against cycles
            self._memo[key] = self._compute(kpi_id, unit_id)
        return self._memo[key]

    def value(self, kpi_id: int, unit_id: int) -> float | None:
        return self.get(kpi_id, unit_id).value

    def _compute(self, kpi_id: int, unit_id: int) -> Value:
        kpi = self.cat.kpis[kpi_id]
        if kpi.aggregation == "ratio":
            num = self.cat.kpi_by_code.get(kpi.numerator or "")
            den = self.cat.kpi_by_code.get(kpi.denominator or "")
            if num is not None and den is not None:
                n, d = self.get(num.id, unit_id), self.get(den.id, unit_id)
                if n.value is not None and d.value:
                    last = max(m for m in (n.last_month, d.last_month) if m)
                    return Value(n.value / d.value, last, n.own and d.own)
            # A ratio stored directly can stand for one month only; over longer periods its
            # components are needed, since a mean of monthly ratios would be wrong.
            agg = self.aggs.get((kpi_id, unit_id))
            if agg is not None and agg.count == 1:
                return Value(agg.last, agg.last_month, True)
            return Value(None, None, False)
        if kpi.aggregation == "formula":
            if kpi.parsed is None:
                return Value(None, None, False)
            parts = {}
            lasts = []
            for code in formula.references(kpi.parsed):
                dep = self.cat.kpi_by_code.get(code)
                v = self.get(dep.id, unit_id) if dep else Value(None, None, False)
                parts[code] = v.value
                if v.last_month:
                    lasts.append(v.last_month)
            result = formula.evaluate(kpi.parsed, parts)
            return Value(result, max(lasts) if lasts and result is not None else None, True)
        agg = self.aggs.get((kpi_id, unit_id))
        if agg is not None:
            value = {"sum": agg.total, "avg": agg.mean, "last": agg.last}[kpi.aggregation]
            return Value(value, agg.last_month, True)
        children = [self.get(kpi_id, c) for c in self.cat.children_of.get(unit_id, [])]
        children = [c for c in children if c.value is not None]
        if not children:
            return Value(None, None, False)
        total = sum(c.value for c in children)
        value = total / len(children) if kpi.aggregation == "avg" else total
        return Value(value, max(c.last_month for c in children), False)


# Two routes to the same actuals (an export's invoice totals and price × quantity, a CSV and a
# workbook) disagree in the last bits of a float. Equal is equal at the KPI's precision
# (DESIGN.md §4): values that round alike at its `decimals`, or that differ by no more than this
# share of the larger (of 1 when both are smaller) — noise, never a correction anyone typed.
RELATIVE_NOISE = 1e-9


def comparison_places(cur) -> np.ndarray:
    """Per KPI id, the decimal places its stored values are compared at; NaN where only the
    relative tolerance applies: percent and ratio KPIs (their `decimals` are the percent's as
    shown, not the stored fraction's) and KPIs without `decimals`."""
    rows = cur.execute("SELECT id, unit, aggregation, decimals FROM kpi").fetchall()
    places = np.full(max((r[0] for r in rows), default=0) + 1, np.nan)
    for kpi_id, unit, aggregation, decimals in rows:
        relative = (unit or "").strip().lower() in PERCENT_UNITS or aggregation == "ratio"
        if decimals is not None and not relative:
            places[kpi_id] = decimals
    return places


def same_at_precision(old: np.ndarray, new: np.ndarray, places: np.ndarray) -> np.ndarray:
    """Whether each old and new value are the same at their KPI's precision (`places` from
    `comparison_places`, NaN for the relative tolerance alone). A missing side is never the
    same: that is a new or a removed value."""
    old = np.asarray(old, dtype=float)
    new = np.asarray(new, dtype=float)
    places = np.asarray(places, dtype=float)
    with np.errstate(invalid="ignore", over="ignore"):
        scale = np.maximum(np.maximum(np.abs(old), np.abs(new)), 1.0)
        noise = np.abs(old - new) <= RELATIVE_NOISE * scale
        has = ~np.isnan(places)
        factor = np.power(10.0, np.where(has, places, 0.0))
        rounded = has & (np.round(old * factor) == np.round(new * factor))
    return (noise | rounded) & ~np.isnan(old) & ~np.isnan(new)


def same_values(places: np.ndarray, kpi_ids, old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """`same_at_precision` of each (KPI, old, new), `places` being `comparison_places`: the one
    comparison every writer of actuals uses (the intake's diff, the KPI-system import)."""
    ids = np.asarray(kpi_ids, dtype=np.int64)
    known = (ids >= 0) & (ids < len(places))
    per_row = np.full(len(ids), np.nan)
    per_row[known] = places[ids[known]]
    return same_at_precision(old, new, per_row)


def refresh_summary(cur, keys: str | None = None) -> None:
    """Recompute `actual_year` rows: all of them, or those of the (kpi_id, unit_id, period) rows
    in the table or view named `keys`. Runs inside the caller's transaction."""
    if keys is None:
        cur.execute("DELETE FROM actual_year")
        scope, params = "", []
    else:
        cur.execute(
            f"""CREATE OR REPLACE TEMP TABLE summary_keys AS
                SELECT DISTINCT kpi_id, unit_id, year(period) AS year,
                       CAST(date_trunc('year', period) AS DATE) AS first,
                       CAST(date_trunc('year', period) + INTERVAL 1 YEAR AS DATE) AS past
                FROM {keys}"""  # noqa: S608 - internal table name
        )
        cur.execute(
            """DELETE FROM actual_year USING summary_keys k
               WHERE actual_year.kpi_id = k.kpi_id AND actual_year.unit_id = k.unit_id
                 AND actual_year.year = k.year"""
        )
        # The year as a range of periods, not year(period) = k.year: PostgreSQL then reads
        # each pair's months through `actual`'s key instead of scanning every year of every
        # pair (2.6 → 1.5 s for an upload of 94,000 values on the bench warehouse).
        scope = """JOIN summary_keys k ON a.kpi_id = k.kpi_id AND a.unit_id = k.unit_id
                   AND a.period >= k.first AND a.period < k.past"""
        params = []
    cur.execute(
        f"""INSERT INTO actual_year
            SELECT a.kpi_id, a.unit_id, year(a.period), sum(a.value), avg(a.value),
                   arg_max(a.value, a.period), count(*), max(a.period)
            FROM actual a {scope}
            GROUP BY ALL
            ORDER BY 3, 2, 1""",  # noqa: S608 - fixed SQL fragments
        params,
    )
    if keys is not None:
        cur.execute("DROP TABLE summary_keys")


class AggTable:
    """Aggregates of stored pairs in sorted arrays: `get((kpi, unit))` by binary search."""

    def __init__(self, cols: dict[str, np.ndarray]):
        keys = pair_keys(cols["kpi_id"], cols["unit_id"])
        order = np.argsort(keys, kind="stable")
        self.keys = keys[order]
        self.cols = {k: v[order] for k, v in cols.items()}

    def positions(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(self.keys) == 0:
            return np.zeros(len(keys), dtype=int), np.zeros(len(keys), dtype=bool)
        pos = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return pos, self.keys[pos] == keys

    def get(self, pair: Pair) -> Agg | None:
        pos, found = self.positions(pair_keys(np.array([pair[0]]), np.array([pair[1]])))
        if not found[0]:
            return None
        i = int(pos[0])
        c = self.cols
        return Agg(
            float(c["total"][i]),
            float(c["mean"][i]),
            float(c["last"][i]),
            int(c["n"][i]),
            pd.Timestamp(c["last_period"][i]).date(),
        )


_RAW_SQL = """
SELECT a.kpi_id, a.unit_id, sum(a.value) AS total, avg(a.value) AS mean,
       arg_max(a.value, a.period) AS last, count(*) AS n, max(a.period) AS last_period
FROM actual a {join}
WHERE {match} AND a.period BETWEEN ? AND ?
GROUP BY a.kpi_id, a.unit_id
"""

_YEAR_SQL = """
SELECT a.kpi_id, a.unit_id, sum(a.total) AS total, sum(a.total) / sum(a.n) AS mean,
       arg_max(a.last, a.last_period) AS last, sum(a.n)::INTEGER AS n,
       max(a.last_period) AS last_period
FROM actual_year a {join}
WHERE {match} AND a.year BETWEEN ? AND ?
GROUP BY a.kpi_id, a.unit_id
"""


# One year: the summary holds a single row per pair, so no grouping.
_ONE_YEAR_SQL = """
SELECT a.kpi_id, a.unit_id, a.total, a.total / a.n AS mean, a.last, a.n, a.last_period
FROM actual_year a {join}
WHERE {match} AND a.year = ?
"""


# One month: a pair has at most one row, so no grouping either (a leaf board's usual ask).
_ONE_MONTH_SQL = """
SELECT a.kpi_id, a.unit_id, a.value AS total, a.value AS mean, a.value AS last, 1 AS n,
       a.period AS last_period
FROM actual a {join}
WHERE {match} AND a.period = ?
"""


def _whole_years(months: list[date]) -> bool:
    return (
        months[0].month == 1
        and months[-1].month == 12
        and len(months) == 12 * (months[-1].year - months[0].year + 1)
    )


def _fetch_table(wh: Warehouse, kpi_ids, unit_ids, months: list[date]) -> dict[str, np.ndarray]:
    if _whole_years(months) and months[0].year == months[-1].year:
        return select(wh, _ONE_YEAR_SQL, kpi_ids, unit_ids, [months[0].year])
    if _whole_years(months):
        return select(wh, _YEAR_SQL, kpi_ids, unit_ids, [months[0].year, months[-1].year])
    if len(months) == 1:
        return select(wh, _ONE_MONTH_SQL, kpi_ids, unit_ids, [months[0]])
    return select(wh, _RAW_SQL, kpi_ids, unit_ids, [months[0], months[-1]])


def _stored_value(cat: Catalog, table: AggTable, code: str | None, unit_ids: np.ndarray):
    """Values of one stored KPI for many units from the table: (value, last month) arrays."""
    kpi = cat.kpi_by_code.get(code or "")
    if kpi is None or AGGREGATIONS.index(kpi.aggregation) > 2 or len(table.keys) == 0:
        return None
    pos, found = table.positions(pair_keys(np.full(len(unit_ids), kpi.id), unit_ids))
    col = ("total", "mean", "last")[AGGREGATIONS.index(kpi.aggregation)]
    v = np.where(found, table.cols[col][pos], np.nan)
    lm = table.cols["last_period"][pos].astype("datetime64[D]")
    return v, np.where(found, lm, np.datetime64("NaT"))


def _composed(cat, kpi_ids, unit_ids, agg, table, value, last, own) -> np.ndarray:
    """Ratio and formula KPIs whose parts are all stored with the unit's own actuals, at once.

    Returns which pairs were done; the rest (parts missing, parts themselves composed) are
    left to `Values`, which applies the same rules one pair at a time.
    """
    done = np.zeros(len(kpi_ids), dtype=bool)
    for k in np.unique(kpi_ids[agg >= 3]).tolist():
        kpi = cat.kpis[k]
        rows = np.flatnonzero(kpi_ids == k)
        units = unit_ids[rows]
        refs = {c: _stored_value(cat, table, c, units) for c in kpi.dependencies()}
        if not refs or any(r is None for r in refs.values()):
            continue
        if kpi.aggregation == "ratio":
            num, den = refs[kpi.numerator][0], refs[kpi.denominator][0]
            with np.errstate(divide="ignore", invalid="ignore"):
                result = np.where(den == 0, np.nan, num / den)
        elif kpi.parsed is not None:
            parts = {c: r[0] for c, r in refs.items()}
            result = formula.evaluate_arrays(kpi.parsed, parts, len(rows))
        else:
            continue
        lasts = np.stack([r[1] for r in refs.values()]).max(axis=0)
        # Only complete values are final here: a ratio with a part missing may still have a
        # value stored for a single month, which `Values` knows how to use.
        complete = ~np.isnan(result)
        idx = rows[complete]
        value[idx] = result[complete]
        last[idx] = lasts[complete]
        own[idx] = True
        done[idx] = True
    return done


def node_values(
    wh: Warehouse, cat: Catalog, kpi_ids: np.ndarray, unit_ids: np.ndarray, months: list[date]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Values of many (KPI, unit) pairs over `months`: (value, last month, own) arrays.

    Stored KPIs with the unit's own actuals and ratios of such are computed for all pairs at
    once; formulas and units that take their child units' values go through `Values`.
    """
    n = len(kpi_ids)
    value = np.full(n, np.nan)
    last = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
    own = np.zeros(n, dtype=bool)
    if n == 0:
        return value, last, own
    agg = cat.kpi_columns.aggregation[kpi_ids]
    stored = agg <= 2
    extra_k, extra_u = [], []
    for i in np.flatnonzero(~stored):
        u = int(unit_ids[i])
        for code in cat.kpis[int(kpi_ids[i])].dependencies():
            dep = cat.kpi_by_code.get(code)
            if dep is not None:
                extra_k.append(dep.id)
                extra_u.append(u)
    want_k = np.concatenate([kpi_ids[stored], np.array(extra_k, dtype=kpi_ids.dtype)])
    want_u = np.concatenate([unit_ids[stored], np.array(extra_u, dtype=unit_ids.dtype)])
    table = AggTable(_fetch_table(wh, want_k, want_u, months))

    pos, found = table.positions(pair_keys(kpi_ids, unit_ids))
    c = table.cols
    fast = stored & found
    if fast.any():
        p = pos[fast]
        picked = np.select(
            [agg[fast] == 0, agg[fast] == 1], [c["total"][p], c["mean"][p]], c["last"][p]
        )
        value[fast] = picked
        last[fast] = c["last_period"][p].astype("datetime64[D]")
        own[fast] = True

    done = fast | _composed(cat, kpi_ids, unit_ids, agg, table, value, last, own)
    slow = np.flatnonzero(~done)
    if len(slow):
        missing = [(int(kpi_ids[i]), int(unit_ids[i])) for i in slow]
        wanted = base_pairs(cat, missing)
        have = {p for p in wanted if table.get(p) is not None}
        extra = _with_fallback_units(cat, wanted, have)
        if extra:
            ek, eu = zip(*sorted(extra), strict=True)
            more = _fetch_table(wh, np.array(ek), np.array(eu), months)
            table = AggTable({k: np.concatenate([c[k], more[k]]) for k in c})
        values = Values(cat, table)
        for i, (k, u) in zip(slow, missing, strict=True):
            v = values.get(k, u)
            if v.value is not None:
                value[i] = v.value
                last[i] = np.datetime64(v.last_month, "D")
                own[i] = v.own
    return value, last, own
