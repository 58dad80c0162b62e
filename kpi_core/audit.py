"""The audit log: who changed what, when, from what to what, and why — read with filters.

Every write of the core adds rows to `audit` in the transaction that makes the change, through
`record` (or `record_many`) on that transaction's cursor, the only code that writes the table;
writes of actuals add a change set and a row per value as numbers (`value_change`), read here as
`audit` rows (`LOG`). Keys are
text (`SALES/REV/2026` for a target, `SALES/REV` for a tree node, a KPI code, a batch id), so the
scope of a row is the unit its key starts with; rows about shared things (the KPI library,
phasing) are shown to everyone who may see targets, rows about data batches, users and closed
months to admins only.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING

import duckdb
import pandas as pd

from kpi_core import dialects

if TYPE_CHECKING:  # only names for hints: the modules that write audit rows import this one
    from kpi_core.access import Actor
    from kpi_core.catalog import Catalog
    from kpi_core.warehouse import Warehouse

COLUMNS = ["changed_at", "changed_by", "entity", "key", "field", "old", "new", "reason"]
# The whole log: `audit`, and each value a write of actuals changed (migration 8), spelled out
# as `audit` rows were before it: key UNIT/KPI/YYYY-MM, old and new as text.
LOG = dialects.postgres_part(
    """(
    SELECT changed_at, changed_by, entity, key, field, old, new, reason FROM audit
    UNION ALL
    SELECT s.changed_at, s.changed_by, 'actual',
           coalesce(u.code, c.unit_id::VARCHAR) || '/' || coalesce(k.code, c.kpi_id::VARCHAR)
               || '/' || strftime(c.period, '%Y-%m'),
           'value', c.old::VARCHAR, c.new::VARCHAR, s.reason
    FROM value_change c JOIN value_change_set s ON s.id = c.set_id
    LEFT JOIN kpi k ON k.id = c.kpi_id LEFT JOIN org_unit u ON u.id = c.unit_id
) AS log""",
    # PostgreSQL writes 123.0 as "123"; DuckDB's "123.0" is what the log has always shown.
    """(
    SELECT changed_at, changed_by, entity, key, field, old, new, reason FROM audit
    UNION ALL
    SELECT s.changed_at, s.changed_by, 'actual',
           coalesce(u.code, c.unit_id::text) || '/' || coalesce(k.code, c.kpi_id::text)
               || '/' || to_char(c.period, 'YYYY-MM'),
           'value',
           CASE WHEN c.old::text ~ '^-?[0-9]+$' THEN c.old::text || '.0' ELSE c.old::text END,
           CASE WHEN c.new::text ~ '^-?[0-9]+$' THEN c.new::text || '.0' ELSE c.new::text END,
           s.reason
    FROM value_change c JOIN value_change_set s ON s.id = c.set_id
    LEFT JOIN kpi k ON k.id = c.kpi_id LEFT JOIN org_unit u ON u.id = c.unit_id
) AS log""",
)
_TEXT = COLUMNS[2:]  # the columns after when and who are text


def record(
    cur: duckdb.DuckDBPyConnection,
    *,
    changed_at: datetime,
    changed_by: str | None,
    entity: str,
    key: str | None,
    field: str | None = None,
    old: object = None,
    new: object = None,
    reason: str | None = None,
) -> None:
    """One audit row, written on the caller's cursor so it commits or rolls back with the change
    it records. Values that are not text (numbers, lists) are stored as DuckDB spells them."""
    cur.execute(
        "INSERT INTO audit (changed_at, changed_by, entity, key, field, old, new, reason) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [changed_at, changed_by, entity, key, field, old, new, reason],
    )


def record_many(cur: duckdb.DuckDBPyConnection, rows: pd.DataFrame, **same: object) -> None:
    """Audit rows from a frame whose columns are named as the table's, in one statement (a
    target upload changes thousands of cells); `same` gives the fields every row shares, e.g.
    changed_at=now, changed_by=who.name, entity='alert'. Fields in neither stay empty."""
    unknown = [c for c in [*rows.columns, *same] if c not in COLUMNS]
    if unknown:
        raise ValueError(f"The audit table has no column {', '.join(map(repr, unknown))}.")
    missing = [c for c in ("changed_at", "entity") if c not in rows.columns and c not in same]
    if missing:
        raise ValueError(f"Audit rows need {', '.join(map(repr, missing))}.")
    if rows.empty:
        return
    values, params = [], []
    for c in COLUMNS:
        if c in same:
            values.append("?")
            params.append(same[c])
        elif c in rows.columns:
            values.append(f'"{c}"::VARCHAR' if c in _TEXT else f'"{c}"')
        else:
            values.append("NULL")
    # A read the caller left unfinished (`fetchone`) would make DuckDB refuse the register.
    cur.complete()
    cur.register("audit_rows", rows)
    try:
        cur.execute(
            f"INSERT INTO audit ({', '.join(COLUMNS)}) "  # noqa: S608 - fixed column names
            f"SELECT {', '.join(values)} FROM audit_rows",
            params,
        )
    finally:
        cur.unregister("audit_rows")


_UNIT_KEYED = ("target", "tree")  # keys start with a unit code
_SHARED = ("kpi", "phasing")


def entries(
    wh: Warehouse,
    cat: Catalog,
    who: Actor,
    *,
    entities: list[str] | None = None,
    users: list[str] | None = None,
    start: date | None = None,
    end: date | None = None,
    key_prefix: str | None = None,
    limit: int = 5000,
) -> pd.DataFrame:
    """Audit rows inside the caller's scope, newest first, filtered by entity, user, date
    (inclusive) and key prefix (e.g. 'SALES/REV')."""
    visible = None if who.scope.everything else [*_UNIT_KEYED, *_SHARED]
    sql = [f"SELECT {', '.join(COLUMNS)} FROM {LOG} WHERE true"]  # noqa: S608 - fixed text
    params: list[object] = []
    if entities:
        sql.append("AND list_contains(?, entity)")
        params.append(list(entities))
    if visible is not None:
        sql.append("AND list_contains(?, entity)")
        params.append(visible)
    if users:
        sql.append("AND list_contains(?, changed_by)")
        params.append(list(users))
    if start:
        sql.append("AND changed_at >= ?")
        params.append(datetime.combine(start, time()))
    if end:
        sql.append("AND changed_at < ?")
        params.append(datetime.combine(end + timedelta(days=1), time()))
    if key_prefix:
        sql.append("AND starts_with(key, ?)")
        params.append(key_prefix)
    if visible is not None:
        codes = [u.code for u in cat.units.values() if who.scope.allows(u.id)]
        sql.append(
            "AND (NOT list_contains(?, entity) OR list_contains(?, split_part(key, '/', 1)))"
        )
        params += [list(_UNIT_KEYED), codes]
    sql.append("ORDER BY changed_at DESC LIMIT ?")
    params.append(limit)
    return wh.df(" ".join(sql), params)


def facets(wh: Warehouse) -> tuple[list[str], list[str]]:
    """The entities and users the log holds, for the filters."""
    entities = [
        r[0]
        for r in wh.rows(
            "SELECT entity FROM audit UNION SELECT 'actual' FROM value_change_set ORDER BY 1"
        )
    ]
    users = [
        r[0]
        for r in wh.rows(
            "SELECT changed_by FROM audit WHERE changed_by IS NOT NULL UNION "
            "SELECT changed_by FROM value_change_set WHERE changed_by IS NOT NULL ORDER BY 1"
        )
    ]
    return entities, users
