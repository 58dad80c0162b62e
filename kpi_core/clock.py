"""What day it is, asked in one place.

The core judges time against a `today` its caller passes in; the edges (pages, the command line)
ask here. `KPI_TODAY=YYYY-MM-DD` fixes the day for a whole process and the processes it starts:
a training or demo installation frozen on one day, and the test suite, which must give the same
results on any date.
"""

from __future__ import annotations

from datetime import date

from kpi_core import settings
from kpi_core.errors import KpiError
from kpi_core.messages import Message


def today() -> date:
    """`KPI_TODAY` when set, else the system's date."""
    fixed = (settings.env("KPI_TODAY") or "").strip()
    if not fixed:
        return date.today()
    try:
        return date.fromisoformat(fixed)
    except ValueError:
        raise KpiError(Message("ck_err_today", value=fixed)) from None
