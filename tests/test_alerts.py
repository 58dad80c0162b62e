"""Alert rules on real DuckDB files: forecasts and anomalies on series with known answers, status,
stale data, overdue actions, raising once, scope, the command line and the import hook."""

import json
import logging
import math
import subprocess
import sys
import threading
import time
from datetime import date

import numpy as np
import pandas as pd
import pytest

from kpi_core import access, alerts, people, push, service, workbook
from kpi_core.access import Scope, hash_password
from kpi_core.after_commit import AfterCommit
from kpi_core.catalog import load_catalog
from kpi_core.errors import ScopeError
from kpi_core.ingest import intake
from kpi_core.system_import import import_system
from kpi_core.warehouse import Warehouse
from tests.conftest import sales_system

BOTH_ENGINES = True  # the file and PostgreSQL (tests/conftest.py)

COMMIT = intake.commit  # bound before conftest makes commits wait for their alert rules

JUNE = date(2024, 6, 1)


def build(tmp_path, actual_rows, name="sys.xlsx") -> Warehouse:
    """The sales example's KPI system (conftest) with the given actuals instead of its own."""
    system = sales_system()
    system["actuals"] = pd.DataFrame(actual_rows, columns=["unit", "kpi", "period", "value"])
    path = tmp_path / name
    workbook.write(system, path)
    wh = Warehouse(tmp_path / f"{name}.duckdb", linger=0)
    import_system(wh, path, by="test", scope=Scope.all())
    return wh


def by_code(wh, cands, kind) -> dict[tuple[str | None, str], alerts.Candidate]:
    cat = load_catalog(wh)
    return {
        (cat.kpis[c.kpi_id].code if c.kpi_id else None, cat.units[c.unit_id].code): c
        for c in cands
        if c.kind == kind
    }


# Pure rules on hand-made series.


def test_run_rate_and_trend_on_known_series():
    # Run-rate: 5 + 5 + 5 + 5 + 4.5 + 5.1 = 29.6 in 6 months → 29.6 / 6 × 12 = 59.2.
    rr = alerts.run_rate_forecast(np.array([29.6]), np.array([6]), 12)
    assert rr[0] == pytest.approx(59.2)
    # Phased: 29.6 against a year-to-date target of 25 (of 60) → 29.6 × 60 / 25 = 71.04.
    phased = alerts.run_rate_forecast(
        np.array([29.6]),
        np.array([6]),
        12,
        ytd_target=np.array([25.0]),
        period_target=np.array([60.0]),
    )
    assert phased[0] == pytest.approx(71.04)
    # A straight line 92, 91.5, … 89.5 falls 0.5 a month; six months on: 89.5 − 3 = 86.5.
    fc, slope = alerts.trend_forecast(np.array([[92, 91.5, 91, 90.5, 90, 89.5]]), 6)
    assert slope[0] == pytest.approx(-0.5) and fc[0] == pytest.approx(86.5)
    # Noisy points 1, 3, 2, 4 at x = 0…3: x̄ = 1.5, ȳ = 2.5, Σ(x−x̄)(y−ȳ) = 2.25 − 0.25 − 0.25
    # + 2.25 = 4, Σ(x−x̄)² = 5 → slope 0.8, intercept 2.5 − 0.8 × 1.5 = 1.3; two months past
    # the last point (x = 5): 1.3 + 4 = 5.3.
    fc, slope = alerts.trend_forecast(np.array([[1.0, 3.0, 2.0, 4.0]]), 2)
    assert slope[0] == pytest.approx(0.8) and fc[0] == pytest.approx(5.3)
    # Gaps are skipped; fewer than three points give no trend.
    fc, _ = alerts.trend_forecast(np.array([[np.nan, 1.0, np.nan, 2.0, np.nan, np.nan]]), 1)
    assert math.isnan(fc[0])
    # Missing: below target (up), above it (down), outside the band (range).
    m = alerts.misses(
        [59.2, 0.0115, 0.009, 36.0, 30.0],
        [60, 0.01, 0.01, np.nan, np.nan],
        [np.nan, np.nan, np.nan, 25, 25],
        [np.nan, np.nan, np.nan, 35, 35],
        ["up", "down", "down", "range", "range"],
    )
    assert m.tolist() == [True, True, False, True, False]


