"""The big screen (DESIGN.md §6): what each slide shows, as plain data, for a kiosk screen's units.

A wall screen has no user at a keyboard, so it signs in with the token of a kiosk screen an
admin created (kpi_core.kiosk), scoped to chosen units (read-only). Everything here comes from the
existing core — `board.overview`, `scorecard.evaluate`, `review.open_actions` — never a second
way of scoring. `LastGood` keeps the last data that could be read, so a refresh that meets a busy
warehouse or a failing query shows the previous data marked stale instead of an error.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import date, datetime

import duckdb
import pandas as pd

from kpi_core import alerts, clock, completeness, i18n, people
from kpi_core.access import Actor, Scope
from kpi_core.actuals import data_range
from kpi_core.board import kpi_nodes, overview
from kpi_core.catalog import Catalog
from kpi_core.errors import KpiError
from kpi_core.kiosk import SLIDES, KioskError
from kpi_core.messages import Items, Message
from kpi_core.periods import Period, add_months
from kpi_core.review import open_actions
from kpi_core.scorecard import evaluate
from kpi_core.warehouse import Warehouse

log = logging.getLogger(__name__)

TREND_MONTHS = 6


# --- the kiosk's units -----------------------------------------------------------------------


def kiosk_units(cat: Catalog, allowed: Iterable[str], asked: Iterable[str] = ()) -> list[str]:
    """The unit codes to show: those asked for (`?units=`) inside the screen's units, else all
    of the screen's units that exist. Never wider than the screen."""
    base = [c for c in allowed if c in cat.unit_by_code]
    if not base:
        raise KioskError(Message("ks_err_units_gone", units=Items(allowed, commas=True)))
    scope = unit_scope(cat, base)
    narrowed = [c for c in asked if c in cat.unit_by_code and scope.allows(cat.unit_by_code[c].id)]
    return narrowed or base


def unit_scope(cat: Catalog, codes: Iterable[str]) -> Scope:
    ids: set[int] = set()
    for code in codes:
        if code in cat.unit_by_code:
            ids.update(cat.descendants(cat.unit_by_code[code].id))
    return Scope(frozenset(ids))


# --- the slides' data -------------------------------------------------------------------------


@dataclass(frozen=True)
class CompanyTile:
    code: str
    name: str
    score: float | None
    status: str
    previous_score: float | None
    trend: tuple[tuple[str, float | None, str], ...]  # (month label, score, status), oldest first
    counts: dict[str, int]
    at_risk: int
    coverage: float | None
    # The month `previous_score` is of, when not the month before: the latest complete or
    # published month before the one shown (a partial month never drives the change).
    previous_month: str | None = None


@dataclass(frozen=True)
class DepartmentRow:
    code: str
    name: str
    score: float | None
    status: str


@dataclass(frozen=True)
class Action:
    text: str
    owner: str
    due: date | None
    overdue: bool


@dataclass(frozen=True)
class RiskRow:
    unit: str
    kpi: str
    status: str  # the light; at-risk KPIs may still be green or amber
    at_risk: bool
    actual: str
    target: str
    owner: str
    actions: tuple[Action, ...]


@dataclass(frozen=True)
class MatrixRow:
    unit: str
    depth: int  # below the block's first unit
    cells: tuple[str | None, ...]  # a status per column of the block; None: not the unit's KPI


@dataclass(frozen=True)
class MatrixColumn:
    code: str
    name: str  # the KPI's name in the screen's language


@dataclass(frozen=True)
class MatrixBlock:
    """One department's status matrix (or the company's own KPIs): its units as rows, the KPIs
    of any of them as columns, in tree order. The wall shows a block whole on one slide."""

    title: str
    columns: tuple[MatrixColumn, ...]
    rows: tuple[MatrixRow, ...]


@dataclass(frozen=True)
class FreshRow:
    unit: str
    latest: str
    state: str  # completeness.FRESHNESS: up_to_date / due / partial / overdue
    text: str  # "■ Overdue · 2026-11 not loaded (8 days after month end)"


@dataclass(frozen=True)
class ScreenData:
    title: str
    lang: str
    period: str  # the month judged, as people read it
    as_of: str  # the month shown: the latest complete or published one
    fetched_at: datetime
    companies: tuple[CompanyTile, ...]
    departments: tuple[DepartmentRow, ...]
    risks: tuple[RiskRow, ...]
    matrix: tuple[MatrixBlock, ...]
    freshness: tuple[FreshRow, ...]
    newer: str = (
        ""  # a newer month not complete yet, with its state: "2026年11月 未完整 · 已到 7/76 项"
    )

    def slides(self, wanted: Iterable[str] | None = None) -> list[str]:
        """The slides with something to show, in order (`wanted`: a subset, by name)."""
        have = {
            "company": bool(self.companies),
            "departments": bool(self.departments),
            "risks": True,  # "no red or at-risk KPIs" is worth showing too
            "matrix": bool(self.matrix),
            "freshness": bool(self.freshness),
        }
        wanted = [s for s in (wanted or SLIDES) if s in have]
        return [s for s in wanted if have[s]] or ["company"]


