"""The Targets & weights page in a real Chromium on a copy of the demo: raise a target in the
grid, save it with a reason and an effective date and see the Board's light turn red; a cell that
is not a number is shown with its reason and nothing is saved; two people editing the same row —
the second is refused, reloads keeping their edits, and saves. Screenshots of every tab in both
languages go to $KPI_ARTIFACTS (default: a pytest temp dir)."""

import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from playwright.sync_api import expect

from kpi_core import i18n, planning, service
from kpi_core.access import Scope
from kpi_core.actuals import data_range
from kpi_core.board import board
from kpi_core.catalog import load_catalog
from kpi_core.library import Kpi
from kpi_core.periods import Period
from kpi_core.warehouse import open_warehouse
from tests.browsing import settle
from tests.test_browser import start_app, visit
from tests.test_browser_library import type_in
from tests.test_browser_upload import choose, no_traceback

SIGNED_IN = "admin"  # who the browser signs in as (tests.test_browser.visit)

pytestmark = pytest.mark.browser

VIEW = {"width": 1500, "height": 1000}
LEVELS = ("Baseline", "Target", "Challenge")  # the grid's level columns, in English


@pytest.fixture(scope="module")
def targets_app(tmp_path_factory, demo_file):
    tmp = tmp_path_factory.mktemp("browser_targets")
    shutil.copy(demo_file, tmp / "wh.duckdb")
    proc, url = start_app(tmp / "wh.duckdb")
    yield url, tmp / "wh.duckdb"
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    out = Path(os.environ.get("KPI_ARTIFACTS") or tmp_path_factory.mktemp("targets_shots"))
    out.mkdir(parents=True, exist_ok=True)
    return out


def snap(page, artifacts: Path, name: str) -> None:
    """A full-page screenshot. The app scrolls inside its own pane (stMain), which a full-page
    screenshot does not unroll: the window is made as tall as the pane's content for the shot."""
    view = page.viewport_size
    tall = page.evaluate("() => document.querySelector(\"[data-testid='stMain']\").scrollHeight")
    if tall > view["height"]:
        page.set_viewport_size({"width": view["width"], "height": min(tall, 6000)})
        settle(page)
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)
    if tall > view["height"]:
        page.set_viewport_size(view)


# --- What the demo holds, read through the core ------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One yearly row of the targets grid: its names as the page shows them and its levels."""

    unit: str  # names, in English
    kpi: str
    code: str  # UNIT/KPI
    definition: Kpi
    levels: tuple[float, float, float]  # baseline, target, challenge as stored
    status: str = ""  # the Board's light in the latest month (for a KPI of the SALES board)


def _open(path: Path | str):
    wh = open_warehouse(str(path), linger=0)  # a file or a PostgreSQL URL
    return wh, load_catalog(wh)


def sales_board_pick(path: Path | str) -> tuple[Row, int]:
    """A KPI of the SALES board that is green or amber in the latest month and whose yearly
    levels, raised a hundredfold, put that month's actual far below the baseline."""
    wh, cat = _open(path)
    try:
        _, latest = data_range(wh, Scope.all(), cat)
        sales = next(u for u in cat.units.values() if u.code == "SALES")
        b = board(wh, cat, Scope.all(), sales.id, Period("M", latest), as_of=latest)
        rows = yearly_rows(wh, cat, sales.id, latest.year)
        for line in sorted(b.lines, key=lambda ln: ln.node.status != "green"):
            n, kpi = line.node, cat.kpis[line.node.kpi_id]
            row = rows.get(f"SALES/{kpi.code}")
            if (
                n.status in ("green", "amber") and kpi.direction == "up" and not kpi.is_percent
                and row is not None and n.actual is not None and n.levels.baseline
                and n.levels.baseline * 100 > 2 * n.actual
            ):  # fmt: skip
                return replace(row, status=n.status), latest.year
        raise AssertionError("no green or amber up-KPI on the SALES board of the demo")
    finally:
        wh.close()


def yearly_rows(wh, cat, unit_id: int, year: int) -> dict[str, Row]:
    """The editable yearly rows of the targets grid under a unit, by UNIT/KPI code."""
    who = service.actor(wh, SIGNED_IN)
    grid = planning.target_grid(wh, cat, who, unit_id, year, "Y", "en")
    out = {}
    for r in grid[(grid["version"] > 0) & grid["editable"]].itertuples():
        stored = wh.one(
            "SELECT baseline, target, challenge FROM target WHERE kpi_id = ? AND unit_id = ? "
            "AND grain = 'Y' AND period_start = ? ORDER BY version DESC LIMIT 1",
            [r.kpi_id, r.unit_id, r.period_start],
        )
        out[r.code] = Row(r.unit, r.kpi, r.code, cat.kpis[r.kpi_id], tuple(stored))
    return out


