"""The monthly actuals template: one unit's and one month's hand-entered KPIs as an .xlsx to fill in.

The analyst downloads it, types a value per row and uploads it again, so the template is built to
come back clean: a long layout whose headers the intake recognises, codes written as text, no
formulas (the intake refuses formulas saved without a result) and no merged cells.

Rows are the (unit, KPI) pairs somebody types in: every KPI node the month's tree gives the unit
or a unit below it, with `ratio` and `formula` KPIs replaced by the stored KPIs they are computed
from. A unit's row is left out when a unit below it in the same template has the KPI too — the
engine adds (or averages) the units below, and a value typed at the top would replace their sum.
"""

from __future__ import annotations

import io
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

import numpy as np
from openpyxl import Workbook
from openpyxl.cell import Cell
from openpyxl.styles import Alignment, Font, PatternFill, Protection
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from kpi_core import clock, targets
from kpi_core.access import Scope
from kpi_core.catalog import SCORECARD, Catalog
from kpi_core.errors import NotFoundError
from kpi_core.library import Kpi
from kpi_core.messages import Message
from kpi_core.org import Unit
from kpi_core.warehouse import Warehouse

COLUMNS = ("period", "unit", "kpi", "kpi_name", "uom", "target", "value")
HEADERS: dict[str, tuple[str, ...]] = {
    "en": COLUMNS,
    "zh": ("期间", "组织", "指标编码", "指标名称", "计量单位", "目标值", "实际值"),
}
DATA_SHEET = {"en": "actuals", "zh": "实际"}
INSTRUCTIONS_SHEET = {"en": "instructions", "zh": "说明"}
LISTS_SHEET = "lists"
STORED = ("sum", "avg", "last")  # aggregations that hold typed-in values

# Excel keeps an inline list validation ("A,B,C") to 255 characters; longer lists need a range.
_INLINE_LIST_MAX = 255
# Percent values above this are almost surely typed as 96 for 96% (the importer's guard, too).
_PERCENT_CEILING = 1.5

_HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
_INFO_FILL = PatternFill("solid", fgColor="F2F2F2")  # for reference, not imported
_INPUT_FILL = PatternFill("solid", fgColor="FFF2CC")  # the one column to type in
_LOCKED = Protection(locked=True)
_UNLOCKED = Protection(locked=False)


@dataclass(frozen=True)
class Row:
    unit: Unit
    kpi: Kpi
    target: float | None  # the month's target level (phased for `sum` KPIs), None when none


def template_rows(
    wh: Warehouse, cat: Catalog, scope: Scope, unit_code: str, month: date
) -> list[Row]:
    """The (unit, KPI) pairs typed in for `month`: the unit and the units below it, in order."""
    month = month.replace(day=1)
    unit = cat.unit(unit_code)
    scope.check(unit.id, unit.code)
    units = [u for u in cat.descendants(unit.id) if scope.allows(u)]
    nodes = _kpi_nodes(cat, month)
    wanted = {u: _stored_inputs(cat, nodes.get(u, ())) for u in units}
    below = _kpis_below(cat, units, wanted)
    pairs = [
        (u, k)
        for u in units
        for k in sorted(
            wanted[u] - below[u], key=lambda k: (cat.kpis[k].sort_order, cat.kpis[k].code)
        )
    ]
    levels = _targets(wh, cat, pairs, month)
    return [
        Row(cat.units[u], cat.kpis[k], None if np.isnan(t) else float(t))
        for (u, k), t in zip(pairs, levels, strict=True)
    ]


def build_template(
    wh: Warehouse, cat: Catalog, scope: Scope, unit_code: str, month: date, lang: str = "zh"
) -> bytes:
    """The template as .xlsx bytes: the data sheet to fill in, then bilingual instructions."""
    lang = "zh" if lang == "zh" else "en"
    month = month.replace(day=1)
    rows = template_rows(wh, cat, scope, unit_code, month)
    unit = cat.unit(unit_code)
    if not rows:
        raise NotFoundError(Message("tp_no_kpis", unit=unit.code, month=_label(month)))
    wb = Workbook()
    ws = wb.active
    ws.title = DATA_SHEET[lang]
    _data_sheet(wb, ws, rows, month, lang)
    _instructions(wb.create_sheet(INSTRUCTIONS_SHEET[lang]), unit, month, len(rows))
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


# --- which rows ------------------------------------------------------------------------------


def _kpi_nodes(cat: Catalog, month: date) -> dict[int, set[int]]:
    """Per unit, the KPIs it has a node for in the month's tree — on its scorecard or hanging
    under another KPI node (a region's revenue under the department's), both are typed in."""
    out: dict[int, set[int]] = defaultdict(set)
    for (pu, pk), children in cat.tree(month).items():
        if pk != SCORECARD:
            out[pu].add(pk)
        for (cu, ck), _ in children:
            if ck != SCORECARD:
                out[cu].add(ck)
    return out