def screen_data(
    wh: Warehouse,
    cat: Catalog,
    codes: Iterable[str],
    lang: str,
    *,
    title: str = "",
    today: date | None = None,
) -> ScreenData | None:
    """Everything the slides show for the units `codes` (and their subtrees), for the latest
    month that is complete or published for them (a newer partial month is only named); None
    when the scope has no data yet."""
    today = today or clock.today()
    scope = unit_scope(cat, codes)
    span = data_range(wh, scope, cat)
    if span is None:
        return None
    first, latest = span
    view = completeness.in_view(wh, cat, cat.scope_roots(scope), latest, first)
    shown = view.default
    period = Period("M", shown)
    grace = alerts.load_rules(wh).stale.grace_days
    ov = overview(wh, cat, scope, period, today=today, grace_days=grace)
    name = lambda u: cat.units[u].name(lang)  # noqa: E731

    trend_months = [add_months(shown, -i) for i in range(TREND_MONTHS - 1, -1, -1)]
    roots = [r.unit_id for r in ov.roots]
    # "vs last month" compares complete or published months only.
    before = add_months(shown, -1)
    previous = completeness.settled_month(wh, cat, roots, before, first) if roots else before
    months = {*trend_months[:-1], previous} if previous >= first else set(trend_months[:-1])
    history = {m: evaluate(wh, cat, scope, roots, Period("M", m)) for m in months if roots}
    companies = []
    for root in ov.roots:
        trend = [(m, history[m][root.unit_id]) if m in history else (m, root) for m in trend_months]
        companies.append(
            CompanyTile(
                code=cat.units[root.unit_id].code,
                name=name(root.unit_id),
                score=root.score,
                status=root.status,
                previous_score=history[previous][root.unit_id].score
                if previous in history
                else None,
                trend=tuple((_month_label(m, lang), r.score, r.status) for m, r in trend),
                counts=dict(ov.counts),
                at_risk=ov.at_risk,
                coverage=root.coverage,
                previous_month=None if previous == before else _month_label(previous, lang),
            )
        )
    departments = tuple(
        DepartmentRow(cat.units[d.unit_id].code, name(d.unit_id), d.score, d.status)
        for d in ov.departments
    )

    viewer = Actor("kiosk", "viewer", scope)
    known = people.load(wh)
    actions = _actions_by_pair(open_actions(wh, cat, viewer, today=today), known)
    risks = []
    for node, _ in ov.alerts:
        kpi = cat.kpis[node.kpi_id]
        forecast = ov.at_risk_pairs.get((node.kpi_id, node.unit_id))
        actual = i18n.format_value(node.actual, kpi, lang)
        target = i18n.format_target(node.levels, kpi, lang)
        if forecast is not None and node.status != "red":
            # An at-risk row is about the year's end: the forecast against the year's target.
            actual = i18n.t(
                "bs_forecast", lang, value=i18n.format_value(forecast["forecast"], kpi, lang)
            )
            year_target = (
                f"{i18n.format_value(forecast['low'], kpi, lang)}–"
                f"{i18n.format_value(forecast['high'], kpi, lang)}"
                if kpi.direction == "range"
                else i18n.format_value(forecast["target"], kpi, lang)
            )
            target = i18n.t("bs_year_target", lang, value=year_target)
        risks.append(
            RiskRow(
                unit=name(node.unit_id),
                kpi=kpi.name(lang),
                status=node.status,
                at_risk=forecast is not None,
                actual=actual,
                target=target,
                owner=known.name(kpi.owner) or "—",
                actions=tuple(actions.get((node.kpi_id, node.unit_id), ())),
            )
        )

    matrix = [block for root in ov.roots for block in matrix_blocks(root, cat, lang)]

    as_of = _month_label(shown, lang)
    freshness = tuple(
        FreshRow(
            # The wall clips long names at the end: the "own KPIs" mark goes first.
            unit=i18n.t("bs_fr_own", lang, unit=name(f.unit_id)) if f.own else name(f.unit_id),
            latest="—" if f.latest is None else _month_label(f.latest, lang),
            state=f.state,
            text=i18n.freshness_text(f, grace, lang, wall=True),
        )
        for f in ov.freshness
    )
    newer = ""
    if view.newer:
        month = max(view.newer)
        s = view.newer[month]
        newer = i18n.t(
            "bs_newer", lang, month=_month_label(month, lang), n=s.loaded, total=s.expected
        )
    return ScreenData(
        title=title,
        lang=lang,
        period=i18n.period_label(period.label(), lang),
        as_of=as_of,
        fetched_at=datetime.now(),
        companies=tuple(companies),
        departments=departments,
        risks=tuple(risks),
        matrix=tuple(matrix),
        freshness=freshness,
        newer=newer,
    )


