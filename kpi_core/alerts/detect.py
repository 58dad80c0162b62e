"""The detectors (DESIGN.md §4, §6): every alert condition that holds now, as `Candidate`s; writes nothing.

`evaluate` runs the five kinds of rule over the caller's scope; `at_risk` is the one meaning of
"at risk" that every board shares."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd

from kpi_core import clock, completeness, people, scoring, targets
from kpi_core.access import Actor
from kpi_core.actuals import data_range
from kpi_core.alerts.forecasts import (
    _quiet,
    anomaly_reference,
    histories,
    misses,
    robust_z,
    run_rate_forecast,
    trend_forecast,
)
from kpi_core.alerts.messages import Text, _Fmt
from kpi_core.alerts.rules import (
    AnomalyRule,
    OverdueRule,
    Rules,
    StaleRule,
    load_rules,
)
from kpi_core.catalog import SCORECARD, Catalog
from kpi_core.periods import Period, add_months, month_of
from kpi_core.scorecard import NodeResult
from kpi_core.scorecard import evaluate as evaluate_scorecards
from kpi_core.texts import N_
from kpi_core.warehouse import Warehouse

# What an evaluation finds.


@dataclass(frozen=True)
class Candidate:
    """A condition that holds now: an alert, unless it was raised already in the same state."""

    kind: str
    kpi_id: int | None
    unit_id: int
    period: date  # the month; for `at_risk` the first month of the target period (the year)
    severity: str
    state_key: str  # e.g. 'red'; a change raises a new alert
    text: Text = field(compare=False, repr=False)
    details: dict = field(default_factory=dict, compare=False)
    owner: str | None = None  # set where the rule knows better than the KPI (an action's owner)

    @property
    def message_zh(self) -> str:
        return self.text()[0]

    @property
    def message_en(self) -> str:
        return self.text()[1]

    @property
    def identity(self) -> tuple:
        return _identity(self.kind, self.kpi_id, self.unit_id, self.period, self.state_key)


def _identity(kind: str, kpi_id, unit_id: int, period: date, state_key: str) -> tuple:
    # Each overdue action is its own alert, so the action's id (its state key) is part of it.
    kpi = None if kpi_id is None or pd.isna(kpi_id) else int(kpi_id)
    return (kind, kpi, int(unit_id), period, state_key if kind == "overdue" else "")


@dataclass(frozen=True)
class Coverage:
    """What an evaluation looked at: alerts there whose condition it did not find are closed."""

    unit_ids: frozenset[int]
    everything: bool
    periods: frozenset[tuple[str, date | None]]  # (kind, period); None = any period

    def covers(self, kind: str, unit_id: int, period: date) -> bool:
        if not (self.everything or unit_id in self.unit_ids):
            return False
        return (kind, period) in self.periods or (kind, None) in self.periods


class Candidates(list):
    """`evaluate`'s result: the candidates, and what was covered (see `Coverage`)."""

    def __init__(self, items: Iterable[Candidate], month: date | None, coverage: Coverage):
        super().__init__(items)
        self.month = month
        self.coverage = coverage


# The rules.


def _kpi_nodes(results: dict[int, NodeResult]) -> list[NodeResult]:
    """Every KPI node on the evaluated scorecards, and their decompositions, once each."""
    found: dict[tuple[int, int], NodeResult] = {}
    for res in results.values():
        stack = [c for _, c in res.kpi_children()]
        while stack:
            n = stack.pop()
            key = (n.kpi_id, n.unit_id)
            if key in found:
                continue
            found[key] = n
            stack.extend(c for _, c in n.kpi_children())
    return list(found.values())


def due_month(today: date, grace_days: int) -> date:
    """The latest month whose actuals are due: ended more than `grace_days` days before today."""
    return completeness.due_month(today, grace_days)


def _month_end(month: date) -> date:
    return add_months(month, 1) - timedelta(days=1)


def _none(x) -> float | None:
    return None if x is None or (isinstance(x, float) and np.isnan(x)) else float(x)


