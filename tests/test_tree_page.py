"""The KPI tree page through Streamlit's AppTest on a copy of the demo: the drawing in both
languages, depth and collapse, choosing a node, the jump to its board, and a scoped user."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from kpi_core.catalog import load_catalog
from kpi_core.warehouse import Warehouse
from tests import apptest
from tests.apptest import ok, open_page

ROOT = Path(__file__).resolve().parent.parent
PAGE = "pages/5_Tree.py"


@pytest.fixture
def cat(own_file):
    wh = Warehouse(own_file, linger=0)
    try:
        yield load_catalog(wh)
    finally:
        wh.close()


def dot(at: AppTest) -> str:
    charts = at.get("graphviz_chart")
    assert len(charts) == 1
    return charts[0].proto.spec


def count_caption(at: AppTest) -> str:
    return next(c.value for c in at.caption if "nodes" in c.value or "个节点" in c.value)


@pytest.mark.parametrize(
    ("lang", "title", "status"), [("en", "KPI tree", "Amber"), ("zh", "指标树", "黄灯")]
)
def test_the_tree_is_drawn_in_both_languages(own_file, monkeypatch, cat, lang, title, status):
    at = apptest.open_page(PAGE, own_file, monkeypatch, lang)
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value.startswith(title)
    spec = dot(at)
    assert spec.startswith("digraph kpi_tree {") and "rankdir=LR" in spec
    assert status in spec
    group = cat.unit("GROUP")
    assert cat.unit("SALES").name(lang) in spec
    # The root is selected by default: its children's contributions are listed.
    assert at.subheader[0].value == group.name(lang)
    assert len(at.dataframe) == 1


def test_depth_collapse_and_choosing_a_node(own_file, monkeypatch, cat):
    at = apptest.open_page(PAGE, own_file, monkeypatch)
    group = cat.unit("GROUP").id
    before = count_caption(at)
    at.slider(key=f"tree_depth_{group}").set_value(1).run()
    ok(at)
    after = count_caption(at)
    # "Showing N of M nodes": the drawing holds N nodes, joined by N - 1 edges.
    shown = int(after.split()[1])
    assert after != before and dot(at).count("->") == shown - 1
    assert "below" in dot(at)

    sales = f"{cat.unit('SALES').id}:0"
    at.multiselect(key=f"tree_expand_{group}").set_value([sales]).run()
    ok(at)
    assert "New customers" in dot(at)
    at.multiselect(key=f"tree_collapse_{group}").set_value([sales]).run()
    ok(at)
    assert "New customers" not in dot(at)

    at.selectbox(key=f"tree_node_{group}").set_value(sales).run()
    ok(at)
    assert at.subheader[0].value == "Sales Department"
    shown = [m.label for m in at.metric]
    assert shown[0] == "Score" and "Coverage" in shown
    rev = f"{cat.unit('SALES').id}:{cat.kpi('REV').id}"
    at.selectbox(key=f"tree_node_{group}").set_value(rev).run()
    ok(at)
    assert at.subheader[0].value == "Sales Department · Revenue"
    assert {"Score", "Actual", "Target", "Coverage"} <= {m.label for m in at.metric}
    # Its targets and its children's (the regions') contributions.
    assert len(at.dataframe) == 2
    assert "East China Region" in at.dataframe[1].value.iloc[:, 0].str.cat()
    assert not at.error

    at.button(key="tree_open_board").click().run()
    ok(at)
    assert at.title[0].value.startswith("Sales Department")


def test_a_scoped_user_sees_only_their_units(own_file, monkeypatch, cat):
    at = open_page(PAGE, own_file, monkeypatch, user="viewer_prod")
    assert not at.error, [e.value for e in at.error]
    prod = set(cat.descendants(cat.unit("PROD").id))
    picked = at.selectbox(key="unit_pick")
    assert picked.options and all("Production" in o or "Line" in o for o in picked.options)
    assert at.title[0].value.startswith("KPI tree · Production Department")
    nodes = at.selectbox(key=f"tree_node_{cat.unit('PROD').id}")
    for label in nodes.options:
        assert "Sales" not in label and "Huachuang" not in label
    spec = dot(at)
    outside = [u for u in cat.units if u not in prod]
    assert not any(f"n{u}_" in spec for u in outside)
