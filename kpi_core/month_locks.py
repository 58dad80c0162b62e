"""Closed months: a month an admin closes takes no more actuals (an upload, a pull or a
roll-back touching it is refused inside its transaction) and its targets and weights are no
longer re-judged by an edit (planning, weights). Completeness counts it as published.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

from kpi_core import audit
from kpi_core.access import Actor, can
from kpi_core.errors import ScopeError
from kpi_core.messages import Message
from kpi_core.warehouse import Warehouse


def closed_among(cur, months: Iterable[date]) -> list[date]:
    """Inside a write's transaction (`cur`): which of `months` are closed, in order."""
    closed = {r[0] for r in cur.execute("SELECT period FROM period_lock").fetchall()}
    return sorted(closed & set(months))


def closed_months(wh: Warehouse) -> list[date]:
    """The closed months, oldest first."""
    return [r[0] for r in wh.rows("SELECT period FROM period_lock ORDER BY period")]


def lock_month(wh: Warehouse, month: date, who: Actor, locked: bool = True) -> None:
    """Close a month to further actuals, or reopen it (admins)."""
    if not can(who, "close_months"):
        raise ScopeError(Message("in_admins_close"))
    with wh.transaction() as cur:
        if locked:
            cur.execute(
                "INSERT OR IGNORE INTO period_lock VALUES (?, ?, ?)",
                [month, who.name, datetime.now()],
            )
        else:
            cur.execute("DELETE FROM period_lock WHERE period = ?", [month])
        audit.record(
            cur, changed_at=datetime.now(), changed_by=who.name, entity="period_lock",
            key=f"{month:%Y-%m}", field="locked", old=str(not locked), new=str(locked),
            reason="",
        )  # fmt: skip
