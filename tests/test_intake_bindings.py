"""Which KPI a column holds: every binding shown with how it was made, none made by a guess.

A library where two departments each have their own sales KPI under another name, and two
KPIs share the name "Margin". Each test writes a real workbook and reads back what prepare
binds, refuses and would load; refusals are checked to write nothing.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from kpi_core import access, service, workbook
from kpi_core.access import Scope
from kpi_core.catalog import load_catalog
from kpi_core.errors import KpiError
from kpi_core.ingest import intake
from kpi_core.system_import import import_system
from kpi_core.warehouse import Warehouse
from tests.test_intake_files import in_chinese, sha256

BOTH_ENGINES = True  # the file and PostgreSQL (tests/conftest.py)

TODAY = date(2026, 11, 20)
KPI_COLUMNS = ["code", "name_zh", "name_en", "unit", "direction", "aggregation", "numerator",
               "denominator", "formula", "perspective", "veto"]  # fmt: skip


def company() -> dict[str, pd.DataFrame]:
    kpis = pd.DataFrame(
        [
            ["RET_SALES", "销售额", "Sales", "元", "up", "sum", None, None, None, "financial", False],
            ["RET_PROFIT", "利润", "Profit", "元", "up", "sum", None, None, None, "financial", False],
            ["RET_MARGIN", "零售毛利率", "Margin", "%", "up", "avg", None, None, None, "financial", False],
            ["CAR_SALES", "汽车销售额", "Car sales", "元", "up", "sum", None, None, None, "financial", False],
            ["CAR_MARGIN", "汽车毛利率", "Margin", "%", "up", "avg", None, None, None, "financial", False],
            ["FIN_COST", "财务费用", "Finance cost", "元", "down", "sum", None, None, None, "financial", False],
            ["FIN_DAYS", "月结天数", "Close days", "天", "down", "avg", None, None, None, "process", False],
        ],
        columns=KPI_COLUMNS,
    )  # fmt: skip
    units = pd.DataFrame(
        [
            ["GRP", "集团", "Group", None, "company"],
            ["RETAIL", "零售部", "Retail", "GRP", "department"],
            ["CAR", "汽车部", "Cars", "GRP", "department"],
            ["FIN", "财务部", "Finance", "GRP", "department"],
        ],
        columns=["code", "name_zh", "name_en", "parent", "kind"],
    )
    tree = pd.DataFrame(
        [
            ["GRP", "RETAIL", 40], ["GRP", "CAR", 40], ["GRP", "FIN", 20],
            ["RETAIL", "RETAIL/RET_SALES", 50], ["RETAIL", "RETAIL/RET_PROFIT", 30],
            ["RETAIL", "RETAIL/RET_MARGIN", 20],
            ["CAR", "CAR/CAR_SALES", 70], ["CAR", "CAR/CAR_MARGIN", 30],
            ["FIN", "FIN/FIN_COST", 60], ["FIN", "FIN/FIN_DAYS", 40],
        ],
        columns=["parent", "child", "weight"],
    )  # fmt: skip
    return {"kpis": kpis, "org_units": units, "tree": tree}


@pytest.fixture(scope="module")
def company_file(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bindings")
    wh = Warehouse(folder / "wh.duckdb", linger=0)
    try:
        workbook.write(company(), folder / "company.xlsx")
        import_system(wh, folder / "company.xlsx", by="test", scope=Scope.all())
    finally:
        wh.close()
    return folder / "wh.duckdb"


def xlsx(sheets: dict[str, list[list[object]]]) -> bytes:
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for r in rows:
            ws.append(r)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def prepared(path: Path, name: str, data: bytes) -> intake.Intake:
    """prepare's result; when it has errors, commit must refuse it and the file stay as it was."""
    before = sha256(path)
    wh = Warehouse(path, linger=0)
    try:
        got = intake.prepare(wh, [(name, data)], access.SYSTEM, today=TODAY)
        in_chinese(got)
        if got.errors:
            with pytest.raises(intake.IntakeError, match="nothing was written"):
                service.commit_actuals(wh, got, access.SYSTEM)
    finally:
        wh.close()
    if got.errors:
        assert sha256(path) == before
    return got