def region_pick(path: Path) -> tuple[Row, int]:
    """A yearly row of a region under SALES (not on the SALES board, which the first test
    changes) with up levels in plain numbers."""
    wh, cat = _open(path)
    try:
        _, latest = data_range(wh, Scope.all(), cat)
        sales = next(u for u in cat.units.values() if u.code == "SALES")
        for code, row in reversed(yearly_rows(wh, cat, sales.id, latest.year).items()):
            kpi = row.definition
            if (
                not code.startswith("SALES/") and kpi.direction == "up" and not kpi.is_percent
                and None not in row.levels
            ):  # fmt: skip
                return row, latest.year
        raise AssertionError("no region row with plain up levels in the demo")
    finally:
        wh.close()


def latest_target(path: Path | str, code: str, year: int) -> tuple:
    unit, kpi = code.split("/")
    wh = open_warehouse(str(path), linger=0)  # a file or a PostgreSQL URL
    try:
        return wh.one(
            "SELECT t.version, t.baseline, t.target, t.challenge, t.valid_from, t.reason "
            "FROM target t JOIN org_unit u ON u.id = t.unit_id JOIN kpi k ON k.id = t.kpi_id "
            "WHERE u.code = ? AND k.code = ? AND t.grain = 'Y' AND year(t.period_start) = ? "
            "ORDER BY t.version DESC LIMIT 1",
            [unit, kpi, year],
        )
    finally:
        wh.close()


def target_rows(path: Path) -> int:
    wh = open_warehouse(str(path), linger=0)  # a file or a PostgreSQL URL
    try:
        return wh.one("SELECT count(*) FROM target")[0]
    finally:
        wh.close()


def num(v: float) -> str:
    """A level as a person types it (plain digits)."""
    return f"{v:.15g}"


# --- Driving the page --------------------------------------------------------------------------


def open_targets(page, url: str, lang: str = "en") -> None:
    visit(page, f"{url}/Targets?unit=SALES&lang={lang}")
    # As long as visit() waits: late in a full run on two busy cores a first render took > 30 s.
    page.locator("[data-testid='stDataFrame']").first.wait_for(timeout=60_000)
    settle(page)
    no_traceback(page)


def editor(page):
    """The targets grid (the first grid of the Targets tab)."""
    return page.locator("[data-testid='stDataFrame']").first


def cell_at(grid, row: Row, column: str) -> tuple[int, int]:
    """(row, column) of a cell of the grid, found in its accessible table (the grid draws on a
    canvas; the table mirrors what it draws). Waits for a grid that is being redrawn."""
    expect(grid.locator("th").filter(has_text=column).first).to_be_attached(timeout=20_000)
    expect(grid.locator("td").filter(has_text=row.kpi).first).to_be_attached(timeout=20_000)
    headers = grid.locator("th").all_inner_texts()
    col = [h.strip() for h in headers].index(column)
    found = grid.evaluate(
        """(el, [unit, kpi]) => {
            const rows = new Map();
            for (const td of el.querySelectorAll("td[id^='glide-cell-']")) {
                const [, c, r] = td.id.match(/glide-cell-(\\d+)-(\\d+)/);
                if (!rows.has(r)) rows.set(r, {});
                rows.get(r)[c] = td.innerText.trim();
            }
            for (const [r, cells] of rows) if (cells[0] === unit && cells[1] === kpi) return +r;
            return -1;
        }""",
        [row.unit, row.kpi],
    )
    assert found >= 0, f"{row.unit} · {row.kpi} is not in the grid"
    return found, col


def cell_text(grid, r: int, c: int) -> str:
    return grid.locator(f"#glide-cell-{c}-{r}").inner_text().strip()


