"""What the Overview and Board pages show, computed in one place and returned as plain data."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from kpi_core import actuals, alerts, completeness, scoring
from kpi_core.access import Scope
from kpi_core.actuals import data_range
from kpi_core.catalog import SCORECARD, Catalog
from kpi_core.memo import by_data_version
from kpi_core.periods import Period, add_months
from kpi_core.scorecard import NodeResult, evaluate
from kpi_core.scoring import DEFAULT_LADDER, Ladder
from kpi_core.warehouse import Warehouse


def periods_between(grain: str, first: date, latest: date) -> list[Period]:
    """Periods of a grain that hold data, newest first."""
    out: list[Period] = []
    m = latest
    while m >= first:
        p = Period.containing(grain, m)
        if not out or out[-1] != p:
            out.append(p)
        m = add_months(m, -1)
    return out


@dataclass
class KpiLine:
    """One KPI node of a scorecard with what a card needs."""

    node: NodeResult
    weight: float
    previous: float | None
    last_year: float | None
    spark: list[tuple[date, float | None]]
    at_risk: bool = False
    # Units whose values this KPI's roll-up lacks in a month of the period not complete yet.
    missing: tuple[int, ...] = ()


@dataclass
class Board:
    unit_id: int
    period: Period
    result: NodeResult
    lines: list[KpiLine]
    rank: tuple[int, int] | None  # (rank, peers) among sibling units with a scorecard
    matrix: list[NodeResult]  # every KPI node in the unit's tree, units in tree order
    previous_score: float | None = None
    # The period's months (up to `as_of`) neither complete nor published for the unit.
    partial: dict[date, completeness.MonthStatus] = field(default_factory=dict)


def _values_by_pair(res: NodeResult) -> dict[tuple[int, int], float | None]:
    return {(c.kpi_id, c.unit_id): c.actual for _, c in res.kpi_children()}


@by_data_version
def board(
    wh: Warehouse,
    cat: Catalog,
    scope: Scope,
    unit_id: int,
    period: Period,
    ladder: Ladder = DEFAULT_LADDER,
    as_of: date | None = None,
) -> Board:
    """A unit's board. A period still running (months after `as_of`, the latest month with data)
    is compared with the same months of the previous period and of last year, not whole ones."""
    scope.check(unit_id, cat.units[unit_id].code)
    months = [m for m in period.months if as_of is None or m <= as_of] or period.months
    step = len(period.months)
    parent = cat.units[unit_id].parent_id
    peers = [
        u
        for u in (cat.children_of.get(parent, []) if parent is not None else [unit_id])
        if scope.allows(u) and cat.tree(period.end).get((u, SCORECARD))
    ]
    now = evaluate(wh, cat, scope, {unit_id, *peers}, period, ladder, months=months)
    res = now[unit_id]
    prev_months = [add_months(m, -step) for m in months]
    prev = evaluate(wh, cat, scope, [unit_id], period.previous(), ladder, months=prev_months)
    prev = prev[unit_id]
    ly_months = [add_months(m, -12) for m in months]
    last_year = evaluate(wh, cat, scope, [unit_id], period.last_year(), ladder, months=ly_months)
    last_year = last_year[unit_id]
    prev_values, ly_values = _values_by_pair(prev), _values_by_pair(last_year)

    spark_months = [add_months(period.end, -i) for i in range(11, -1, -1)]
    pairs = [(c.kpi_id, c.unit_id) for _, c in res.kpi_children()]
    series = actuals.monthly(wh, cat, pairs, spark_months)
    risky = _at_risk(wh, cat, [c for _, c in res.kpi_children()], months[-1])
    partial = completeness.statuses(wh, cat, [unit_id], months)

    lines = []
    for weight, node in res.kpi_children():
        key = (node.kpi_id, node.unit_id)
        lacking = {u for s in partial.values() for u in s.node_gaps.get(key, ())}
        lines.append(
            KpiLine(
                node=node,
                weight=weight,
                previous=prev_values.get(key),
                last_year=ly_values.get(key),
                spark=[(m, series[m].value(*key)) for m in spark_months],
                at_risk=key in risky,
                missing=tuple(u for u in cat.descendants(unit_id) if u in lacking),
            )
        )
    rank = None
    scored_peers = sorted(
        (u for u in peers if now[u].score is not None), key=lambda u: -now[u].score
    )
    if unit_id in scored_peers and len(scored_peers) > 1:
        rank = (scored_peers.index(unit_id) + 1, len(scored_peers))
    return Board(unit_id, period, res, lines, rank, kpi_nodes(res, cat), prev.score, partial)


def kpi_nodes(res: NodeResult, cat: Catalog) -> list[NodeResult]:
    """Every KPI node below a result once, grouped by unit in org order (for the status matrix)."""
    found: dict[tuple[int, int], NodeResult] = {}
    stack = [res]
    while stack:
        n = stack.pop()
        if not n.is_scorecard:
            found.setdefault((n.kpi_id, n.unit_id), n)
        stack.extend(c for _, c in reversed(n.children))
    order = {u: i for i, u in enumerate(cat.descendants(res.unit_id))}
    return sorted(found.values(), key=lambda n: order.get(n.unit_id, len(order)))


def _at_risk(wh, cat, nodes: list[NodeResult], month: date) -> dict[tuple[int, int], dict]:
    """At risk as the alert rule means it, by the rule's own function: (KPI, unit) → the
    forecast."""
    return alerts.at_risk(wh, cat, nodes, month)


@dataclass
class Overview:
    period: Period
    roots: list[NodeResult]
    departments: list[NodeResult]  # child scorecards of the first root, best first
    counts: dict[str, int]
    at_risk: int
    alerts: list[tuple[NodeResult, float]]  # red and at-risk KPI nodes with weight, worst first
    freshness: list[completeness.Freshness]  # per department, judged on `today`
    # (KPI, unit) → the forecast that puts it at risk (alerts.at_risk)
    at_risk_pairs: dict[tuple[int, int], dict] = field(default_factory=dict)
    # The period's months neither complete nor published for the roots.
    partial: dict[date, completeness.MonthStatus] = field(default_factory=dict)


@by_data_version
def overview(
    wh: Warehouse,
    cat: Catalog,
    scope: Scope,
    period: Period,
    ladder: Ladder = DEFAULT_LADDER,
    *,
    today: date,
    grace_days: int,
) -> Overview:
    """The Overview for a period; freshness judged on `today` with the stale-data rule's
    `grace_days` (alerts.StaleRule), the same judgement as the stale-data alert."""
    roots = [u for u in cat.scope_roots(scope) if cat.tree(period.end).get((u, SCORECARD))]
    results = evaluate(wh, cat, scope, roots, period, ladder)
    root_results = [results[u] for u in roots]
    departments = []
    if root_results:
        departments = [n for _, n in root_results[0].unit_children()]
        departments.sort(key=lambda n: (n.score is None, -(n.score or 0)))

    # Every KPI node under the roots, once each.
    nodes: dict[tuple[int, int], tuple[NodeResult, float]] = {}
    stack = [(100.0, r) for r in root_results]
    while stack:
        weight, n = stack.pop()
        for w, c in n.children:
            if not c.is_scorecard:
                nodes.setdefault((c.kpi_id, c.unit_id), (c, w))
            stack.append((w, c))
    counts = {s: 0 for s in (scoring.RED, scoring.AMBER, scoring.GREEN, scoring.GREY)}
    for n, _ in nodes.values():
        counts[n.status] += 1

    span = data_range(wh, scope, cat)
    loaded = [m for m in period.months if span is not None and m <= span[1]]
    # Forecast from the last month with data in the period, as the alert rule does for a month.
    as_of = loaded[-1] if loaded else period.end
    risky = _at_risk(wh, cat, [n for n, _ in nodes.values()], as_of)
    alerts = [(n, w) for k, (n, w) in nodes.items() if n.status == scoring.RED or k in risky]
    alerts.sort(key=lambda a: (a[0].status != scoring.RED, -(a[1] * (100 - (a[0].score or 0)))))

    fresh = completeness.freshness(wh, cat, scope, today, grace_days)
    partial = completeness.statuses(wh, cat, roots, loaded)
    return Overview(
        period, root_results, departments, counts, len(risky), alerts, fresh, risky, partial
    )
