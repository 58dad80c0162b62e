"""Committed batches of actuals afterwards: the list of them a user may see (`history`), and
`rollback`, which takes a batch's values out and puts back the values it replaced or removed,
with the intake's own writer (kpi_core/ingest/intake.py) so that a roll-back is a write like a
commit: audited, checked against closed months, and itself in `value_change`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime

import pandas as pd

from kpi_core import audit
from kpi_core.access import Actor, can
from kpi_core.errors import NotFoundError, ScopeError
from kpi_core.ingest import intake
from kpi_core.messages import Items, Message
from kpi_core.periods import month_of
from kpi_core.texts import N_
from kpi_core.warehouse import Warehouse

# A batch's status in words (a batch that is no longer committed cannot be rolled back).
_STATUS = {"rolled_back": N_("in_status_rolled_back")}


# Called once a roll-back is committed, with the roll-back's actor, batch id and touched months.
AfterRollbackHook = Callable[[Warehouse, Actor, int, list[date]], None]


def rollback(
    wh: Warehouse,
    batch_id: int,
    who: Actor,
    reason: str = "",
    *,
    after: AfterRollbackHook | None = None,
) -> dict[str, int]:
    """Undo a committed batch: its values go, the values it replaced or removed come back.

    Refused while a later batch has changed some of the same values (roll that one back first),
    and for a batch touching units outside the caller's scope.
    """
    if not can(who, "load_actuals"):
        raise ScopeError(Message("in_cannot_roll_back", user=who.name, role=intake.role_word(who)))
    now = datetime.now()
    with wh.transaction() as cur:
        found = cur.execute(
            "SELECT status, source_name FROM batch WHERE id = ?", [batch_id]
        ).fetchall()
        if not found:
            raise NotFoundError(Message("in_no_batch", batch=batch_id))
        status, source = found[0]
        if status != "committed":
            word = Message(_STATUS[status]) if status in _STATUS else status.replace("_", " ")
            raise intake.IntakeError(Message("in_batch_status", batch=batch_id, status=word))
        cur.execute(
            """CREATE OR REPLACE TEMP TABLE undo AS
               WITH touched AS (
                   SELECT kpi_id, unit_id, period FROM actual WHERE batch_id = ?
                   UNION
                   SELECT kpi_id, unit_id, period FROM actual_replaced WHERE batch_id = ?
               )
               SELECT t.kpi_id, t.unit_id, t.period, a.value AS new, a.batch_id AS now_batch,
                      r.old_value AS old, r.old_batch_id
               FROM touched t
               LEFT JOIN actual a USING (kpi_id, unit_id, period)
               LEFT JOIN actual_replaced r ON r.batch_id = ? AND r.kpi_id = t.kpi_id
                    AND r.unit_id = t.unit_id AND r.period = t.period""",
            [batch_id, batch_id, batch_id],
        )
        units = [r[0] for r in cur.execute("SELECT DISTINCT unit_id FROM undo").fetchall()]
        outside = [u for u in units if not who.scope.allows(u)]
        if outside:
            raise ScopeError(Message("in_batch_scope", batch=batch_id))
        later = cur.execute(
            """SELECT DISTINCT b.id FROM actual_replaced r JOIN batch b ON b.id = r.batch_id
               WHERE r.old_batch_id = ? AND b.status = 'committed' AND b.id > ?
               UNION
               SELECT DISTINCT now_batch FROM undo
               WHERE now_batch IS NOT NULL AND now_batch <> ?
               ORDER BY 1""",
            [batch_id, batch_id, batch_id],
        ).fetchall()
        if later:
            ids = Items([r[0] for r in later], commas=True)
            raise intake.IntakeError(Message("in_later_batches", ids=ids, batch=batch_id))
        moving = cur.execute(
            "SELECT kpi_id, unit_id, period, new AS old, old AS new FROM undo"
        ).df()
        months = sorted({month_of(p) for p in pd.to_datetime(moving["period"]).dt.date})
        intake.refuse_closed(cur, moving)
        # The intake's own writer (bench/bench_intake.py times it under this name).
        intake._write(cur, moving, batch_id, who.name, now, reason or f"roll back batch {batch_id}")
        # Restored values belong to the batches that first gave them; and what _write kept in
        # actual_replaced is the undo itself, of no further use once the batch is rolled back.
        cur.execute(
            """UPDATE actual SET batch_id = u.old_batch_id FROM undo u
               WHERE actual.kpi_id = u.kpi_id AND actual.unit_id = u.unit_id
                 AND actual.period = u.period AND u.old IS NOT NULL"""
        )
        cur.execute("DROP TABLE undo")
        cur.execute("DELETE FROM actual_replaced WHERE batch_id = ?", [batch_id])
        cur.execute("UPDATE batch SET status = 'rolled_back' WHERE id = ?", [batch_id])
        audit.record(
            cur, changed_at=now, changed_by=who.name, entity="batch", key=str(batch_id),
            field="status", old="committed", new="rolled_back", reason=reason or source,
        )  # fmt: skip
    if after is not None:  # service.rollback_actuals: the alert rules judge again
        after(wh, who, batch_id, months)
    return {
        "restored": int(moving["new"].notna().sum()),
        "removed": int(moving["new"].isna().sum()),
    }


def history(wh: Warehouse, who: Actor, limit: int = 200) -> pd.DataFrame:
    """Batches, newest first: who, when, source, files, months, rows, status — those the caller
    made or whose values lie inside the caller's scope."""
    df = wh.df(
        """SELECT b.id, b.kind, b.source_name, b.files, b.months, b.created_by, b.created_at,
                  b.rows, b.status, b.summary,
                  list(DISTINCT t.unit_id) FILTER (t.unit_id IS NOT NULL) AS units
           FROM batch b
           LEFT JOIN (SELECT batch_id, unit_id FROM actual
                      UNION SELECT batch_id, unit_id FROM actual_replaced) t
                  ON t.batch_id = b.id
           GROUP BY ALL ORDER BY b.id DESC LIMIT ?""",
        [limit],
    )
    if who.scope.everything:
        return df.drop(columns="units")
    mine = [
        row.created_by == who.name or any(who.scope.allows(int(u)) for u in row.units)
        for row in df.itertuples()
    ]
    return df[mine].drop(columns="units").reset_index(drop=True)
