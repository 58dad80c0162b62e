"""The Targets & weights page through AppTest: the editors' keyed state seeded as a user's edits
would leave it, on a copy of the demo warehouse."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from kpi_core import access, i18n, planning, service
from kpi_core.catalog import load_catalog
from kpi_core.periods import parse_period
from kpi_core.warehouse import Warehouse
from tests.apptest import ok, open_page

PAGE = "pages/6_Targets.py"


def open_targets(path, monkeypatch, user: str = "head_sales", lang: str = "en") -> AppTest:
    return open_page(PAGE, path, monkeypatch, lang, user, query={"unit": "SALES"})


def open_tab(at: AppTest, key: str) -> None:
    """Click a tab (by its text's key): only the open tab runs."""
    lang = at.session_state["lang"]
    at.session_state[f"tw_tab_{lang}"] = i18n.t(key, lang)
    at.run()
    ok(at)


def edit_cells(at: AppTest, grid: str, rows: dict[int, dict[str, object]]) -> None:
    """Seed a grid's editor state the way typing into it leaves it, and rerun."""
    nonce = at.session_state[f"tw_{grid}"]["nonce"]
    at.session_state[f"tw_{grid}_editor_{nonce}"] = {
        "edited_rows": rows,
        "added_rows": [],
        "deleted_rows": [],
    }
    at.run()
    ok(at)


def save(at: AppTest, grid: str, reason: str, effective: date) -> None:
    at.date_input(key=f"tw_{grid}_effective").set_value(effective)
    at.text_input(key=f"tw_{grid}_reason").input(reason)
    at.button(key=f"tw_{grid}_save").click()
    at.run()
    ok(at)


def texts(at: AppTest) -> str:
    return "\n".join(
        str(e.value) for kind in (at.success, at.error, at.warning, at.info) for e in kind
    )


def versions(path, unit: str, kpi: str) -> list[tuple]:
    wh = Warehouse(path, linger=0)
    try:
        return wh.rows(
            """SELECT t.version, t.target, t.challenge, t.changed_by, t.reason FROM target t
               JOIN kpi k ON k.id = t.kpi_id JOIN org_unit u ON u.id = t.unit_id
               WHERE k.code = ? AND u.code = ? AND year(t.period_start) = 2026
               ORDER BY t.version""",
            [kpi, unit],
        )
    finally:
        wh.close()


def new_cust_row(at: AppTest) -> int:
    base = at.session_state["tw_targets"]["base"]
    return int(base.index[base["code"] == "SALES/NEW_CUST"][0])


def test_a_head_edits_a_target_and_the_board_sees_it(own_file, monkeypatch):
    wh = Warehouse(own_file, linger=0)
    before = service.score_unit(wh, access.SYSTEM, "SALES", parse_period("2026-10"))
    wh.close()
    at = open_targets(own_file, monkeypatch)
    assert at.session_state["tw_targets"]["base"]["editable"].all()
    row = new_cust_row(at)
    edit_cells(at, "targets", {row: {"baseline": "80", "target": "90", "challenge": "100"}})
    save(at, "targets", "new market opened", date(2026, 1, 1))
    assert "Saved 1 row(s) (3 cell(s)), valid from 2026-01." in texts(at)
    assert versions(own_file, "SALES", "NEW_CUST")[-1] == (
        2,
        90.0,
        100.0,
        "head_sales",
        "new market opened",
    )
    wh = Warehouse(own_file, linger=0)
    after = service.score_unit(wh, access.SYSTEM, "SALES", parse_period("2026-10"))
    wh.close()
    kpi = {k["kpi"]: k for k in after["kpis"]}["NEW_CUST"]
    assert kpi["target"] == 90 / 12  # a sum KPI's year target, phased evenly into October
    assert after["score"] != before["score"]
    # The grid reloaded from the warehouse: the new version, nothing pending.
    base = at.session_state["tw_targets"]["base"]
    assert base.at[row, "target"] == "90" and base.at[row, "version"] == 2
    assert "No changes yet." in [c.value for c in at.caption]


def test_a_bad_cell_shows_its_reason_and_nothing_is_saved(own_file, monkeypatch):
    at = open_targets(own_file, monkeypatch)
    row = new_cust_row(at)
    edit_cells(at, "targets", {row: {"target": "lots"}, row + 1: {"target": "91"}})
    assert "1 change(s) have a problem" in texts(at)
    table = next(d.value for d in at.dataframe if "Field" in d.value.columns)
    bad = table[table["Check"] != "✓"]
    assert list(bad["Field"]) == ["Target"]
    assert "'lots' is not a number" in bad["Check"].iloc[0]
    save(at, "targets", "try", date(2026, 1, 1))
    assert "'lots' is not a number" in texts(at)
    assert len(versions(own_file, "SALES", "CSAT")) == 1  # the good row was not saved either


def test_the_second_of_two_sessions_is_refused_and_keeps_its_edits(own_file, monkeypatch):
    first = open_targets(own_file, monkeypatch, user="head_sales")
    second = open_targets(own_file, monkeypatch, user="admin")
    row = new_cust_row(first)
    edit_cells(first, "targets", {row: {"target": "65"}})
    edit_cells(second, "targets", {row: {"challenge": "80"}, row + 1: {"target": "91"}})
    save(first, "targets", "first", date(2026, 1, 1))
    save(second, "targets", "second", date(2026, 1, 1))
    said = texts(second)
    assert "Not saved:" in said and "SALES/NEW_CUST 2026 was changed by head_sales at" in said
    assert [v[3] for v in versions(own_file, "SALES", "NEW_CUST")] == ["demo", "head_sales"]
    assert len(versions(own_file, "SALES", "CSAT")) == 1
    # Reload keeping the edits: the first head's target is there, the second's edits pending.
    second.button(key=next(b.key for b in second.button if b.key.startswith("tw_reload_"))).click()
    second.run()
    ok(second)
    shown = second.session_state["tw_targets"]["shown"]
    assert (shown.at[row, "target"], shown.at[row, "challenge"]) == ("65", "80")
    assert shown.at[row + 1, "target"] == "91"
    second.text_input(key="tw_targets_reason").input("second, again")
    second.button(key="tw_targets_save").click()
    second.run()
    ok(second)
    assert "Saved 2 row(s)" in texts(second)
    assert versions(own_file, "SALES", "NEW_CUST")[-1][:3] == (3, 65.0, 80.0)


def test_the_open_tab_stays_open_when_the_language_changes(own_file, monkeypatch):
    """A keyed tab bar keeps the label it was drawn with: switching the language fell back to
    the first tab. Each language draws its own bar, opened on the section that was open."""
    at = open_targets(own_file, monkeypatch)
    open_tab(at, "tw_tab_weights")
    assert "tw_weights" in at.session_state
    for lang in ("zh", "en", "zh"):
        at.segmented_control(key="lang_choice").set_value(lang).run()
        ok(at)
        assert at.session_state[f"tw_tab_{lang}"] == i18n.t("tw_tab_weights", lang)
        assert any(c.value.startswith(i18n.t("tw_weights_in_force", lang)[:4]) for c in at.caption)
    open_tab(at, "tw_tab_history")
    at.segmented_control(key="lang_choice").set_value("en").run()
    assert at.session_state["tw_tab_en"] == i18n.t("tw_tab_history", "en")


def test_weights_are_checked_live_and_saved(own_file, monkeypatch):
    at = open_targets(own_file, monkeypatch, lang="zh")
    open_tab(at, "tw_tab_weights")
    base = at.session_state["tw_weights"]["base"]
    sales = list(base.index[base["parent"] == "SALES"])
    assert sales[:2] == [0, 1]  # the department's own scorecard comes first
    edit_cells(at, "weights", {0: {"weight": 50}})
    assert "1 处有问题" in texts(at)
    table = changes(at, "位置")
    assert (
        "销售部：营业收入、新增客户数、客户满意度、回款率的权重合计为 110，应为 100"
        in (table["校验"].iloc[0])
    )
    edit_cells(at, "weights", {0: {"weight": 50}, 1: {"weight": 15}})
    assert "有问题" not in texts(at)
    assert list(changes(at, "位置")["校验"]) == ["✓", "✓"]
    save(at, "weights", "聚焦收入", date(2026, 12, 1))
    assert "已保存 1 组权重（2 个单元格），自 2026年12月 起生效。" in texts(at)
    wh = Warehouse(own_file, linger=0)
    rows = wh.rows(
        """SELECT weight, valid_from, changed_by FROM tree_edge e JOIN org_unit u
           ON u.id = e.parent_unit WHERE u.code = 'SALES' AND e.parent_kpi = 0
           AND e.version = 2 ORDER BY e.sort_order"""
    )
    wh.close()
    assert [r[0] for r in rows] == [50, 15, 20, 15]
    assert {(r[1], r[2]) for r in rows} == {(date(2026, 12, 1), "head_sales")}


def changes(at: AppTest, where: str = "Where") -> pd.DataFrame:
    """The table of changes to save (old → new with the check)."""
    return next(d.value for d in at.dataframe if where in d.value.columns)


def save_2027_plan(path) -> None:
    """A head's plan for next year, saved ahead: revenue 45, new customers 20 from 2027-01."""
    wh = Warehouse(path, linger=0)
    try:
        cat = load_catalog(wh)
        sales = cat.unit("SALES").id
        base = planning.weight_grid(cat, access.SYSTEM, sales, "en", date(2027, 1, 1))
        edited = base.copy()
        edited.loc[base.index[base["parent"] == "SALES"][:2], "weight"] = [45.0, 20.0]
        edits, problems = planning.weight_edits(base, edited)
        assert problems == []
        planning.save_weights(
            wh, cat, access.SYSTEM, edits, reason="2027 plan", effective=date(2027, 1, 1)
        )
    finally:
        wh.close()


def test_weights_of_the_year_in_force_and_the_plan_apart(own_file, monkeypatch):
    save_2027_plan(own_file)
    at = open_targets(own_file, monkeypatch)
    assert at.sidebar.selectbox(key="tw_year").value == 2026
    open_tab(at, "tw_tab_weights")
    base = at.session_state["tw_weights"]["base"]
    sales = base[base["parent"] == "SALES"]
    # The year shown is 2026: the editor has the weights judging it, not next year's plan.
    assert list(sales["weight"]) == [40, 25, 20, 15]
    assert any(c.value.startswith("The weights in force in 2026-11 ") for c in at.caption)
    plan = "\n".join(m.value for m in at.markdown)
    assert "Scheduled weights (read-only)" in plan
    assert (
        "From 2027-01-01: Sales Department — Revenue 45, New customers 20, Customer satisfaction 20, "
        "Collection rate 15" in plan
    )
    # Every changed weight old → new before saving, and the plan it would replace.
    edit_cells(at, "weights", {0: {"weight": 50}, 1: {"weight": 15}})
    table = changes(at)
    assert table[["Where", "Old", "New", "Check"]].values.tolist() == [
        ["Sales Department → Revenue", "40", "50", "✓"],
        ["Sales Department → New customers", "25", "15", "✓"],
    ]
    assert any(
        "replaces the weights of Sales Department scheduled from 2027-01-01" in w.value
        for w in at.warning
    )
    # A sum that is not 100 is named as people know the units and KPIs.
    edit_cells(at, "weights", {0: {"weight": 50}})
    bad = changes(at)
    assert bad["Check"].iloc[0] == (
        "✗ Sales Department: weights of Revenue, New customers, Customer satisfaction, Collection rate "
        "sum to 110, not 100"
    )
    # Year 2027 shows the plan as the weights in force, and nothing scheduled after it.
    at.sidebar.selectbox(key="tw_year").set_value(2027).run()
    ok(at)
    base = at.session_state["tw_weights"]["base"]
    assert list(base.loc[base["parent"] == "SALES", "weight"]) == [45, 20, 20, 15]
    assert "Scheduled weights" not in "\n".join(m.value for m in at.markdown)


def test_viewers_read_only(own_file, monkeypatch):
    at = open_targets(own_file, monkeypatch, user="viewer_prod")
    ok(at)
    assert "Read-only: department heads and admins change targets and weights." in [
        c.value for c in at.caption
    ]
    assert not at.session_state["tw_targets"]["base"]["editable"].any()
    assert not [b for b in at.button if b.key == "tw_targets_save"]
    # Only the viewer's own units are in the grid.
    assert set(at.session_state["tw_targets"]["base"]["code"].str.split("/").str[0]) <= {
        "PROD", "PROD_L1", "PROD_L2",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("lang", "said"),
    [
        ("en", "空.xlsx: the file is empty (0 bytes). Save it again from Excel and retry."),
        ("zh", "空.xlsx：文件是空的（0 字节）。请用 Excel 重新保存后再上传。"),
    ],
)
def test_a_sheet_that_cannot_be_read_is_refused_in_the_page_language(
    own_file, monkeypatch, lang, said
):
    """ "From a sheet": a file the reader refuses (kpi_core.ingest.files, a coded message) is
    said in the page's language, its name in front as it is."""
    from kpi_core.ingest import definition_file
    from tests.test_target_mapping import monthly

    at = open_targets(own_file, monkeypatch, user="admin", lang=lang)
    open_tab(at, "tw_tab_sheet")
    mapping = definition_file.target_mapping_text(monthly()).encode()
    at.file_uploader(key="tg_mapping").upload("channels.toml", mapping).run()
    at.file_uploader(key="tg_sheet").upload("空.xlsx", b"").run()
    ok(at)
    assert [e.value for e in at.error] == [said]


def test_history_revert_and_change_log(own_file, monkeypatch):
    at = open_targets(own_file, monkeypatch)
    row = new_cust_row(at)
    edit_cells(at, "targets", {row: {"target": "65"}})
    save(at, "targets", "stretch", date(2026, 7, 1))
    open_tab(at, "tw_tab_history")
    at.selectbox(key="tw_history_pair").set_value(
        next(o for o in at.selectbox(key="tw_history_pair").options if "New customers" in o)
    )
    at.run()
    hist = [d.value for d in at.dataframe if "Change" in d.value.columns][0]
    assert hist.iloc[0]["Change"] == "target 60 → 65"
    assert hist.iloc[0]["Reason"] == "stretch"
    save(at, "revert", "undo the stretch", date(2026, 9, 1))
    assert "Brought back version v1's levels (saved as a new version)." in texts(at)
    assert versions(own_file, "SALES", "NEW_CUST")[-1][:2] == (3, 60.0)
    open_tab(at, "tw_tab_audit")
    log = [d.value for d in at.dataframe if "Entity" in d.value.columns][0]
    mine = log[log["Changed by"] == "head_sales"]
    assert list(mine["Reason"]) == ["undo the stretch", "stretch"]
    assert set(mine["Key"]) == {"SALES/NEW_CUST/2026"}


def test_only_the_open_tab_runs(own_file, monkeypatch):
    """Issue 22: the history's list of pairs, the weights grid and the change log are drawn
    when their tab is opened, not at every click in the targets grid."""
    at = open_targets(own_file, monkeypatch)
    assert not [s for s in at.selectbox if s.key == "tw_history_pair"]
    assert "tw_weights" not in at.session_state
    assert not [m for m in at.multiselect if m.key == "tw_audit_entities"]
    open_tab(at, "tw_tab_history")
    assert [s for s in at.selectbox if s.key == "tw_history_pair"]
    assert not [b for b in at.button if b.key == "tw_targets_save"]


def test_unsaved_cells_survive_a_look_at_another_tab(own_file, monkeypatch):
    at = open_targets(own_file, monkeypatch)
    row = new_cust_row(at)
    edit_cells(at, "targets", {row: {"target": "65"}})
    assert changes(at)[["Field", "Old", "New"]].values.tolist() == [["Target", "60", "65"]]
    open_tab(at, "tw_tab_weights")
    edit_cells(at, "weights", {0: {"weight": 50}, 1: {"weight": 15}})
    open_tab(at, "tw_tab_targets")
    assert changes(at)[["Field", "Old", "New"]].values.tolist() == [["Target", "60", "65"]]
    save(at, "targets", "stretch", date(2026, 7, 1))
    assert versions(own_file, "SALES", "NEW_CUST")[-1][:2] == (2, 65.0)
    open_tab(at, "tw_tab_weights")
    assert changes(at)["New"].tolist() == ["50", "15"]


def test_a_warm_run_builds_no_grid_text_again(own_file, monkeypatch):
    """Issue 22: a large unit's grid has thousands of rows; its readable columns and the phone
    form's row picker are made once per grid read, not a cell at a time at every run."""
    from kpi_core.ui import edit_grid

    at = open_targets(own_file, monkeypatch)
    picker = at.session_state["tw_targets"]["row_picker"]
    base = at.session_state["tw_targets"]["base"]
    row = new_cust_row(at)
    assert picker[row] == " · ".join(base.loc[row, ["unit", "kpi", "period"]])
    made = []
    real = edit_grid._readable
    monkeypatch.setattr(edit_grid, "_readable", lambda *a: made.append(a) or real(*a))
    at.run()
    ok(at)
    assert made == []
    assert at.session_state["tw_targets"]["row_picker"] is picker
