"""targets.add_versions: the one writer of new target versions (planning grid, system import)."""

from datetime import date, datetime

import pandas as pd
import pytest

from kpi_core import targets

BOTH_ENGINES = True  # the file and PostgreSQL (tests/conftest.py)

AT = datetime(2026, 11, 20, 9, 30)
LEVELS = ", ".join(targets.LEVEL_FIELDS)


def _rows(wh) -> list[tuple]:
    return wh.rows(
        f"""SELECT kpi_id, unit_id, grain, period_start, {LEVELS}, phasing, valid_from, version,
                   changed_by, changed_at, reason FROM target ORDER BY version"""
    )


def _version(version: int, target: float | None, **more) -> dict:
    return {
        "kpi_id": 7, "unit_id": 3, "grain": "Y", "period_start": date(2026, 1, 1),
        "baseline": None, "target": target, "challenge": None, "low": None, "high": None,
        "tolerance": None, "phasing": None, "valid_from": date(2026, 1, 1), "version": version,
        **more,
    }  # fmt: skip


def test_versions_are_written_with_who_when_and_why(warehouse):
    versions = pd.DataFrame(
        [_version(1, 100.0), _version(2, None, phasing="even", valid_from=date(2026, 7, 1))]
    )
    with warehouse.transaction() as cur:
        targets.add_versions(cur, versions, by="ann", at=AT, reason="plan")
        targets.add_versions(cur, versions.iloc[0:0], by="ann", at=AT, reason="plan")
    none = (None,) * 4
    assert _rows(warehouse) == [
        (7, 3, "Y", date(2026, 1, 1), None, 100.0, *none, None, date(2026, 1, 1), 1,
         "ann", AT, "plan"),
        # an empty level is NULL, not NaN
        (7, 3, "Y", date(2026, 1, 1), None, None, *none, "even", date(2026, 7, 1), 2,
         "ann", AT, "plan"),
    ]  # fmt: skip


def test_a_read_left_unfinished_does_not_block_the_write(warehouse):
    with warehouse.transaction() as cur:
        cur.execute("SELECT * FROM range(3)").fetchone()  # as the system import reads
        targets.add_versions(cur, pd.DataFrame([_version(1, 5.0)]), by="a", at=AT, reason="r")
    assert len(_rows(warehouse)) == 1


def test_versions_are_part_of_the_callers_transaction(warehouse):
    with pytest.raises(RuntimeError), warehouse.transaction() as cur:
        targets.add_versions(cur, pd.DataFrame([_version(1, 5.0)]), by="a", at=AT, reason="r")
        raise RuntimeError("the rest of the save failed")
    assert _rows(warehouse) == []


def test_extra_columns_are_ignored_and_missing_ones_refused(warehouse):
    with warehouse.transaction() as cur:
        versions = pd.DataFrame([_version(1, 5.0, expected=0)])
        targets.add_versions(cur, versions, by="a", at=AT, reason="r")
    assert len(_rows(warehouse)) == 1
    with pytest.raises(ValueError, match="version"), warehouse.transaction() as cur:
        versions = pd.DataFrame([_version(2, 5.0)]).drop(columns="version")
        targets.add_versions(cur, versions, by="a", at=AT, reason="r")
