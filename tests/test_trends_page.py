"""The Trends page through AppTest on the demo company: both languages, adding a comment through
the form, the downloads, and a scoped viewer."""

from datetime import date

import pytest
from streamlit.testing.v1 import AppTest

from kpi_core import review
from kpi_core.access import SYSTEM
from kpi_core.catalog import load_catalog
from kpi_core.warehouse import Warehouse
from tests.apptest import ok, open_page

PAGE = "pages/7_Trends.py"


def open_as(warehouse, monkeypatch, *, lang="en", user="admin", query=None) -> AppTest:
    return open_page(PAGE, warehouse, monkeypatch, lang, user, query=query)


def downloads(at) -> list[str]:
    return [b.proto.label for b in at.get("download_button")]


@pytest.mark.parametrize(
    ("lang", "title", "subheads", "buttons"),
    [
        (
            "en",
            "Revenue · Sales Department",
            ["Monthly actual against", "Year to date against", "Across units", "Comments"],
            ["Chart (SVG)", "Chart (PNG)", "Data (Excel)"],
        ),
        (
            "zh",
            "营业收入 · 销售部",
            ["月度实际与", "年初至今", "组织对比", "点评与行动"],
            ["图表 SVG", "图表 PNG", "数据 Excel"],
        ),
    ],
)
def test_page_in_both_languages(lang, title, subheads, buttons, own_file, monkeypatch):
    at = open_as(own_file, monkeypatch, lang=lang, query={"unit": "SALES", "kpi": "REV"})
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value == title
    shown = [s.value for s in at.subheader]
    assert len(shown) == len(subheads)
    assert all(s.startswith(p) for s, p in zip(shown, subheads, strict=True)), shown
    # Three charts (the comparison across Sales' regions), each with image and data downloads.
    assert downloads(at) == buttons * 3
    assert len(at.get("vega_lite_chart")) == 3
    assert at.segmented_control(key="tr_compare_with_children").value == "children"
    # The range defaults to the last 24 months of data (the demo runs to 2026-10).
    start, end = at.select_slider(key="tr_range").value
    assert (start, end) == (date(2024, 11, 1), date(2026, 10, 1))
    assert at.query_params["from"] == "2024-11" and at.query_params["to"] == "2026-10"


def test_pickers_change_the_kpi_and_the_range(own_file, monkeypatch):
    at = open_page(PAGE, own_file, monkeypatch)
    unit_id = at.session_state["unit"]
    kpi = at.selectbox(key=f"tr_kpi_{unit_id}")
    sales_rev = next(o for o in kpi.options if o.startswith("Revenue (Sales"))
    kpi.select(sales_rev).run()
    ok(at)
    assert at.title[0].value == "Revenue · Sales Department"
    assert at.query_params["kpi"] == "SALES/REV"
    at.select_slider(key="tr_range").set_range(date(2025, 1, 1), date(2025, 6, 1)).run()
    ok(at)
    assert at.caption[0].value.startswith("2025-01 – 2025-06")


def test_adding_a_comment_through_the_form(own_file, monkeypatch):
    at = open_page(PAGE, own_file, monkeypatch)
    at.text_area(key="tr_rv_text").input("<b>Orders slipped</b> to November")
    at.text_input(key="tr_rv_action").input("Chase the three late orders")
    owner = at.selectbox(key="tr_rv_owner")
    assert owner.value == "admin"  # the writer by default, shown by display name
    owner.set_value("analyst")
    at.date_input(key="tr_rv_due").set_value(date(2026, 11, 30))
    at.button(key="tr_rv_submit").click().run()
    ok(at)
    assert not at.error, [e.value for e in at.error]
    assert [s.value for s in at.success] == ["Comment added."]
    texts = [t.value for t in at.text]
    assert "<b>Orders slipped</b> to November" in texts  # shown as typed, never as HTML
    assert any("Chase the three late orders" in t and "李娜 Li Na" in t for t in texts)
    assert at.subheader[-1].value == "Comments and actions (1, 1 open)"

    wh = Warehouse(own_file, linger=0)
    try:
        cat = load_catalog(wh)
        rows = review.comments(wh, cat, SYSTEM)
    finally:
        wh.close()
    assert len(rows) == 1
    c = rows.iloc[0]
    assert (c["kpi"], c["unit"], c["created_by"], c["owner"]) == (
        "REV",
        "GROUP",
        "admin",
        "analyst",
    )
    assert c["period"].date() == date(2026, 10, 1)  # the last month of the range
    assert c["due"].date() == date(2026, 11, 30) and c["state"] == "open"

    at.text_input(key="tr_rv_close_1_text").input("Two of three shipped")
    at.button(key="tr_rv_close_1_submit").click().run()
    ok(at)
    assert [s.value for s in at.success] == ["Action closed."]
    assert at.subheader[-1].value == "Comments and actions (1)"


def test_an_empty_comment_is_refused_with_a_message(own_file, monkeypatch):
    at = open_page(PAGE, own_file, monkeypatch)
    at.button(key="tr_rv_submit").click().run()
    ok(at)
    assert [e.value for e in at.error] == ["The comment is empty — write something first."]


def test_viewer_scoped_to_production_cannot_pick_sales(own_file, monkeypatch):
    at = open_as(own_file, monkeypatch, user="viewer_prod", query={"unit": "SALES"})
    units = at.selectbox(key="unit_pick").options
    assert not any("Sales" in u for u in units), units
    assert any("Production" in u for u in units)
    assert "Production Department" in at.title[0].value
    # Viewers read comments; there is no form to write one.
    assert "Viewers read comments" in "\n".join(c.value for c in at.caption)
    assert not [b for b in at.button if b.key == "tr_rv_submit"]
    # Every KPI offered belongs to Production's tree.
    kpis = at.selectbox(key=f"tr_kpi_{at.session_state['unit']}").options
    assert not any("Sales" in k or k == "Revenue" for k in kpis)
