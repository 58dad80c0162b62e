"""What the core says, in both languages: coded messages pinned with their exact English (the
command line's, unchanged) and their Chinese, and messages made by the core itself that the
intake tests do not meet (profiles, roles, an empty warehouse)."""

from __future__ import annotations

import re
from datetime import date

import pytest

from kpi_core import access, i18n, month_locks, review, service
from kpi_core.access import Scope
from kpi_core.catalog import load_catalog
from kpi_core.errors import KpiError
from kpi_core.ingest import files, intake, places, profile
from kpi_core.ingest.names import either
from kpi_core.messages import Items, Message
from kpi_core.warehouse import Warehouse
from tests.said import chinese as said_zh

CJK = re.compile(r"[\u3400-\u9fff]")


# Refusals of the intake as a whole: coded messages (kpi_core.ingest.intake), rendered from the
# catalogs — the same English as before, the Chinese at least as good.
CODED = [
    (
        Message("in_has_errors", n=2),
        "2 problem(s) found; nothing was written. Fix the file and upload it again, or confirm "
        "that the valid rows alone should be loaded.",
        "发现 2 个问题，未写入任何数据。请修正文件后重新上传，或确认只导入有效的行。",
    ),
    (
        Message("in_closed_many", months=Items(["2026-09", "2026-10"], commas=True)),
        "2026-09, 2026-10 are closed; nothing was written. Ask an admin to reopen the month, or "
        "check the file again.",
        "2026-09、2026-10 已关账，未写入任何数据。请联系管理员重新开账，或重新检查文件。",
    ),
    (
        Message("in_batch_status", batch=7, status=Message("in_status_rolled_back")),
        "Batch 7 is rolled back; nothing to undo.",
        "批次 7 已撤销，没有可撤销的内容。",
    ),
    # profiles (kpi_core.ingest.profile): their problems joined into one message, and a finding
    (
        Message(
            "pf_not_complete",
            problems=Items(
                [
                    Message("pf_no_name"),
                    Message(
                        "pf_measure",
                        i=2,
                        problem=Message("pf_choose_column", agg=Message("pf_w_sum")),
                    ),
                    Message("pf_measure", i=3, problem=Message("fm_err_unexpected", text=")")),
                ]
            ),
        ),
        "The profile is not complete: give the profile a name; measure 2: choose the column to "
        "sum; measure 3: unexpected ')'.",
        "方案还不完整：请为方案命名；第 2 项指标计算：请选择求和所用的列；"
        "第 3 项指标计算：公式中出现了多余的“)”。",
    ),  # fmt: skip
    (
        Message("pf_not_in_header", what=Message("pf_w_unit"), column="Region", row=3),
        "the unit column 'Region' is not in header row 3",
        "第 3 行的标题中没有组织列“Region”",
    ),
]


