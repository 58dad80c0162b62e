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

from kpi_core import formula
from kpi_core.catalog import Catalog
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


_AGG_SQL = """
WITH wanted AS (
    SELECT unnest(?::INTEGER[]) AS kpi_id, unnest(?::INTEGER[]) AS unit_id
)
SELECT a.kpi_id, a.unit_id, sum(a.value), avg(a.value), arg_max(a.value, a.period),
       count(*), max(a.period)
FROM actual a
JOIN wanted w ON a.kpi_id = w.kpi_id AND a.unit_id = w.unit_id
WHERE a.period BETWEEN ? AND ?
GROUP BY a.kpi_id, a.unit_id
"""

_MONTHLY_SQL = """
WITH wanted AS (
    SELECT unnest(?::INTEGER[]) AS kpi_id, unnest(?::INTEGER[]) AS unit_id
)
SELECT a.kpi_id, a.unit_id, a.period, a.value
FROM actual a
JOIN wanted w ON a.kpi_id = w.kpi_id AND a.unit_id = w.unit_id
WHERE a.period BETWEEN ? AND ?
"""


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


def _fetch(wh: Warehouse, sql: str, pairs: set[Pair], first: date, last: date) -> list[tuple]:
    if not pairs:
        return []
    kpi_ids, unit_ids = zip(*sorted(pairs), strict=True)
    return wh.rows(sql, [list(kpi_ids), list(unit_ids), first, last])


def _with_fallback_units(cat: Catalog, pairs: set[Pair], found: set[Pair]) -> set[Pair]:
    """Pairs of descendant units for the stored KPIs that have no actual of their own."""
    extra: set[Pair] = set()
    for k, u in pairs:
        if (k, u) not in found and cat.kpis[k].aggregation in ("sum", "avg", "last"):
            extra.update((k, d) for d in cat.descendants(u)[1:])
    return extra - pairs


def aggregates(wh: Warehouse, cat: Catalog, pairs: Iterable[Pair], months: list[date]) -> Values:
    """Values of the pairs over `months` (a month, quarter, year or YTD)."""
    wanted = base_pairs(cat, pairs)
    rows = _fetch(wh, _AGG_SQL, wanted, months[0], months[-1])
    found = {(r[0], r[1]) for r in rows}
    extra = _with_fallback_units(cat, wanted, found)
    if extra:
        rows += _fetch(wh, _AGG_SQL, extra, months[0], months[-1])
    aggs = {(r[0], r[1]): Agg(r[2], r[3], r[4], r[5], r[6]) for r in rows}
    return Values(cat, aggs)


def monthly(
    wh: Warehouse, cat: Catalog, pairs: Iterable[Pair], months: list[date]
) -> dict[date, Values]:
    """Values of the pairs for each month of `months` (trends, sparklines)."""
    wanted = base_pairs(cat, pairs)
    rows = _fetch(wh, _MONTHLY_SQL, wanted, months[0], months[-1])
    extra = _with_fallback_units(cat, wanted, {(r[0], r[1]) for r in rows})
    if extra:
        rows += _fetch(wh, _MONTHLY_SQL, extra, months[0], months[-1])
    per_month: dict[date, dict[Pair, Agg]] = {m: {} for m in months}
    for k, u, m, v in rows:
        per_month[m][(k, u)] = Agg(v, v, v, 1, m)
    return {m: Values(cat, aggs) for m, aggs in per_month.items()}


class Values:
    """Composes stored aggregates into KPI values; memoised, so shared components count once."""

    def __init__(self, cat: Catalog, aggs: dict[Pair, Agg]):
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
