"""Alert rule configuration (DESIGN.md §4): the five kinds, their defaults and the overrides an admin stores in `alert_rule`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from datetime import datetime

from kpi_core import audit
from kpi_core.access import Actor, can
from kpi_core.errors import KpiError, ScopeError
from kpi_core.messages import Items, Message
from kpi_core.warehouse import Warehouse

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
            settings = Items((n for n in known if n != "enabled"), commas=True)
            raise AlertError(Message("al_err_no_setting", kind=kind, name=name, settings=settings))
        want = known[name]
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, want) or (want is not bool and isinstance(value, bool)):
            raise AlertError(
                Message("al_err_setting_type", kind=kind, name=name, value=repr(value),
                        type=want.__name__)
            )  # fmt: skip
        if name in ("severity", "red", "amber") and value not in SEVERITIES:
            raise AlertError(Message("al_err_severity", kind=kind, severities=str(SEVERITIES)))
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
            raise AlertError(Message("al_err_json", kind=kind, error=str(exc))) from None
        rules = replace(rules, **{kind: _override(getattr(rules, kind), kind, enabled, parsed)})
    return rules


def save_rule(wh: Warehouse, who: Actor, kind: str, *, enabled: bool, params: dict) -> None:
    """Store a rule's settings (admins); checked first, audited."""
    if not can(who, "edit_alert_rules"):
        raise ScopeError(Message("al_err_admins_only"))
    if kind not in KINDS:
        raise AlertError(Message("al_err_no_rule", kind=kind, kinds=Items(KINDS, commas=True)))
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
