"""Alert rules (DESIGN.md §4, §6): what needs somebody's attention, raised once, closed by itself.

Five kinds of rule, each with defaults an admin may override (`alert_rule`, JSON per kind):

- `status`: a KPI node's light for the month is red (severity high) or amber (medium);
- `at_risk`: green or amber now, but the forecast to the end of the target period (the year)
  misses target — the year-to-date run-rate for `sum` KPIs, a least-squares trend over the last
  months for the others; for `range` KPIs, a forecast outside [low, high];
- `anomaly`: the month's value far outside its own history — a robust z-score against the
  median and MAD of the same calendar month in earlier years (so a December peak that comes
  every December is not news), or of the last 12 months when fewer earlier years exist;
- `stale`: a unit with a scorecard has no actuals for the last closed month some days after it
  ended (kpi_id NULL);
- `overdue`: an open review action past its due date.

`evaluate` computes what holds now (no writes); `raise_alerts` turns that into `alert_event`
rows: a (KPI, unit, period, kind) whose latest alert has the same `state_key` is not raised
again; a changed state (amber → red) raises a new alert and closes the old one; an alert whose
condition no longer holds is closed by the system. `run` does both, and pushes when asked.

The heavy part is vectorised: one scorecard evaluation of the scope for the month, one query for
the monthly histories of all its KPI nodes (plus one for units that take their child units'
values), one for their targets; forecasts and robust z-scores are numpy over the whole matrix.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

from kpi_core import audit, clock, completeness, formula, i18n, links, people, scoring, targets
from kpi_core.access import can
from kpi_core.actuals import MONTHLY_SQL, base_pairs
from kpi_core.board import data_range
from kpi_core.catalog import SCORECARD, Catalog, load_catalog
from kpi_core.errors import KpiError, NotFoundError, ScopeError
from kpi_core.library import Kpi
from kpi_core.memo import by_data_version
from kpi_core.pairs import select
from kpi_core.periods import Period, add_months, month_of
from kpi_core.scorecard import NodeResult
from kpi_core.scorecard import evaluate as evaluate_scorecards
from kpi_core.service import Actor
from kpi_core.warehouse import Warehouse

log = logging.getLogger(__name__)

KINDS = ("status", "at_risk", "anomaly", "stale", "overdue")
SEVERITIES = ("high", "medium", "low")
STATES = ("open", "acknowledged", "closed")
OPEN, ACKNOWLEDGED, CLOSED = STATES
CLEARED = "condition cleared"
# A load evaluates the months it covers, but only recent ones: a backfill of past years would
# otherwise flood owners with alerts about months closed long ago (the Board shows those).
RECENT_MONTHS = 3


class AlertError(KpiError):
    """An alert rule or an alert action was refused; the message says why."""


# Rule settings. Field types are the validation: a stored override must have the default's type.


@dataclass(frozen=True)
class StatusRule:
    enabled: bool = True
    red: str = "high"
    amber: str = "medium"


@dataclass(frozen=True)
class AtRiskRule:
    enabled: bool = True
    severity: str = "medium"
    trend_months: int = 6  # months the trend of a non-`sum` KPI is fitted on
    min_points: int = 3  # fewer months with data give no trend
    # A `sum` KPI's run-rate divides by the phased share of the months elapsed, so a seasonal
    # profile's quiet months do not look like a miss; with `even` phasing this is exactly
    # YTD / months × 12. False: the plain YTD / months × 12 whatever the profile.
    phased: bool = True


@dataclass(frozen=True)
class AnomalyRule:
    enabled: bool = True
    threshold: float = 3.5  # robust z at or above which a value is an anomaly (severity low)
    medium_z: float = 7.0  # … and at or above which its severity is medium
    years: int = 3  # earlier years of the same month looked at
    min_years: int = 2  # fewer than this: the last 12 months are the reference instead
    min_history: int = 6  # fewer months in the reference: no judgement
    # A history of identical values has MAD 0, which would make any change infinitely
    # anomalous: the MAD is at least this share of |median|.
    mad_floor: float = 0.01


@dataclass(frozen=True)
class StaleRule:
    enabled: bool = True
    grace_days: int = 5  # days after a month's end before its missing actuals are flagged
    severity: str = "medium"


@dataclass(frozen=True)
class OverdueRule:
    enabled: bool = True
    severity: str = "medium"


@dataclass(frozen=True)
class Rules:
    status: StatusRule = field(default_factory=StatusRule)
    at_risk: AtRiskRule = field(default_factory=AtRiskRule)
    anomaly: AnomalyRule = field(default_factory=AnomalyRule)
    stale: StaleRule = field(default_factory=StaleRule)
    overdue: OverdueRule = field(default_factory=OverdueRule)

    def enabled(self, kind: str) -> bool:
        return getattr(self, kind).enabled


def _override(rule, kind: str, enabled: bool, params: dict):
    """The rule with stored overrides, each checked against the default's type."""
    known = {f.name: type(getattr(rule, f.name)) for f in fields(rule)}
    values: dict[str, object] = {"enabled": bool(enabled)}
    for name, value in params.items():
        if name not in known or name == "enabled":
            raise AlertError(
                f"Alert rule '{kind}' has no setting '{name}' — use one of "
                f"{', '.join(n for n in known if n != 'enabled')}."
            )
        want = known[name]
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, want) or (want is not bool and isinstance(value, bool)):
            raise AlertError(
                f"Alert rule '{kind}', setting '{name}': {value!r} is not a {want.__name__}."
            )
        if name in ("severity", "red", "amber") and value not in SEVERITIES:
            raise AlertError(f"Alert rule '{kind}': severity must be one of {SEVERITIES}.")
        values[name] = value
    return replace(rule, **values)


