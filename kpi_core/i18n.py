"""Chinese and English: status names, units and KPI values formatted the local way, and `t()`
(from kpi_core.texts, where the catalogs are read) for every other text."""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING

from kpi_core.library import Kpi
from kpi_core.numbers import format_number
from kpi_core.scoring import Levels

# The catalogs and t() live in kpi_core.texts, which imports nothing of the product (the core's
# errors render coded messages with it); they are offered here too, where pages look for them.
from kpi_core.texts import CATALOGS as CATALOGS
from kpi_core.texts import LANGS as LANGS
from kpi_core.texts import LOCALE_DIR as LOCALE_DIR
from kpi_core.texts import N_ as N_
from kpi_core.texts import catalog_path as catalog_path
from kpi_core.texts import known as known
from kpi_core.texts import load_catalog as load_catalog
from kpi_core.texts import t as t

if TYPE_CHECKING:  # completeness builds on modules that format with this one
    from kpi_core.completeness import Freshness

STATUS_ICON = {"green": "●", "amber": "▲", "red": "■", "grey": "○"}
STATUS_COLOR = {"green": "#1a9850", "amber": "#f0a202", "red": "#d73027", "grey": "#9e9e9e"}

_UNIT_EN = {
    "元": "CNY",
    "个": "",
    "人": "people",
    "天": "days",
    "分": "pts",
    "次": "",
    "小时": "h",
    "件": "pcs",
    "项": "items",
    "家": "",
    "台": "units",
}


def status_label(status: str, lang: str) -> str:
    """Colour-blind safe: a shape and a word, never colour alone."""
    return f"{STATUS_ICON[status]} {t(status, lang)}"


def unit_label(unit: str, lang: str) -> str:
    return unit if lang == "zh" else _UNIT_EN.get(unit, unit)


def format_value(value: float | None, kpi: Kpi, lang: str, compact: bool = True) -> str:
    """A KPI value with its unit: 96.3% · 6,000万元 · 60.0M CNY · 4.2 天."""
    if value is None:
        return "—"
    decimals = 1 if kpi.decimals is None else kpi.decimals
    if kpi.is_percent:
        return f"{value * 100:.{max(decimals, 1)}f}%"
    text = format_number(value, lang, decimals) if compact else f"{value:,.{decimals}f}"
    suffix = unit_label(kpi.unit, lang)
    if not suffix:
        return text
    return f"{text}{suffix}" if lang == "zh" else f"{text} {suffix}"


def format_target(levels: Levels | None, kpi: Kpi, lang: str) -> str:
    """The target as people read it: the target value, or the green band of a `range` KPI."""
    if levels is None:
        return "—"
    if kpi.direction == "range":
        return f"{format_value(levels.low, kpi, lang)} – {format_value(levels.high, kpi, lang)}"
    return format_value(levels.target, kpi, lang)


def format_delta(current: float | None, previous: float | None, kpi: Kpi, lang: str) -> str | None:
    """Change against a previous value: percentage points for percent KPIs, a % change for
    others, and the plain difference where the previous value was 0 (an incident count)."""
    if current is None or previous is None:
        return None
    if kpi.is_percent:
        return f"{(current - previous) * 100:+.1f}pp"
    if previous == 0:
        diff = current - previous
        text = f"{diff:+,.{0 if float(diff).is_integer() else 1}f}"
        suffix = unit_label(kpi.unit, lang)
        return text + (suffix if lang == "zh" else f" {suffix}" if suffix else "")
    return f"{(current - previous) / abs(previous) * 100:+.1f}%"


def is_flat(delta: str) -> bool:
    """A formatted change that rounds to nothing (+0.0%, -0.0pp, +0)."""
    digits = "".join(ch for ch in delta if ch.isdigit())
    return digits != "" and set(digits) == {"0"}


MONTH_STATES = {"complete": N_("cm_complete"), "published": N_("cm_published")}
# A freshness state's words: on a page, and the wall's short form.
FRESHNESS = {
    "up_to_date": (N_("fr_up_to_date"), N_("bs_fr_up_to_date")),
    "due": (N_("fr_due"), N_("bs_fr_due")),
    "partial": (N_("fr_partial"), N_("bs_fr_partial")),
    "overdue": (N_("fr_overdue"), N_("bs_fr_overdue")),
}


def month_state(state: str, loaded: int, expected: int, lang: str) -> str:
    """A month's state as a page or the wall shows it: "partial · 7 of 52 values"."""
    if state in MONTH_STATES:
        return t(MONTH_STATES[state], lang)
    return t("cm_partial", lang, n=loaded, total=expected)


def freshness_text(f: Freshness, grace_days: int, lang: str, wall: bool = False) -> str:
    """A freshness row's state in words, led by a shape so it reads without colour; `wall`:
    the short form the big screen has room for (the month is in its own column there)."""
    month = period_label(f"{f.month:%Y-%m}", lang)
    key = FRESHNESS[f.state][wall]
    if f.state == "up_to_date":
        return t(key, lang, month=month)
    if f.state == "due":
        end = date(f.month.year + f.month.month // 12, f.month.month % 12 + 1, 1)
        by = end + timedelta(days=grace_days - 1)  # the last day of grace
        return t(key, lang, month=month, date=f"{by:%m-%d}" if wall else f"{by}")
    if f.state == "partial":
        return t(key, lang, month=month, n=f.status.loaded, total=f.status.expected)
    return t(key, lang, month=month, days=f.days)


def join(items: list[str], lang: str, limit: int = 6) -> str:
    """Names in a sentence, the local way (、 or ,); past `limit`, "and N more"."""
    shown = list(items[:limit])
    if len(items) > limit:
        shown.append(t("cm_more", lang, n=len(items) - limit))
    return ("、" if lang == "zh" else ", ").join(shown)


def period_label(label: str, lang: str) -> str:
    """'2026-03' → '2026年3月' in Chinese; '2026-Q1' → '2026年第1季度'."""
    if lang != "zh":
        return label
    if "-Q" in label:
        y, q = label.split("-Q")
        return f"{y}年第{q}季度"
    if "-" in label:
        y, m = label.split("-")
        return f"{y}年{int(m)}月"
    return f"{label}年"