def evaluate(
    wh: Warehouse,
    cat: Catalog,
    who: Actor,
    *,
    month: date | None = None,
    today: date | None = None,
    rules: Rules | None = None,
    forecast: bool | None = None,
) -> Candidates:
    """Every alert condition that holds for `month` (default: the latest month with data in
    the caller's scope) inside the caller's scope. Writes nothing.

    `at_risk` is a forecast from now: it is judged only for the latest month with data (or when
    `forecast` says so), never for a month in the past."""
    rules = rules or load_rules(wh)
    today = today or clock.today()
    scope = who.scope
    span = data_range(wh, scope, cat)
    latest = span[1] if span else None
    month = month_of(month) if month else latest
    if forecast is None:
        forecast = month is not None and month == latest
    fmt = _Fmt(cat)
    out: list[Candidate] = []
    periods: set[tuple[str, date | None]] = set()
    if month is not None:
        kinds = {k for k in ("status", "at_risk", "anomaly") if rules.enabled(k)}
        if not forecast:
            kinds.discard("at_risk")
        if kinds:
            out += _kpi_rules(wh, cat, who, month, rules, kinds, fmt)
        periods |= {(k, month) for k in kinds - {"at_risk"}}
        if "at_risk" in kinds:
            periods.add(("at_risk", date(month.year, 1, 1)))
    if rules.enabled("stale"):
        found, checked = _stale(wh, cat, who, today, rules.stale, fmt)
        out += found
        periods |= {("stale", m) for m in checked}
    if rules.enabled("overdue"):
        out += _overdue(wh, cat, who, today, rules.overdue, fmt)
        periods.add(("overdue", None))
    coverage = Coverage(
        frozenset(u for u in cat.units if scope.allows(u)), scope.everything, frozenset(periods)
    )
    return Candidates(out, month, coverage)


def _kpi_rules(
    wh: Warehouse,
    cat: Catalog,
    who: Actor,
    month: date,
    rules: Rules,
    kinds: set[str],
    fmt: _Fmt,
) -> list[Candidate]:
    """status, at_risk and anomaly over every KPI node of the scope's scorecards."""
    units = [u for u in cat.units if who.scope.allows(u) and cat.tree(month).get((u, SCORECARD))]
    if not units:
        return []
    results = evaluate_scorecards(wh, cat, who.scope, units, Period("M", month))
    nodes = _kpi_nodes(results)
    # A month neither complete nor published: a value that is in is real data and is judged,
    # but a roll-up lacking units' values is not — its light, anomaly and forecast wait until
    # the month is complete or published (an alert already open on it is closed as cleared).
    partial = completeness.statuses(wh, cat, cat.scope_roots(who.scope), [month]).get(month)
    if partial is not None:
        nodes = [n for n in nodes if (n.kpi_id, n.unit_id) not in partial.node_gaps]
    if not nodes:
        return []
    label = f"{month:%Y-%m}"
    out: list[Candidate] = []
    status = np.array([n.status for n in nodes], dtype=object)

    if "status" in kinds:
        severity = {scoring.RED: rules.status.red, scoring.AMBER: rules.status.amber}
        for i in np.flatnonzero((status == scoring.RED) | (status == scoring.AMBER)):
            out.append(_status_candidate(nodes[i], month, label, severity, cat, fmt))

    if not kinds & {"at_risk", "anomaly"}:
        return out
    # Histories: enough for the same month of earlier years, the year so far and the trend.
    back = max(12 * rules.anomaly.years, 12, rules.at_risk.trend_months - 1)
    months = [add_months(month, -i) for i in range(back, -1, -1)]
    pairs = [(n.kpi_id, n.unit_id) for n in nodes]
    hist = histories(wh, cat, pairs, months)
    col = len(months) - 1
    current = hist[:, col]

    if "anomaly" in kinds:
        out += _anomalies(nodes, hist, col, current, rules.anomaly, month, label, cat, fmt)
    if "at_risk" in kinds:
        ok = (status == scoring.GREEN) | (status == scoring.AMBER)
        idx = np.flatnonzero(ok)
        if len(idx):
            out += _at_risk(wh, cat, [nodes[i] for i in idx], hist[idx], month, rules, fmt)
    return out