def load_rules(wh: Warehouse) -> Rules:
    """The defaults with what `alert_rule` overrides."""
    rules = Rules()
    for kind, enabled, params in wh.rows("SELECT kind, enabled, params FROM alert_rule"):
        if kind not in KINDS:
            continue  # a kind this version does not know
        try:
            parsed = json.loads(params or "{}")
        except json.JSONDecodeError as exc:
            raise AlertError(
                f"Alert rule '{kind}': its settings are not valid JSON ({exc})."
            ) from None
        rules = replace(rules, **{kind: _override(getattr(rules, kind), kind, enabled, parsed)})
    return rules


def save_rule(wh: Warehouse, who: Actor, kind: str, *, enabled: bool, params: dict) -> None:
    """Store a rule's settings (admins); checked first, audited."""
    if not can(who, "edit_alert_rules"):
        raise ScopeError("Only admins change alert rules.")
    if kind not in KINDS:
        raise AlertError(f"There is no alert rule '{kind}' — use one of {', '.join(KINDS)}.")
    _override(getattr(Rules(), kind), kind, enabled, params)
    text = json.dumps(params, sort_keys=True)
    now = datetime.now()
    with wh.transaction() as cur:
        old = cur.execute(
            "SELECT enabled, params FROM alert_rule WHERE kind = ?", [kind]
        ).fetchone()
        cur.execute(
            "INSERT OR REPLACE INTO alert_rule VALUES (?, ?, ?, ?, ?)",
            [kind, enabled, text, who.name, now],
        )
        audit.record(
            cur, changed_at=now, changed_by=who.name, entity="alert_rule", key=kind,
            field="settings", old=None if old is None else f"{old[0]} {old[1]}",
            new=f"{enabled} {text}",
        )  # fmt: skip


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


@dataclass(frozen=True)
class Alert:
    id: int
    kind: str
    kpi_id: int | None
    unit_id: int
    kpi: str | None  # code
    unit: str  # code
    period: date
    severity: str
    state_key: str
    owner: str | None
    message_zh: str
    message_en: str
    details: dict
    state: str
    raised_at: datetime

    @property
    def period_label(self) -> str:
        return _period_label(self.kind, self.period)

    def message(self, lang: str) -> str:
        return self.message_zh if lang == "zh" else self.message_en


@dataclass
class RunResult:
    months: list[date]
    new: list[Alert]
    closed: list[int]  # ids closed by the system (cleared or superseded)
    deliveries: list | None = None  # what push.deliver returned, when pushing


def _period_label(kind: str, period: date) -> str:
    return f"{period.year}" if kind == "at_risk" else f"{period:%Y-%m}"


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


def _month_index(d) -> np.ndarray:
    return np.asarray(d, dtype="datetime64[M]").astype(np.int64)


