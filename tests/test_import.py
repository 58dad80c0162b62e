"""Importing KPI-system workbooks: bad input refused whole, with sheet, row and column named."""

from datetime import date

import pandas as pd
import pytest

from kpi_core import access, service, workbook
from kpi_core.access import Scope
from kpi_core.errors import ValidationError
from kpi_core.messages import Message
from kpi_core.periods import parse_period
from kpi_core.system_import import import_system
from tests.conftest import sales_system
from tests.said import chinese, untranslated
from tests.test_intake_commit import same_rows, yearly_summary


def table_counts(wh):
    tables = ["org_unit", "kpi", "tree_edge", "target", "actual", "batch", "audit"]
    return {t: wh.one(f"SELECT count(*) FROM {t}")[0] for t in tables}


def refused(wh, frames, tmp_path, lang="en"):
    path = tmp_path / "bad.xlsx"
    workbook.write(frames, path, lang=lang)
    before = table_counts(wh)
    with pytest.raises(ValidationError) as info:
        import_system(wh, path, by="test", scope=Scope.all())
    assert table_counts(wh) == before, "a refused import must leave the warehouse unchanged"
    assert_coded(info.value)
    return [str(p) for p in info.value.problems]


def assert_coded(error: ValidationError) -> None:
    """Every problem is a coded message, which a Chinese page shows in Chinese."""
    assert [p.message for p in error.problems if not isinstance(p.message, Message)] == []
    assert untranslated(p.message for p in error.problems) == []


def test_unknown_kpi_in_tree(warehouse, tmp_path):
    frames = sales_system()
    frames["tree"].loc[len(frames["tree"])] = ["SALES", "SALES/REVENU", 0]
    problems = refused(warehouse, frames, tmp_path)
    # Header is row 1; the appended edge is the 13th data row → Excel row 14.
    assert any(
        "Sheet 'tree', row 14, column 'child'" in p and "unknown KPI 'REVENU'" in p and "REV" in p
        for p in problems
    ), problems


def test_weights_not_summing_to_100(warehouse, tmp_path):
    frames = sales_system()
    frames["tree"].loc[frames["tree"]["child"] == "SALES/CSAT", "weight"] = 15
    problems = refused(warehouse, frames, tmp_path)
    assert any("'SALES'" in p and "sum to 95" in p and "column 'weight'" in p for p in problems)


def test_challenge_below_baseline_for_up_kpi(warehouse, tmp_path):
    frames = sales_system()
    t = frames["targets"]
    t.loc[t["kpi"] == "NEW_CUST", ["baseline", "target", "challenge"]] = [50, 60, 40]
    problems = refused(warehouse, frames, tmp_path)
    assert any("Sheet 'targets', row 5, column 'challenge'" in p for p in problems), problems


def test_formula_naming_missing_kpi(warehouse, tmp_path):
    frames = sales_system()
    k = frames["kpis"]
    k.loc[k["code"] == "OEE", "formula"] = "AVAIL * PERF * QUALITY"
    problems = refused(warehouse, frames, tmp_path)
    assert any(
        "Sheet 'kpis', row 14, column 'formula'" in p and "'QUALITY'" in p and "QUAL" in p
        for p in problems
    ), problems


def test_formula_cycle(warehouse, tmp_path):
    frames = sales_system()
    k = frames["kpis"]
    k.loc[k["code"] == "AVAIL", ["aggregation", "formula"]] = ["formula", "OEE / 2"]
    problems = refused(warehouse, frames, tmp_path)
    assert any("cycle" in p and "OEE" in p and "AVAIL" in p for p in problems), problems


def test_cycle_in_tree(warehouse, tmp_path):
    frames = sales_system()
    tree = frames["tree"]
    tree.loc[len(tree)] = ["EAST/REV", "SALES/REV", 100]
    problems = refused(warehouse, frames, tmp_path)
    # SALES/REV sits outside EAST's subtree and closes a loop; both are reported.
    assert any("not in unit 'EAST'" in p for p in problems), problems


