"""The Upload page through Streamlit's AppTest, on a real DuckDB file and real .xlsx uploads."""

import io
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import Workbook
from streamlit.testing.v1 import AppTest

from kpi_core import i18n, service, workbook
from kpi_core.access import SYSTEM, Scope
from kpi_core.ingest import intake, profile
from kpi_core.system_import import import_system
from kpi_core.ui.intake_frames import measures_from, month_options, turns_text
from kpi_core.ui.intake_panels import done_message
from kpi_core.warehouse import Warehouse
from tests import apptest
from tests.conftest import sales_system

ROOT = Path(__file__).resolve().parent.parent
PAGE = "pages/2_Upload.py"


@pytest.fixture
def wh_path(tmp_path):
    """A fresh warehouse per test: these tests write."""
    book = tmp_path / "sales.xlsx"
    workbook.write(sales_system(), book)
    wh = Warehouse(tmp_path / "wh.duckdb", linger=0)
    import_system(wh, book, by="test", scope=Scope.all())
    wh.close()
    return tmp_path / "wh.duckdb"


def xlsx(rows, header=("period", "unit", "kpi", "value"), sheet="actuals") -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.title = sheet
    ws.append(list(header))
    for r in rows:
        ws.append(list(r))
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


GOOD_AND_BAD = [
    ("2024-12", "EAST", "REV", 3_500_000),  # changed, amber → green
    ("2024-11", "SALES", "CSAT", 95),  # changed
    ("2024-12", "SALES", "CSAT", 80),  # changed, amber → red
    ("2024-12", "SALES", "NEW_CUST", "lots"),  # row 5: not a number
]


def open_page(warehouse, monkeypatch, lang="en") -> AppTest:
    return apptest.open_page(PAGE, warehouse, monkeypatch, lang)


def actual(warehouse, unit: str, kpi: str, month: str) -> float | None:
    wh = Warehouse(warehouse, linger=0)
    try:
        row = wh.one(
            """SELECT a.value FROM actual a JOIN kpi k ON k.id = a.kpi_id
               JOIN org_unit u ON u.id = a.unit_id
               WHERE u.code = ? AND k.code = ? AND a.period = ?""",
            [unit, kpi, date.fromisoformat(month + "-01")],
        )
    finally:
        wh.close()
    return None if row is None else row[0]


def frame_with(at, column: str) -> pd.DataFrame:
    return next(d.value for d in at.dataframe if column in d.value.columns)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_page_runs_in_both_languages(wh_path, monkeypatch, lang):
    at = open_page(wh_path, monkeypatch, lang)
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value == ("Upload monthly actuals" if lang == "en" else "上传月度实际数据")
    assert at.file_uploader[0].accept_multiple_files
    assert set(at.file_uploader[0].allowed_type) == {".xlsx", ".xlsm", ".xls", ".csv", ".parquet"}
    # The template for the unit and month picked: a download button, built when clicked.
    assert at.download_button[0].label == (
        "Download template (.xlsx)" if lang == "en" else "下载模板（.xlsx）"
    )


