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
from kpi_core.numbers import NumberError, parse_number

_CODE = re.compile(r"^[A-Za-z0-9_.\-]+$")
_TRUE = {"true", "yes", "y", "1", "是", "√", "x", "✓"}
_FALSE = {"false", "no", "n", "0", "否", ""}
_LEVELS = ("baseline", "target", "challenge", "low", "high", "tolerance")
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

    def add(self, row: int | None, column: str | None, message: str) -> None:
        header = self.sheet.headers.get(column, column) if column else None
        self.problems.append(Problem(self.sheet.name, row, header, message))

    def text(self, row: int, cells: dict, col: str, required: bool = False) -> str | None:
        v = cells.get(col)
        if v is None:
            if required:
                self.add(row, col, "is empty — fill it in")
            return None
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        return str(v).strip()

    def number(self, row: int, cells: dict, col: str, required: bool = False) -> float | None:
        try:
            parsed = parse_number(cells.get(col))
        except NumberError as exc:
            self.add(row, col, f"{exc} — write a plain number such as 1250000, 12.5万 or 96%")
            return None
        if parsed is None:
            if required:
                self.add(row, col, "is empty — fill in a number")
            return None
        return parsed.value

    def choice(self, row: int, cells: dict, col: str, aliases: dict[str, str], default=None):
        v = self.text(row, cells, col)
        if v is None:
            if default is None:
                self.add(
                    row, col, f"is empty — use one of {', '.join(sorted(set(aliases.values())))}"
                )
            return default
        got = aliases.get(v.lower()) or aliases.get(v)
        if got is None:
            self.add(row, col, f"'{v}' is not one of {', '.join(sorted(set(aliases.values())))}")
        return got


def _did_you_mean(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f" — did you mean '{close[0]}'?" if close else ""


def _check_headers(sheet: workbook.Sheet, problems: list[Problem]) -> bool:
    missing = [c for c in workbook.REQUIRED[sheet.key] if c not in sheet.headers]
    for col in missing:
        names = " / ".join(workbook.COLUMNS[sheet.key][col][:2])
        problems.append(
            Problem(sheet.name, 1, None, f"column '{names}' is missing — add it to the header row")
        )
    return not missing


def _node(text: str, units: dict, kpis: dict) -> tuple[str, str | None, str | None]:
    """'UNIT' or 'UNIT/KPI' → (unit, kpi, error)."""
    unit, _, kpi = text.partition("/")
    unit, kpi = unit.strip(), kpi.strip() or None
    if unit not in units:
        return unit, kpi, f"unknown unit '{unit}'{_did_you_mean(unit, list(units))}"
    if kpi is not None and kpi not in kpis:
        return unit, kpi, f"unknown KPI '{kpi}'{_did_you_mean(kpi, list(kpis))}"
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
        ck.add(
            row,
            col,
            f"{value:g} in a percent KPI — did you mean {value:g}%? Write {value:g}% or {value / 100:g}",
        )
        return
    if lo is not None and value < lo:
        ck.add(row, col, f"{value:g} is below the KPI's allowed minimum {lo:g}")
    if hi is not None and value > hi:
        ck.add(row, col, f"{value:g} is above the KPI's allowed maximum {hi:g}")


def _order_problem(lo_name: str, lo: float, hi_name: str, hi: float, kpi: dict) -> str:
    """Levels out of order: baseline → target → challenge rise for an `up` KPI, fall for `down`."""
    is_percent = (kpi.get("unit") or "").strip() in {"%", "％"}

    def shown(v: float) -> str:
        return f"{v * 100:g}%" if is_percent else f"{v:g}"

    if kpi["direction"] == "down":
        return (
            f"{hi_name} {shown(hi)} is above {lo_name} {shown(lo)} for a KPI where lower is "
            f"better — the {hi_name} must be at or below the {lo_name}"
        )
    return (
        f"{hi_name} {shown(hi)} is below {lo_name} {shown(lo)} for a KPI where higher is "
        f"better — the {hi_name} must be at or above the {lo_name}"
    )


def _known_and_allowed(ck: _Checker, row, unit, code, units, kpis, scope, cat) -> bool:
    """A row's unit and KPI exist and the unit is inside the importer's scope."""
    if unit is None or code is None:
        return False
    if unit not in units:
        ck.add(row, "unit", f"unknown unit '{unit}'{_did_you_mean(unit, list(units))}")
        return False
    if code not in kpis:
        ck.add(row, "kpi", f"unknown KPI '{code}'{_did_you_mean(code, list(kpis))}")
        return False
    if not _scope_allows(unit, scope, cat):
        ck.add(row, "unit", f"unit '{unit}' is outside your scope")
        return False
    return True
