"""Alerts follow the data: rolling back a batch judges its months again, closes (as resolved by
the system) every alert whose condition went with the values, and no push speaks of them."""

from __future__ import annotations

from datetime import date

from kpi_core import alerts, push, service
from kpi_core.catalog import load_catalog
from kpi_core.ingest import intake

# The month after the demo's last, loaded on a day in it: South China far below its baseline.
TODAY = date(2026, 11, 25)
NOVEMBER = (
    b"period,unit,kpi,value\n"
    b"2026-11,SALES_S,REV,430000\n"
    b"2026-11,SALES_E,REV,2600000\n"
    b"2026-11,SALES_N,REV,1500000\n"
    b"2026-11,SALES_S,VISITS,20\n"
)


def _open(wh, month: date) -> list[tuple]:
    return wh.rows(
        "SELECT id, kind, state FROM alert_event WHERE period = ? AND state <> 'closed'",
        [month],
    )


def _load(wh, who) -> int:
    prepared = intake.prepare(wh, [("nov.csv", NOVEMBER)], who, today=TODAY)
    assert prepared.errors == []
    return service.commit_actuals(wh, prepared, who).batch_id


def test_rolling_back_the_only_batch_of_a_month_closes_its_alerts(demo_wh):
    analyst = service.actor(demo_wh, "analyst")
    batch = _load(demo_wh, analyst)
    raised = _open(demo_wh, date(2026, 11, 1))
    assert raised, "the load raises alerts for November (South China's revenue is red)"

    service.rollback_actuals(demo_wh, batch, analyst, "loaded by mistake")
    assert _open(demo_wh, date(2026, 11, 1)) == []
    closed = demo_wh.rows(
        "SELECT DISTINCT state, closed_by, resolution FROM alert_event WHERE list_contains(?, id)",
        [[r[0] for r in raised]],
    )
    assert closed == [("closed", "system", alerts.CLEARED)]
    # "Evaluate now" right after finds nothing new to raise: the rules already judged again.
    again = alerts.run(demo_wh, analyst, today=TODAY)
    assert again.new == [], [(a.kind, a.unit, a.kpi, a.period) for a in again.new]


def test_no_push_for_alerts_whose_values_were_rolled_back(demo_wh, receiver):
    analyst = service.actor(demo_wh, "analyst")
    batch = _load(demo_wh, analyst)  # no channel yet: its alerts wait to be pushed
    cat = load_catalog(demo_wh)
    november = [a for a in alerts.unpushed(demo_wh, cat, analyst) if a.period == date(2026, 11, 1)]
    assert november
    r = receiver((200, "ok"))
    admin = service.actor(demo_wh, "admin")
    push.save_channel(demo_wh, admin, "ops", "webhook", f"{r.base}/hook", {}, "low")
    service.rollback_actuals(demo_wh, batch, analyst, "loaded by mistake")
    # A push that was waiting (the thread after the load, or `alerts --push`) sends none of them.
    assert alerts.push_alerts(demo_wh, november) == []
    alerts.run(demo_wh, analyst, today=TODAY, push=True)
    sent = [a["alert_id"] for q in r.requests for a in (q["json"] or {}).get("alerts", [])]
    assert not set(sent) & {a.id for a in november}