def test_duplicated_code(warehouse, tmp_path):
    frames = sales_system()
    k = frames["kpis"]
    frames["kpis"] = pd.concat([k, k[k["code"] == "CSAT"]], ignore_index=True)
    problems = refused(warehouse, frames, tmp_path)
    assert any(
        "Sheet 'kpis', row 16, column 'code'" in p and "duplicated" in p and "row 4" in p
        for p in problems
    ), problems


def test_chinese_sheet_and_column_names(warehouse, tmp_path):
    path = tmp_path / "zh.xlsx"
    workbook.write(sales_system(), path, lang="zh")
    import_system(warehouse, path, by="test", scope=Scope.all())
    card = service.score_unit(warehouse, access.SYSTEM, "SALES", parse_period("2024"))
    assert card["score"] == pytest.approx(
        (40 * 92 + 25 * 112 + 20 * 84 + 15 * (100 + 20 * (1740 / 1800 - 0.95) / 0.03)) / 100
    )


def test_chinese_bad_input_names_chinese_places(warehouse, tmp_path):
    frames = sales_system()
    frames["actuals"]["value"] = frames["actuals"]["value"].astype(object)
    frames["actuals"].loc[0, "value"] = "12.5w"
    problems = refused(warehouse, frames, tmp_path, lang="zh")
    assert any(
        "Sheet '实际', row 2, column '实际值'" in p and "not a number" in p for p in problems
    )


def test_percent_guard_and_unknown_unit(warehouse, tmp_path):
    frames = sales_system()
    frames["actuals"].loc[len(frames["actuals"])] = ["PROD", "AVAIL", "2025-01", 96.0]
    frames["actuals"].loc[len(frames["actuals"])] = ["SALSE", "CSAT", "2025-01", 90]
    problems = refused(warehouse, frames, tmp_path)
    assert any("did you mean 96%" in p for p in problems), problems
    assert any("unknown unit 'SALSE'" in p and "did you mean 'SALES'" in p for p in problems)


def test_every_problem_is_listed_at_once(warehouse, tmp_path):
    frames = sales_system()
    frames["tree"].loc[frames["tree"]["child"] == "SALES/CSAT", "weight"] = 15
    frames["targets"].loc[0, "period"] = "2024-13"
    frames["actuals"].loc[3, "kpi"] = "NOPE"
    problems = refused(warehouse, frames, tmp_path)
    assert len(problems) >= 3


def test_dry_run_writes_nothing(warehouse, tmp_path):
    path = tmp_path / "ok.xlsx"
    workbook.write(sales_system(), path)
    before = table_counts(warehouse)
    result = service.import_workbook(warehouse, path, access.SYSTEM, dry_run=True)
    assert result.dry_run and result.summary["kpis_new"] == 14
    assert result.summary["actuals_new"] == 144
    assert table_counts(warehouse) == before


def test_reimport_changes_only_what_changed_and_keeps_replaced_values(sales_wh, tmp_path):
    frames = sales_system()
    a = frames["actuals"]
    a.loc[(a["kpi"] == "SAFETY") & (a["period"] == "2024-08"), "value"] = 1
    path = tmp_path / "again.xlsx"
    workbook.write(frames, path)
    result = import_system(sales_wh, path, by="analyst", scope=Scope.all())
    assert result.summary == {"actuals_changed": 1, "actuals_unchanged": 143}
    replaced = sales_wh.rows("SELECT old_value, old_batch_id FROM actual_replaced")
    assert replaced == [(0.0, 1)]
    # The yearly summary moved with the actuals, in the same transaction.
    summary, fresh = yearly_summary(sales_wh)
    assert same_rows(summary, fresh) and len(summary) == 12
    # The safety incident is a veto: production's August and its year collapse to 0 / red.
    aug = service.score_unit(sales_wh, access.SYSTEM, "PROD", parse_period("2024-08"))
    assert aug["score"] == 0 and aug["status"] == "red" and aug["vetoed_by"] == ["SAFETY"]
    july = service.score_unit(sales_wh, access.SYSTEM, "PROD", parse_period("2024-07"))
    assert july["score"] > 0
    year = service.score_unit(sales_wh, access.SYSTEM, "PROD", parse_period("2024"))
    assert year["status"] == "red" and year["vetoed_by"] == ["SAFETY"]