def _stored_inputs(cat: Catalog, kpi_ids: Iterable[int]) -> set[int]:
    """The stored KPIs behind some KPIs: themselves, or what a ratio or formula is made of."""
    out: set[int] = set()
    seen: set[int] = set()
    stack = [k for k in kpi_ids if k in cat.kpis]
    while stack:
        k = stack.pop()
        if k in seen:
            continue
        seen.add(k)
        kpi = cat.kpis[k]
        if kpi.aggregation in STORED:
            out.add(k)
        else:
            stack.extend(cat.kpi_by_code[c].id for c in kpi.dependencies() if c in cat.kpi_by_code)
    return out


def _kpis_below(cat: Catalog, units: list[int], wanted: dict[int, set[int]]) -> dict[int, set[int]]:
    """Per unit, the KPIs some unit below it in the template has."""
    below: dict[int, set[int]] = {u: set() for u in units}
    for u in reversed(units):  # children before parents
        for c in cat.children_of.get(u, []):
            if c in below:
                below[u] |= wanted[c] | below[c]
    return below


def _targets(wh: Warehouse, cat: Catalog, pairs: list[tuple[int, int]], month: date) -> np.ndarray:
    if not pairs:
        return np.array([])
    unit_ids = np.array([u for u, _ in pairs], dtype=np.int64)
    kpi_ids = np.array([k for _, k in pairs], dtype=np.int64)
    # No "last month with data": the whole month is the period a `sum` target is phased to.
    no_data = np.full(len(pairs), np.datetime64("NaT"), dtype="datetime64[D]")
    return targets.node_levels(wh, cat, kpi_ids, unit_ids, [month], no_data)["target"]


# --- the data sheet --------------------------------------------------------------------------


def _data_sheet(wb: Workbook, ws: Worksheet, rows: list[Row], month: date, lang: str) -> None:
    headers = HEADERS[lang]
    col = {name: i + 1 for i, name in enumerate(COLUMNS)}
    for j, text in enumerate(headers, start=1):
        c = ws.cell(1, j)
        _text(c, text)
        c.font = Font(bold=True)
        c.fill = _HEADER_FILL
        c.protection = _LOCKED
    period = _label(month)
    percent_cells: dict[tuple[float, float], list[str]] = defaultdict(list)
    for i, r in enumerate(rows, start=2):
        values = {
            "period": period,
            "unit": r.unit.code,
            "kpi": r.kpi.code,
            "kpi_name": r.kpi.name(lang),
            "uom": r.kpi.unit,
            "target": r.target,
            "value": None,
        }
        for name, v in values.items():
            c = ws.cell(i, col[name])
            if isinstance(v, str):
                _text(c, v)
            else:
                c.value = v
            c.protection = _UNLOCKED
        # Text format, so Excel neither turns 2026-10 into a date nor a retyped code into a number.
        for name in ("period", "unit", "kpi"):
            ws.cell(i, col[name]).number_format = "@"
        for name in ("kpi_name", "uom", "target"):
            ws.cell(i, col[name]).fill = _INFO_FILL
        ws.cell(i, col["target"]).number_format = _number_format(r.kpi)
        value = ws.cell(i, col["value"])
        value.fill = _INPUT_FILL
        if r.kpi.is_percent:
            value.number_format = "0.0%"
            percent_cells[_percent_bounds(r.kpi)].append(value.coordinate)

    last = len(rows) + 1
    _unit_validation(wb, ws, [r.unit.code for r in rows], f"B2:B{last}")
    for (lo, hi), cells in percent_cells.items():
        _percent_validation(ws, lo, hi, cells)

    ws.freeze_panes = "A2"
    ws.auto_filter.ref = f"A1:{get_column_letter(len(COLUMNS))}{last}"
    p = ws.protection
    p.sheet = True
    # Protection guards the header; everything an analyst does to rows stays allowed.
    p.formatCells = p.formatColumns = p.formatRows = False
    p.sort = p.autoFilter = False
    p.insertRows = p.deleteRows = False
    _widths(ws)


def _text(cell: Cell, text: str) -> None:
    """A string cell, even for text that starts with '=' (openpyxl would write a formula)."""
    cell.value = text
    cell.data_type = "s"


def _label(month: date) -> str:
    return f"{month.year}-{month.month:02d}"


def _number_format(kpi: Kpi) -> str:
    if kpi.is_percent:
        return "0.0%"
    decimals = 2 if kpi.decimals is None else kpi.decimals
    return "#,##0" + (f".{'0' * decimals}" if decimals > 0 else "")


def _percent_bounds(kpi: Kpi) -> tuple[float, float]:
    lo = kpi.min_value if kpi.min_value is not None else -_PERCENT_CEILING
    hi = kpi.max_value if kpi.max_value is not None else _PERCENT_CEILING
    return float(lo), float(hi)