def at_risk(
    wh: Warehouse, cat: Catalog, nodes: Iterable[NodeResult], month: date,
    rules: Rules | None = None,
) -> dict[tuple[int, int], dict]:  # fmt: skip
    """The one meaning of "at risk" (DESIGN.md §4), for the alert rule and every board alike:
    a KPI node green or amber in `month` whose forecast to the end of the year misses its
    target — the run-rate against the phased target for `sum` KPIs, a least-squares trend of
    the last months for the others. Returns (KPI, unit) → the forecast's numbers (`forecast`,
    `target`, `low`, `high`, `method`) for each node at risk."""
    rules = rules or load_rules(wh)
    chosen = {
        (n.kpi_id, n.unit_id): n
        for n in nodes
        if not n.is_scorecard and n.status in (scoring.GREEN, scoring.AMBER)
    }
    if not chosen:
        return {}
    back = max(12, rules.at_risk.trend_months - 1)
    months = [add_months(month, -i) for i in range(back, -1, -1)]
    hist = histories(wh, cat, list(chosen), months)
    found = _at_risk(wh, cat, list(chosen.values()), hist, month, rules, _Fmt(cat))
    return {(c.kpi_id, c.unit_id): c.details for c in found}


def _status_candidate(node, month, label, severity, cat, fmt) -> Candidate:
    kpi = cat.kpis[node.kpi_id]
    lv = node.levels
    light = fmt.word(node.status)
    common = {"unit": fmt.unit(node.unit_id), "kpi": fmt.kpi(kpi), "period": fmt.period(label)}
    details = {"status": node.status, "actual": node.actual, "score": node.score}
    if not node.own_actual:
        text = fmt.both(
            N_("al_status_rolled"), **common, score=f"{node.score or 0:.1f}", light=light
        )
    elif kpi.direction == "range" and lv is not None:
        text = fmt.both(
            N_("al_status_range"),
            **common,
            actual=fmt.value(kpi, node.actual),
            band=fmt.band(kpi, lv.low, lv.high),
            light=light,
        )
        details |= {"low": lv.low, "high": lv.high}
    else:
        text = fmt.both(
            N_("al_status"),
            **common,
            actual=fmt.value(kpi, node.actual),
            target=fmt.value(kpi, lv.target if lv else None),
            baseline=fmt.value(kpi, lv.baseline if lv else None),
            light=light,
        )
        details |= {"target": lv.target if lv else None, "baseline": lv.baseline if lv else None}
    return Candidate(
        "status", node.kpi_id, node.unit_id, month, severity[node.status], node.status, text,
        details,
    )  # fmt: skip


# Keys built below as "al_way_…", written out so that extraction finds them.
_AL_WAY_KEYS = (N_("al_way_high"), N_("al_way_low"))


def _anomalies(nodes, hist, col, current, rule: AnomalyRule, month, label, cat, fmt):
    ref, same = anomaly_reference(hist, col, rule)
    z, med, _mad = robust_z(current, ref, rule)
    n_ref = (~np.isnan(ref)).sum(axis=1)
    with np.errstate(invalid="ignore"):
        flagged = ~np.isnan(current) & (z >= rule.threshold)
    out = []
    for i in np.flatnonzero(flagged):
        node = nodes[i]
        kpi = cat.kpis[node.kpi_id]
        way = "high" if current[i] > med[i] else "low"
        basis = fmt.word("al_basis_same_month" if same[i] else "al_basis_recent", n=int(n_ref[i]))
        text = fmt.both(
            N_("al_anomaly"),
            unit=fmt.unit(node.unit_id),
            kpi=fmt.kpi(kpi),
            period=fmt.period(label),
            actual=fmt.value(kpi, current[i]),
            median=fmt.value(kpi, med[i]),
            basis=basis,
            z="∞" if np.isinf(z[i]) else f"{z[i]:.1f}",
            way=fmt.word(f"al_way_{way}"),
        )
        severity = "medium" if z[i] >= rule.medium_z else "low"
        details = {
            "value": float(current[i]),
            "median": float(med[i]),
            "z": None if np.isinf(z[i]) else round(float(z[i]), 3),
            "basis": "same_month" if same[i] else "last_12_months",
            "reference": int(n_ref[i]),
        }
        out.append(
            Candidate("anomaly", node.kpi_id, node.unit_id, month, severity, way, text, details)
        )
    return out


