"""Complete, partial and published months, and freshness (DESIGN.md §4), on real warehouses."""

from __future__ import annotations

from datetime import date

import pytest

from kpi_core import access, alerts, completeness, month_locks, service
from kpi_core.access import Scope
from kpi_core.catalog import load_catalog
from kpi_core.errors import ScopeError
from kpi_core.ingest import intake
from kpi_core.migrations import MIGRATIONS
from kpi_core.warehouse import Warehouse

BOTH_ENGINES = True  # the file and PostgreSQL (tests/conftest.py)


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
    prepared = intake.prepare(wh, [("nov.csv", SEVEN.encode())], access.SYSTEM, today=LOAD_DAY)
    assert len(prepared.errors) == 1 and len(prepared.rows) == 7
    # Waits for the alert rules run after the commit (also outside a test's own fixtures).
    service.commit_actuals(wh, prepared, access.SYSTEM, accept_invalid=True).wait_for_alerts()


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
    rows = completeness.freshness(wh, cat, access.SYSTEM.scope, today, GRACE)
    return {cat.units[f.unit_id].code: f.state for f in rows}


def stale_by_code(wh, cat, today) -> dict[str, str]:
    found = alerts.evaluate(wh, cat, access.SYSTEM, today=today, rules=alerts.load_rules(wh))
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


def test_publishing_a_partial_month_makes_it_the_default_and_quiets_the_alert(demo_wh):
    load_seven(demo_wh)
    cat = load_catalog(demo_wh)
    group = cat.unit("GROUP").id
    analyst = service.actor(demo_wh, "analyst")
    completeness.publish(demo_wh, cat, analyst, group, NOV)
    status = completeness.month_status(demo_wh, cat, group, NOV)
    assert (status.state, status.loaded, status.expected) == (completeness.PUBLISHED, 7, 76)
    assert completeness.settled_month(demo_wh, cat, [group], NOV) == NOV
    assert completeness.in_view(demo_wh, cat, [group], NOV).newer == {}
    # Final for every unit below: the freshness list and the stale alert agree on it.
    late = date(2026, 12, 8)
    assert set(freshness_by_code(demo_wh, cat, late).values()) == {completeness.UP_TO_DATE}
    assert stale_by_code(demo_wh, cat, late) == {}
    log = demo_wh.rows("SELECT changed_by, entity, key, old, new FROM audit WHERE entity = ?",
                       ["month_publish"])  # fmt: skip
    assert log == [("analyst", "month_publish", "GROUP/2026-11", "False", "True")]
    assert completeness.published_months(demo_wh, cat, analyst.scope) == [(NOV, group)]
    # Withdrawn, the month is partial again; publishing twice writes nothing twice.
    completeness.publish(demo_wh, cat, analyst, group, NOV, published=False)
    completeness.publish(demo_wh, cat, analyst, group, NOV, published=False)
    assert completeness.settled_month(demo_wh, cat, [group], NOV) == OCT
    assert demo_wh.one("SELECT count(*) FROM audit WHERE entity = 'month_publish'")[0] == 2


def test_a_published_department_counts_as_in_for_the_company(demo_wh):
    """Sales published with South China missing: its values are final, so the company's month
    lacks only the departments that have not delivered."""
    load_seven(demo_wh)
    cat = load_catalog(demo_wh)
    sales, group = cat.unit("SALES").id, cat.unit("GROUP").id
    completeness.publish(demo_wh, cat, access.SYSTEM, sales, NOV)
    assert completeness.month_status(demo_wh, cat, sales, NOV).state == completeness.PUBLISHED
    company = completeness.month_status(demo_wh, cat, group, NOV)
    assert company.state == completeness.PARTIAL
    assert "SALES" not in {cat.units[g.unit_id].code for g in company.parts}
    assert {"PROD", "QA"} <= {cat.units[g.unit_id].code for g in company.parts}


def test_a_closed_month_counts_as_published(demo_wh):
    load_seven(demo_wh)
    cat = load_catalog(demo_wh)
    group = cat.unit("GROUP").id
    month_locks.lock_month(demo_wh, NOV, access.SYSTEM)
    assert completeness.month_status(demo_wh, cat, group, NOV).state == completeness.PUBLISHED
    assert completeness.settled_month(demo_wh, cat, [group], NOV) == NOV


def test_who_may_publish(demo_wh):
    cat = load_catalog(demo_wh)
    sales, prod = cat.unit("SALES").id, cat.unit("PROD").id
    for name in ("viewer_prod", "head_sales"):
        who = service.actor(demo_wh, name)
        with pytest.raises(ScopeError) as refused:
            completeness.publish(demo_wh, cat, who, sales, NOV)
        assert "cannot publish months — analysts and admins do" in str(refused.value)
        assert refused.value.text("zh").endswith("不能发布月份——这由数据分析员和管理员完成。")
    narrow = access.Actor("sales_analyst", "analyst", Scope(frozenset(cat.descendants(sales))))
    completeness.publish(demo_wh, cat, narrow, sales, NOV)
    with pytest.raises(ScopeError):
        completeness.publish(demo_wh, cat, narrow, prod, NOV)
    assert completeness.published_months(demo_wh, cat, narrow.scope) == [(NOV, sales)]


def test_a_library_naming_no_source_or_owner_expects_every_kpi(sales_wh):
    """The worked example's library says nobody's name: every KPI on its tree is expected. With
    a source given to one KPI, only that one is (the others are nobody's to deliver)."""
    cat = load_catalog(sales_wh)
    sales = cat.unit("SALES").id
    june = date(2024, 6, 1)
    status = completeness.month_status(sales_wh, cat, sales, june)
    # East and North revenue, new customers, satisfaction, collected and receivable.
    assert (status.expected, status.state) == (6, completeness.COMPLETE)
    with sales_wh.transaction() as cur:
        cur.execute("UPDATE kpi SET source = 'ERP' WHERE code = 'COLLECT_RATE'")
    cat = load_catalog(sales_wh)
    assert completeness.month_status(sales_wh, cat, sales, june).expected == 2


def test_the_walls_change_compares_settled_months_only(demo_wh):
    """November partial, December published (a unit head's call): the wall shows December and
    its change against October, the latest settled month before it — never the partial one."""
    from kpi_core import screen
    from kpi_core.periods import Period
    from kpi_core.scorecard import evaluate

    load_seven(demo_wh)
    dec = "period,unit,kpi,value\n2026-12,SALES_E,VISITS,120\n"
    prepared = intake.prepare(demo_wh, [("dec.csv", dec.encode())], access.SYSTEM, today=LOAD_DAY)
    service.commit_actuals(demo_wh, prepared, access.SYSTEM)
    cat = load_catalog(demo_wh)
    group = cat.unit("GROUP").id
    completeness.publish(demo_wh, cat, access.SYSTEM, group, date(2026, 12, 1))
    data = screen.screen_data(demo_wh, cat, ["GROUP"], "en", today=LOAD_DAY)
    company = data.companies[0]
    assert data.as_of == "2026-12" and company.previous_month == "2026-10"
    october = evaluate(demo_wh, cat, access.SYSTEM.scope, [group], Period("M", OCT))[group]
    assert company.previous_score == october.score
    # Before December was published, the wall stayed on October, naming November as partial.
    completeness.publish(demo_wh, cat, access.SYSTEM, group, date(2026, 12, 1), published=False)
    data = screen.screen_data(demo_wh, cat, ["GROUP"], "en", today=LOAD_DAY)
    assert data.as_of == "2026-10" and data.companies[0].previous_month is None
    assert data.newer == "2026-12 partial 1/76"
