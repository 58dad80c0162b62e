"""A real browser: Debian's Chromium driven by Playwright against `streamlit run` on loopback."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from kpi_core import workbook
from kpi_core.access import Scope
from kpi_core.system_import import import_system
from kpi_core.warehouse import Warehouse
from tests.conftest import sales_system

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]

pytestmark = pytest.mark.browser


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(warehouse: Path):
    port = free_port()
    env = {**os.environ, "KPI_WAREHOUSE": str(warehouse)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("streamlit did not start within 60 s")


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: apt-get install -y chromium fonts-noto-cjk")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def sales_app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    book = tmp / "sales.xlsx"
    workbook.write(sales_system(), book)
    wh = Warehouse(tmp / "wh.duckdb", linger=0)
    import_system(wh, book, by="test", scope=Scope.all())
    wh.close()
    proc, url = start_app(tmp / "wh.duckdb")
    yield url, tmp / "wh.duckdb"
    proc.terminate()
    proc.wait(timeout=20)


def shot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_overview_and_board_by_deep_link(browser, sales_app):
    url, warehouse = sales_app
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    # Deep link to a page on a cold server: it must set itself up without the entry script.
    page.goto(f"{url}/Board?unit=SALES&period=2024&lang=en")
    page.get_by_text("58.00M CNY").first.wait_for(timeout=30_000)
    page.get_by_text("Rank 1 of 2 peer units").wait_for()
    shot(page, "board-sales-2024-en")
    page.goto(f"{url}/?period=2024&lang=en")
    page.get_by_text("Overall score").first.wait_for(timeout=30_000)
    page.get_by_text("Example Co").first.wait_for()
    assert page.locator("[data-testid='stException']").count() == 0
    shot(page, "overview-2024-en")
    # The command line works on the same warehouse while the app has it open.
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "kpi_core",
            "--warehouse",
            str(warehouse),
            "score",
            "--unit",
            "SALES",
            "--period",
            "2024",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    page.close()


def test_chinese_board(browser, sales_app):
    url, _ = sales_app
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page.goto(f"{url}/Board?unit=SALES&period=2024&lang=zh")
    page.get_by_text("5,800万元").first.wait_for(timeout=30_000)
    page.get_by_text("销售部 · 2024年").wait_for()
    shot(page, "board-sales-2024-zh")
    page.close()


def test_fresh_warehouse_is_seeded_with_the_demo(browser, tmp_path):
    proc, url = start_app(tmp_path / "fresh.duckdb")
    try:
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.goto(f"{url}/?lang=zh")
        page.get_by_text("综合得分").first.wait_for(timeout=60_000)
        assert page.locator("[data-testid='stException']").count() == 0
        shot(page, "overview-demo-zh")
        page.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