def test_target_change_is_a_new_version_and_past_months_keep_theirs(sales_wh, tmp_path):
    frames = sales_system()
    t = frames["targets"]
    t.loc[t["kpi"] == "CSAT", ["baseline", "target", "challenge"]] = [80, 86, 92]
    t["valid_from"] = None
    t.loc[t["kpi"] == "CSAT", "valid_from"] = "2024-07-01"
    path = tmp_path / "targets.xlsx"
    workbook.write({"targets": t}, path)
    before_june = service.score_unit(sales_wh, access.SYSTEM, "SALES", parse_period("2024-06"))
    import_system(sales_wh, path, by="head", scope=Scope.all())
    versions = sales_wh.rows(
        "SELECT version, target, valid_from FROM target t JOIN kpi k ON k.id = t.kpi_id "
        "WHERE k.code = 'CSAT' ORDER BY version"
    )
    assert versions == [(1, 90.0, date(2024, 1, 1)), (2, 86.0, date(2024, 7, 1))]
    june = service.score_unit(sales_wh, access.SYSTEM, "SALES", parse_period("2024-06"))
    july = service.score_unit(sales_wh, access.SYSTEM, "SALES", parse_period("2024-07"))
    assert june == before_june  # a later change leaves June judged as it was
    csat_july = next(k for k in july["kpis"] if k["kpi"] == "CSAT")
    assert csat_july["target"] == 86 and csat_july["score"] == pytest.approx(100 + 20 * 2 / 6)
    audit = sales_wh.rows("SELECT changed_by, entity FROM audit WHERE entity = 'target'")
    assert audit == [("head", "target")]


def test_scoped_user_cannot_import_outside_scope(sales_wh, tmp_path):
    cat_scope = Scope(frozenset({sales_wh.one("SELECT id FROM org_unit WHERE code='PROD'")[0]}))
    frames = {
        "actuals": pd.DataFrame(
            [["SALES", "CSAT", "2025-01", 90]], columns=["unit", "kpi", "period", "value"]
        )
    }
    path = tmp_path / "scope.xlsx"
    workbook.write(frames, path)
    with pytest.raises(ValidationError) as info:
        import_system(sales_wh, path, by="viewer", scope=cat_scope)
    assert "outside your scope" in str(info.value)


def many_problems() -> dict[str, pd.DataFrame]:
    """A KPI-system workbook with one of nearly every problem a row can have."""
    f = sales_system()
    u = f["org_units"]
    u.loc[len(u)] = ["A B", "甲", "A", "CO", "team"]
    u.loc[len(u)] = ["EAST", "华东", "East", "SALES", "team"]
    u.loc[len(u)] = ["WEST", None, None, "SALSE", "squad"]
    k = f["kpis"]
    k["veto"] = k["veto"].astype(object)
    k.loc[len(k)] = [
        "R1",
        "比率",
        "Ratio",
        "%",
        "up",
        "ratio",
        None,
        "NOPE",
        None,
        "customer",
        "maybe",
    ]
    k.loc[len(k)] = [
        "F1",
        None,
        None,
        "",
        "sideways",
        "formula",
        None,
        None,
        None,
        "nowhere",
        False,
    ]
    k.loc[len(k)] = [
        "F2",
        "公式",
        "Formula",
        "",
        "up",
        "formula",
        None,
        None,
        "REV * (",
        None,
        False,
    ]
    k.loc[len(k)] = [
        "F3",
        "公式",
        "Formula",
        "",
        "up",
        "formula",
        None,
        None,
        "REVV * 2",
        None,
        False,
    ]
    t = f["tree"]
    t["weight"] = t["weight"].astype(object)
    t.loc[len(t)] = ["SALES/REV", "PROD/OEE", 10]
    t.loc[len(t)] = ["CO", "SALES", -5]
    t.loc[len(t)] = ["PROD", "PROD/OEE", 50]
    t.loc[len(t)] = ["PRD", "PROD/OEE", 50]
    t.loc[len(t)] = ["", "PROD/QUAL", "x"]
    g = f["targets"]
    g["phasing"] = g["phasing"].astype(object)
    g.loc[len(g)] = ["PROD", "INV_DAYS", "2025", None, None, None, None, 40, 30, -1]
    g.loc[len(g)] = ["PROD", "INV_DAYS", "2026", None, None, None, None, None, None, None]
    g.loc[len(g)] = ["SALES", "REV", "2025", 70, None, 50, "lumpy", None, None, None]
    g.loc[len(g)] = ["PROD", "COMPLAINT", "2025", 0.01, 0.02, 0.005, None, None, None, None]
    g.loc[len(g)] = ["SALES", "REV", "2024", 1, 2, 3, None, None, None, None]
    g.loc[len(g)] = ["SALES", "COLLECT_RATE", "2025", 90, 95, 98, None, None, None, None]
    g.loc[len(g)] = ["SALES", "REV", "2024-13", 1, 2, 3, None, None, None, None]
    a = f["actuals"]
    a["period"] = a["period"].astype(object)
    a["value"] = a["value"].astype(object)
    a.loc[len(a)] = ["PROD", "OEE", "2025-01", 0.5]
    a.loc[len(a)] = ["PROD", "AVAIL", "2025-Q1", 0.5]
    a.loc[len(a)] = ["PROD", "AVAIL", "2025-02", 96]
    a.loc[len(a)] = ["EAST", "REV", "2024-01", 1]
    a.loc[len(a)] = ["SALES", "NOPE", "2024-01", 1]
    a.loc[len(a)] = ["SALES", "CSAT", "2024-03", "lots"]
    a.loc[len(a)] = ["SALES", "CSAT", "2024-04", None]
    f["phasing"] = pd.DataFrame(
        [["flat", *[1] * 12], ["flat", *[1] * 12], ["zero", *[0] * 12]],
        columns=["name", *[f"m{i}" for i in range(1, 13)]],
    )
    return f


