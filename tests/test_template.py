"""The monthly actuals template: the rows it asks for, their targets, and a file that comes back in."""

import io
import re
import shutil
from datetime import date

import openpyxl
import pandas as pd
import pytest
from openpyxl import Workbook

from kpi_core import access, scorecard, service, workbook
from kpi_core.access import Scope
from kpi_core.catalog import load_catalog
from kpi_core.demo import ORG_COLUMNS
from kpi_core.errors import NotFoundError, ScopeError
from kpi_core.ingest import template
from kpi_core.periods import Period
from kpi_core.system_import import import_system
from kpi_core.warehouse import Warehouse
from tests.conftest import TODAY

OCT_2026 = date(2026, 10, 1)
HEADERS = {
    "en": ["period", "unit", "kpi", "kpi_name", "uom", "target", "value"],
    "zh": ["期间", "组织", "指标编码", "指标名称", "计量单位", "目标值", "实际值"],
}
SHEETS = {"en": ("actuals", "instructions"), "zh": ("实际", "说明")}


@pytest.fixture(scope="module")
def demo_wh(tmp_path_factory, demo_file):
    """The session's demo (conftest), copied: built once for the whole run."""
    path = tmp_path_factory.mktemp("template") / "demo.duckdb"
    shutil.copy(demo_file, path)
    wh = Warehouse(path, linger=0)
    yield wh
    wh.close()


@pytest.fixture(scope="module")
def demo_cat(demo_wh):
    return load_catalog(demo_wh)


def build(wh, cat, unit, month, lang, tmp_path, scope=None):
    """The template written to disk and read back, as an analyst's Excel would open it."""
    data = template.build_template(wh, cat, scope or Scope.all(), unit, month, lang)
    path = tmp_path / f"template_{unit}_{lang}.xlsx"
    path.write_bytes(data)
    return openpyxl.load_workbook(path), path


def data_rows(ws) -> list[dict]:
    keys = HEADERS["en"]
    return [dict(zip(keys, r, strict=True)) for r in ws.iter_rows(min_row=2, values_only=True)]


def pairs(ws) -> list[tuple[str, str]]:
    return [(r["unit"], r["kpi"]) for r in data_rows(ws)]


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_sheets_and_headers(demo_wh, demo_cat, tmp_path, lang):
    wb, _ = build(demo_wh, demo_cat, "SALES", OCT_2026, lang, tmp_path)
    assert wb.sheetnames == list(SHEETS[lang])
    ws = wb[SHEETS[lang][0]]
    assert [c.value for c in ws[1]] == HEADERS[lang]
    rows = data_rows(ws)
    assert {r["period"] for r in rows} == {"2026-10"}
    assert all(ws.cell(i, 1).data_type == "s" for i in range(2, ws.max_row + 1))
    assert all(r["value"] is None for r in rows)
    names = {r["kpi"]: r["kpi_name"] for r in rows}
    assert names["VISITS"] == ("客户拜访次数" if lang == "zh" else "Customer visits")
    assert {r["kpi"]: r["uom"] for r in rows}["CSAT"] == "分"


def test_rows_of_the_sales_department(demo_wh, demo_cat, tmp_path):
    wb, _ = build(demo_wh, demo_cat, "SALES", OCT_2026, "en", tmp_path)
    # By hand from demo.TREE and demo.REFS: SALES's scorecard is REV, NEW_CUST, CSAT and
    # COLLECT_RATE (= COLLECTED / RECEIVABLE); each region has REV under SALES/REV and VISITS
    # and CONVERSION (= ORDERS / VISITS) under its REV. REV is typed in by the regions, so
    # SALES's own REV (their sum) is not asked for. KPIs follow the library's order.
    assert pairs(wb["actuals"]) == [
        ("SALES", "COLLECTED"),
        ("SALES", "RECEIVABLE"),
        ("SALES", "NEW_CUST"),
        ("SALES", "CSAT"),
        *[(r, k) for r in ("SALES_E", "SALES_N", "SALES_S") for k in ("REV", "VISITS", "ORDERS")],
    ]
    kpis = {k for _, k in pairs(wb["actuals"])}
    assert "COLLECT_RATE" not in kpis and "CONVERSION" not in kpis  # ratios: computed


