"""Arguments read the same way by every command: who runs it, a month, which kind of workbook."""

from __future__ import annotations

import argparse
import getpass
import os
from pathlib import Path

from kpi_core import access, service, users, workbook
from kpi_core.access import Scope
from kpi_core.cli.outcome import UsageError
from kpi_core.errors import (
    KpiError,
)
from kpi_core.messages import Message
from kpi_core.periods import parse_period
from kpi_core.settings import env
from kpi_core.warehouse import Warehouse


def _who(wh: Warehouse, args: argparse.Namespace) -> access.Actor:
    """The named user, or full access only when asked for by --admin: a command that reads or
    writes data never falls back to full access silently (a warehouse without users aside)."""
    if args.admin and args.user:
        raise UsageError(Message("cli_err_user_and_admin"))
    if args.admin:
        return access.Actor(f"admin@cli:{_system_user()}", "admin", Scope.all())
    name = args.user or env("KPI_USER")
    if name:
        return service.actor(wh, name)
    if not users.anyone(wh):
        return access.SYSTEM
    raise UsageError(Message("cli_err_who"))


def _system_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user without a passwd entry
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


def _is_system_workbook(path: str) -> bool:
    """A workbook with any KPI-system sheet besides actuals goes to the system import."""
    if Path(path).suffix.lower() not in (".xlsx", ".xlsm", ".xls"):
        return False
    try:
        sheets = workbook.read(path)
    except workbook.WorkbookError:
        return False  # the intake explains what is wrong with the file
    return bool(set(sheets) - {"actuals"})


def _month(text: str | None):
    if text is None:
        return None
    period = parse_period(text)
    if period.grain != "M":
        raise KpiError(Message("cli_err_not_a_month", value=text))
    return period.start