def histories(
    wh: Warehouse, cat: Catalog, pairs: list[tuple[int, int]], months: list[date]
) -> np.ndarray:
    """Monthly values of (KPI, unit) pairs over consecutive `months`: a (pairs × months) matrix,
    NaN where there is none. The KPI's rules per month: ratios of summed parts, formulas of
    their parts; a unit with no actuals of its own for a stored KPI takes its child units'
    (`sum`/`last` add, `avg` averages)."""
    width = len(months)
    out = np.full((len(pairs), width), np.nan)
    if not pairs:
        return out
    base = sorted(base_pairs(cat, pairs))
    table = _fetch_matrix(wh, base, months)
    # Stored pairs with their own rows: one gather.
    rows: dict[tuple[int, int], np.ndarray] = table
    memo: dict[tuple[int, int], np.ndarray] = {}
    missing = [
        p for p in base if p not in rows and cat.kpis[p[0]].aggregation in ("sum", "avg", "last")
    ]
    if missing:
        extra = {(k, d) for k, u in missing for d in cat.descendants(u)[1:]} - set(rows)
        rows = {**rows, **_fetch_matrix(wh, sorted(extra), months)}
    nan = np.full(width, np.nan)

    def get(k: int, u: int) -> np.ndarray:
        key = (k, u)
        if key in memo:
            return memo[key]
        memo[key] = nan  # guards against cycles
        kpi = cat.kpis.get(k)
        own = rows.get(key)
        if kpi is None:
            value = nan
        elif kpi.aggregation == "ratio":
            num, den = (
                cat.kpi_by_code.get(kpi.numerator or ""),
                cat.kpi_by_code.get(kpi.denominator or ""),
            )
            value = nan
            if num is not None and den is not None:
                n, d = get(num.id, u), get(den.id, u)
                with np.errstate(divide="ignore", invalid="ignore"):
                    value = np.where(d == 0, np.nan, n / d)
            if own is not None:  # a ratio stored as such stands for its single month
                value = np.where(np.isnan(value), own, value)
        elif kpi.aggregation == "formula":
            value = nan
            if kpi.parsed is not None:
                parts = {}
                for code in formula.references(kpi.parsed):
                    dep = cat.kpi_by_code.get(code)
                    parts[code] = get(dep.id, u) if dep else nan
                value = formula.evaluate_arrays(kpi.parsed, parts, width)
        elif own is not None:
            value = own
        else:
            kids = [get(k, c) for c in cat.children_of.get(u, [])]
            kids = [v for v in kids if not np.isnan(v).all()]
            if not kids:
                value = nan
            else:
                stack = np.vstack(kids)
                with _quiet():
                    if kpi.aggregation == "avg":
                        value = np.nanmean(stack, axis=0)
                    else:
                        value = np.where(
                            np.isnan(stack).all(axis=0), np.nan, np.nansum(stack, axis=0)
                        )
        memo[key] = value
        return value

    for i, (k, u) in enumerate(pairs):
        own = rows.get((k, u))
        if own is not None and cat.kpis[k].aggregation in ("sum", "avg", "last"):
            out[i] = own
        else:
            out[i] = get(k, u)
    return out


def _fetch_matrix(
    wh: Warehouse, pairs: list[tuple[int, int]], months: list[date]
) -> dict[tuple[int, int], np.ndarray]:
    """The stored rows of some pairs as one row of monthly values per pair that has any."""
    if not pairs:
        return {}
    k, u = zip(*pairs, strict=True)
    got = select(wh, MONTHLY_SQL, k, u, [months[0], months[-1]])
    if len(got["kpi_id"]) == 0:
        return {}
    keys = got["kpi_id"].astype(np.int64) << 32 | got["unit_id"].astype(np.int64)
    uniq, inverse = np.unique(keys, return_inverse=True)
    col = _month_index(got["period"]) - _month_index(months[0])
    matrix = np.full((len(uniq), len(months)), np.nan)
    matrix[inverse, col] = got["value"]
    return {
        (int(key >> 32), int(key & 0xFFFFFFFF)): matrix[i] for i, key in enumerate(uniq.tolist())
    }


def robust_z(
    values: np.ndarray, reference: np.ndarray, rule: AnomalyRule = AnomalyRule()
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Robust z-scores of `values` (n) against rows of `reference` (n × m, NaN = none):
    |x − median| / (1.4826 · MAD), 1.4826 making the MAD a standard deviation for normal data.
    Returns (z, median, mad); z is NaN where the reference is too short."""
    with np.errstate(invalid="ignore"), _quiet():
        med = np.nanmedian(reference, axis=1)
        mad = np.nanmedian(np.abs(reference - med[:, None]), axis=1)
        mad = np.maximum(mad, rule.mad_floor * np.abs(med))
        z = np.abs(values - med) / (1.4826 * mad)
    z = np.where(mad > 0, z, np.where(values == med, 0.0, np.inf))
    return z, med, mad


@contextmanager
def _quiet() -> Iterator[None]:
    """All-NaN rows are expected (a pair without history); numpy's warning about them is not."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def anomaly_reference(
    hist: np.ndarray, col: int, rule: AnomalyRule = AnomalyRule()
) -> tuple[np.ndarray, np.ndarray]:
    """For the month at column `col` of a (pairs × months) history: the reference values per
    pair — the same calendar month of up to `rule.years` earlier years when at least
    `rule.min_years` of them have data, else the 12 months before — and which was used
    (True = same month)."""
    same_cols = [col - 12 * y for y in range(1, rule.years + 1) if col - 12 * y >= 0]
    same = hist[:, same_cols] if same_cols else np.full((len(hist), 0), np.nan)
    recent = hist[:, max(0, col - 12) : col]
    use_same = (~np.isnan(same)).sum(axis=1) >= rule.min_years
    width = max(same.shape[1], recent.shape[1])
    ref = np.full((len(hist), width), np.nan)
    ref[:, : recent.shape[1]] = np.where(use_same[:, None], np.nan, recent)
    if same.shape[1]:
        ref[use_same, : same.shape[1]] = same[use_same]
    enough = np.where(use_same, True, (~np.isnan(recent)).sum(axis=1) >= rule.min_history)
    ref[~enough] = np.nan
    return ref, use_same


