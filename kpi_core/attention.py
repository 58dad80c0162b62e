"""The Board's "needs attention" list: each red and at-risk KPI of a unit and of the units below
it, worst first, with the reason in words and the child that caused it.

Red is the light of the period's score; at risk is `alerts.at_risk` (green or amber now, but the
forecast to the year's end misses its target) — the one definition, so the list, the cards and
the alerts never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from kpi_core import alerts, i18n, scoring
from kpi_core.access import Scope
from kpi_core.board import Board, Overview, board, kpi_nodes, overview
from kpi_core.catalog import Catalog
from kpi_core.memo import by_data_version
from kpi_core.periods import Period
from kpi_core.scorecard import NodeResult
from kpi_core.scoring import DEFAULT_LADDER, Ladder
from kpi_core.warehouse import Warehouse

RED, AT_RISK = "red", "at_risk"


@dataclass(frozen=True)
class Item:
    """One KPI node that needs attention, and why."""

    kind: str  # RED or AT_RISK
    node: NodeResult
    forecast: dict | None  # alerts.at_risk's numbers for an at-risk node
    cause: NodeResult | None  # the child that lost the node the most points, when it is not green
    loss: float  # points of the unit's score it costs below the ladder's target (sorting)

    @property
    def kpi_id(self) -> int:
        return self.node.kpi_id

    @property
    def unit_id(self) -> int:
        return self.node.unit_id


def cause(node: NodeResult, ladder: Ladder) -> NodeResult | None:
    """The child with the largest weighted shortfall below the target points, if it is red or
    amber: the sub-unit (or sub-KPI) that made the parent what it is."""
    worst, lost = None, 0.0
    for w, c in node.children:
        if c.score is None or c.status not in (scoring.RED, scoring.AMBER):
            continue
        short = w * max(ladder.target - c.score, 0.0)
        if short > lost:
            worst, lost = c, short
    return worst


def _below(cat: Catalog, node: NodeResult, nodes: list[NodeResult]) -> NodeResult | None:
    """For a node without children in the tree (a company value aggregated from its units'
    actuals): the same KPI's worst red or amber node in a unit below it."""
    below = set(cat.descendants(node.unit_id)) - {node.unit_id}
    found = [
        n
        for n in nodes
        if n.kpi_id == node.kpi_id
        and n.unit_id in below
        and n.status in (scoring.RED, scoring.AMBER)
        and n.score is not None
    ]
    return min(found, key=lambda n: n.score, default=None) if not node.children else None


def _weights(res: NodeResult) -> dict[tuple[int, int], float]:
    """Each KPI node's share of the unit's score: the product of the weights on its path (the
    first path it is met on), so a node's loss is in points of the Board's own score."""
    out: dict[tuple[int, int], float] = {}
    stack = [(1.0, res)]
    while stack:
        share, n = stack.pop()
        for w, c in n.children:
            part = share * w / 100
            if not c.is_scorecard:
                out.setdefault((c.kpi_id, c.unit_id), part)
            stack.append((part, c))
    return out


def needs_attention(
    wh: Warehouse,
    cat: Catalog,
    res: NodeResult,
    nodes: list[NodeResult],
    month: date,
    ladder: Ladder = DEFAULT_LADDER,
) -> list[Item]:
    """Red and at-risk KPI nodes among `nodes` (a Board's matrix: the unit's tree), red first,
    each group by the points it costs; at risk judged on `month` (the period's last month with
    data), as the alert rule does."""
    risky = alerts.at_risk(wh, cat, nodes, month)
    weights = _weights(res)
    items = []
    for n in nodes:
        key = (n.kpi_id, n.unit_id)
        if n.status == scoring.RED:
            kind = RED
        elif key in risky:
            kind = AT_RISK
        else:
            continue
        loss = weights.get(key, 0.0) * max(ladder.target - (n.score or 0.0), 0.0)
        why = cause(n, ladder) or _below(cat, n, nodes)
        items.append(Item(kind, n, risky.get(key), why, loss))
    order = {u: i for i, u in enumerate(cat.descendants(res.unit_id))}
    items.sort(key=lambda i: (i.kind != RED, -i.loss, order.get(i.unit_id, len(order))))
    return items


