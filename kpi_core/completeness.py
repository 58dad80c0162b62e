"""Complete, partial and published months, and how fresh each unit's data is (DESIGN.md §4).

**Expected values.** A month of a unit is judged by the stored values the KPI tree needs from
the unit and the units below it:

- every KPI node of the tree valid in the month whose KPI has a source or an owner in the
  library (somebody delivers it; a library that names no source and no owner for any KPI of
  the tree expects them all) — the nodes of the unit's own scorecard and of the scorecards
  above it that need the unit's values (the company's headcount from each department);
- taken down to what is stored (`actuals.base_pairs`): a ratio's numerator and denominator, a
  formula's inputs;
- at the units that deliver them: the node's unit when it delivered the KPI in the
  `HISTORY_MONTHS` months up to the month, else the units below it that did (a department's new
  customers added up from its regions), else the node's unit itself (nobody delivered it yet).

**States of a unit's month**, in this order:

- *published*: the month is closed for loading (`month_locks.lock_month`), or an analyst or admin
  published it for the unit or a unit above it (`publish`): what is in is final;
- *complete*: at least `COMPLETE_SHARE` of the expected values are in — all of them: a careful
  controller does not call a month complete while a region's revenue is missing; when a value
  will never come, publish the month instead. Values of a unit below that is published count as
  in;
- *partial*: some are in, not enough; *empty*: none is.

Boards, the Overview and the wall default to the latest complete or published month
(`settled_month`); a newer partial month stays selectable and is marked with its counts and the
units it lacks.

**Freshness** of a unit on a day is judged against the month expected by then: last calendar
month, once `grace_days` days (the stale-data rule's setting, `alerts.StaleRule`) have passed
after its end, else the month before. *Up to date*: the expected months are complete or
published; *due*: last month is still within its grace days and not complete; *partial*: a month
past its grace days has some of its values, not enough; *overdue*: it has none. The stale-data
alert raises exactly the partial and overdue units of this judgement (`alerts.detect._stale`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from kpi_core import audit
from kpi_core.access import ROLE_NAMES, Actor, Scope, can
from kpi_core.actuals import base_pairs
from kpi_core.catalog import SCORECARD, Catalog
from kpi_core.errors import KpiError, ScopeError
from kpi_core.library import Kpi
from kpi_core.memo import by_data_version
from kpi_core.messages import Message
from kpi_core.periods import add_months, month_of
from kpi_core.texts import N_
from kpi_core.warehouse import Warehouse

Pair = tuple[int, int]  # (kpi id, unit id)

# Share of the expected values that makes a month complete: all of them (see above).
COMPLETE_SHARE = 1.0
# Months looked back to tell who delivers a KPI: a unit's own value, or its units' values.
HISTORY_MONTHS = 12
# How far back the default month is looked for before giving up on finding a settled one.
SEARCH_MONTHS = 36

PUBLISHED, COMPLETE, PARTIAL, EMPTY = "published", "complete", "partial", "empty"
SETTLED = (PUBLISHED, COMPLETE)
UP_TO_DATE, DUE, OVERDUE = N_("up_to_date"), "due", "overdue"  # a page names UP_TO_DATE with t()
FRESHNESS = (UP_TO_DATE, DUE, PARTIAL, OVERDUE)


class PublishError(KpiError):
    """A month could not be published or withdrawn; the message says why."""


@dataclass(frozen=True)
class Gap:
    """A unit whose expected values are not all in."""

    unit_id: int
    loaded: int
    expected: int


@dataclass(frozen=True)
class MonthStatus:
    unit_id: int
    month: date
    expected: int  # stored values expected from the unit and the units below it
    loaded: int  # … of which are in
    published: bool  # closed for loading, or published for the unit or a unit above it
    gaps: tuple[Gap, ...] = ()  # units lacking values (not published), in org order
    # KPI node → the units whose values it lacks: what a roll-up of the month does not cover.
    node_gaps: Mapping[Pair, tuple[int, ...]] = field(default_factory=dict)
    # The unit's own values and each unit right below it, those lacking values: how a page names
    # what the month's roll-up lacks ("Sales 7 of 25, Production 0 of 18").
    parts: tuple[Gap, ...] = ()

    @property
    def state(self) -> str:
        if self.published:
            return PUBLISHED
        missing = sum(g.expected - g.loaded for g in self.gaps)
        if self.expected - missing >= math.ceil(COMPLETE_SHARE * self.expected - 1e-9):
            return COMPLETE
        return PARTIAL if self.loaded else EMPTY

    @property
    def settled(self) -> bool:
        """Complete or published: a month the boards may show by default."""
        return self.state in SETTLED

    @property
    def missing_units(self) -> tuple[int, ...]:
        return tuple(g.unit_id for g in self.gaps)


@dataclass(frozen=True)
class Freshness:
    unit_id: int
    state: str  # one of FRESHNESS
    month: date  # the month judged: the one past its grace days, or last month while within them
    days: int  # days since that month ended
    status: MonthStatus
    latest: date | None  # the latest month with any value of the unit or the units below it
    own: bool = False  # a root's row for its own values, its departments having rows of their own


# --- expected values ---------------------------------------------------------------------------


def _delivered(kpi: Kpi) -> bool:
    return bool((kpi.source or "").strip() or (kpi.owner or "").strip())


def _stored(kpi: Kpi, cat: Catalog) -> bool:
    """Whether values of the KPI are loaded (not computed from other KPIs of the month)."""
    if kpi.aggregation in ("sum", "avg", "last"):
        return True
    deps = kpi.dependencies()
    # A ratio without known components can only be loaded as it is; a formula never is.
    return kpi.aggregation == "ratio" and not (deps and deps <= cat.kpi_by_code.keys())


def _demand(cat: Catalog, month: date) -> dict[Pair, frozenset[Pair]]:
    """KPI node of the tree valid in `month` → the stored KPIs at its unit it is computed from;
    nodes whose KPI nobody delivers (no source, no owner) are left out. Kept on the catalog."""
    tree = cat.tree(month)
    key = ("completeness.demand", id(tree))
    if key in cat.memo:
        return cat.memo[key]  # type: ignore[return-value]
    nodes: set[Pair] = set()
    for (unit, kpi), children in tree.items():
        if kpi != SCORECARD:
            nodes.add((kpi, unit))
        nodes.update((k, u) for (u, k), _ in children if k != SCORECARD)
    nodes = {(k, u) for k, u in nodes if k in cat.kpis}
    # A library that names no source and no owner at all has not said who delivers what:
    # then every KPI of the tree is expected, or nothing would ever be missing.
    says_who = any(_delivered(cat.kpis[k]) for k, _ in nodes)
    out = {}
    for k, u in nodes:
        if _delivered(cat.kpis[k]) or not says_who:
            stored = {p for p in base_pairs(cat, [(k, u)]) if _stored(cat.kpis[p[0]], cat)}
            out[(k, u)] = frozenset(stored)
    cat.memo[key] = out
    return out


class _Month:
    """One month's expected and loaded values over some units, read with one query."""

    def __init__(self, wh: Warehouse, cat: Catalog, month: date, units: Iterable[int]):
        self.cat, self.month = cat, month
        wanted = set(units)
        around = wanted | {a for u in wanted for a in cat.ancestors(u)}
        self.history: set[Pair] = set()
        self.loaded: set[Pair] = set()
        with wh.cursor() as cur:
            for kpi_id, unit_id, now in cur.execute(
                """SELECT kpi_id, unit_id, bool_or(period = ?) FROM actual
                   WHERE period BETWEEN ? AND ? AND list_contains(?, unit_id)
                   GROUP BY kpi_id, unit_id""",
                [month, add_months(month, -HISTORY_MONTHS), month, sorted(around)],
            ).fetchall():
                self.history.add((kpi_id, unit_id))
                if now:
                    self.loaded.add((kpi_id, unit_id))
            closed = cur.execute("SELECT count(*) FROM period_lock WHERE period = ?", [month])
            self.closed = bool(closed.fetchone()[0])
            published = cur.execute("SELECT unit_id FROM month_publish WHERE period = ?", [month])
            self.published_units = {r[0] for r in published.fetchall()}
        # (kpi, unit) such that the unit or one below it delivered the KPI in the history.
        self.below: set[Pair] = set()
        for k, u in self.history:
            self.below.add((k, u))
            self.below.update((k, a) for a in cat.ancestors(u))
        self._memo: dict[Pair, frozenset[Pair]] = {}
        self.nodes: dict[Pair, frozenset[Pair]] = {}
        for node, stored in _demand(cat, month).items():
            if node[1] in around:  # values are delivered at a node's unit or below it
                self.nodes[node] = frozenset(p for s in stored for p in self._deliverers(s))

    def _deliverers(self, pair: Pair) -> frozenset[Pair]:
        if pair not in self._memo:
            k, u = pair
            found: set[Pair] = set()
            if pair not in self.history and self.cat.kpis[k].aggregation in ("sum", "avg", "last"):
                for child in self.cat.children_of.get(u, []):
                    if (k, child) in self.below:
                        found |= self._deliverers((k, child))
            self._memo[pair] = frozenset(found or {pair})
        return self._memo[pair]

    def published(self, unit_id: int) -> bool:
        return self.closed or any(
            u in self.published_units for u in (unit_id, *self.cat.ancestors(unit_id))
        )

    def status(self, unit_id: int, covered: frozenset[int] | None = None) -> MonthStatus:
        """The month of `unit_id` over `covered` (default: the unit and everything below)."""
        covered = covered if covered is not None else frozenset(self.cat.descendants(unit_id))
        expected = {p for pairs in self.nodes.values() for p in pairs if p[1] in covered}
        loaded = expected & self.loaded
        open_ = {p for p in expected - loaded if not self.published(p[1])}
        order = {u: i for i, u in enumerate(self.cat.descendants(unit_id))}
        per_unit: dict[int, list[int]] = {}  # unit → [loaded, expected]
        for p in expected:
            counts = per_unit.setdefault(p[1], [0, 0])
            counts[0] += p in loaded
            counts[1] += 1
        gaps = [
            Gap(u, *per_unit[u])
            for u in sorted({p[1] for p in open_}, key=lambda u: order.get(u, len(order)))
        ]
        # The same by the unit's own values and each unit right below it (a roll-up's parts).
        parts: dict[int, list[int]] = {}
        for u, (n_in, n_expected) in per_unit.items():
            part = self._part(u, unit_id)
            counts = parts.setdefault(part, [0, 0, 0])
            counts[0] += n_in
            counts[1] += n_expected
            counts[2] += any(g.unit_id == u for g in gaps)
        parts_lacking = [
            Gap(u, n_in, n_expected)
            for u, (n_in, n_expected, lacking) in sorted(
                parts.items(), key=lambda item: order.get(item[0], len(order))
            )
            if lacking
        ]
        node_gaps = {}
        for node, pairs in self.nodes.items():
            lacking = {p[1] for p in pairs & open_}
            if lacking:
                node_gaps[node] = tuple(sorted(lacking, key=lambda u: order.get(u, len(order))))
        return MonthStatus(
            unit_id,
            self.month,
            len(expected),
            len(loaded),
            self.published(unit_id),
            tuple(gaps),
            node_gaps,
            tuple(parts_lacking),
        )

    def _part(self, unit: int, top: int) -> int:
        """`top` itself, or the unit right below `top` that `unit` is in."""
        path = [unit, *self.cat.ancestors(unit)]
        return path[path.index(top) - 1] if top in path[1:] else top