def test_robust_z_same_month_and_fallback():
    rule = alerts.AnomalyRule()
    # Same month of two earlier years 300 and 310: median 305, MAD 5; 312 is
    # 7 / (1.4826 × 5) = 0.944 robust standard deviations away — no anomaly.
    z, med, mad = alerts.robust_z(np.array([312.0]), np.array([[300.0, 310.0]]), rule)
    assert med[0] == 305 and mad[0] == 5 and z[0] == pytest.approx(7 / (1.4826 * 5))
    # History 100 and 104: median 102, MAD 2 → 114 is 12 / 2.9652 = 4.05 (low), 180 is 26.3.
    z, _, _ = alerts.robust_z(np.array([114.0, 180.0]), np.array([[100.0, 104], [100, 104]]))
    assert z.tolist() == pytest.approx([12 / 2.9652, 78 / 2.9652])
    # Identical history: MAD floored at 1 % of the median, so 101 against 100s is z = 1/1.4826.
    z, _, mad = alerts.robust_z(np.array([101.0]), np.array([[100.0] * 12]))
    assert mad[0] == 1.0 and z[0] == pytest.approx(1 / 1.4826)

    # 14 months of history: only one earlier year of the same month → the last 12 months.
    hist = np.arange(14, dtype=float)[None, :]
    ref, same = alerts.anomaly_reference(hist, 13, rule)
    assert not same[0] and sorted(ref[0][~np.isnan(ref[0])]) == list(range(1, 13))
    # 37 months: the same month 12, 24 and 36 months back.
    hist = np.arange(37, dtype=float)[None, :]
    ref, same = alerts.anomaly_reference(hist, 36, rule)
    assert same[0] and sorted(ref[0][~np.isnan(ref[0])]) == [0.0, 12.0, 24.0]


def test_due_month():
    # A month's actuals are due 5 days after it ends: on 5 July June is not due yet, on 6 July it is.
    assert alerts.due_month(date(2024, 7, 5), 5) == date(2024, 5, 1)
    assert alerts.due_month(date(2024, 7, 6), 5) == date(2024, 6, 1)


# Forecasts on a warehouse: January to June 2024 of the sales example.


@pytest.fixture
def half_year(tmp_path):
    rows = []
    new_cust = [5, 5, 5, 5, 4.5, 5.1]
    csat = [92, 91.5, 91, 90.5, 90, 89.5]
    complaint = [0.006, 0.0065, 0.007, 0.0075, 0.008, 0.0085]
    for m in range(6):
        p = f"2024-{m + 1:02d}"
        rows += [
            ["EAST", "REV", p, 3_100_000], ["NORTH", "REV", p, 2_050_000],
            ["SALES", "NEW_CUST", p, new_cust[m]], ["SALES", "CSAT", p, csat[m]],
            ["SALES", "COLLECTED", p, 96], ["SALES", "RECEIVABLE", p, 100],
            ["PROD", "AVAIL", p, 0.9], ["PROD", "PERF", p, 0.8], ["PROD", "QUAL", p, 0.95],
            ["PROD", "COMPLAINT", p, complaint[m]], ["PROD", "INV_DAYS", p, 30],
            ["PROD", "SAFETY", p, 0],
        ]  # fmt: skip
    wh = build(tmp_path, rows)
    yield wh
    wh.close()