# What the command line prints for `many_problems()` (str of the error), byte for byte as before
# the problems became coded messages.
MANY_PROBLEMS = (
    "41 problem(s); nothing was written.\n"
    "Sheet 'phasing', row 3, column 'name': 'flat' is listed twice (first at row 2)\n"
    "Sheet 'phasing', row 4, column 'm1': shares must be zero or more and not all zero\n"
    "Sheet 'org_units', row 7, column 'code': 'A B' — use letters, digits, '_', '-' or '.' only\n"
    "Sheet 'org_units', row 8, column 'code': 'EAST' is a duplicated code (first at row 4)\n"
    "Sheet 'org_units', row 9, column 'name_zh': a unit needs a name (Chinese or English)\n"
    "Sheet 'org_units', row 9, column 'kind': 'squad' is not one of company, department, position, team\n"
    "Sheet 'org_units', row 9, column 'parent': unknown unit 'SALSE' — did you mean 'SALES'?\n"
    "Sheet 'kpis', row 16, column 'veto': 'maybe' — write true/false (是/否)\n"
    "Sheet 'kpis', row 17, column 'name_zh': a KPI needs a name (Chinese or English)\n"
    "Sheet 'kpis', row 17, column 'direction': 'sideways' is not one of down, range, up\n"
    "Sheet 'kpis', row 17, column 'perspective': 'nowhere' is not one of customer, financial, learning, process\n"
    "Sheet 'kpis', row 16, column 'numerator': a ratio KPI needs the codes of its numerator and denominator\n"
    "Sheet 'kpis', row 16, column 'denominator': unknown KPI 'NOPE'\n"
    "Sheet 'kpis', row 17, column 'formula': a formula KPI needs a formula, e.g. AVAIL * PERF * QUAL\n"
    "Sheet 'kpis', row 18, column 'formula': the formula ends too early — an operand is missing\n"
    "Sheet 'kpis', row 19, column 'formula': names a missing KPI 'REVV' — did you mean 'REV'?\n"
    "Sheet 'tree', row 14, column 'child': 'PROD/OEE' is not in unit 'SALES' or below it\n"
    "Sheet 'tree', row 15, column 'weight': -5 — a weight cannot be negative\n"
    "Sheet 'tree', row 16, column 'child': 'PROD/OEE' is listed twice under 'PROD' (row 10)\n"
    "Sheet 'tree', row 17, column 'parent': unknown unit 'PRD' — did you mean 'PROD'?\n"
    "Sheet 'tree', row 18, column 'parent': is empty — fill it in\n"
    "Sheet 'tree', row 18, column 'weight': 'x' is not a number — write a plain number such as 1250000, 12.5万 or 96%\n"
    "Sheet 'targets', row 12, column 'high': high 30 is below low 40\n"
    "Sheet 'targets', row 12, column 'tolerance': tolerance cannot be negative\n"
    "Sheet 'targets', row 13, column 'low': a range KPI needs low and/or high (the green band)\n"
    "Sheet 'targets', row 14, column 'target': is empty — every target row needs a target value\n"
    "Sheet 'targets', row 14, column 'challenge': challenge 50 is below baseline 70 for a KPI where higher is better — the challenge must be at or above the baseline\n"
    "Sheet 'targets', row 14, column 'phasing': unknown phasing 'lumpy' — use 'even' or a profile of the phasing sheet\n"
    "Sheet 'targets', row 15, column 'target': target 2% is above baseline 1% for a KPI where lower is better — the target must be at or below the baseline\n"
    "Sheet 'targets', row 16, column 'period': SALES/REV 2024 is listed twice (row 2)\n"
    "Sheet 'targets', row 17, column 'baseline': 90 in a percent KPI — did you mean 90%? Write 90% or 0.9\n"
    "Sheet 'targets', row 17, column 'target': 95 in a percent KPI — did you mean 95%? Write 95% or 0.95\n"
    "Sheet 'targets', row 17, column 'challenge': 98 in a percent KPI — did you mean 98%? Write 98% or 0.98\n"
    "Sheet 'targets', row 18, column 'period': '2024-13' is not a period — write 2024 (year), 2024-Q1 (quarter) or 2024-03 (month)\n"
    "Sheet 'actuals', row 146, column 'kpi': 'OEE' is computed by its formula — load the KPIs it is made of\n"
    "Sheet 'actuals', row 147, column 'period': '2025-Q1' — actuals are monthly: write 2024-03\n"
    "Sheet 'actuals', row 148, column 'value': 96 in a percent KPI — did you mean 96%? Write 96% or 0.96\n"
    "Sheet 'actuals', row 149, column 'period': EAST/REV 2024-01 is listed twice (row 2)\n"
    "Sheet 'actuals', row 150, column 'kpi': unknown KPI 'NOPE'\n"
    "Sheet 'actuals', row 151, column 'value': 'lots' is not a number — write a plain number such as 1250000, 12.5万 or 96%\n"
    "Sheet 'actuals', row 152, column 'value': is empty — fill in a number\n"
)