def month_status(wh: Warehouse, cat: Catalog, unit_id: int, month: date) -> MonthStatus:
    """Expected values, values in and the state of a unit's month (its subtree's values)."""
    month = month_of(month)
    return _Month(wh, cat, month, cat.descendants(unit_id)).status(unit_id)


@by_data_version
def month_statuses(
    wh: Warehouse, cat: Catalog, month: date, units: Mapping[int, frozenset[int]]
) -> dict[int, MonthStatus]:
    """Several units' states for one month, read at once; `units`: unit → the units it covers."""
    month = month_of(month)
    m = _Month(wh, cat, month, {u for covered in units.values() for u in covered})
    return {u: m.status(u, covered) for u, covered in units.items()}


def combined(statuses: Iterable[MonthStatus]) -> MonthStatus:
    """Several units' statuses of one month as one (a scope with several roots)."""
    statuses = list(statuses)
    if len(statuses) == 1:
        return statuses[0]
    first = statuses[0]
    return MonthStatus(
        first.unit_id,
        first.month,
        sum(s.expected for s in statuses),
        sum(s.loaded for s in statuses),
        all(s.published for s in statuses),
        tuple(g for s in statuses for g in s.gaps),
        {k: v for s in statuses for k, v in s.node_gaps.items()},
        tuple(g for s in statuses for g in s.parts),
    )