def test_formula_kpi_asks_for_its_inputs_where_they_are_measured(demo_wh, demo_cat, tmp_path):
    wb, _ = build(demo_wh, demo_cat, "PROD", OCT_2026, "en", tmp_path)
    got = pairs(wb["actuals"])
    assert not any(k == "OEE" for _, k in got)  # AVAIL * PERF * QUAL: computed, never uploaded
    for line in ("PROD_L1", "PROD_L2"):
        for k in ("AVAIL", "PERF", "QUAL", "OUTPUT"):
            assert (line, k) in got
    # The lines carry OEE's inputs and OUTPUT; the department's own are their roll-up.
    assert not any(u == "PROD" and k in {"AVAIL", "PERF", "QUAL", "OUTPUT"} for u, k in got)
    assert ("PROD", "SAFETY") in got and ("PROD", "INV_DAYS") in got
    assert len(got) == len(set(got))


def test_company_template_covers_every_unit_once(demo_wh, demo_cat, tmp_path):
    wb, _ = build(demo_wh, demo_cat, "GROUP", OCT_2026, "en", tmp_path)
    got = pairs(wb["actuals"])
    assert len(got) == len(set(got))
    units = list(dict.fromkeys(u for u, _ in got))
    order = [demo_cat.units[u].code for u in demo_cat.descendants(demo_cat.unit("GROUP").id)]
    assert units == [u for u in order if u in units]  # parents before children, tree order
    # GROUP/GROSS_MARGIN is GROSS_PROFIT / REV: the profit is asked of GROUP, the revenue of the
    # regions, whose sum is GROUP's revenue.
    assert ("GROUP", "GROSS_PROFIT") in got and ("GROUP", "REV") not in got
    assert ("GROUP", "NET_PROFIT") in got and ("SALES_E", "REV") in got


def test_target_is_the_months_phased_share(demo_wh, demo_cat, tmp_path):
    wb, _ = build(demo_wh, demo_cat, "SALES", OCT_2026, "en", tmp_path)
    target = {(r["unit"], r["kpi"]): r["target"] for r in data_rows(wb["actuals"])}

    # By hand from the target row: East's 2026 revenue target and its seasonal profile.
    annual, profile = demo_wh.one(
        """SELECT t.target, t.phasing FROM target t
           JOIN kpi k ON k.id = t.kpi_id JOIN org_unit u ON u.id = t.unit_id
           WHERE u.code = 'SALES_E' AND k.code = 'REV' AND t.period_start = DATE '2026-01-01'"""
    )
    shares = demo_wh.one("SELECT shares FROM phasing_profile WHERE name = ?", [profile])[0]
    assert (annual, profile) == (27_000_000, "sales_season")
    assert target[("SALES_E", "REV")] == pytest.approx(annual * shares[9] / sum(shares))
    assert target[("SALES_E", "REV")] == pytest.approx(2_160_000)  # 8.0% of the year, not 27M
    # Visits by working days: 1,350 a year, October has 17 of 244.
    assert target[("SALES_E", "VISITS")] == pytest.approx(1350 * 17 / 244)
    assert target[("SALES", "NEW_CUST")] == pytest.approx(60 / 12)  # even
    assert target[("SALES", "CSAT")] == 90  # avg: the level as it is
    assert target[("SALES", "COLLECTED")] is None  # no target row: left blank

    # The engine judges the month by the same levels.
    sales = demo_cat.unit("SALES").id
    res = scorecard.evaluate(demo_wh, demo_cat, Scope.all(), [sales], Period("M", OCT_2026))[sales]
    nodes, stack = {}, [node for _, node in res.kpi_children()]
    while stack:  # the KPI nodes under SALES's scorecard, all the way down
        node = stack.pop()
        nodes[(node.unit_id, node.kpi_id)] = node
        stack.extend(c for _, c in node.children)
    for unit, kpi in [("SALES_E", "REV"), ("SALES_N", "VISITS"), ("SALES", "CSAT")]:
        node = nodes[(demo_cat.unit(unit).id, demo_cat.kpi(kpi).id)]
        assert target[(unit, kpi)] == pytest.approx(node.levels.target), (unit, kpi)


