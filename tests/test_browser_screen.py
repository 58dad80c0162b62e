"""The big screen in a real Chromium at 1920×1080 and 3840×2160: no scrolling, nothing outside the
viewport or clipped, no text under 24 px (48 px at 4K), contrast of every text at least 7:1, no
Streamlit chrome, slides rotating by themselves, no login form for a wrong token, no error
while an import commits from the command line during refreshes, and an open wall that stops
showing data at its next tick once its screen is revoked. Screenshots go to KPI_ARTIFACTS
(default: the test's tmp dir)."""

import os
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from kpi_core import access, i18n, kiosk, screen
from kpi_core.warehouse import Warehouse
from tests.browsing import settle
from tests.test_browser import ROOT, start_app

pytestmark = pytest.mark.browser

SIZES = [(1920, 1080), (3840, 2160)]
SLIDES = ("company", "departments", "risks", "matrix", "freshness")
CHROME = ("stHeader", "stToolbar", "stSidebar", "stDecoration", "stStatusWidget", "stMainMenu")

# Everything measured in one pass over the DOM, for a person to read when an assertion fails.
MEASURE = """() => {
  const parse = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c.length >= 3 && (c.length < 4 || c[3] > 0)) return c;
    }
    return [255, 255, 255];
  };
  const visible = (el) => {
    const s = getComputedStyle(el), r = el.getBoundingClientRect();
    return s.display !== 'none' && s.visibility !== 'hidden' && +s.opacity > 0
      && r.width > 0 && r.height > 0;
  };
  const W = innerWidth, H = innerHeight, se = document.scrollingElement;
  let minFont = 1e9, minContrast = 1e9, worst = '';
  const outside = [], clipped = [];
  for (const el of document.body.querySelectorAll('*')) {
    if (!visible(el)) continue;
    const r = el.getBoundingClientRect();
    if (r.left < -1 || r.top < -1 || r.right > W + 1 || r.bottom > H + 1)
      outside.push(`${el.tagName}.${el.className}`.slice(0, 80));
    if (el.scrollWidth > el.clientWidth + 1 || el.scrollHeight > el.clientHeight + 1) {
      const s = getComputedStyle(el);
      if (s.display !== 'inline') clipped.push(`${el.className}: ${el.textContent.slice(0, 30)}`);
    }
    const ownText = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!ownText) continue;
    const s = getComputedStyle(el);
    minFont = Math.min(minFont, parseFloat(s.fontSize));
    const a = lum(parse(s.color)), b = lum(background(el));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < minContrast) { minContrast = ratio; worst = el.textContent.trim().slice(0, 30); }
  }
  return {scrollH: se.scrollHeight, scrollW: se.scrollWidth, W, H, minFont, minContrast, worst,
          outside: outside.slice(0, 10), clipped: clipped.slice(0, 10)};
}"""


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    path = Path(os.environ.get("KPI_ARTIFACTS") or tmp_path_factory.mktemp("screen_artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


TOKENS: dict[str, str] = {}  # screen name → its token, as the Admin page showed it once


@pytest.fixture(scope="module")
def screen_app(tmp_path_factory, demo_file):
    tmp = tmp_path_factory.mktemp("browser_screen")
    shutil.copy(demo_file, tmp / "wh.duckdb")
    wh = Warehouse(tmp / "wh.duckdb", linger=0)
    for name in ("wall", "doomed"):
        made = kiosk.create(wh, access.SYSTEM, name=name, units=["GROUP"], now=datetime.now())
        TOKENS[name] = made.token
    wh.close()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KPI_SECRETS", str(tmp / "no-secrets.toml"))
        proc, url = start_app(tmp / "wh.duckdb")
    yield url, tmp
    proc.terminate()
    proc.wait(timeout=20)


def open_screen(browser, url, size, query, screen="wall"):
    page = browser.new_page(viewport={"width": size[0], "height": size[1]})
    page.goto(f"{url}/Big_Screen?token={TOKENS[screen]}&{query}")
    page.locator(".bs-slide-body").wait_for(timeout=30_000)
    settle(page)  # fonts and layout
    return page


def no_error(page):
    assert page.locator("[data-testid='stException']").count() == 0
    assert page.locator("[data-testid='stAlert']").count() == 0


@pytest.mark.parametrize(
    ("size", "lang"),
    [(SIZES[0], "zh"), (SIZES[1], "zh"), (SIZES[0], "en")],
    ids=["1080p", "4k", "1080p-en"],
)
def test_every_slide_fits_and_reads_from_metres_away(browser, screen_app, artifacts, size, lang):
    url, _ = screen_app
    scale = size[1] / 1080
    worst_font, worst_contrast = 1e9, 1e9
    for slide in SLIDES:
        page = open_screen(browser, url, size, f"lang={lang}&rotate=600&slides={slide}")
        page.screenshot(path=str(artifacts / f"big-screen-{slide}-{lang}-{size[0]}x{size[1]}.png"))
        m = page.evaluate(MEASURE)
        assert (m["scrollH"], m["scrollW"]) == (m["H"], m["W"]), (slide, m)
        assert m["outside"] == [], (slide, m["outside"])
        assert m["clipped"] == [], (slide, m["clipped"])
        assert m["minFont"] >= 24 * scale, (slide, m["minFont"])
        assert m["minContrast"] >= 7, (slide, m["minContrast"], m["worst"])
        for testid in CHROME:
            assert not page.locator(f"[data-testid='{testid}']").is_visible(), testid
        no_error(page)
        worst_font = min(worst_font, m["minFont"])
        worst_contrast = min(worst_contrast, m["minContrast"])
        page.close()
    print(f"{size}: smallest text {worst_font:.1f} px, lowest contrast {worst_contrast:.2f}:1")


def test_slides_rotate_by_themselves(browser, screen_app, artifacts):
    url, _ = screen_app
    page = open_screen(browser, url, SIZES[0], "lang=en&rotate=5&refresh=60")
    body = page.locator(".bs-slide-body")
    first = body.get_attribute("data-slide")
    page.wait_for_function(
        f"() => document.querySelector('.bs-slide-body')?.dataset.slide !== '{first}'",
        timeout=20_000,
    )
    second = body.get_attribute("data-slide")
    assert second != first
    page.screenshot(path=str(artifacts / f"big-screen-rotated-{second}-en.png"))
    no_error(page)
    page.close()


def test_a_wrong_token_shows_how_to_set_it_up(browser, screen_app, artifacts):
    url, _ = screen_app
    page = browser.new_page(viewport={"width": 1920, "height": 1080})
    page.goto(f"{url}/Big_Screen?token=not-the-token&lang=en")
    page.get_by_text("This screen is not set up").wait_for(timeout=30_000)
    page.screenshot(path=str(artifacts / "big-screen-not-set-up-en.png"))
    assert page.locator("input").count() == 0  # no login form on the wall
    assert not page.locator("[data-testid='stSidebar']").is_visible()
    no_error(page)
    page.close()


def test_an_import_committing_during_refreshes_shows_no_error(browser, screen_app, artifacts):
    url, tmp = screen_app
    page = open_screen(browser, url, SIZES[0], "lang=zh&rotate=5&refresh=10")
    (tmp / "actuals.csv").write_text("unit,kpi,period,value\nFIN,DSO,2026-10,71.5\n")
    cli = subprocess.Popen(
        [sys.executable, "-m", "kpi_core", "--warehouse", str(tmp / "wh.duckdb"), "--admin", "import",
         str(tmp / "actuals.csv")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    # Watch the wall through the import and two refreshes after it.
    deadline = time.monotonic() + 25
    while time.monotonic() < deadline:
        no_error(page)
        assert page.locator(".bs-slide-body").is_visible()
        page.wait_for_timeout(500)
    out, err = cli.communicate(timeout=60)
    assert cli.returncode == 0, err
    assert "loaded as batch" in out
    page.screenshot(path=str(artifacts / "big-screen-after-import-zh.png"))
    page.close()


def test_a_revoked_screen_stops_at_its_next_tick(browser, screen_app, artifacts):
    url, tmp = screen_app
    # rotate=5: the wall ticks (and checks its token) every 5 s.
    page = open_screen(browser, url, SIZES[0], "lang=en&rotate=5&refresh=10", screen="doomed")
    no_error(page)
    wh = Warehouse(tmp / "wh.duckdb", linger=0)  # the app lets go of the file between ticks
    doomed = next(s for s in kiosk.list_screens(wh, access.SYSTEM) if s.name == "doomed")
    assert doomed.last_seen_at is not None  # the open wall was seen
    kiosk.revoke(wh, access.SYSTEM, doomed.id, datetime.now())
    wh.close()
    # Within the next tick or two, bounded: the notice replaces the slides.
    page.get_by_text(i18n.t("bs_revoked", "en")).wait_for(timeout=30_000)
    assert page.locator(".bs-slide-body").count() == 0
    assert page.get_by_text(i18n.t("bs_revoked", "zh")).is_visible()
    page.screenshot(path=str(artifacts / "big-screen-revoked-en.png"))
    # It stays that way: no more ticks bring data back.
    page.wait_for_timeout(6_000)
    assert page.locator(".bs-slide-body").count() == 0
    no_error(page)
    page.close()
    # The other screen is untouched.
    page = open_screen(browser, url, SIZES[0], "lang=en&rotate=600&slides=company")
    no_error(page)
    page.close()


@pytest.fixture(scope="module")
def partial_app(tmp_path_factory, demo_file):
    """The wall on 8 December with seven values of November loaded: the header names the
    partial month and the freshness slide says partial and overdue."""
    from tests.test_completeness import load_seven

    tmp = tmp_path_factory.mktemp("browser_screen_partial")
    shutil.copy(demo_file, tmp / "wh.duckdb")
    wh = Warehouse(tmp / "wh.duckdb", linger=0)
    try:
        load_seven(wh)
        made = kiosk.create(wh, access.SYSTEM, name="partial", units=["GROUP"], now=datetime.now())
        TOKENS["partial"] = made.token
    finally:
        wh.close()
    proc, url = start_app(
        tmp / "wh.duckdb",
        env={"KPI_SECRETS": str(tmp / "no-secrets.toml"), "KPI_TODAY": "2026-12-08"},
    )
    yield url
    proc.terminate()
    proc.wait(timeout=20)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_a_partial_month_is_named_and_still_fits(browser, partial_app, artifacts, lang):
    for slide, said in (("company", "7/76"), ("freshness", "7/25")):
        page = open_screen(
            browser, partial_app, SIZES[0], f"lang={lang}&rotate=600&slides={slide}", "partial"
        )
        page.screenshot(path=str(artifacts / f"big-screen-partial-{slide}-{lang}.png"))
        assert said in page.locator("[data-testid='bs-root']").inner_text()
        m = page.evaluate(MEASURE)
        assert (m["scrollH"], m["scrollW"]) == (m["H"], m["W"]), (slide, m)
        assert m["outside"] == [] and m["clipped"] == [], (slide, m)
        assert m["minFont"] >= 24 and m["minContrast"] >= 7, (slide, m)
        no_error(page)
        page.close()


HEADS = """() => [...document.querySelectorAll('.bs-mblock')].map((b) => ({
  title: b.querySelector('.bs-mtitle').innerText,
  heads: [...b.querySelectorAll('.bs-mhead')].map((h) => ({
    text: h.innerText.replace(/\\n/g, ' '), font: parseFloat(getComputedStyle(h).fontSize),
    visible: h.getBoundingClientRect().width > 0 && h.getBoundingClientRect().height > 0})),
  rows: b.querySelectorAll('.bs-munit').length,
}))"""


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("size", SIZES, ids=["1080p", "4k"])
def test_the_matrix_names_its_columns_and_a_department_fits_one_slide(
    browser, screen_app, artifacts, size, lang, demo_file
):
    """Production has the most KPIs of any department (10): its matrix on one slide, every
    column headed by its KPI's name or an abbreviation explained below, read from 4 m."""
    from kpi_core.catalog import load_catalog
    from kpi_core.ui.slides import column_vmin, matrix_heads

    wh = Warehouse(demo_file, linger=0)
    try:
        cat = load_catalog(wh)
        (block,) = screen.screen_data(wh, cat, ["PROD"], lang).matrix
    finally:
        wh.close()
    expected = matrix_heads(block, column_vmin(len(block.columns)))
    url, _ = screen_app
    scale = size[1] / 1080
    page = open_screen(browser, url, size, f"lang={lang}&rotate=600&slides=matrix&units=PROD")
    page.screenshot(path=str(artifacts / f"big-screen-matrix-PROD-{lang}-{size[0]}.png"))
    (shown,) = page.evaluate(HEADS)
    assert shown["title"] == block.title and shown["rows"] == len(block.rows)
    assert [h["text"] for h in shown["heads"]] == expected
    assert all(h["visible"] and h["font"] >= 24 * scale for h in shown["heads"]), shown
    # One slide: no "(1/2)" in the title.
    assert "/" not in page.locator(".bs-title").inner_text()
    text = page.locator("[data-testid='bs-root']").inner_text()
    for head, column in zip(expected, block.columns, strict=True):
        if head != column.name:
            assert f"{head}{'：' if lang == 'zh' else ' = '}{column.name}" in text
    m = page.evaluate(MEASURE)
    assert (m["scrollH"], m["scrollW"]) == (m["H"], m["W"]), m
    assert m["outside"] == [] and m["clipped"] == [], m
    assert m["minFont"] >= 24 * scale and m["minContrast"] >= 7, m
    no_error(page)
    page.close()


@pytest.mark.parametrize("size", SIZES, ids=["1080p", "4k"])
def test_the_english_company_name_is_whole(browser, screen_app, artifacts, size):
    url, _ = screen_app
    page = open_screen(browser, url, size, "lang=en&rotate=600&slides=company")
    page.screenshot(path=str(artifacts / f"big-screen-company-en-{size[0]}.png"))
    assert page.locator(".bs-name").inner_text() == "Huachuang Precision Manufacturing Co., Ltd."
    m = page.evaluate(MEASURE)
    assert m["outside"] == [] and m["clipped"] == [], m
    assert m["minFont"] >= 24 * size[1] / 1080 and m["minContrast"] >= 7, m
    page.close()
