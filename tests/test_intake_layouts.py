"""Sheets laid out the ways departments keep them, read without any configuration.

Each test writes a real workbook (or CSV) and states by hand the exact values prepare must
find: (KPI code, unit code, month, value). Then round trips through commit and rollback.
"""

from __future__ import annotations

import hashlib
import io
from datetime import date, datetime
from pathlib import Path

import openpyxl
import pytest

from kpi_core import access, service
from kpi_core.catalog import load_catalog
from kpi_core.ingest import files, intake, layout
from kpi_core.ingest.names import Names
from kpi_core.warehouse import Warehouse
from tests.test_intake_files import in_chinese

TODAY = date(2026, 11, 21)


def xlsx(sheets: dict[str, list[list[object]]], merge: dict[str, list[str]] | None = None) -> bytes:
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for r in rows:
            ws.append(r)
        for ref in (merge or {}).get(name, []):
            ws.merge_cells(ref)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


Row = tuple[str, str, str, float]  # KPI code, unit code, month, value


def found(path: Path, name: str, data: bytes) -> list[Row]:
    """What prepare finds in the file, with no error or warning about it."""
    wh = Warehouse(path, linger=0)
    try:
        prepared = intake.prepare(wh, [(name, data)], access.SYSTEM, today=TODAY)
        cat = load_catalog(wh)
    finally:
        wh.close()
    in_chinese(prepared)
    said = [str(f) for f in prepared.findings if f.severity != "info"]
    assert said == [], said
    assert prepared.invalid == 0
    return sorted(
        (cat.kpis[r.kpi_id].code, cat.units[r.unit_id].code, f"{r.period:%Y-%m}", r.value)
        for r in prepared.rows.itertuples()
    )


def same(got: list[Row], expected: list[Row]) -> None:
    expected = sorted(expected)
    assert [g[:3] for g in got] == [e[:3] for e in expected]
    assert [g[3] for g in got] == pytest.approx([e[3] for e in expected], rel=1e-12)


# --- long format ------------------------------------------------------------------------------


def test_long_with_english_headers(demo_file):
    data = xlsx(
        {
            "Actuals": [
                ["Period", "Unit", "KPI", "Value"],
                ["2026-09", "SALES_E", "REV", 5_200_000],
                ["2026-09", "SALES_N", "NEW_CUST", 14],
                ["2026-10", "PROD_L1", "AVAIL", 0.91],
            ]
        }
    )
    same(
        found(demo_file, "long.xlsx", data),
        [
            ("REV", "SALES_E", "2026-09", 5_200_000),
            ("NEW_CUST", "SALES_N", "2026-09", 14),
            ("AVAIL", "PROD_L1", "2026-10", 0.91),
        ],
    )


@pytest.mark.parametrize(
    "header",
    [
        ["期间", "部门", "指标", "实际值"],
        ["月份", "单位", "指标名称", "完成值"],
        ["日期", "组织", "指标编码", "数值"],
    ],
)
def test_long_with_chinese_header_aliases(demo_file, header):
    data = xlsx(
        {
            "数据": [
                header,
                ["2026-09", "SALES_E", "REV", 1_000],
                ["2026-10", "SALES_S", "VISITS", 230],
            ]
        }
    )
    same(
        found(demo_file, "zh.xlsx", data),
        [("REV", "SALES_E", "2026-09", 1_000), ("VISITS", "SALES_S", "2026-10", 230)],
    )


def test_columns_in_any_order_with_notes_beside_them(demo_file):
    data = xlsx(
        {
            "S": [
                ["序号", "实际值", "指标", "备注", "部门", "目标值", "期间"],
                [1, 88, "CSAT", "客户回访", "SALES_N", 90, "2026-08"],
                [2, 7, "NEW_CUST", None, "SALES_S", 6, "2026-08"],
            ]
        }
    )
    same(
        found(demo_file, "order.xlsx", data),
        [("CSAT", "SALES_N", "2026-08", 88), ("NEW_CUST", "SALES_S", "2026-08", 7)],
    )