def test_upload_is_checked_previewed_and_loaded_only_after_confirming(wh_path, monkeypatch):
    at = open_page(wh_path, monkeypatch)
    at.file_uploader[0].upload("december.xlsx", xlsx(GOOD_AND_BAD)).run()
    assert not at.exception, [e.value for e in at.exception]

    counts = {m.label: m.value for m in at.metric}
    assert counts["Changed"] == "3" and counts["New"] == "0"
    assert counts["Invalid (left out)"] == "1"
    problems = frame_with(at, "Problem")
    assert list(problems.columns) == [
        "Severity", "File", "Sheet", "Row", "Column", "Problem", "What to do"
    ]  # fmt: skip
    bad = problems.iloc[0]
    assert (bad["File"], bad["Sheet"], bad["Row"]) == ("december.xlsx", "actuals", 5)
    assert "not a number" in bad["Problem"] and bad["Severity"].endswith("Error")

    preview = frame_with(at, "Before")
    east = preview[preview["Unit"] == "EAST · East region"].iloc[0]
    assert east["KPI"] == "REV · Revenue" and east["Month"] == "2024-12"
    assert (east["Before"], east["After"], east["Change"]) == (
        "2,900,000.0 CNY", "3,500,000.0 CNY", "Changed"
    )  # fmt: skip
    assert any("1 turn red" in m.value and "2 turn green" in m.value for m in at.markdown)
    lights = frame_with(at, "Light after")
    assert lights.iloc[0]["Light after"] == "■ Red"

    # Nothing is written, and the button stays off, until the analyst accepts the gap.
    assert at.button(key="up_commit").disabled
    assert actual(wh_path, "EAST", "REV", "2024-12") == 2_900_000
    box = at.checkbox[0]
    assert box.label == "Load only the 3 valid values and leave the 1 invalid ones out"
    box.check().run()
    assert not at.button(key="up_commit").disabled
    at.button(key="up_commit").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert [s.value for s in at.success] == [
        "Loaded as batch 2: 0 new, 3 changed, 0 removed, 0 unchanged, 1 left out."
    ]
    assert actual(wh_path, "EAST", "REV", "2024-12") == 3_500_000
    assert actual(wh_path, "SALES", "CSAT", "2024-11") == 95
    # The uploader is emptied for the next file, and the history has the batch.
    assert not at.file_uploader[0].value
    history = frame_with(at, "Batch")
    assert history.iloc[0]["Batch"] == 2 and history.iloc[0]["Source"] == "december.xlsx"
    assert at.selectbox(key="up_rb_batch").value == 2  # ready to undo what was just loaded


def test_problems_are_in_chinese_on_the_chinese_page(wh_path, monkeypatch):
    at = open_page(wh_path, monkeypatch, "zh")
    at.file_uploader[0].upload("十二月.xlsx", xlsx(GOOD_AND_BAD)).run()
    assert not at.exception, [e.value for e in at.exception]
    problems = frame_with(at, "问题")
    assert list(problems.columns) == ["级别", "文件", "工作表", "行", "列", "问题", "如何处理"]
    bad = problems.iloc[0]
    place = (bad["文件"], bad["工作表"], bad["行"], bad["列"])
    assert place == ("十二月.xlsx", "actuals", 5, "D (value)")
    assert bad["级别"].endswith("错误")
    assert bad["问题"] == "“lots”不是数字"
    assert bad["如何处理"] == "请填写数字，例如 1250000、12.5万、1,234.5 或 96%"
    # A file that cannot be read at all: its name as it is, then what to do, in Chinese.
    at.file_uploader[0].upload("空.xlsx", b"").run()
    assert not at.exception, [e.value for e in at.exception]
    # (Said again under Mapping profiles, which reads the same file as its sample.)
    assert {e.value for e in at.error} == {
        "空.xlsx：文件是空的（0 字节）。请用 Excel 重新保存后再上传。"
    }


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_first_problem_is_told_in_full_below_the_table(wh_path, monkeypatch, lang):
    """A grid cell cuts long text at its edge: the problem and what to do are also told whole,
    wrapped, below the table (the first one until another row is picked)."""
    at = open_page(wh_path, monkeypatch, lang)
    at.file_uploader[0].upload("december.xlsx", xlsx(GOOD_AND_BAD)).run()
    assert not at.exception, [e.value for e in at.exception]
    text = "\n".join(m.value for m in at.markdown)
    if lang == "zh":
        assert "“lots”不是数字" in text
        assert "**如何处理**：请填写数字，例如 1250000、12.5万、1,234.5 或 96%" in text
        assert "第 5 行" in text and "D (value) 列" in text
    else:
        assert "**What to do**: " in text and "row 5" in text