# Keys built below as "al_miss_…", written out so that extraction finds them.
_AL_MISS_KEYS = (N_("al_miss_down"), N_("al_miss_range"), N_("al_miss_up"))


def _at_risk(wh, cat, nodes, hist, month: date, rules: Rules, fmt: _Fmt) -> list[Candidate]:
    """Green or amber now; does the forecast to the end of the year miss target?"""
    rule = rules.at_risk
    n = len(nodes)
    kpi_ids = np.array([nd.kpi_id for nd in nodes], dtype=np.int32)
    unit_ids = np.array([nd.unit_id for nd in nodes], dtype=np.int32)
    year_months = Period("Y", date(month.year, 1, 1)).months
    # Levels of every month of the year, from one query: a `sum` KPI's year is the sum of its
    # phased months; other KPIs are judged by the levels that hold at the year's end.
    rep_k, rep_u = np.repeat(kpi_ids, 12), np.repeat(unit_ids, 12)
    rep_m = np.tile(np.array(year_months, dtype="datetime64[D]"), n)
    lv = targets.levels_by_month(wh, cat, rep_k, rep_u, rep_m)
    lv = {f: v.reshape(n, 12) for f, v in lv.items()}
    is_sum = np.array([cat.kpis[k].aggregation == "sum" for k in kpi_ids.tolist()])
    direction = cat.kpi_columns.direction[kpi_ids].astype(str)

    elapsed = month.month
    ytd = hist[:, hist.shape[1] - elapsed :]
    has = ~np.isnan(ytd)
    n_months = has.sum(axis=1)
    ytd_actual = np.where(has, ytd, 0.0).sum(axis=1)
    end = {}
    for f in ("target", "low", "high"):
        m = lv[f]
        with _quiet():
            year_total = np.where(np.isnan(m).all(axis=1), np.nan, np.nansum(m, axis=1))
        last = np.full(n, np.nan)
        for c in range(12):  # the latest month of the year with a level
            last = np.where(np.isnan(m[:, c]), last, m[:, c])
        end[f] = np.where(is_sum, year_total, last)
    ytd_target = np.where(has, lv["target"][:, :elapsed], 0.0).sum(axis=1)
    rr = run_rate_forecast(
        ytd_actual,
        n_months,
        12,
        ytd_target=ytd_target if rule.phased else None,
        period_target=end["target"] if rule.phased else None,
    )
    window = hist[:, hist.shape[1] - rule.trend_months :]
    horizon = 12 - month.month
    tr, slope = trend_forecast(window, horizon, rule.min_points)
    forecast = np.where(is_sum, rr, tr)
    miss = misses(forecast, end["target"], end["low"], end["high"], direction)
    out = []
    year = f"{month.year}"
    end_label = f"{month.year}-12"
    for i in np.flatnonzero(miss):
        node = nodes[i]
        kpi = cat.kpis[node.kpi_id]
        ranged = kpi.direction == "range"
        target = (
            fmt.band(kpi, end["low"][i], end["high"][i])
            if ranged
            else fmt.value(kpi, end["target"][i])
        )
        common = {
            "unit": fmt.unit(node.unit_id),
            "kpi": fmt.kpi(kpi),
            "forecast": fmt.value(kpi, forecast[i]),
            "target": target,
            "miss": fmt.word(f"al_miss_{kpi.direction}"),
        }
        details = {
            "method": "run_rate" if is_sum[i] else "trend",
            "forecast": float(forecast[i]),
            "target": _none(end["target"][i]),
            "low": _none(end["low"][i]),
            "high": _none(end["high"][i]),
            "as_of": f"{month:%Y-%m}",
        }
        if is_sum[i]:
            text = fmt.both(
                N_("al_at_risk_run_rate"),
                **common,
                ytd=fmt.value(kpi, ytd_actual[i]),
                months=int(n_months[i]),
                year=fmt.period(year),
            )
            details |= {"ytd": float(ytd_actual[i]), "months": int(n_months[i])}
        else:
            text = fmt.both(
                N_("al_at_risk_trend"),
                **common,
                months=rule.trend_months,
                slope=fmt.value(kpi, slope[i], signed=True),
                end=fmt.period(end_label),
            )
            details |= {"slope": float(slope[i])}
        out.append(
            Candidate(
                "at_risk",
                node.kpi_id,
                node.unit_id,
                date(month.year, 1, 1),
                rule.severity,
                "at_risk",
                text,
                details,
            )  # fmt: skip
        )
    return out


