"""The KPI library page in a real Chromium on a copy of the demo: create a KPI (the formula checked
as it is typed), see it listed, place it on a scorecard in Chinese, and import a KPI-system
workbook (checked first, then imported)."""

import shutil

import pytest
from playwright.sync_api import expect

from kpi_core import access, library_edits
from kpi_core.access import Scope
from kpi_core.catalog import load_catalog
from kpi_core.ui.library import export_bytes
from kpi_core.warehouse import Warehouse
from tests.browsing import settle
from tests.conftest import TODAY
from tests.test_browser import shot, start_app, visit
from tests.test_browser_upload import choose, no_traceback

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def library_app(tmp_path_factory, demo_file):
    tmp = tmp_path_factory.mktemp("browser_library")
    shutil.copy(demo_file, tmp / "wh.duckdb")
    proc, url = start_app(tmp / "wh.duckdb")
    yield url, tmp
    proc.terminate()
    proc.wait(timeout=20)


def catalog(path):
    wh = Warehouse(path, linger=0)
    try:
        return load_catalog(wh)
    finally:
        wh.close()


def pick(page, label: str, typed: str) -> None:
    """Pick in a long st.selectbox by typing (its list draws only the options in view)."""
    page.locator("[data-testid='stSelectbox']").filter(has_text=label).first.click()
    page.keyboard.type(typed)
    page.keyboard.press("Enter")
    settle(page)


def type_in(page, label: str, text: str) -> None:
    box = page.get_by_role("textbox", name=label, exact=True)
    box.fill(text)
    box.press("Enter")
    settle(page)


def test_create_a_kpi_and_see_it_listed(browser, library_app):
    url, tmp = library_app
    page = browser.new_page(viewport={"width": 1440, "height": 1600})
    visit(page, f"{url}/Library?lang=en")
    page.get_by_role("heading", name="KPI library").first.wait_for(timeout=30_000)
    grid = page.locator("[data-testid='stDataFrame']").first
    grid.wait_for()
    settle(page)
    no_traceback(page)
    shot(page, "library-list-en")

    page.get_by_role("tab", name="Edit KPI").click()
    type_in(page, "Code", "AOV")
    type_in(page, "Chinese name", "客单价")
    type_in(page, "English name", "Average order value")
    type_in(page, "Unit", "元")
    choose(page, "Aggregation", "Formula")
    settle(page)
    type_in(page, "Formula", "REV / ORDRES")
    page.get_by_text("unknown KPI ORDRES — use the codes of the KPI library").wait_for()
    settle(page)
    shot(page, "library-formula-error-en")
    type_in(page, "Formula", "REV / ORDERS")
    page.get_by_text("The formula is fine.").wait_for()
    type_in(page, "Owner", "王磊")
    page.get_by_role("button", name="Save").click()
    page.get_by_text("KPI AOV saved (new KPIs 1).").wait_for(timeout=30_000)
    page.get_by_text("SMART warnings for AOV:").wait_for()
    settle(page)
    no_traceback(page)
    shot(page, "library-saved-en")
    aov = catalog(tmp / "wh.duckdb").kpi("AOV")
    assert (aov.formula, aov.owner, aov.name_en) == ("REV / ORDERS", "王磊", "Average order value")

    page.get_by_role("tab", name="Library").click()
    type_in(page, "Filter", "AOV")
    grid = page.locator("[data-testid='stDataFrame']").first
    # The grid redraws after the filter's rerun: wait for the row rather than read once.
    expect(grid.locator("table").first).to_contain_text("Average order value", timeout=20_000)
    shot(page, "library-listed-en")
    page.close()


def test_place_on_a_scorecard_in_chinese(browser, library_app):
    url, tmp = library_app
    page = browser.new_page(viewport={"width": 1440, "height": 1400})
    visit(page, f"{url}/Library?lang=zh")
    page.get_by_role("heading", name="指标库").first.wait_for(timeout=30_000)
    pick(page, "指标", "CONVERSION")
    page.get_by_role("tab", name="放入考核表").click()
    choose(page, "组织", "SALES · 销售部")
    settle(page)
    page.get_by_text("权重合计 100。").wait_for()
    page.get_by_role("button", name="把 CONVERSION 加入 SALES 的考核表").click()
    settle(page)
    editor = page.locator("[data-testid='stDataFrame']").filter(has_text="SALES/CONVERSION")
    editor.first.wait_for(state="attached")
    page.get_by_role("button", name="保存考核表").click()
    settle(page)
    # Weight 0 for the new KPI keeps the sum at 100: saved.
    page.get_by_text("SALES 的考核表已保存。").wait_for(timeout=30_000)
    settle(page)
    no_traceback(page)
    shot(page, "library-place-zh")
    cat = catalog(tmp / "wh.duckdb")
    children = library_edits.children_of(cat, "SALES", None, TODAY.replace(day=1))
    assert ("SALES/CONVERSION", 0.0) in children
    page.close()


def test_import_a_kpi_system_workbook(browser, library_app):
    url, tmp = library_app
    other = tmp / "other.duckdb"
    shutil.copy(tmp / "wh.duckdb", other)
    wh = Warehouse(other, linger=0)
    try:
        library_edits.save_kpi(
            wh,
            {"code": "NPS", "name_zh": "净推荐值", "name_en": "Net promoter score", "unit": "分",
             "direction": "up", "aggregation": "avg"},
            access.SYSTEM,
        )  # fmt: skip
        (tmp / "system.xlsx").write_bytes(export_bytes(wh, Scope.all(), "zh"))
    finally:
        wh.close()
    page = browser.new_page(viewport={"width": 1440, "height": 1400})
    visit(page, f"{url}/Library?lang=en")
    page.get_by_role("heading", name="KPI library").first.wait_for(timeout=30_000)
    page.get_by_role("tab", name="Export / import").click()
    page.locator("[data-testid='stFileUploader'] input[type='file']").set_input_files(
        tmp / "system.xlsx"
    )
    page.get_by_text("system.xlsx has no problems. Importing it changes:").wait_for(timeout=60_000)
    settle(page)
    no_traceback(page)
    shot(page, "library-import-check-en")
    assert "NPS" not in catalog(tmp / "wh.duckdb").kpi_by_code
    page.get_by_role("button", name="Import", exact=True).click()
    try:
        page.get_by_text("system.xlsx imported").wait_for(timeout=60_000)
    finally:
        shot(page, "library-imported-en")
    settle(page)
    shot(page, "library-imported-en")
    assert catalog(tmp / "wh.duckdb").kpi("NPS").name_en == "Net promoter score"
    page.close()
