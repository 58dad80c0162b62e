"""Issue 21 items 1–3 on the pages, through AppTest on a copy of the demo signed in as the Sales
head: the Board's "needs attention" list and its links, the KPI detail page reached by a deep
link (and refused outside the scope), and the Board counting its sub-units' comments."""

from __future__ import annotations

import re
from datetime import date
from urllib.parse import parse_qs

import pytest
from streamlit.testing.v1 import AppTest

from kpi_core import review, service
from kpi_core.catalog import load_catalog
from kpi_core.warehouse import Warehouse
from tests import apptest

BOARD, DETAIL = "pages/1_Board.py", "pages/11_Detail.py"
HEAD = "head_sales"


def links(at: AppTest) -> list[tuple[str, dict]]:
    """(label, query) of each page link in the main area."""
    out = []
    for el in at.main.get("page_link"):
        # Labels are Markdown, users' names escaped (widgets.md): read them as shown.
        label = re.sub(r"\\(.)", r"\1", el.proto.label)
        out.append((label, {k: v[0] for k, v in parse_qs(el.proto.query_string).items()}))
    return out


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "error", "warning", "success", "info",
                                  "title", "subheader") for e in at.get(kind)]  # fmt: skip
    parts += [label for label, _ in links(at)]
    parts += [e.label for e in at.expander]
    return "\n".join(parts)


@pytest.mark.parametrize(
    ("lang", "first"),
    [
        ("zh", "营业收入 红灯 — 华南大区 43.0（基准 60）"),
        ("en", "Revenue red — South China Region 43.0 (baseline 60)"),
    ],
)
def test_the_sales_board_opens_with_what_is_red_and_why(own_file, monkeypatch, lang, first):
    at = apptest.open_page(BOARD, own_file, monkeypatch, lang, HEAD)
    found = links(at)
    labels = [label for label, _ in found]
    assert first in labels[0], labels
    # The first red item opens South China's revenue for the Board's month.
    assert found[0][1] == {"unit": "SALES_S", "kpi": "REV", "period": "2026-10", "lang": lang}
    # The department's revenue is at risk because of South China.
    cause = "主因：华南大区 红灯 43.0" if lang == "zh" else "cause: South China Region red 43.0"
    assert any(cause in label for label in labels), labels


def test_a_green_board_says_so_in_one_line(own_file, monkeypatch):
    # Human Resources had nothing red or at risk in May 2025.
    query = {"unit": "HR", "period": "2025-05"}
    at = apptest.open_page(BOARD, own_file, monkeypatch, "en", "admin", query=query)
    assert at.title[0].value == "Human Resources Department · 2025-05"
    assert [s.value for s in at.success] == [
        "All clear: no red and no at-risk KPI in this unit or below it."
    ]


def test_cards_lead_to_their_detail(own_file, monkeypatch):
    at = apptest.open_page(BOARD, own_file, monkeypatch, "en", HEAD)
    queries = [q for _, q in links(at)]
    for code in ("REV", "NEW_CUST", "CSAT", "COLLECT_RATE"):
        assert {"unit": "SALES", "kpi": code, "period": "2026-10", "lang": "en"} in queries


def test_the_board_counts_its_sub_units_comments_and_actions(own_file, monkeypatch):
    wh = Warehouse(own_file, linger=0)
    try:
        cat = load_catalog(wh)
        review.add_comment(
            wh, service.actor(wh, HEAD), cat.kpi("REV").id, cat.unit("SALES_S").id,
            date(2026, 10, 1), "Key accounts pay late", action="Re-plan visits", owner="Li Na",
            due=date(2026, 12, 15),
        )  # fmt: skip
    finally:
        wh.close()
    at = apptest.open_page(BOARD, own_file, monkeypatch, "en", HEAD)
    panel = [e.label for e in at.expander if "Comments and actions" in e.label]
    assert panel == ["Comments and actions (1, 1 open)"]
    at.session_state["board_rv_open"] = True
    at.run()
    assert "By unit: South China Region 1 (1 open)" in [c.value for c in at.caption]
    # The KPI picked first is the one with the open action, marked with its unit.
    picked = at.selectbox(key="board_rv_kpi")
    assert picked.value == "SALES_S/REV"
    assert "Re-plan visits" in "\n".join(t.value for t in at.text)
    # The department's revenue detail leads to the region's comment in one click.
    query = {"unit": "SALES", "kpi": "REV", "period": "2026-10"}
    at = apptest.open_page(DETAIL, own_file, monkeypatch, "en", HEAD, query=query)
    noted = [q for label, q in links(at) if label.endswith("1 comments · 1 open")]
    assert noted == [{"unit": "SALES_S", "kpi": "REV", "period": "2026-10", "lang": "en"}]


