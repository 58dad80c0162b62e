"""Issue 21 in a real browser, signed in as the Sales head on the demo: what is red and which
sub-unit caused it is on the first screen of the Board at 390×844 and 1440×900; its line opens
the KPI's detail, a child unit's detail is one more click, and the back button walks home."""

from __future__ import annotations

import shutil

import pytest

from tests.browsing import settle
from tests.test_browser import shot, start_app, visit

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def demo_app(demo_file, tmp_path_factory):
    path = tmp_path_factory.mktemp("detail") / "wh.duckdb"
    shutil.copy(demo_file, path)
    proc, url = start_app(path)
    yield url
    proc.terminate()
    proc.wait(timeout=20)


def title(page) -> str:
    return page.locator("h1").first.inner_text()


def titled(page, start: str) -> None:
    """Wait until the page's title starts with `start` (a rerun after the back button)."""
    page.wait_for_function(
        "t => (document.querySelector('h1')?.innerText || '').startsWith(t)",
        arg=start,
        timeout=30_000,
    )


ATTENTION = "[class*='st-key-wraplinks_attention'] [data-testid='stPageLink'] a"


@pytest.mark.parametrize(
    ("lang", "width", "height", "red", "board", "child"),
    [
        ("zh", 390, 844, "营业收入 红灯 — 华南大区 43.0", "销售部", "拜访成单率"),
        ("en", 1440, 900, "Revenue red — South China Region 43.0", "Sales Department",
         "Visit-to-order conversion"),
    ],
)  # fmt: skip
def test_red_and_its_cause_on_the_first_screen_then_one_click_and_back(
    browser, demo_app, lang, width, height, red, board, child
):
    page = browser.new_page(viewport={"width": width, "height": height})
    visit(page, f"{demo_app}/Board?unit=SALES&lang={lang}", "head_sales", "head")
    settle(page)
    first = page.locator(ATTENTION).first
    first.wait_for(timeout=30_000)
    assert red in first.inner_text()
    # The answer, whole, without scrolling: the line ends above the fold and is not cut.
    box = first.bounding_box()
    assert box["y"] >= 0 and box["y"] + box["height"] <= height
    assert first.evaluate("a => a.scrollWidth <= a.clientWidth + 1")
    shot(page, f"board-attention-{lang}-{width}")

    first.click()
    page.wait_for_url("**/Detail?*unit=SALES_S*", timeout=30_000)
    settle(page)
    assert title(page).startswith(
        "营业收入 · 华南大区" if lang == "zh" else "Revenue · South China"
    )
    shot(page, f"detail-{lang}-{width}")
    # A contributor's own detail is one click away.
    page.locator("[data-testid='stPageLink'] a", has_text=child).first.click()
    page.wait_for_url("**kpi=CONVERSION*", timeout=30_000)
    settle(page)
    assert title(page).startswith(child)

    page.go_back()
    page.wait_for_url("**kpi=REV*", timeout=30_000)
    titled(page, red.split(" ")[0])
    assert "unit=SALES_S" in page.url
    page.go_back()
    page.wait_for_url("**/Board?*", timeout=30_000)
    titled(page, board)
    page.close()


def test_a_top_alert_row_of_the_overview_opens_its_detail_and_back(browser, demo_app):
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    visit(page, f"{demo_app}/?lang=en", "head_sales", "head")
    settle(page)
    grid = page.locator("[class*='st-key-ov_top_alerts']")
    grid.scroll_into_view_if_needed()
    grid.locator("canvas").first.wait_for(timeout=30_000)
    settle(page)
    box = grid.bounding_box()
    shot(page, "overview-top-alerts")
    # The first row's selection box (left of the first data row, under the header).
    page.mouse.click(box["x"] + 12, box["y"] + 35 + 17)
    page.wait_for_url("**/Detail?*", timeout=30_000, wait_until="commit")
    settle(page)
    assert "unit=SALES_S" in page.url
    page.go_back()
    page.wait_for_function("() => !location.pathname.includes('Detail')", timeout=30_000)
    titled(page, "Overview")
    page.close()


def test_a_status_matrix_cell_opens_its_detail_and_back(browser, demo_app):
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    visit(page, f"{demo_app}/Board?unit=SALES&lang=en", "head_sales", "head")
    settle(page)
    matrix = page.locator("[class*='st-key-board_matrix']")
    matrix.scroll_into_view_if_needed()
    # Vega draws each cell as an SVG mark labelled with its tooltip's fields.
    cell = matrix.locator("svg [aria-label^='kpi: Revenue; unit: South China Region;']").first
    cell.wait_for(timeout=30_000)
    cell.click()
    page.wait_for_url("**/Detail?*", timeout=30_000, wait_until="commit")
    titled(page, "Revenue · South China Region")
    assert "unit=SALES_S" in page.url and "kpi=REV" in page.url
    page.go_back()
    page.wait_for_url("**/Board?*", timeout=30_000, wait_until="commit")
    titled(page, "Sales Department")
    page.close()
