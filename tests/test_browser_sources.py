"""The Sources page in a real Chromium: a saved SQLite source is tested, pulled, checked and
loaded, and the warehouse then holds what SQLite's own GROUP BY gives; a literal password is
refused, in Chinese."""

import pytest
from playwright.sync_api import expect

from kpi_core import workbook
from kpi_core.access import SYSTEM, Scope
from kpi_core.ingest import sources
from kpi_core.system_import import import_system
from kpi_core.warehouse import Warehouse
from tests.browsing import settle
from tests.conftest import sales_system
from tests.test_browser import shot, start_app, visit
from tests.test_browser_upload import choose, no_traceback, score
from tests.test_sources_page import erp_source, expected_revenue, make_erp

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def sources_app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser_sources")
    book = tmp / "sales.xlsx"
    workbook.write(sales_system(), book)
    exports = tmp / "exports"  # the folder sources may read; the warehouse lies beside it
    exports.mkdir()
    db = make_erp(exports / "erp.db")
    wh = Warehouse(tmp / "wh.duckdb", linger=0)
    import_system(wh, book, by="test", scope=Scope.all())
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KPI_SOURCE_DIRS", str(exports))
        sources.save(wh, erp_source(db), SYSTEM)
    wh.close()
    proc, url = start_app(tmp / "wh.duckdb", env={"KPI_SOURCE_DIRS": str(exports)})
    yield url, tmp, db
    proc.terminate()
    proc.wait(timeout=20)


def test_pull_a_saved_source_check_and_load(browser, sources_app):
    url, tmp, db = sources_app
    # Tall, so a screenshot holds the whole report (the app scrolls inside its own pane).
    page = browser.new_page(viewport={"width": 1440, "height": 1800})
    visit(page, f"{url}/Sources?lang=en")
    page.get_by_text("Database sources").first.wait_for(timeout=30_000)
    grid = page.locator("[data-testid='stDataFrame']").first
    grid.wait_for()
    settle(page)
    # The grid draws on a canvas; its accessible table holds the text.
    expect(grid.locator("table").first).to_contain_text("ERP orders", timeout=20_000)
    no_traceback(page)
    shot(page, "sources-list-en")

    choose(page, "Source", "ERP orders")
    page.get_by_role("tab", name="Define a source").click()
    page.get_by_role("button", name="Test connection").click()
    page.get_by_text("Connected: SQLite").wait_for(timeout=30_000)
    settle(page)
    no_traceback(page)
    shot(page, "sources-define-en")

    page.get_by_role("tab", name="Pull").click()
    page.get_by_text("Only new months (never pulled: all of them)").wait_for()
    page.get_by_role("button", name="Pull and check").click()
    page.get_by_text("Read 7 rows from ERP orders").first.wait_for(timeout=60_000)
    page.get_by_text("Preview of the changes").wait_for()
    load = page.get_by_role("button", name="Load into the warehouse")
    assert load.is_enabled()
    settle(page)
    no_traceback(page)
    shot(page, "sources-pulled-en")
    load.click()
    page.get_by_text(
        "Loaded as batch 2: 1 new, 4 changed, 0 removed, 0 unchanged, 0 left out."
    ).wait_for(timeout=30_000)
    settle(page)
    no_traceback(page)
    shot(page, "sources-loaded-en")

    expected = expected_revenue(db)
    sales = score(tmp / "wh.duckdb", "SALES", "2024-12")["REV"]["actual"]
    assert sales == pytest.approx(expected[("EAST", "2024-12")] + expected[("NORTH", "2024-12")])
    # January has only East's orders: Sales' revenue is theirs.
    january = score(tmp / "wh.duckdb", "SALES", "2025-01")["REV"]["actual"]
    assert january == pytest.approx(expected[("EAST", "2025-01")])

    page.get_by_role("tab", name="History").click()
    page.get_by_text("Roll back a batch").wait_for()
    settle(page)
    shot(page, "sources-history-en")
    page.close()


def test_chinese_page_refuses_a_literal_password(browser, sources_app):
    url, _, _ = sources_app
    page = browser.new_page(viewport={"width": 1440, "height": 1400})
    visit(page, f"{url}/Sources?lang=zh")
    page.get_by_text("数据库数据源").first.wait_for(timeout=30_000)
    page.get_by_role("tab", name="定义数据源").click()
    box = page.get_by_role("textbox", name="连接地址（SQLAlchemy URL）")
    box.fill("postgresql+psycopg://kpi:s3cret@db.example.com:5432/erp")
    box.press("Enter")
    page.get_by_text("连接地址中含有密码——它会以明文保存").first.wait_for(timeout=30_000)
    assert page.get_by_role("button", name="测试连接").is_disabled()
    assert page.get_by_role("button", name="保存数据源").is_disabled()
    settle(page)
    no_traceback(page)
    shot(page, "sources-password-zh")
    # A secret reference anywhere but the password, or outside [source_secrets]: said, in Chinese.
    box.fill("sqlite:////srv/${secrets.push.smtp_password}.db")
    box.press("Enter")
    page.get_by_text("只能用于密码").first.wait_for(timeout=30_000)
    box.fill("postgresql+psycopg://kpi:${secrets.push.smtp_password}@db.example.com/erp")
    box.press("Enter")
    page.get_by_text(
        "它只能读取 .streamlit/secrets.toml 中 [source_secrets] 段的键"
    ).first.wait_for(timeout=30_000)
    assert page.get_by_role("button", name="测试连接").is_disabled()
    settle(page)
    no_traceback(page)
    shot(page, "sources-reference-zh")

    # The saved source pulled on the Chinese page: the same report, in Chinese.
    choose(page, "数据源", "ERP orders")
    page.get_by_role("tab", name="提取数据").click()
    page.get_by_text("全部月份").click()  # whatever was pulled before
    settle(page)
    page.get_by_role("button", name="提取并检查").click()
    page.get_by_text("已从 ERP orders 读取 7 行").first.wait_for(timeout=60_000)
    page.get_by_text("检查结果").wait_for()
    settle(page)
    no_traceback(page)
    shot(page, "sources-pulled-zh")
    page.close()


def test_define_a_new_source(browser, sources_app):
    url, _, db = sources_app
    page = browser.new_page(viewport={"width": 1440, "height": 2000})
    visit(page, f"{url}/Sources?lang=en")
    page.get_by_text("Database sources").first.wait_for(timeout=30_000)
    page.get_by_role("tab", name="Define a source").click()
    page.get_by_role("textbox", name="Name").fill("ERP copy")
    box = page.get_by_role("textbox", name="Connection URL (SQLAlchemy)")
    box.fill(f"sqlite:///{db}")
    box.press("Enter")
    settle(page)
    page.get_by_role("button", name="Test connection").click()
    page.get_by_text("Connected: SQLite").wait_for(timeout=30_000)
    choose(page, "Table", "orders")
    page.get_by_text("Columns of orders").wait_for(timeout=30_000)
    # Filled in by the table choice's run: waited for, as a busy machine may take a moment.
    expect(page.get_by_role("textbox", name="Query (SQL)")).to_have_value("SELECT * FROM orders")
    page.get_by_role("button", name="Run a sample (first 50 rows)").click()
    page.get_by_text("The query's first 7 rows:").wait_for(timeout=30_000)
    page.get_by_text("Value in the source").first.wait_for()
    settle(page)
    no_traceback(page)
    shot(page, "sources-define-new-en")
    page.close()