def test_forecasts_on_hand_made_series(half_year):
    wh = half_year
    cat = load_catalog(wh)
    cands = alerts.evaluate(wh, cat, access.SYSTEM, today=date(2024, 7, 3))
    assert cands.month == JUNE
    risky = by_code(wh, cands, "at_risk")
    # NEW_CUST (sum, up; 60 a year, even): June 5.1 ≥ 5 is green, but 29.6 in six months runs
    # at 59.2 a year. CSAT (avg): amber at 89.5 and falling 0.5 a month → 86.5 in December
    # < 90. COMPLAINT (avg, down; target 1 %): green at 0.85 %, rising 0.05 pp a month → 1.15 %.
    # Revenue (3.1M + 2.05M a month against 3M + 2M), OEE, collection rate, inventory days
    # (flat at 30, inside 25–35) and safety (0) stay on course.
    assert set(risky) == {("NEW_CUST", "SALES"), ("CSAT", "SALES"), ("COMPLAINT", "PROD")}
    assert risky[("NEW_CUST", "SALES")].details["forecast"] == pytest.approx(59.2)
    assert risky[("NEW_CUST", "SALES")].details["method"] == "run_rate"
    assert risky[("CSAT", "SALES")].details["forecast"] == pytest.approx(86.5)
    assert risky[("COMPLAINT", "PROD")].details["forecast"] == pytest.approx(0.0115)
    assert all(c.period == date(2024, 1, 1) and c.severity == "medium" for c in risky.values())
    assert "59.2" in risky[("NEW_CUST", "SALES")].message_en
    assert "预计2024年全年 59.2" in risky[("NEW_CUST", "SALES")].message_zh
    assert "forecast at 1.1%" in risky[("COMPLAINT", "PROD")].message_en  # one decimal
    assert "above the target 1.0%" in risky[("COMPLAINT", "PROD")].message_en
    # Status: only CSAT is off target (amber, medium).
    status = by_code(wh, cands, "status")
    assert set(status) == {("CSAT", "SALES")}
    assert status[("CSAT", "SALES")].state_key == "amber"
    assert status[("CSAT", "SALES")].severity == "medium"
    # A forecast is about now: judging May (a past month) makes none.
    may = alerts.evaluate(wh, cat, access.SYSTEM, month=date(2024, 5, 1), today=date(2024, 7, 3))
    assert not by_code(wh, may, "at_risk")
    # No stale data on 3 July (May is due, and loaded).
    assert not by_code(wh, cands, "stale")


def test_stale_data_with_a_fixed_today(half_year):
    wh = half_year
    cat = load_catalog(wh)
    # On 10 August July's actuals are 10 days overdue; both units with KPIs of their own on a
    # scorecard lack them (CO's scorecard only rolls up its departments; EAST and NORTH only
    # feed SALES/REV and have no scorecard).
    cands = alerts.evaluate(wh, cat, access.SYSTEM, today=date(2024, 8, 10))
    stale = by_code(wh, cands, "stale")
    assert set(stale) == {(None, "SALES"), (None, "PROD")}
    assert all(c.period == date(2024, 7, 1) and c.details["days"] == 10 for c in stale.values())
    assert "2024年7月" in stale[(None, "SALES")].message_zh
    alerts.raise_alerts(wh, cat, access.SYSTEM, cands)

    # One value of July arrives for SALES: it is partial now (1 of its 6 values), a new state.
    def arrive(*values):
        with wh.transaction() as cur:
            for unit, kpi, value in values:
                cur.execute(
                    "INSERT INTO actual VALUES (?, ?, DATE '2024-07-01', ?, NULL)",
                    [cat.kpi(kpi).id, cat.unit(unit).id, value],
                )
        return alerts.run(wh, access.SYSTEM, today=date(2024, 8, 11), month=JUNE)

    result = arrive(("SALES", "CSAT", 89))
    (partial,) = [a for a in result.new if a.unit_id == cat.unit("SALES").id]
    assert partial.state_key == "partial" and len(result.closed) == 1
    assert partial.details["loaded"] == 1 and partial.details["expected"] == 6
    assert "1 of 6 values" in partial.message_en and "East region" in partial.message_en
    # The rest of SALES's July arrives: its stale alert closes; PROD's stays open.
    result = arrive(
        ("EAST", "REV", 3_000_000), ("NORTH", "REV", 2_000_000), ("SALES", "NEW_CUST", 5),
        ("SALES", "COLLECTED", 96), ("SALES", "RECEIVABLE", 100),
    )  # fmt: skip
    open_stale = alerts.open_alerts(wh, cat, access.SYSTEM, kinds=["stale"])
    assert list(open_stale["unit"]) == ["PROD"]
    assert len(result.closed) == 1


# Anomalies: three years of monthly new customers with a December peak every year.


@pytest.fixture
def seasonal(tmp_path):
    rows = []
    dec = {2022: 300, 2023: 310, 2024: 312}
    nov = {2022: 100, 2023: 104, 2024: 180}
    for y in (2022, 2023, 2024):
        for m in range(1, 13):
            v = dec[y] if m == 12 else nov[y] if m == 11 else 100
            rows.append(["SALES", "NEW_CUST", f"{y}-{m:02d}", v])
    wh = build(tmp_path, rows, "seasonal.xlsx")
    yield wh
    wh.close()


