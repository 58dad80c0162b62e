"""The rules a KPI-system workbook row meets, shared by every sheet's reader and by the planning
grids: the plan a workbook becomes, a checker that collects each problem with its sheet, row
and column, known codes inside the importer's scope, levels in order and in range."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from datetime import date

from kpi_core import workbook
from kpi_core.access import Scope
from kpi_core.catalog import Catalog
from kpi_core.errors import Problem
from kpi_core.messages import Items, Message
from kpi_core.numbers import NumberError, parse_number

_CODE = re.compile(r"^[A-Za-z0-9_.\-]+$")
_TRUE = {"true", "yes", "y", "1", "是", "√", "x", "✓"}
_FALSE = {"false", "no", "n", "0", "否", ""}
_LEVELS = ("baseline", "target", "challenge", "low", "high", "tolerance")
# The levels a target's order check names, as words of a sentence ("target 90 is below baseline
# 100"): "目标值 90 低于基准值 100".
LEVEL_WORDS = {
    "baseline": Message("sy_w_baseline"),
    "target": Message("sy_w_target"),
    "challenge": Message("sy_w_challenge"),
}
EPOCH = date(1900, 1, 1)  # valid_from of a tree or target nobody has changed yet


@dataclass
class Plan:
    units: list[dict] = field(default_factory=list)
    kpis: list[dict] = field(default_factory=list)
    profiles: dict[str, list[float]] = field(default_factory=dict)
    tree: dict[tuple[str, str | None], list[dict]] = field(default_factory=dict)
    targets: list[dict] = field(default_factory=list)
    actuals: list[tuple[str, str, date, float]] = field(default_factory=list)


class _Checker:
    """Collects problems while reading one sheet; helpers return None for a bad cell."""

    def __init__(self, sheet: workbook.Sheet, problems: list[Problem]):
        self.sheet = sheet
        self.problems = problems

    def add(self, row: int | None, column: str | None, message: Message) -> None:
        header = self.sheet.headers.get(column, column) if column else None
        self.problems.append(Problem(self.sheet.name, row, header, message))

    def text(self, row: int, cells: dict, col: str, required: bool = False) -> str | None:
        v = cells.get(col)
        if v is None:
            if required:
                self.add(row, col, Message("sy_empty"))
            return None
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        return str(v).strip()

    def number(self, row: int, cells: dict, col: str, required: bool = False) -> float | None:
        try:
            parsed = parse_number(cells.get(col))
        except NumberError as exc:
            self.add(row, col, Message("sy_plain_number", sub=exc.said()))
            return None
        if parsed is None:
            if required:
                self.add(row, col, Message("sy_empty_number"))
            return None
        return parsed.value

    def choice(self, row: int, cells: dict, col: str, aliases: dict[str, str], default=None):
        v = self.text(row, cells, col)
        if v is None:
            if default is None:
                self.add(row, col, Message("sy_empty_choice", choices=_choices(aliases)))
            return default
        got = aliases.get(v.lower()) or aliases.get(v)
        if got is None:
            self.add(row, col, Message("sy_not_a_choice", value=v, choices=_choices(aliases)))
        return got


def _choices(aliases: dict[str, str]) -> Items:
    # The values a column takes are codes (up, sum, …): the same words in both languages.
    return Items(sorted(set(aliases.values())), commas=True)


def _did_you_mean(message: Message, word: str, options: list[str]) -> Message:
    """`message`, followed by the closest of `options` to `word` when one is close."""
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return Message("sy_did_you_mean", sub=message, code=close[0]) if close else message


def unknown_unit(unit: str, units: dict) -> Message:
    return _did_you_mean(Message("sy_unknown_unit", unit=unit), unit, list(units))


def unknown_kpi(kpi: str, kpis: dict) -> Message:
    return _did_you_mean(Message("sy_unknown_kpi", kpi=kpi), kpi, list(kpis))


def _check_headers(sheet: workbook.Sheet, problems: list[Problem]) -> bool:
    missing = [c for c in workbook.REQUIRED[sheet.key] if c not in sheet.headers]
    for col in missing:
        names = " / ".join(workbook.COLUMNS[sheet.key][col][:2])
        problems.append(Problem(sheet.name, 1, None, Message("sy_missing_column", names=names)))
    return not missing


def _node(text: str, units: dict, kpis: dict) -> tuple[str, str | None, Message | None]:
    """'UNIT' or 'UNIT/KPI' → (unit, kpi, error)."""
    unit, _, kpi = text.partition("/")
    unit, kpi = unit.strip(), kpi.strip() or None
    if unit not in units:
        return unit, kpi, unknown_unit(unit, units)
    if kpi is not None and kpi not in kpis:
        return unit, kpi, unknown_kpi(kpi, kpis)
    return unit, kpi, None


def _is_within(unit: str, ancestor: str, units: dict) -> bool:
    seen = set()
    while unit is not None and unit not in seen:
        if unit == ancestor:
            return True
        seen.add(unit)
        unit = units.get(unit, {}).get("parent")
    return False


def _scope_allows(code: str, scope: Scope, cat: Catalog) -> bool:
    if scope.everything:
        return True
    unit = cat.unit_by_code.get(code)
    return unit is not None and scope.allows(unit.id)


def _grain_ok(kpi: dict, value: float, ck: _Checker, row: int, col: str) -> None:
    """Range checks from the KPI definition, and the 'did you mean 96%?' guard."""
    lo, hi = kpi.get("min"), kpi.get("max")
    is_percent = (kpi.get("unit") or "").strip() in {"%", "％"}
    if is_percent and value > 1.5 and (hi is None or hi < value):
        ck.add(row, col, Message("sy_percent", value=f"{value:g}", fraction=f"{value / 100:g}"))
        return
    if lo is not None and value < lo:
        ck.add(row, col, Message("sy_below_min", value=f"{value:g}", min=f"{lo:g}"))
    if hi is not None and value > hi:
        ck.add(row, col, Message("sy_above_max", value=f"{value:g}", max=f"{hi:g}"))


def _order_problem(lo_name: str, lo: float, hi_name: str, hi: float, kpi: dict) -> Message:
    """Levels out of order: baseline → target → challenge rise for an `up` KPI, fall for `down`."""
    is_percent = (kpi.get("unit") or "").strip() in {"%", "％"}

    def shown(v: float) -> str:
        return f"{v * 100:g}%" if is_percent else f"{v:g}"

    return Message(
        "sy_order_down" if kpi["direction"] == "down" else "sy_order_up",
        hi=LEVEL_WORDS[hi_name], hi_value=shown(hi), lo=LEVEL_WORDS[lo_name], lo_value=shown(lo),
    )  # fmt: skip


def _known_and_allowed(ck: _Checker, row, unit, code, units, kpis, scope, cat) -> bool:
    """A row's unit and KPI exist and the unit is inside the importer's scope."""
    if unit is None or code is None:
        return False
    if unit not in units:
        ck.add(row, "unit", unknown_unit(unit, units))
        return False
    if code not in kpis:
        ck.add(row, "kpi", unknown_kpi(code, kpis))
        return False
    if not _scope_allows(unit, scope, cat):
        ck.add(row, "unit", Message("sy_outside_scope", unit=unit))
        return False
    return True
