"""Importing a KPI-system workbook: validate everything, then write all of it or nothing.

Every problem is collected with its sheet, row and column before anything is written; a file with
any problem is refused whole (`ValidationError`), so the warehouse never holds half an import.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import pandas as pd

from kpi_core import actuals, audit, clock, formula, targets, workbook
from kpi_core.access import Scope
from kpi_core.catalog import SCORECARD, Catalog, load_catalog
from kpi_core.errors import Problem, ValidationError
from kpi_core.library import (
    AGGREGATION_ALIASES,
    DIRECTION_ALIASES,
    KIND_ALIASES,
    PERSPECTIVE_ALIASES,
)
from kpi_core.numbers import NumberError, parse_number
from kpi_core.org import KIND_ALIASES as UNIT_KIND_ALIASES
from kpi_core.periods import PeriodError, month_of, parse_period
from kpi_core.warehouse import Warehouse

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


@dataclass
class ImportResult:
    summary: dict[str, int]
    batch_id: int | None
    dry_run: bool
    warnings: list[Problem] = field(default_factory=list)


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


def parse(sheets: dict[str, workbook.Sheet], cat: Catalog, scope: Scope) -> Plan:
    """Turn raw sheets into a plan; raises ValidationError listing every problem."""
    problems: list[Problem] = []
    plan = Plan()
    usable = {k: s for k, s in sheets.items() if _check_headers(s, problems)}
    if not sheets:
        problems.append(
            Problem(
                "(workbook)",
                None,
                None,
                "no known sheet — name sheets kpis/指标库, org_units/组织, tree/指标树, "
                "targets/目标, actuals/实际",
            )
        )
    if not scope.everything:
        for key in ("kpis", "org_units", "phasing"):
            if key in sheets:
                problems.append(
                    Problem(sheets[key].name, None, None, "only an admin may change definitions")
                )

    units = {u.code: {"parent": None, "kind": u.kind} for u in cat.units.values()}
    for u in cat.units.values():
        if u.parent_id is not None:
            units[u.code]["parent"] = cat.units[u.parent_id].code
    kpis = {
        k.code: {
            "aggregation": k.aggregation,
            "direction": k.direction,
            "unit": k.unit,
            "min": k.min_value,
            "max": k.max_value,
            "deps": k.dependencies(),
        }
        for k in cat.kpis.values()
    }
    profiles = set(cat.profiles) | {"even"}

    if "phasing" in usable:
        _parse_phasing(usable["phasing"], plan, problems)
        profiles |= set(plan.profiles)
    if "org_units" in usable:
        _parse_units(usable["org_units"], plan, units, problems)
    if "kpis" in usable:
        _parse_kpis(usable["kpis"], plan, kpis, problems)
    if "tree" in usable:
        _parse_tree(usable["tree"], plan, units, kpis, scope, cat, problems)
    if "targets" in usable:
        _parse_targets(usable["targets"], plan, units, kpis, profiles, scope, cat, problems)
    if "actuals" in usable:
        _parse_actuals(usable["actuals"], plan, units, kpis, scope, cat, problems)
    if problems:
        raise ValidationError(problems)
    return plan


def _parse_phasing(sheet, plan: Plan, problems) -> None:
    ck = _Checker(sheet, problems)
    first_row: dict[str, int] = {}
    for row, cells in sheet.rows:
        name = ck.text(row, cells, "name", required=True)
        shares = [ck.number(row, cells, f"m{i}", required=True) for i in range(1, 13)]
        if name is None or any(s is None for s in shares):
            continue
        if name in first_row:
            ck.add(row, "name", f"'{name}' is listed twice (first at row {first_row[name]})")
            continue
        first_row[name] = row
        if any(s < 0 for s in shares) or sum(shares) <= 0:
            ck.add(row, "m1", "shares must be zero or more and not all zero")
            continue
        plan.profiles[name] = shares


def _parse_units(sheet, plan: Plan, units: dict, problems) -> None:
    ck = _Checker(sheet, problems)
    first_row: dict[str, int] = {}
    for order, (row, cells) in enumerate(sheet.rows):
        code = ck.text(row, cells, "code", required=True)
        if code is None:
            continue
        if not _CODE.match(code):
            ck.add(row, "code", f"'{code}' — use letters, digits, '_', '-' or '.' only")
            continue
        if code in first_row:
            ck.add(row, "code", f"'{code}' is a duplicated code (first at row {first_row[code]})")
            continue
        first_row[code] = row
        name_zh = ck.text(row, cells, "name_zh")
        name_en = ck.text(row, cells, "name_en")
        if not name_zh and not name_en:
            ck.add(row, "name_zh", "a unit needs a name (Chinese or English)")
        kind = ck.choice(row, cells, "kind", UNIT_KIND_ALIASES, default="department")
        parent = ck.text(row, cells, "parent")
        item = {
            "code": code,
            "name_zh": name_zh or name_en,
            "name_en": name_en or name_zh,
            "parent": parent,
            "kind": kind,
            "sort_order": order,
            "_row": row,
        }
        plan.units.append(item)
        units[code] = {"parent": parent, "kind": kind}
    for item in plan.units:
        parent = item["parent"]
        if parent is not None and parent not in units:
            ck.add(
                item["_row"],
                "parent",
                f"unknown unit '{parent}'{_did_you_mean(parent, list(units))}",
            )
    # A cycle in the parent chain would make every subtree infinite.
    for item in plan.units:
        seen, code = set(), item["code"]
        while code is not None and code in units:
            if code in seen:
                ck.add(
                    item["_row"],
                    "parent",
                    f"'{item['code']}' is its own ancestor — fix the parents",
                )
                break
            seen.add(code)
            code = units[code]["parent"]


def _parse_kpis(sheet, plan: Plan, kpis: dict, problems) -> None:
    ck = _Checker(sheet, problems)
    first_row: dict[str, int] = {}
    rows: dict[str, int] = {}
    for order, (row, cells) in enumerate(sheet.rows):
        code = ck.text(row, cells, "code", required=True)
        if code is None:
            continue
        if not _CODE.match(code):
            ck.add(row, "code", f"'{code}' — use letters, digits, '_', '-' or '.' only")
            continue
        if code in first_row:
            ck.add(row, "code", f"'{code}' is a duplicated code (first at row {first_row[code]})")
            continue
        first_row[code] = row
        name_zh, name_en = ck.text(row, cells, "name_zh"), ck.text(row, cells, "name_en")
        if not name_zh and not name_en:
            ck.add(row, "name_zh", "a KPI needs a name (Chinese or English)")
        direction = ck.choice(row, cells, "direction", DIRECTION_ALIASES)
        aggregation = ck.choice(row, cells, "aggregation", AGGREGATION_ALIASES)
        perspective = kind = None
        if cells.get("perspective") is not None:
            perspective = ck.choice(row, cells, "perspective", PERSPECTIVE_ALIASES)
        if cells.get("kind") is not None:
            kind = ck.choice(row, cells, "kind", KIND_ALIASES)
        veto_text = str(cells.get("veto") if cells.get("veto") is not None else "").strip().lower()
        if veto_text not in _TRUE | _FALSE:
            ck.add(row, "veto", f"'{cells.get('veto')}' — write true/false (是/否)")
        decimals = ck.number(row, cells, "decimals")
        item = {
            "code": code,
            "name_zh": name_zh or name_en,
            "name_en": name_en or name_zh,
            "unit": ck.text(row, cells, "unit") or "",
            "direction": direction,
            "aggregation": aggregation,
            "numerator": ck.text(row, cells, "numerator"),
            "denominator": ck.text(row, cells, "denominator"),
            "formula": ck.text(row, cells, "formula"),
            "perspective": perspective,
            "kind": kind,
            "veto": veto_text in _TRUE,
            "decimals": int(decimals) if decimals is not None else None,
            "caliber": ck.text(row, cells, "caliber"),
            "source": ck.text(row, cells, "source"),
            "owner": ck.text(row, cells, "owner"),
            "min_value": ck.number(row, cells, "min"),
            "max_value": ck.number(row, cells, "max"),
            "sort_order": order,
        }
        plan.kpis.append(item)
        rows[code] = row
        kpis[code] = {
            "aggregation": aggregation,
            "direction": direction,
            "unit": item["unit"],
            "min": item["min_value"],
            "max": item["max_value"],
            "deps": set(),
        }
    for item in plan.kpis:
        row, code = rows[item["code"]], item["code"]
        if item["aggregation"] == "ratio":
            for col in ("numerator", "denominator"):
                ref = item[col]
                if ref is None:
                    ck.add(row, col, "a ratio KPI needs the codes of its numerator and denominator")
                elif ref not in kpis:
                    ck.add(row, col, f"unknown KPI '{ref}'{_did_you_mean(ref, list(kpis))}")
            kpis[code]["deps"] = {c for c in (item["numerator"], item["denominator"]) if c}
        elif item["aggregation"] == "formula":
            if not item["formula"]:
                ck.add(row, "formula", "a formula KPI needs a formula, e.g. AVAIL * PERF * QUAL")
                continue
            try:
                refs = formula.references(formula.parse(item["formula"]))
            except formula.FormulaError as exc:
                ck.add(row, "formula", f"{exc}")
                continue
            for ref in sorted(refs - set(kpis)):
                ck.add(
                    row, "formula", f"names a missing KPI '{ref}'{_did_you_mean(ref, list(kpis))}"
                )
            kpis[code]["deps"] = refs
    cycle = formula.find_cycle({c: v["deps"] for c, v in kpis.items()})
    if cycle:
        ck.add(
            rows.get(cycle[0]),
            "formula",
            f"KPIs depend on each other in a cycle: {' → '.join(cycle)}",
        )


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


def _parse_tree(sheet, plan: Plan, units, kpis, scope, cat, problems) -> None:
    ck = _Checker(sheet, problems)
    groups: dict[tuple[str, str | None], list[dict]] = defaultdict(list)
    seen: dict[tuple, int] = {}
    fractions: dict[tuple, list[bool]] = defaultdict(list)
    for row, cells in sheet.rows:
        parent_text = ck.text(row, cells, "parent", required=True)
        child_text = ck.text(row, cells, "child", required=True)
        raw_weight = cells.get("weight")
        weight = ck.number(row, cells, "weight", required=True)
        if parent_text is None or child_text is None or weight is None:
            continue
        pu, pk, err = _node(parent_text, units, kpis)
        if err:
            ck.add(row, "parent", err)
            continue
        cu, ckpi, err = _node(child_text, units, kpis)
        if err:
            ck.add(row, "child", err)
            continue
        if weight < 0:
            ck.add(row, "weight", f"{weight:g} — a weight cannot be negative")
            continue
        if not _is_within(cu, pu, units):
            ck.add(row, "child", f"'{child_text}' is not in unit '{pu}' or below it")
            continue
        if not _scope_allows(pu, scope, cat):
            ck.add(row, "parent", f"unit '{pu}' is outside your scope")
            continue
        key = (pu, pk, cu, ckpi)
        if key in seen:
            ck.add(
                row,
                "child",
                f"'{child_text}' is listed twice under '{parent_text}' (row {seen[key]})",
            )
            continue
        seen[key] = row
        valid_from = None
        if cells.get("valid_from") is not None:
            try:
                valid_from = workbook.cell_date(cells["valid_from"])
            except ValueError:
                ck.add(
                    row, "valid_from", f"'{cells['valid_from']}' is not a date — write 2025-07-01"
                )
        percent_text = isinstance(raw_weight, str) and raw_weight.strip().endswith("%")
        fractions[(pu, pk)].append(not percent_text and weight <= 1)
        groups[(pu, pk)].append(
            {
                "unit": cu,
                "kpi": ckpi,
                "weight": weight * (100 if percent_text else 1),
                "valid_from": valid_from,
                "_row": row,
            }
        )
    for parent, children in groups.items():
        total = sum(c["weight"] for c in children)
        # Weights typed as Excel percentages (0.4 shown as 40%) arrive as fractions summing to 1.
        if all(fractions[parent]) and abs(total - 1) < 1e-6:
            for c in children:
                c["weight"] *= 100
            total = 100.0
        if abs(total - 100) > 0.01:
            name = parent[0] + (f"/{parent[1]}" if parent[1] else "")
            rows = ", ".join(str(c["_row"]) for c in children)
            ck.add(
                children[0]["_row"],
                "weight",
                f"weights under '{name}' (rows {rows}) sum to {total:g} — they must sum to 100",
            )
    # Cycles: follow child → parent edges.
    edges = defaultdict(set)
    for (pu, pk), children in groups.items():
        for c in children:
            edges[(pu, pk)].add((c["unit"], c["kpi"]))
    cycle = formula.find_cycle(
        {f"{u}/{k or ''}": {f"{cu}/{ck_ or ''}" for cu, ck_ in v} for (u, k), v in edges.items()}
    )
    if cycle:
        first = groups[(cycle[0].split("/")[0], cycle[0].split("/")[1] or None)][0]["_row"]
        pretty = " → ".join(c.rstrip("/") for c in cycle)
        ck.add(
            first, "child", f"the tree has a cycle: {pretty} — a node cannot be its own ancestor"
        )
    plan.tree = dict(groups)


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


def _parse_targets(sheet, plan, units, kpis, profiles, scope, cat, problems) -> None:
    ck = _Checker(sheet, problems)
    seen: dict[tuple, int] = {}
    for row, cells in sheet.rows:
        unit = ck.text(row, cells, "unit", required=True)
        code = ck.text(row, cells, "kpi", required=True)
        if not _known_and_allowed(ck, row, unit, code, units, kpis, scope, cat):
            continue
        try:
            period = parse_period(cells.get("period"))
        except PeriodError as exc:
            ck.add(row, "period", str(exc))
            continue
        key = (unit, code, period)
        if key in seen:
            ck.add(row, "period", f"{unit}/{code} {period} is listed twice (row {seen[key]})")
            continue
        seen[key] = row
        levels = {f: ck.number(row, cells, f) for f in _LEVELS}
        kpi = kpis[code]
        direction = kpi["direction"]
        if direction == "range":
            if levels["low"] is None and levels["high"] is None:
                ck.add(row, "low", "a range KPI needs low and/or high (the green band)")
            elif (
                levels["low"] is not None
                and levels["high"] is not None
                and levels["low"] > levels["high"]
            ):
                ck.add(row, "high", f"high {levels['high']:g} is below low {levels['low']:g}")
            if levels["tolerance"] is not None and levels["tolerance"] < 0:
                ck.add(row, "tolerance", "tolerance cannot be negative")
        else:
            if levels["target"] is None:
                ck.add(row, "target", "is empty — every target row needs a target value")
            b, t, c = levels["baseline"], levels["target"], levels["challenge"]
            sign = -1 if direction == "down" else 1
            pairs = [
                ("baseline", b, "target", t),
                ("target", t, "challenge", c),
                ("baseline", b, "challenge", c),
            ]
            for lo_name, lo, hi_name, hi in pairs:
                if lo is not None and hi is not None and sign * lo > sign * hi:
                    ck.add(row, hi_name, _order_problem(lo_name, lo, hi_name, hi, kpi))
                    break
            for f in ("baseline", "target", "challenge"):
                if levels[f] is not None:
                    _grain_ok(kpi, levels[f], ck, row, f)
        phasing = ck.text(row, cells, "phasing")
        if phasing is not None and phasing not in profiles:
            ck.add(
                row,
                "phasing",
                f"unknown phasing '{phasing}' — use 'even' or a profile of the phasing sheet",
            )
        valid_from = None
        if cells.get("valid_from") is not None:
            try:
                valid_from = workbook.cell_date(cells["valid_from"])
            except ValueError:
                ck.add(
                    row, "valid_from", f"'{cells['valid_from']}' is not a date — write 2025-07-01"
                )
        plan.targets.append(
            {
                "unit": unit,
                "kpi": code,
                "grain": period.grain,
                "period_start": period.start,
                **levels,
                "phasing": phasing if kpi["aggregation"] == "sum" else None,
                "valid_from": valid_from,
            }
        )


def _parse_actuals(sheet, plan, units, kpis, scope, cat, problems) -> None:
    ck = _Checker(sheet, problems)
    seen: dict[tuple, int] = {}
    for row, cells in sheet.rows:
        unit = ck.text(row, cells, "unit", required=True)
        code = ck.text(row, cells, "kpi", required=True)
        value = ck.number(row, cells, "value", required=True)
        if not _known_and_allowed(ck, row, unit, code, units, kpis, scope, cat):
            continue
        if kpis[code]["aggregation"] == "formula":
            ck.add(row, "kpi", f"'{code}' is computed by its formula — load the KPIs it is made of")
            continue
        try:
            period = parse_period(cells.get("period"))
        except PeriodError as exc:
            ck.add(row, "period", str(exc))
            continue
        if period.grain != "M":
            ck.add(row, "period", f"'{cells.get('period')}' — actuals are monthly: write 2024-03")
            continue
        if value is None:
            continue
        key = (unit, code, period.start)
        if key in seen:
            ck.add(row, "period", f"{unit}/{code} {period} is listed twice (row {seen[key]})")
            continue
        seen[key] = row
        _grain_ok(kpis[code], value, ck, row, "value")
        plan.actuals.append((unit, code, period.start, value))


def import_system(
    wh: Warehouse,
    source: str | os.PathLike | bytes,
    *,
    by: str,
    scope: Scope,
    dry_run: bool = False,
    source_name: str | None = None,
    today: date | None = None,
) -> ImportResult:
    """Validate a KPI-system workbook and, unless `dry_run`, write it in one transaction.
    A changed target of a running period takes effect from `today`'s month."""
    raw = source if isinstance(source, bytes) else Path(source).read_bytes()
    name = source_name or (Path(source).name if not isinstance(source, bytes) else "upload.xlsx")
    sheets = workbook.read(raw, name)
    cat = load_catalog(wh)
    plan = parse(sheets, cat, scope)
    try:
        with wh.transaction() as cur:
            summary, batch_id = _apply(
                cur, plan, by, name, hashlib.sha256(raw).hexdigest(), today or clock.today()
            )
            if dry_run:
                raise _DryRun(summary)
    except _DryRun as done:
        return ImportResult(done.summary, None, dry_run=True)
    return ImportResult(summary, batch_id, dry_run=False)