def test_anomaly_seasonal_peak_not_flagged_outlier_is(seasonal):
    wh = seasonal
    cat = load_catalog(wh)
    # December 2024 = 312 against Decembers 300 and 310: z = 7 / (1.4826 × 5) = 0.94 — normal,
    # though against the last 12 months (median 100) it would look enormous.
    dec = alerts.evaluate(wh, cat, access.SYSTEM, month=date(2024, 12, 1), today=date(2025, 1, 3))
    assert not by_code(wh, dec, "anomaly")
    # November 2024 = 180 against Novembers 100 and 104: z = 78 / (1.4826 × 2) = 26.3 — an
    # anomaly, severity medium (≥ 7), above the median.
    nov = alerts.evaluate(wh, cat, access.SYSTEM, month=date(2024, 11, 1), today=date(2025, 1, 3))
    got = by_code(wh, nov, "anomaly")
    assert set(got) == {("NEW_CUST", "SALES")}
    a = got[("NEW_CUST", "SALES")]
    assert a.details["z"] == pytest.approx(78 / (1.4826 * 2), rel=1e-3)
    assert a.details["basis"] == "same_month" and a.details["median"] == 102
    assert (a.severity, a.state_key) == ("medium", "high")
    assert "往年同月（2 年）" in a.message_zh and "far above the median 102" in a.message_en
    # A tighter rule from alert_rule: flag only from z 30 — then November passes too.
    with wh.transaction() as cur:
        cur.execute(
            "INSERT INTO alert_rule VALUES ('anomaly', true, '{\"threshold\": 30}', 't', NULL)"
        )
    again = alerts.evaluate(wh, cat, access.SYSTEM, month=date(2024, 11, 1), today=date(2025, 1, 3))
    assert not by_code(wh, again, "anomaly")


def test_bad_rule_settings_are_refused(seasonal):
    with pytest.raises(alerts.AlertError, match="no setting 'treshold'"):
        alerts.save_rule(seasonal, access.SYSTEM, "anomaly", enabled=True, params={"treshold": 3})
    with pytest.raises(alerts.AlertError, match="not a float"):
        alerts.save_rule(
            seasonal, access.SYSTEM, "anomaly", enabled=True, params={"threshold": "x"}
        )
    alerts.save_rule(seasonal, access.SYSTEM, "status", enabled=False, params={})
    assert alerts.load_rules(seasonal).status.enabled is False


# Status, raising once, state changes, closing, overdue actions and scope: the sales example.


def set_value(wh, unit: str, kpi: str, month: str, value: float) -> None:
    with wh.transaction() as cur:
        cur.execute(
            """UPDATE actual SET value = ? WHERE period = ?::DATE
               AND unit_id = (SELECT id FROM org_unit WHERE code = ?)
               AND kpi_id = (SELECT id FROM kpi WHERE code = ?)""",
            [value, f"{month}-01", unit, kpi],
        )


def add_users(wh):
    with wh.transaction() as cur:
        for name, display, scope in (
            ("head_sales", "王磊 Wang Lei", ["SALES"]),
            ("head_prod", "张建国 Zhang", ["PROD"]),
        ):
            cur.execute(
                "INSERT INTO app_user (name, display_name, role, scope, password_hash) "
                "VALUES (?, ?, 'head', ?, ?)",
                [name, display, scope, hash_password("x")],
            )


TODAY = date(2025, 1, 3)  # December 2024 not due yet: no stale data in these tests