# What the intake's checks say of the values (kpi_core.ingest.validate, names, places): coded
# messages now — the English byte for byte as the f-strings wrote it, the Chinese as the
# old translation rows said it (or better: a place inside a message is Chinese too).
_NOT_A_NUMBER = Message("vl_not_a_number", value="n/a")
CODED += [
    (Message("vl_not_a_number", value="lots"), "'lots' is not a number", "“lots”不是数字"),
    (
        Message("vl_number_hint"),
        "write a number such as 1250000, 12.5万, 1,234.5 or 96%",
        "请填写数字，例如 1250000、12.5万、1,234.5 或 96%",
    ),
    (
        Message("vl_percent", value="96", kpi="COLLECT_RATE"),
        "96 in percent KPI COLLECT_RATE — did you mean 96%?",
        "百分比指标 COLLECT_RATE 填的是 96——是否想写 96%？",
    ),
    (Message("vl_percent_hint", value="96", fraction="0.96"), "write 96% or 0.96", "请写作 96% 或 0.96"),
    (Message("vl_unknown_kpi", kpi="营业收人"), "unknown KPI '营业收人'", "未知指标“营业收人”"),
    (
        Message(
            "nm_did_you_mean",
            choices=either(["REV (营业收入 / Revenue)", "RD_EXP (研发投入 / R&D spend)"]),
        ),
        "did you mean REV (营业收入 / Revenue) or RD_EXP (研发投入 / R&D spend)?",
        "是否想写 REV (营业收入 / Revenue) 或 RD_EXP (研发投入 / R&D spend)？",
    ),
    (
        Message("vl_outside_scope", unit="PROD"),
        "unit 'PROD' is outside your scope",
        "组织“PROD”超出您的权限范围",
    ),
    (Message("vl_closed", month="2026-09"), "2026-09 is closed", "2026-09 已关账"),
    (Message("vl_closed_hint"), "ask an admin to reopen the month", "请联系管理员重新开账"),
    (Message("vl_future", month="2026-12"), "2026-12 is in the future", "2026-12 是未来的月份"),
    (
        Message("vl_a_quarter", text="2026-Q1"),
        "'2026-Q1' is a quarter — actuals are monthly",
        "“2026-Q1”是季度——实际数据按月填报",
    ),
    (
        Message("vl_below", value="-1.5e+06", kpi="NEW_CUST", limit="0"),
        "-1.5e+06 is below NEW_CUST's allowed minimum 0",
        "-1.5e+06 低于指标 NEW_CUST 允许的最小值 0",
    ),
    (
        Message(
            "vl_conflict", what="SALES_E/REV", month="2026-09",
            there=Message("vl_there_sheet_row", sheet="S", row=2), first="7", value="9",
        ),
        "SALES_E/REV 2026-09 is also given in sheet 'S' row 2: 7 there, 9 here — neither is loaded",
        "SALES_E/REV 2026-09 在工作表“S”第 2 行中也有填写：那里是 7，这里是 9——两者都不导入",
    ),
    (
        Message(
            "vl_repeats", what="SALES_E/REV", month="2026-11",
            there=Message("vl_there_file_row", file="a.csv", row=5),
        ),
        "SALES_E/REV 2026-11 repeats file 'a.csv' row 5 with the same value",
        "SALES_E/REV 2026-11 与文件“a.csv”第 5 行重复，数值相同",
    ),
    # nested: the message counted
    (
        Message("vl_more", n=1234, sub=_NOT_A_NUMBER),
        "… and 1,234 more like these ('n/a' is not a number)",
        "……另有 1,234 处同类问题（“n/a”不是数字）",
    ),
    # the upload as a whole (kpi_core.ingest.intake)
    (
        Message("in_nothing_to_load", what=Message("in_no_actuals")),
        "nothing to load: no actuals were found",
        "没有可导入的数据：未找到实际数据",
    ),
    (
        Message("in_nothing_to_load", what=Message("in_sheets_empty")),
        "nothing to load: the sheets are empty",
        "没有可导入的数据：工作表都是空的",
    ),
    (Message("in_all_blank"), "every value is blank", "所有数值都是空的"),
    # where a value came from, shown in the Column column
    (places.sheet_name("2026-09").said, "sheet name '2026-09'", "工作表名“2026-09”"),
    (places.header("C (营业收入)").said, "header C (营业收入)", "表头 C (营业收入)"),
    (
        places.measure(places.profile("ERP orders"), 2).said,
        "profile 'ERP orders' measure 2",
        "方案“ERP orders”第 2 项指标计算",
    ),
    (places.aggregated("sum", "金额").said, "sum(金额)", "求和（金额）"),
    # an answer to a binding question naming no KPI: the column's place is said in Chinese too
    (
        Message("vl_not_a_code", code="NOPE", at=places.header("B (Margin)").said, sheet="Cars"),
        "'NOPE' is not a KPI code of the library — choose the KPI for column header B (Margin) "
        "of sheet 'Cars' again",
        "“NOPE”不是指标库中的指标编码——请重新为工作表“Cars”的 表头 B (Margin) 选择指标",
    ),
    (
        Message(
            "vl_not_a_code", code="NOPE",
            at=places.measure(places.profile("ERP"), 2).said, sheet="Data",
        ),
        "'NOPE' is not a KPI code of the library — choose the KPI for column profile 'ERP' "
        "measure 2 of sheet 'Data' again",
        "“NOPE”不是指标库中的指标编码——请重新为工作表“Data”的 方案“ERP”第 2 项指标计算 选择指标",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("message", "english", "chinese"), CODED, ids=[m.key for m, _, _ in CODED])
def test_coded_refusals_in_both_languages(message, english, chinese):
    assert (message.render("en"), message.render("zh")) == (english, chinese)


def _file(name: str, key: str, /, **values) -> Message:
    """A FileError's message: the file's name in front, as the file system spells it."""
    return Message("fi_in_file", file=name, said=Message(key, **values))


# A file that cannot be read (kpi_core.ingest.files, xlsx, sheets): every message, with the
# English the core said before it was coded, byte for byte (the command line prints it).
FILES = [
    (
        _file("report.pdf", "fi_extension", ext=".pdf"),
        "report.pdf: '.pdf' files cannot be read — upload .xlsx, .xlsm, .xls, .csv or .parquet.",
        "report.pdf：无法读取“.pdf”文件——请上传 .xlsx、.xlsm、.xls、.csv 或 .parquet 文件。",
    ),
    (
        _file("notes", "fi_no_extension"),
        "notes: 'no extension' files cannot be read — upload .xlsx, .xlsm, .xls, .csv or .parquet.",
        "notes：没有扩展名的文件无法读取——请上传 .xlsx、.xlsm、.xls、.csv 或 .parquet 文件。",
    ),
    (
        _file("12月 实际.xlsx", "fi_empty"),
        "12月 实际.xlsx: the file is empty (0 bytes). Save it again from Excel and retry.",
        "12月 实际.xlsx：文件是空的（0 字节）。请用 Excel 重新保存后再上传。",
    ),
    (
        _file("big.xlsx", "fi_too_big", size="25.3 MB", limit="20.0 MB"),
        "big.xlsx: the file is 25.3 MB; the limit is 20.0 MB. Split it by month or department, "
        "or save it as .csv (smaller than a workbook).",
        "big.xlsx：文件大小为 25.3 MB，超过上限 20.0 MB。请按月份或部门拆分，或另存为 .csv"
        "（比工作簿小）。",
    ),
    (
        _file("big.csv", "fi_too_big_csv", size="50.0 MB", limit="20.0 MB"),
        "big.csv: the file is 50.0 MB; the limit is 20.0 MB. Split it by month or department.",
        "big.csv：文件大小为 50.0 MB，超过上限 20.0 MB。请按月份或部门拆分。",
    ),
    (
        _file("secret.xlsx", "fi_password"),
        "secret.xlsx: the workbook is password-protected. Open it in Excel, remove the password "
        "(File → Info → Protect Workbook) and upload it again.",
        "secret.xlsx：工作簿设置了密码保护。请在 Excel 中打开，取消密码（文件 → 信息 → 保护工作簿）"
        "后重新上传。",
    ),
    (
        _file("secret.xls", "fi_password_short"),
        "secret.xls: the workbook is password-protected. Remove the password and upload it again.",
        "secret.xls：工作簿设置了密码保护。请取消密码后重新上传。",
    ),
    (
        _file("actuals.xlsx", "fi_not_workbook_text"),
        "actuals.xlsx: this is not an Excel workbook, or it is damaged. It looks like a CSV file: "
        "rename it to .csv.",
        "actuals.xlsx：这不是 Excel 工作簿，或者文件已损坏。它看起来是 CSV 文件：请把扩展名改为 "
        ".csv。",
    ),
    (
        _file("report.xlsx", "fi_not_workbook"),
        "report.xlsx: this is not an Excel workbook, or it is damaged. Open it in Excel and save "
        "it as .xlsx.",
        "report.xlsx：这不是 Excel 工作簿，或者文件已损坏。请在 Excel 中打开并另存为 .xlsx。",
    ),
    (
        _file("odd.xls", "fi_no_sheets"),
        "odd.xls: the workbook has no sheets. Open it in Excel, check that it holds the data, and "
        "save it again.",
        "odd.xls：工作簿中没有工作表。请在 Excel 中打开，确认数据在其中，然后重新保存。",
    ),
    (
        _file("x.parquet", "fi_not_parquet"),
        "x.parquet: this is not a Parquet file, or it is damaged. Export it again, or upload the "
        "data as .xlsx or .csv.",
        "x.parquet：这不是 Parquet 文件，或者文件已损坏。请重新导出，或改用 .xlsx 或 .csv 上传数据。",
    ),
    (
        _file("book.csv", "fi_binary"),
        "book.csv: this is a binary file, not CSV text. Check the file's extension.",
        "book.csv：这是二进制文件，不是 CSV 文本。请检查文件的扩展名。",
    ),
    (
        _file("memo.xls", "fi_xls_slow", seconds=120.0, said=Message("fi_xls_damaged")),
        "memo.xls: reading took over 120 s: the workbook is damaged. Open it in Excel and save it "
        "again as .xlsx.",
        "memo.xls：读取超过 120 秒：工作簿已损坏。请在 Excel 中打开并另存为 .xlsx。",
    ),
    (
        _file("memo.xls", "fi_xls_damaged"),
        "memo.xls: the workbook is damaged. Open it in Excel and save it again as .xlsx.",
        "memo.xls：工作簿已损坏。请在 Excel 中打开并另存为 .xlsx。",
    ),
    (
        _file("memo.xls", "fi_unreadable", error="Cfb error: Invalid OLE signature"),
        "memo.xls: the workbook cannot be read (Cfb error: Invalid OLE signature). Save it again "
        "from Excel.",
        "memo.xls：工作簿无法读取（Cfb error: Invalid OLE signature）。请用 Excel 重新保存。",
    ),
    (
        _file("latin1.csv", "fi_encoding"),
        "latin1.csv: the text is neither UTF-8 nor GBK/GB18030. Save it as UTF-8 CSV.",
        "latin1.csv：文本编码既不是 UTF-8，也不是 GBK/GB18030。请另存为 UTF-8 编码的 CSV。",
    ),
    (
        _file("quote.csv", "fi_open_quote", line=3, error="unexpected end of data"),
        'quote.csv: line 3: unexpected end of data. A quote (") opened on that line is probably '
        "never closed: fix the line, or save the file again from Excel as CSV.",
        'quote.csv：第 3 行：unexpected end of data。该行的引号（"）可能没有闭合：请修改该行，'
        "或用 Excel 重新另存为 CSV。",
    ),
    (
        _file("big.csv", "fi_rows", n=3_000_001, limit=2_000_000),
        "big.csv: 3,000,001 rows; the limit is 2,000,000. Split the file.",
        "big.csv：共 3,000,001 行，上限为 2,000,000 行。请拆分文件。",
    ),
    (
        _file("y.parquet", "fi_parquet_unreadable", error="Parquet magic bytes not found"),
        "y.parquet: the Parquet file cannot be read (Parquet magic bytes not found).",
        "y.parquet：Parquet 文件无法读取（Parquet magic bytes not found）。",
    ),
    (
        _file("cut.xlsx", "fi_not_zip"),
        "cut.xlsx: the file is damaged (not a readable .xlsx). Save it again from Excel.",
        "cut.xlsx：文件已损坏（不是可读取的 .xlsx）。请用 Excel 重新保存。",
    ),
    (
        _file("bomb.xlsx", "fi_unpacks", size="4,096.0 MB", packed="5.9 KB"),
        "bomb.xlsx: the workbook unpacks to 4,096.0 MB, far more than its 5.9 KB — refused before "
        "reading. Save only the sheets you need, as values.",
        "bomb.xlsx：工作簿解压后为 4,096.0 MB，远大于文件本身的 5.9 KB，已拒绝读取。"
        "请只保存需要的工作表，并粘贴为数值。",
    ),
    (
        _file("archive.xlsx", "fi_zip_not_workbook"),
        "archive.xlsx: this zip file is not an Excel workbook. Open the data in Excel and save it "
        "as .xlsx (Excel Workbook).",
        "archive.xlsx：这个 zip 文件不是 Excel 工作簿。请在 Excel 中打开数据，另存为 .xlsx"
        "（Excel 工作簿）。",
    ),
    (
        _file(
            "far.xlsx",
            "fi_far_cell",
            sheet="S",
            row=1_048_576,
            column="XFD",
            cells=17_179_869_184,
            limit=30_000_000,
        ),  # fmt: skip
        "far.xlsx: sheet 'S' has a value as far as row 1,048,576, column XFD: 17,179,869,184 "
        "cells, more than the 30,000,000 allowed. Delete what lies far below or to the right of "
        "the data (Ctrl+End in Excel goes to the last cell), save and upload again.",
        "far.xlsx：工作表“S”直到第 1,048,576 行、XFD 列还有内容：共 17,179,869,184 个单元格，"
        "超过允许的 30,000,000 个。请删除数据下方或右侧远处的内容（在 Excel 中按 Ctrl+End "
        "可跳到最后一个单元格），保存后重新上传。",
    ),
    (
        _file("sst.xlsx", "fi_shared_strings", n=4_000_000_000),
        "sst.xlsx: the workbook is damaged: its shared strings claim 4,000,000,000 entries, more "
        "than the part can hold. Open it in Excel and save it again.",
        "sst.xlsx：工作簿已损坏：其共享字符串声称有 4,000,000,000 项，超出了该部分能容纳的数量。"
        "请在 Excel 中打开并重新保存。",
    ),
    (
        _file("scrambled.xlsx", "fi_sheet_unreadable", sheet="S", error="invalid deflate"),
        "scrambled.xlsx: sheet 'S' cannot be read (invalid deflate). The file may be damaged: "
        "open it in Excel and save it again.",
        "scrambled.xlsx：工作表“S”无法读取（invalid deflate）。文件可能已损坏：请在 Excel 中"
        "打开并重新保存。",
    ),
    (
        _file("loop.xlsx", "fi_damaged"),
        "loop.xlsx: the workbook is damaged. Save it again from Excel.",
        "loop.xlsx：工作簿已损坏。请用 Excel 重新保存。",
    ),
    (
        _file("report: v2.xlsx", "fi_sheet_rows", sheet="Q3", n=11, limit=5),
        "report: v2.xlsx: sheet 'Q3' has 11 rows; the limit is 5. Delete the empty rows below the "
        "data or split the sheet.",
        "report: v2.xlsx：工作表“Q3”有 11 行，上限为 5 行。请删除数据下方的空行，或拆分工作表。",
    ),
]


@pytest.mark.parametrize(
    ("message", "english", "chinese"), FILES, ids=[m.values["said"].key for m, _, _ in FILES]
)
def test_file_refusals_in_both_languages(message, english, chinese):
    assert (message.render("en"), message.render("zh")) == (english, chinese)


# How a sheet is laid out (kpi_core.ingest.layout, sheet_header): a finding's message and hint,
# with the English the core said before it was coded, byte for byte.
_NO_HEADER = Message("ly_no_header", rows=12)
LAYOUT = [
    (Message("ly_empty"), "the sheet is empty", "工作表为空"),
    (
        Message("ly_skipped", said=_NO_HEADER),
        "no header row found in rows 1–12 (looked for period/期间, unit/部门, KPI/指标, "
        "value/实际值, KPI names as columns or months as columns); the sheet was skipped",
        "在第 1–12 行中未找到表头行（查找了 period/期间、unit/部门、KPI/指标、value/实际值 等"
        "列名，以及以指标名称或月份作为列标题的表头）；已跳过该工作表",
    ),
    (
        Message("ly_formula_unsaved", ref="C3"),
        "cell C3 holds a formula whose result was never saved",
        "单元格 C3 是公式，但计算结果从未保存",
    ),
    (
        Message("ly_formula_unsaved_hint"),
        "open the file in Excel and save it (Excel stores the results), or paste values",
        "请在 Excel 中打开文件并保存（Excel 会保存计算结果），或粘贴为数值",
    ),
    (
        Message("ly_more_formulas", n=12),
        "and 12 more formula cells",
        "另有 12 个公式单元格也是如此",
    ),
    (
        Message("ly_no_header", rows=1000),
        "no header row found in rows 1–1000 (looked for period/期间, unit/部门, KPI/指标, "
        "value/实际值, KPI names as columns or months as columns)",
        "在第 1–1000 行中未找到表头行（查找了 period/期间、unit/部门、KPI/指标、value/实际值 等"
        "列名，以及以指标名称或月份作为列标题的表头）",
    ),
    (
        Message("ly_no_header_far_hint"),
        "move the table up to the first rows, or load the sheet with a mapping profile",
        "请把表格移到工作表的前几行，或用映射方案导入该工作表",
    ),
    (
        Message("ly_no_header_hint"),
        "add such a header, or load the sheet with a mapping profile",
        "请添加这样的表头，或用映射方案导入该工作表",
    ),
    (
        Message("ly_header_no_values", row=4),
        "the header in row 4 has no values below it",
        "第 4 行的表头下方没有数据",
    ),
    (
        Message("ly_header_no_values_hint"),
        "fill in the rows under the header, or upload the sheet that holds the values",
        "请在表头下方填写数据，或上传包含数据的工作表",
    ),
    (
        Message(
            "ly_header_lacks",
            row=1,
            n=1234,
            columns=Message("ly_either", first="KPI/指标", second="value/实际值"),
        ),  # fmt: skip
        "the header in row 1 has no KPI/指标 or value/实际值 column, so its 1,234 rows give no "
        "values",
        "第 1 行的表头没有 KPI/指标 或 value/实际值 列，因此其下 1,234 行没有可导入的数值",
    ),
    (
        Message("ly_header_lacks", row=2, n=3, columns="value/实际值"),
        "the header in row 2 has no value/实际值 column, so its 3 rows give no values",
        "第 2 行的表头没有 value/实际值 列，因此其下 3 行没有可导入的数值",
    ),
    (
        Message("ly_header_lacks_hint"),
        "name the columns as the template does (期间/period, 部门/unit, 指标/KPI, 实际值/value), "
        "or load the sheet with a mapping profile",
        "请按模板命名各列（期间/period、部门/unit、指标/KPI、实际值/value），或用映射方案导入该工作表",
    ),
    (
        Message("ly_merged_values", cells="C2:C3"),
        "cells C2:C3 are merged over values — no one can tell which row the number belongs to",
        "单元格 C2:C3 跨数值合并——无法判断数值属于哪一行",
    ),
    (
        Message("ly_merged_values_hint"),
        "unmerge the cells and give each row its own value",
        "请取消合并单元格，为每一行分别填写数值",
    ),
    (Message("ly_no_period"), "no period for the values", "这些数值缺少期间"),
    (
        Message("ly_no_period_hint"),
        "add a period/期间 column, or name the sheet by its month (2024-03)",
        "请添加 period/期间 列，或用月份命名工作表（如 2024-03）",
    ),
    (Message("ly_no_unit"), "no unit for the values", "这些数值缺少组织"),
    (
        Message("ly_no_unit_hint"),
        "add a unit/部门 column, or name the sheet after the unit",
        "请添加 unit/部门 列，或用组织名称命名工作表",
    ),
    (Message("ly_no_kpi"), "no KPI for the values", "这些数值缺少指标"),
    (
        Message("ly_no_kpi_hint"),
        "add a KPI/指标 column naming the KPI of each row",
        "请添加 KPI/指标 列，写明每一行的指标",
    ),
]


@pytest.mark.parametrize(
    ("message", "english", "chinese"), LAYOUT, ids=[m.key for m, _, _ in LAYOUT]
)
def test_layout_findings_in_both_languages(message, english, chinese):
    assert (message.render("en"), message.render("zh")) == (english, chinese)


def test_every_file_and_layout_message_is_pinned_here():
    """Each fi_ and ly_ key of the catalogs has its English and Chinese pinned above, so a new
    one without an example, or a changed English, fails here."""
    said: set[str] = set()

    def keys(m: object) -> None:
        if isinstance(m, Message):
            said.add(m.key)
            for v in m.values.values():
                keys(v)

    for m, _, _ in FILES + LAYOUT:
        keys(m)
    known = {k for k in i18n.CATALOGS["en"] if k.startswith(("fi_", "ly_"))}
    assert known - said == set()


# --- messages made by the core --------------------------------------------------------------


def coded_in_chinese(error: KpiError) -> str:
    """A converted module's refusal: a coded message, rendered in Chinese from the catalogs."""
    zh = error.text("zh")
    assert error.coded is not None and zh != str(error) and CJK.search(zh), str(error)
    return zh


def said_in_chinese(said: KpiError | Message | str) -> str:
    """A refusal or problem as a Chinese page shows it, rendered from the catalogs
    (tests/said.py): plain English would come back unchanged and fail here."""
    zh = said_zh(said)
    assert zh != str(said) and CJK.search(zh), str(said)
    return zh


def test_profile_problems_from_the_core():
    p = profile.Profile(
        name=" ",
        date_column="",
        measures=[
            profile.Measure("REV", "median", "金额"),
            profile.Measure("REV", "sum", None),
            profile.Measure("REV", "count_distinct", "=[a] * [b]"),
            profile.Measure("REV", "sum", "=([a] * 2", [profile.Filter("状态", "like", "x")]),
            profile.Measure("REV", "avg", "=[a] % 2"),
            profile.Measure("REV", "sum", "= "),
            profile.Measure("REV", "sum", "=[a] * 3)"),
            profile.Measure("REV", "sum", "=[a] *"),
        ],
        header_row=0,
    )
    problems = p.problems()
    assert len(problems) == 13, problems
    for q in problems:
        assert isinstance(q, Message), q  # coded (kpi_core.ingest.profile)
        said_in_chinese(q)
    with pytest.raises(profile.ProfileError) as refused:
        profile.apply(p, [])
    assert coded_in_chinese(refused.value).startswith("方案“ ”还不完整：请为方案命名；")
    with pytest.raises(profile.ProfileError) as refused:
        profile.save(None, p, access.SYSTEM)
    assert coded_in_chinese(refused.value).startswith("方案还不完整：请为方案命名；")


def test_profile_findings_and_refusals_from_the_core():
    table = files.Table(
        "orders.xlsx",
        "Orders",
        [["日期", "区域", "金额"], ["2026-09-03", "华东", "12x"], ["soon", "华东", 5]],
    )
    p = profile.Profile(
        name="ERP",
        date_column="日期",
        unit_column="区域",
        measures=[profile.Measure("REV", "sum", "金额")],
    )
    _, findings = profile.apply(p, [table])
    said = sorted(said_zh(t) for f in findings for t in (f.message, f.hint))
    assert said == sorted(
        ["“soon”不是日期", "请填写日期，例如 2024-03-15，或设置方案的日期格式", "“12x”不是数字",
         "请修正该单元格，或添加筛选条件排除该行"]
    )  # fmt: skip
    missing = profile.Profile(
        name="ERP", date_column="Date", unit="SALES", measures=[profile.Measure("REV", "count")]
    )
    _, findings = profile.apply(missing, [table])
    (f,) = findings
    assert isinstance(f.message, Message) and isinstance(f.hint, Message)
    assert said_in_chinese(f.message) == "第 1 行的标题中没有日期列“Date”"
    assert said_in_chinese(f.hint) == "标题行中有：日期、区域、金额"
    with pytest.raises(profile.ProfileError) as refused:
        profile.pick_table(profile.Profile("ERP", "日期", [], sheet="Lines"), [table])
    coded_in_chinese(refused.value)
    with pytest.raises(profile.ProfileError) as refused:
        profile.frame(table, 9)
    assert (
        coded_in_chinese(refused.value) == "工作表“Orders”只有 3 行，标题行（第 9 行）超出了范围。"
    )


def test_refusals_by_role_and_of_an_empty_warehouse(tmp_path):
    viewer = access.Actor("viewer", "viewer", Scope.all())
    analyst = access.Actor("analyst", "analyst", Scope.all())
    refusals = []
    for attempt in (
        lambda: intake.prepare(None, [], access.SYSTEM),
        lambda: service.commit_actuals(None, None, viewer),
        lambda: service.rollback_actuals(None, 1, viewer),
        lambda: month_locks.lock_month(None, None, analyst),
        lambda: profile.save(None, None, viewer),
    ):
        with pytest.raises(KpiError) as refused:
            attempt()
        refusals.append(refused.value)
    wh = Warehouse(tmp_path / "empty.duckdb", linger=0)
    try:
        for attempt in (
            lambda: intake.prepare(wh, [("a.csv", b"x")], access.SYSTEM),
            lambda: service.rollback_actuals(wh, 99, access.SYSTEM),
            lambda: profile.load(wh, "ERP"),
        ):
            with pytest.raises(KpiError) as refused:
                attempt()
            refusals.append(refused.value)
    finally:
        wh.close()
    said = [said_in_chinese(r) for r in refusals]
    assert said[0] == "没有上传任何文件。"
    # The role the refusal names is in Chinese too, as the Admin page shows it.
    assert said[1] == "用户“viewer”（查看者）不能导入实际数据——这由数据分析员和管理员完成。"
    assert said[2] == "用户“viewer”（查看者）不能撤销批次——这由数据分析员和管理员完成。"
    assert said[-2:] == ["批次 99 不存在。", "没有名为“ERP”的映射方案。目前还没有保存任何方案。"]


def test_comment_and_action_refusals_from_the_core(sales_wh):
    """Every refusal of review.py reaches a Chinese page in Chinese (coded messages now)."""
    wh = sales_wh
    cat = load_catalog(wh)
    kpi, unit = (
        cat.kpi_by_code["REV"].id,
        next(u.id for u in cat.units.values() if u.code == "SALES"),
    )
    viewer = access.Actor("v", "viewer", Scope.all())
    when = date(2024, 6, 1)
    attempts = [
        lambda: review.add_comment(wh, viewer, kpi, unit, when, "x"),
        lambda: review.add_comment(wh, access.SYSTEM, kpi, unit, when, "  "),
        lambda: review.add_comment(wh, access.SYSTEM, kpi, unit, when, "x" * 5000),
        lambda: review.add_comment(wh, access.SYSTEM, kpi, unit, when, "x", owner="o"),
        lambda: review.add_comment(wh, access.SYSTEM, kpi, unit, when, "x", action="a"),
        lambda: review.add_comment(wh, access.SYSTEM, kpi, unit, when, "x", action="a", owner="o"),
        lambda: review.add_comment(wh, access.SYSTEM, kpi, unit, when, "x", alert_id=999),
        lambda: review.close_action(wh, access.SYSTEM, 999, "done"),
        lambda: review.close_action(wh, access.SYSTEM, 1, " "),
    ]
    said = []
    for attempt in attempts:
        with pytest.raises(KpiError) as refused:
            attempt()
        said.append(coded_in_chinese(refused.value))
    plain = review.add_comment(wh, access.SYSTEM, kpi, unit, when, "no action")
    for attempt in (lambda: review.close_action(wh, access.SYSTEM, plain, "done"),):
        with pytest.raises(KpiError) as refused:
            attempt()
        said.append(coded_in_chinese(refused.value))
    assert said[0].startswith("用户“v”（查看者）可以查看点评")
    assert said[1] == "点评是空的——请先填写内容。"
    assert said[-1] == f"点评 {plain} 没有可关闭的行动。"


def test_kiosk_screen_refusals_from_the_core(demo_wh):
    """Every refusal of kiosk.py reaches the Admin page in Chinese (coded messages now)."""
    from datetime import datetime

    from kpi_core import kiosk

    now = datetime(2026, 11, 3, 9, 0)
    admin = access.SYSTEM
    made = kiosk.create(demo_wh, admin, name="wall", units=["GROUP"], now=now)
    kiosk.revoke(demo_wh, admin, made.screen.id, now)
    viewer = access.Actor("v", "viewer", Scope.all())

    def make(**kw):
        return kiosk.create(demo_wh, admin, now=now, **{"name": "x", "units": ["GROUP"], **kw})

    kiosk.create(demo_wh, admin, name="taken", units=["GROUP"], now=now)
    attempts = [
        lambda: kiosk.list_screens(demo_wh, viewer),
        lambda: make(name=""),
        lambda: make(units=[]),
        lambda: make(units=["NOPE", "NADA"]),
        lambda: make(slides=["weather"]),
        lambda: make(lang="fr"),
        lambda: make(rotate=1),
        lambda: make(refresh=99999),
        lambda: make(name="taken"),
        lambda: kiosk.revoke(demo_wh, admin, 42, now),
        lambda: kiosk.revoke(demo_wh, admin, made.screen.id, now),
    ]
    said = []
    for attempt in attempts:
        with pytest.raises(KpiError) as refused:
            attempt()
        said.append(coded_in_chinese(refused.value))
    assert said[3] == "未知组织 NOPE、NADA——请选择已有的组织。"
    assert said[6] == "每页停留时间必须是 5 到 3600 之间的整数秒，不能是 1。"
    assert said[-1] == "大屏“wall”已被撤销。"


# --- msgs-system: the KPI-system workbook's problems (system_checks, system_import), the
# formula check as typed (library_edits), a grid's save conflict and a push's failure are coded
# messages; their old translation rows are gone. Each renders its old English and its Chinese.
SYSTEM_CODED = [
    (
        Message("sy_did_you_mean", sub=Message("sy_missing_kpi", kpi="QUALITY"), code="QUAL"),
        "names a missing KPI 'QUALITY' — did you mean 'QUAL'?",
        "引用了不存在的指标“QUALITY”——是否想写“QUAL”？",
    ),
    (
        Message("sy_below_min", value="-3", min="0"),
        "-3 is below the KPI's allowed minimum 0",
        "-3 低于该指标允许的最小值 0",
    ),
    (
        Message("sy_above_max", value="120", max="100"),
        "120 is above the KPI's allowed maximum 100",
        "120 高于该指标允许的最大值 100",
    ),
    (
        Message("sy_weights_sum", node="SALES", rows="3, 4, 5", total="95"),
        "weights under 'SALES' (rows 3, 4, 5) sum to 95 — they must sum to 100",
        "“SALES”下的权重（第 3, 4, 5 行）合计为 95——合计必须为 100",
    ),
    (
        Message("sy_formula_unknown", kpis=Items(["NOPE", "ZZZ"], commas=True)),
        "unknown KPI NOPE, ZZZ — use the codes of the KPI library",
        "未知指标 NOPE、ZZZ——请使用指标库中的指标编码",
    ),
    (
        Message("sy_formula_cycle", path="OEE → AVAIL → OEE"),
        "the formula goes round in a circle: OEE → AVAIL → OEE",
        "公式循环引用：OEE → AVAIL → OEE",
    ),
    (
        Message("sy_no_formula", example="AVAIL * PERF * QUAL"),
        "a formula KPI needs a formula, e.g. AVAIL * PERF * QUAL",
        "公式指标需要填写公式，例如 AVAIL * PERF * QUAL",
    ),
]


@pytest.mark.parametrize(
    ("message", "english", "chinese"), SYSTEM_CODED, ids=[m.key for m, _, _ in SYSTEM_CODED]
)
def test_system_messages_in_both_languages(message, english, chinese):
    assert (message.render("en"), message.render("zh")) == (english, chinese)