def test_kpis_and_units_by_code_and_by_chinese_or_english_name(demo_file):
    data = xlsx(
        {
            "S": [
                ["期间", "部门", "指标", "实际值"],
                ["2026-01", "SALES_E", "REV", 1],
                ["2026-02", "华东大区", "营业收入", 2],
                ["2026-03", "East China Region", "Revenue", 3],
                ["2026-04", "east china region", "revenue", 4],
                ["2026-05", "sales_e", "rev", 5],
                ["2026-06", "生产部", "在岗人数", 6],
                ["2026-07", "Production Department", "Headcount", 7],
                ["2026-08", "一号线(数控加工)", "合格品率", 0.98],  # half-width brackets
            ]
        }
    )
    same(
        found(demo_file, "names.xlsx", data),
        [
            ("REV", "SALES_E", "2026-01", 1),
            ("REV", "SALES_E", "2026-02", 2),
            ("REV", "SALES_E", "2026-03", 3),
            ("REV", "SALES_E", "2026-04", 4),
            ("REV", "SALES_E", "2026-05", 5),
            ("HEADCOUNT", "PROD", "2026-06", 6),
            ("HEADCOUNT", "PROD", "2026-07", 7),
            ("QUAL", "PROD_L1", "2026-08", 0.98),
        ],
    )


def test_long_csv_with_chinese_headers(demo_file):
    text = '期间,部门,指标,实际值\n2026年9月,华北大区,营业收入,"1,234.5"\n'
    same(
        found(demo_file, "long.csv", text.encode("utf-8")),
        [("REV", "SALES_N", "2026-09", 1234.5)],
    )


# --- wide: KPIs as columns --------------------------------------------------------------------


def test_wide_kpis_as_columns_period_from_the_sheet_name(demo_file):
    data = xlsx(
        {
            "2026-09": [
                ["部门", "营业收入", "新增客户数", "回款率"],
                ["华东大区", "1,250万", 12, "96%"],
                ["华北大区", 8_400_000, 9, 0.93],
                ["合计", "2,090万", 21, None],
            ]
        }
    )
    same(
        found(demo_file, "wide.xlsx", data),
        [
            ("REV", "SALES_E", "2026-09", 12_500_000),
            ("NEW_CUST", "SALES_E", "2026-09", 12),
            ("COLLECT_RATE", "SALES_E", "2026-09", 0.96),
            ("REV", "SALES_N", "2026-09", 8_400_000),
            ("NEW_CUST", "SALES_N", "2026-09", 9),
            ("COLLECT_RATE", "SALES_N", "2026-09", 0.93),
        ],
    )


def test_wide_kpis_as_columns_period_from_a_title_row(demo_file):
    data = xlsx(
        {
            "Sheet1": [
                ["销售部 KPI 月报"],
                ["期间：2026年9月", None, "编制单位：财务部"],
                [],
                ["单位", "REV", "NEW_CUST", "Visits"],
                ["SALES_E", 100, 5, 40],
                ["SALES_S", 300, 7, None],
            ]
        }
    )
    same(
        found(demo_file, "title.xlsx", data),
        [
            ("REV", "SALES_E", "2026-09", 100),
            ("NEW_CUST", "SALES_E", "2026-09", 5),
            ("VISITS", "SALES_E", "2026-09", 40),
            ("REV", "SALES_S", "2026-09", 300),
            ("NEW_CUST", "SALES_S", "2026-09", 7),
        ],
    )


def test_wide_kpis_as_columns_rows_are_months_unit_from_the_sheet_name(demo_file):
    data = xlsx(
        {
            "华南大区": [
                [None, "营业收入", "New customers"],
                ["2026-07", 100, 1],
                [datetime(2026, 8, 1), 200, 2],
            ]
        }
    )
    same(
        found(demo_file, "months.xlsx", data),
        [
            ("REV", "SALES_S", "2026-07", 100),
            ("NEW_CUST", "SALES_S", "2026-07", 1),
            ("REV", "SALES_S", "2026-08", 200),
            ("NEW_CUST", "SALES_S", "2026-08", 2),
        ],
    )


