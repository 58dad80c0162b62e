"""A snapshot of the small tables — KPI library, org units, tree, phasing — loaded in one go.

The engine reads these on every evaluation; they are a few thousand rows at most, so one load
per page run (cached by the UI) is cheaper than joining them in every query.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property

import numpy as np

from kpi_core import formula
from kpi_core.access import Scope, User
from kpi_core.errors import NotFoundError
from kpi_core.library import AGGREGATIONS, Kpi
from kpi_core.memo import by_data_version
from kpi_core.messages import Message
from kpi_core.org import Unit
from kpi_core.warehouse import Warehouse

SCORECARD = 0  # kpi id of a scorecard node


@dataclass(frozen=True)
class Edge:
    parent_unit: int
    parent_kpi: int
    child_unit: int
    child_kpi: int
    weight: float
    valid_from: date
    sort_order: int
    version: int


Node = tuple[int, int]  # (unit id, kpi id or SCORECARD)


@dataclass(frozen=True)
class KpiColumns:
    # Index into library.AGGREGATIONS (stored KPIs first: <= 2 is stored); -1 for no KPI.
    aggregation: np.ndarray
    direction: np.ndarray  # "up" / "down" / "range"
    veto: np.ndarray


# Compared and hashed by identity: caches key results by the catalog they were computed with
# (kpi_core/memo.py), and `load_catalog` gives the same object for the same data.
@dataclass(eq=False)
class Catalog:
    units: dict[int, Unit]
    kpis: dict[int, Kpi]
    edges: list[Edge]
    profiles: dict[str, list[float]]
    unit_by_code: dict[str, Unit] = field(init=False)
    kpi_by_code: dict[str, Kpi] = field(init=False)
    children_of: dict[int | None, list[int]] = field(init=False)

    def __post_init__(self) -> None:
        self.unit_by_code = {u.code: u for u in self.units.values()}
        self.kpi_by_code = {k.code: k for k in self.kpis.values()}
        kids: dict[int | None, list[int]] = defaultdict(list)
        for u in sorted(self.units.values(), key=lambda u: (u.sort_order, u.code)):
            kids[u.parent_id].append(u.id)
        self.children_of = dict(kids)
        self._tree_cache: dict[date, dict[Node, list[tuple[Node, float]]]] = {}
        # Months whose tree versions are the same share one tree object (`tree`).
        self._tree_by_versions: dict[tuple[int, ...], dict[Node, list[tuple[Node, float]]]] = {}
        self._by_parent: dict[Node, tuple[list[Edge], dict[int, date]]] | None = None
        # Derived structures other modules cache on the snapshot (they live as long as it does).
        self.memo: dict[tuple, object] = {}

    @cached_property
    def kpi_columns(self) -> KpiColumns:
        """Per-KPI attributes as arrays indexed by KPI id, so evaluations look them up at once."""
        size = max(self.kpis, default=0) + 1
        cols = KpiColumns(
            np.full(size, -1, dtype=np.int8),
            np.full(size, "up", dtype=object),
            np.zeros(size, dtype=bool),
        )
        for k in self.kpis.values():
            cols.aggregation[k.id] = AGGREGATIONS.index(k.aggregation)
            cols.direction[k.id] = k.direction
            cols.veto[k.id] = k.veto
        return cols

    def unit(self, code: str) -> Unit:
        try:
            return self.unit_by_code[code]
        except KeyError:
            raise NotFoundError(Message("cat_err_no_unit", code=code)) from None

    def kpi(self, code: str) -> Kpi:
        try:
            return self.kpi_by_code[code]
        except KeyError:
            raise NotFoundError(Message("cat_err_no_kpi", code=code)) from None

    def roots(self) -> list[int]:
        return self.children_of.get(None, [])

    def descendants(self, unit_id: int) -> list[int]:
        """The unit and everything below it, parents before children."""
        out, stack = [], [unit_id]
        while stack:
            u = stack.pop()
            out.append(u)
            stack.extend(reversed(self.children_of.get(u, [])))
        return out

    def ancestors(self, unit_id: int) -> list[int]:
        out, u = [], self.units[unit_id].parent_id
        while u is not None:
            out.append(u)
            u = self.units[u].parent_id
        return out

    def scope_for(self, user: User) -> Scope:
        if user.is_admin:
            return Scope.all()
        ids: set[int] = set()
        for code in user.scope_codes:
            if code in self.unit_by_code:
                ids.update(self.descendants(self.unit_by_code[code].id))
        return Scope(frozenset(ids))

    def scope_roots(self, scope: Scope) -> list[int]:
        """The highest units inside a scope (what a scoped user's overview starts from)."""
        if scope.everything:
            return self.roots()
        return [
            u
            for u in sorted(scope.unit_ids, key=lambda i: (len(self.ancestors(i)), i))
            if not any(a in scope.unit_ids for a in self.ancestors(u))
        ]

    def tree(self, month: date) -> dict[Node, list[tuple[Node, float]]]:
        """Children and weights of every node, as valid in `month`. Months under the same
        versions get the same object, so what is derived from a tree (an evaluation's shape,
        scorecard._shape) is derived once for all of them (a 24-month company trend)."""
        if month in self._tree_cache:
            return self._tree_cache[month]
        if self._by_parent is None:
            grouped: dict[Node, list[Edge]] = defaultdict(list)
            for e in self.edges:
                grouped[(e.parent_unit, e.parent_kpi)].append(e)
            self._by_parent = {
                p: (edges, {e.version: e.valid_from for e in edges}) for p, edges in grouped.items()
            }
        versions = tuple(pick_version(v, month) for _, v in self._by_parent.values())
        tree = self._tree_by_versions.get(versions)
        if tree is None:
            tree = {}
            for (parent, (edges, _)), chosen in zip(self._by_parent.items(), versions, strict=True):
                rows = sorted((e for e in edges if e.version == chosen), key=lambda e: e.sort_order)
                tree[parent] = [((e.child_unit, e.child_kpi), e.weight) for e in rows]
            self._tree_by_versions[versions] = tree
        self._tree_cache[month] = tree
        return tree

    def scorecard_kpis(self, unit_id: int, month: date) -> list[int]:
        """KPI ids on a unit's scorecard (its own KPI nodes), in display order."""
        return [
            k for (u, k), _ in self.tree(month).get((unit_id, SCORECARD), []) if k and u == unit_id
        ]


def pick_version(valid_from: dict[int, date], month: date) -> int:
    """The version that judges `month`: the highest one valid on or before it — the latest
    decision wins for the months it covers — or, before any is valid, the first one (a tree or
    target set up after the months it is used for)."""
    valid = [v for v, start in valid_from.items() if start <= month]
    if valid:
        return max(valid)
    first = min(valid_from.values())
    return max(v for v, start in valid_from.items() if start == first)


@by_data_version
def load_catalog(wh: Warehouse) -> Catalog:
    with wh.cursor() as cur:
        units = {
            r[0]: Unit(*r)
            for r in cur.execute(
                "SELECT id, code, name_zh, name_en, parent_id, kind, sort_order FROM org_unit"
            ).fetchall()
        }
        kpis: dict[int, Kpi] = {}
        for r in cur.execute(
            """SELECT id, code, name_zh, name_en, unit, direction, aggregation, numerator,
                      denominator, formula, perspective, kind, veto, decimals, caliber, source,
                      owner, min_value, max_value, sort_order
               FROM kpi WHERE active"""
        ).fetchall():
            k = Kpi(*r)
            if k.aggregation == "formula" and k.formula:
                k = Kpi(*r, parsed=formula.parse(k.formula))
            kpis[k.id] = k
        edges = [
            Edge(*r)
            for r in cur.execute(
                """SELECT parent_unit, parent_kpi, child_unit, child_kpi, weight, valid_from,
                          sort_order, version FROM tree_edge"""
            ).fetchall()
        ]
        profiles = {
            name: list(shares)
            for name, shares in cur.execute("SELECT name, shares FROM phasing_profile").fetchall()
        }
    return Catalog(units, kpis, edges, profiles)


def load_user(wh: Warehouse, name: str) -> User:
    row = wh.one("SELECT name, display_name, role, scope FROM app_user WHERE name = ?", [name])
    if row is None:
        raise NotFoundError(Message("cat_err_no_user", name=name))
    return User(row[0], row[1] or row[0], row[2], tuple(row[3]))