def matrix_blocks(root, cat: Catalog, lang: str) -> list[MatrixBlock]:
    """The status matrix of `root`'s tree cut into blocks: the root's own KPIs, then one block
    per unit right below it (a department with its regions or lines)."""
    # A unit below a department's scorecard goes with it; the rest (the root, and units below
    # it without a scorecard of their own, as a department's regions) with the root.
    heads = {c.unit_id for _, c in root.children if c.is_scorecard}
    groups: dict[int, dict[int, list]] = {}  # block's unit → unit → its KPI nodes
    for n in kpi_nodes(root, cat):
        path = [n.unit_id, *cat.ancestors(n.unit_id)]
        head = next((u for u in path if u in heads), root.unit_id)
        groups.setdefault(head, {}).setdefault(n.unit_id, []).append(n)
    blocks = []
    for head, by_unit in groups.items():
        codes = list(dict.fromkeys(n.kpi_id for nodes in by_unit.values() for n in nodes))
        base = len(cat.ancestors(head))
        rows = []
        for u, nodes in by_unit.items():
            status = {n.kpi_id: n.status for n in nodes}
            rows.append(
                MatrixRow(
                    unit=cat.units[u].name(lang),
                    depth=len(cat.ancestors(u)) - base,
                    cells=tuple(status.get(k) for k in codes),
                )
            )
        blocks.append(
            MatrixBlock(
                title=cat.units[head].name(lang),
                columns=tuple(
                    MatrixColumn(cat.kpis[k].code, cat.kpis[k].name(lang)) for k in codes
                ),
                rows=tuple(rows),
            )
        )
    return blocks


def _month_label(month: date, lang: str) -> str:
    return i18n.period_label(Period("M", month).label(), lang)


def _actions_by_pair(df: pd.DataFrame, known: people.People) -> dict[tuple[int, int], list[Action]]:
    out: dict[tuple[int, int], list[Action]] = {}
    for row in df.itertuples(index=False):
        due = None if pd.isna(row.due) else pd.Timestamp(row.due).date()
        out.setdefault((int(row.kpi_id), int(row.unit_id)), []).append(
            Action(
                text=str(row.action if pd.notna(row.action) else row.text),
                owner=known.name(row.owner if pd.notna(row.owner) else None) or "—",
                due=due,
                overdue=bool(row.overdue),
            )
        )
    return out


# --- keeping the last good data ----------------------------------------------------------------

# What a refresh may meet while the screen must stay calm: the warehouse held by an import
# (WarehouseBusyError is a KpiError), a query failing inside DuckDB, the file briefly unreadable.
REFRESH_ERRORS = (KpiError, duckdb.Error, OSError)


@dataclass(frozen=True)
class Snapshot:
    data: object | None
    fetched_at: datetime | None  # when `data` was read
    stale_since: datetime | None  # the first refresh that failed since then; None: fresh
    error: str | None = None


class LastGood:
    """Per key, the last data a refresh produced. `get` recomputes once `ttl` seconds have
    passed; if that fails it logs and returns the previous data with `stale_since`, and tries
    again on the next call. Bounded: the least recently used keys are dropped past `maxsize`."""

    def __init__(self, maxsize: int = 16):
        self.maxsize = maxsize
        self._entries: OrderedDict[Hashable, tuple[float, Snapshot]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def get(self, key: Hashable, compute: Callable[[], object], ttl: float) -> Snapshot:
        with self._lock:
            checked, snap = self._entries.get(key, (None, None))
            if snap is not None:
                self._entries.move_to_end(key)
        if snap is not None and snap.stale_since is None and time.monotonic() - checked < ttl:
            return snap
        try:
            data = compute()
        except REFRESH_ERRORS as exc:
            log.warning("screen refresh failed, keeping the last good data: %s", exc)
            now = datetime.now()
            if snap is None:
                snap = Snapshot(None, None, now, str(exc))
            else:
                snap = Snapshot(snap.data, snap.fetched_at, snap.stale_since or now, str(exc))
        else:
            snap = Snapshot(data, datetime.now(), None)
        with self._lock:
            self._entries[key] = (time.monotonic(), snap)
            self._entries.move_to_end(key)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)
        return snap


LAST_GOOD = LastGood()
