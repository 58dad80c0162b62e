"""The KPI library page through Streamlit's AppTest, on a real DuckDB copy of the demo: create a
KPI through the widgets and find it in the warehouse, the formula checked as typed, problems next
to their fields in both languages, placing a KPI on a scorecard, and the message for non-admins."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from kpi_core import library_edits
from kpi_core.access import Scope
from kpi_core.catalog import load_catalog
from kpi_core.errors import ValidationError
from kpi_core.system_import import import_system
from kpi_core.texts import t
from kpi_core.ui.library import children_rows, problems_frame, weights_total
from kpi_core.warehouse import Warehouse
from tests import apptest
from tests.apptest import ok
from tests.conftest import TODAY
from tests.test_import import many_problems

ROOT = Path(__file__).resolve().parent.parent

PAGE = "pages/4_Library.py"
THIS_MONTH = TODAY.replace(day=1)


def open_page(path, monkeypatch, lang="en", user="admin") -> AppTest:
    return apptest.open_page(PAGE, path, monkeypatch, lang, user)


def catalog(path):
    wh = Warehouse(path, linger=0)
    try:
        return load_catalog(wh)
    finally:
        wh.close()


def errors(at) -> list[str]:
    return [e.value for e in at.error]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_page_runs_in_both_languages(own_file, monkeypatch, lang):
    at = open_page(own_file, monkeypatch, lang)
    assert not at.error
    assert at.title[0].value == ("KPI library" if lang == "en" else "指标库")
    assert [t.label for t in at.tabs] == (
        ["Library", "Edit KPI", "Place on a scorecard", "Export / import", "Change log"]
        if lang == "en"
        else ["指标列表", "编辑指标", "放入考核表", "导出 / 导入", "变更日志"]
    )
    listed = at.dataframe[0].value
    assert len(listed) == 50
    name = "Name" if lang == "en" else "名称"
    assert listed.iloc[0][name] == ("Revenue" if lang == "en" else "营业收入")
    links = [link.label for link in at.sidebar.get("page_link")]
    assert ("KPI library" if lang == "en" else "指标库") in links  # an admin's navigation
    # The filter narrows the list.
    at.text_input(key="lib_filter").input("OEE").run()
    assert list(at.dataframe[0].value.iloc[:, 0]) == ["OEE"]


def test_non_admins_get_a_message(own_file, monkeypatch):
    at = open_page(own_file, monkeypatch, user="analyst")
    assert [i.value for i in at.info] == [
        "Only admins edit the KPI library and scorecards; ask one if a definition needs a change."
    ]
    assert not at.tabs and not at.text_input
    assert "KPI library" not in [link.label for link in at.sidebar.get("page_link")]


def fill_new_kpi(at: AppTest) -> None:
    at.text_input(key="lib_f_code").input("AOV")
    at.text_input(key="lib_f_name_zh").input("客单价")
    at.text_input(key="lib_f_name_en").input("Average order value")
    at.text_input(key="lib_f_unit").input("元")
    at.selectbox(key="lib_f_aggregation").set_value("formula").run()
    ok(at)


def test_create_a_formula_kpi_through_the_widgets(own_file, monkeypatch):
    at = open_page(own_file, monkeypatch)
    assert at.selectbox(key="lib_pick").value is None  # a new KPI
    fill_new_kpi(at)
    # A formula naming a KPI the library does not have is said as it is typed.
    at.text_input(key="lib_f_formula").input("REV / ORDRES").run()
    ok(at)
    assert errors(at) == ["unknown KPI ORDRES — use the codes of the KPI library"]
    # Saving it anyway is refused, the problem shown at the formula and in the list.
    at.button(key="lib_save").click().run()
    ok(at)
    said = "names a missing KPI 'ORDRES' — did you mean 'ORDERS'?"
    assert said in errors(at)
    assert any("1 problem(s); nothing was saved" in e and "ORDRES" in e for e in errors(at))
    assert "AOV" not in catalog(own_file).kpi_by_code

    at.text_input(key="lib_f_formula").input("REV / ORDERS").run()
    assert not at.error and "The formula is fine." in [s.value for s in at.success]
    at.selectbox(key="lib_f_perspective").set_value("financial")
    at.text_input(key="lib_f_owner").input("王磊")
    at.button(key="lib_check").click().run()
    ok(at)
    assert "No problems; ready to save (new KPIs 1)." in [i.value for i in at.info]
    assert "AOV" not in catalog(own_file).kpi_by_code  # a check writes nothing
    at.button(key="lib_save").click().run()
    ok(at)
    assert "KPI AOV saved (new KPIs 1)." in [s.value for s in at.success]
    aov = catalog(own_file).kpi("AOV")
    assert (aov.name_zh, aov.name_en, aov.unit, aov.aggregation, aov.formula) == (
        "客单价", "Average order value", "元", "formula", "REV / ORDERS"
    )  # fmt: skip
    assert (aov.direction, aov.perspective, aov.owner) == ("up", "financial", "王磊")
    # The page now edits it, shows its SMART warnings, and lists it.
    assert at.selectbox(key="lib_pick").value == "AOV"
    assert at.text_input(key="lib_f_code").disabled
    warned = [w.value for w in at.warning if "SMART" in w.value]
    assert len(warned) == 1
    for w in (f"no target for {THIS_MONTH.year}", "no data source", "no caliber"):
        assert w in warned[0]
    assert "AOV" in list(at.dataframe[0].value["Code"])


def test_problems_in_chinese_next_to_their_fields(own_file, monkeypatch):
    at = open_page(own_file, monkeypatch, "zh")
    at.text_input(key="lib_f_code").input("RATE1")
    at.text_input(key="lib_f_name_zh").input("比率一")
    at.selectbox(key="lib_f_aggregation").set_value("ratio").run()
    at.selectbox(key="lib_f_numerator").set_value("ORDERS").run()
    at.button(key="lib_save").click().run()
    ok(at)
    assert "比率指标需要填写分子和分母的指标编码" in errors(at)
    assert "RATE1" not in catalog(own_file).kpi_by_code
    at.selectbox(key="lib_f_denominator").set_value("VISITS").run()
    at.button(key="lib_save").click().run()
    ok(at)
    assert not at.error
    assert catalog(own_file).kpi("RATE1").dependencies() == {"ORDERS", "VISITS"}


def test_place_a_kpi_on_a_scorecard(own_file, monkeypatch):
    at = open_page(own_file, monkeypatch)
    fill_new_kpi(at)
    at.text_input(key="lib_f_formula").input("REV / ORDERS").run()
    at.button(key="lib_save").click().run()
    ok(at)
    sales = catalog(own_file).unit("SALES").id
    at.selectbox(key="lib_place_unit").set_value(sales).run()
    ok(at)
    assert "Weights sum to 100." in [s.value for s in at.success]
    at.button(key="lib_place_add_btn").click().run()
    ok(at)
    [editor] = [d for d in at.dataframe if (d.key or "").startswith("lib_tree_")]
    assert list(editor.value["node"]) == [
        "SALES/REV", "SALES/NEW_CUST", "SALES/CSAT", "SALES/COLLECT_RATE", "SALES/AOV"
    ]  # fmt: skip
    # Weight 10 for the new KPI only: the sum is off, and Save is refused with the reason.
    at.session_state[editor.key] = {
        "edited_rows": {4: {"weight": 10}}, "added_rows": [], "deleted_rows": [],
    }  # fmt: skip
    at.run()
    assert "Weights sum to 110 — they must sum to 100." in [w.value for w in at.warning]
    at.button(key="lib_place_save").click().run()
    ok(at)
    assert any("sum to 110 — they must sum to 100" in e for e in errors(at)), errors(at)
    # Take 10 from revenue: saved.
    at.session_state[editor.key] = {
        "edited_rows": {0: {"weight": 30}, 4: {"weight": 10}}, "added_rows": [], "deleted_rows": [],
    }  # fmt: skip
    at.run()
    assert "Weights sum to 100." in [s.value for s in at.success]
    at.button(key="lib_place_save").click().run()
    ok(at)
    assert "SALES's scorecard saved." in [s.value for s in at.success]
    assert library_edits.children_of(catalog(own_file), "SALES", None, THIS_MONTH) == [
        ("SALES/REV", 30.0), ("SALES/NEW_CUST", 25.0), ("SALES/CSAT", 20.0),
        ("SALES/COLLECT_RATE", 15.0), ("SALES/AOV", 10.0),
    ]  # fmt: skip
    assert "AOV is on SALES's scorecard." in [c.value for c in at.caption]


def test_editor_helpers():
    import pandas as pd

    frame = pd.DataFrame({"node": ["SALES/REV", None, " SALES/CSAT "], "weight": [60, 5, None]})
    assert weights_total(frame) == 65
    assert children_rows(frame) == [("SALES/REV", 60.0), ("SALES/CSAT", None)]


def test_import_problems_listed_in_the_pages_language(warehouse):
    """The Export / import tab's list of a refused workbook's problems: every problem in Chinese
    on a Chinese page (none left in English), and as the command line says it in English."""
    from kpi_core import workbook

    with pytest.raises(ValidationError) as refused:
        import_system(warehouse, workbook.to_bytes(many_problems()), by="t", scope=Scope.all())
    problems = refused.value.problems
    zh = list(problems_frame(problems, "zh")[t("lib_col_problem", "zh")])
    en = list(problems_frame(problems, "en")[t("lib_col_problem", "en")])
    assert en == [str(p.message) for p in problems]
    english_words = [z for z in zh if re.search(r"\b(is|the|a|write|must|did|not)\b", z)]
    assert english_words == []
    assert "“lots”不是数字——请填写普通数字，例如 1250000、12.5万 或 96%" in zh
    assert "未知组织“SALSE”——是否想写“SALES”？" in zh
