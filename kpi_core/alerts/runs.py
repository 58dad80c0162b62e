"""One alert run: evaluate, raise and close, and push when asked (a load, the CLI, the Alerts page)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from kpi_core.access import Actor
from kpi_core.actuals import data_range
from kpi_core.alerts.detect import (
    evaluate,
)
from kpi_core.alerts.pushes import push_alerts
from kpi_core.alerts.rules import (
    RECENT_MONTHS,
    load_rules,
)
from kpi_core.alerts.store import (
    Alert,
    _apply,
    unpushed,
)
from kpi_core.catalog import load_catalog
from kpi_core.periods import add_months, month_of
from kpi_core.warehouse import Warehouse

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    months: list[date]
    new: list[Alert]
    closed: list[int]  # ids closed by the system (cleared or superseded)
    deliveries: list | None = None  # what push.deliver returned, when pushing


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