@by_data_version
def statuses(
    wh: Warehouse, cat: Catalog, unit_ids: Iterable[int], months: Iterable[date]
) -> dict[date, MonthStatus]:
    """The months of `months` that are neither complete nor published for the units (each with
    everything below it), with their statuses: what a page marks in the period it shows."""
    units = {u: frozenset(cat.descendants(u)) for u in unit_ids}
    out = {}
    for month in sorted({month_of(m) for m in months}) if units else []:
        status = combined(month_statuses(wh, cat, month, units).values())
        if not status.settled:
            out[month] = status
    return out


@dataclass(frozen=True)
class InView:
    default: date  # the latest complete or published month: what boards show unless asked
    newer: dict[date, MonthStatus]  # the months after it with data (partial ones), newest first


@by_data_version
def in_view(
    wh: Warehouse, cat: Catalog, unit_ids: Iterable[int], latest: date, first: date | None = None
) -> InView:
    """The month boards show by default for the units in view (the unit picked, or the scope's
    roots): the latest, from `latest` back, that is complete or published for every one of
    them; and the newer months, with their statuses, a picker marks. When no month is settled
    within `SEARCH_MONTHS` (a warehouse whose every month lacks something), `latest`."""
    units = {u: frozenset(cat.descendants(u)) for u in unit_ids}
    latest = month_of(latest)
    month = latest
    stop = max(add_months(month, -SEARCH_MONTHS), month_of(first) if first else date.min)
    newer: dict[date, MonthStatus] = {}
    while units and month >= stop:
        status = combined(month_statuses(wh, cat, month, units).values())
        if status.settled:
            return InView(month, newer)
        newer[month] = status
        month = add_months(month, -1)
    return InView(latest, {m: s for m, s in newer.items() if m != latest})