def test_status_dedupe_state_change_and_clearing(sales_wh):
    wh = sales_wh
    first = alerts.run(wh, access.SYSTEM, today=TODAY)
    assert first.months == [date(2024, 12, 1)]
    status = {(a.kpi, a.unit): a for a in first.new if a.kind == "status"}
    # The worked example in December: revenue 2.9M / 1.93M / 4.83M against 3M / 2M / 5M (amber),
    # satisfaction 88 against 90 (amber), complaint rate 1.2 % against 1 % (amber), inventory
    # days 37.5 outside 25–35 within tolerance 5 (amber); the rest green.
    assert set(status) == {
        ("REV", "EAST"), ("REV", "NORTH"), ("REV", "SALES"), ("CSAT", "SALES"),
        ("COMPLAINT", "PROD"), ("INV_DAYS", "PROD"),
    }  # fmt: skip
    assert {a.severity for a in status.values()} == {"medium"}
    csat = status[("CSAT", "SALES")]
    assert csat.message_en == (
        "Customer satisfaction at Sales, 2024-12: 88.0 pts against target 90.0 pts "
        "(baseline 85.0 pts) — Amber."
    )
    assert (
        csat.message_zh
        == "销售部「客户满意度」2024年12月实际 88.0分，目标 90.0分，基准 85.0分：黄灯。"
    )
    assert "2,900" not in status[("REV", "EAST")].message_zh
    assert "290.0万元" in status[("REV", "EAST")].message_zh  # 万 in Chinese
    audit = wh.one("SELECT count(*) FROM audit WHERE entity = 'alert' AND new = 'open'")[0]
    assert audit == len(first.new)

    # The same conditions again: nothing new, nothing closed.
    again = alerts.run(wh, access.SYSTEM, today=TODAY)
    assert again.new == [] and again.closed == []

    # Satisfaction falls below baseline: a new alert (red, high); the amber one is superseded.
    set_value(wh, "SALES", "CSAT", "2024-12", 80)
    changed = alerts.run(wh, access.SYSTEM, today=TODAY)
    new_status = [a for a in changed.new if a.kind == "status"]
    assert [(a.kpi, a.state_key, a.severity) for a in new_status] == [("CSAT", "red", "high")]
    assert csat.id in changed.closed
    old = wh.one("SELECT state, closed_by, resolution FROM alert_event WHERE id = ?", [csat.id])
    assert old == ("closed", "system", "superseded: now red")

    # Back on target: the red alert closes by itself.
    set_value(wh, "SALES", "CSAT", "2024-12", 91)
    cleared = alerts.run(wh, access.SYSTEM, today=TODAY)
    red_id = new_status[0].id
    assert red_id in cleared.closed
    assert wh.one("SELECT resolution FROM alert_event WHERE id = ?", [red_id]) == (
        "condition cleared",
    )
    # … and if it goes amber again, that is news again.
    set_value(wh, "SALES", "CSAT", "2024-12", 88)
    back = alerts.run(wh, access.SYSTEM, today=TODAY)
    assert [(a.kpi, a.state_key) for a in back.new if a.kind == "status"] == [("CSAT", "amber")]

    # Acknowledge and close by hand (audited); a closed alert in the same state is not raised.
    amber = next(a for a in back.new if a.kind == "status")
    alerts.acknowledge(wh, access.SYSTEM, amber.id, "looking into it")
    listed = alerts.alerts_for(wh, access.SYSTEM, amber.kpi_id, amber.unit_id)
    assert {a.id: a.state for a in listed}[amber.id] == "acknowledged"
    with pytest.raises(alerts.AlertError, match="resolved"):
        alerts.close(wh, access.SYSTEM, amber.id, " ")
    alerts.close(wh, access.SYSTEM, amber.id, "survey method changed")
    listed = alerts.alerts_for(wh, access.SYSTEM, amber.kpi_id, amber.unit_id)
    assert amber.id not in {a.id for a in listed}
    assert alerts.run(wh, access.SYSTEM, today=TODAY).new == []
    log = wh.rows(
        "SELECT old, new, reason FROM audit WHERE entity = 'alert' AND key LIKE ? ORDER BY 1",
        [f"SALES/CSAT/2024-12/status#{amber.id}"],
    )
    assert sorted(log, key=str) == sorted(
        [(None, "open", None), ("open", "acknowledged", "looking into it"),
         ("acknowledged", "closed", "survey method changed")], key=str
    )  # fmt: skip