# --- wide: months as columns ------------------------------------------------------------------


def test_wide_months_as_columns_unit_from_a_column(demo_file):
    data = xlsx(
        {
            "S": [
                ["部门", "指标", "2026-07", "2026-08", "2026-09"],
                ["SALES_E", "营业收入", 1, 2, 3],
                ["华北大区", "REV", 4, None, 6],
            ]
        }
    )
    same(
        found(demo_file, "by_month.xlsx", data),
        [
            ("REV", "SALES_E", "2026-07", 1),
            ("REV", "SALES_E", "2026-08", 2),
            ("REV", "SALES_E", "2026-09", 3),
            ("REV", "SALES_N", "2026-07", 4),
            ("REV", "SALES_N", "2026-09", 6),
        ],
    )


def test_wide_months_as_columns_unit_from_the_sheet_name(demo_file):
    data = xlsx(
        {
            "销售部": [
                ["指标", "2026年7月", "2026年8月", "2026年9月"],
                ["在岗人数", 30, 31, 32],
            ]
        }
    )
    same(
        found(demo_file, "dept.xlsx", data),
        [
            ("HEADCOUNT", "SALES", "2026-07", 30),
            ("HEADCOUNT", "SALES", "2026-08", 31),
            ("HEADCOUNT", "SALES", "2026-09", 32),
        ],
    )


def test_wide_months_as_columns_with_real_dates_and_kpi_code_and_name_columns(demo_file):
    data = xlsx(
        {
            "SALES_E": [
                ["指标编码", "指标名称", datetime(2026, 7, 1), datetime(2026, 8, 1)],
                ["REV", "营业收入", 10, 20],
                ["NEW_CUST", "新增客户数", 3, 4],
            ]
        }
    )
    same(
        found(demo_file, "dates.xlsx", data),
        [
            ("REV", "SALES_E", "2026-07", 10),
            ("REV", "SALES_E", "2026-08", 20),
            ("NEW_CUST", "SALES_E", "2026-07", 3),
            ("NEW_CUST", "SALES_E", "2026-08", 4),
        ],
    )


# --- one sheet per month or per department ----------------------------------------------------


def test_one_sheet_per_month(demo_file):
    header = ["部门", "指标", "实际值"]
    data = xlsx(
        {
            "2026-07": [header, ["SALES_E", "REV", 7]],
            "2026年8月": [header, ["SALES_E", "REV", 8]],
            "Sep 2026": [header, ["SALES_E", "REV", 9]],
        }
    )
    same(
        found(demo_file, "monthly.xlsx", data),
        [
            ("REV", "SALES_E", "2026-07", 7),
            ("REV", "SALES_E", "2026-08", 8),
            ("REV", "SALES_E", "2026-09", 9),
        ],
    )


def test_one_sheet_per_department(demo_file):
    header = ["期间", "指标", "实际值"]
    data = xlsx(
        {
            "华东大区": [header, ["2026-09", "REV", 1], ["2026-09", "NEW_CUST", 2]],
            "SALES_N": [header, ["2026-09", "REV", 3]],
            "South China Region": [header, ["2026-09", "REV", 4]],
        }
    )
    same(
        found(demo_file, "depts.xlsx", data),
        [
            ("REV", "SALES_E", "2026-09", 1),
            ("NEW_CUST", "SALES_E", "2026-09", 2),
            ("REV", "SALES_N", "2026-09", 3),
            ("REV", "SALES_S", "2026-09", 4),
        ],
    )


# --- headers that are not simple -------------------------------------------------------------


