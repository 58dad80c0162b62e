"""Editing the KPI library and scorecards (kpi_core.library_edits) on a real DuckDB copy of the demo:
definitions saved through the KPI-system import, refusals that leave the warehouse as it was, the
formula check as typed, SMART warnings, placing a KPI on a scorecard, and the whole system out to
a workbook and back in without loss."""

from __future__ import annotations

from datetime import date

import pytest

from kpi_core import export, library_edits, service, workbook
from kpi_core.access import SYSTEM, Actor, Scope
from kpi_core.catalog import load_catalog
from kpi_core.errors import ScopeError, ValidationError
from kpi_core.messages import Message
from kpi_core.periods import Period
from kpi_core.warehouse import Warehouse
from tests.conftest import TODAY
from tests.said import untranslated

BOTH_ENGINES = True  # tests/conftest.py: on the DuckDB file and on PostgreSQL
ADMIN = SYSTEM
THIS_MONTH = TODAY.replace(day=1)


def kpi(code: str, **more) -> dict[str, object]:
    fields = {
        "code": code, "name_zh": f"{code} 中文", "name_en": f"{code} English", "unit": "个",
        "direction": "up", "aggregation": "sum",
    }  # fmt: skip
    return {**fields, **more}


def snapshot(wh: Warehouse) -> dict[str, list]:
    """Everything an edit of the library or the tree could change."""
    return {
        "kpi": wh.rows("SELECT * FROM kpi ORDER BY id"),
        "tree": sorted(wh.rows("SELECT * FROM tree_edge"), key=repr),
        "frames": {
            k: s.rows
            for k, s in workbook.read(
                workbook.to_bytes(export.system_frames(wh, Scope.all()))
            ).items()
        },
    }


def problems_of(exc: pytest.ExceptionInfo) -> list[tuple[str | None, str]]:
    """(column, English) of each problem; each is a coded message that a Chinese page shows in
    Chinese (tests/said.py renders it from both catalogs)."""
    for p in exc.value.problems:
        assert isinstance(p.message, Message), p.message
    assert untranslated(p.message for p in exc.value.problems) == []
    return [(p.column, str(p.message)) for p in exc.value.problems]


def coded(said: Message | None) -> str:
    """A formula problem as typed: coded, said in Chinese too; its English."""
    assert isinstance(said, Message), said
    assert untranslated([said]) == []
    return str(said)


def test_ratio_and_formula_kpis_are_created(demo_wh):
    library_edits.save_kpi(demo_wh, kpi("ONTIME"), ADMIN)
    library_edits.save_kpi(demo_wh, kpi("SHIPPED"), ADMIN)
    result = library_edits.save_kpi(
        demo_wh,
        kpi("ONTIME_RATE", unit="%", aggregation="ratio", numerator="ONTIME",
            denominator="SHIPPED"),
        ADMIN,
    )  # fmt: skip
    assert result.summary == {"kpis_new": 1}
    # Aliases as a workbook would have them: 越高越好, 公式.
    library_edits.save_kpi(
        demo_wh,
        kpi("AOV", unit="元", direction="越高越好", aggregation="公式", formula="REV / ORDERS"),
        ADMIN,
    )
    cat = load_catalog(demo_wh)
    rate, aov = cat.kpi("ONTIME_RATE"), cat.kpi("AOV")
    assert (rate.aggregation, rate.numerator, rate.denominator) == ("ratio", "ONTIME", "SHIPPED")
    assert rate.dependencies() == {"ONTIME", "SHIPPED"}
    assert (aov.direction, aov.aggregation, aov.formula) == ("up", "formula", "REV / ORDERS")
    assert aov.dependencies() == {"REV", "ORDERS"}
    assert library_edits.fields_of(aov)["formula"] == "REV / ORDERS"
    # Edited: the same code again changes it, and a dry run changes nothing.
    before = snapshot(demo_wh)
    dry = library_edits.save_kpi(demo_wh, {**library_edits.fields_of(aov), "owner": "王磊"}, ADMIN,
                               dry_run=True)  # fmt: skip
    assert dry.summary == {"kpis_changed": 1} and snapshot(demo_wh) == before
    library_edits.save_kpi(demo_wh, {**library_edits.fields_of(aov), "owner": "王磊"}, ADMIN)
    assert load_catalog(demo_wh).kpi("AOV").owner == "王磊"