@pytest.mark.parametrize(
    ("lang", "said"),
    [
        ("en", ("Problem", "What to do",
                "cells D2:D3 are merged over values — no one can tell which row the number "
                "belongs to", "unmerge the cells and give each row its own value")),
        ("zh", ("问题", "如何处理", "单元格 D2:D3 跨数值合并——无法判断数值属于哪一行",
                "请取消合并单元格，为每一行分别填写数值")),
    ],
)  # fmt: skip
def test_a_sheet_laid_out_wrong_is_told_in_the_page_language(wh_path, monkeypatch, lang, said):
    """A layout finding (kpi_core.ingest.layout, a coded message) in the table and in full
    below it, rendered from the catalogs in the page's language."""
    problem, what_to_do, message, hint = said
    wb = Workbook()
    ws = wb.active
    ws.title = "actuals"
    for r in [("period", "unit", "kpi", "value"), *GOOD_AND_BAD[:3]]:
        ws.append(list(r))
    ws.merge_cells("D2:D3")
    buf = io.BytesIO()
    wb.save(buf)
    at = open_page(wh_path, monkeypatch, lang)
    at.file_uploader[0].upload("merged.xlsx", buf.getvalue()).run()
    assert not at.exception, [e.value for e in at.exception]
    first = frame_with(at, problem).iloc[0]
    assert (first[problem], first[what_to_do]) == (message, hint)
    text = "\n".join(m.value for m in at.markdown)
    colon = "：" if lang == "zh" else ": "
    assert f"**{problem}**{colon}" in text and f"**{what_to_do}**{colon}" in text
    assert hint in text


def test_same_file_twice_changes_nothing(wh_path, monkeypatch):
    data = xlsx(GOOD_AND_BAD[:3])
    at = open_page(wh_path, monkeypatch)
    at.file_uploader[0].upload("dec.xlsx", data).run()
    assert not at.checkbox  # no error, nothing to confirm
    at.button(key="up_commit").click().run()
    assert at.success[0].value.startswith("Loaded as batch 2")
    at.file_uploader[0].upload("dec.xlsx", data).run()
    assert {m.label: m.value for m in at.metric}["Unchanged"] == "3"
    assert any("Nothing differs" in i.value for i in at.info)
    at.button(key="up_commit").click().run()
    assert [i.value for i in at.info][0] == "Nothing changed — this file was already loaded."


def test_a_source_uploaded_again_replaces_what_it_gave(wh_path, monkeypatch):
    at = open_page(wh_path, monkeypatch)
    # Two files in one go, under a source name of the analyst's choosing.
    at.text_input(key="up_source").input("East monthly").run()
    at.file_uploader[0].set_value(
        [
            ("rev.xlsx", xlsx([("2025-01", "EAST", "REV", 3_000_000)]), "application/octet-stream"),
            ("csat.xlsx", xlsx([("2025-01", "SALES", "CSAT", 91)]), "application/octet-stream"),
        ]
    ).run()
    assert any("Source: **East monthly**" in m.value for m in at.markdown)
    assert {m.label: m.value for m in at.metric}["New"] == "2"
    at.button(key="up_commit").click().run()
    assert at.success[0].value.startswith("Loaded as batch 2: 2 new")

    # Next time the source has SALES's new customers instead of its satisfaction for January:
    # the satisfaction value it gave before goes.
    at.text_input(key="up_source").input("East monthly").run()
    again = xlsx([("2025-01", "EAST", "REV", 3_100_000), ("2025-01", "SALES", "NEW_CUST", 55)])
    at.file_uploader[0].upload("rev.xlsx", again).run()
    counts = {m.label: m.value for m in at.metric}
    assert (counts["Changed"], counts["Removed"]) == ("1", "1")
    preview = frame_with(at, "Before")
    removed = preview[preview["Change"] == "Removed"].iloc[0]
    assert (removed["KPI"], removed["Before"], removed["After"]) == (
        "CSAT · Customer satisfaction", "91.0 pts", "—"
    )  # fmt: skip
    at.button(key="up_commit").click().run()
    assert actual(wh_path, "SALES", "CSAT", "2025-01") is None
    assert actual(wh_path, "EAST", "REV", "2025-01") == 3_100_000


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("empty.xlsx", b""),
        ("broken.xlsx", b"PK\x03\x04 this is not a workbook"),
        ("renamed.xlsx", b"period,unit,kpi,value\n2024-12,EAST,REV,1\n"),
    ],
)
def test_unreadable_files_get_a_message_not_a_traceback(wh_path, monkeypatch, name, data):
    at = open_page(wh_path, monkeypatch)
    at.file_uploader[0].upload(name, data).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(e.value.startswith(name) for e in at.error), [e.value for e in at.error]
    assert "up_commit" not in {b.key for b in at.button}


