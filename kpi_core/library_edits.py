"""Editing the KPI library and placing KPIs on scorecards, for the KPI library page.

Every edit goes through the KPI-system import (`system_import`): a one-row `kpis` sheet or one
parent's `tree` rows. So a definition saved on the page is checked exactly as a workbook row
would be (formula whitelist, unknown names, cycles, ratio parts, weights summing to 100),
audited the same way, and a changed tree becomes a new version valid from this month.
"""

from __future__ import annotations

import re
from datetime import date

import pandas as pd

from kpi_core import formula, workbook
from kpi_core.access import Actor, can
from kpi_core.catalog import SCORECARD, Catalog
from kpi_core.errors import ScopeError
from kpi_core.library import Kpi
from kpi_core.messages import Items, Message
from kpi_core.system_import import ImportResult, import_system
from kpi_core.warehouse import Warehouse

FIELDS = tuple(workbook.COLUMNS["kpis"])  # code, name_zh, name_en, unit, direction, …

# Verbs that describe a wish, not a measure (SMART: a KPI says what is counted).
_VAGUE = re.compile(
    r"提升|提高|优化|改善|加强|增强|推进|improv|enhanc|optimi|strengthen|better", re.I
)


def fields_of(kpi: Kpi) -> dict[str, object]:
    """A KPI as the `kpis` sheet's columns (what the page edits)."""
    return {
        "code": kpi.code, "name_zh": kpi.name_zh, "name_en": kpi.name_en, "unit": kpi.unit,
        "direction": kpi.direction, "aggregation": kpi.aggregation, "numerator": kpi.numerator,
        "denominator": kpi.denominator, "formula": kpi.formula, "perspective": kpi.perspective,
        "kind": kpi.kind, "veto": kpi.veto, "decimals": kpi.decimals, "caliber": kpi.caliber,
        "source": kpi.source, "owner": kpi.owner, "min": kpi.min_value, "max": kpi.max_value,
    }  # fmt: skip


def _admin(who: Actor) -> None:
    if not can(who, "edit_library"):
        raise ScopeError(Message("df_err_admins_only"))


def save_kpi(
    wh: Warehouse, fields: dict[str, object], who: Actor, *, dry_run: bool = False
) -> ImportResult:
    """Create or update one KPI. Raises ValidationError (sheet 'kpis', row 2, the field's
    column) when the definition is refused; nothing is written then."""
    _admin(who)
    row = {f: _blank(fields.get(f)) for f in FIELDS}
    data = workbook.to_bytes({"kpis": pd.DataFrame([row], columns=list(FIELDS))})
    return import_system(
        wh, data, by=who.name, scope=who.scope, dry_run=dry_run, source_name="KPI library page"
    )


def _blank(value: object) -> object:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    if isinstance(value, str) and not value.strip():
        return None
    return value


def formula_problem(text: str, cat: Catalog, code: str) -> Message | None:
    """What is wrong with a formula as typed (None when it is fine): syntax, names the
    library does not have, or a cycle through other formula KPIs."""
    try:
        node = formula.parse(text)
    except formula.FormulaError as exc:
        return exc.said()
    unknown = sorted(r for r in formula.references(node) if r not in cat.kpi_by_code)
    if unknown:
        return Message("sy_formula_unknown", kpis=Items(unknown, commas=True))
    deps = {k.code: k.dependencies() for k in cat.kpis.values()}
    deps[code] = formula.references(node)
    cycle = formula.find_cycle(deps)
    if cycle and code in cycle:
        return Message("sy_formula_cycle", path=" → ".join(cycle))
    return None


def smart_warnings(wh: Warehouse, cat: Catalog, code: str, year: int) -> list[Message]:
    """SMART checks on a definition: what a reviewer of the KPI system would ask about."""
    k = cat.kpi(code)
    out = []
    has_target = wh.one(
        "SELECT count(*) FROM target WHERE kpi_id = ? AND year(period_start) = ?", [k.id, year]
    )[0]
    if not has_target:
        out.append(Message("df_smart_no_target", year=year))
    if not (k.source or "").strip():
        out.append(Message("df_smart_no_source"))
    if not (k.owner or "").strip():
        out.append(Message("df_smart_no_owner"))
    if not (k.unit or "").strip():
        out.append(Message("df_smart_no_unit"))
    if not (k.caliber or "").strip():
        out.append(Message("df_smart_no_caliber"))
    if _VAGUE.search(f"{k.name_zh} {k.name_en}") and not k.unit:
        out.append(Message("df_smart_wish"))
    return out


def children_of(cat: Catalog, parent_unit: str, parent_kpi: str | None, month: date):
    """The current children of a scorecard (parent_kpi None) or KPI node: [(node text, weight)]."""
    unit = cat.unit(parent_unit)
    node = (unit.id, cat.kpi(parent_kpi).id if parent_kpi else SCORECARD)
    out = []
    for (cu, ck), weight in cat.tree(month).get(node, []):
        text = (
            cat.units[cu].code if ck == SCORECARD else f"{cat.units[cu].code}/{cat.kpis[ck].code}"
        )
        out.append((text, weight))
    return out


def set_children(
    wh: Warehouse,
    parent: str,
    children: list[tuple[str, float]],
    who: Actor,
    *,
    valid_from: date | None = None,
    dry_run: bool = False,
) -> ImportResult:
    """Replace a node's children and weights (a new version of the tree, from `valid_from` or
    this month). `parent` is written `UNIT` or `UNIT/KPI`; weights must sum to 100."""
    _admin(who)
    rows = [
        {"parent": parent, "child": child, "weight": weight, "valid_from": valid_from}
        for child, weight in children
    ]
    data = workbook.to_bytes({"tree": pd.DataFrame(rows, columns=["parent", "child", "weight",
                                                                  "valid_from"])})  # fmt: skip
    return import_system(
        wh, data, by=who.name, scope=who.scope, dry_run=dry_run, source_name="KPI library page"
    )
