"""The TOML round-trip of the profile editor (Upload page) and of the Sources page, in a real
browser: download what is saved, open a wrong file (each problem with its line) and a right one
(into the editor, and saved), and read the result back through the command line."""

from __future__ import annotations

import subprocess
import sys
from datetime import date

import openpyxl
import pytest

from kpi_core.ingest import definition_file
from kpi_core.warehouse import Warehouse
from tests.browsing import settle
from tests.test_browser import shot, start_app, visit
from tests.test_browser_sources import sources_app  # noqa: F401 - a fixture
from tests.test_browser_upload import choose, no_traceback, upload_app  # noqa: F401
from tests.test_sources_page import erp_source
from tests.test_upload_page import orders_profile, orders_xlsx

pytestmark = pytest.mark.browser


def exported(warehouse, kind: str, name: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kpi_core", "--warehouse", str(warehouse), "--admin", kind,
         "export", name],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip


def toml_input(page):
    """The 'Open a TOML file' uploader (the Upload page has another one for actuals)."""
    return (
        page.locator("[data-testid='stFileUploader']")
        .filter(has=page.locator("input[accept*='toml']"))
        .locator("input[type='file']")
    )


def test_profile_editor_downloads_and_opens_toml(browser, upload_app):  # noqa: F811
    url, tmp = upload_app
    page = browser.new_page(viewport={"width": 1440, "height": 2000}, accept_downloads=True)
    visit(page, f"{url}/Upload?lang=en")
    page.get_by_text("Upload monthly actuals").wait_for(timeout=30_000)
    page.get_by_role("tab", name="Mapping profiles").click()
    choose(page, "Edit", "ERP orders")
    with page.expect_download() as got:
        page.get_by_role("button", name="Download as saved (TOML)").click()
    text = got.value.path().read_text(encoding="utf-8")
    assert got.value.suggested_filename == "ERP orders.toml"
    assert text == definition_file.profile_text(orders_profile())

    # A wrong file: nothing opens, each problem is named with its line.
    bad = tmp / "bad.toml"
    bad.write_text(text.replace('kpi = "REV"', 'kpi = ""'), encoding="utf-8")
    toml_input(page).set_input_files(bad)
    page.get_by_text("bad.toml cannot be used:").wait_for(timeout=30_000)
    line = text.splitlines().index('kpi = "REV"') + 1
    page.get_by_text(f"bad.toml line {line}: measure 1: choose the KPI").wait_for()
    settle(page)
    shot(page, "definition-profile-refused-en")

    # The right file, renamed by the analyst: it opens, saves as it is, and is the same profile.
    good = tmp / "erp v2.toml"
    good.write_text(text.replace('name = "ERP orders"', 'name = "ERP v2"'), encoding="utf-8")
    toml_input(page).set_input_files(good)
    page.get_by_text("profile 'ERP v2' is complete").wait_for(timeout=30_000)
    page.get_by_role("button", name="Save the file's profile as it is").click()
    page.get_by_text("Profile 'ERP v2' saved and chosen").wait_for(timeout=30_000)
    no_traceback(page)
    back = exported(tmp / "wh.duckdb", "profile", "ERP v2")
    assert back.returncode == 0, back.stderr
    assert back.stdout == definition_file.profile_text(orders_profile("ERP v2"))

    # With a sample file, the editor starts from the opened file's settings.
    (tmp / "orders.xlsx").write_bytes(orders_xlsx())
    page.get_by_role("tab", name="Upload & check").click()
    page.locator("[data-testid='stFileUploader'] input[type='file']").first.set_input_files(
        tmp / "orders.xlsx"
    )
    page.get_by_role("tab", name="Mapping profiles").click()
    toml_input(page).set_input_files(good)
    page.get_by_text("What the sample file gives").wait_for(timeout=30_000)
    assert page.get_by_label("Profile name").input_value() == "ERP v2"
    no_traceback(page)
    settle(page)
    shot(page, "definition-profile-opened-en")
    page.close()


