"""Dates as exports write them, read the same way on every path (Excel profiles, file and
database sources), never guessed.

A profile (or source) may give a date format: a strftime pattern (`%d/%m/%y`) or an order
(`dmy`, `mdy`, `ymd`) for numeric dates like 20/01/19. ISO dates (2019-01-20, with or without a
time) are always read as ISO. Without a format, numeric dates are read day- or month-first only
when every value of the column fits one reading and not the other; a column whose every value
fits both (03/01/19) is a question for the analyst, never a pick. Year indexes ("1-01": year 1,
month 01) are refused with that explanation, and dates outside 1900–2099 are named.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

from kpi_core.messages import Message
from kpi_core.periods import PeriodError, iso_week, parse_period

ORDERS = ("dmy", "mdy", "ymd")
FIRST_YEAR, LAST_YEAR = 1900, 2099
# How numeric dates are read, as a message names it ("day first" / "日在前").
ORDER_WORDS = {"dmy": Message("dd_w_dmy"), "mdy": Message("dd_w_mdy"), "ymd": Message("dd_w_ymd")}

# A time after the day ("2019-01-20 00:00:00", "20/01/19 9:30 PM"): the month needs the day only.
TIME = r"(?:[T\s]+\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:[AaPp][Mm])?)?\s*$"
_TIME = re.compile(TIME)
_ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_NUMERIC = re.compile(r"^(\d{1,4})([./-])(\d{1,2})\2(\d{1,4})$")
_CHINESE = re.compile(r"^(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]$")
_YEAR_INDEX = re.compile(r"^\d{1,2}-\d{2}$")


class DateFormatError(ValueError):
    """A date format the analyst wrote that cannot be used."""


def check_format(fmt: str) -> Message | None:
    """What is wrong with a date format, or None. Empty means: detect."""
    text = (fmt or "").strip()
    if not text or text.lower() in ORDERS:
        return None
    if "%" not in text:
        return Message("dd_format_unknown", text=text)
    try:
        datetime(2019, 1, 20).strftime(text)
        datetime.strptime(datetime(2019, 1, 20).strftime(text), text)
    except ValueError as exc:  # Python's own words (a pattern's bad directive), as it said them
        return Message("dd_format_unusable", text=text, why=str(exc))
    if (
        not any(d in text for d in ("%d", "%j"))
        or "%m" not in text
        and "%b" not in text
        and ("%B" not in text)
    ):
        return Message("dd_format_day_month", text=text)
    return None


@dataclass
class Reading:
    """The dates of a column's distinct texts (the time of day already cut off)."""

    dates: dict[str, date] = field(default_factory=dict)
    # text → why it is not a date: said after the text ("'1-01' is not a date", "“1-01”不是日期")
    bad: dict[str, Message] = field(default_factory=dict)
    order: str = ""  # how numeric dates were read: dmy, mdy, ymd ('' when there were none)
    detected: bool = False  # the order came from the values, not from the profile
    ambiguous: list[str] = field(default_factory=list)  # examples, when no order could be told


def day_text(text: str) -> str:
    """The text without a time of day: what `read` is given."""
    return _TIME.sub("", text.strip())