def test_history_lists_batches_and_roll_back_restores_values(wh_path, monkeypatch):
    wh = Warehouse(wh_path, linger=0)
    try:
        it = intake.prepare(wh, [("fix.xlsx", xlsx(GOOD_AND_BAD[:1]))], SYSTEM)
        batch = service.commit_actuals(wh, it, SYSTEM).batch_id
    finally:
        wh.close()
    assert actual(wh_path, "EAST", "REV", "2024-12") == 3_500_000

    at = open_page(wh_path, monkeypatch)
    history = frame_with(at, "Batch")
    row = history[history["Batch"] == batch].iloc[0]
    assert (row["Source"], row["Files"], row["Months"], row["Values"], row["Status"]) == (
        "fix.xlsx", "fix.xlsx", "2024-12", 1, "Loaded"
    )  # fmt: skip
    assert row["Changes"] == "0 new, 1 changed, 0 removed"

    at.selectbox(key="up_rb_batch").set_value(batch).run()
    at.text_input(key="up_rb_reason").input("wrong month").run()
    at.button(key="up_rb_ask").click().run()
    # A confirmation first: nothing is undone yet.
    assert any(f"Roll back batch {batch}" in w.value for w in at.warning)
    assert actual(wh_path, "EAST", "REV", "2024-12") == 3_500_000
    at.button(key="up_rb_yes").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.success[0].value == f"Batch {batch} rolled back: 1 value(s) restored, 0 removed."
    assert actual(wh_path, "EAST", "REV", "2024-12") == 2_900_000
    history = frame_with(at, "Batch")
    assert history[history["Batch"] == batch].iloc[0]["Status"] == "Rolled back"


def test_after_a_roll_back_nothing_is_selected_and_the_reason_is_cleared(wh_path, monkeypatch):
    # Batch 1 is the workbook the warehouse was set up from; batch 2 an upload.
    wh = Warehouse(wh_path, linger=0)
    try:
        it = intake.prepare(wh, [("fix.xlsx", xlsx(GOOD_AND_BAD[:1]))], SYSTEM)
        batch = service.commit_actuals(wh, it, SYSTEM).batch_id
    finally:
        wh.close()
    assert batch == 2
    at = open_page(wh_path, monkeypatch)
    assert at.selectbox(key="up_rb_batch").value == 2
    at.text_input(key="up_rb_reason").input("wrong month").run()
    at.button(key="up_rb_ask").click().run()
    at.button(key="up_rb_yes").click().run()
    apptest.ok(at)
    assert at.success[0].value == "Batch 2 rolled back: 1 value(s) restored, 0 removed."
    # Not the next batch, armed with the old reason: nothing, until someone picks one.
    picker = at.selectbox(key="up_rb_batch")
    assert picker.value is None and picker.proto.placeholder == "Pick a batch to roll back"
    assert at.text_input(key="up_rb_reason").value == ""
    ask = at.button(key="up_rb_ask")
    assert ask.disabled and ask.label == "Roll back…"
    assert "up_rb_yes" not in {b.key for b in at.button}
    # Picking one arms it again, and it still asks first.
    picker.set_value(1).run()
    assert not at.button(key="up_rb_ask").disabled
    assert at.button(key="up_rb_ask").label == "Roll back batch 1…"
    at.button(key="up_rb_ask").click().run()
    assert any("Roll back batch 1" in w.value for w in at.warning)
    assert actual(wh_path, "EAST", "REV", "2024-12") == 2_900_000


@pytest.mark.parametrize(
    ("lang", "said"),
    [
        ("en", "roll those back first"),
        ("zh", "之后修改了部分相同的数值；请先撤销这些批次"),
    ],
)
def test_refused_roll_back_is_shown_as_an_error(wh_path, monkeypatch, lang, said):
    wh = Warehouse(wh_path, linger=0)
    try:
        first = service.commit_actuals(
            wh, intake.prepare(wh, [("a.xlsx", xlsx(GOOD_AND_BAD[:1]))], SYSTEM), SYSTEM
        ).batch_id
        changed = [("2024-12", "EAST", "REV", 3_600_000)]
        service.commit_actuals(wh, intake.prepare(wh, [("b.xlsx", xlsx(changed))], SYSTEM), SYSTEM)
    finally:
        wh.close()
    at = open_page(wh_path, monkeypatch, lang)
    at.selectbox(key="up_rb_batch").set_value(first).run()
    at.button(key="up_rb_ask").click().run()
    at.button(key="up_rb_yes").click().run()
    assert not at.exception
    assert any(said in e.value for e in at.error), [e.value for e in at.error]
    assert actual(wh_path, "EAST", "REV", "2024-12") == 3_600_000


