"""Reading numbers the way people write them in Excel, and writing them the local way."""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass

from kpi_core.errors import KpiError
from kpi_core.messages import Message


class NumberError(KpiError):
    """A cell that should hold a number does not."""


@dataclass(frozen=True)
class Parsed:
    value: float
    percent: bool  # written as a percentage (text '96%'), so already a fraction


_SCALES = {"万": 1e4, "亿": 1e8, "千": 1e3, "百万": 1e6, "k": 1e3, "m": 1e6, "b": 1e9}
_GROUPED = re.compile(r"\d{1,3}(?:,\d{2,3})*,\d{3}")
_NUMBER = re.compile(r"^([+-]?)(\d+(?:\.\d*)?|\.\d+)(?:e([+-]?\d+))?(百万|万|亿|千|k|m|b)?(%)?$")


def parse_number(cell: object) -> Parsed | None:
    """A cell as a number: None for blank; raises NumberError for text that is not a number.

    Accepts 1,234.5 · 12.5万 · 1.2亿 · 85% · (123) for -123 · full-width digits · ¥/$ signs.
    """
    if cell is None or (isinstance(cell, str) and not cell.strip()):
        return None
    if isinstance(cell, bool):
        raise NumberError(Message("nb_err_not_a_number", value=str(cell)))
    if isinstance(cell, int | float):
        if isinstance(cell, float) and math.isnan(cell):
            return None
        return Parsed(float(cell), False)
    # NFKC makes full-width digits and signs plain; the minus sign U+2212 (copied from Word or a
    # web page) it leaves alone.
    text = unicodedata.normalize("NFKC", str(cell)).strip().replace("\u2212", "-")
    negative = text.startswith("(") and text.endswith(")")
    if negative:
        text = text[1:-1]
    text = re.sub(r"[\s¥$€£]|元", "", text).lower()
    # Commas group thousands (1,234 · 1,23,456); "1,5" is a decimal comma, which read as a
    # grouping would be ten times too big: refused rather than guessed.
    whole = re.match(r"[+-]?([\d,]*)", text)[1]
    if "," in whole and not _GROUPED.fullmatch(whole):
        raise NumberError(Message("nb_err_decimal_comma", value=str(cell)))
    text = text.replace(",", "")
    m = _NUMBER.match(text)
    if not m:
        raise NumberError(Message("nb_err_not_a_number", value=str(cell)))
    value = float(m[2]) * (10 ** int(m[3]) if m[3] else 1)
    if m[4]:
        value *= _SCALES[m[4]]
    if m[5]:
        value /= 100
    if m[1] == "-" or negative:
        value = -value
    return Parsed(value, bool(m[5]))


def format_number(value: float | None, lang: str, decimals: int = 1) -> str:
    """Compact: 6,000万 / 1.25亿 in Chinese; 60.0M / 915.1K / 1.25B in English."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    v = abs(value)
    sign = "-" if value < 0 else ""
    # (shown from, divided by, suffix), largest first.
    scales = (
        ((1e8, 1e8, "亿"), (1e4, 1e4, "万"))
        if lang == "zh"
        else ((1e9, 1e9, "B"), (1e6, 1e6, "M"), (1e4, 1e3, "K"))
    )
    for i, (start, divisor, suffix) in enumerate(scales):
        if v >= start:
            scaled = v / divisor
            # Decimals by the rounded value, so 99.9999 shows as 100.0, not 100.00.
            digits = _compact_decimals(round(scaled, _compact_decimals(scaled)))
            # 999,999 must not read "1000K" / "100.00万": it rounds up into the next scale.
            if i > 0 and round(scaled, digits) * divisor >= scales[i - 1][0]:
                _, bigger_div, bigger_suffix = scales[i - 1]
                scaled, suffix = v / bigger_div, bigger_suffix
                digits = _compact_decimals(scaled)
            return f"{sign}{scaled:,.{digits}f}{suffix}"
    return f"{sign}{v:,.{decimals}f}"


def _compact_decimals(x: float) -> int:
    return 0 if x >= 1000 else 1 if x >= 100 else 2