def test_sources_page_downloads_and_opens_toml(browser, sources_app):  # noqa: F811
    url, tmp, db = sources_app
    env = {**__import__("os").environ, "KPI_SOURCE_DIRS": str(db.parent)}
    page = browser.new_page(viewport={"width": 1440, "height": 2200}, accept_downloads=True)
    visit(page, f"{url}/Sources?lang=zh")
    choose(page, "数据源", "ERP orders")
    page.get_by_role("tab", name="定义数据源").click()
    with page.expect_download() as got:
        page.get_by_role("button", name="下载已保存的（TOML）").click()
    text = got.value.path().read_text(encoding="utf-8")
    assert text == definition_file.source_text(erp_source(db))

    bad = tmp / "bad.toml"
    bad.write_text(text.replace("row_limit = 1000", "row_limt = 1000"), encoding="utf-8")
    toml_input(page).set_input_files(bad)
    line = text.splitlines().index("row_limit = 1000") + 1
    page.get_by_text(f"bad.toml 第 {line} 行：文件顶层有未知的键“row_limt”").wait_for(
        timeout=30_000
    )
    settle(page)
    shot(page, "definition-source-refused-zh")

    good = tmp / "erp2.toml"
    good.write_text(text.replace('name = "ERP orders"', 'name = "ERP 2"'), encoding="utf-8")
    toml_input(page).set_input_files(good)
    page.get_by_text("数据源“ERP 2”完整无误").wait_for(timeout=30_000)
    settle(page)  # until the run ends, the previous run's name field is still on the page (stale)
    assert page.get_by_label("名称").input_value() == "ERP 2"
    page.get_by_role("button", name="保存数据源").click()
    page.get_by_text("数据源“ERP 2”已保存").wait_for(timeout=30_000)
    no_traceback(page)
    settle(page)
    shot(page, "definition-source-saved-zh")
    page.close()
    back = exported(tmp / "wh.duckdb", "source", "ERP 2", env)
    assert back.returncode == 0, back.stderr
    assert back.stdout == definition_file.source_text(erp_source(db, "ERP 2"))


@pytest.fixture
def demo_app(own_file):
    proc, url = start_app(own_file)
    yield url
    proc.terminate()
    proc.wait(timeout=20)


def test_targets_from_a_sheet_with_a_mapping(browser, demo_app, own_file, tmp_path):
    from tests.test_target_mapping import HEADER, ROWS, monthly

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Targets 2027"
    ws.append(["Channel targets 2027"])
    ws.append(HEADER)
    for r in ROWS:
        ws.append(r)
    wb.save(tmp_path / "channels.xlsx")
    (tmp_path / "channels.toml").write_text(
        definition_file.target_mapping_text(monthly()), encoding="utf-8"
    )
    (tmp_path / "nofill.toml").write_text(
        definition_file.target_mapping_text(monthly(fill_down=[])), encoding="utf-8"
    )
    page = browser.new_page(viewport={"width": 1440, "height": 1400})
    visit(page, f"{demo_app}/Targets?lang=en")
    page.get_by_role("tab", name="From a sheet").click()
    uploads = page.locator("[data-testid='stFileUploader'] input[type='file']")
    uploads.nth(0).set_input_files(tmp_path / "channels.xlsx")
    # The sheet's run first: a second upload while it runs was lost once under load.
    page.locator("[data-testid='stFileUploader']").nth(0).get_by_text("channels.xlsx").wait_for(
        timeout=30_000
    )
    settle(page)
    uploads.nth(1).set_input_files(tmp_path / "nofill.toml")
    page.get_by_text(
        "channels.xlsx sheet 'Targets 2027' row 4 column 'Monthly target': no target"
    ).wait_for(timeout=30_000)
    uploads.nth(1).set_input_files(tmp_path / "channels.toml")
    page.get_by_text("3 new target versions would be saved").wait_for(timeout=30_000)
    page.get_by_placeholder("e.g. 2027 channel targets").fill("2027 channel plan")
    page.get_by_placeholder("e.g. 2027 channel targets").press("Tab")
    settle(page)
    page.get_by_role("button", name="Save", exact=True).click()
    page.get_by_text("Saved 3 target versions from channels.xlsx.").wait_for(timeout=30_000)
    no_traceback(page)
    settle(page)
    shot(page, "targets-from-a-sheet-en")
    page.close()
    wh = Warehouse(own_file, linger=0)
    try:
        got = wh.rows(
            """SELECT u.code, t.period_start, t.target, t.reason FROM target t
               JOIN org_unit u ON u.id = t.unit_id JOIN kpi k ON k.id = t.kpi_id
               WHERE k.code = 'REV' AND t.period_start >= DATE '2027-01-01' ORDER BY 1, 2"""
        )
    finally:
        wh.close()
    assert got == [
        ("SALES_E", date(2027, 1, 1), 1_200_000.0, "2027 channel plan"),
        ("SALES_E", date(2027, 2, 1), 1_500_000.0, "2027 channel plan"),
        ("SALES_N", date(2027, 1, 1), 800_000.0, "2027 channel plan"),
    ]
