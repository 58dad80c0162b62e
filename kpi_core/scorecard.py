"""Scorecards: the KPI tree of a unit for a period, scored and rolled up (DESIGN.md §4).

A scorecard node is an org unit's total; its children are the KPI nodes on the unit's scorecard
and, where wanted, child units' scorecard nodes. A KPI node is a (KPI, unit) pair, scored from
its own value when it has one; its children's weighted score is shown beside it and stands in
when it has none.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from kpi_core import actuals, scoring, targets
from kpi_core.access import Scope
from kpi_core.catalog import SCORECARD, Catalog, Node
from kpi_core.periods import Period
from kpi_core.scoring import DEFAULT_LADDER, ChildScore, Ladder, Levels
from kpi_core.warehouse import Warehouse


@dataclass
class NodeResult:
    unit_id: int
    kpi_id: int  # SCORECARD (0) for a unit's total
    actual: float | None = None
    levels: Levels | None = None
    score: float | None = None
    status: str = scoring.GREY
    achievement: float | None = None
    own_actual: bool = False  # scored from its own value, not from its children
    children_score: float | None = None
    coverage: float | None = None
    vetoed_by: tuple[str, ...] = ()
    last_month: date | None = None
    children: list[tuple[float, NodeResult]] = field(default_factory=list)

    @property
    def is_scorecard(self) -> bool:
        return self.kpi_id == SCORECARD

    def kpi_children(self) -> list[tuple[float, NodeResult]]:
        return [(w, c) for w, c in self.children if not c.is_scorecard]

    def unit_children(self) -> list[tuple[float, NodeResult]]:
        return [(w, c) for w, c in self.children if c.is_scorecard]


def _reachable(tree: dict[Node, list[tuple[Node, float]]], roots: Iterable[Node]) -> list[Node]:
    seen: set[Node] = set()
    order: list[Node] = []
    stack = list(roots)
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        order.append(node)
        stack.extend(child for child, _ in tree.get(node, []))
    return order


def evaluate(
    wh: Warehouse,
    cat: Catalog,
    scope: Scope,
    unit_ids: Iterable[int],
    period: Period,
    ladder: Ladder = DEFAULT_LADDER,
    months: list[date] | None = None,
) -> dict[int, NodeResult]:
    """Scorecards of the given units for a period (or an explicit run of months, e.g. YTD)."""
    unit_ids = list(unit_ids)
    for u in unit_ids:
        scope.check(u, cat.units[u].code if u in cat.units else "")
    months = months or period.months
    tree = cat.tree(months[-1])
    nodes = _reachable(tree, [(u, SCORECARD) for u in unit_ids])
    pairs = [(k, u) for u, k in nodes if k != SCORECARD]
    values = actuals.aggregates(wh, cat, pairs, months)
    years = range(months[0].year, months[-1].year + 1)
    target_rows = targets.fetch(wh, pairs, years)

    results: dict[Node, NodeResult] = {}

    def node_result(node: Node, visiting: frozenset[Node]) -> NodeResult:
        if node in results:
            return results[node]
        unit_id, kpi_id = node
        res = NodeResult(unit_id, kpi_id)
        kids = []
        for child, weight in tree.get(node, []):
            if child in visiting or not scope.allows(child[0]):
                continue
            kids.append((weight, node_result(child, visiting | {node})))
        res.children = kids
        if kids:
            rolled = scoring.roll_up(
                [
                    ChildScore(
                        w,
                        c.score,
                        c.status,
                        veto=not c.is_scorecard and cat.kpis[c.kpi_id].veto,
                        label=cat.kpis[c.kpi_id].code if not c.is_scorecard else "",
                    )
                    for w, c in kids
                ],
                ladder,
            )
            res.children_score, res.coverage, res.vetoed_by = (
                rolled.score,
                rolled.coverage,
                rolled.vetoed_by,
            )
            res.score, res.status = rolled.score, rolled.status
        if kpi_id != SCORECARD:
            _score_kpi_node(
                res, cat, values, target_rows.get((kpi_id, unit_id), []), months, ladder
            )
        results[node] = res
        return res

    return {u: node_result((u, SCORECARD), frozenset()) for u in unit_ids}


def _score_kpi_node(
    res: NodeResult,
    cat: Catalog,
    values: actuals.Values,
    rows: list[targets.TargetRow],
    months: list[date],
    ladder: Ladder,
) -> None:
    kpi = cat.kpis[res.kpi_id]
    value = values.get(res.kpi_id, res.unit_id)
    res.actual, res.last_month = value.value, value.last_month
    # A period still running is compared with the target share of the months that have data.
    pace = [m for m in months if value.last_month is None or m <= value.last_month] or months
    res.levels = targets.period_levels(rows, kpi, pace, cat)
    if res.actual is None or res.levels is None:
        return  # no own value: the children's roll-up (if any) stands in
    res.own_actual = True
    res.score = scoring.score(res.actual, res.levels, kpi.direction, ladder)
    res.status = scoring.status(res.actual, res.levels, kpi.direction)
    res.achievement = scoring.achievement(res.actual, res.levels.target, kpi.direction)
