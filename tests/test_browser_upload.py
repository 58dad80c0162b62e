"""The Upload page in a real Chromium: drop a workbook, read the problem, confirm, load, check."""

import json
import subprocess
import sys

import pytest
from openpyxl import Workbook

from kpi_core import workbook
from kpi_core.access import SYSTEM, Scope
from kpi_core.ingest import files, profile
from kpi_core.system_import import import_system
from kpi_core.warehouse import Warehouse
from tests.browsing import settle
from tests.conftest import sales_system
from tests.test_browser import ROOT, shot, start_app, visit
from tests.test_upload_page import orders_profile, orders_xlsx

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def upload_app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser_upload")
    book = tmp / "sales.xlsx"
    workbook.write(sales_system(), book)
    wh = Warehouse(tmp / "wh.duckdb", linger=0)
    import_system(wh, book, by="test", scope=Scope.all())
    profile.save(wh, orders_profile(), SYSTEM)
    wh.close()
    proc, url = start_app(tmp / "wh.duckdb")
    yield url, tmp
    proc.terminate()
    proc.wait(timeout=20)


def december_workbook(path):
    """Three good rows and, in row 5, a value that is not a number."""
    wb = Workbook()
    ws = wb.active
    ws.title = "actuals"
    for row in (
        ("period", "unit", "kpi", "value"),
        ("2024-12", "EAST", "REV", 3_500_000),
        ("2024-11", "SALES", "CSAT", 95),
        ("2024-12", "SALES", "CSAT", 80),
        ("2024-12", "SALES", "NEW_CUST", "lots"),
    ):
        ws.append(list(row))
    wb.save(path)