ORDERS = [
    ("Order export 2024-12",),
    (),
    ("订单号", "下单日期", "区域", "金额", "状态"),
    ("A1", "2024-12-03", "华东", 1_000_000, "完成"),
    ("A2", "2024-12-15", "华东", 2_000_000, "完成"),
    ("A3", "2024-12-20", "华北", 1_500_000, "完成"),
    ("A4", "2024-12-21", "华北", 9_999_999, "取消"),
]


def orders_xlsx() -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.title = "orders"
    for r in ORDERS:
        ws.append(list(r))
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def orders_profile(name="ERP orders") -> profile.Profile:
    return profile.Profile(
        name=name,
        date_column="下单日期",
        sheet="orders",
        header_row=3,
        unit_column="区域",
        unit_map={"华东": "EAST", "华北": "NORTH"},
        measures=[
            profile.Measure("REV", "sum", "金额", [profile.Filter("状态", "!=", "取消")]),
        ],
    )


def save_orders_profile(wh_path) -> None:
    wh = Warehouse(wh_path, linger=0)
    try:
        profile.save(wh, orders_profile(), SYSTEM)
    finally:
        wh.close()


def test_an_erp_export_loads_through_a_saved_profile(wh_path, monkeypatch):
    save_orders_profile(wh_path)
    at = open_page(wh_path, monkeypatch)
    at.file_uploader[0].upload("orders.xlsx", orders_xlsx()).run()
    # Auto-detection finds nothing KPI-shaped, and says where to go.
    assert any("Mapping profiles" in i.value for i in at.info), [i.value for i in at.info]
    assert at.button(key="up_commit").disabled

    # The editor opens on the file with the saved profile's settings.
    at.selectbox(key="up_pf_start").set_value("ERP orders").run()
    first_rows = next(d.value for d in at.dataframe if "下单日期" in d.value.columns)
    assert list(first_rows.index[:2]) == [4, 5]  # Excel row numbers below the header
    tried = frame_with(at, "Value")
    assert sorted(zip(tried["Unit"], tried["Value"], strict=True)) == [
        ("EAST", 3_000_000), ("NORTH", 1_500_000)
    ]  # fmt: skip
    # Saved under another name, it is chosen for loading at once.
    name_box = next(t for t in at.text_input if t.key.endswith("_name"))
    name_box.input("ERP orders (copy)").run()
    next(b for b in at.button if b.key.endswith("_save")).click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="up_profile_en").value == "ERP orders (copy)"
    assert "ERP orders (copy)" in profile.names(Warehouse(wh_path, linger=0))

    counts = {m.label: m.value for m in at.metric}
    assert counts["Changed"] == "2", counts
    at.button(key="up_commit").click().run()
    assert at.success[0].value.startswith("Loaded as batch")
    assert actual(wh_path, "EAST", "REV", "2024-12") == 3_000_000
    assert actual(wh_path, "NORTH", "REV", "2024-12") == 1_500_000
    history = frame_with(at, "Batch")
    assert history.iloc[0]["Source"] == "ERP orders (copy)"


def test_the_profile_choice_survives_a_language_switch_and_speaks_the_new_one(wh_path, monkeypatch):
    """A selectbox keeps the label it was first drawn with, so the Chinese page showed "None
    (detect the layout)": each language draws its own, starting from the choice made."""
    save_orders_profile(wh_path)
    at = open_page(wh_path, monkeypatch)
    auto = {lang: i18n.t("up_profile_auto", lang) for lang in ("en", "zh")}
    assert at.selectbox(key="up_profile_en").options == [auto["en"], "ERP orders"]
    at.selectbox(key="up_profile_en").set_value("ERP orders").run()
    at.segmented_control(key="lang_choice").set_value("zh").run()
    assert not at.exception, [e.value for e in at.exception]
    chinese = at.selectbox(key="up_profile_zh")
    assert chinese.options == [auto["zh"], "ERP orders"] and chinese.value == "ERP orders"
    chinese.set_value(None).run()
    at.segmented_control(key="lang_choice").set_value("en").run()
    assert at.selectbox(key="up_profile_en").value is None


