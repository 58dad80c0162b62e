"""Review comments and actions (复盘) on a KPI of a unit for a month (DESIGN.md §1, §6).

A comment is a note on one (KPI, unit, month). It may carry an action — what is to be done, by
whom, by when — which stays open until somebody closes it with a resolution. Department heads,
analysts and admins comment on the units in their scope; viewers read. Text is stored exactly as
typed and never interpreted: pages show it as plain text, charts put it in tooltips (escaped), and
downloads neutralise formula-looking cells (`workbook.sheet_bytes`). Every write adds audit rows
(entity `comment`) in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

import pandas as pd

from kpi_core import audit, clock, people
from kpi_core.access import ROLE_WORDS, Actor, can
from kpi_core.catalog import Catalog
from kpi_core.errors import KpiError, NotFoundError
from kpi_core.memo import by_data_version
from kpi_core.messages import Message
from kpi_core.periods import Period, month_of
from kpi_core.warehouse import Warehouse

MAX_TEXT = 2000  # a comment; actions and resolutions are a line or two
MAX_SHORT = 500
MAX_OWNER = 100

OPEN, CLOSED = "open", "closed"

COLUMNS = [
    "id", "kpi_id", "unit_id", "kpi", "unit", "period", "created_by", "created_at", "text",
    "action", "owner", "due", "state", "closed_by", "closed_at", "resolution", "alert_id",
]  # fmt: skip


class CommentError(KpiError):
    """A comment, action or resolution was refused; the message says why and what to do."""


def can_comment(who: Actor, unit_id: int) -> bool:
    """Heads, analysts and admins comment on units in their scope; viewers read only."""
    return can(who, "comment", unit_id)


def _check_role(who: Actor) -> None:
    if not can(who, "comment"):
        raise CommentError(
            Message("rv_cannot_write", user=who.name, role=Message(ROLE_WORDS[who.role]))
        )


def _text(value: str | None, what: Message, limit: int, *, required: bool) -> str | None:
    if value is None or not value.strip():
        if required:
            raise CommentError(Message("rv_empty", what=what))
        return None
    if len(value) > limit:
        raise CommentError(Message("rv_too_long", what=what, n=len(value), limit=limit))
    return value


def _month(period: date | Period) -> date:
    """A Period is stored as its last month (where its review happens); a date as its month."""
    return period.end if isinstance(period, Period) else month_of(period)


def _codes(cur, kpi_id: int, unit_id: int) -> tuple[str, str]:
    kpi = cur.execute("SELECT code FROM kpi WHERE id = ?", [kpi_id]).fetchone()
    if kpi is None:
        raise NotFoundError(Message("rv_no_kpi_id", id=kpi_id))
    unit = cur.execute("SELECT code FROM org_unit WHERE id = ?", [unit_id]).fetchone()
    if unit is None:
        raise NotFoundError(Message("rv_no_unit_id", id=unit_id))
    return kpi[0], unit[0]


def _audit(cur, at: datetime, who: Actor, key: str, field: str, old, new, reason=None) -> None:
    audit.record(
        cur, changed_at=at, changed_by=who.name, entity="comment", key=key,
        field=field, old=old, new=new, reason=reason,
    )  # fmt: skip


def add_comment(
    wh: Warehouse,
    who: Actor,
    kpi_id: int,
    unit_id: int,
    period: date | Period,
    text: str,
    *,
    action: str | None = None,
    owner: str | None = None,
    due: date | None = None,
    alert_id: int | None = None,
) -> int:
    """Store a comment (and its action, if any) and return its id.

    An action needs an owner and a due date; an owner or due date without an action is refused,
    since nobody would follow it up.
    """
    _check_role(who)
    text = _text(text, Message("rv_what_comment"), MAX_TEXT, required=True)
    action = _text(action, Message("rv_what_action"), MAX_SHORT, required=False)
    owner = _text(owner, Message("rv_what_owner"), MAX_OWNER, required=False)
    # A user named by id, display name or a part of it is stored as the user (people.py).
    owner = people.load(wh).canonical(owner)
    if action is None and (owner is not None or due is not None):
        raise CommentError(Message("rv_owner_without_action"))
    if action is not None and owner is None:
        raise CommentError(Message("rv_action_needs_owner"))
    if action is not None and due is None:
        raise CommentError(Message("rv_action_needs_due"))
    month = _month(period)
    now = datetime.now()
    with wh.transaction() as cur:
        kpi_code, unit_code = _codes(cur, kpi_id, unit_id)
        who.scope.check(unit_id, unit_code)
        if alert_id is not None:
            found = cur.execute("SELECT 1 FROM alert_event WHERE id = ?", [alert_id]).fetchone()
            if found is None:
                raise NotFoundError(Message("rv_no_alert", id=alert_id))
        new_id = cur.execute(
            """INSERT INTO comment (id, kpi_id, unit_id, period, created_by, created_at, text,
                                    action, due, owner, state, alert_id)
               VALUES (nextval('comment_id'), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               RETURNING id""",
            [kpi_id, unit_id, month, who.name, now, text, action, due, owner,
             OPEN if action is not None else None, alert_id],
        ).fetchone()[0]  # fmt: skip
        key = f"{unit_code}/{kpi_code}/{month:%Y-%m}#{new_id}"
        _audit(cur, now, who, key, "text", None, text)
        if action is not None:
            _audit(cur, now, who, key, "action", None, f"{action} · {owner} · {due:%Y-%m-%d}")
    return int(new_id)


def close_action(wh: Warehouse, who: Actor, comment_id: int, resolution: str) -> None:
    """Close an open action with what was done (or why it was dropped)."""
    _check_role(who)
    resolution = _text(resolution, Message("rv_what_resolution"), MAX_SHORT, required=True)
    now = datetime.now()
    with wh.transaction() as cur:
        row = cur.execute(
            """SELECT c.unit_id, u.code, k.code, c.period, c.action, c.state
               FROM comment c JOIN org_unit u ON u.id = c.unit_id JOIN kpi k ON k.id = c.kpi_id
               WHERE c.id = ?""",
            [comment_id],
        ).fetchone()
        if row is None:
            raise NotFoundError(Message("rv_no_comment", id=comment_id))
        unit_id, unit_code, kpi_code, month, action, state = row
        who.scope.check(unit_id, unit_code)
        if action is None:
            raise CommentError(Message("rv_no_action", id=comment_id))
        if state != OPEN:
            raise CommentError(Message("rv_already_closed", id=comment_id))
        cur.execute(
            """UPDATE comment SET state = ?, closed_by = ?, closed_at = ?, resolution = ?
               WHERE id = ?""",
            [CLOSED, who.name, now, resolution, comment_id],
        )
        key = f"{unit_code}/{kpi_code}/{month:%Y-%m}#{comment_id}"
        _audit(cur, now, who, key, "state", OPEN, CLOSED, resolution)


_SELECT = """
SELECT c.id, c.kpi_id, c.unit_id, k.code AS kpi, u.code AS unit, c.period, c.created_by,
       c.created_at, c.text, c.action, c.owner, c.due, c.state, c.closed_by, c.closed_at,
       c.resolution, c.alert_id
FROM comment c JOIN kpi k ON k.id = c.kpi_id JOIN org_unit u ON u.id = c.unit_id
WHERE list_contains(?, c.unit_id)
"""


def _scope_ids(cat: Catalog, who: Actor) -> list[int]:
    return [u for u in cat.units if who.scope.allows(u)]


@by_data_version
def comments(
    wh: Warehouse,
    cat: Catalog,
    who: Actor,
    *,
    kpi_id: int | None = None,
    unit_id: int | None = None,
    start: date | None = None,
    end: date | None = None,
    open_actions_only: bool = False,
) -> pd.DataFrame:
    """Comments on units inside the caller's scope, newest first; months `start`..`end`
    inclusive, with `author`: the writer's display name. A unit asked for outside the scope is
    refused, not silently empty."""
    if unit_id is not None:
        who.scope.check(unit_id, cat.units[unit_id].code if unit_id in cat.units else "")
    sql, params = [_SELECT], [_scope_ids(cat, who)]
    if kpi_id is not None:
        sql.append("AND c.kpi_id = ?")
        params.append(kpi_id)
    if unit_id is not None:
        sql.append("AND c.unit_id = ?")
        params.append(unit_id)
    if start is not None:
        sql.append("AND c.period >= ?")
        params.append(month_of(start))
    if end is not None:
        sql.append("AND c.period <= ?")
        params.append(month_of(end))
    if open_actions_only:
        sql.append("AND c.state = ?")
        params.append(OPEN)
    sql.append("ORDER BY c.created_at DESC, c.id DESC")
    df = wh.df("\n".join(sql), params)
    # The author as every surface names people: the user's display name (people.py).
    known = people.load(wh) if len(df) else None
    df["author"] = [known.name(str(by)) if pd.notna(by) else None for by in df["created_by"]]
    return df


def open_actions(
    wh: Warehouse, cat: Catalog, who: Actor, *, today: date | None = None
) -> pd.DataFrame:
    """Open actions in the caller's scope, soonest due first, with `overdue` (due before today)."""
    df = comments(wh, cat, who, open_actions_only=True)
    today = today or clock.today()
    due = pd.to_datetime(df["due"])
    df["overdue"] = (due < pd.Timestamp(today)).fillna(False).astype(bool)
    return (
        df.assign(_due=due).sort_values(["_due", "id"]).drop(columns="_due").reset_index(drop=True)
    )


@by_data_version
def counts(
    wh: Warehouse,
    cat: Catalog,
    who: Actor,
    pairs: Iterable[tuple[int, int]],
    start: date,
    end: date,
) -> dict[tuple[int, int], tuple[int, int]]:
    """(comments, open actions) per (KPI id, unit id) for months `start`..`end`, in one query —
    the badges on the Board's cards."""
    pairs = list(dict.fromkeys(p for p in pairs if who.scope.allows(p[1])))
    if not pairs:
        return {}
    rows = wh.rows(
        """WITH wanted AS (SELECT unnest(?::INTEGER[]) AS kpi_id, unnest(?::INTEGER[]) AS unit_id)
           SELECT c.kpi_id, c.unit_id, count(*), count(*) FILTER (WHERE c.state = ?)
           FROM comment c JOIN wanted w ON c.kpi_id = w.kpi_id AND c.unit_id = w.unit_id
           WHERE c.period BETWEEN ? AND ?
           GROUP BY ALL""",
        [[k for k, _ in pairs], [u for _, u in pairs], OPEN, month_of(start), month_of(end)],
    )
    return {(k, u): (int(n), int(o)) for k, u, n, o in rows}