def trend_forecast(
    values: np.ndarray, horizon: np.ndarray | int, min_points: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares line through each row of `values` (n × m, consecutive months, NaN = none),
    extrapolated `horizon` months past the row's last column. Returns (forecast, slope per
    month); NaN where fewer than `min_points` months have data."""
    y = np.asarray(values, dtype=float)
    x = np.arange(y.shape[1], dtype=float)[None, :]
    w = ~np.isnan(y)
    yz = np.where(w, y, 0.0)
    n = w.sum(axis=1).astype(float)
    sx, sy = (w * x).sum(axis=1), yz.sum(axis=1)
    sxx, sxy = (w * x * x).sum(axis=1), (yz * x).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = (n * sxy - sx * sy) / (n * sxx - sx * sx)
        intercept = (sy - slope * sx) / n
    at = y.shape[1] - 1 + np.asarray(horizon, dtype=float)
    forecast = intercept + slope * at
    ok = n >= max(min_points, 2)
    return np.where(ok, forecast, np.nan), np.where(ok, slope, np.nan)


def run_rate_forecast(
    ytd_actual: np.ndarray,
    months_with_data: np.ndarray,
    period_months: int = 12,
    *,
    ytd_target: np.ndarray | None = None,
    period_target: np.ndarray | None = None,
) -> np.ndarray:
    """A `sum` KPI's total at the end of the period at the pace so far: YTD / months × period
    months; or, given the phased targets, YTD × period target / target of the months so far."""
    with np.errstate(invalid="ignore", divide="ignore"):
        plain = ytd_actual / months_with_data * period_months
        if ytd_target is None or period_target is None:
            return np.where(months_with_data > 0, plain, np.nan)
        phased = ytd_actual * period_target / ytd_target
        phased = np.where(np.isfinite(phased) & (ytd_target != 0), phased, plain)
    return np.where(months_with_data > 0, phased, np.nan)


def misses(forecast, target, low, high, direction) -> np.ndarray:
    """Whether forecasts miss: below target (`up`), above it (`down`), outside [low, high]."""
    f = np.asarray(forecast, dtype=float)
    t, lo, hi = (np.asarray(a, dtype=float) for a in (target, low, high))
    direction = np.asarray(direction)
    eps = 1e-9 * np.maximum(1.0, np.abs(np.nan_to_num(t)))
    with np.errstate(invalid="ignore"):
        up = f < t - eps
        down = f > t + eps
        ranged = (f < np.where(np.isnan(lo), -np.inf, lo)) | (
            f > np.where(np.isnan(hi), np.inf, hi)
        )
        ranged &= ~(np.isnan(lo) & np.isnan(hi))
    out = np.select([direction == "up", direction == "down"], [up, down], ranged)
    return out & ~np.isnan(f)


def due_month(today: date, grace_days: int) -> date:
    """The latest month whose actuals are due: ended more than `grace_days` days before today."""
    return completeness.due_month(today, grace_days)


def _month_end(month: date) -> date:
    return add_months(month, 1) - timedelta(days=1)


class Text:
    """A message in both languages, written when first read: most conditions found on a
    routine run were raised before, and formatting thousands of numbers twice would be most of
    the run's time."""

    def __init__(self, key: str, values: dict):
        self.key = key
        self.values = values  # plain values, or functions of the language
        self._done: tuple[str, str] | None = None

    def __call__(self) -> tuple[str, str]:
        if self._done is None:
            out = []
            for lang in ("zh", "en"):
                vals = {k: (v(lang) if callable(v) else v) for k, v in self.values.items()}
                out.append(i18n.t(self.key, lang, **vals))
            self._done = (out[0], out[1])
        return self._done