def test_profile_editor_says_what_is_missing(wh_path, monkeypatch):
    at = open_page(wh_path, monkeypatch)
    at.file_uploader[0].upload("orders.xlsx", orders_xlsx()).run()
    header = next(n for n in at.number_input if n.key.endswith("_header"))
    header.set_value(3).run()
    assert not at.exception
    missing = next(i.value for i in at.info if i.value.startswith("The profile is not complete"))
    assert "give the profile a name" in missing
    assert "add at least one measure" in missing
    assert next(b for b in at.button if b.key.endswith("_save")).disabled


def test_admin_closes_a_month_and_its_upload_is_refused(wh_path, monkeypatch):
    at = open_page(wh_path, monkeypatch)
    at.selectbox(key="up_lock_month").set_value(date(2024, 12, 1)).run()
    at.button(key="up_lock_button").click().run()
    assert at.success[0].value == "2024-12 is closed."
    assert any(m.value == "Closed: 2024-12" for m in at.markdown)
    at.file_uploader[0].upload("late.xlsx", xlsx(GOOD_AND_BAD[:1])).run()
    assert {m.label: m.value for m in at.metric}["Invalid (left out)"] == "1"
    assert at.button(key="up_commit").disabled
    # Reopened, the same file loads.
    at.button(key="up_lock_button").click().run()
    assert any(s.value == "2024-12 is open again." for s in at.success)
    assert {m.label: m.value for m in at.metric}["Invalid (left out)"] == "0"
    at.button(key="up_commit").click().run()
    assert actual(wh_path, "EAST", "REV", "2024-12") == 3_500_000


def test_turns_text_reads_without_colour():
    assert turns_text({"green": 2, "red": 3}, "en") == (
        ":red-badge[■ 3 turn red] :green-badge[● 2 turn green]"
    )
    assert turns_text({"amber": 1}, "zh") == ":orange-badge[▲ 1 个指标值变为黄灯]"


def test_template_month_defaults_to_the_next_one_to_fill_in():
    months, default = month_options(date(2024, 12, 1), date(2026, 11, 21))
    assert default == date(2025, 1, 1) and months[0] == date(2026, 11, 1)
    months, default = month_options(date(2026, 11, 1), date(2026, 11, 21))
    assert default == date(2026, 11, 1)


def test_measures_from_editor_rows():
    rows = pd.DataFrame(
        [
            ["REV", "sum", "金额", "状态", "!=", "取消"],
            [None, None, None, None, None, None],  # a blank row the editor adds
            ["NEW_CUST", "count_distinct", "客户", None, None, None],
        ],
        columns=["kpi", "agg", "column", "filter_column", "filter_op", "filter_value"],
    )
    got = measures_from(rows)
    assert got == [
        profile.Measure("REV", "sum", "金额", [profile.Filter("状态", "!=", "取消")]),
        profile.Measure("NEW_CUST", "count_distinct", "客户", []),
    ]


def test_a_measure_row_without_a_kpi_is_an_error_naming_the_row():
    # The grid never picks a KPI (or an aggregation) the analyst left empty.
    rows = pd.DataFrame(
        [["REV", "sum", "金额"], [None, "sum", "数量"], ["ORDERS", None, "单号"]],
        columns=["kpi", "agg", "column"],
    )
    got = measures_from(rows)
    assert [(m.kpi, m.agg) for m in got] == [("REV", "sum"), ("", "sum"), ("ORDERS", "")]
    p = profile.Profile(name="x", date_column="日期", measures=got, unit="SALES")
    assert [str(q) for q in p.problems()] == [
        "measure 2: choose the KPI",
        "measure 3: aggregation must be one of sum, count, count_distinct, avg",
    ]