@pytest.mark.parametrize(
    "fields, expected",
    [
        (
            kpi("ONTIME_RATE", aggregation="ratio", numerator="NOPE", denominator="ORDERS"),
            [("numerator", "unknown KPI 'NOPE'")],
        ),
        (
            kpi("ONTIME_RATE", aggregation="ratio", numerator="ORDERS"),
            [("denominator", "a ratio KPI needs the codes of its numerator and denominator")],
        ),
        (
            kpi("AOV", aggregation="formula", formula="REV / ORDRES"),
            [("formula", "names a missing KPI 'ORDRES' — did you mean 'ORDERS'?")],
        ),
        (
            kpi("AOV", aggregation="formula", formula="REV / (ORDERS"),
            [("formula", "a '(' is not closed")],
        ),
        (
            kpi("AOV", direction="sideways"),
            [("direction", "'sideways' is not one of down, range, up")],
        ),
        (kpi("A B"), [("code", "'A B' — use letters, digits, '_', '-' or '.' only")]),
    ],
)
def test_refused_definitions_write_nothing(demo_wh, fields, expected):
    before = snapshot(demo_wh)
    with pytest.raises(ValidationError) as exc:
        library_edits.save_kpi(demo_wh, fields, ADMIN)
    assert problems_of(exc) == expected
    assert all(p.sheet == "kpis" and p.row == 2 for p in exc.value.problems)
    assert snapshot(demo_wh) == before


def test_a_cycle_through_formulas_is_refused(demo_wh):
    library_edits.save_kpi(demo_wh, kpi("X", aggregation="formula", formula="REV * 2"), ADMIN)
    library_edits.save_kpi(demo_wh, kpi("AOV", aggregation="formula", formula="X / ORDERS"), ADMIN)
    before = snapshot(demo_wh)
    with pytest.raises(ValidationError) as exc:
        library_edits.save_kpi(demo_wh, kpi("X", aggregation="formula", formula="AOV + 1"), ADMIN)
    [(column, message)] = problems_of(exc)
    assert column == "formula" and message.startswith("KPIs depend on each other in a cycle: ")
    assert {"AOV", "X"} <= set(message.split(": ")[1].split(" → "))
    assert snapshot(demo_wh) == before
    # The page's check as typed says so before anything is sent.
    cat = load_catalog(demo_wh)
    said = library_edits.formula_problem("AOV + 1", cat, "X")
    assert coded(said).startswith("the formula goes round in a circle: ")
    assert said.render("zh").startswith("公式循环引用：")


def test_only_admins_edit(demo_wh):
    before = snapshot(demo_wh)
    analyst = Actor("analyst", "analyst", Scope.all())
    head = service.actor(demo_wh, "head_sales")
    for who in (analyst, head):
        with pytest.raises(ScopeError):
            library_edits.save_kpi(demo_wh, kpi("NEW1"), who)
        with pytest.raises(ScopeError):
            library_edits.set_children(demo_wh, "SALES", [("SALES/REV", 100)], who)
    assert snapshot(demo_wh) == before


def test_formula_problem_as_typed(demo_wh):
    cat = load_catalog(demo_wh)
    assert library_edits.formula_problem("REV / ORDERS", cat, "AOV") is None
    assert library_edits.formula_problem("(AVAIL * PERF) * QUAL", cat, "NEW") is None
    unknown = library_edits.formula_problem("REV / NOPE + ZZZ", cat, "AOV")
    assert coded(unknown) == "unknown KPI NOPE, ZZZ — use the codes of the KPI library"
    assert unknown.render("zh") == "未知指标 NOPE、ZZZ——请使用指标库中的指标编码"
    assert coded(library_edits.formula_problem("REV /", cat, "AOV")) == (
        "the formula ends too early — an operand is missing"
    )
    assert coded(library_edits.formula_problem("REV ; ORDERS", cat, "AOV")) == (
        "';' is not allowed in a formula — use + - × ÷ ( )"
    )
    assert coded(library_edits.formula_problem("", cat, "AOV")) == "the formula is empty"
    # OEE is AVAIL × PERF × QUAL: AVAIL made of OEE would go round.
    assert coded(library_edits.formula_problem("OEE * 1", cat, "AVAIL")).startswith(
        "the formula goes round in a circle: "
    )


def test_smart_warnings(demo_wh):
    year = THIS_MONTH.year
    library_edits.save_kpi(demo_wh, kpi("BARE"), ADMIN)
    library_edits.save_kpi(
        demo_wh,
        {"code": "WISH", "name_zh": "提升客户满意度", "direction": "up", "aggregation": "avg",
         "source": "CRM", "owner": "王磊", "caliber": "季度调查平均分"},
        ADMIN,
    )  # fmt: skip
    cat = load_catalog(demo_wh)
    bare = library_edits.smart_warnings(demo_wh, cat, "BARE", year)
    assert [w.render("zh") for w in bare] == [
        f"{year} 年没有目标",
        "没有数据来源",
        "没有责任人",
        "没有口径：请写明统计什么、怎么统计",
    ]
    assert [str(w) for w in bare] == [
        f"no target for {year}",
        "no data source",
        "no owner",
        "no caliber (口径): say exactly what is counted and how",
    ]
    assert [str(w) for w in library_edits.smart_warnings(demo_wh, cat, "WISH", year)] == [
        f"no target for {year}",
        "no unit of measure",
        "the name is a wish (提升/优化/improve…), not a measure",
    ]
    # Revenue of the demo has targets, a source, an owner, a unit and a caliber.
    assert library_edits.smart_warnings(demo_wh, cat, "REV", 2025) == []


