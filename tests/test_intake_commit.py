"""Commit and roll-back re-check, inside their transaction, what may have changed since the preview."""

from datetime import date

import pytest

from kpi_core import service
from kpi_core.ingest import intake
from kpi_core.ingest.intake import IntakeError

TODAY = date(2026, 11, 21)
CSV = b"period,unit,kpi,value\n2026-09,SALES_E,VISITS,123\n"


def visits(demo_wh) -> float:
    return demo_wh.one(
        """SELECT a.value FROM actual a JOIN kpi k ON k.id = a.kpi_id
           JOIN org_unit u ON u.id = a.unit_id
           WHERE k.code = 'VISITS' AND u.code = 'SALES_E' AND a.period = DATE '2026-09-01'"""
    )[0]


def test_month_closed_after_the_preview_takes_nothing(demo_wh):
    before = visits(demo_wh)
    prepared = intake.prepare(demo_wh, [("v.csv", CSV)], service.SYSTEM, today=TODAY)
    assert prepared.errors == [] and prepared.counts["changed"] == 1
    intake.lock_month(demo_wh, date(2026, 9, 1), service.SYSTEM)
    assert intake.closed_months(demo_wh) == [date(2026, 9, 1)]
    with pytest.raises(IntakeError, match="2026-09 is closed; nothing was written"):
        intake.commit(demo_wh, prepared, service.SYSTEM)
    assert visits(demo_wh) == before
    assert demo_wh.one("SELECT count(*) FROM batch WHERE kind = 'upload'") == (0,)


def test_roll_back_into_a_closed_month_is_refused(demo_wh):
    before = visits(demo_wh)
    prepared = intake.prepare(demo_wh, [("v.csv", CSV)], service.SYSTEM, today=TODAY)
    batch = intake.commit(demo_wh, prepared, service.SYSTEM).batch_id
    intake.lock_month(demo_wh, date(2026, 9, 1), service.SYSTEM)
    with pytest.raises(IntakeError, match="2026-09 is closed"):
        intake.rollback(demo_wh, batch, service.SYSTEM)
    assert visits(demo_wh) == 123
    intake.lock_month(demo_wh, date(2026, 9, 1), service.SYSTEM, locked=False)
    assert intake.rollback(demo_wh, batch, service.SYSTEM) == {"restored": 1, "removed": 0}
    assert visits(demo_wh) == before
    # The restored value belongs to the batch that first loaded it, not to the undone one.
    assert demo_wh.one("SELECT status FROM batch WHERE id = ?", [batch]) == ("rolled_back",)
    assert demo_wh.one("SELECT count(*) FROM actual WHERE batch_id = ?", [batch]) == (0,)


def test_same_file_name_from_another_department_removes_nothing(demo_wh):
    sales = "period,unit,kpi,value\n2026-09,SALES_E,VISITS,123\n2026-09,SALES_N,VISITS,77\n"
    intake.commit(
        demo_wh,
        intake.prepare(demo_wh, [("月报.csv", sales.encode())], service.SYSTEM, today=TODAY),
        service.SYSTEM,
    )
    prod = b"period,unit,kpi,value\n2026-09,PROD_L1,OUTPUT,5000\n"
    prepared = intake.prepare(demo_wh, [("月报.csv", prod)], service.SYSTEM, today=TODAY)
    assert prepared.counts["removed"] == 0
    # The same department's corrected file does remove what it no longer lists.
    again = b"period,unit,kpi,value\n2026-09,SALES_E,VISITS,123\n"
    prepared = intake.prepare(demo_wh, [("月报.csv", again)], service.SYSTEM, today=TODAY)
    assert prepared.counts["removed"] == 0  # SALES_N is not in this file: not touched
    fixed = "period,unit,kpi,value\n2026-09,SALES_E,ORDERS,40\n2026-09,SALES_N,ORDERS,30\n"
    prepared = intake.prepare(demo_wh, [("月报.csv", fixed.encode())], service.SYSTEM, today=TODAY)
    assert prepared.counts == {
        "new": 0, "changed": 2, "unchanged": 0, "removed": 2, "invalid": 0
    }  # fmt: skip
