"""Complete, partial and published months, and freshness (DESIGN.md §4), on real warehouses."""

from __future__ import annotations

from datetime import date

from kpi_core import alerts, completeness, service
from kpi_core.catalog import load_catalog
from kpi_core.ingest import intake
from kpi_core.migrations import MIGRATIONS
from kpi_core.warehouse import Warehouse


def test_a_migration_numbered_below_the_highest_applied_is_still_applied(tmp_path, monkeypatch):
    """Changes developed side by side take numbers in advance (this one 11, others 9 and 10):
    whichever lands last, a warehouse gets every migration it has not seen."""
    import kpi_core.warehouse as warehouse_module

    later = (1001, "lands first", "CREATE TABLE lands_first (a INTEGER)")
    monkeypatch.setattr(warehouse_module, "MIGRATIONS", [*MIGRATIONS, later])
    wh = Warehouse(tmp_path / "wh.duckdb", linger=0)
    wh.close()
    earlier = (1000, "lands second", "CREATE TABLE lands_second (a INTEGER)")
    monkeypatch.setattr(warehouse_module, "MIGRATIONS", [*MIGRATIONS, earlier, later])
    wh = Warehouse(tmp_path / "wh.duckdb", linger=0)
    try:
        assert wh.one("SELECT count(*) FROM lands_second")[0] == 0
        assert wh.schema_version() == 1001
    finally:
        wh.close()


# --- the demo, as an analyst meets it on 6 December 2026 ---------------------------------------

OCT, NOV = date(2026, 10, 1), date(2026, 11, 1)
LOAD_DAY = date(2026, 12, 6)
# Seven valid values of November for sales; South China's revenue is rejected (not a number).
SEVEN = """period,unit,kpi,value
2026-11,SALES_E,REV,2300000
2026-11,SALES_N,REV,1790000
2026-11,SALES_E,VISITS,410
2026-11,SALES_N,VISITS,300
2026-11,SALES_E,ORDERS,60
2026-11,SALES_N,ORDERS,41
2026-11,SALES_E,NEW_CUST,3
2026-11,SALES_S,REV,1.2M?
"""


def load_seven(wh) -> None:
    prepared = intake.prepare(wh, [("nov.csv", SEVEN.encode())], service.SYSTEM, today=LOAD_DAY)
    assert len(prepared.errors) == 1 and len(prepared.rows) == 7
    intake.commit(wh, prepared, service.SYSTEM, accept_invalid=True)


def test_every_month_of_the_demo_is_complete(demo_wh):
    cat = load_catalog(demo_wh)
    group = cat.unit("GROUP").id
    for month in (date(2024, 1, 1), date(2025, 8, 1), OCT):
        status = completeness.month_status(demo_wh, cat, group, month)
        assert status.state == completeness.COMPLETE, (month, status.gaps)
        assert status.expected == status.loaded == 76
    # Sales: every region's revenue, visits, orders, new customers, satisfaction, collected
    # and receivable (8 values each: the regions deliver what the department adds up), and
    # the department's headcount, which the company's scorecard adds up.
    sales = completeness.month_status(demo_wh, cat, cat.unit("SALES").id, OCT)
    assert (sales.expected, sales.loaded) == (25, 25)
    assert completeness.settled_month(demo_wh, cat, [group], OCT) == OCT


def test_seven_values_make_a_partial_month_that_is_not_the_default(demo_wh):
    load_seven(demo_wh)
    cat = load_catalog(demo_wh)
    group, sales = cat.unit("GROUP").id, cat.unit("SALES").id
    nov = completeness.month_status(demo_wh, cat, group, NOV)
    assert (nov.state, nov.loaded, nov.expected) == (completeness.PARTIAL, 7, 76)
    assert completeness.settled_month(demo_wh, cat, [group], NOV) == OCT
    assert completeness.settled_month(demo_wh, cat, [sales], NOV) == OCT
    # The sales roll-up of revenue covers East and North: South China is named as missing.
    s = completeness.month_status(demo_wh, cat, sales, NOV)
    rev = cat.kpi("REV").id
    assert [cat.units[u].code for u in s.node_gaps[(rev, sales)]] == ["SALES_S"]
    gaps = {cat.units[g.unit_id].code: (g.loaded, g.expected) for g in s.gaps}
    assert gaps == {"SALES": (0, 1), "SALES_E": (4, 8), "SALES_N": (3, 8), "SALES_S": (0, 8)}
    # A region's own roll-up lacks nothing of East's visits: its node has no gap.
    assert (cat.kpi("VISITS").id, cat.unit("SALES_E").id) not in s.node_gaps


def freshness_by_code(wh, cat, today) -> dict[str, str]:
    rows = completeness.freshness(wh, cat, service.SYSTEM.scope, today, GRACE)
    return {cat.units[f.unit_id].code: f.state for f in rows}


def stale_by_code(wh, cat, today) -> dict[str, str]:
    found = alerts.evaluate(wh, cat, service.SYSTEM, today=today, rules=alerts.load_rules(wh))
    return {cat.units[c.unit_id].code: c.state_key for c in found if c.kind == "stale"}


GRACE = alerts.StaleRule().grace_days
DEPARTMENTS = {"SALES", "PROD", "QA", "CS", "RD", "HR", "FIN"}


def test_freshness_and_the_stale_alert_agree(demo_wh):
    cat = load_catalog(demo_wh)
    # Nothing of November yet: within the grace days it is due, after them overdue.
    assert freshness_by_code(demo_wh, cat, date(2026, 12, 3)) == dict.fromkeys(
        {"GROUP", *DEPARTMENTS}, completeness.DUE
    )
    assert stale_by_code(demo_wh, cat, date(2026, 12, 3)) == {}
    late = freshness_by_code(demo_wh, cat, date(2026, 12, 8))
    assert late == dict.fromkeys({"GROUP", *DEPARTMENTS}, completeness.OVERDUE)
    assert stale_by_code(demo_wh, cat, date(2026, 12, 8)) == dict.fromkeys(late, "missing")
    # Seven values of sales: sales is partial, the others still overdue; the alert says so.
    load_seven(demo_wh)
    assert freshness_by_code(demo_wh, cat, date(2026, 12, 3))["SALES"] == completeness.DUE
    late = freshness_by_code(demo_wh, cat, date(2026, 12, 8))
    assert late["SALES"] == completeness.PARTIAL and late["PROD"] == completeness.OVERDUE
    stale = stale_by_code(demo_wh, cat, date(2026, 12, 8))
    assert stale == {u: "missing" if s == completeness.OVERDUE else s for u, s in late.items()}
    # On 20 November, October is the month expected and it is complete: all up to date.
    assert set(freshness_by_code(demo_wh, cat, date(2026, 11, 20)).values()) == {
        completeness.UP_TO_DATE
    }