def test_set_children_puts_a_kpi_on_the_sales_scorecard(demo_wh):
    cat = load_catalog(demo_wh)
    assert library_edits.children_of(cat, "SALES", None, THIS_MONTH) == [
        ("SALES/REV", 40.0), ("SALES/NEW_CUST", 25.0), ("SALES/CSAT", 20.0),
        ("SALES/COLLECT_RATE", 15.0),
    ]  # fmt: skip
    library_edits.save_kpi(demo_wh, kpi("AOV", unit="元", aggregation="formula",
                                      formula="REV / ORDERS"), ADMIN)  # fmt: skip
    children = [("SALES/REV", 35), ("SALES/NEW_CUST", 25), ("SALES/CSAT", 20),
                ("SALES/COLLECT_RATE", 10), ("SALES/AOV", 10)]  # fmt: skip
    result = library_edits.set_children(demo_wh, "SALES", children, ADMIN)
    assert result.summary == {"tree_parents_changed": 1}
    cat = load_catalog(demo_wh)
    assert library_edits.children_of(cat, "SALES", None, THIS_MONTH) == [
        (n, float(w)) for n, w in children
    ]
    # Last month still has the old version.
    last = date(THIS_MONTH.year - (THIS_MONTH.month == 1), (THIS_MONTH.month - 2) % 12 + 1, 1)
    assert ("SALES/AOV", 10.0) not in library_edits.children_of(cat, "SALES", None, last)
    card = service.score_unit(demo_wh, ADMIN, "SALES", Period("M", THIS_MONTH))
    assert {k["kpi"]: k["weight"] for k in card["kpis"]} == {
        "REV": 35, "NEW_CUST": 25, "CSAT": 20, "COLLECT_RATE": 10, "AOV": 10,
    }  # fmt: skip


def test_weights_not_summing_to_100_are_refused(demo_wh):
    before = snapshot(demo_wh)
    with pytest.raises(ValidationError) as exc:
        library_edits.set_children(
            demo_wh, "SALES", [("SALES/REV", 40), ("SALES/NEW_CUST", 25), ("SALES/CSAT", 30)],
            ADMIN,
        )  # fmt: skip
    assert problems_of(exc) == [
        ("weight", "weights under 'SALES' (rows 2, 3, 4) sum to 95 — they must sum to 100")
    ]
    with pytest.raises(ValidationError) as exc:
        library_edits.set_children(demo_wh, "SALES", [("SALES/NOPE", 100)], ADMIN)
    assert problems_of(exc)[0][0] == "child"
    assert snapshot(demo_wh) == before


def test_export_import_round_trip_of_the_whole_demo(demo_wh, tmp_path):
    library_edits.save_kpi(demo_wh, kpi("AOV", unit="元", aggregation="formula",
                                      formula="REV / ORDERS", owner="王磊"), ADMIN)  # fmt: skip
    first = workbook.to_bytes(export.system_frames(demo_wh, Scope.all()), "zh")
    fresh = Warehouse(tmp_path / "fresh.duckdb", linger=0)
    try:
        dry = service.import_workbook(fresh, first, ADMIN, dry_run=True, source_name="x.xlsx")
        assert dry.summary["kpis_new"] == len(load_catalog(demo_wh).kpis)
        assert not load_catalog(fresh).kpis
        service.import_workbook(fresh, first, ADMIN, source_name="x.xlsx")
        again = workbook.to_bytes(export.system_frames(fresh, Scope.all()), "en")
        a, b = workbook.read(first), workbook.read(again)
        assert {k: s.rows for k, s in a.items()} == {k: s.rows for k, s in b.items()}
        for period in (Period("Y", date(2025, 1, 1)), Period("M", date(2025, 8, 1))):
            assert service.score_unit(demo_wh, ADMIN, "GROUP", period) == service.score_unit(
                fresh, ADMIN, "GROUP", period
            )
    finally:
        fresh.close()


def test_saving_one_kpi_keeps_the_library_order(demo_wh):
    from kpi_core.access import SYSTEM
    from kpi_core.catalog import load_catalog
    from kpi_core.library_edits import fields_of, save_kpi

    before = {k.code: k.sort_order for k in load_catalog(demo_wh).kpis.values()}
    oee = load_catalog(demo_wh).kpi("OEE")
    assert save_kpi(demo_wh, fields_of(oee), SYSTEM).summary.get("kpis_changed", 0) == 0
    new = {"code": "AOV2", "name_zh": "客单价", "name_en": "Order value", "unit": "元",
           "direction": "up", "aggregation": "formula", "formula": "REV / ORDERS"}  # fmt: skip
    save_kpi(demo_wh, new, SYSTEM)
    after = {k.code: k.sort_order for k in load_catalog(demo_wh).kpis.values()}
    assert {c: after[c] for c in before} == before
    assert after["AOV2"] == max(before.values()) + 1