def shown(got: intake.Intake) -> list[tuple]:
    """The bindings as the preview lists them."""
    return [(b.sheet, b.column, b.text, b.kpi, b.how, b.units, b.problem) for b in got.bindings]


def loaded(path: Path, got: intake.Intake) -> list[tuple[str, str, str, float]]:
    wh = Warehouse(path, linger=0)
    try:
        cat = load_catalog(wh)
    finally:
        wh.close()
    return sorted(
        (cat.kpis[r.kpi_id].code, cat.units[r.unit_id].code, f"{r.period:%Y-%m}", r.value)
        for r in got.rows.itertuples()
    )


def errors(got: intake.Intake) -> list[tuple]:
    return [(f.file, f.sheet, f.row, f.column, str(f.message), str(f.hint)) for f in got.errors]


CARS = {
    "Cars": [
        ["Month", "Sales"],
        ["2026-08", 120.5],
        ["2026-09", 130.0],
        ["2026-10", 140.25],
    ]
}


def test_a_column_named_like_another_units_kpi_is_a_problem_not_a_value(company_file):
    # Sheet "Cars" is unit CAR; its column "Sales" is RET_SALES by name, which is on RETAIL's
    # tree, not CAR's (CAR's own sales KPI is "Car sales"). Before, 3 values loaded silently.
    got = prepared(company_file, "cars.xlsx", xlsx(CARS))
    assert shown(got) == [
        ("Cars", "header B (Sales)", "Sales", "RET_SALES", "name", ("CAR",), "not on tree")
    ]
    assert errors(got) == [
        (
            "cars.xlsx", "Cars", 2, "header B (Sales)",
            "column 'Sales' is KPI RET_SALES (销售额 / Sales) by its name, but RET_SALES is not "
            "on unit CAR's tree: 3 value(s) left out",
            "write the code of one of CAR's KPIs in the header instead (CAR_SALES, CAR_MARGIN), "
            "or add RET_SALES to CAR's tree first",
        )
    ]  # fmt: skip
    assert len(got.rows) == 0 and got.invalid == 3


def test_the_units_own_kpi_by_name_or_by_code_loads_and_says_how(company_file):
    data = xlsx(
        {
            "Cars": [
                ["Month", "Car sales", "CAR_MARGIN"],
                ["2026-09", 130.0, 0.21],
                ["2026-10", 140.25, 0.19],
            ]
        }
    )
    got = prepared(company_file, "cars.xlsx", data)
    assert errors(got) == []
    assert shown(got) == [
        ("Cars", "header B (Car sales)", "Car sales", "CAR_SALES", "name", ("CAR",), ""),
        ("Cars", "header C (CAR_MARGIN)", "CAR_MARGIN", "CAR_MARGIN", "code", ("CAR",), ""),
    ]
    assert loaded(company_file, got) == [
        ("CAR_MARGIN", "CAR", "2026-09", 0.21), ("CAR_MARGIN", "CAR", "2026-10", 0.19),
        ("CAR_SALES", "CAR", "2026-09", 130.0), ("CAR_SALES", "CAR", "2026-10", 140.25),
    ]  # fmt: skip


def test_a_finance_export_with_retail_column_names(company_file):
    # " Sales" (a leading space) and "Profit" are retail KPIs by name; the unit is FIN.
    data = xlsx(
        {
            "Export": [
                ["Period", "Unit", " Sales", "Profit"],
                ["2026-09", "FIN", 1000, 200],
                ["2026-10", "FIN", 1100, 210],
            ]
        }
    )
    got = prepared(company_file, "finance.xlsx", data)
    assert shown(got) == [
        ("Export", "header C (Sales)", "Sales", "RET_SALES", "name", ("FIN",), "not on tree"),
        ("Export", "header D (Profit)", "Profit", "RET_PROFIT", "name", ("FIN",), "not on tree"),
    ]
    said = errors(got)
    assert [(f[1], f[2], f[3]) for f in said] == [
        ("Export", 2, "header C (Sales)"), ("Export", 2, "header D (Profit)")
    ]  # fmt: skip
    assert "RET_PROFIT is not on unit FIN's tree: 2 value(s) left out" in said[1][4]
    assert "(FIN_COST, FIN_DAYS)" in said[1][5]
    assert len(got.rows) == 0