def settled_month(
    wh: Warehouse, cat: Catalog, unit_ids: Iterable[int], latest: date, first: date | None = None
) -> date:
    """The latest complete or published month for every unit of `unit_ids` (`in_view`)."""
    return in_view(wh, cat, unit_ids, latest, first).default


# --- freshness ---------------------------------------------------------------------------------


def due_month(today: date, grace_days: int) -> date:
    """The latest month whose actuals are due: ended more than `grace_days` days before today."""
    last_closed = add_months(month_of(today), -1)
    return (
        last_closed if days_after(last_closed, today) > grace_days else add_months(last_closed, -1)
    )


def days_after(month: date, today: date) -> int:
    """Days from a month's end to `today` (1 on the 1st of the next month)."""
    return (today - (add_months(month, 1) - timedelta(days=1))).days


def judge(status: MonthStatus, today: date, grace_days: int) -> str:
    """Freshness of one month's status on `today`: up to date, due, partial or overdue."""
    if status.settled:
        return UP_TO_DATE
    if days_after(status.month, today) <= grace_days:
        return DUE
    return PARTIAL if status.loaded else OVERDUE


def freshness_units(cat: Catalog, scope: Scope, month: date) -> dict[int, frozenset[int]]:
    """The rows of a freshness list, unit → the units it covers: for each of the scope's roots,
    the root for its own values (those not under a unit on its scorecard: the company's own),
    then the units on its scorecard (the departments), each with everything below it. A root
    without units on its scorecard is one row for everything below it."""
    tree = cat.tree(month)
    rows: dict[int, frozenset[int]] = {}
    for root in cat.scope_roots(scope):
        inside = {u for u in cat.descendants(root) if scope.allows(u)}
        below = {
            u: frozenset(cat.descendants(u)) & inside
            for (u, k), _ in tree.get((root, SCORECARD), [])
            if k == SCORECARD and u in inside
        }
        rows[root] = frozenset(inside.difference(*below.values()))
        rows.update(below)
    return rows