def test_overdue_action(sales_wh):
    wh = sales_wh
    cat = load_catalog(wh)
    csat, sales = cat.kpi("CSAT").id, cat.unit("SALES").id
    with wh.transaction() as cur:
        cid = cur.execute(
            """INSERT INTO comment (id, kpi_id, unit_id, period, created_by, created_at, text,
                                    action, due, owner, state)
               VALUES (nextval('comment_id'), ?, ?, DATE '2024-11-01', 't', now(), 'low',
                       'call the ten unhappiest customers', DATE '2024-12-20', '李四', 'open')
               RETURNING id""",
            [csat, sales],
        ).fetchone()[0]
    # Not due yet on 20 December; overdue on 3 January (14 days).
    before = alerts.evaluate(wh, cat, access.SYSTEM, today=date(2024, 12, 20))
    assert not by_code(wh, before, "overdue")
    got = alerts.run(wh, access.SYSTEM, today=TODAY)
    overdue = [a for a in got.new if a.kind == "overdue"]
    assert len(overdue) == 1
    a = overdue[0]
    assert (a.kpi, a.unit, a.period, a.owner) == ("CSAT", "SALES", date(2024, 11, 1), "李四")
    assert a.state_key == f"action {cid}"
    assert "14 days past due" in a.message_en and "call the ten" in a.message_zh
    assert alerts.run(wh, access.SYSTEM, today=TODAY).new == []
    with wh.transaction() as cur:
        cur.execute("UPDATE comment SET state = 'closed' WHERE id = ?", [cid])
    done = alerts.run(wh, access.SYSTEM, today=TODAY)
    assert a.id in done.closed


def test_scope_and_owners(sales_wh):
    wh = sales_wh
    add_users(wh)
    cat = load_catalog(wh)
    head_sales = service.actor(wh, "head_sales")
    mine = alerts.run(wh, head_sales, today=date(2025, 1, 10))
    units = {a.unit for a in mine.new}
    assert units and units <= {"SALES", "EAST", "NORTH"}
    # No KPI owner in this library: the head answering for the unit owns its alerts, stored as
    # the user and shown by display name.
    known = people.load(wh)
    assert {a.owner for a in mine.new} == {"head_sales"}
    assert {known.name(a.owner) for a in mine.new} == {"王磊 Wang Lei"}
    everyone = alerts.run(wh, access.SYSTEM, today=date(2025, 1, 10))
    prod = [a for a in everyone.new if a.unit == "PROD"]
    assert prod and {known.name(a.owner) for a in prod} == {"张建国 Zhang"}
    seen = alerts.open_alerts(wh, cat, head_sales)
    assert len(seen) and set(seen["unit"]) <= {"SALES", "EAST", "NORTH"}
    assert "PROD" not in set(seen["unit"])
    # The head's evaluation leaves alerts outside their scope alone …
    assert alerts.run(wh, head_sales, today=date(2025, 1, 10)).closed == []
    assert len(alerts.open_alerts(wh, cat, access.SYSTEM, units=[cat.unit("PROD").id]))
    # … and may not act on them.
    with pytest.raises(ScopeError):
        alerts.acknowledge(wh, head_sales, prod[0].id)
    with pytest.raises(ScopeError):
        alerts.alerts_for(wh, head_sales, prod[0].kpi_id, prod[0].unit_id)
    # The Alerts page's owner filter lists the owners inside the reader's scope only.
    assert alerts.owners(wh, cat, head_sales) == ["head_sales"]
    assert "head_sales" in alerts.owners(wh, cat, access.SYSTEM)
    assert len(alerts.owners(wh, cat, access.SYSTEM)) > 1


def test_to_message_has_the_push_fields(sales_wh):
    new = alerts.run(sales_wh, access.SYSTEM, today=TODAY).new
    msg = alerts.to_message(new[0])
    assert set(msg) == {
        "alert_id", "severity", "kind", "title_zh", "title_en", "text_zh", "text_en", "kpi",
        "unit", "period", "owner", "target",
    }  # fmt: skip
    assert msg["alert_id"] == new[0].id and msg["text_en"] == new[0].message_en
    risky = next(a for a in new if a.kind == "at_risk")
    assert alerts.to_message(risky)["period"] == "2024"