def test_header_below_title_rows(demo_file):
    data = xlsx(
        {
            "报表": [
                ["华创精密 月度经营指标"],
                ["制表：财务部", None, "日期：2026-10-05"],
                [],
                ["期间", "部门", "指标", "实际值"],
                ["2026-09", "SALES_E", "REV", 11],
                ["2026-09", "SALES_N", "REV", 12],
            ]
        }
    )
    same(
        found(demo_file, "titled.xlsx", data),
        [("REV", "SALES_E", "2026-09", 11), ("REV", "SALES_N", "2026-09", 12)],
    )


def test_header_far_down_a_form_like_sheet(demo_file):
    # A tracker opens with a form (who, when, instructions, a signature block) and its table
    # only starts in row 35.
    form = [["月度KPI跟踪表"], ["填表人", "张三"], ["填报说明：数值填写实际完成，不含税"]]
    form += [[f"第{i}条 说明", None, "是"] for i in range(1, 32)]
    assert len(form) == 34
    data = xlsx(
        {
            "跟踪表": form
            + [
                ["期间", "部门", "指标", "实际值"],
                ["2026-09", "SALES_E", "REV", 11],
                ["2026-09", "SALES_N", "REV", 12.5],
            ]
        }
    )
    same(
        found(demo_file, "form.xlsx", data),
        [("REV", "SALES_E", "2026-09", 11), ("REV", "SALES_N", "2026-09", 12.5)],
    )


def test_months_written_as_decimal_numbers_in_a_header_of_months(demo_file):
    # "2026.07 2026.08 2026.09" over the columns: the whole row reads as months, so they are.
    data = xlsx(
        {
            "SALES_E": [
                ["指标", "2026.07", "2026.08", "2026.09"],
                ["REV", 1931.04, 2079.4, 2010.11],
            ]
        }
    )
    same(
        found(demo_file, "dotted.xlsx", data),
        [
            ("REV", "SALES_E", "2026-07", 1931.04),
            ("REV", "SALES_E", "2026-08", 2079.4),
            ("REV", "SALES_E", "2026-09", 2010.11),
        ],
    )


def test_a_long_csv_whose_values_look_like_months(demo_file):
    # The values 2026.09 and 2079.4 are amounts under a real header, not months.
    csv = "期间,部门,指标,实际值\n2026-09,SALES_E,REV,2026.09\n2026-09,SALES_N,REV,2079.4\n"
    same(
        found(demo_file, "long.csv", csv.encode()),
        [("REV", "SALES_E", "2026-09", 2026.09), ("REV", "SALES_N", "2026-09", 2079.4)],
    )


def test_merged_year_over_month_columns(demo_file):
    # "指标" merged over two header rows, "2026年" merged over "7月 8月 9月".
    data = xlsx(
        {
            "华东大区": [
                ["指标", "2026年", None, None],
                [None, "7月", "8月", "9月"],
                ["营业收入", 1, 2, 3],
                ["新增客户数", 4, 5, 6],
            ]
        },
        {"华东大区": ["A1:A2", "B1:D1"]},
    )
    same(
        found(demo_file, "merged_header.xlsx", data),
        [
            ("REV", "SALES_E", "2026-07", 1),
            ("REV", "SALES_E", "2026-08", 2),
            ("REV", "SALES_E", "2026-09", 3),
            ("NEW_CUST", "SALES_E", "2026-07", 4),
            ("NEW_CUST", "SALES_E", "2026-08", 5),
            ("NEW_CUST", "SALES_E", "2026-09", 6),
        ],
    )


def test_year_merged_above_a_header_row_with_months(demo_file):
    data = xlsx(
        {
            "SALES_N": [
                [None, "2026年", None],
                ["指标", "9月", "10月"],
                ["REV", 10, 11],
            ]
        },
        {"SALES_N": ["B1:C1"]},
    )
    same(
        found(demo_file, "year_above.xlsx", data),
        [("REV", "SALES_N", "2026-09", 10), ("REV", "SALES_N", "2026-10", 11)],
    )


