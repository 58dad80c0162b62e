"""Complete, partial and published months on every surface, through Streamlit's AppTest on a
copy of the demo: the Overview, the Board, the wall and the Upload page's publishing."""

from __future__ import annotations

from datetime import datetime

import pytest
from streamlit.testing.v1 import AppTest

from kpi_core import access, completeness, kiosk, screen, service
from kpi_core.catalog import load_catalog
from kpi_core.warehouse import Warehouse
from tests.apptest import ROOT, ok, open_page
from tests.test_completeness import NOV, load_seven

AFTER_GRACE = "2026-12-08"

WORDS = {
    "en": {
        "oct": "2026-10",
        "nov": "2026-11",
        "partial": "partial · 7 of 76 values",
        "sales_partial": "partial · 7 of 25 values",
        "south": "South China Region",
        "card": "partial: nothing yet from South China Region",
        "fresh_sales": "◐ Partial · 2026-11: 7 of 25 values",
        "fresh_prod": "■ Overdue · 2026-11 not loaded (8 d)",
        "overview": "Overview",
        "sales": "Sales Department",
        "revenue": "Revenue",
        "wall_sales": "◐ Partial 7/25",
        "wall_newer": "2026-11 partial 7/76",
    },
    "zh": {
        "oct": "2026年10月",
        "nov": "2026年11月",
        "partial": "未完整 · 已到 7/76 项",
        "sales_partial": "未完整 · 已到 7/25 项",
        "south": "华南大区",
        "card": "未完整：缺 华南大区",
        "fresh_sales": "◐ 未完整 · 2026年11月 已到 7/25 项",
        "fresh_prod": "■ 逾期 · 2026年11月未导入（月末后 8 天）",
        "overview": "总览",
        "sales": "销售部",
        "revenue": "营业收入",
        "wall_sales": "◐ 未完整 7/25",
        "wall_newer": "2026年11月 未完整 7/76",
    },
}


@pytest.fixture
def seven(own_file, monkeypatch):
    """The demo copy with seven values of November, seen on 8 December (past the grace days)."""
    wh = Warehouse(own_file, linger=0)
    try:
        load_seven(wh)
    finally:
        wh.close()
    monkeypatch.setenv("KPI_TODAY", AFTER_GRACE)
    return own_file


def texts(at) -> str:
    """What the page says, as read (Markdown's escapes of names taken out)."""
    parts = [t.value for t in at.title] + [m.value for m in at.markdown]
    parts += [w.value for w in at.warning] + [i.value for i in at.info]
    return "\n".join(parts).replace("\\", "")