def _stale(wh, cat, who, today: date, rule: StaleRule, fmt: _Fmt):
    """The partial and overdue rows of the freshness list (`completeness.freshness`, the same
    judgement the Overview and the wall show), and the months of stale alerts still open,
    judged again the same way (are they in now?)."""
    scope_ids = [u for u in cat.units if who.scope.allows(u)]
    reopen = [
        r[0]
        for r in wh.rows(
            """SELECT DISTINCT period FROM alert_event
               WHERE kind = 'stale' AND state <> 'closed' AND list_contains(?, unit_id)""",
            [scope_ids],
        )
    ]
    found, checked = completeness.stale(wh, cat, who.scope, today, rule.grace_days, reopen)
    out = []
    for f in found:
        label = f"{f.month:%Y-%m}"
        details = {"month": label, "days": f.days, "loaded": f.status.loaded,
                   "expected": f.status.expected,
                   "missing": [cat.units[u].code for u in f.status.missing_units]}  # fmt: skip
        common = {"unit": fmt.unit(f.unit_id), "period": fmt.period(label), "days": f.days}
        if f.state == completeness.OVERDUE:
            text = fmt.both(N_("al_stale"), **common)
            key = "missing"
        else:
            text = fmt.both(
                N_("al_stale_partial"), **common, n=f.status.loaded, total=f.status.expected,
                units=fmt.units(f.status.missing_units),
            )  # fmt: skip
            key = completeness.PARTIAL
        out.append(Candidate("stale", None, f.unit_id, f.month, rule.severity, key, text, details))
    return out, checked


def _overdue(wh, cat, who, today: date, rule: OverdueRule, fmt: _Fmt) -> list[Candidate]:
    rows = wh.rows(
        """SELECT id, kpi_id, unit_id, period, action, owner, due FROM comment
           WHERE action IS NOT NULL AND state = 'open' AND due < ?
           ORDER BY id""",
        [today],
    )
    out = []
    known = people.load(wh) if rows else None
    for cid, kpi_id, unit_id, period, action, owner, due in rows:
        if not who.scope.allows(unit_id) or kpi_id not in cat.kpis:
            continue
        kpi = cat.kpis[kpi_id]
        text = fmt.both(
            N_("al_overdue"),
            unit=fmt.unit(unit_id),
            kpi=fmt.kpi(kpi),
            period=fmt.period(f"{period:%Y-%m}"),
            action=action,
            due=f"{due:%Y-%m-%d}",
            days=(today - due).days,
            owner=known.name(owner) or fmt.word("al_nobody"),
        )
        details = {"comment_id": cid, "due": f"{due:%Y-%m-%d}", "days": (today - due).days}
        out.append(
            Candidate(
                "overdue",
                kpi_id,
                unit_id,
                period,
                rule.severity,
                f"action {cid}",
                text,
                details,
                owner,
            )  # fmt: skip
        )
    return out