def test_merged_unit_label_over_its_rows(demo_file):
    data = xlsx(
        {
            "2026-09": [
                ["部门", "指标", "实际值"],
                ["华东大区", "营业收入", 100],
                [None, "新增客户数", 5],
                ["华北大区", "营业收入", 200],
            ]
        },
        {"2026-09": ["A2:A3"]},
    )
    same(
        found(demo_file, "merged_label.xlsx", data),
        [
            ("REV", "SALES_E", "2026-09", 100),
            ("NEW_CUST", "SALES_E", "2026-09", 5),
            ("REV", "SALES_N", "2026-09", 200),
        ],
    )


def test_stacked_sub_tables_under_section_titles(demo_file):
    data = xlsx(
        {
            "2026-09": [
                ["华东大区"],
                ["指标", "实际值"],
                ["营业收入", 100],
                ["新增客户数", 5],
                [],
                ["华北大区"],
                ["指标", "实际值"],
                ["营业收入", 200],
                ["合计", 200],
                [],
                ["South China Region"],
                ["指标", "实际值"],
                ["Revenue", 300],
            ]
        }
    )
    same(
        found(demo_file, "stacked.xlsx", data),
        [
            ("REV", "SALES_E", "2026-09", 100),
            ("NEW_CUST", "SALES_E", "2026-09", 5),
            ("REV", "SALES_N", "2026-09", 200),
            ("REV", "SALES_S", "2026-09", 300),
        ],
    )


def test_subtotal_rows_are_skipped(demo_file):
    data = xlsx(
        {
            "S": [
                ["期间", "部门", "指标", "实际值"],
                ["2026-09", "SALES_E", "REV", 1],
                ["2026-09", "SALES_N", "REV", 2],
                ["2026-09", "小计", "REV", 3],
                ["合计", None, None, 3],
                ["Total", None, "REV", 3],
                ["2026-09", "SALES_S", "REV", 4],
                ["2026-09", "总计", "REV", 7],
            ]
        }
    )
    same(
        found(demo_file, "totals.xlsx", data),
        [
            ("REV", "SALES_E", "2026-09", 1),
            ("REV", "SALES_N", "2026-09", 2),
            ("REV", "SALES_S", "2026-09", 4),
        ],
    )


def test_plain_rows_and_everything_between_them_keep_their_places(demo_file):
    """Runs of plain rows (a number in the value column) are read in bulk; whatever breaks a run
    — a value written as text, a blank row, a subtotal, a second table with its columns in
    another order — is read row by row, and every value keeps its sheet row."""
    data = xlsx(
        {
            "S": [
                ["期间", "部门", "指标", "实际值"],
                ["2026-09", "SALES_E", "REV", 1],  # row 2
                ["2026-09", "SALES_N", "REV", 2],
                ["2026-09", "SALES_S", "REV", "12.5万"],  # row 4: text
                ["2026-09", "SALES_E", "NEW_CUST", 4],
                [None, None, None, None],
                ["2026-09", "合计", "REV", 99],  # row 7: a subtotal with a number
                ["2026-09", "SALES_N", "NEW_CUST", 5],  # row 8
                ["实际值", "指标", "期间", "部门"],  # row 9: the next table, reordered
                [6, "REV", "2026-10", "SALES_E"],
                [7, "REV", "2026-10", "SALES_N"],  # row 11
            ]
        }
    )
    wh = Warehouse(demo_file, linger=0)
    try:
        prepared = intake.prepare(wh, [("runs.xlsx", data)], access.SYSTEM, today=TODAY)
        cat = load_catalog(wh)
    finally:
        wh.close()
    assert [f for f in prepared.findings if f.severity != "info"] == []
    got = sorted(
        (r.row, cat.kpis[r.kpi_id].code, cat.units[r.unit_id].code, f"{r.period:%Y-%m}", r.value)
        for r in prepared.rows.itertuples()
    )
    assert got == [
        (2, "REV", "SALES_E", "2026-09", 1),
        (3, "REV", "SALES_N", "2026-09", 2),
        (4, "REV", "SALES_S", "2026-09", 125_000),
        (5, "NEW_CUST", "SALES_E", "2026-09", 4),
        (8, "NEW_CUST", "SALES_N", "2026-09", 5),
        (10, "REV", "SALES_E", "2026-10", 6),
        (11, "REV", "SALES_N", "2026-10", 7),
    ]
    assert set(prepared.rows["at"]) == {"D (实际值)", "A (实际值)"}