def test_an_alert_keeps_a_key_and_parameters_and_is_read_in_either_language(sales_wh):
    """The row holds the message's key and JSON parameters, no finished text; whoever reads it
    gets it in their language, with the names of the time of reading."""
    wh = sales_wh
    new = alerts.run(wh, access.SYSTEM, today=TODAY).new
    csat = next(a for a in new if (a.kpi, a.unit, a.kind) == ("CSAT", "SALES", "status"))
    key, params, zh, en = wh.one(
        "SELECT message_key, message_params, message_zh, message_en FROM alert_event WHERE id = ?",
        [csat.id],
    )
    assert (key, zh, en) == ("al_status", None, None)
    assert json.loads(params) == {
        "unit": {"unit": csat.unit_id}, "kpi": {"kpi": csat.kpi_id},
        "period": {"period": "2024-12"}, "actual": {"kpi": csat.kpi_id, "value": 88.0},
        "target": {"kpi": csat.kpi_id, "value": 90.0},
        "baseline": {"kpi": csat.kpi_id, "value": 85.0}, "light": {"word": "amber"},
    }  # fmt: skip
    english = (
        "Customer satisfaction at Sales, 2024-12: 88.0 pts against target 90.0 pts "
        "(baseline 85.0 pts) — Amber."
    )
    chinese = "销售部「客户满意度」2024年12月实际 88.0分，目标 90.0分，基准 85.0分：黄灯。"
    listed = alerts.open_alerts(wh, load_catalog(wh), access.SYSTEM)
    row = listed[listed["id"] == csat.id].iloc[0]
    assert (row["message_zh"], row["message_en"]) == (chinese, english)
    (read,) = [a for a in alerts.alerts_for(wh, access.SYSTEM, csat.kpi_id, csat.unit_id)
               if a.id == csat.id]  # fmt: skip
    assert (read.message("zh"), read.message("en")) == (chinese, english)
    assert alerts.to_message(read)["text_zh"] == chinese

    # Rendered when read: a KPI renamed since speaks its new name in the alert raised before.
    with wh.transaction() as cur:
        cur.execute("UPDATE kpi SET name_en = 'Client satisfaction' WHERE code = 'CSAT'")
    listed = alerts.open_alerts(wh, load_catalog(wh), access.SYSTEM)
    row = listed[listed["id"] == csat.id].iloc[0]
    assert row["message_en"].startswith("Client satisfaction at Sales, 2024-12: 88.0 pts")
    assert row["message_zh"] == chinese


def test_an_alert_stored_with_finished_texts_still_shows(sales_wh):
    """Alerts raised before messages were stored as a key keep the texts they were stored with,
    in the list, on a KPI's card and in a push."""
    wh = sales_wh
    first = alerts.run(wh, access.SYSTEM, today=TODAY).new[0]
    with wh.transaction() as cur:
        cur.execute(
            "UPDATE alert_event SET message_key = NULL, message_params = NULL, "
            "message_zh = '旧的文字', message_en = 'the old text' WHERE id = ?",
            [first.id],
        )
    listed = alerts.open_alerts(wh, load_catalog(wh), access.SYSTEM)
    row = listed[listed["id"] == first.id].iloc[0]
    assert (row["message_zh"], row["message_en"]) == ("旧的文字", "the old text")
    (read,) = [a for a in alerts.alerts_for(wh, access.SYSTEM, first.kpi_id, first.unit_id)
               if a.id == first.id]  # fmt: skip
    assert read.message("zh") == "旧的文字" and read.message("en") == "the old text"
    assert alerts.to_message(read)["text_en"] == "the old text"


# The command line and the import hook.


def cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "kpi_core", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_alerts_json(tmp_path):
    path = tmp_path / "sales.xlsx"
    workbook.write(sales_system(), path)
    wh = tmp_path / "w.duckdb"
    assert cli("--warehouse", wh, "import", path).returncode == 0
    proc = cli("--warehouse", wh, "alerts", "--json", "--today", "2025-01-03")
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(proc.stdout)
    assert listed and all(a["new"] and a["state"] == "open" for a in listed)
    assert set(listed[0]) >= {
        "id", "kpi", "unit", "period", "kind", "severity", "owner", "message_zh", "message_en",
        "state",
    }  # fmt: skip
    csat = [a for a in listed if (a["kpi"], a["kind"]) == ("CSAT", "status")]
    assert csat[0]["period"] == "2024-12" and csat[0]["severity"] == "medium"
    assert csat[0]["message_en"].startswith("Customer satisfaction at Sales, 2024-12: 88.0")
    assert csat[0]["message_zh"].startswith("销售部「客户满意度」2024年12月实际 88.0分")
    again = json.loads(cli("--warehouse", wh, "alerts", "--json", "--today", "2025-01-03").stdout)
    assert [a["id"] for a in again] == [a["id"] for a in listed]
    assert not any(a["new"] for a in again)
    text = cli("--warehouse", wh, "alerts", "--month", "2024-11", "--today", "2025-01-03")
    assert text.returncode == 0 and text.stdout.startswith("alerts for 2024-11:")
    assert "alerts" in cli("alerts", "--help").stdout


