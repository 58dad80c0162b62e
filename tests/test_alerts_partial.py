"""Alerts on a partial month: a value that is in is real data and is judged; a roll-up that lacks
units is not, until the month is complete or published (README, Alerts and pushes)."""

from __future__ import annotations

from kpi_core import access, alerts, completeness, service
from kpi_core.catalog import load_catalog
from tests.test_completeness import LOAD_DAY, NOV, load_seven


def _nov(wh, cat) -> dict[tuple[str | None, str], str]:
    found = alerts.open_alerts(wh, cat, access.SYSTEM, kinds=["status", "anomaly"])
    found = found[found["period_label"] == "2026-11"]
    return {
        (k, u): kind for k, u, kind in zip(found["kpi"], found["unit"], found["kind"], strict=True)
    }


def test_a_partial_month_judges_values_not_roll_ups(demo_wh):
    load_seven(demo_wh)  # its commit runs the rules for November, as any load does
    cat = load_catalog(demo_wh)
    nov = _nov(demo_wh, cat)
    # Sales' revenue lacks South China: no light is judged on it (the issue's "409.0万元 red").
    assert ("REV", "SALES") not in nov
    # The regions' own revenue is in: judged as any value.
    evaluated = alerts.evaluate(demo_wh, cat, access.SYSTEM, month=NOV, today=LOAD_DAY)
    judged = {(c.kpi_id, c.unit_id) for c in evaluated if c.kind in ("status", "anomaly")}
    regions = {cat.unit(code).id for code in ("SALES_E", "SALES_N")}
    assert any(u in regions for _, u in judged), judged
    assert all((k, u) != (cat.kpi("REV").id, cat.unit("SALES").id) for k, u in judged)

    # Published, the month is final: its roll-ups are judged (and alerted) like any other.
    analyst = service.actor(demo_wh, "analyst")
    completeness.publish(demo_wh, cat, analyst, cat.unit("GROUP").id, NOV)
    alerts.run(demo_wh, access.SYSTEM, month=NOV, today=LOAD_DAY, push=False)
    assert ("REV", "SALES") in _nov(demo_wh, cat)
