"""Importing a KPI-system workbook: validate everything, then write all of it or nothing.

Every problem is collected with its sheet, row and column before anything is written; a file with
any problem is refused whole (`ValidationError`), so the warehouse never holds half an import.

What lives where: `system_checks` holds the rules a row meets and the plan a workbook becomes;
this module reads each sheet into that plan (`parse`) and runs the import (`import_system`);
`system_writer` writes a plan.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from kpi_core import clock, formula, workbook
from kpi_core.access import Scope
from kpi_core.catalog import Catalog, load_catalog
from kpi_core.errors import Problem, ValidationError
from kpi_core.library import (
    AGGREGATION_ALIASES,
    DIRECTION_ALIASES,
    KIND_ALIASES,
    PERSPECTIVE_ALIASES,
)
from kpi_core.messages import Items, Message
from kpi_core.org import KIND_ALIASES as UNIT_KIND_ALIASES
from kpi_core.periods import PeriodError, parse_period
from kpi_core.system_checks import (
    _CODE,
    _FALSE,
    _LEVELS,
    _TRUE,
    Plan,
    _check_headers,
    _Checker,
    _did_you_mean,
    _grain_ok,
    _is_within,
    _known_and_allowed,
    _node,
    _order_problem,
    _scope_allows,
    unknown_kpi,
    unknown_unit,
)
from kpi_core.system_writer import (
    _apply,
    _DryRun,
)
from kpi_core.warehouse import Warehouse

# The sheets a workbook may have, as a message names them (their names hold no placeholder).
_SHEET_NAMES = Items(
    ["kpis/指标库", "org_units/组织", "tree/指标树", "targets/目标", "actuals/实际"], commas=True
)


def _twice(unit: str, code: str, period: object, first: int) -> Message:
    return Message("sy_row_twice", unit=unit, kpi=code, period=str(period), row=first)


@dataclass
class ImportResult:
    summary: dict[str, int]
    batch_id: int | None
    dry_run: bool
    warnings: list[Problem] = field(default_factory=list)


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
                Message("sy_no_known_sheet", sheets=_SHEET_NAMES),
            )
        )
    if not scope.everything:
        for key in ("kpis", "org_units", "phasing"):
            if key in sheets:
                problems.append(Problem(sheets[key].name, None, None, Message("sy_admins_only")))

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
            ck.add(row, "name", Message("sy_profile_twice", name=name, row=first_row[name]))
            continue
        first_row[name] = row
        if any(s < 0 for s in shares) or sum(shares) <= 0:
            ck.add(row, "m1", Message("sy_shares"))
            continue
        plan.profiles[name] = shares


def _new_code(ck: _Checker, row: int, cells, first_row: dict[str, int]) -> str | None:
    """The row's code, or None with the problem noted: missing, not letters and digits, or the
    code of an earlier row (`first_row`, which this fills)."""
    code = ck.text(row, cells, "code", required=True)
    if code is None:
        return None
    if not _CODE.match(code):
        ck.add(row, "code", Message("sy_code_letters", code=code))
        return None
    if code in first_row:
        ck.add(row, "code", Message("sy_duplicate", code=code, row=first_row[code]))
        return None
    first_row[code] = row
    return code


def _parse_units(sheet, plan: Plan, units: dict, problems) -> None:
    ck = _Checker(sheet, problems)
    first_row: dict[str, int] = {}
    for order, (row, cells) in enumerate(sheet.rows):
        code = _new_code(ck, row, cells, first_row)
        if code is None:
            continue
        name_zh = ck.text(row, cells, "name_zh")
        name_en = ck.text(row, cells, "name_en")
        if not name_zh and not name_en:
            ck.add(row, "name_zh", Message("sy_unit_name"))
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
            ck.add(item["_row"], "parent", unknown_unit(parent, units))
    # A cycle in the parent chain would make every subtree infinite.
    for item in plan.units:
        seen, code = set(), item["code"]
        while code is not None and code in units:
            if code in seen:
                ck.add(item["_row"], "parent", Message("sy_own_ancestor", code=item["code"]))
                break
            seen.add(code)
            code = units[code]["parent"]


def _parse_kpis(sheet, plan: Plan, kpis: dict, problems) -> None:
    ck = _Checker(sheet, problems)
    first_row: dict[str, int] = {}
    rows: dict[str, int] = {}
    for order, (row, cells) in enumerate(sheet.rows):
        code = _new_code(ck, row, cells, first_row)
        if code is None:
            continue
        name_zh, name_en = ck.text(row, cells, "name_zh"), ck.text(row, cells, "name_en")
        if not name_zh and not name_en:
            ck.add(row, "name_zh", Message("sy_kpi_name"))
        direction = ck.choice(row, cells, "direction", DIRECTION_ALIASES)
        aggregation = ck.choice(row, cells, "aggregation", AGGREGATION_ALIASES)
        perspective = kind = None
        if cells.get("perspective") is not None:
            perspective = ck.choice(row, cells, "perspective", PERSPECTIVE_ALIASES)
        if cells.get("kind") is not None:
            kind = ck.choice(row, cells, "kind", KIND_ALIASES)
        veto_text = str(cells.get("veto") if cells.get("veto") is not None else "").strip().lower()
        if veto_text not in _TRUE | _FALSE:
            ck.add(row, "veto", Message("sy_veto", value=cells.get("veto")))
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
                    ck.add(row, col, Message("sy_ratio_parts"))
                elif ref not in kpis:
                    ck.add(row, col, unknown_kpi(ref, kpis))
            kpis[code]["deps"] = {c for c in (item["numerator"], item["denominator"]) if c}
        elif item["aggregation"] == "formula":
            if not item["formula"]:
                ck.add(row, "formula", Message("sy_no_formula", example="AVAIL * PERF * QUAL"))
                continue
            try:
                refs = formula.references(formula.parse(item["formula"]))
            except formula.FormulaError as exc:
                ck.add(row, "formula", exc.said())
                continue
            for ref in sorted(refs - set(kpis)):
                missing = Message("sy_missing_kpi", kpi=ref)
                ck.add(row, "formula", _did_you_mean(missing, ref, list(kpis)))
            kpis[code]["deps"] = refs
    cycle = formula.find_cycle({c: v["deps"] for c, v in kpis.items()})
    if cycle:
        ck.add(
            rows.get(cycle[0]),
            "formula",
            Message("sy_kpi_cycle", path=" → ".join(cycle)),
        )


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
            ck.add(row, "weight", Message("sy_negative_weight", weight=f"{weight:g}"))
            continue
        if not _is_within(cu, pu, units):
            ck.add(row, "child", Message("sy_not_below", node=child_text, unit=pu))
            continue
        if not _scope_allows(pu, scope, cat):
            ck.add(row, "parent", Message("sy_outside_scope", unit=pu))
            continue
        key = (pu, pk, cu, ckpi)
        if key in seen:
            twice = Message("sy_child_twice", node=child_text, parent=parent_text, row=seen[key])
            ck.add(row, "child", twice)
            continue
        seen[key] = row
        valid_from = None
        if cells.get("valid_from") is not None:
            try:
                valid_from = workbook.cell_date(cells["valid_from"])
            except ValueError:
                ck.add(row, "valid_from", Message("sy_not_a_date", value=cells["valid_from"]))
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
            total_said = Message("sy_weights_sum", node=name, rows=rows, total=f"{total:g}")
            ck.add(children[0]["_row"], "weight", total_said)
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
        ck.add(first, "child", Message("sy_tree_cycle", path=pretty))
    plan.tree = dict(groups)


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
            ck.add(row, "period", exc.said())
            continue
        key = (unit, code, period)
        if key in seen:
            ck.add(row, "period", _twice(unit, code, period, seen[key]))
            continue
        seen[key] = row
        levels = {f: ck.number(row, cells, f) for f in _LEVELS}
        kpi = kpis[code]
        direction = kpi["direction"]
        if direction == "range":
            if levels["low"] is None and levels["high"] is None:
                ck.add(row, "low", Message("sy_range_band"))
            elif (
                levels["low"] is not None
                and levels["high"] is not None
                and levels["low"] > levels["high"]
            ):
                high, low = f"{levels['high']:g}", f"{levels['low']:g}"
                ck.add(row, "high", Message("sy_high_below_low", high=high, low=low))
            if levels["tolerance"] is not None and levels["tolerance"] < 0:
                ck.add(row, "tolerance", Message("sy_negative_tolerance"))
        else:
            if levels["target"] is None:
                ck.add(row, "target", Message("sy_no_target"))
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
            ck.add(row, "phasing", Message("sy_unknown_phasing", name=phasing))
        valid_from = None
        if cells.get("valid_from") is not None:
            try:
                valid_from = workbook.cell_date(cells["valid_from"])
            except ValueError:
                ck.add(row, "valid_from", Message("sy_not_a_date", value=cells["valid_from"]))
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
            ck.add(row, "kpi", Message("sy_formula_actuals", kpi=code))
            continue
        try:
            period = parse_period(cells.get("period"))
        except PeriodError as exc:
            ck.add(row, "period", exc.said())
            continue
        if period.grain != "M":
            ck.add(row, "period", Message("sy_monthly", value=cells.get("period")))
            continue
        if value is None:
            continue
        key = (unit, code, period.start)
        if key in seen:
            ck.add(row, "period", _twice(unit, code, period, seen[key]))
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
