"""audit.record / audit.record_many: the one writer of the audit table."""

from datetime import datetime

import pandas as pd
import pytest

from kpi_core import audit

BOTH_ENGINES = True  # the file and PostgreSQL (tests/conftest.py)

AT = datetime(2026, 11, 20, 9, 30)


def _log(wh) -> list[tuple]:
    return wh.rows(f"SELECT {', '.join(audit.COLUMNS)} FROM audit ORDER BY key")


def test_record_puts_each_named_field_in_its_column(warehouse):
    with warehouse.transaction() as cur:
        audit.record(
            cur, changed_at=AT, changed_by="ann", entity="kpi", key="REV",
            field="unit", old=None, new=3, reason="why",
        )  # fmt: skip
        audit.record(cur, changed_at=AT, changed_by=None, entity="session", key="zed")
    assert _log(warehouse) == [
        (AT, "ann", "kpi", "REV", "unit", None, "3", "why"),
        (AT, None, "session", "zed", None, None, None, None),
    ]


def test_record_is_part_of_the_callers_transaction(warehouse):
    with pytest.raises(RuntimeError), warehouse.transaction() as cur:
        audit.record(cur, changed_at=AT, changed_by="ann", entity="kpi", key="REV")
        raise RuntimeError("the change it records failed")
    assert _log(warehouse) == []


def test_record_takes_named_fields_only(warehouse):
    with pytest.raises(TypeError), warehouse.transaction() as cur:
        audit.record(cur, AT, "ann", "kpi", "REV")  # type: ignore[misc]


def test_record_many_fills_shared_fields_and_leaves_the_rest_empty(warehouse):
    rows = pd.DataFrame(
        {"key": ["A#1", "B#2"], "old": pd.array([None, "open"], dtype=object), "new": ["x", "y"]}
    )
    with warehouse.transaction() as cur:
        audit.record_many(cur, rows, changed_at=AT, changed_by="system", entity="alert")
        audit.record_many(cur, rows.iloc[0:0], changed_at=AT, changed_by="x", entity="alert")
    assert _log(warehouse) == [
        (AT, "system", "alert", "A#1", None, None, "x", None),
        (AT, "system", "alert", "B#2", None, "open", "y", None),
    ]


def test_record_many_after_a_read_left_unfinished(warehouse):
    with warehouse.transaction() as cur:
        cur.execute("SELECT * FROM range(3)").fetchone()
        audit.record_many(cur, pd.DataFrame({"key": ["A"]}), changed_at=AT, entity="alert")
    assert _log(warehouse) == [(AT, None, "alert", "A", None, None, None, None)]


def test_record_many_refuses_a_column_the_table_lacks(warehouse):
    rows = pd.DataFrame({"key": ["A"], "colour": ["red"]})
    with pytest.raises(ValueError, match="colour"), warehouse.transaction() as cur:
        audit.record_many(cur, rows, changed_at=AT, changed_by="x", entity="alert")
    with pytest.raises(ValueError, match="entity"), warehouse.transaction() as cur:
        audit.record_many(cur, rows[["key"]], changed_at=AT, changed_by="x")