def test_percent_cells_validation_and_protection(demo_wh, demo_cat, tmp_path):
    wb, _ = build(demo_wh, demo_cat, "PROD", OCT_2026, "zh", tmp_path)
    ws = wb["实际"]
    rows = data_rows(ws)
    last = len(rows) + 1

    unit_lists = [dv for dv in ws.data_validations.dataValidation if dv.type == "list"]
    assert len(unit_lists) == 1
    assert str(unit_lists[0].sqref) == f"B2:B{last}"
    assert unit_lists[0].formula1 == '"PROD,PROD_L1,PROD_L2"'

    percent = {i for i, r in enumerate(rows, start=2) if r["uom"] == "%"}
    assert percent == {
        i
        for i, r in enumerate(rows, start=2)
        if r["kpi"] in {"AVAIL", "PERF", "QUAL", "ONTIME_DELIV"}
    }
    guarded = set()
    for dv in ws.data_validations.dataValidation:
        if dv.type == "decimal":
            assert "96%" in dv.prompt and "0.96" in dv.prompt and dv.showInputMessage
            guarded |= {int(re.sub(r"\D", "", str(r))) for r in dv.sqref.ranges}
    assert guarded == percent
    for i in range(2, last + 1):
        fmt = ws.cell(i, 7).number_format
        assert (fmt == "0.0%") == (i in percent)
    assert ws.cell(min(percent), 6).number_format == "0.0%"  # the target reads 90.0%, too

    assert ws.protection.sheet
    assert ws.protection.formatColumns is False and ws.protection.sort is False
    assert ws.protection.autoFilter is False and ws.protection.deleteRows is False
    assert all(c.protection.locked for c in ws[1])
    assert not any(c.protection.locked for row in ws.iter_rows(min_row=2) for c in row)
    assert ws.freeze_panes == "A2"
    assert ws.column_dimensions["D"].width >= 10
    assert not ws.merged_cells.ranges
    assert not any(c.data_type == "f" for row in ws.iter_rows() for c in row)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_instructions_in_both_languages(demo_wh, demo_cat, tmp_path, lang):
    wb, _ = build(demo_wh, demo_cat, "SALES", OCT_2026, lang, tmp_path)
    text = "\n".join(
        str(c) for row in wb[SHEETS[lang][1]].iter_rows(values_only=True) for c in row if c
    )
    for zh, en in [
        ("每行填一个数值", "One value per row"),
        ("期间是月份", "Periods are months"),
        ("96% 或 0.96", "96% or 0.96"),
        ("12.5万", "12.5万"),
        ("不要修改标题行", "Do not change the header row"),
        ("上传", "Upload page"),
    ]:
        assert zh in text and en in text
    assert "python -m kpi_core import" in text
    assert "组织：SALES 销售部" in text and "Unit: SALES Sales Department" in text
    assert "月份：2026-10" in text and "Month: 2026-10" in text
    assert f"Generated: {TODAY.isoformat()}" in text
    assert not wb[SHEETS[lang][1]].merged_cells.ranges


