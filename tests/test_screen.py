"""The big screen's core: slide data for the demo company and a scoped screen, and the last good
data kept (marked stale) while the warehouse is busy. Kiosk tokens: tests/test_kiosk.py and
tests/test_kiosk_page.py."""

from datetime import datetime
from html import escape

import pytest
from streamlit.testing.v1 import AppTest

from kpi_core import i18n, screen
from kpi_core.catalog import load_catalog
from kpi_core.errors import WarehouseBusyError
from kpi_core.ui.slides import (
    COL_GAP_VMIN,
    HEAD_LINES,
    SLIDE_VMIN,
    Params,
    clip,
    column_vmin,
    company_slide,
    head_lines,
    matrix_heads,
    matrix_pages,
    matrix_slide,
    pages,
    render,
    risks_slide,
)
from tests import apptest
from tests.apptest import ROOT, ok


def test_slide_data_for_the_demo_company(demo_wh):
    cat = load_catalog(demo_wh)
    data = screen.screen_data(demo_wh, cat, ["GROUP"], "zh", title="wall")
    company = data.companies[0]
    assert company.code == "GROUP" and company.score is not None
    assert len(company.trend) == screen.TREND_MONTHS and company.trend[-1][1] == company.score
    assert sum(company.counts.values()) > 0
    scores = [d.score for d in data.departments]
    assert scores == sorted(scores, reverse=True) and len(data.departments) == 7
    assert all(r.status == "red" or r.at_risk for r in data.risks)
    assert all(r.owner for r in data.risks)
    assert {r.unit for b in data.matrix for r in b.rows} >= {"销售部", "生产部"}
    # The company's own values (net profit from the ledger) and each department: all up to date.
    assert [f.unit for f in data.freshness][:2] == ["本级：华创精密制造有限公司", "销售部"]
    assert len(data.freshness) == 8 and data.as_of.endswith("月")
    assert {f.state for f in data.freshness} == {"up_to_date"} and data.newer == ""
    # Money in 万/亿 in Chinese, millions in English.
    assert any("万元" in r.actual for r in data.risks)
    en = screen.screen_data(demo_wh, cat, ["GROUP"], "en")
    assert not any("万" in r.actual for r in en.risks)
    assert data.slides() == list(screen.SLIDES)


def test_a_scoped_screen_sees_only_its_units(demo_wh):
    cat = load_catalog(demo_wh)
    data = screen.screen_data(demo_wh, cat, ["SALES"], "en")
    assert [c.code for c in data.companies] == ["SALES"]
    # The regions have no scorecards of their own: no ranking slide, the rest is shown.
    assert data.departments == () and "departments" not in data.slides()
    sales_names = {cat.units[u].name("en") for u in cat.descendants(cat.unit_by_code["SALES"].id)}
    assert {r.unit for r in data.risks} <= sales_names
    assert {r.unit for b in data.matrix for r in b.rows} <= sales_names
    # A department's screen: its matrix is one block, regions included.
    assert [b.title for b in data.matrix] == ["Sales Department"]


def test_open_actions_show_on_the_risk_slide(demo_wh):
    from kpi_core import review, service

    cat = load_catalog(demo_wh)
    first = screen.screen_data(demo_wh, cat, ["GROUP"], "en").risks[0]
    node = next(
        (k.id, u.id)
        for k in cat.kpis.values()
        for u in cat.units.values()
        if k.name("en") == first.kpi and u.name("en") == first.unit
    )
    who = service.actor(demo_wh, "admin")
    review.add_comment(
        demo_wh, who, node[0], node[1], datetime(2026, 10, 1).date(), "Why down?",
        action="Call the three biggest customers", owner="Wang Lei", due=datetime(2026, 12, 1).date(),
    )  # fmt: skip
    risk = screen.screen_data(demo_wh, cat, ["GROUP"], "en").risks[0]
    assert [a.text for a in risk.actions] == ["Call the three biggest customers"]
    assert risk.actions[0].owner == "王磊 Wang Lei"  # the user head_sales, by display name


def test_asked_units_never_widen_the_token(demo_wh):
    cat = load_catalog(demo_wh)
    assert screen.kiosk_units(cat, ["SALES"], ["SALES_E"]) == ["SALES_E"]
    assert screen.kiosk_units(cat, ["SALES"], ["GROUP", "PROD"]) == ["SALES"]
    assert screen.kiosk_units(cat, ["GROUP"], ["PROD", "NOPE"]) == ["PROD"]
    with pytest.raises(screen.KioskError):
        screen.kiosk_units(cat, ["NOPE"])


