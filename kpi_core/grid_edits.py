"""What an edit of a planning grid is (targets and weights alike): who may make it, a problem at
one cell, a conflict with somebody else's save, and what a save wrote."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime

from kpi_core.access import Actor, can
from kpi_core.errors import KpiError, Problem, ScopeError
from kpi_core.messages import Message


class ConflictError(KpiError):
    """Rows changed by somebody else since the grid was read; nothing was written."""

    def __init__(self, conflicts: list[Conflict]):
        self.conflicts = conflicts
        # One line per conflict; str() is their English, one a line, as before.
        self.lines = [
            Message("ge_conflict", where=c.where, user=c.by, when=f"{c.at:%Y-%m-%d %H:%M}")
            for c in conflicts
        ]
        super().__init__("\n".join(str(m) for m in self.lines))

    def text(self, lang: str) -> str:
        return "\n".join(m.render(lang) for m in self.lines)


@dataclass(frozen=True)
class Conflict:
    where: str  # "SALES/REV 2026" or "SALES/REV"
    by: str
    at: datetime


@dataclass(frozen=True)
class CellProblem:
    """A problem at one cell of a grid (row: the grid's index; None for the form's fields)."""

    row: int | None
    column: str
    where: str
    message: Message | str  # str: a problem system_import still says in English


@dataclass
class Saved:
    rows: int  # target rows or parent groups given a new version
    cells: int  # cells changed
    unit_ids: set[int] = field(default_factory=set)  # units whose scores may change


def can_edit(who: Actor, unit_id: int) -> bool:
    return can(who, "edit_targets", unit_id)


def require_editor(who: Actor) -> None:
    """Refuses anyone who may not edit targets and weights (heads and admins may)."""
    if not can(who, "edit_targets"):
        raise ScopeError(Message("pl_err_heads_only"))


NOT_YOURS = Message("ge_not_yours")


def closed_problem(
    row: int | None, where: str, start: date, end: date | None, closed: list[date]
) -> list[CellProblem]:
    """A change from `start` (to `end`, or for good) must not re-judge a closed month."""
    judged = sorted(m for m in closed if m >= start and (end is None or m <= end))
    if not judged:
        return []
    return [
        CellProblem(
            row, "valid_from", where,
            Message("ge_closed", month=f"{judged[0]:%Y-%m}", start=f"{start:%Y-%m}"),
        )
    ]  # fmt: skip


def form_problems(
    effective: date | None, reason: str | None, need_reason: bool
) -> list[CellProblem]:
    """What the save form lacks: the effective date, and the reason where one is needed."""
    out = []
    if effective is None:
        out.append(CellProblem(None, "effective", "", Message("ge_no_effective")))
    if need_reason and not (reason or "").strip():
        out.append(CellProblem(None, "reason", "", Message("ge_no_reason")))
    return out


def audit_text(value: object) -> str | None:
    """A level or weight as the audit log keeps it: 15 significant digits, NULL as None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return f"{value:.15g}" if isinstance(value, float) else str(value)


def as_problem(sheet: str, p: CellProblem) -> Problem:
    return Problem(
        sheet,
        None if p.row is None else p.row + 1,
        p.column,
        Message("ge_at", where=p.where, problem=p.message) if p.where else p.message,
    )