def test_scope(demo_wh, demo_cat, tmp_path):
    head = service.actor(demo_wh, "head_sales").scope
    with pytest.raises(ScopeError):
        template.build_template(demo_wh, demo_cat, head, "PROD", OCT_2026)
    with pytest.raises(ScopeError):
        template.build_template(demo_wh, demo_cat, head, "GROUP", OCT_2026)
    with pytest.raises(NotFoundError):
        template.build_template(demo_wh, demo_cat, Scope.all(), "NOPE", OCT_2026)
    wb, _ = build(demo_wh, demo_cat, "SALES_E", OCT_2026, "en", tmp_path, head)
    assert pairs(wb["actuals"]) == [
        ("SALES_E", "REV"),
        ("SALES_E", "VISITS"),
        ("SALES_E", "ORDERS"),
    ]
    # A scope below the unit: the units outside it are left out of its subtree, too.
    east = Scope(frozenset({demo_cat.unit("SALES_E").id}))
    with pytest.raises(ScopeError):
        template.build_template(demo_wh, demo_cat, east, "SALES", OCT_2026)


def test_long_unit_list_moves_to_a_hidden_sheet():
    wb = Workbook()
    ws = wb.active
    codes = [f"REGION_{i:03d}_SOUTH_WEST" for i in range(40)]  # > 255 characters together
    template._unit_validation(wb, ws, codes, "B2:B41")
    lists = wb[template.LISTS_SHEET]
    assert lists.sheet_state == "hidden"
    assert [c.value for c in lists["A"]] == codes
    (dv,) = ws.data_validations.dataValidation
    assert dv.type == "list" and dv.formula1 == "lists!$A$1:$A$40"


def fill(path, values) -> bytes:
    """Type a value into every row, as the analyst does, and save."""
    wb = openpyxl.load_workbook(path)
    ws = wb.worksheets[0]
    for i in range(2, ws.max_row + 1):
        ws.cell(i, 7).value = values(ws.cell(i, 2).value, ws.cell(i, 3).value, ws.cell(i, 5).value)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def typed(unit: str, kpi: str, uom: str) -> float:
    return 0.9 if uom == "%" else float(100 + len(unit) + len(kpi))


def stored(wh, month: date) -> dict[tuple[str, str], float]:
    return {
        (u, k): v
        for u, k, v in wh.rows(
            """SELECT u.code, k.code, a.value FROM actual a
               JOIN org_unit u ON u.id = a.unit_id JOIN kpi k ON k.id = a.kpi_id
               WHERE a.period = ?""",
            [month],
        )
    }


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_filled_template_imports_as_a_workbook(sales_wh, tmp_path, lang):
    """The KPI-system importer reads the template's sheet as its actuals sheet, too."""
    month = date(2025, 1, 1)
    cat = load_catalog(sales_wh)
    _, path = build(sales_wh, cat, "CO", month, lang, tmp_path)
    data = fill(path, typed)
    result = import_system(sales_wh, data, by="analyst", scope=Scope.all())
    # By hand from conftest.sales_system: SALES's own KPIs with COLLECT_RATE's inputs, revenue
    # by region, and PROD's with OEE's inputs (SAFETY's zero weight still asks for its count).
    asked = pairs(openpyxl.load_workbook(path).worksheets[0])
    assert asked == [
        ("SALES", "NEW_CUST"),
        ("SALES", "CSAT"),
        ("SALES", "COLLECTED"),
        ("SALES", "RECEIVABLE"),
        ("EAST", "REV"),
        ("NORTH", "REV"),
        ("PROD", "COMPLAINT"),
        ("PROD", "INV_DAYS"),
        ("PROD", "SAFETY"),
        ("PROD", "AVAIL"),
        ("PROD", "PERF"),
        ("PROD", "QUAL"),
    ]
    expected = {(u, k): typed(u, k, cat.kpi(k).unit) for u, k in asked}
    assert stored(sales_wh, month) == expected
    assert result.summary["actuals_new"] == len(expected)


