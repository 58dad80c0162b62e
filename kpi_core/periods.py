"""Reporting periods: a month, a quarter or a year, always made of whole months.

Actuals live at monthly grain (the first day of the month); every longer period is the list of
its months, so aggregation rules only ever have to deal with months.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from kpi_core.errors import KpiError

_YEAR = re.compile(r"^(\d{4})$")
_QUARTER = re.compile(r"^(\d{4})\s*-?\s*[Qq]([1-4])$")
_MONTH = re.compile(r"^(\d{4})\s*[-/.]\s*(\d{1,2})$")


class PeriodError(KpiError):
    """A period could not be understood."""


@dataclass(frozen=True, order=True)
class Period:
    """A year (`grain="Y"`), quarter (`"Q"`) or month (`"M"`) starting at `start`."""

    grain: str
    start: date

    @property
    def months(self) -> list[date]:
        n = {"Y": 12, "Q": 3, "M": 1}[self.grain]
        return [add_months(self.start, i) for i in range(n)]

    @property
    def end(self) -> date:
        """First day of the period's last month."""
        return self.months[-1]

    @property
    def year(self) -> int:
        return self.start.year

    @classmethod
    def containing(cls, grain: str, month: date) -> Period:
        """The year, quarter or month that holds `month`."""
        if grain == "Y":
            return cls("Y", date(month.year, 1, 1))
        if grain == "Q":
            return cls("Q", date(month.year, (month.month - 1) // 3 * 3 + 1, 1))
        return cls("M", month_of(month))

    def label(self) -> str:
        if self.grain == "Y":
            return f"{self.start.year}"
        if self.grain == "Q":
            return f"{self.start.year}-Q{(self.start.month - 1) // 3 + 1}"
        return f"{self.start.year}-{self.start.month:02d}"

    def __str__(self) -> str:
        return self.label()

    def previous(self) -> Period:
        step = {"Y": 12, "Q": 3, "M": 1}[self.grain]
        return Period(self.grain, add_months(self.start, -step))

    def last_year(self) -> Period:
        return Period(self.grain, date(self.start.year - 1, self.start.month, 1))

    def contains(self, month: date) -> bool:
        return self.start <= month <= self.end

    def until(self, month: date) -> list[date]:
        """The months of this period up to and including `month` (for YTD / QTD pace)."""
        return [m for m in self.months if m <= month]


def add_months(d: date, n: int) -> date:
    idx = d.year * 12 + (d.month - 1) + n
    return date(idx // 12, idx % 12 + 1, 1)


def month_of(d: date) -> date:
    return date(d.year, d.month, 1)


def parse_period(text: object) -> Period:
    """Read `2024`, `2024-Q1` or `2024-03` (also `2024/3`, `2024.03`), or a date (its month)."""
    if isinstance(text, date):
        return Period("M", month_of(text))
    if isinstance(text, int | float) and not isinstance(text, bool) and float(text).is_integer():
        text = str(int(text))
    s = str(text).strip()
    if m := _YEAR.match(s):
        return Period("Y", date(int(m[1]), 1, 1))
    if m := _QUARTER.match(s):
        return Period("Q", date(int(m[1]), (int(m[2]) - 1) * 3 + 1, 1))
    if m := _MONTH.match(s):
        month = int(m[2])
        if 1 <= month <= 12:
            return Period("M", date(int(m[1]), month, 1))
    raise PeriodError(
        f"'{s}' is not a period — write 2024 (year), 2024-Q1 (quarter) or 2024-03 (month)"
    )


def months_between(first: date, last: date) -> list[date]:
    out, m = [], month_of(first)
    while m <= last:
        out.append(m)
        m = add_months(m, 1)
    return out
