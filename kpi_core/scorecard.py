"""Scorecards: the KPI tree of a unit for a period, scored and rolled up (DESIGN.md §4).

A scorecard node is an org unit's total; its children are the KPI nodes on the unit's scorecard
and, where wanted, child units' scorecard nodes. A KPI node is a (KPI, unit) pair, scored from
its own value when it has one; its children's weighted score is shown beside it and stands in
when it has none.

A company tree has thousands of nodes, so evaluation works on arrays: values and levels of all
KPI nodes come from two queries, scores from the vectorised ladder, and the roll-up runs level by
level (leaves first) with weighted sums per parent. `NodeResult` is a view on one node of that.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from functools import cached_property

import numpy as np
import pandas as pd

from kpi_core import scoring, targets
from kpi_core.access import Scope
from kpi_core.catalog import SCORECARD, Catalog, Node
from kpi_core.memo import by_data_version
from kpi_core.periods import Period
from kpi_core.scoring import DEFAULT_LADDER, Ladder, Levels
from kpi_core.warehouse import Warehouse


@dataclass
class _Shape:
    """The nodes reachable from some roots and the edges between them, as arrays."""

    nodes: list[Node]
    unit: np.ndarray
    kpi: np.ndarray
    children: list[list[tuple[float, int]]]  # per node: (weight, child index)
    parent: np.ndarray  # per edge
    child: np.ndarray
    weight: np.ndarray
    height: np.ndarray  # per node: longest path down to a leaf


def _shape(cat: Catalog, roots: tuple[int, ...], month: date, scope: Scope) -> _Shape:
    tree = cat.tree(month)
    # By the tree rather than the month: months under the same weights share one shape. The
    # catalog keeps every tree it made, so an id is never reused while `cat.memo` lives.
    key = ("shape", roots, id(tree), scope)
    if key in cat.memo:
        return cat.memo[key]
    index: dict[Node, int] = {}
    nodes: list[Node] = []
    stack = [(u, SCORECARD) for u in roots]
    while stack:
        node = stack.pop()
        if node in index:
            continue
        index[node] = len(nodes)
        nodes.append(node)
        stack.extend(c for c, _ in tree.get(node, []) if scope.allows(c[0]))
    children: list[list[tuple[float, int]]] = [[] for _ in nodes]
    edges = []
    for i, node in enumerate(nodes):
        for child, weight in tree.get(node, []):
            if child in index and scope.allows(child[0]):
                children[i].append((weight, index[child]))
                edges.append((i, index[child], weight))
    height = np.zeros(len(nodes), dtype=int)
    # Heights by repeated relaxation: a tree is shallow (company → position is a handful).
    for _ in range(len(nodes)):
        changed = False
        for p, c, _w in edges:
            if height[p] < height[c] + 1:
                if height[c] + 1 > len(nodes):
                    raise ValueError("the tree has a cycle")
                height[p] = height[c] + 1
                changed = True
        if not changed:
            break
    e = np.array(edges, dtype=float).reshape(-1, 3)
    shape = _Shape(
        nodes,
        np.array([n[0] for n in nodes], dtype=np.int32),
        np.array([n[1] for n in nodes], dtype=np.int32),
        children,
        e[:, 0].astype(int),
        e[:, 1].astype(int),
        e[:, 2],
        height,
    )
    cat.memo[key] = shape
    return shape


class Evaluation:
    """Arrays of one evaluation; `NodeResult`s are views on it."""

    def __init__(self, cat: Catalog, shape: _Shape, ladder: Ladder):
        self.cat = cat
        self.shape = shape
        n = len(shape.nodes)
        self.ladder = ladder
        self.actual = np.full(n, np.nan)
        self.last_month = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
        self.levels = {f: np.full(n, np.nan) for f in targets.LEVEL_FIELDS}
        self.score = np.full(n, np.nan)
        self.status = np.full(n, scoring.GREY, dtype=object)
        self.own = np.zeros(n, dtype=bool)
        self.children_score = np.full(n, np.nan)
        self.coverage = np.full(n, np.nan)
        self.vetoed = np.zeros(n, dtype=bool)
        self.veto_kpi = np.zeros(n, dtype=bool)
        self.direction = np.full(n, "up", dtype=object)


@by_data_version
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
    unit_ids = list(dict.fromkeys(unit_ids))
    for u in unit_ids:
        scope.check(u, cat.units[u].code if u in cat.units else "")
    months = months or period.months
    shape = _shape(cat, tuple(unit_ids), months[-1], scope)
    ev = Evaluation(cat, shape, ladder)
    is_kpi = shape.kpi != SCORECARD
    k_idx = np.flatnonzero(is_kpi)
    kpi_ids, unit_of = shape.kpi[k_idx], shape.unit[k_idx]
    ev.direction[k_idx] = cat.kpi_columns.direction[kpi_ids]
    ev.veto_kpi[k_idx] = cat.kpi_columns.veto[kpi_ids]

    value, last, _, levels = targets.values_and_levels(wh, cat, kpi_ids, unit_of, months)
    ev.actual[k_idx], ev.last_month[k_idx] = value, last
    for f in targets.LEVEL_FIELDS:
        ev.levels[f][k_idx] = levels[f]
    lv = [levels[f] for f in targets.LEVEL_FIELDS]
    direction = ev.direction[k_idx].astype(str)
    own_score = scoring.scores(value, *lv, direction, ladder)
    has_levels = ~np.isnan(levels["target"]) | ~np.isnan(levels["low"]) | ~np.isnan(levels["high"])
    own = ~np.isnan(value) & has_levels
    ev.own[k_idx] = own
    ev.score[k_idx] = np.where(own, own_score, np.nan)
    own_status = scoring.statuses(value, lv[0], lv[1], lv[3], lv[4], lv[5], direction)
    ev.status[k_idx] = np.where(own, own_status, scoring.GREY)
    _roll_up(ev)
    return {u: NodeResult(ev, shape.nodes.index((u, SCORECARD))) for u in unit_ids}


def _roll_up(ev: Evaluation) -> None:
    """Leaves first: Σ(weight × score) / Σ(weight with data); a red veto child zeroes the parent."""
    s = ev.shape
    n = len(s.nodes)
    if len(s.parent) == 0:
        return
    parent_height = s.height[s.parent]
    lad = ev.ladder
    for h in range(1, int(s.height.max()) + 1):
        e = parent_height == h
        p, c, w = s.parent[e], s.child[e], s.weight[e]
        cs = ev.score[c]
        has = ~np.isnan(cs)
        num = np.bincount(p, weights=w * np.where(has, cs, 0.0), minlength=n)
        den = np.bincount(p, weights=w * has, minlength=n)
        tot = np.bincount(p, weights=w, minlength=n)
        red_veto = np.bincount(
            p, weights=(ev.veto_kpi[c] & (ev.status[c] == scoring.RED)), minlength=n
        )
        targets_ = np.unique(p)
        with np.errstate(invalid="ignore", divide="ignore"):
            rolled = np.where(den[targets_] > 0, num[targets_] / den[targets_], np.nan)
            coverage = np.where(tot[targets_] > 0, den[targets_] / tot[targets_], 0.0)
        vetoed = red_veto[targets_] > 0
        rolled = np.where(vetoed, 0.0, rolled)
        ev.children_score[targets_] = rolled
        ev.coverage[targets_] = coverage
        ev.vetoed[targets_] = vetoed
        stands_in = ~ev.own[targets_]
        t = targets_[stands_in]
        ev.score[t] = rolled[stands_in]
        ev.status[t] = [
            scoring.RED if v else lad.light(None if np.isnan(x) else float(x))
            for x, v in zip(rolled[stands_in], vetoed[stands_in], strict=True)
        ]


def _opt(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


class NodeResult:
    """One node of an evaluation: its value, levels, score, light and children."""

    def __init__(self, ev: Evaluation, i: int):
        self._ev = ev
        self._i = i

    @property
    def unit_id(self) -> int:
        return int(self._ev.shape.unit[self._i])

    @property
    def kpi_id(self) -> int:
        return int(self._ev.shape.kpi[self._i])

    @property
    def is_scorecard(self) -> bool:
        return self.kpi_id == SCORECARD

    @property
    def actual(self) -> float | None:
        return _opt(self._ev.actual[self._i])

    @property
    def levels(self) -> Levels | None:
        vals = {f: _opt(self._ev.levels[f][self._i]) for f in targets.LEVEL_FIELDS}
        lv = Levels(**vals)
        return None if all(v is None for v in vals.values()) else lv

    @property
    def score(self) -> float | None:
        return _opt(self._ev.score[self._i])

    @property
    def status(self) -> str:
        return str(self._ev.status[self._i])

    @property
    def own_actual(self) -> bool:
        """Scored from its own value, not from its children."""
        return bool(self._ev.own[self._i])

    @property
    def achievement(self) -> float | None:
        if self.is_scorecard or not self.own_actual:
            return None
        lv = self.levels
        kpi = self._ev.cat.kpis[self.kpi_id]
        return scoring.achievement(self.actual, lv.target if lv else None, kpi.direction)

    @property
    def children_score(self) -> float | None:
        return _opt(self._ev.children_score[self._i])

    @property
    def coverage(self) -> float | None:
        return _opt(self._ev.coverage[self._i])

    @property
    def last_month(self) -> date | None:
        m = self._ev.last_month[self._i]
        return None if np.isnat(m) else pd.Timestamp(m).date()

    @property
    def vetoed_by(self) -> tuple[str, ...]:
        if not self._ev.vetoed[self._i]:
            return ()
        return tuple(
            self._ev.cat.kpis[c.kpi_id].code
            for _, c in self.children
            if not c.is_scorecard and c._ev.veto_kpi[c._i] and c.status == scoring.RED
        )

    @cached_property
    def children(self) -> list[tuple[float, NodeResult]]:
        return [(w, NodeResult(self._ev, c)) for w, c in self._ev.shape.children[self._i]]

    def kpi_children(self) -> list[tuple[float, NodeResult]]:
        return [(w, c) for w, c in self.children if not c.is_scorecard]

    def unit_children(self) -> list[tuple[float, NodeResult]]:
        return [(w, c) for w, c in self.children if c.is_scorecard]

    def __repr__(self) -> str:
        return (
            f"NodeResult(unit={self.unit_id}, kpi={self.kpi_id}, score={self.score}, {self.status})"
        )