def test_last_good_data_stays_while_the_warehouse_is_busy(demo_wh):
    cat = load_catalog(demo_wh)
    cache = screen.LastGood(maxsize=2)
    busy = False

    def compute():
        if busy:
            raise WarehouseBusyError("The warehouse is in use by another process")
        return screen.screen_data(demo_wh, cat, ["GROUP"], "zh")

    good = cache.get("k", compute, ttl=0)
    assert good.stale_since is None and good.data is not None
    busy = True
    stale = cache.get("k", compute, ttl=0)
    assert stale.data is good.data and stale.fetched_at == good.fetched_at
    assert stale.stale_since is not None and "in use" in stale.error
    again = cache.get("k", compute, ttl=0)
    assert again.stale_since == stale.stale_since  # stale since the first failure
    params = Params("t", 30, 60, (), "zh", ())
    html = render(again, params, datetime(2026, 11, 3, 9, 5), 0)
    assert "数据暂未刷新" in html and "Traceback" not in html
    busy = False
    fresh = cache.get("k", compute, ttl=0)
    assert fresh.stale_since is None and fresh.data is not good.data
    cache.get("a", compute, ttl=60)
    cache.get("b", compute, ttl=60)
    assert len(cache) == 2  # bounded


def test_first_refresh_failing_shows_waiting_not_an_error():
    def compute():
        raise WarehouseBusyError("busy")

    snap = screen.LastGood().get("k", compute, ttl=60)
    assert snap.data is None and snap.stale_since is not None
    html = render(snap, Params("t", 30, 60, (), "en", ()), datetime(2026, 11, 3, 9, 5), 0)
    assert "Waiting for data" in html


def test_rotation_follows_the_clock(demo_wh):
    cat = load_catalog(demo_wh)
    data = screen.screen_data(demo_wh, cat, ["GROUP"], "en")
    shown = pages(data)
    assert [s for s, _, _ in shown][:2] == ["company", "departments"]
    snap = screen.Snapshot(data, datetime.now(), None)
    params = Params("t", 5, 60, (), "en", ())
    now = datetime(2026, 11, 3, 9, 5)
    first, second = render(snap, params, now, 0), render(snap, params, now, 5)
    assert 'data-slide="company-0"' in first and 'data-slide="departments-0"' in second
    only = Params("t", 5, 60, (), "en", ("freshness",))
    assert 'data-slide="freshness-0"' in render(snap, only, now, 5)


def test_clip_counts_wide_characters():
    assert clip("研发里程碑按期达成率", 10) == "研发里程…"
    assert clip("Revenue", 10) == "Revenue"