def test_each_row_is_checked_a_bounded_number_of_times(demo_file, monkeypatch):
    """Runs of plain rows are checked in blocks that start small: a sheet where runs are short
    or never start (blank rows down to a stray cell far below, a CSV's values as text, plain
    rows between subtotals) is not scanned to its end from every row. Each of these took
    minutes: 200,000 blank rows, or a 12,000-row CSV."""
    rows: list[list[object]] = [["期间", "部门", "指标", "实际值"]]
    rows += [["2026-09", "SALES_E", "REV", i] for i in range(40)]  # rows 2-41
    rows += [[None] * 4 for _ in range(5_000)]
    rows += [["2026-09", "SALES_N", "REV", i] for i in range(40)]  # rows 5042-5081
    rows += [["2026-09", "SALES_S", "REV", str(i)] for i in range(2_000)]  # text, as in a CSV
    for i in range(500):  # a plain row, then a subtotal
        rows += [["2026-08", "SALES_E", "REV", i], ["2026-08", "合计", "REV", i]]
    examined = []
    real = layout._Sink._plain

    def counting(self, block, *a):
        examined.append(len(block))
        return real(self, block, *a)

    monkeypatch.setattr(layout._Sink, "_plain", counting)
    wh = Warehouse(demo_file, linger=0)
    try:
        names = Names(load_catalog(wh))
    finally:
        wh.close()
    got, findings = layout.read_table(files.Table("far.xlsx", "S", rows), names)
    assert [f for f in findings if f.severity == "error"] == []
    assert len(got) == 40 + 40 + 2_000 + 500
    assert got.row[:2] == [2, 3] and got.row[40:42] == [5042, 5043] and got.row[-1] == 8080
    assert sum(examined) <= 3 * len(rows), sum(examined)


# --- how numbers and periods are written -----------------------------------------------------


def test_values_written_the_ways_people_write_them(demo_file):
    data = xlsx(
        {
            "S": [
                ["期间", "部门", "指标", "实际值"],
                ["2024-03", "SALES_E", "REV", "12.5万"],  # 125,000
                ["2024-03", "SALES_N", "REV", "1.2亿"],  # 120,000,000
                ["2024-03", "SALES_S", "REV", "1,234.5"],
                ["2024-03", "SALES_E", "COLLECT_RATE", "85%"],  # 0.85
                ["2024-03", "SALES_E", "NEW_CUST", "１２３"],  # full-width digits: 123
                ["2024-03", "GROUP", "NET_PROFIT", "(123)"],  # -123
                ["2024-03", "SALES_N", "NEW_CUST", " 7 "],
                ["2024-03", "SALES_S", "NEW_CUST", "¥1,000元"],
                ["2024-03", "SALES_E", "NET_PROFIT", "\u22125"],  # − from Word: -5
                ["2024-03", "SALES_N", "NET_PROFIT", "－1,23,456"],  # full-width minus, lakh
            ]
        }
    )
    same(
        found(demo_file, "values.xlsx", data),
        [
            ("REV", "SALES_E", "2024-03", 125_000),
            ("REV", "SALES_N", "2024-03", 120_000_000),
            ("REV", "SALES_S", "2024-03", 1234.5),
            ("COLLECT_RATE", "SALES_E", "2024-03", 0.85),
            ("NEW_CUST", "SALES_E", "2024-03", 123),
            ("NET_PROFIT", "GROUP", "2024-03", -123),
            ("NEW_CUST", "SALES_N", "2024-03", 7),
            ("NEW_CUST", "SALES_S", "2024-03", 1000),
            ("NET_PROFIT", "SALES_E", "2024-03", -5),
            ("NET_PROFIT", "SALES_N", "2024-03", -123_456),
        ],
    )