def test_every_kind_of_problem_is_coded_and_says_the_same_english(warehouse, tmp_path):
    path = tmp_path / "bad.xlsx"
    workbook.write(many_problems(), path)
    with pytest.raises(ValidationError) as info:
        import_system(warehouse, path, by="test", scope=Scope.all())
    assert str(info.value) + "\n" == MANY_PROBLEMS
    assert_coded(info.value)
    zh = {(p.row, p.column): chinese(p.message) for p in info.value.problems}
    assert zh[(9, "parent")] == "未知组织“SALSE”——是否想写“SALES”？"
    assert zh[(9, "kind")] == "“squad”不是以下之一：company、department、position、team"
    assert zh[(14, "challenge")] == "挑战值 50 低于基准值 70：越高越好的指标，挑战值不能低于基准值"
    assert zh[(15, "target")] == "目标值 2% 高于基准值 1%：越低越好的指标，目标值不能高于基准值"
    assert zh[(151, "value")] == "“lots”不是数字——请填写普通数字，例如 1250000、12.5万 或 96%"
    assert zh[(148, "value")] == "百分比指标填的是 96——是否想写 96%？请写作 96% 或 0.96"


def test_sheet_level_problems_are_coded_and_say_the_same_english(sales_wh):
    prod = sales_wh.one("SELECT id FROM org_unit WHERE code = 'PROD'")[0]
    actual = pd.DataFrame(
        [["SALES", "REV", "2025-01", 1]], columns=["unit", "kpi", "period", "value"]
    )
    cycle = pd.DataFrame(
        [["X", "甲", "X", "", "up", "formula", "Y * 2"], ["Y", "乙", "Y", "", "up", "formula", "X / 2"],
         ["Z", "丙", "Z", "", None, "sum", None]],
        columns=["code", "name_zh", "name_en", "unit", "direction", "aggregation", "formula"],
    )  # fmt: skip
    cases = [
        (workbook.sheet_bytes("notes", pd.DataFrame([[1]], columns=["x"])), Scope.all(),
         "Sheet '(workbook)': no known sheet — name sheets kpis/指标库, org_units/组织, tree/指标树, "
         "targets/目标, actuals/实际",
         "没有可识别的工作表——请将工作表命名为 kpis/指标库、org_units/组织、tree/指标树、targets/目标、"
         "actuals/实际"),
        ({"targets": pd.DataFrame([["SALES", "REV"]], columns=["unit", "kpi"])}, Scope.all(),
         "Sheet 'targets', row 1: column 'period / 期间' is missing — add it to the header row",
         "缺少“period / 期间”列——请在标题行中添加"),
        ({"kpis": sales_system()["kpis"].head(1), "actuals": actual}, Scope(frozenset({prod})),
         "Sheet 'kpis': only an admin may change definitions\n"
         "Sheet 'actuals', row 2, column 'unit': unit 'SALES' is outside your scope",
         "只有管理员可以修改定义"),
        ({"org_units": pd.DataFrame([["X1", "甲", "A", "X2", "team"], ["X2", "乙", "B", "X1", "team"]],
                                    columns=["code", "name_zh", "name_en", "parent", "kind"])},
         Scope.all(),
         "Sheet 'org_units', row 2, column 'parent': 'X1' is its own ancestor — fix the parents\n"
         "Sheet 'org_units', row 3, column 'parent': 'X2' is its own ancestor — fix the parents",
         "“X1”成了自己的上级——请修正上级组织"),
        ({"tree": pd.DataFrame([["SALES", "SALES/REV", 100, "soon"], ["SALES/REV", "SALES", 100, None]],
                               columns=["parent", "child", "weight", "valid_from"])}, Scope.all(),
         "Sheet 'tree', row 2, column 'valid_from': 'soon' is not a date — write 2025-07-01\n"
         "Sheet 'tree', row 2, column 'child': the tree has a cycle: SALES → SALES/REV → SALES — a "
         "node cannot be its own ancestor",
         "“soon”不是日期——请写作 2025-07-01"),
        ({"kpis": cycle}, Scope.all(),
         "Sheet 'kpis', row 4, column 'direction': is empty — use one of down, range, up\n"
         "Sheet 'kpis', row 2, column 'formula': KPIs depend on each other in a cycle: X → Y → X",
         "为空——请使用以下之一：down、range、up"),
    ]  # fmt: skip
    for frames, scope, english, first_zh in cases:
        data = frames if isinstance(frames, bytes) else workbook.to_bytes(frames)
        with pytest.raises(ValidationError) as info:
            import_system(sales_wh, data, by="test", scope=scope)
        assert str(info.value).split("\n", 1)[1] == english
        assert_coded(info.value)
        assert chinese(info.value.problems[0].message) == first_zh


def test_the_command_line_prints_the_same_english_and_json(tmp_path):
    """`import` of a refused KPI-system workbook: the problems on stderr, and `--json`'s list,
    in the English they always had (the messages are coded now)."""
    import json
    import subprocess
    import sys

    path = tmp_path / "bad.xlsx"
    workbook.write(many_problems(), path)

    def run(*more):
        return subprocess.run(
            [sys.executable, "-m", "kpi_core", "--warehouse", str(tmp_path / "w.duckdb"),
             "import", str(path), *more],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    plain, as_json = run(), run("--json")
    assert (plain.returncode, as_json.returncode) == (1, 1)
    assert plain.stderr == MANY_PROBLEMS
    lines = MANY_PROBLEMS.splitlines()[1:]
    got = json.loads(as_json.stdout)
    assert got["ok"] is False and len(got["problems"]) == len(lines) == 41
    for p, line in zip(got["problems"], lines, strict=True):
        where = [f"Sheet '{p['sheet']}'", f"row {p['row']}", f"column '{p['column']}'"]
        assert line == f"{', '.join(where)}: {p['message']}"
    assert as_json.stdout.startswith('{\n  "ok": false,\n  "problems": [\n    {\n      "sheet": ')
