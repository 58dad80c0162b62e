"""What a command ends with: its exit code, and the refusal of an incomplete command line.

Exit codes: 0 done · 1 input refused (every problem listed) · 2 wrong usage · 3 not found or
outside the user's scope · 4 warehouse busy (another process held it too long) · 5 a database
source cannot be reached or read (connection, password, driver, query, time-out).
"""

from __future__ import annotations

from kpi_core.errors import KpiError


class UsageError(KpiError):
    """The command line is incomplete (e.g. it does not say who runs it)."""


EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_BUSY, EXIT_SOURCE = 0, 1, 2, 3, 4, 5