def edit_cell(page, row: Row, column: str, text: str) -> None:
    """Type into a cell of the data_editor: select the first cell, move there with the arrow
    keys, open the cell's editor with Enter, replace its text, commit with Enter. The grid's
    accessible table marks the selected cell, so each step is waited for; a step lost while the
    grid redraws is tried once more."""
    grid = editor(page)
    r, c = cell_at(grid, row, column)
    cell = grid.locator(f"#glide-cell-{c}-{r}")
    overlay = page.locator("textarea").first  # the cell's editor, drawn over the grid
    for attempt in (1, 2):
        try:
            canvas = grid.locator("canvas").first.bounding_box()
            page.mouse.click(canvas["x"] + 8, canvas["y"] + 35 + 12)  # first body cell
            expect(grid.locator("#glide-cell-0-0")).to_have_attribute("aria-selected", "true")
            for _ in range(c):
                page.keyboard.press("ArrowRight")
            for _ in range(r):
                page.keyboard.press("ArrowDown")
            expect(cell).to_have_attribute("aria-selected", "true")
            page.keyboard.press("Enter")
            expect(overlay).to_be_focused()
            break
        except AssertionError:
            if attempt == 2:
                raise
            page.keyboard.press("Escape")
            settle(page)
    overlay.fill(text)
    overlay.press("Enter")
    expect(cell).to_have_text(text, timeout=10_000)
    settle(page)


def set_date(page, label: str, day: str) -> None:
    """Type YYYY-MM-DD into a date field (its year, month and day are separate spin buttons)."""
    field = page.get_by_role("group", name=label, exact=True)
    field.get_by_role("spinbutton").first.click()
    page.keyboard.type(day.replace("-", ""))
    page.keyboard.press("Tab")
    settle(page)
    assert field.get_by_role("spinbutton").all_inner_texts() == day.split("-")


def changes(page):
    """The "Changes to save" table's accessible text."""
    table = page.locator("[data-testid='stDataFrame']").filter(has_text="Where").first
    return table.locator("table").first


def save_button(page):
    return page.get_by_role("button", name="Save", exact=True).first


def board_badge(page, url: str, kpi: str):
    """The status line of a KPI card on the SALES board in the latest month."""
    visit(page, f"{url}/Board?unit=SALES&lang=en")
    page.get_by_text("KPI cards").first.wait_for(timeout=30_000)
    settle(page)
    no_traceback(page)
    name = page.locator("strong").filter(has_text=kpi)
    return page.locator("[data-testid='stMarkdownContainer']").filter(has=name).first


# --- The tests ---------------------------------------------------------------------------------


def test_raise_a_target_and_the_board_turns_red(browser, targets_app, artifacts, demo_file):
    url, wh_path = targets_app
    row, year = sales_board_pick(demo_file)
    page = browser.new_page(viewport=VIEW)
    card = board_badge(page, url, row.kpi)
    expect(card).to_contain_text(i18n.status_label(row.status, "en"))
    snap(page, artifacts, "board-before-en")

    open_targets(page, url)
    new = [v * 100 for v in row.levels]  # an up KPI: all three levels, so they stay in order
    for column, value in zip(LEVELS, new, strict=True):
        edit_cell(page, row, column, num(value))
    table = changes(page)
    for value in new:
        expect(table).to_contain_text(planning.level_text(value, row.definition, "en"))
    assert "✗" not in table.inner_text()
    set_date(page, "Effective date", f"{year}-01-01")
    type_in(page, "Reason", "Stretch plan for the browser test")
    expect(save_button(page)).to_be_enabled(timeout=10_000)
    save_button(page).click()
    page.get_by_text(f"Saved 1 row(s) (3 cell(s)), valid from {year}-01.").wait_for(timeout=30_000)
    settle(page)
    no_traceback(page)
    snap(page, artifacts, "targets-saved-en")
    version, *levels, valid_from, reason = latest_target(wh_path, row.code, year)
    assert (version, levels, reason) == (2, new, "Stretch plan for the browser test")
    assert f"{valid_from:%Y-%m-%d}" == f"{year}-01-01"

    card = board_badge(page, url, row.kpi)
    expect(card).to_contain_text(i18n.status_label("red", "en"), timeout=20_000)
    snap(page, artifacts, "board-after-en")
    page.close()


def test_a_cell_that_is_not_a_number_is_shown_and_nothing_saved(
    browser,
    targets_app,
    artifacts,
    demo_file,
):
    url, wh_path = targets_app
    row, _ = region_pick(demo_file)
    before = target_rows(wh_path)
    page = browser.new_page(viewport=VIEW)
    open_targets(page, url)
    edit_cell(page, row, "Target", "abc")
    table = changes(page)
    expect(table).to_contain_text("✗", timeout=10_000)
    expect(table).to_contain_text("'abc' is not a number")
    page.get_by_text("1 change(s) have a problem: fix them first").wait_for()
    type_in(page, "Reason", "This must not be saved")
    expect(save_button(page)).to_be_disabled()
    snap(page, artifacts, "targets-bad-cell-en")
    no_traceback(page)
    assert target_rows(wh_path) == before
    page.close()


