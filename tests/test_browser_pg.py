"""Issue 24 as it will be tried: two app servers on one PostgreSQL warehouse, in a real
Chromium. A head raises a target on one server while an analyst loads the month's actuals on
the other; both land, and the SALES board of either server shows both."""

import pytest
from openpyxl import Workbook
from playwright.sync_api import expect

from kpi_core import i18n
from kpi_core.access import Scope
from kpi_core.actuals import data_range
from kpi_core.board import board
from kpi_core.catalog import load_catalog
from kpi_core.periods import Period
from kpi_core.warehouse import open_warehouse
from tests.browsing import settle
from tests.conftest import _drop_pg_database, fresh_pg_database
from tests.test_browser import shot, start_app, visit
from tests.test_browser_library import type_in
from tests.test_browser_targets import (
    LEVELS,
    VIEW,
    edit_cell,
    latest_target,
    num,
    sales_board_pick,
    save_button,
    set_date,
)
from tests.test_browser_upload import no_traceback

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def two_servers(postgres, pg_demo):
    """A copy of the demo in PostgreSQL and two app servers on it, on two ports."""
    url = fresh_pg_database(postgres, template=pg_demo)
    started = [start_app(url), start_app(url)]
    yield url, [address for _, address in started]
    for proc, _ in started:
        proc.terminate()
        proc.wait(timeout=20)
    _drop_pg_database(postgres, url)


def sales_board(wh):
    """(catalog, the SALES unit, the latest month, the SALES board's lines then)."""
    cat = load_catalog(wh)
    _, latest = data_range(wh, Scope.all(), cat)
    sales = cat.unit("SALES")
    lines = board(wh, cat, Scope.all(), sales.id, Period("M", latest), as_of=latest).lines
    return cat, sales, latest, lines


def sales_line(url: str, code: str):
    """The SALES board's line of KPI `code` in the latest month, read through the core."""
    wh = open_warehouse(url, linger=0)
    try:
        cat, _, latest, lines = sales_board(wh)
        return next(ln for ln in lines if cat.kpis[ln.node.kpi_id].code == code), cat, latest
    finally:
        wh.close()


def upload_pick(url: str, avoid: str) -> tuple[str, str, str, float, str]:
    """A `sum` KPI of the SALES board other than `avoid`, a region that reported it in the
    latest month: (KPI code, region code, month, its value there, the KPI's English name)."""
    wh = open_warehouse(url, linger=0)
    try:
        cat, sales, latest, lines = sales_board(wh)
        for line in lines:
            kpi = cat.kpis[line.node.kpi_id]
            if kpi.code == avoid or kpi.aggregation != "sum":
                continue
            found = wh.one(
                "SELECT u.code, a.value FROM actual a JOIN org_unit u ON u.id = a.unit_id"
                " WHERE a.kpi_id = ? AND u.parent_id = ? AND a.period = ? ORDER BY u.code LIMIT 1",
                [kpi.id, sales.id, latest],
            )
            if found:
                return kpi.code, found[0], f"{latest:%Y-%m}", float(found[1]), kpi.name_en
        raise AssertionError("no region value of a sum KPI on the SALES board")
    finally:
        wh.close()


def open_sales_board(page, server: str, user: str, password: str) -> None:
    visit(page, f"{server}/Board?unit=SALES&lang=en", user=user, password=password)
    page.get_by_text("KPI cards").first.wait_for(timeout=60_000)
    settle(page)
    no_traceback(page)


def card_text(page, kpi_name: str) -> str:
    """The text of a KPI's card on the open board: from the name in bold up to the nearest
    block that also holds the card's metric."""
    return page.evaluate(
        """(name) => {
            for (const strong of document.querySelectorAll("strong")) {
                if (strong.innerText.trim() !== name) continue;
                let el = strong;
                while (el && !el.querySelector("[data-testid='stMetric']")) el = el.parentElement;
                if (el) return el.innerText;
            }
            return "";
        }""",
        kpi_name,
    )


def test_a_head_and_an_analyst_on_two_servers_both_land(browser, two_servers, tmp_path):
    url, (one, two) = two_servers
    row, year = sales_board_pick(url)  # a green or amber KPI a hundredfold target turns red
    code, region, month, before, name = upload_pick(url, row.code.split("/")[1])
    line, cat, _ = sales_line(url, code)
    changed = round(before * 1.1 + 1)  # within reach of last month: no far-away refusal
    expected = line.node.actual - before + changed

    # The head starts editing on server one ...
    head = browser.new_page(viewport=VIEW)
    visit(head, f"{one}/Targets?unit=SALES&lang=en", user="head_sales", password="head")
    head.locator("[data-testid='stDataFrame']").first.wait_for(timeout=60_000)
    settle(head)
    new = [v * 100 for v in row.levels]
    for column, value in zip(LEVELS, new, strict=True):
        edit_cell(head, row, column, num(value))
    set_date(head, "Effective date", f"{year}-01-01")
    type_in(head, "Reason", "Stretch plan, server one")

    # ... while the analyst loads the month's value on server two ...
    book = Workbook()
    sheet = book.active
    sheet.title = "actuals"
    sheet.append(["period", "unit", "kpi", "value"])
    sheet.append([month, region, code, changed])
    book.save(tmp_path / "month.xlsx")
    analyst = browser.new_page(viewport={"width": 1440, "height": 1600})
    visit(analyst, f"{two}/Upload?lang=en", user="analyst", password="analyst")
    analyst.get_by_text("Upload monthly actuals").wait_for(timeout=60_000)
    analyst.locator("[data-testid='stFileUploader'] input[type='file']").first.set_input_files(
        tmp_path / "month.xlsx"
    )
    load = analyst.get_by_role("button", name="Load into the warehouse")
    expect(load).to_be_enabled(timeout=60_000)
    load.click()
    analyst.get_by_text("1 changed").first.wait_for(timeout=60_000)
    no_traceback(analyst)

    # ... and the head saves afterwards: another table, so no conflict.
    expect(save_button(head)).to_be_enabled(timeout=10_000)
    save_button(head).click()
    head.get_by_text(f"Saved 1 row(s) (3 cell(s)), valid from {year}-01.").wait_for(timeout=60_000)
    no_traceback(head)
    version, *levels, _, reason = latest_target(url, row.code, year)
    assert (version, levels, reason) == (2, new, "Stretch plan, server one")
    assert sales_line(url, code)[0].node.actual == pytest.approx(expected)

    # Both boards, on both servers, show both: the red light and the new value.
    value = i18n.format_value(expected, cat.kpis[line.node.kpi_id], "en")
    red = i18n.status_label("red", "en")
    for page, server, user, password in (
        (head, two, "head_sales", "head"),
        (analyst, one, "analyst", "analyst"),
    ):
        open_sales_board(page, server, user, password)
        assert red in card_text(page, row.kpi), (server, user)
        assert value in card_text(page, name), (server, user)
        shot(page, f"two-servers-board-{user}")
    head.close()
    analyst.close()