def test_detail_by_deep_link_has_everything_and_children_one_click_away(own_file, monkeypatch):
    query = {"unit": "SALES", "kpi": "REV", "period": "2026-10"}
    at = apptest.open_page(DETAIL, own_file, monkeypatch, "zh", HEAD, query=query)
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value == "营业收入 · 销售部 · 2026年10月"
    # Why: at risk, held down by South China.
    assert "主因：华南大区 红灯 43.0" in at.warning[0].value
    subheaders = [s.value for s in at.subheader]
    assert "构成：下级 权重 × 得分" in subheaders and "数据来源批次" in subheaders
    assert any(s.startswith("预警（") for s in subheaders)
    assert any(s.startswith("点评与行动（") for s in subheaders)
    children = {q["unit"]: label for label, q in links(at) if q.get("kpi") == "REV"}
    assert set(children) >= {"SALES_E", "SALES_N", "SALES_S"}
    assert "华南大区" in children["SALES_S"] and "25% × 43.0" in children["SALES_S"]
    assert len(at.get("vega_lite_chart")) == 2  # contributors and trend with levels
    batches = at.dataframe[-1].value
    assert len(batches) >= 1 and batches.iloc[0]["数值个数"] > 0


def test_the_child_detail_links_back_up(own_file, monkeypatch):
    query = {"unit": "SALES_S", "kpi": "REV", "period": "2026-10"}
    at = apptest.open_page(DETAIL, own_file, monkeypatch, "en", HEAD, query=query)
    assert at.error[0].value.startswith("Revenue red — South China Region 43.0 (baseline 60)")
    up = [q for label, q in links(at) if label.startswith("Up:")]
    assert up == [{"unit": "SALES", "kpi": "REV", "period": "2026-10", "lang": "en"}]


@pytest.mark.parametrize("unit", ["SALES_S", "NOSUCH"])
def test_a_unit_outside_the_scope_is_refused_and_nothing_shown(own_file, monkeypatch, unit):
    """The attack: a production viewer edits the link to open South China's revenue."""
    query = {"unit": unit, "kpi": "REV", "period": "2026-10"}
    at = apptest.open_page(DETAIL, own_file, monkeypatch, "en", "viewer_prod", query=query)
    assert [e.value for e in at.error] == [
        "This link cannot be opened: its unit does not exist or is outside your scope."
    ]
    shown = texts(at)
    for foreign in ("South China", "华南", "Revenue", "营业收入", "SALES"):
        assert foreign not in shown
    assert not at.metric and not at.dataframe and not at.get("vega_lite_chart")


def test_a_link_to_a_kpi_the_unit_does_not_have_says_so_in_chinese(own_file, monkeypatch):
    query = {"unit": "SALES_S", "kpi": "OEE", "period": "2026-10"}
    at = apptest.open_page(DETAIL, own_file, monkeypatch, "zh", HEAD, query=query)
    assert [e.value for e in at.error] == ["2026-10 组织 SALES_S 的计分卡上没有指标 OEE。"]
    assert [q for _, q in links(at)] == [{"lang": "zh"}]  # back to choosing one
    assert not at.metric


def test_the_overview_a_head_lands_on_opens_with_the_same_list(own_file, monkeypatch):
    at = apptest.open_page("app.py", own_file, monkeypatch, "zh", HEAD)
    label, query = links(at)[0]
    assert "营业收入 红灯 — 华南大区 43.0（基准 60）" in label
    assert query == {"unit": "SALES_S", "kpi": "REV", "period": "2026-10", "lang": "zh"}


def test_status_matrix_cells_are_clickable_and_carry_their_node(own_file, monkeypatch):
    """A click on a cell selects its node ('UNIT/KPI'), which the Board opens (the click itself
    is driven in a browser; AppTest cannot click a chart)."""
    import json

    at = apptest.open_page(BOARD, own_file, monkeypatch, "en", HEAD)
    matrix = next(c for c in at.get("vega_lite_chart") if "SALES_S/REV" in str(c.proto))
    assert list(matrix.proto.selection_mode) == ["cell"]
    spec = json.loads(matrix.proto.spec)
    assert [(p["name"], p["select"]["fields"]) for p in spec["params"]] == [("cell", ["node"])]


def test_the_trees_chosen_node_links_to_its_detail(own_file, monkeypatch):
    wh = Warehouse(own_file, linger=0)
    try:
        cat = load_catalog(wh)
    finally:
        wh.close()
    sales, south, rev = cat.unit("SALES").id, cat.unit("SALES_S").id, cat.kpi("REV").id
    at = apptest.open_page("pages/5_Tree.py", own_file, monkeypatch, "en", HEAD)
    at.selectbox(key=f"tree_node_{sales}").set_value(f"{south}:{rev}").run()
    opened = [q for label, q in links(at) if label == "Open this KPI's detail"]
    assert opened == [{"unit": "SALES_S", "kpi": "REV", "period": "2026-10", "lang": "en"}]


def test_a_board_with_nothing_red_does_not_count_zero_reds(own_file, monkeypatch):
    at = apptest.open_page(BOARD, own_file, monkeypatch, "en", "viewer_prod")
    head = next(m.value for m in at.markdown if m.value.startswith("**Needs attention**"))
    assert re.fullmatch(r"\*\*Needs attention\*\* · \d+ at risk", head), head
