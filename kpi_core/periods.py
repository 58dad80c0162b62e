"""Reporting periods: a month, a quarter or a year, always made of whole months.

Actuals live at monthly grain (the first day of the month); every longer period is the list of
its months, so aggregation rules only ever have to deal with months.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, timedelta

from kpi_core.errors import KpiError
from kpi_core.messages import Message

_YEAR = re.compile(r"^(\d{4})$")
_QUARTER = re.compile(r"^(\d{4})\s*-?\s*[Qq]([1-4])$")
_MONTH = re.compile(r"^(\d{4})\s*(?:[-/.]|年)\s*(\d{1,2})\s*月?(?:份)?$")
_COMPACT_MONTH = re.compile(r"^(\d{4})(\d{2})$")  # 202403
_DATE = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?(?:[ T].*)?$")
_ZH_QUARTER = re.compile(r"^(\d{4})\s*年?\s*(?:第?([1-4一二三四])季度?|Q([1-4]))$", re.I)
_ZH_YEAR = re.compile(r"^(\d{4})\s*年(?:度)?$")
_MONTH_NAMES = {
    m: i + 1
    for i, names in enumerate(
        ("jan january", "feb february", "mar march", "apr april", "may", "jun june",
         "jul july", "aug august", "sep sept september", "oct october", "nov november",
         "dec december")
    )
    for m in names.split()
}  # fmt: skip
_NAMED_MONTH = re.compile(r"^([a-z]+)\.?[\s,-]*(\d{4})$|^(\d{4})[\s,-]*([a-z]+)\.?$", re.I)
_ZH_DIGITS = {"一": 1, "二": 2, "三": 3, "四": 4}
# Excel stores dates as days since 1899-12-30; these serials are the years 1954–2119.
_EXCEL_EPOCH = date(1899, 12, 30)
_SERIAL_RANGE = (20000, 80000)


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


_ISO_WEEK = re.compile(r"^(\d{4})\s*-?\s*W(\d{1,2})(?:-?[1-7])?$", re.I)


def iso_week(text: object) -> tuple[date, date] | None:
    """An ISO week written like 2019-W15 (also 2019W15, 2019-W15-3): its Monday and the month
    it belongs to — the month of its Thursday, so each week belongs to exactly one month (ISO
    8601's own rule for the year of a week). None if the text is not a week; PeriodError for a
    week its year does not have."""
    m = _ISO_WEEK.match(unicodedata.normalize("NFKC", str(text)).strip())
    if m is None:
        return None
    year, week = int(m[1]), int(m[2])
    last = date(year, 12, 28).isocalendar().week  # the 28th of December is in the last week
    if not 1 <= week <= last:
        raise PeriodError(Message("pd_err_week", value=str(text), year=year, last=f"{last:02d}"))
    thursday = date.fromisocalendar(year, week, 4)
    return thursday - timedelta(days=3), month_of(thursday)


def weeks_of_month(month: date) -> list[date]:
    """The Mondays of the ISO weeks that belong to `month` (their Thursday is in it)."""
    first = month_of(month)
    thursday = first + timedelta(days=(3 - first.weekday()) % 7)
    out = []
    while thursday.month == first.month:
        out.append(thursday - timedelta(days=3))
        thursday += timedelta(days=7)
    return out


def add_months(d: date, n: int) -> date:
    idx = d.year * 12 + (d.month - 1) + n
    return date(idx // 12, idx % 12 + 1, 1)


def month_of(d: date) -> date:
    return date(d.year, d.month, 1)


def parse_period(text: object) -> Period:
    """Read a year, quarter or month the ways people write them.

    Years `2024`, `2024年`; quarters `2024-Q1`, `2024Q1`, `2024年第1季度`; months `2024-03`,
    `2024/3`, `2024.03`, `2024年3月`, `202403`, `Mar 2024`, a date or date text (its month),
    or an Excel date serial number such as 45352.
    """
    if isinstance(text, date):
        return Period("M", month_of(text))
    if isinstance(text, int | float) and not isinstance(text, bool):
        if float(text).is_integer() and _SERIAL_RANGE[0] <= text < _SERIAL_RANGE[1]:
            return Period("M", month_of(_EXCEL_EPOCH + timedelta(days=int(text))))
        if float(text).is_integer():
            text = str(int(text))
    s = unicodedata.normalize("NFKC", str(text)).strip()
    if m := _YEAR.match(s) or _ZH_YEAR.match(s):
        return Period("Y", date(int(m[1]), 1, 1))
    if m := _QUARTER.match(s):
        return Period("Q", date(int(m[1]), (int(m[2]) - 1) * 3 + 1, 1))
    if m := _ZH_QUARTER.match(s):
        q = m[2] or m[3]
        q = _ZH_DIGITS.get(q) or int(q)
        return Period("Q", date(int(m[1]), (q - 1) * 3 + 1, 1))
    month = None
    if m := _MONTH.match(s) or _COMPACT_MONTH.match(s):
        year, month = int(m[1]), int(m[2])
    elif m := _DATE.match(s):
        year, month = int(m[1]), int(m[2])
        if not 1 <= int(m[3]) <= 31:
            month = None
    elif m := _NAMED_MONTH.match(s):
        name, year = (m[1], m[2]) if m[1] else (m[4], m[3])
        month, year = _MONTH_NAMES.get(name.lower()), int(year)
    if month is not None and 1 <= month <= 12 and 1900 <= year <= 2200:
        return Period("M", date(year, month, 1))
    raise PeriodError(Message("pd_err_period", value=s))


def months_between(first: date, last: date) -> list[date]:
    out, m = [], month_of(first)
    while m <= last:
        out.append(m)
        m = add_months(m, 1)
    return out