def csv_import(wh, who=access.SYSTEM):
    data = b"period,unit,kpi,value\n2026-10,SALES_E,VISITS,1\n"
    prepared = intake.prepare(wh, [("v.csv", data)], who, today=date(2026, 11, 21))
    return service.commit_actuals(wh, prepared, who)


def test_an_import_raises_alerts_for_its_months(demo_wh):
    csv_import(demo_wh)
    got = demo_wh.rows(
        """SELECT DISTINCT a.kind FROM alert_event a JOIN kpi k ON k.id = a.kpi_id
           WHERE k.code = 'VISITS' AND a.period = DATE '2026-10-01'"""
    )
    assert ("status",) in got


def test_an_import_succeeds_when_alert_evaluation_fails(demo_wh, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("rule engine broke")

    monkeypatch.setattr(alerts, "run", broken)
    before = demo_wh.one("SELECT count(*) FROM alert_event")[0]
    with caplog.at_level(logging.ERROR, logger="kpi_core.ingest.intake"):
        committed = csv_import(demo_wh)
    assert committed.batch_id is not None
    value = demo_wh.one(
        """SELECT a.value FROM actual a JOIN kpi k ON k.id = a.kpi_id
           JOIN org_unit u ON u.id = a.unit_id
           WHERE k.code = 'VISITS' AND u.code = 'SALES_E' AND a.period = DATE '2026-10-01'"""
    )
    assert value == (1.0,)
    assert "rule engine broke" in caplog.text and "the batch is loaded" in caplog.text
    assert demo_wh.one("SELECT count(*) FROM alert_event")[0] == before  # nothing raised


def test_the_commit_returns_before_the_alert_rules_finish(demo_wh, monkeypatch):
    """The analyst's commit does not wait for the rules: they run after it, on their own thread,
    and have run once `wait_for_alerts` returns."""
    real_run, release, started, ran = alerts.run, threading.Event(), threading.Event(), []

    def slow_run(*args, **kwargs):
        started.set()
        assert release.wait(20), "the test never let the rules go on"
        ran.append(real_run(*args, **kwargs))
        return ran[-1]

    monkeypatch.setattr(alerts, "run", slow_run)
    events = "SELECT count(*), max(id) FROM alert_event"
    before = demo_wh.one(events)
    data = b"period,unit,kpi,value\n2026-10,SALES_E,VISITS,1\n"
    prepared = intake.prepare(demo_wh, [("v.csv", data)], access.SYSTEM, today=date(2026, 11, 21))
    committed = COMMIT(demo_wh, prepared, access.SYSTEM, after=AfterCommit)  # not conftest's
    assert started.wait(20)
    status = demo_wh.one("SELECT status FROM batch WHERE id = ?", [committed.batch_id])
    assert status == ("committed",) and not ran
    assert demo_wh.one(events) == before  # nothing from the rules yet
    release.set()
    committed.wait_for_alerts()
    assert len(ran) == 1 and ran[0].new  # the load's red VISITS raised something new
    assert demo_wh.one(events) != before


def test_an_import_pushes_its_new_alerts_in_the_background(demo_wh, receiver):
    """A webhook receiver on 127.0.0.1 gets the alerts a load raised, without the load waiting."""
    hook = receiver((200, {"ok": True}))
    push.save_channel(demo_wh, access.SYSTEM, "ops", "webhook", f"{hook.base}/kpi",
                      min_severity="low")  # fmt: skip
    csv_import(demo_wh)
    deadline = time.monotonic() + 20
    while not hook.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hook.requests, "no push arrived within 20 s"
    sent = hook.requests[0]["json"]
    assert sent["source"] == "kpi-monitor"
    assert any(a["kpi"] == "VISITS" and a["unit"] == "SALES_E" for a in sent["alerts"])
    while time.monotonic() < deadline and not demo_wh.one("SELECT count(*) FROM push_log")[0]:
        time.sleep(0.05)
    assert demo_wh.one("SELECT bool_and(ok) FROM push_log WHERE channel = 'ops'")[0]
