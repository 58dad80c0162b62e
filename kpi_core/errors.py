"""Domain exceptions. Pages catch `KpiError` and show `error.text(lang)`; the CLI prints
`str(error)` (English) and exits."""

from __future__ import annotations

from dataclasses import dataclass

from kpi_core.messages import Message


class KpiError(Exception):
    """Base of every error the product reports to a user.

    Raised with a coded `Message`, it renders in the reader's language (`text(lang)`) and
    `str()` is its English rendering. Raised with a plain string (words from outside: a
    driver's or a library's), `text()` gives that string as it is."""

    def __init__(self, *args: object) -> None:
        self.coded = args[0] if args and isinstance(args[0], Message) else None
        super().__init__(*((str(self.coded), *args[1:]) if self.coded else args))

    def text(self, lang: str) -> str:
        return self.coded.render(lang) if self.coded is not None else str(self)

    def said(self) -> Message | str:
        """What the error says, to carry inside another message or a list of problems: its coded
        message, or its plain text (words from outside)."""
        return self.coded if self.coded is not None else str(self)


class NotFoundError(KpiError):
    """A unit, KPI, user or period asked for does not exist."""


class ScopeError(KpiError):
    """The caller's scope does not include the org unit asked for."""


class WarehouseBusyError(KpiError):
    """Another process holds the warehouse file for longer than we were willing to wait."""


@dataclass(frozen=True)
class Problem:
    """One problem in an input, located so the user can find and fix it."""

    sheet: str
    row: int | None
    column: str | None
    message: Message | str  # str: words from outside, shown as they are

    def __str__(self) -> str:
        where = [f"Sheet '{self.sheet}'"]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column:
            where.append(f"column '{self.column}'")
        return f"{', '.join(where)}: {self.message}"


class ValidationError(KpiError):
    """An input was refused; `problems` lists every reason, each with its place."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        head = f"{len(problems)} problem(s); nothing was written."
        super().__init__("\n".join([head, *(str(p) for p in problems[:50])]))


class LinesError(KpiError):
    """A file refused for several problems; `lines` holds one a line, each a message that names
    its place (`str()` is their English, one a line)."""

    def __init__(self, lines: list[Message | str]):
        super().__init__("\n".join(str(line) for line in lines))
        self.lines = lines


class DuplicateKeyError(KpiError):
    """A write refused by a key of the PostgreSQL warehouse: another server committed the same
    key first (kpi_core/pg_warehouse.py). The code that saves turns it into its own refusal."""

    def __init__(self, table: str):
        super().__init__(Message("pg_err_duplicate", table=table))
        self.table = table