def test_periods_written_the_ways_people_write_them(demo_file):
    data = xlsx(
        {
            "S": [
                ["期间", "部门", "指标", "实际值"],
                [datetime(2024, 3, 1), "SALES_E", "REV", 1],  # a real Excel date
                [datetime(2024, 3, 15), "SALES_N", "REV", 2],  # any day of the month
                [45366, "SALES_S", "REV", 3],  # Excel serial of 2024-03-15
                ["2024-03", "SALES_E", "NEW_CUST", 4],
                ["2024/3", "SALES_N", "NEW_CUST", 5],
                ["2024年3月", "SALES_S", "NEW_CUST", 6],
                ["Mar 2024", "SALES_E", "VISITS", 7],
                ["202403", "SALES_N", "VISITS", 8],
                [202403, "SALES_S", "VISITS", 9],  # the same as a number cell
                ["2024.03", "SALES_E", "ORDERS", 10],
                ["March 2024", "SALES_N", "ORDERS", 11],
                ["2024-03-31", "SALES_S", "ORDERS", 12],
            ]
        }
    )
    got = found(demo_file, "periods.xlsx", data)
    assert {g[2] for g in got} == {"2024-03"}
    same(
        got,
        [
            ("REV", "SALES_E", "2024-03", 1),
            ("REV", "SALES_N", "2024-03", 2),
            ("REV", "SALES_S", "2024-03", 3),
            ("NEW_CUST", "SALES_E", "2024-03", 4),
            ("NEW_CUST", "SALES_N", "2024-03", 5),
            ("NEW_CUST", "SALES_S", "2024-03", 6),
            ("VISITS", "SALES_E", "2024-03", 7),
            ("VISITS", "SALES_N", "2024-03", 8),
            ("VISITS", "SALES_S", "2024-03", 9),
            ("ORDERS", "SALES_E", "2024-03", 10),
            ("ORDERS", "SALES_N", "2024-03", 11),
            ("ORDERS", "SALES_S", "2024-03", 12),
        ],
    )


# --- round trips ------------------------------------------------------------------------------


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stored(wh: Warehouse, month: str) -> dict[tuple[str, str], tuple[float, int]]:
    """(unit, KPI) → (value, batch) of the sales regions' revenue and new customers."""
    rows = wh.rows(
        "SELECT u.code, k.code, a.value, a.batch_id FROM actual a JOIN kpi k ON k.id = a.kpi_id "
        "JOIN org_unit u ON u.id = a.unit_id WHERE a.period = ?::DATE "
        "AND u.code IN ('SALES_E', 'SALES_N', 'SALES_S') AND k.code IN ('REV', 'NEW_CUST')",
        [f"{month}-01"],
    )
    return {(u, k): (v, b) for u, k, v, b in rows}


def prepare(wh: Warehouse, data: bytes) -> intake.Intake:
    # The same file name each time: the same source, whose earlier values it replaces.
    prepared = intake.prepare(wh, [("sales_2026-10.xlsx", data)], access.SYSTEM, today=TODAY)
    in_chinese(prepared)
    assert prepared.errors == [] and prepared.warnings == []
    return prepared


def october(rows: list[list[object]]) -> bytes:
    return xlsx({"2026-10": [["部门", "指标", "实际值"], *rows]})


