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

What lives where (imports run top to bottom; none goes back up):

- `rules`: kinds, severities and states, the rule settings (`Rules`, `load_rules`,
  `save_rule`) and `AlertError`;
- `messages`: alert texts as an i18n key and JSON parameters, stored so and rendered in the
  reader's language when read (`render`);
- `forecasts`: monthly histories as a matrix, robust z-scores, trend and run-rate forecasts;
- `detect`: the detectors — `evaluate`, `at_risk`, `due_month`, `Candidate`;
- `store`: `alert_event` — `raise_alerts`, reading (`open_alerts`, `alerts_for`, `owners`, …) and the
  state changes people make (`acknowledge`, `close`);
- `pushes`: alerts as kpi_core.push messages (`push_alerts`, `to_message`); push never imports
  this package;
- `runs`: `run` — evaluate, raise and close, push when asked.

Callers write `from kpi_core import alerts` and use the names below; anything else is imported
from its submodule.
"""

from kpi_core.alerts.detect import Candidate, at_risk, due_month, evaluate
from kpi_core.alerts.forecasts import (
    anomaly_reference,
    misses,
    robust_z,
    run_rate_forecast,
    trend_forecast,
)
from kpi_core.alerts.pushes import push_alerts, push_messages, to_message
from kpi_core.alerts.rules import (
    CLEARED,
    KINDS,
    SEVERITIES,
    STATES,
    AlertError,
    AnomalyRule,
    StaleRule,
    load_rules,
    save_rule,
)
from kpi_core.alerts.runs import RunResult, run
from kpi_core.alerts.store import (
    Alert,
    acknowledge,
    alerts_for,
    close,
    open_alerts,
    open_counts,
    owners,
    raise_alerts,
    unpushed,
)

__all__ = [
    "CLEARED", "KINDS", "SEVERITIES", "STATES", "Alert", "AlertError", "AnomalyRule",
    "Candidate", "RunResult", "StaleRule", "acknowledge", "alerts_for", "anomaly_reference",
    "at_risk", "close", "due_month", "evaluate", "load_rules", "misses", "open_alerts",
    "open_counts", "owners", "push_alerts", "push_messages", "raise_alerts", "robust_z", "run",
    "run_rate_forecast", "save_rule", "to_message", "trend_forecast", "unpushed",
]  # fmt: skip
