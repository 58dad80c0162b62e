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
from tests.browsing import settle
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


def start_app(
    warehouse: Path,
    *,
    port: int | None = None,
    args: tuple[str, ...] = (),
    env: dict | None = None,
    log: Path | None = None,
):
    """`streamlit run app.py` on 127.0.0.1 with the warehouse, waited for until healthy."""
    port = port or free_port()
    out = log.open("w") if log else subprocess.DEVNULL
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", *args],
        cwd=ROOT, env={**os.environ, "KPI_WAREHOUSE": str(warehouse), **(env or {})},
        stdout=out, stderr=subprocess.STDOUT,
    )  # fmt: skip
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


def visit(page, url: str, user: str = "admin", password: str = "admin") -> None:
    """Open a URL as a new browser session does, signing in on the form when it is asked for
    (a warehouse without users has no form)."""
    page.goto(url)
    page.wait_for_selector(
        "[data-testid='stApp'][data-test-script-state='notRunning']", timeout=60_000
    )
    name = page.locator("input[autocomplete='username']")
    if name.count():
        name.fill(user)
        page.locator("input[type='password']").fill(password)
        page.locator("input[type='password']").press("Enter")
        name.wait_for(state="detached", timeout=60_000)
        page.wait_for_selector(
            "[data-testid='stApp'][data-test-script-state='notRunning']", timeout=60_000
        )
        page.wait_for_function(
            "() => !document.querySelector(\"[data-stale='true']\")", timeout=60_000
        )


def shot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_overview_and_board_by_deep_link(browser, sales_app):
    url, warehouse = sales_app
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    # Deep link to a page on a cold server: it must set itself up without the entry script.
    visit(page, f"{url}/Board?unit=SALES&period=2024&lang=en")
    page.get_by_text("58.00M CNY").first.wait_for(timeout=30_000)
    page.get_by_text("Rank 1 of 2 peer units").wait_for()
    shot(page, "board-sales-2024-en")
    visit(page, f"{url}/?period=2024&lang=en")
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
    visit(page, f"{url}/Board?unit=SALES&period=2024&lang=zh")
    page.get_by_text("5,800万元").first.wait_for(timeout=30_000)
    page.get_by_text("销售部 · 2024年").wait_for()
    shot(page, "board-sales-2024-zh")
    page.close()


@pytest.fixture(scope="module")
def fresh_app(tmp_path_factory):
    """The app started on a warehouse file that does not exist yet, as a new user starts it."""
    proc, url = start_app(tmp_path_factory.mktemp("fresh") / "fresh.duckdb")
    yield url
    proc.terminate()
    proc.wait(timeout=20)


def test_fresh_warehouse_is_seeded_with_the_demo(browser, fresh_app):
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    visit(page, f"{fresh_app}/?lang=zh")
    page.get_by_text("综合得分").first.wait_for(timeout=60_000)
    assert page.locator("[data-testid='stException']").count() == 0
    shot(page, "overview-demo-zh")
    page.close()


def test_each_demo_role_signs_in_and_sees_its_own(browser, fresh_app):
    """As a new user of the demo would: the form, each documented demo user, a URL for a unit
    outside the scope, a wrong password, and signing out."""
    url = fresh_app
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page.goto(f"{url}/Board?unit=SALES&lang=en")
    page.get_by_text("Demo users").wait_for(timeout=60_000)
    assert page.locator("[data-testid='stSidebarNav'], a[href*='Board']").count() == 0
    shot(page, "sign-in-en")
    page.locator("input[autocomplete='username']").fill("viewer_prod")
    page.locator("input[type='password']").fill("wrong")
    page.locator("input[type='password']").press("Enter")
    refused = "The user name or password is not right, or the user is locked"
    page.get_by_text(refused).wait_for(timeout=30_000)
    page.close()

    seen, pages = {}, {}
    for user, password, home in (
        ("viewer_prod", "viewer", "Production Department"),
        ("head_sales", "head", "Sales Department"),
        ("admin", "admin", "Sales Department"),
    ):
        # A browser each (a signed-in browser stays signed in). A deep link to Sales: the
        # viewer of Production is shown Production instead.
        page = pages[user] = browser.new_page(viewport={"width": 1440, "height": 1000})
        visit(page, f"{url}/Board?unit=SALES&lang=en", user, password)
        sidebar = page.locator("[data-testid='stSidebar']")
        sidebar.get_by_text(f"Signed in as: {user}").wait_for(timeout=30_000)
        page.get_by_text(f"{home} · ").first.wait_for(timeout=30_000)
        seen[user] = sidebar.inner_text()
        assert page.locator("[data-testid='stException']").count() == 0
        page.get_by_text("KPI cards").wait_for()
        settle(page)  # the charts drawn, for the screenshot
        shot(page, f"board-as-{user}")
    assert "Admin" in seen["admin"] and "Admin" not in seen["viewer_prod"]
    assert "Sales" not in seen["viewer_prod"]  # not even in the unit picker
    page = pages["viewer_prod"]
    visit(page, f"{url}/Board?unit=SALES&lang=en")  # still signed in: no form
    page.get_by_text("There is no unit 'SALES' in your scope").wait_for(timeout=30_000)

    page.get_by_role("button", name="Sign out", exact=True).click()
    page.get_by_text("You are signed out.").wait_for(timeout=30_000)
    visit(page, f"{url}/?lang=zh", "head_sales", "head")
    page.get_by_text("当前用户: head_sales").wait_for(timeout=30_000)
    page.goto(f"{url}/?lang=zh")  # a reload keeps the sign-in (the session cookie)
    page.get_by_text("当前用户: head_sales").wait_for(timeout=60_000)
    page.get_by_role("button", name="退出登录", exact=True).click()
    page.get_by_text("演示用户").wait_for(timeout=60_000)
    shot(page, "sign-in-zh")
    for opened in pages.values():
        opened.close()