def test_two_sessions_edit_the_same_row(browser, targets_app, artifacts, demo_file):
    url, wh_path = targets_app
    row, year = region_pick(demo_file)
    base, target, challenge = row.levels
    a_target, a_challenge = target + (challenge - target) / 2, challenge + (challenge - base)
    b_target = target + (challenge - target) / 4
    kpi = row.definition
    ctx_a, ctx_b = browser.new_context(viewport=VIEW), browser.new_context(viewport=VIEW)
    try:
        a, b = ctx_a.new_page(), ctx_b.new_page()
        open_targets(a, url)
        open_targets(b, url)
        edit_cell(a, row, "Target", num(a_target))
        edit_cell(a, row, "Challenge", num(a_challenge))
        edit_cell(b, row, "Target", num(b_target))
        for page in (a, b):
            set_date(page, "Effective date", f"{year}-01-01")
        type_in(a, "Reason", "First person's change")
        type_in(b, "Reason", "Second person's change")

        save_button(a).click()
        a.get_by_text(f"Saved 1 row(s) (2 cell(s)), valid from {year}-01.").wait_for(timeout=30_000)
        settle(a)

        save_button(b).click()
        b.get_by_text("was changed by").wait_for(timeout=30_000)
        settle(b)
        no_traceback(b)
        alert = b.locator("[data-testid='stAlert']").filter(has_text="Not saved").first
        expect(alert).to_contain_text(f"{row.code} {year} was changed by {SIGNED_IN}")
        expect(alert).to_contain_text("reload to see it")
        snap(b, artifacts, "targets-conflict-en")
        assert latest_target(wh_path, row.code, year)[2] == a_target

        b.get_by_role("button", name="Reload, keeping my edits").click()
        expect(alert).to_have_count(0, timeout=20_000)  # the conflict is gone: reloaded
        settle(b)
        grid = editor(b)
        r, c = cell_at(grid, row, "Challenge")
        expect(grid.locator(f"#glide-cell-{c}-{r}")).to_have_text(
            planning.level_text(a_challenge, kpi, "en"), timeout=20_000
        )  # the first person's value where the second typed nothing
        assert cell_text(grid, *cell_at(grid, row, "Target")) == num(b_target)  # kept
        expect(changes(b)).to_contain_text(planning.level_text(b_target, kpi, "en"))
        snap(b, artifacts, "targets-reloaded-en")

        expect(save_button(b)).to_be_enabled(timeout=10_000)
        save_button(b).click()
        b.get_by_text("Saved 1 row(s) (1 cell(s))").wait_for(timeout=30_000)
        settle(b)
        no_traceback(b)
        version, *levels, _, reason = latest_target(wh_path, row.code, year)
        assert (version, levels, reason) == (
            3, [base, b_target, a_challenge], "Second person's change"
        )  # fmt: skip
    finally:
        ctx_a.close()
        ctx_b.close()


TABS = {
    "en": ("Targets", "Weights", "History & revert", "Change log"),
    "zh": ("目标值", "权重", "历史与撤回", "变更日志"),
}
HISTORY_OF = {"en": "History of", "zh": "查看历史"}


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_screenshots_of_every_tab(browser, targets_app, artifacts, demo_file, lang):
    """Every tab, after the edits above (so history and the change log have something)."""
    url, _ = targets_app
    row, _ = sales_board_pick(demo_file)
    wh, cat = _open(demo_file)
    wh.close()
    unit = next(u for u in cat.units.values() if u.code == row.code.split("/")[0])
    page = browser.new_page(viewport=VIEW)
    open_targets(page, url, lang)
    for n, tab in enumerate(TABS[lang], start=1):
        page.get_by_role("tab", name=tab, exact=True).click()
        settle(page)
        if n == 3:  # the KPI changed above: its versions and the revert form
            choose(page, HISTORY_OF[lang], f"{unit.name(lang)} · {row.definition.name(lang)}")
            settle(page)
        no_traceback(page)
        snap(page, artifacts, f"targets-tab{n}-{lang}")
    page.close()