@by_data_version
def freshness(
    wh: Warehouse, cat: Catalog, scope: Scope, today: date, grace_days: int
) -> list[Freshness]:
    """Each row of the scope's freshness list (`freshness_units`) judged on `today`; a root's
    row for its own values only when it has any. The stale-data alert raises the partial and
    overdue ones, so the list and the alerts always agree."""
    last = add_months(month_of(today), -1)
    due = due_month(today, grace_days)
    rows = freshness_units(cat, scope, last)
    ids = sorted({u for covered in rows.values() for u in covered})
    latest_of = dict(
        wh.rows(
            "SELECT unit_id, max(period) FROM actual WHERE list_contains(?, unit_id) GROUP BY 1",
            [ids],
        )
    )
    judged = month_statuses(wh, cat, due, rows)
    recent = None
    out = []
    for u, covered in rows.items():
        status = judged[u]
        state = judge(status, today, grace_days)
        if state not in (PARTIAL, OVERDUE) and due != last:
            recent = recent or month_statuses(wh, cat, last, rows)
            status = recent[u]
            state = judge(status, today, grace_days)
        own = covered != frozenset(c for c in cat.descendants(u) if scope.allows(c))
        if own and not status.expected:
            continue  # a root whose values all belong to its departments' rows
        months = [latest_of[c] for c in covered if c in latest_of]
        days = days_after(status.month, today)
        out.append(Freshness(u, state, status.month, days, status, max(months, default=None), own))
    return out


def stale(
    wh: Warehouse,
    cat: Catalog,
    scope: Scope,
    today: date,
    grace_days: int,
    also: Iterable[date] = (),
) -> tuple[list[Freshness], list[date]]:
    """The partial and overdue rows of the freshness list, and the rows still partial or
    overdue in the months of `also` (those of stale alerts still open); with the months judged."""
    due = due_month(today, grace_days)
    found = [
        f for f in freshness(wh, cat, scope, today, grace_days) if f.state in (PARTIAL, OVERDUE)
    ]
    months = sorted({due, *(month_of(m) for m in also)})
    rows = freshness_units(cat, scope, add_months(month_of(today), -1))
    for month in months:
        if month == due or days_after(month, today) <= grace_days:
            continue  # judged above, or not due yet
        for u, status in month_statuses(wh, cat, month, rows).items():
            state = judge(status, today, grace_days)
            if state in (PARTIAL, OVERDUE) and status.expected:
                found.append(Freshness(u, state, month, days_after(month, today), status, None))
    return found, months


# --- publishing --------------------------------------------------------------------------------


def publish(
    wh: Warehouse, cat: Catalog, who: Actor, unit_id: int, month: date, published: bool = True
) -> None:
    """Mark a unit's month as published — final for it and the units below it, whatever is
    still missing — or withdraw that (analysts and admins, inside their scope; audited)."""
    if not can(who, "publish_months"):
        role = Message(ROLE_NAMES[who.role])
        raise ScopeError(Message("cp_err_cannot_publish", user=who.name, role=role))
    if unit_id not in cat.units:
        raise PublishError(Message("cp_err_no_unit", id=unit_id))
    unit = cat.units[unit_id]
    who.scope.check(unit_id, unit.code)
    month = month_of(month)
    now = datetime.now()
    with wh.transaction() as cur:
        was = cur.execute(
            "SELECT count(*) FROM month_publish WHERE period = ? AND unit_id = ?", [month, unit_id]
        ).fetchone()[0]
        if bool(was) == published:
            return
        if published:
            cur.execute(
                "INSERT INTO month_publish VALUES (?, ?, ?, ?)", [month, unit_id, who.name, now]
            )
        else:
            cur.execute(
                "DELETE FROM month_publish WHERE period = ? AND unit_id = ?", [month, unit_id]
            )
        audit.record(
            cur, changed_at=now, changed_by=who.name, entity="month_publish",
            key=f"{unit.code}/{month:%Y-%m}", field="published",
            old=str(not published), new=str(published), reason="",
        )  # fmt: skip


def published_months(wh: Warehouse, cat: Catalog, scope: Scope) -> list[tuple[date, int]]:
    """(month, unit) published inside the scope, newest first."""
    return [
        (m, u)
        for m, u in wh.rows(
            "SELECT period, unit_id FROM month_publish ORDER BY period DESC, unit_id"
        )
        if u in cat.units and scope.allows(u)
    ]
