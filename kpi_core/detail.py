"""One KPI of one unit for a period, everything about it in one place (the Detail page, reached
by a deep link `?unit=SALES&kpi=REV&period=2026-10`): its node with levels and score, its trend,
its contributors by child (weight × score), whether it is at risk, its open alerts and the batches
its values came from. Comments are read by the page through `review.comments`.

The unit is checked against the caller's scope before anything is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd

from kpi_core import alerts, formula
from kpi_core.access import Actor, Scope
from kpi_core.catalog import SCORECARD, Catalog, Kpi
from kpi_core.errors import NotFoundError
from kpi_core.messages import Message
from kpi_core.periods import Period
from kpi_core.scorecard import NodeResult, evaluate
from kpi_core.tree_view import Contribution, contributions, find, node_trend
from kpi_core.warehouse import Warehouse


@dataclass
class Detail:
    kpi: Kpi
    unit_id: int
    period: Period
    months: list[date]  # the period's months up to the latest with data
    node: NodeResult
    parent: NodeResult | None  # the node this one rolls up into, when it is in the scope
    trend: pd.DataFrame  # month, actual and that month's levels (tree_view.node_trend)
    contributions: list[Contribution]
    forecast: dict | None  # alerts.at_risk's numbers when the node is at risk
    alerts: list[alerts.Alert]
    batches: pd.DataFrame  # where the values of the period came from


def _inputs(cat: Catalog, kpi: Kpi) -> list[int]:
    """The KPI and the KPIs it is computed from (a ratio's parts, a formula's references):
    a computed KPI has no batch of its own."""
    out, todo = [kpi.id], [kpi]
    while todo:
        k = todo.pop()
        codes = {k.numerator, k.denominator}
        if k.formula:
            codes |= formula.references(formula.parse(k.formula))
        for code in codes:
            if code in cat.kpi_by_code and cat.kpi_by_code[code].id not in out:
                out.append(cat.kpi_by_code[code].id)
                todo.append(cat.kpi_by_code[code])
    return out


def locate(
    wh: Warehouse, cat: Catalog, scope: Scope, kpi_id: int, unit_id: int, months: list[date]
) -> tuple[NodeResult, NodeResult | None]:
    """The (KPI, unit) node and its parent, from the nearest scorecard above it in the scope
    that holds it."""
    key = (unit_id, kpi_id)
    tree = cat.tree(months[-1])
    for u in [unit_id, *cat.ancestors(unit_id)]:
        if not scope.allows(u):
            break
        if not tree.get((u, SCORECARD)):
            continue
        root = evaluate(wh, cat, scope, [u], Period("M", months[-1]), months=months)[u]
        node = find(root, key)
        if node is not None:
            return node, _parent_of(root, key)
    raise NotFoundError(
        Message(
            "dt_err_not_on_scorecard",
            kpi=cat.kpis[kpi_id].code,
            unit=cat.units[unit_id].code,
            month=f"{months[-1]:%Y-%m}",
        )
    )


def _parent_of(root: NodeResult, key: tuple[int, int]) -> NodeResult | None:
    stack = [root]
    while stack:
        n = stack.pop()
        for _, c in n.children:
            if (c.unit_id, c.kpi_id) == key:
                return None if n.is_scorecard else n
            stack.append(c)
    return None


def batches(
    wh: Warehouse, cat: Catalog, scope: Scope, kpi: Kpi, unit_id: int, months: list[date]
) -> pd.DataFrame:
    """The batches that wrote the period's values of the KPI (and of what it is computed from)
    for the unit and the units below it in the scope, newest first."""
    units = [u for u in cat.descendants(unit_id) if scope.allows(u)]
    return wh.df(
        """SELECT b.id, b.kind, coalesce(b.files, b.source_name) AS source, b.created_by,
                  b.created_at, b.status, count(*) AS "values",
                  count(DISTINCT a.unit_id) AS units
           FROM actual a JOIN batch b ON b.id = a.batch_id
           WHERE list_contains(?, a.kpi_id) AND list_contains(?, a.unit_id)
             AND a.period BETWEEN ? AND ?
           GROUP BY ALL ORDER BY b.created_at DESC, b.id DESC""",
        [_inputs(cat, kpi), units, months[0], months[-1]],
    )


def detail(
    wh: Warehouse,
    cat: Catalog,
    who: Actor,
    unit_code: str,
    kpi_code: str,
    period: Period,
    as_of: date,
    lang: str = "en",
) -> Detail:
    """The KPI's detail for the unit and period; a period still running is judged on its months
    up to `as_of`, as on the Board. A unit outside the caller's scope is refused before
    anything about it is read."""
    unit = cat.unit(unit_code)
    who.scope.check(unit.id, unit.code)
    kpi = cat.kpi(kpi_code)
    months = [m for m in period.months if m <= as_of] or period.months
    node, parent = locate(wh, cat, who.scope, kpi.id, unit.id, months)
    risky = alerts.at_risk(wh, cat, [node], months[-1])
    return Detail(
        kpi=kpi,
        unit_id=unit.id,
        period=period,
        months=months,
        node=node,
        parent=parent,
        trend=node_trend(wh, cat, who.scope, node, months[-1]),
        contributions=contributions(node, cat, lang),
        forecast=risky.get((kpi.id, unit.id)),
        alerts=alerts.alerts_for(wh, who, kpi.id, unit.id),
        batches=batches(wh, cat, who.scope, kpi, unit.id, months),
    )