class _DryRun(Exception):
    """Raised inside the transaction so a dry run rolls back after counting what it would do."""

    def __init__(self, summary: dict[str, int]):
        self.summary = summary


def _audit(cur, by: str, entity: str, key: str, field_: str | None, old, new, reason: str) -> None:
    audit.record(
        cur, changed_at=datetime.now(), changed_by=by, entity=entity, key=key, field=field_,
        old=None if old is None else str(old), new=None if new is None else str(new),
        reason=reason,
    )  # fmt: skip


_UNIT_FIELDS = ("name_zh", "name_en", "kind", "sort_order")
_KPI_FIELDS = (
    "name_zh",
    "name_en",
    "unit",
    "direction",
    "aggregation",
    "numerator",
    "denominator",
    "formula",
    "perspective",
    "kind",
    "veto",
    "decimals",
    "caliber",
    "source",
    "owner",
    "min_value",
    "max_value",
    "sort_order",
)


def _apply(
    cur, plan: Plan, by: str, source_name: str, sha: str, today: date
) -> tuple[dict[str, int], int | None]:
    reason = f"import {source_name}"
    summary: dict[str, int] = defaultdict(int)
    now = datetime.now()
    this_month = month_of(today)

    for name, shares in plan.profiles.items():
        old = cur.execute("SELECT shares FROM phasing_profile WHERE name = ?", [name]).fetchone()
        if old is None or list(old[0]) != shares:
            cur.execute("INSERT OR REPLACE INTO phasing_profile VALUES (?, ?)", [name, shares])
            _audit(cur, by, "phasing", name, "shares", old and list(old[0]), shares, reason)
            summary["phasing_changed"] += 1

    unit_ids = dict(cur.execute("SELECT code, id FROM org_unit").fetchall())
    for u in plan.units:
        cols = {f: u[f] for f in _UNIT_FIELDS}
        if u["code"] not in unit_ids:
            uid = cur.execute("SELECT nextval('org_unit_id')").fetchone()[0]
            cur.execute(
                "INSERT INTO org_unit (id, code, name_zh, name_en, kind, sort_order) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [uid, u["code"], *cols.values()],
            )
            unit_ids[u["code"]] = uid
            _audit(cur, by, "org_unit", u["code"], None, None, "created", reason)
            summary["units_new"] += 1
        else:
            summary["units_changed"] += _update(
                cur, "org_unit", unit_ids[u["code"]], cols, by, u["code"], reason
            )
    for u in plan.units:
        parent_id = unit_ids.get(u["parent"]) if u["parent"] else None
        old = cur.execute(
            "SELECT parent_id FROM org_unit WHERE id = ?", [unit_ids[u["code"]]]
        ).fetchone()
        if old[0] != parent_id:
            cur.execute(
                "UPDATE org_unit SET parent_id = ? WHERE id = ?", [parent_id, unit_ids[u["code"]]]
            )
            if old[0] is not None:
                _audit(cur, by, "org_unit", u["code"], "parent", old[0], parent_id, reason)

    kpi_ids = dict(cur.execute("SELECT code, id FROM kpi").fetchall())
    # A sheet listing every KPI orders the library; one listing a few (an edit from the KPI
    # library page) leaves the others' places alone and puts new KPIs after the last.
    orders = dict(cur.execute("SELECT code, sort_order FROM kpi").fetchall())
    whole = set(orders) <= {k["code"] for k in plan.kpis}
    next_order = max(orders.values(), default=-1) + 1
    for k in plan.kpis:
        cols = {f: k[f] for f in _KPI_FIELDS}
        if not whole:
            if k["code"] in orders:
                cols["sort_order"] = orders[k["code"]]
            else:
                cols["sort_order"], next_order = next_order, next_order + 1
        if k["code"] not in kpi_ids:
            kid = cur.execute("SELECT nextval('kpi_id')").fetchone()[0]
            cur.execute(
                f"INSERT INTO kpi (id, code, {', '.join(cols)}) "  # noqa: S608 - fixed column names
                f"VALUES (?, ?, {', '.join('?' for _ in cols)})",
                [kid, k["code"], *cols.values()],
            )
            kpi_ids[k["code"]] = kid
            _audit(cur, by, "kpi", k["code"], None, None, "created", reason)
            summary["kpis_new"] += 1
        else:
            summary["kpis_changed"] += _update(
                cur, "kpi", kpi_ids[k["code"]], cols, by, k["code"], reason
            )

    for (pu, pk), children in plan.tree.items():
        parent_unit, parent_kpi = unit_ids[pu], kpi_ids[pk] if pk else SCORECARD
        current = cur.execute(
            """SELECT child_unit, child_kpi, weight, version FROM tree_edge
               WHERE parent_unit = ? AND parent_kpi = ?
                 AND version = (SELECT max(version) FROM tree_edge
                                WHERE parent_unit = ? AND parent_kpi = ?)""",
            [parent_unit, parent_kpi, parent_unit, parent_kpi],
        ).fetchall()
        new = [
            (unit_ids[c["unit"]], kpi_ids[c["kpi"]] if c["kpi"] else SCORECARD, c["weight"])
            for c in children
        ]
        if sorted(new) == sorted((r[0], r[1], r[2]) for r in current):
            continue
        explicit = next((c["valid_from"] for c in children if c["valid_from"]), None)
        valid_from = explicit or (EPOCH if not current else this_month)
        version = current[0][3] + 1 if current else 1
        for order, (cu, ck_, w) in enumerate(new):
            cur.execute(
                "INSERT INTO tree_edge (parent_unit, parent_kpi, child_unit, child_kpi, weight, "
                "valid_from, sort_order, changed_by, changed_at, reason, version) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [parent_unit, parent_kpi, cu, ck_, w, valid_from, order, by, now, reason, version],
            )
        node = pu + (f"/{pk}" if pk else "")
        old_text = "; ".join(f"{r[0]}/{r[1]}={r[2]:g}" for r in current) or None
        _audit(
            cur,
            by,
            "tree",
            node,
            "children",
            old_text,
            "; ".join(f"{c['unit']}/{c['kpi'] or ''}={c['weight']:g}" for c in children),
            reason,
        )
        summary["tree_parents_changed"] += 1

    versions = []
    for t in plan.targets:
        kid, uid = kpi_ids[t["kpi"]], unit_ids[t["unit"]]
        old = cur.execute(
            f"""SELECT version, {", ".join(_LEVELS)}, phasing FROM target
               WHERE kpi_id = ? AND unit_id = ? AND grain = ? AND period_start = ?
               ORDER BY version DESC LIMIT 1""",  # noqa: S608 - fixed columns
            [kid, uid, t["grain"], t["period_start"]],
        ).fetchone()
        new_levels = [t[f] for f in _LEVELS] + [t["phasing"]]
        if old is not None and list(old[1:]) == new_levels:
            continue
        version = 1 if old is None else old[0] + 1
        # A changed target holds from this month on unless the file says otherwise, so months
        # already judged keep the levels they were judged by.
        default_from = t["period_start"] if old is None else max(t["period_start"], this_month)
        versions.append(
            [kid, uid, t["grain"], t["period_start"], *new_levels, t["valid_from"] or default_from,
             version]
        )  # fmt: skip
        if old is not None:
            _audit(
                cur,
                by,
                "target",
                f"{t['unit']}/{t['kpi']}/{t['period_start']}",
                "levels",
                list(old[1:]),
                new_levels,
                reason,
            )
        summary["targets_new" if old is None else "targets_changed"] += 1
    # Written together: the file lists each target once, so no row above read another's version.
    versions_frame = pd.DataFrame(versions, columns=targets.VERSION_COLUMNS)
    targets.add_versions(cur, versions_frame, by=by, at=now, reason=reason)

    batch_id = None
    if plan.actuals:
        batch_id, counts = _load_actuals(
            cur, plan.actuals, unit_ids, kpi_ids, by, source_name, sha, now
        )
        summary.update(counts)
        if batch_id is not None:
            _audit(cur, by, "batch", str(batch_id), None, None, f"{len(plan.actuals)} rows", reason)
    return {k: v for k, v in summary.items() if v}, batch_id