def score(warehouse, unit: str, period: str) -> dict:
    """The scorecard through the command line, while the app has the warehouse open."""
    out = subprocess.run(
        [sys.executable, "-m", "kpi_core", "--warehouse", str(warehouse), "--admin", "score",
         "--unit", unit, "--period", period, "--json"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return {k["kpi"]: k for k in json.loads(out.stdout)["kpis"]}


def no_traceback(page):
    assert page.locator("[data-testid='stException']").count() == 0


def test_upload_check_confirm_and_load(browser, upload_app):
    url, tmp = upload_app
    december_workbook(tmp / "december.xlsx")
    # Tall, so a screenshot holds the whole report (the app scrolls inside its own pane).
    page = browser.new_page(viewport={"width": 1440, "height": 2000})
    visit(page, f"{url}/Upload?lang=en")
    page.get_by_text("Upload monthly actuals").wait_for(timeout=30_000)
    settle(page)
    shot(page, "upload-empty-en")

    page.locator("[data-testid='stFileUploader'] input[type='file']").first.set_input_files(
        tmp / "december.xlsx"
    )
    page.get_by_text("1 error(s) and 0 warning(s) found").wait_for(timeout=30_000)
    page.get_by_text("Status lights that change").wait_for()
    no_traceback(page)
    problems = page.locator("[data-testid='stDataFrame']").first
    settle(page)
    shot(page, "upload-checked-en")
    # The problem names its file, sheet, row and what to do (the grid draws on a canvas; its
    # accessible table holds the text).
    grid = problems.inner_text() + problems.locator("table").first.inner_text()
    assert "'lots' is not a number" in grid, grid
    assert "december.xlsx" in grid and "actuals" in grid and "5" in grid

    load = page.get_by_role("button", name="Load into the warehouse")
    assert load.is_disabled()
    page.get_by_text("Load only the 3 valid values and leave the 1 invalid ones out").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('button')].some("
        "b => b.innerText.includes('Load into the warehouse') && !b.disabled)",
        timeout=30_000,
    )
    load.click()
    page.get_by_text("Loaded as batch 2: 0 new, 3 changed, 0 removed, 0 unchanged, 1 left out.")\
        .wait_for(timeout=30_000)  # fmt: skip
    no_traceback(page)
    settle(page)
    shot(page, "upload-loaded-en")

    sales = score(tmp / "wh.duckdb", "SALES", "2024-12")
    assert sales["REV"]["actual"] == pytest.approx(3_500_000 + 1_933_333.333333)
    assert sales["CSAT"]["actual"] == 80
    assert score(tmp / "wh.duckdb", "SALES", "2024-11")["CSAT"]["actual"] == 95

    page.get_by_role("tab", name="History").click()
    page.get_by_text("Roll back a batch").wait_for()
    settle(page)
    shot(page, "upload-history-en")
    page.close()


def test_template_downloads_and_reads_back(browser, upload_app):
    url, tmp = upload_app
    page = browser.new_page(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    visit(page, f"{url}/Upload?lang=zh")
    page.get_by_text("上传月度实际数据").wait_for(timeout=30_000)
    page.get_by_role("tab", name="下载模板").click()
    button = page.get_by_role("button", name="下载模板（.xlsx）")
    button.wait_for()
    settle(page)
    shot(page, "upload-template-zh")
    with page.expect_download(timeout=30_000) as got:
        button.click()
    path = tmp / got.value.suggested_filename
    got.value.save_as(path)
    assert path.name.startswith("kpi_template_CO_")
    tables = files.read_file(path.name, path.read_bytes())
    assert tables[0].rows[0][:3] == ["期间", "组织", "指标编码"]
    assert len(tables[0].rows) > 5
    no_traceback(page)
    page.close()


def test_chinese_page_and_a_file_that_cannot_be_read(browser, upload_app):
    url, tmp = upload_app
    (tmp / "坏文件.xlsx").write_bytes(b"PK\x03\x04 not really a workbook")
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    visit(page, f"{url}/Upload?lang=zh")
    page.get_by_text("上传月度实际数据").wait_for(timeout=30_000)
    page.locator("[data-testid='stFileUploader'] input[type='file']").first.set_input_files(
        tmp / "坏文件.xlsx"
    )
    page.get_by_text("文件无法读取").wait_for(timeout=30_000)
    page.locator("[data-testid='stAlert']").filter(has_text="坏文件.xlsx").first.wait_for()
    no_traceback(page)
    settle(page)
    shot(page, "upload-bad-file-zh")
    page.close()


def choose(page, label: str, option: str) -> None:
    """Pick an option of the st.selectbox with this label."""
    page.locator("[data-testid='stSelectbox']").filter(has_text=label).first.click()
    page.get_by_role("option", name=option).first.click()


def test_erp_export_through_a_mapping_profile(browser, upload_app):
    url, tmp = upload_app
    (tmp / "orders.xlsx").write_bytes(orders_xlsx())
    page = browser.new_page(viewport={"width": 1440, "height": 2000})
    visit(page, f"{url}/Upload?lang=zh")
    page.get_by_text("上传月度实际数据").wait_for(timeout=30_000)
    page.locator("[data-testid='stFileUploader'] input[type='file']").first.set_input_files(
        tmp / "orders.xlsx"
    )
    # Not KPI-shaped: the report says so and points to the profiles.
    page.get_by_text("请在“映射方案”页为它建立一次方案").wait_for(timeout=30_000)
    settle(page)
    shot(page, "upload-erp-unmapped-zh")

    page.get_by_role("tab", name="映射方案").click()
    choose(page, "编辑", "ERP orders")
    page.get_by_text("用示例文件试算的结果").wait_for(timeout=30_000)
    no_traceback(page)
    settle(page)
    shot(page, "upload-profile-editor-zh")

    page.get_by_role("tab", name="上传与检查").click()
    choose(page, "映射方案", "ERP orders")
    page.get_by_text("来源：ERP orders").wait_for(timeout=30_000)
    settle(page)
    shot(page, "upload-erp-checked-zh")
    page.get_by_role("button", name="写入数据仓库").click()
    page.get_by_text("已写入，批次号").wait_for(timeout=30_000)
    no_traceback(page)
    settle(page)
    shot(page, "upload-erp-loaded-zh")
    page.close()
    rev = score(tmp / "wh.duckdb", "SALES", "2024-12")["REV"]["actual"]
    assert rev == pytest.approx(3_000_000 + 1_500_000)
