"""Importing KPI-system workbooks: bad input refused whole, with sheet, row and column named."""

from datetime import date

import pandas as pd
import pytest

from kpi_core import access, service, workbook
from kpi_core.access import Scope
from kpi_core.errors import ValidationError
from kpi_core.periods import parse_period
from kpi_core.system_import import import_system
from tests.conftest import sales_system


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
    return [str(p) for p in info.value.problems]


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
    summary = sales_wh.rows("SELECT * FROM actual_year ORDER BY ALL")
    fresh = sales_wh.rows(
        """SELECT kpi_id, unit_id, year(period), sum(value), avg(value),
                  arg_max(value, period), count(*), max(period)
           FROM actual GROUP BY ALL ORDER BY ALL"""
    )
    assert summary == fresh and len(summary) == 12
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