FIRST = october(
    [
        ["SALES_E", "REV", 5_100_000],
        ["SALES_N", "REV", 4_200_000],
        ["SALES_S", "REV", 3_300_000],
        ["SALES_E", "NEW_CUST", 21],
    ]
)
# One value corrected (SALES_N's revenue), one left out (SALES_E's new customers). SALES_S is
# still in the file, so its revenue stays; a unit missing from the file altogether is not removed.
CORRECTED = october(
    [
        ["SALES_E", "REV", 5_100_000],
        ["SALES_N", "REV", 4_250_000],
        ["SALES_S", "REV", 3_300_000],
    ]
)


def test_the_same_file_twice_changes_nothing(own_file):
    wh = Warehouse(own_file, linger=0)
    first = prepare(wh, FIRST)
    assert first.counts == {"new": 0, "changed": 4, "unchanged": 0, "removed": 0, "invalid": 0}
    done = service.commit_actuals(wh, first, access.SYSTEM)
    assert done.batch_id is not None
    again = prepare(wh, FIRST)
    assert again.counts == {"new": 0, "changed": 0, "unchanged": 4, "removed": 0, "invalid": 0}
    assert len(again.effects) == 0
    wh.close()
    before = sha256(own_file)
    wh = Warehouse(own_file, linger=0)
    repeat = service.commit_actuals(wh, again, access.SYSTEM)
    wh.close()
    assert repeat.batch_id is None  # nothing to write, and nothing written
    assert sha256(own_file) == before


def test_corrected_file_then_rollbacks_restore_exactly(own_file):
    wh = Warehouse(own_file, linger=0)
    demo = stored(wh, "2026-10")
    assert set(demo) == {
        (u, k) for u in ("SALES_E", "SALES_N", "SALES_S") for k in ("REV", "NEW_CUST")
    }
    assert {b for _, b in demo.values()} == {1}  # all from the demo workbook's batch

    first = service.commit_actuals(wh, prepare(wh, FIRST), access.SYSTEM)
    after_first = stored(wh, "2026-10")
    assert after_first == {
        **demo,
        ("SALES_E", "REV"): (5_100_000.0, first.batch_id),
        ("SALES_N", "REV"): (4_200_000.0, first.batch_id),
        ("SALES_S", "REV"): (3_300_000.0, first.batch_id),
        ("SALES_E", "NEW_CUST"): (21.0, first.batch_id),
    }

    corrected = prepare(wh, CORRECTED)
    assert corrected.counts == {
        "new": 0, "changed": 1, "unchanged": 2, "removed": 1, "invalid": 0
    }  # fmt: skip
    second = service.commit_actuals(wh, corrected, access.SYSTEM)
    assert second.counts["changed"] == 1 and second.counts["removed"] == 1
    after_second = stored(wh, "2026-10")
    expected = {**after_first, ("SALES_N", "REV"): (4_250_000.0, second.batch_id)}
    del expected[("SALES_E", "NEW_CUST")]
    assert after_second == expected

    # The first batch cannot be undone while the second has changed the same values.
    wh.close()
    before = sha256(own_file)
    wh = Warehouse(own_file, linger=0)
    with pytest.raises(
        intake.IntakeError, match=f"{second.batch_id} changed some of the same"
    ) as refused:
        service.rollback_actuals(wh, first.batch_id, access.SYSTEM)
    wh.close()
    in_chinese(refused.value)
    assert sha256(own_file) == before

    wh = Warehouse(own_file, linger=0)
    assert service.rollback_actuals(wh, second.batch_id, access.SYSTEM) == {
        "restored": 2,
        "removed": 0,
    }
    assert stored(wh, "2026-10") == after_first
    assert service.rollback_actuals(wh, first.batch_id, access.SYSTEM) == {
        "restored": 4,
        "removed": 0,
    }
    assert stored(wh, "2026-10") == demo
    statuses = dict(wh.rows("SELECT id, status FROM batch WHERE kind = 'upload'"))
    wh.close()
    assert statuses == {first.batch_id: "rolled_back", second.batch_id: "rolled_back"}
