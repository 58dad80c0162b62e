"""The paths that judge time, run on days a calendar makes awkward: each builds the demo as a new
user's first start would on that day and checks what a user would see that morning.

The suite must give the same results on any date (it also runs under `faketime`): every day here
is passed in, never read from the clock."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from kpi_core import access, alerts, review, service
from kpi_core.actuals import data_range
from kpi_core.catalog import load_catalog
from kpi_core.demo import demo_end
from kpi_core.ingest import intake
from kpi_core.periods import Period, add_months, month_of
from kpi_core.scorecard import evaluate
from kpi_core.warehouse import Warehouse

# A month end, the first days of a month, New Year's Day, a leap day, and a day in another year.
DAYS = [
    date(2026, 11, 30),
    date(2026, 12, 1),
    date(2026, 12, 3),
    date(2027, 1, 1),
    date(2028, 2, 29),
    date(2029, 6, 17),
]


@pytest.fixture(scope="module", params=DAYS, ids=str)
def day_wh(request, tmp_path_factory):
    """The demo as the app's first start builds it on that day."""
    today = request.param
    wh = Warehouse(tmp_path_factory.mktemp("day") / "wh.duckdb", linger=0)
    assert service.ensure_demo(wh, today=today)
    yield wh, today
    wh.close()


def test_a_new_user_sees_last_months_board_and_no_stale_data(day_wh):
    wh, today = day_wh
    cat = load_catalog(wh)
    first, latest = data_range(wh, access.SYSTEM.scope, cat)
    assert latest == demo_end(today) == add_months(month_of(today), -1)
    assert add_months(first, 33) == latest
    kinds = set(alerts.open_alerts(wh, cat, access.SYSTEM)["kind"])
    assert "stale" not in kinds
    # the same rules judged again that morning still find nothing stale
    found = alerts.evaluate(wh, cat, access.SYSTEM, today=today)
    assert not [c for c in found if c.kind == "stale"]
    # last month has targets: the company's scorecard is scored, with full coverage
    group = cat.unit("GROUP")
    res = evaluate(wh, cat, access.SYSTEM.scope, [group.id], Period("M", latest))[group.id]
    assert res.score is not None and res.coverage == pytest.approx(1.0)
    for _w, node in res.kpi_children():
        assert node.levels is not None, cat.kpis[node.kpi_id].code


def test_loading_this_month_is_allowed_and_next_month_is_the_future(day_wh):
    wh, today = day_wh
    this, nxt = month_of(today), add_months(month_of(today), 1)
    csv = f"period,unit,kpi,value\n{this:%Y-%m},SALES_E,VISITS,100\n{nxt:%Y-%m},SALES_E,VISITS,90\n"
    prepared = intake.prepare(wh, [("m.csv", csv.encode())], access.SYSTEM, today=today)
    errors = [(f.row, str(f.message)) for f in prepared.errors]
    assert len(errors) == 1, errors
    assert f"{nxt:%Y-%m}" in errors[0][1] and "future" in errors[0][1]


def test_an_action_is_overdue_from_the_day_after_it_was_due(day_wh):
    wh, today = day_wh
    cat = load_catalog(wh)
    head = service.actor(wh, "head_sales")
    review.add_comment(
        wh, head, cat.kpi("REV").id, cat.unit("SALES").id, demo_end(today), "跟进华南回款",
        action="催收", owner="head_sales", due=today,
    )  # fmt: skip
    on_the_day = review.open_actions(wh, cat, head, today=today)
    assert not on_the_day["overdue"].any()
    next_day = review.open_actions(wh, cat, head, today=today + timedelta(days=1))
    assert next_day["overdue"].any()
    found = alerts.evaluate(wh, cat, access.SYSTEM, today=today + timedelta(days=1))
    assert [c for c in found if c.kind == "overdue"]


def test_stale_data_is_judged_after_the_grace_period(day_wh):
    """The demo ends last month: once this month is over and its grace days have passed, the
    month that is due is this one, and it is missing."""
    wh, today = day_wh
    cat = load_catalog(wh)
    grace = alerts.load_rules(wh).stale.grace_days
    next_month = add_months(month_of(today), 1)
    within_grace = next_month + timedelta(days=grace - 1)
    after_grace = next_month + timedelta(days=grace + 1)
    assert alerts.due_month(within_grace, grace) == month_of(add_months(month_of(today), -1))
    assert alerts.due_month(after_grace, grace) == month_of(today)
    assert not [c for c in alerts.evaluate(wh, cat, access.SYSTEM, today=within_grace)
                if c.kind == "stale"]  # fmt: skip
    late = [c for c in alerts.evaluate(wh, cat, access.SYSTEM, today=after_grace)
            if c.kind == "stale"]  # fmt: skip
    assert late and {c.period for c in late} == {month_of(today)}


def test_the_demo_never_joins_a_warehouse_that_has_users(tmp_path):
    """An admin created first ('boss'), then the app's first start: no demo KPIs, and above all
    none of the demo's well-known passwords."""
    from kpi_core.access import hash_password

    wh = Warehouse(tmp_path / "wh.duckdb", linger=0)
    try:
        with wh.transaction() as cur:
            cur.execute(
                "INSERT INTO app_user (name, display_name, role, scope, password_hash) "
                "VALUES ('boss', 'Boss', 'admin', [], ?)",
                [hash_password("a long passphrase")],
            )
        assert not service.ensure_demo(wh, today=DAYS[0])
        assert wh.rows("SELECT name FROM app_user") == [("boss",)]
        assert wh.is_empty()
    finally:
        wh.close()
