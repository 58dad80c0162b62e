""" "At risk" has one meaning everywhere: green or amber now, and the forecast to the year's end
misses target. The Overview, a Board, the wall and the alert rule (and so its pushes) count the
same KPI nodes, computed by one function."""

from __future__ import annotations

from datetime import date

from kpi_core import access, alerts, screen
from kpi_core.access import Scope
from kpi_core.board import board, overview
from kpi_core.catalog import load_catalog
from kpi_core.periods import Period
from tests.conftest import TODAY

OCTOBER = date(2026, 10, 1)  # the demo's last month


def test_overview_board_wall_and_alerts_count_the_same_kpis(demo_wh):
    cat = load_catalog(demo_wh)
    ov = overview(demo_wh, cat, Scope.all(), Period("M", OCTOBER), today=TODAY, grace_days=5)
    found = alerts.evaluate(demo_wh, cat, access.SYSTEM, today=TODAY)
    rule = {(c.kpi_id, c.unit_id) for c in found if c.kind == "at_risk"}
    assert rule, "the demo has KPIs forecast to miss the year's target"
    assert set(ov.at_risk_pairs) == rule and ov.at_risk == len(rule)
    # green or amber now, never red: a red KPI is counted as red
    nodes = {(n.kpi_id, n.unit_id): n for n, _ in ov.alerts}
    assert all(nodes[p].status in ("green", "amber") for p in rule if p in nodes)

    sales = cat.unit("SALES").id
    b = board(demo_wh, cat, Scope.all(), sales, Period("M", OCTOBER), as_of=OCTOBER)
    on_board = {(ln.node.kpi_id, ln.node.unit_id) for ln in b.lines if ln.at_risk}
    shown = {(ln.node.kpi_id, ln.node.unit_id) for ln in b.lines}
    assert on_board == rule & shown

    wall = screen.screen_data(demo_wh, cat, ["GROUP"], "en", today=TODAY)
    assert wall.companies[0].at_risk == len(rule)
    risky_rows = [r for r in wall.risks if r.at_risk and r.status != "red"]
    assert risky_rows
    for r in risky_rows:  # said as a forecast against the year's target, not as an actual
        assert r.actual.startswith("Forecast ") and r.target.startswith("Year "), r


def test_a_chinese_wall_says_forecast(demo_wh):
    cat = load_catalog(demo_wh)
    wall = screen.screen_data(demo_wh, cat, ["GROUP"], "zh", today=TODAY)
    rows = [r for r in wall.risks if r.at_risk and r.status != "red"]
    assert rows and all(r.actual.startswith("预测 ") and r.target.startswith("全年 ") for r in rows)