def test_the_page_without_a_token(own_file, monkeypatch, tmp_path):
    """From the sidebar, a signed-in user previews the wall over their own scope; a browser
    with neither a session user nor a token (a wall not set up yet) is told how to set one."""
    monkeypatch.setenv("KPI_WAREHOUSE", str(own_file))
    monkeypatch.setenv("KPI_SECRETS", str(tmp_path / "no-secrets.toml"))

    def html(user: str | None) -> str:
        if user:
            apptest.sign_in(monkeypatch, own_file, user)
        else:
            apptest.browser_cookie(monkeypatch, None)
        at = AppTest.from_file(str(ROOT / "pages/9_Big_Screen.py"), default_timeout=60)
        at.query_params["lang"] = "en"
        at.run()
        ok(at)
        return "".join(h.proto.body for h in at.get("html"))

    preview = html("head_sales")
    assert "bs-slide" in preview and "Sales" in preview
    assert i18n.t("bs_not_set_up", "en") not in preview
    assert i18n.t("bs_not_set_up", "en") in html(None)
    # A Streamlit session that only remembers a user (its id replayed from another browser,
    # which has no session cookie) previews nothing.
    apptest.browser_cookie(monkeypatch, None)
    at = AppTest.from_file(str(ROOT / "pages/9_Big_Screen.py"), default_timeout=60)
    at.query_params["lang"] = "en"
    at.session_state["user_name"] = "head_sales"
    at.run()
    ok(at)
    replayed = "".join(h.proto.body for h in at.get("html"))
    assert i18n.t("bs_not_set_up", "en") in replayed and "Sales" not in replayed


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_each_departments_matrix_is_one_labelled_block_on_one_slide(demo_wh, lang):
    cat = load_catalog(demo_wh)
    data = screen.screen_data(demo_wh, cat, ["GROUP"], lang)
    company = cat.unit_by_code["GROUP"].name(lang)
    departments = [d.name for d in data.departments]
    assert data.matrix[0].title == company
    assert sorted(b.title for b in data.matrix[1:]) == sorted(departments)
    sales = next(b for b in data.matrix if b.title == cat.unit_by_code["SALES"].name(lang))
    regions = {cat.units[u].name(lang) for u in cat.descendants(cat.unit_by_code["SALES"].id)}
    assert {r.unit for r in sales.rows} == regions  # the department and its three regions
    assert all(len(r.cells) == len(sales.columns) for r in sales.rows)
    assert cat.kpi("REV").name(lang) in [c.name for c in sales.columns]
    # Every block whole on one slide; the slides are the matrix's pages.
    shown = matrix_pages(data.matrix)
    titles = [b.title for page in shown for b in page]
    assert sorted(titles) == sorted(b.title for b in data.matrix)
    assert len(shown) == sum(1 for s, _, _ in pages(data) if s == "matrix") < len(data.matrix)
    # Every column is labelled with a head that fits its width in at most three lines, and
    # each abbreviation is explained on its slide.
    for i, page in enumerate(shown):
        html = matrix_slide(data, i, len(shown))
        for block in page:
            width = column_vmin(len(block.columns))
            assert len(block.columns) * (width + COL_GAP_VMIN) < SLIDE_VMIN
            heads = matrix_heads(block, width)
            assert len(set(heads)) == len(heads) == len(block.columns)
            for head, column in zip(heads, block.columns, strict=True):
                assert head_lines(head, width) <= HEAD_LINES, head
                assert f">{escape(head)}</span>" in html
                if head != column.name:
                    eq = "：" if lang == "zh" else " = "
                    assert f"<b>{escape(head)}</b>{eq}{escape(column.name)}" in html


def test_wide_english_names_are_abbreviated_and_short_ones_kept(demo_wh):
    cat = load_catalog(demo_wh)
    data = screen.screen_data(demo_wh, cat, ["PROD"], "en")
    (block,) = data.matrix
    heads = dict(
        zip([c.code for c in block.columns], matrix_heads(block, column_vmin(10)), strict=True)
    )
    assert len(block.columns) == 10
    assert heads["OEE"] == "OEE" and heads["OUTPUT"] == "Output"
    assert heads["UNIT_COST"] == "UMC"  # Unit manufacturing cost: its code is too wide
    assert head_lines("Overall equipment effectiveness", column_vmin(10)) > HEAD_LINES


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_forecast_rows_say_forecast_and_the_company_name_is_whole(demo_wh, lang):
    cat = load_catalog(demo_wh)
    data = screen.screen_data(demo_wh, cat, ["GROUP"], lang)
    forecast = [r for r in data.risks if r.at_risk and r.status != "red"]
    assert forecast, "the demo has KPIs forecast to miss the year's target"
    word = "预测" if lang == "zh" else "Forecast"
    html = risks_slide(data, 0, 1)
    assert html.count(f"⚠ {word}") >= min(len(forecast), 7)
    assert all(r.actual.startswith(word) for r in forecast)
    assert f"⚠ {word}" in company_slide(data, 0, 1)
    name = cat.unit_by_code["GROUP"].name(lang)
    assert f">{escape(name)}<" in company_slide(data, 0, 1)


@pytest.mark.parametrize(("lang", "word", "old"), [("zh", "预测未达标", "预警"),
                                                   ("en", "forecast miss", "at-risk")])  # fmt: skip
def test_the_risks_slides_title_says_forecast_like_its_rows(demo_wh, lang, word, old):
    cat = load_catalog(demo_wh)
    data = screen.screen_data(demo_wh, cat, ["GROUP"], lang)
    snap = screen.Snapshot(data, datetime(2026, 11, 3, 9, 0), None)
    params = Params("t", 5, 60, (), lang, ())
    shown = [render(snap, params, datetime(2026, 11, 3, 9, 5), 5 * k) for k in range(12)]
    html = next(h for h in shown if 'data-slide="risks-0"' in h)
    title = html.split('<div class="bs-title">')[1].split("</div>")[0]
    assert word in title.lower() and old not in title.lower()
    # The key the rows replaced is gone, not left for a later page to pick up.
    assert not i18n.known("bs_at_risk")