def read(texts: Iterable[str], fmt: str = "", *, months: bool = True) -> Reading:
    """The dates in `texts` (distinct, non-blank, time cut off) under `fmt`. With `months`,
    text naming a whole month (2026-09, 2026年9月) is its first day, as the date column of a
    monthly tracker is; other columns need days."""
    fmt = (fmt or "").strip()
    order = fmt.lower() if fmt.lower() in ORDERS else ""
    pattern = fmt if "%" in fmt else ""
    out = Reading(order=order)
    numeric: dict[str, tuple[int, int, int]] = {}
    for text in texts:
        if (m := _ISO.match(text)) is not None:
            _put(out, text, int(m[1]), int(m[2]), int(m[3]))
        elif pattern:
            try:
                got = datetime.strptime(text, pattern).date()
            except ValueError:
                out.bad[text] = Message("dd_no_match", fmt=pattern)
            else:
                _put(out, text, got.year, got.month, got.day)
        elif (m := _NUMERIC.match(text)) is not None:
            numeric[text] = (int(m[1]), int(m[3]), int(m[4]))
            if len(m[1]) == 4:
                _put(out, text, int(m[1]), int(m[3]), int(m[4]))
                numeric.pop(text)
        elif (m := _CHINESE.match(text)) is not None:
            _put(out, text, int(m[1]), int(m[2]), int(m[3]))
        elif _YEAR_INDEX.match(text):
            out.bad[text] = _YEAR_INDEX_WHY
        elif months:
            try:
                # An ISO week (2019-W15) counts in the month of its Thursday (periods.iso_week).
                week = iso_week(text)
                period = None if week else parse_period(text)
            except (PeriodError, TypeError, ValueError):
                out.bad[text] = _NOT_A_DATE
            else:
                if week:
                    _put(out, text, week[1].year, week[1].month, 1)
                elif period.grain == "M":
                    _put(out, text, period.start.year, period.start.month, period.start.day)
                else:
                    out.bad[text] = Message("dd_not_one_month")
        else:
            out.bad[text] = _NOT_A_DATE
    if numeric:
        _numeric(out, numeric)
    return out


def _year(y: int, digits: int) -> int:
    # strptime's %y: 69–99 are the 1900s, 00–68 the 2000s.
    if digits > 2:
        return y
    return 1900 + y if y >= 69 else 2000 + y


def _valid(y: int, m: int, d: int) -> bool:
    try:
        date(y, m, d)
    except ValueError:
        return False
    return True


def _numeric(out: Reading, numeric: dict[str, tuple[int, int, int]]) -> None:
    """Day- or month-first dates (20/01/19), by the given order or by the values."""
    parts = {t: (a, b, _year(y, _digits(t))) for t, (a, b, y) in numeric.items()}
    if out.order == "ymd":
        for text in parts:
            out.bad[text] = Message("dd_not_year_first")
        return
    order = out.order
    if not order:
        dmy = all(_valid(y, b, a) for a, b, y in parts.values())
        mdy = all(_valid(y, a, b) for a, b, y in parts.values())
        if dmy and mdy and any(a != b for a, b, _ in parts.values()):
            out.ambiguous = sorted(t for t, (a, b, _) in parts.items() if a != b)[:3]
            return
        if dmy or mdy:
            order, out.detected = ("dmy" if dmy else "mdy"), True
        else:
            # Some fit only day first, others only month first: neither reading is safe.
            for text in parts:
                out.bad[text] = Message("dd_neither_order")
            return
        out.order = order
    for text, (a, b, y) in parts.items():
        day, month = (a, b) if order == "dmy" else (b, a)
        if _valid(y, month, day):
            _put(out, text, y, month, day)
        else:
            out.bad[text] = Message("dd_not_in_order", words=ORDER_WORDS[order], order=order)


def _digits(text: str) -> int:
    m = _NUMERIC.match(text)
    return len(m[4]) if m else 4


def _put(out: Reading, text: str, y: int, m: int, d: int) -> None:
    if not _valid(y, m, d):
        out.bad[text] = _NOT_A_DATE
    elif not FIRST_YEAR <= y <= LAST_YEAR:
        out.bad[text] = Message("dd_implausible", first=FIRST_YEAR, last=LAST_YEAR)
    else:
        out.dates[text] = date(y, m, d)


def readings(text: str) -> Message | str:
    """'03/01/19' read both ways, for the question to the analyst."""
    m = _NUMERIC.match(text)
    if not m:
        return text
    a, b, y = int(m[1]), int(m[3]), _year(int(m[4]), len(m[4]))
    dmy = date(y, b, a).isoformat() if _valid(y, b, a) else "—"
    mdy = date(y, a, b).isoformat() if _valid(y, a, b) else "—"
    return Message("dd_readings", text=text, dmy=dmy, mdy=mdy)


_NOT_A_DATE = Message("dd_not_a_date")
_YEAR_INDEX_WHY = Message("dd_year_index")