def filled_and_prepared(wh, tmp_path, lang):
    intake = pytest.importorskip("kpi_core.ingest.intake")
    cat = load_catalog(wh)
    _, path = build(wh, cat, "CO", date(2025, 1, 1), lang, tmp_path)
    prepared = intake.prepare(wh, [(path.name, fill(path, typed))], access.SYSTEM)
    asked = pairs(openpyxl.load_workbook(path).worksheets[0])
    return intake, prepared, {(u, k): typed(u, k, cat.kpi(k).unit) for u, k in asked}


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_filled_template_passes_the_intake(sales_wh, tmp_path, lang):
    intake, prepared, expected = filled_and_prepared(sales_wh, tmp_path, lang)
    data_sheet = template.DATA_SHEET[lang]
    assert [str(f) for f in prepared.findings if f.sheet == data_sheet] == []
    assert prepared.counts == {"new": 12, "changed": 0, "unchanged": 0, "removed": 0, "invalid": 0}
    committed = service.commit_actuals(sales_wh, prepared, access.SYSTEM)
    assert committed.batch_id is not None and committed.counts["new"] == 12
    assert stored(sales_wh, date(2025, 1, 1)) == expected


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_intake_has_nothing_to_say_about_a_filled_template(sales_wh, tmp_path, lang):
    _, prepared, _ = filled_and_prepared(sales_wh, tmp_path, lang)
    # Not even a note: the sheet the template marks as its instructions is skipped silently.
    assert [(f.severity, f.sheet, f.message) for f in prepared.findings] == []


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_an_unfilled_template_says_only_that_values_are_missing(sales_wh, tmp_path, lang):
    """Uploaded before a value is typed: nothing about the instructions sheet's header."""
    intake = pytest.importorskip("kpi_core.ingest.intake")
    cat = load_catalog(sales_wh)
    _, path = build(sales_wh, cat, "CO", date(2025, 1, 1), lang, tmp_path)
    prepared = intake.prepare(wh=sales_wh, uploads=[(path.name, path.read_bytes())],
                              who=access.SYSTEM)  # fmt: skip
    assert prepared.findings, "an empty template is not loadable"
    assert template.INSTRUCTIONS_SHEET[lang] not in {f.sheet for f in prepared.findings}
    assert not any("header" in str(f.message) for f in prepared.findings)


def test_a_sheet_named_like_the_instructions_is_still_read(sales_wh):
    """Only the template's own mark skips a sheet, not its name: a user's sheet called
    'instructions' that holds actuals is read."""
    intake = pytest.importorskip("kpi_core.ingest.intake")
    wb = Workbook()
    ws = wb.active
    ws.title = "instructions"
    ws.append(["period", "unit", "kpi", "value"])
    ws.append(["2024-12", "SALES", "CSAT", 91])
    buf = io.BytesIO()
    wb.save(buf)
    prepared = intake.prepare(sales_wh, [("mine.xlsx", buf.getvalue())], access.SYSTEM)
    assert prepared.counts["changed"] == 1


def test_unit_without_kpis_is_refused(sales_wh, tmp_path):
    path = tmp_path / "lab.xlsx"
    workbook.write(
        {"org_units": pd.DataFrame([["LAB", "实验室", "Lab", "CO", "team"]], columns=ORG_COLUMNS)},
        path,
    )
    import_system(sales_wh, path, by="test", scope=Scope.all())
    cat = load_catalog(sales_wh)
    with pytest.raises(NotFoundError) as refused:
        template.build_template(sales_wh, cat, Scope.all(), "LAB", date(2024, 3, 1))
    assert refused.value.coded.key == "tp_no_kpis"
    assert str(refused.value) == (
        "LAB has no KPIs to enter for 2024-03: none of its units has a KPI in the KPI tree for "
        "that month."
    )
    assert refused.value.text("zh") == (
        "LAB 在 2024-03 没有需要填报的指标：其下各组织在该月的指标树中都没有指标。"
    )