def _unit_validation(wb: Workbook, ws: Worksheet, codes: list[str], ref: str) -> None:
    codes = list(dict.fromkeys(codes))
    inline = ",".join(codes)
    if len(inline) <= _INLINE_LIST_MAX and not any("," in c or '"' in c for c in codes):
        source = f'"{inline}"'
    else:
        # Too long for an inline list (or a code holds its separator): a hidden sheet holds them.
        lists = wb.create_sheet(LISTS_SHEET)
        for i, code in enumerate(codes, start=1):
            _text(lists.cell(i, 1), code)
        lists.sheet_state = "hidden"
        source = f"{LISTS_SHEET}!$A$1:$A${len(codes)}"
    dv = DataValidation(
        type="list",
        formula1=source,
        allow_blank=False,
        showErrorMessage=True,
        errorTitle="组织 Unit",
        error="请选择本模板中的组织编码。Pick a unit code of this template.",
    )
    dv.add(ref)
    ws.add_data_validation(dv)


def _percent_validation(ws: Worksheet, lo: float, hi: float, cells: list[str]) -> None:
    dv = DataValidation(
        type="decimal",
        operator="between",
        formula1=f"{lo:g}",
        formula2=f"{hi:g}",
        allow_blank=True,
        # A warning, not a stop: the analyst may confirm an unusual value.
        errorStyle="warning",
        showErrorMessage=True,
        showInputMessage=True,
        promptTitle="百分比 Percent",
        prompt="填 96% 或 0.96，不要填 96。\nEnter 96% or 0.96, not 96.",
        errorTitle="百分比 Percent",
        error=f"应为 {lo:.0%} 至 {hi:.0%} 之间的比例，如 96% 或 0.96。\n"
        f"Expected a fraction from {lo:.0%} to {hi:.0%}, such as 96% or 0.96.",
    )
    for ref in cells:
        dv.add(ref)
    ws.add_data_validation(dv)


def _display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _widths(ws: Worksheet) -> None:
    for j, cells in enumerate(ws.iter_cols(min_row=1, max_row=min(ws.max_row, 500)), start=1):
        widest = max((_display_width(_shown(c.value)) for c in cells), default=8)
        ws.column_dimensions[get_column_letter(j)].width = min(max(widest + 3, 10), 48)


def _shown(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:,.2f}"
    return str(v)


# --- the instructions sheet ------------------------------------------------------------------

# The instructions sheet's first row, in its first two cells: the template's mark on it, by
# which the intake skips the sheet without a word (`is_instructions`).
INSTRUCTIONS_MARK = ("填写说明", "How to fill in")

_STEPS: tuple[tuple[str, str], ...] = (
    INSTRUCTIONS_MARK,
    (
        "每行填一个数值：在“实际值”（value）列填写该组织、该指标本月的实际数。",
        "One value per row: type the month's actual for that unit and KPI in the 'value' (实际值) "
        "column.",
    ),
    (
        "期间是月份，写作 2026-10；一个文件可以有多个月份，每行一个。",
        "Periods are months, written 2026-10; a file may hold several months, one per row.",
    ),
    (
        "百分比填 96% 或 0.96，不要填 96。",
        "Percentages: write 96% or 0.96, not 96.",
    ),
    (
        "金额可以写成 12.5万 或 1.2亿，也可以写完整数字 125000。",
        "Amounts may be written as 12.5万 (125,000) or 1.2亿, or in full: 125000.",
    ),
    (
        "不要修改标题行（第 1 行）；没有数据的行请删除。",
        "Do not change the header row (row 1); delete the rows you have no figure for.",
    ),
    (
        "“指标名称”“计量单位”“目标值”（kpi_name、uom、target）三列仅供参考，不会导入。",
        "The columns kpi_name, uom and target are for reference only; they are not imported.",
    ),
    (
        "不要使用公式，请直接填写数值。",
        "Type values, not formulas.",
    ),
    (
        "保存为 .xlsx，然后在“上传”页面上传，或运行 python -m kpi_core import 文件名。",
        "Save as .xlsx and upload it on the Upload page, or run python -m kpi_core import FILE.",
    ),
)


def is_instructions(rows: list[list[object]]) -> bool:
    """A sheet this template wrote as its instructions: its first row is INSTRUCTIONS_MARK.
    Its name alone is not enough — a user's own sheet called 说明 may hold actuals."""
    first = [str(c).strip() for c in (rows[0] if rows else []) if c not in (None, "")]
    return tuple(first[:2]) == INSTRUCTIONS_MARK


def _instructions(ws: Worksheet, unit: Unit, month: date, n_rows: int) -> None:
    # One cell per fact, so no pair of cells reads like a label and its value to a sheet reader.
    today = clock.today().isoformat()
    lines: list[tuple[str, str]] = [
        *_STEPS,
        ("", ""),
        (f"组织：{unit.code} {unit.name_zh}", f"Unit: {unit.code} {unit.name_en}"),
        (f"月份：{_label(month)}", f"Month: {_label(month)}"),
        (f"行数：{n_rows}", f"Rows: {n_rows}"),
        (f"生成日期：{today}", f"Generated: {today}"),
    ]
    for i, (zh, en) in enumerate(lines, start=1):
        for j, text in enumerate((zh, en), start=1):
            if text:
                c = ws.cell(i, j)
                _text(c, text)
                c.alignment = Alignment(wrap_text=True, vertical="top")
    for j in (1, 2):
        ws.cell(1, j).font = Font(bold=True, size=13)
    ws.column_dimensions["A"].width = 60
    ws.column_dimensions["B"].width = 80