def for_board(wh: Warehouse, cat: Catalog, b: Board, as_of: date) -> list[Item]:
    """A Board's list; a running period is judged on its months up to `as_of`, as the Board."""
    months = [m for m in b.period.months if m <= as_of] or b.period.months
    return needs_attention(wh, cat, b.result, b.matrix, months[-1])


def for_overview(wh: Warehouse, cat: Catalog, ov: Overview, as_of: date) -> list[Item]:
    """The Overview's list: each root of the user's scope with everything below it."""
    months = [m for m in ov.period.months if m <= as_of] or ov.period.months
    items = [
        i
        for root in ov.roots
        for i in needs_attention(wh, cat, root, kpi_nodes(root, cat), months[-1])
    ]
    return sorted(items, key=lambda i: (i.kind != RED, -i.loss))


@by_data_version
def board_list(
    wh: Warehouse, cat: Catalog, scope: Scope, unit_id: int, period: Period, as_of: date
) -> list[Item]:
    """`for_board` of the Board `board.board(wh, cat, scope, unit_id, period, as_of=as_of)`,
    kept per data version: its forecasts cost more than the board itself, and they change only
    with the data. Keyed by `scope` too, since the board behind it is the caller's."""
    return for_board(wh, cat, board(wh, cat, scope, unit_id, period, as_of=as_of), as_of)


@by_data_version
def overview_list(
    wh: Warehouse,
    cat: Catalog,
    scope: Scope,
    period: Period,
    as_of: date,
    *,
    today: date,
    grace_days: int,
) -> list[Item]:
    """`for_overview` of the caller's `board.overview(...)`, kept per data version as
    `board_list`."""
    ov = overview(wh, cat, scope, period, today=today, grace_days=grace_days)
    return for_overview(wh, cat, ov, as_of)


def _score(x: float | None) -> str:
    return "—" if x is None else f"{x:.1f}"


def _name(cat: Catalog, n: NodeResult, lang: str, of_unit: int) -> str:
    """A child node by its unit's name when it is another unit's, else by its KPI's."""
    if n.unit_id != of_unit:
        return cat.units[n.unit_id].name(lang)
    return cat.kpis[n.kpi_id].name(lang)


def text(item: Item, cat: Catalog, lang: str, ladder: Ladder = DEFAULT_LADDER) -> str:
    """'营业收入 红灯 — 华南大区 43.0（基准 60）· 主因：拜访成单率 19.4' in either language."""
    n = item.node
    kpi, unit = cat.kpis[n.kpi_id], cat.units[n.unit_id]
    if item.kind == RED:
        out = i18n.t(
            "na_red",
            lang,
            kpi=kpi.name(lang),
            unit=unit.name(lang),
            score=_score(n.score),
            baseline=f"{ladder.baseline:g}",
        )
    else:
        f = item.forecast or {}
        value = i18n.format_value(f.get("forecast"), kpi, lang)
        if f.get("target") is not None:
            goal = i18n.t("na_goal", lang, target=i18n.format_value(f["target"], kpi, lang))
        else:
            low = i18n.format_value(f.get("low"), kpi, lang)
            high = i18n.format_value(f.get("high"), kpi, lang)
            goal = i18n.t("na_band", lang, low=low, high=high)
        out = i18n.t(
            "na_at_risk", lang, kpi=kpi.name(lang), unit=unit.name(lang), forecast=value, goal=goal
        )
    if item.cause is not None:
        c = item.cause
        out += i18n.t(
            "na_cause",
            lang,
            child=_name(cat, c, lang, n.unit_id),
            status=i18n.t(c.status, lang).lower(),
            score=_score(c.score),
        )
    return out