class _Fmt:
    """Messages in both languages from the i18n table, numbers the local way."""

    def __init__(self, cat: Catalog):
        self.cat = cat

    @staticmethod
    def both(key: str, **values) -> Text:
        return Text(key, values)

    def value(self, kpi: Kpi, v: float | None, signed: bool = False):
        def f(lang: str) -> str:
            if v is None or (isinstance(v, float) and np.isnan(v)):
                return "—"
            if signed and kpi.is_percent:  # a change of a percentage is in points
                return f"{float(v) * 100:+.2f}pp"
            text = i18n.format_value(float(v), kpi, lang)
            return f"+{text}" if signed and v >= 0 else text

        return f

    def band(self, kpi: Kpi, low, high):
        return lambda lang: f"{self.value(kpi, low)(lang)} – {self.value(kpi, high)(lang)}"

    def unit(self, unit_id: int):
        return lambda lang: self.cat.units[unit_id].name(lang)

    def kpi(self, kpi: Kpi):
        return lambda lang: kpi.name(lang)

    @staticmethod
    def period(label: str):
        return lambda lang: i18n.period_label(label, lang)

    @staticmethod
    def word(key: str):
        return lambda lang: i18n.t(key, lang)


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
        text = fmt.both("al_status_rolled", **common, score=f"{node.score or 0:.1f}", light=light)
    elif kpi.direction == "range" and lv is not None:
        text = fmt.both(
            "al_status_range",
            **common,
            actual=fmt.value(kpi, node.actual),
            band=fmt.band(kpi, lv.low, lv.high),
            light=light,
        )
        details |= {"low": lv.low, "high": lv.high}
    else:
        text = fmt.both(
            "al_status",
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
        basis = (
            (lambda lang, n=int(n_ref[i]): i18n.t("al_basis_same_month", lang, n=n))
            if same[i]
            else (lambda lang, n=int(n_ref[i]): i18n.t("al_basis_recent", lang, n=n))
        )
        text = fmt.both(
            "al_anomaly",
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
                "al_at_risk_run_rate",
                **common,
                ytd=fmt.value(kpi, ytd_actual[i]),
                months=int(n_months[i]),
                year=fmt.period(year),
            )
            details |= {"ytd": float(ytd_actual[i]), "months": int(n_months[i])}
        else:
            text = fmt.both(
                "al_at_risk_trend",
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
            text = fmt.both("al_stale", **common)
            key = "missing"
        else:
            units = [fmt.unit(u) for u in f.status.missing_units]
            text = fmt.both(
                "al_stale_partial", **common, n=f.status.loaded, total=f.status.expected,
                units=lambda lang, units=units: "、".join(u(lang) for u in units)
                if lang == "zh" else ", ".join(u(lang) for u in units),
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
            "al_overdue",
            unit=fmt.unit(unit_id),
            kpi=fmt.kpi(kpi),
            period=fmt.period(f"{period:%Y-%m}"),
            action=action,
            due=f"{due:%Y-%m-%d}",
            days=(today - due).days,
            owner=known.name(owner) or (lambda lang: i18n.t("al_nobody", lang)),
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


# Raising, closing, reading.


_LATEST_SQL = """
SELECT id, kind, kpi_id, unit_id, period, state_key, state, resolution
FROM alert_event
QUALIFY row_number() OVER (
    PARTITION BY kind, kpi_id, unit_id, period,
                 CASE WHEN kind = 'overdue' THEN state_key END
    ORDER BY id DESC) = 1
"""


def raise_alerts(
    wh: Warehouse,
    cat: Catalog,
    who: Actor,
    candidates: list[Candidate],
    *,
    now: datetime | None = None,
) -> list[Alert]:
    """Record the candidates that are news (see the module's docstring) in one transaction;
    close what they supersede and, for a `Candidates` from `evaluate`, what no longer holds.
    Returns the new alerts."""
    return _apply(wh, cat, who, candidates, now or datetime.now())[0]


def _apply(wh, cat, who, candidates, now: datetime) -> tuple[list[Alert], list[int]]:
    coverage: Coverage | None = getattr(candidates, "coverage", None)
    with wh.transaction() as cur:
        latest = {
            _identity(kind, k, u, p, sk): (aid, sk, state, res)
            for aid, kind, k, u, p, sk, state, res in cur.execute(_LATEST_SQL).fetchall()
        }
        fresh: list[Candidate] = []
        superseded: list[tuple[int, str]] = []
        seen: set[tuple] = set()
        for c in candidates:
            if not who.scope.allows(c.unit_id) or c.identity in seen:
                continue
            seen.add(c.identity)
            prev = latest.get(c.identity)
            if prev is not None and prev[1] == c.state_key and prev[3] != CLEARED:
                continue  # raised before in this state (and still so, or closed by a person)
            fresh.append(c)
            if prev is not None and prev[2] != CLOSED:
                superseded.append((prev[0], c.state_key))
        cleared = []
        if coverage is not None:
            cleared = [
                aid
                for ident, (aid, _sk, state, _res) in latest.items()
                if state != CLOSED
                and ident not in seen
                and coverage.covers(ident[0], ident[2], ident[3])
            ]
        if not fresh and not superseded and not cleared:
            return [], []
        if fresh:
            # Owners are stored as users where they are users (people.py); where nothing names
            # anybody (a stale-data alert), the unit's head or else its scope's analysts.
            known = people.load(cur)
            answering = (
                known.answering_for(cat) if any(not _kpi_owner(cat, c) for c in fresh) else {}
            )
        ids = [
            r[0]
            for r in cur.execute(
                "SELECT nextval('alert_id') FROM range(?)", [len(fresh)]
            ).fetchall()
        ]
        alerts = [
            Alert(
                aid,
                c.kind,
                c.kpi_id,
                c.unit_id,
                cat.kpis[c.kpi_id].code if c.kpi_id is not None else None,
                cat.units[c.unit_id].code,
                c.period,
                c.severity,
                c.state_key,
                known.canonical(c.owner or _kpi_owner(cat, c)) or answering.get(c.unit_id),
                c.message_zh,
                c.message_en,
                c.details,
                OPEN,
                now,
            )  # fmt: skip
            for aid, c in zip(ids, fresh, strict=True)
        ]
        if alerts:
            _insert(cur, alerts)
        closing = [(aid, f"superseded: now {state}") for aid, state in superseded]
        closing += [(aid, CLEARED) for aid in cleared]
        if closing:
            cur.executemany(
                """UPDATE alert_event SET state = 'closed', closed_by = 'system', closed_at = ?,
                          resolution = ? WHERE id = ?""",
                [[now, res, aid] for aid, res in closing],
            )
        changes = [(a.id, _key(a.unit, a.kpi, a.period, a.kind), None, OPEN, None) for a in alerts]
        if closing:
            keys = dict(((aid, key) for aid, key in _keys(cur, [aid for aid, _ in closing])))
            changes += [(aid, keys[aid], "open", CLOSED, res) for aid, res in closing]
        _audit_many(cur, now, "system", changes)
    return alerts, [aid for aid, _ in closing]


def _kpi_owner(cat: Catalog, c: Candidate) -> str | None:
    if c.kpi_id is None or c.kpi_id not in cat.kpis:
        return None
    return cat.kpis[c.kpi_id].owner or None


def _key(unit: str, kpi: str | None, period: date, kind: str) -> str:
    # Unit first, as other audit keys, so the log's key-prefix filter finds a unit's alerts.
    return f"{unit}/{kpi or '-'}/{period:%Y-%m}/{kind}"


def _keys(cur, ids: list[int]) -> list[tuple[int, str]]:
    rows = cur.execute(
        """SELECT a.id, u.code, k.code, a.period, a.kind FROM alert_event a
           JOIN org_unit u ON u.id = a.unit_id LEFT JOIN kpi k ON k.id = a.kpi_id
           WHERE list_contains(?, a.id)""",
        [ids],
    ).fetchall()
    return [(aid, _key(u, k, p, kind)) for aid, u, k, p, kind in rows]


def _insert(cur, alerts: list[Alert]) -> None:
    frame = pd.DataFrame(
        {
            "id": [a.id for a in alerts],
            "kpi_id": pd.array([a.kpi_id for a in alerts], dtype="Int32"),
            "unit_id": [a.unit_id for a in alerts],
            "period": pd.to_datetime([a.period for a in alerts]),
            "kind": [a.kind for a in alerts],
            "severity": [a.severity for a in alerts],
            "state_key": [a.state_key for a in alerts],
            "owner": pd.array([a.owner for a in alerts], dtype=object),
            "message_zh": [a.message_zh for a in alerts],
            "message_en": [a.message_en for a in alerts],
            "details": [json.dumps(a.details, ensure_ascii=False, default=str) for a in alerts],
            "raised_at": pd.to_datetime([a.raised_at for a in alerts]),
        }
    )
    cur.register("new_alerts", frame)
    try:
        cur.execute(
            """INSERT INTO alert_event (id, kpi_id, unit_id, period, kind, severity, state_key,
                                        owner, message_zh, message_en, details, state, raised_at)
               SELECT id, kpi_id, unit_id, period::DATE, kind, severity, state_key,
                      owner::VARCHAR, message_zh, message_en, details, 'open', raised_at
               FROM new_alerts"""
        )
    finally:
        cur.unregister("new_alerts")


def _audit_many(cur, now: datetime, by: str, rows: list[tuple]) -> None:
    """Audit rows (alert id, key, old state, new state, reason) for state changes."""
    if not rows:
        return
    frame = pd.DataFrame(
        {
            "key": [f"{key}#{aid}" for aid, key, *_ in rows],
            "old": pd.array([r[2] for r in rows], dtype=object),
            "new": [r[3] for r in rows],
            "reason": pd.array([r[4] for r in rows], dtype=object),
        }
    )
    audit.record_many(cur, frame, changed_at=now, changed_by=by, entity="alert", field="state")


def run(
    wh: Warehouse,
    who: Actor,
    *,
    push: bool = False,
    today: date | None = None,
    month: date | None = None,
    months: Iterable[date] | None = None,
    now: datetime | None = None,
) -> RunResult:
    """Evaluate and raise: for `month` (default the latest with data in scope), or for the
    `months` a load covered (the recent ones; see RECENT_MONTHS). With `push`, deliver the new
    alerts and any open alert never pushed (raised by a load, say) through kpi_core.push."""
    cat = load_catalog(wh)
    rules = load_rules(wh)
    if months is not None:
        span = data_range(wh, who.scope, cat)
        if span is None:
            chosen: list[date | None] = []
        else:
            recent = add_months(span[1], -(RECENT_MONTHS - 1))
            chosen = sorted({month_of(m) for m in months if month_of(m) >= recent})
        # Nothing recent (a backfill): the latest month, so stale data and overdue actions are
        # checked all the same.
        chosen = chosen or [None]
    else:
        chosen = [month]
    new: list[Alert] = []
    closed: list[int] = []
    done: list[date] = []
    for m in chosen:
        found = evaluate(wh, cat, who, month=m, today=today, rules=rules)
        got, shut = _apply(wh, cat, who, found, now or datetime.now())
        new += got
        closed += shut
        if found.month is not None:
            done.append(found.month)
    result = RunResult(done, new, closed)
    if push:
        pending = {a.id: a for a in [*new, *unpushed(wh, cat, who)]}
        result.deliveries = push_alerts(wh, list(pending.values()))
    return result


def push_alerts(wh: Warehouse, raised: list[Alert]) -> list:
    """Deliver alerts to the enabled push channels (kpi_core.push: retries, log, never raises).
    Only those still open when the push starts: an alert closed meanwhile (its batch rolled
    back, say) speaks of values that no longer exist."""
    from kpi_core import push  # loaded only when pushing

    if raised:
        still = {
            r[0]
            for r in wh.rows(
                "SELECT id FROM alert_event WHERE list_contains(?, id) AND state <> 'closed'",
                [[a.id for a in raised]],
            )
        }
        raised = [a for a in raised if a.id in still]
    messages = push_messages(wh, raised)
    return push.deliver(wh, messages) if messages else []


def push_messages(wh: Warehouse, raised: list[Alert]) -> list:
    """The push messages of alerts, their owners by display name."""
    from kpi_core import push  # loaded only when pushing

    known = people.load(wh) if raised else None
    return [push.PushMessage(**to_message(a, known)) for a in raised]


def to_message(alert: Alert, known: people.People | None = None) -> dict:
    """The fields of kpi_core.push.PushMessage for an alert; the owner as `known` shows it."""
    kind = {lang: i18n.t(f"al_kind_{alert.kind}", lang) for lang in ("zh", "en")}
    sev = {lang: i18n.t(f"al_sev_{alert.severity}", lang) for lang in ("zh", "en")}
    what = alert.kpi or ""
    return {
        "alert_id": alert.id,
        "severity": alert.severity,
        "kind": alert.kind,
        "title_zh": f"【{sev['zh']}·{kind['zh']}】{alert.unit}{' / ' + what if what else ''}",
        "title_en": f"[{sev['en']}, {kind['en']}] {alert.unit}{' / ' + what if what else ''}",
        "text_zh": alert.message_zh,
        "text_en": alert.message_en,
        "kpi": alert.kpi,
        "unit": alert.unit,
        "period": alert.period_label,
        "owner": known.name(alert.owner) if known is not None else alert.owner,
        "target": link_target(alert),
    }


def link_target(alert: Alert) -> str | None:
    """Where a pushed alert leads in the app (kpi_core.links): a KPI's alert, an overdue action
    included, to the KPI's detail for its unit and period; late data to the unit's Board."""
    if alert.kpi:
        return links.target(links.DETAIL, unit=alert.unit, kpi=alert.kpi, period=alert.period_label)
    if alert.kind == "stale":
        return links.target(links.BOARD, unit=alert.unit, period=alert.period_label)
    return None


_SELECT = """
SELECT a.id, a.kind, a.kpi_id, a.unit_id, k.code AS kpi, u.code AS unit, a.period, a.severity,
       a.state_key, a.owner, a.message_zh, a.message_en, a.details, a.state, a.raised_at,
       a.acknowledged_by, a.acknowledged_at, a.closed_by, a.closed_at, a.resolution
FROM alert_event a
JOIN org_unit u ON u.id = a.unit_id
LEFT JOIN kpi k ON k.id = a.kpi_id
"""


def _alert(row) -> Alert:
    (aid, kind, kpi_id, unit_id, kpi, unit, period, severity, state_key, owner, zh, en,
     details, state, raised_at) = row[:15]  # fmt: skip
    return Alert(
        int(aid), kind, None if kpi_id is None else int(kpi_id), int(unit_id), kpi, unit, period,
        severity, state_key, owner, zh, en, json.loads(details or "{}"), state, raised_at,
    )  # fmt: skip


def unpushed(wh: Warehouse, cat: Catalog, who: Actor) -> list[Alert]:
    """Open alerts inside the scope that no push was ever attempted for."""
    rows = wh.rows(
        _SELECT  # noqa: S608 - fixed SQL fragments
        + """WHERE a.state = 'open' AND list_contains(?, a.unit_id)
               AND NOT EXISTS (SELECT 1 FROM push_log p WHERE p.alert_id = a.id)
             ORDER BY a.id""",
        [_scope_ids(cat, who)],
    )
    return [_alert(r) for r in rows]


def _scope_ids(cat: Catalog, who: Actor) -> list[int]:
    return [u for u in cat.units if who.scope.allows(u)]


@by_data_version
def open_alerts(
    wh: Warehouse,
    cat: Catalog,
    who: Actor,
    *,
    units: Iterable[int] | None = None,
    kinds: Iterable[str] | None = None,
    severities: Iterable[str] | None = None,
    owners: Iterable[str] | None = None,
    states: Iterable[str] | None = (OPEN, ACKNOWLEDGED),
) -> pd.DataFrame:
    """Alerts inside the caller's scope, most severe and newest first; filters are inclusive
    lists (`states=None`: every state). `period_label` reads '2026' for a yearly forecast."""
    sql = [_SELECT, "WHERE list_contains(?, a.unit_id)"]
    params: list[object] = [_scope_ids(cat, who)]
    for column, values in (
        ("a.unit_id", units),
        ("a.kind", kinds),
        ("a.severity", severities),
        ("a.owner", owners),
        ("a.state", states),
    ):
        if values is not None:
            sql.append(f"AND list_contains(?, {column})")
            params.append(list(values))
    sql.append(
        "ORDER BY CASE a.severity WHEN 'high' THEN 0 WHEN 'medium' THEN 1 ELSE 2 END, "
        "a.raised_at DESC, a.id DESC"
    )
    df = wh.df(" ".join(sql), params)
    df["period_label"] = [
        _period_label(k, pd.Timestamp(p).date())
        for k, p in zip(df["kind"], df["period"], strict=True)
    ]
    return df


@by_data_version
def open_counts(
    wh: Warehouse, who: Actor, pairs: Iterable[tuple[int, int]]
) -> dict[tuple[int, int], int]:
    """Alerts not closed per (KPI, unit) pair inside the caller's scope, from one query (the
    Board's card badges)."""
    wanted = {(k, u) for k, u in pairs if who.scope.allows(u)}
    if not wanted:
        return {}
    rows = wh.rows(
        """SELECT kpi_id, unit_id, count(*) FROM alert_event
           WHERE state <> 'closed' AND kpi_id IS NOT NULL AND list_contains(?, unit_id)
           GROUP BY ALL""",
        [sorted({u for _, u in wanted})],
    )
    return {(k, u): n for k, u, n in rows if (k, u) in wanted}


def alerts_for(wh: Warehouse, who: Actor, kpi_id: int, unit_id: int) -> list[Alert]:
    """A KPI node's alerts that are not closed (the Board shows them on the KPI's card)."""
    who.scope.check(unit_id)
    rows = wh.rows(
        _SELECT + "WHERE a.kpi_id = ? AND a.unit_id = ? AND a.state <> 'closed' ORDER BY a.id",
        [kpi_id, unit_id],
    )
    return [_alert(r) for r in rows]


def _change_state(wh, who, alert_id: int, new: str, reason: str | None, sets: str) -> None:
    if not can(who, "act_on_alerts"):
        raise ScopeError(
            f"User '{who.name}' ({who.role}) can read alerts but not act on them — ask a "
            "department head, an analyst or an admin."
        )
    now = datetime.now()
    with wh.transaction() as cur:
        row = cur.execute(
            "SELECT unit_id, state FROM alert_event WHERE id = ?", [alert_id]
        ).fetchone()
        if row is None:
            raise NotFoundError(f"There is no alert {alert_id}.")
        unit_id, state = row
        code = cur.execute("SELECT code FROM org_unit WHERE id = ?", [unit_id]).fetchone()[0]
        who.scope.check(unit_id, code)
        if state == CLOSED:
            raise AlertError(f"Alert {alert_id} is closed already.")
        if state == new:
            raise AlertError(f"Alert {alert_id} is {new} already.")
        cur.execute(sets, [who.name, now, *([reason] if new == CLOSED else []), alert_id])
        (key,) = [k for _, k in _keys(cur, [alert_id])]
        _audit_many(cur, now, who.name, [(alert_id, key, state, new, reason)])


def acknowledge(wh: Warehouse, who: Actor, alert_id: int, note: str | None = None) -> None:
    """Somebody has seen it and is on it; it stays on the list until closed."""
    _change_state(
        wh, who, alert_id, ACKNOWLEDGED, (note or "").strip() or None,
        "UPDATE alert_event SET state = 'acknowledged', acknowledged_by = ?, acknowledged_at = ? "
        "WHERE id = ?",
    )  # fmt: skip


def close(wh: Warehouse, who: Actor, alert_id: int, resolution: str) -> None:
    """Close with what was done about it (required)."""
    resolution = (resolution or "").strip()
    if not resolution:
        raise AlertError("Say how the alert was resolved before closing it.")
    _change_state(
        wh, who, alert_id, CLOSED, resolution,
        "UPDATE alert_event SET state = 'closed', closed_by = ?, closed_at = ?, resolution = ? "
        "WHERE id = ?",
    )  # fmt: skip