@pytest.mark.parametrize(
    ("lang", "said"),
    [
        (
            "en",
            "Loaded as batch 7: 99,513 new, 462 changed, 0 removed, 25 unchanged, 1,204 left out.",
        ),
        ("zh", "已写入，批次号 7：新增 99,513、修改 462、删除 0、未变 25、未导入 1,204。"),
    ],
)
def test_a_large_load_is_told_with_thousands_separated(lang, said):
    # As the metrics above it show them: 99,513, not 99513.
    class Ctx:
        def t(self, key, **values):
            return i18n.t(key, lang, **values)

    counts = {"new": 99513, "changed": 462, "removed": 0, "unchanged": 25, "invalid": 1204}
    assert done_message(Ctx(), None, intake.Committed(7, counts)) == ("success", said)


@pytest.mark.parametrize(
    "lang, said",
    [
        ("en", ("Place", "In the file", "KPI", "Matched by", "Units", "Values", "Status",
                "INV_DAYS · Inventory days", "name", "✖ not on the unit's tree",
                "REV · Revenue", "✔ OK", "bindings.xlsx / North region · header B (Revenue)")),
        ("zh", ("位置", "文件中的写法", "对应指标", "对应方式", "组织", "数值个数", "状态",
                "INV_DAYS · 库存周转天数", "指标名称", "✖ 不在该组织的指标树上",
                "REV · 营业收入", "✔ 正常", "bindings.xlsx / North region · 表头 B (Revenue)")),
    ],
)  # fmt: skip
def test_the_preview_shows_every_binding_before_loading(wh_path, monkeypatch, lang, said):
    # Sheet "North region" is unit NORTH: "Revenue" is its own KPI by name; "Inventory days"
    # is production's KPI, matched by name and not on NORTH's tree.
    data = xlsx(
        [("2024-11", 2_000_000, 30), ("2024-12", 2_100_000, 31)],
        header=("Month", "Revenue", "Inventory days"),
        sheet="North region",
    )
    at = open_page(wh_path, monkeypatch, lang)
    at.file_uploader[0].upload("bindings.xlsx", data).run()
    assert not at.exception, [e.value for e in at.exception]
    place, text, kpi, how, units, values, status, inv, by_name, off, rev, ok, where = said
    frame = frame_with(at, how)
    assert list(frame.columns) == [place, text, kpi, how, units, values, status]
    rows = frame.to_dict("records")
    assert rows[0][kpi] == inv and rows[0][how] == by_name and rows[0][status] == off
    assert rows[0][units] == "NORTH" and rows[0][values] == 2
    assert rows[1][kpi] == rev and rows[1][status] == ok and rows[1][place] == where
    assert at.button(key="up_commit").disabled  # nothing loads until the analyst decides
    if lang == "zh":  # the problem, its place and what to do: all of it from the catalogs
        [problem] = frame_with(at, "如何处理").to_dict("records")
        assert problem["列"] == "表头 C (Inventory days)"
        assert problem["问题"].startswith("列“Inventory days”按名称对应到指标 INV_DAYS")
        assert problem["问题"].endswith("不在组织 NORTH 的指标树上：2 个数值未导入")
        assert problem["如何处理"].startswith("请在表头改写为 NORTH 的某个指标编码（")


def test_the_analyst_answers_a_binding_on_the_page_and_it_is_checked_again(wh_path, monkeypatch):
    # "Inventory days" on the North region's sheet is production's KPI, off NORTH's tree: the
    # page asks, the analyst chooses the KPI (here REV), and the file is checked again with
    # that binding, shown as their choice, before anything is loaded.
    data = xlsx(
        [("2024-11", 31), ("2024-12", 32)], header=("Month", "Inventory days"), sheet="North region"
    )
    at = open_page(wh_path, monkeypatch)
    at.file_uploader[0].upload("answer.xlsx", data).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.button(key="up_commit").disabled
    ask = next(
        s
        for s in at.selectbox
        if s.label == "North region · header B (Inventory days): 'Inventory days'"
    )
    assert ask.value is None and ask.options[0].startswith("INV_DAYS")
    ask.set_value("REV").run()
    assert not at.exception, [e.value for e in at.exception]
    rows = frame_with(at, "Matched by").to_dict("records")
    assert [(r["KPI"], r["Matched by"], r["Status"]) for r in rows] == [
        ("REV · Revenue", "your choice", "✔ OK")
    ]
    preview = frame_with(at, "Before")
    assert set(preview["KPI"]) == {"REV · Revenue"} and set(preview["Unit"]) == {
        "NORTH · North region"
    }
    assert not at.button(key="up_commit").disabled