def _update(cur, table: str, row_id: int, cols: dict, by: str, code: str, reason: str) -> int:
    names = list(cols)
    old = cur.execute(
        f"SELECT {', '.join(names)} FROM {table} WHERE id = ?",  # noqa: S608 - fixed names
        [row_id],
    ).fetchone()
    changed = {n: v for n, o, v in zip(names, old, cols.values(), strict=True) if o != v}
    if not changed:
        return 0
    cur.execute(
        f"UPDATE {table} SET {', '.join(f'{n} = ?' for n in changed)} WHERE id = ?",  # noqa: S608
        [*changed.values(), row_id],
    )
    for n, v in changed.items():
        _audit(cur, by, table, code, n, old[names.index(n)], v, reason)
    return 1


def _load_actuals(cur, rows, unit_ids, kpi_ids, by, source_name, sha, now):
    """Upsert actuals as one batch, keeping the values it replaces so it can be rolled back.
    Values equal at their KPI's precision are left alone (`actuals.same_values`); when nothing
    is new or changed, no batch is written and the batch id is None."""
    places = actuals.comparison_places(cur)  # (its query also ends any result left unread)
    incoming = pd.DataFrame(
        {
            "kpi_id": pd.array([kpi_ids[r[1]] for r in rows], dtype="int32"),
            "unit_id": pd.array([unit_ids[r[0]] for r in rows], dtype="int32"),
            "period": pd.to_datetime([r[2] for r in rows]).date,
            "value": [float(r[3]) for r in rows],
        }
    )
    cur.register("incoming", incoming)
    try:
        matched = cur.execute(
            """SELECT i.kpi_id, i.unit_id, i.period::DATE AS period, i.value,
                      a.value AS old_value, a.batch_id AS old_batch_id
               FROM incoming i
               LEFT JOIN actual a ON a.kpi_id = i.kpi_id AND a.unit_id = i.unit_id
                                  AND a.period = i.period::DATE"""
        ).df()
    finally:
        cur.unregister("incoming")
    old = matched["old_value"].to_numpy(dtype=float, na_value=float("nan"))
    same = actuals.same_values(
        places, matched["kpi_id"], old, matched["value"].to_numpy(dtype=float)
    )
    moving = matched[~same]
    new = int(moving["old_value"].isna().sum())
    changed = len(moving) - new
    counts = {
        "actuals_new": new,
        "actuals_changed": changed,
        "actuals_unchanged": len(rows) - new - changed,
    }
    if not len(moving):
        return None, counts
    batch_id = cur.execute("SELECT nextval('batch_id')").fetchall()[0][0]
    cur.register("moving", moving)
    try:
        cur.execute(
            """CREATE TEMP TABLE changed AS
               SELECT kpi_id::INTEGER AS kpi_id, unit_id::INTEGER AS unit_id,
                      period::DATE AS period, value, old_value, old_batch_id
               FROM moving"""
        )
    finally:
        cur.unregister("moving")
    cur.execute(
        """INSERT INTO actual_replaced
           SELECT ?, kpi_id, unit_id, period, old_value, old_batch_id
           FROM changed WHERE old_value IS NOT NULL""",
        [batch_id],
    )
    cur.execute(
        """DELETE FROM actual USING changed c
           WHERE actual.kpi_id = c.kpi_id AND actual.unit_id = c.unit_id
             AND actual.period = c.period"""
    )
    cur.execute(
        "INSERT INTO actual SELECT kpi_id, unit_id, period, value, ? FROM changed", [batch_id]
    )
    actuals.refresh_summary(cur, "changed")
    cur.execute("DROP TABLE changed")
    cur.execute(
        "INSERT INTO batch (id, kind, source_name, sha256, created_by, created_at, rows, status,"
        " files) VALUES (?, 'workbook', ?, ?, ?, ?, ?, 'committed', ?)",
        [batch_id, source_name, sha, by, now, new + changed, source_name],
    )
    return batch_id, counts