def test_a_name_two_kpis_share_is_a_question(company_file):
    # "Margin" is both RET_MARGIN and CAR_MARGIN: the analyst says which, the reader does not
    # pick — not even the one on the sheet's unit's tree.
    data = xlsx({"Cars": [["Month", "Margin", "Car sales"], ["2026-09", 0.2, 130.0]]})
    got = prepared(company_file, "margin.xlsx", data)
    assert shown(got) == [
        ("Cars", "header B (Margin)", "Margin", "", "name", ("CAR",), "ambiguous"),
        ("Cars", "header C (Car sales)", "Car sales", "CAR_SALES", "name", ("CAR",), ""),
    ]
    assert errors(got) == [
        (
            "margin.xlsx", "Cars", 2, "header B (Margin)",
            "'Margin' could be KPI RET_MARGIN (零售毛利率 / Margin) or CAR_MARGIN "
            "(汽车毛利率 / Margin): 1 value(s) left out",
            "write the code of the KPI you mean in place of the name (RET_MARGIN or "
            "CAR_MARGIN), or load the sheet with a mapping profile",
        )
    ]  # fmt: skip
    assert loaded(company_file, got) == [("CAR_SALES", "CAR", "2026-09", 130.0)]


def test_long_rows_name_their_kpi_and_the_same_rules_hold(company_file):
    data = xlsx(
        {
            "Data": [
                ["期间", "部门", "指标", "实际值"],
                ["2026-09", "RETAIL", "Sales", 10],
                ["2026-09", "CAR", "Sales", 11],
                ["2026-09", "CAR", "car sales", 12],
                ["2026-09", "RETAIL", "Margin", 0.3],
            ]
        }
    )
    got = prepared(company_file, "long.xlsx", data)
    assert shown(got) == [
        ("Data", "C (指标)", "Sales", "RET_SALES", "name", ("RETAIL", "CAR"), "not on tree"),
        ("Data", "C (指标)", "car sales", "CAR_SALES", "name", ("CAR",), ""),
        ("Data", "C (指标)", "Margin", "", "name", ("RETAIL",), "ambiguous"),
    ]
    assert [(f[2], f[4].split(":")[0]) for f in errors(got)] == [
        (5, "'Margin' could be KPI RET_MARGIN (零售毛利率 / Margin) or CAR_MARGIN (汽车毛利率 / Margin)"),
        (3, "KPI RET_SALES (销售额 / Sales) is not on unit CAR's tree"),
    ]  # fmt: skip
    assert loaded(company_file, got) == [
        ("CAR_SALES", "CAR", "2026-09", 12.0), ("RET_SALES", "RETAIL", "2026-09", 10.0)
    ]  # fmt: skip