def frame_with(at, column: str):
    return next(d.value for d in at.dataframe if column in d.value.columns)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_overview_stays_on_the_complete_month_and_marks_the_partial_one(seven, monkeypatch, lang):
    w = WORDS[lang]
    at = open_page("app.py", seven, monkeypatch, lang)
    assert at.title[0].value == f"{w['overview']} · {w['oct']}"
    picker = at.selectbox(key="period_pick_M")
    assert picker.value.label() == "2026-10"
    labels = picker.options
    assert f"{w['nov']} · {w['partial']}" in labels and w["oct"] in labels
    assert any(w["nov"] in i.value and w["partial"] in i.value for i in at.info)
    # Freshness: sales partial, the others overdue, the company's own values too.
    status = next(
        c for c in frame_with(at, "最新数据月份" if lang == "zh" else "Latest month loaded")
    )
    fresh = frame_with(at, status)
    states = dict(zip(fresh.iloc[:, 0], fresh.iloc[:, 2], strict=True))
    assert states[w["sales"]] == w["fresh_sales"]
    assert sum(v == w["fresh_prod"] for v in states.values()) == 7
    # The partial month picked: marked, with what its roll-up lacks.
    picker.select_index(labels.index(f"{w['nov']} · {w['partial']}")).run()
    ok(at)
    assert at.title[0].value == f"{w['overview']} · {w['nov']}"
    (warning,) = [x.value for x in at.warning if w["partial"] in x.value]
    assert f"{w['sales']} 7/25" in warning
    # Once the analyst has published November, it is the default.
    wh = Warehouse(seven, linger=0)
    try:
        cat = load_catalog(wh)
        completeness.publish(wh, cat, service.actor(wh, "analyst"), cat.unit("GROUP").id, NOV)
    finally:
        wh.close()
    fresh = open_page("app.py", seven, monkeypatch, lang)
    assert fresh.title[0].value == f"{w['overview']} · {w['nov']}"
    assert not [x for x in fresh.warning if w["partial"] in x.value]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_board_names_the_missing_region_on_the_revenue_card(seven, monkeypatch, lang):
    w = WORDS[lang]
    at = open_page("pages/1_Board.py", seven, monkeypatch, lang, query={"unit": "SALES"})
    assert at.title[0].value == f"{w['sales']} · {w['oct']}"
    assert w["card"] not in texts(at)
    picker = at.selectbox(key="period_pick_M")
    label = f"{w['nov']} · {w['sales_partial']}"
    assert label in picker.options
    picker.select_index(picker.options.index(label)).run()
    ok(at)
    shown = texts(at)
    assert at.title[0].value == f"{w['sales']} · {w['nov']}"
    # Revenue (East and North only) is marked on its card, South China named.
    cards = [m.value.replace("\\", "") for m in at.markdown]
    head = next(i for i, c in enumerate(cards) if c.startswith(f"**{w['revenue']}**"))
    mark = next(c for c in cards[head:] if "◐" in c)
    assert w["card"] in mark and cards.index(mark) < next(
        i for i, c in enumerate(cards) if i > head and c.startswith("**")
    )
    (warning,) = [x for x in shown.split("\n") if w["sales_partial"] in x and "0/8" in x]
    assert f"{w['south']} 0/8" in warning


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_wall_shows_the_complete_month_and_names_the_partial_one(
    seven, monkeypatch, tmp_path, lang
):
    w = WORDS[lang]
    wh = Warehouse(seven, linger=0)
    try:
        token = kiosk.create(wh, access.SYSTEM, name="wall", units=["GROUP"], now=datetime.now())
    finally:
        wh.close()
    monkeypatch.setenv("KPI_SECRETS", str(tmp_path / "no-secrets.toml"))
    monkeypatch.setenv("KPI_WAREHOUSE", str(seven))
    screen.LAST_GOOD.clear()

    def wall(slide: str) -> str:
        at = AppTest.from_file(str(ROOT / "pages/9_Big_Screen.py"), default_timeout=60)
        for k, v in {"token": token.token, "lang": lang, "slides": slide}.items():
            at.query_params[k] = v
        at.run()
        ok(at)
        return "".join(h.proto.body for h in at.get("html"))

    company = wall("company")
    assert w["oct"] in company and w["wall_newer"] in company
    assert ("较上月" if lang == "zh" else "vs last month") in company
    fresh = wall("freshness")
    assert (
        w["wall_sales"] in fresh and ("■ 逾期 8 天" if lang == "zh" else "■ Overdue 8 d") in fresh
    )


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_an_analyst_publishes_a_month_on_the_upload_page(seven, monkeypatch, lang):
    w = WORDS[lang]
    at = open_page("pages/2_Upload.py", seven, monkeypatch, lang, user="analyst")
    assert "up_lock_button" not in [b.key for b in at.button]  # closing months is for admins
    unit = at.selectbox(key="up_publish_unit")
    assert unit.value == load_catalog_ids(seven)["GROUP"]
    at.selectbox(key="up_publish_month").set_value(NOV).run()
    state = texts(at)
    assert w["partial"] in state and f"{w['sales']} 7/25" in state
    at.button(key="up_publish_button").click().run()
    ok(at)
    said = [s.value for s in at.success]
    assert said == [
        "华创精密制造有限公司 2026年11月已发布。"
        if lang == "zh"
        else "2026-11 of Huachuang Precision Manufacturing Co., Ltd. is published."
    ]
    wh = Warehouse(seven, linger=0)
    try:
        cat = load_catalog(wh)
        status = completeness.month_status(wh, cat, cat.unit("GROUP").id, NOV)
        assert status.state == completeness.PUBLISHED
        assert wh.rows("SELECT changed_by, key FROM audit WHERE entity = 'month_publish'") == [
            ("analyst", "GROUP/2026-11")
        ]
    finally:
        wh.close()


def load_catalog_ids(path) -> dict[str, int]:
    wh = Warehouse(path, linger=0)
    try:
        return {u.code: u.id for u in load_catalog(wh).units.values()}
    finally:
        wh.close()