def test_the_command_line_prints_every_binding(company_file, tmp_path):
    path = tmp_path / "cars.xlsx"
    path.write_bytes(xlsx(CARS))
    proc = subprocess.run(
        [sys.executable, "-m", "kpi_core", "--warehouse", str(company_file), "import",
         str(path), "--dry-run"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0
    assert (
        "binding: cars.xlsx, sheet 'Cars', column header B (Sales): 'Sales' → KPI RET_SALES "
        "(销售额 / Sales), matched by name, unit CAR, 3 value(s) — not on the unit's tree"
    ) in proc.stdout.splitlines()
    assert "RET_SALES is not on unit CAR's tree" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "kpi_core", "--warehouse", str(company_file), "import",
         str(path), "--dry-run", "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    report = json.loads(proc.stdout)
    assert report["bindings"] == [
        {
            "file": "cars.xlsx", "sheet": "Cars", "column": "header B (Sales)", "text": "Sales",
            "kpi": "RET_SALES", "how": "name", "units": ["CAR"], "values": 3,
            "problem": "not on tree",
        }
    ]  # fmt: skip


def test_a_code_in_the_header_is_the_analysts_own_choice(company_file):
    # Written by code, RET_SALES is what the analyst asked for, even on the car unit's sheet:
    # loaded, and shown as matched by code.
    data = xlsx({"Cars": [["Month", "RET_SALES"], ["2026-09", 5.0]]})
    got = prepared(company_file, "by-code.xlsx", data)
    assert errors(got) == []
    assert shown(got) == [
        ("Cars", "header B (RET_SALES)", "RET_SALES", "RET_SALES", "code", ("CAR",), "")
    ]
    assert loaded(company_file, got) == [("RET_SALES", "CAR", "2026-09", 5.0)]


def test_a_binding_whose_values_have_no_known_unit_says_so(company_file):
    # An export whose first column is an order id: "Sales" is a KPI column, but no value has
    # a unit, so the binding cannot be checked against any tree and is not shown as fine.
    csv = "Order ID,Region,Sales\n2800,East,1931.04\n2801,East,2079.4\n"
    got = prepared(company_file, "orders.csv", csv.encode())
    assert shown(got) == [
        ("orders.csv", "header C (Sales)", "Sales", "RET_SALES", "name", (), "no unit")
    ]
    assert len(got.rows) == 0


def test_the_analyst_answers_the_question_and_the_answer_is_shown(company_file):
    # The preview asked which "Margin" and whether "Sales" on the car unit's sheet is RET_SALES:
    # the analyst binds each column to a KPI; prepared again, those bindings say so and load.
    data = xlsx({"Cars": [["Month", "Margin", "Sales"], ["2026-09", 0.2, 130.0]]})
    before = sha256(company_file)
    wh = Warehouse(company_file, linger=0)
    try:
        first = intake.prepare(wh, [("m.xlsx", data)], access.SYSTEM, today=TODAY)
        asked = {b.key: b.problem for b in first.bindings}
        assert asked == {
            ("m.xlsx", "Cars", "header B (Margin)", "Margin"): "ambiguous",
            ("m.xlsx", "Cars", "header C (Sales)", "Sales"): "not on tree",
        }
        answers = {
            ("m.xlsx", "Cars", "header B (Margin)", "Margin"): "CAR_MARGIN",
            ("m.xlsx", "Cars", "header C (Sales)", "Sales"): "CAR_SALES",
        }
        got = intake.prepare(wh, [("m.xlsx", data)], access.SYSTEM, today=TODAY, choices=answers)
        in_chinese(got)
    finally:
        wh.close()
    assert sha256(company_file) == before
    assert errors(got) == []
    assert shown(got) == [
        ("Cars", "header B (Margin)", "Margin", "CAR_MARGIN", "analyst", ("CAR",), ""),
        ("Cars", "header C (Sales)", "Sales", "CAR_SALES", "analyst", ("CAR",), ""),
    ]
    assert loaded(company_file, got) == [
        ("CAR_MARGIN", "CAR", "2026-09", 0.2), ("CAR_SALES", "CAR", "2026-09", 130.0)
    ]  # fmt: skip
    # An answer naming no KPI of the library is refused, not ignored. The page answers for a
    # binding it was shown: its key holds the column's place as the intake made it.
    margin = next(b.key for b in first.bindings if b.text == "Margin")
    wh = Warehouse(company_file, linger=0)
    try:
        with pytest.raises(KpiError, match="'NOPE' is not a KPI code") as refused:
            intake.prepare(wh, [("m.xlsx", data)], access.SYSTEM, today=TODAY,
                           choices={margin: "NOPE"})  # fmt: skip
        in_chinese(refused.value)
        assert refused.value.coded.key == "vl_not_a_code"
        assert str(refused.value) == (
            "'NOPE' is not a KPI code of the library — choose the KPI for column header B "
            "(Margin) of sheet 'Cars' again"
        )
        # All of it in Chinese, the column's place too (表头 B, not "header B").
        zh = refused.value.text("zh")
        assert "表头 B (Margin)" in zh and "header" not in zh
    finally:
        wh.close()


def run_cli(warehouse: Path, *args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kpi_core", "--warehouse", str(warehouse), "import",
         *map(str, args)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def stored(path: Path) -> list[tuple[str, str, str, float]]:
    """The actuals in the warehouse, by code."""
    wh = Warehouse(path, linger=0)
    try:
        cat = load_catalog(wh)
        rows = wh.rows("SELECT kpi_id, unit_id, period, value FROM actual ORDER BY ALL")
    finally:
        wh.close()
    return [(cat.kpis[k].code, cat.units[u].code, f"{p:%Y-%m}", v) for k, u, p, v in rows]


def test_the_command_line_answers_the_questions_with_bind(company_file, tmp_path):
    # The preview asks which "Margin" and refuses "Sales" on the car unit's sheet; --bind gives
    # the answers the Upload page's choices give, and the values load as bound.
    warehouse = tmp_path / "wh.duckdb"
    warehouse.write_bytes(company_file.read_bytes())
    path = tmp_path / "m.xlsx"
    path.write_bytes(xlsx({"Cars": [["Month", "Margin", "Sales"], ["2026-09", 0.2, 130.0]]}))
    asked = run_cli(warehouse, path, "--dry-run")
    assert asked.returncode == 1 and "could be KPI RET_MARGIN" in asked.stderr
    before = sha256(warehouse)

    # Wrong answers are refused by name, before anything is read or written.
    for bind, said in [
        ("Margin=NOPE", "--bind 'Margin=NOPE': 'NOPE' is not a KPI code of the library"),
        ("Margn=CAR_MARGIN", "--bind 'Margn=CAR_MARGIN': m.xlsx has no column 'Margn' that "
                             "holds a KPI — its columns are: Margin, Sales (sheet 'Cars')"),
        ("Margin", "--bind 'Margin': write COLUMN=KPI_CODE"),
        ("Trucks!Margin=CAR_MARGIN", "m.xlsx has no column 'Trucks!Margin'"),
    ]:  # fmt: skip
        refused = run_cli(warehouse, path, "--bind", bind)
        assert refused.returncode == 2, (bind, refused.stdout, refused.stderr)
        assert said in refused.stderr, (bind, refused.stderr)
    twice = run_cli(
        warehouse, path, "--bind", "Margin=CAR_MARGIN", "--bind", "Cars!Margin=RET_MARGIN"
    )
    assert twice.returncode == 2
    assert "column 'Margin' of sheet 'Cars' is bound twice (CAR_MARGIN, RET_MARGIN)" in twice.stderr
    assert sha256(warehouse) == before

    # A KPI code in any case; a column by its header, or sheet-qualified.
    done = run_cli(warehouse, path, "--bind", "Margin=car_margin", "--bind", "Cars!Sales=CAR_SALES")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert (
        "binding: m.xlsx, sheet 'Cars', column header B (Margin): 'Margin' → KPI CAR_MARGIN "
        "(汽车毛利率 / Margin), chosen by the analyst, unit CAR, 1 value(s)"
    ) in lines
    assert (
        "m.xlsx: loaded as batch 1 (new 2, changed 0, unchanged 0, removed 0, invalid 0)" in lines
    )
    assert stored(warehouse) == [
        ("CAR_SALES", "CAR", "2026-09", 130.0), ("CAR_MARGIN", "CAR", "2026-09", 0.2)
    ]  # fmt: skip


def test_a_column_on_two_sheets_is_bound_sheet_by_sheet(company_file, tmp_path):
    warehouse = tmp_path / "wh.duckdb"
    warehouse.write_bytes(company_file.read_bytes())
    path = tmp_path / "two.xlsx"
    path.write_bytes(
        xlsx(
            {
                "Cars": [["Month", "Sales"], ["2026-09", 130.0]],
                "Retail": [["Month", "Sales"], ["2026-09", 99.0]],
            }
        )
    )
    # "Sales" on both sheets: an unqualified answer would bind the retail sheet too.
    unsure = run_cli(warehouse, path, "--bind", "Sales=CAR_SALES", "--json")
    assert unsure.returncode == 2
    assert (
        "--bind 'Sales=CAR_SALES': column 'Sales' is on sheets 'Cars', 'Retail' of two.xlsx — "
        "say which, e.g. --bind 'Cars!Sales=CAR_SALES'"
    ) in unsure.stderr
    assert json.loads(unsure.stdout)["exit"] == 2
    done = run_cli(warehouse, path, "--bind", "Cars!Sales=CAR_SALES", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [(b["sheet"], b["kpi"], b["how"], b["problem"]) for b in report["bindings"]] == [
        ("Cars", "CAR_SALES", "analyst", None), ("Retail", "RET_SALES", "name", None)
    ]  # fmt: skip
    assert stored(warehouse) == [
        ("RET_SALES", "RETAIL", "2026-09", 99.0), ("CAR_SALES", "CAR", "2026-09", 130.0)
    ]  # fmt: skip
