"""The KPI-system workbook (DESIGN.md §5): sheets, columns and their Chinese aliases; read and write.

Reading returns raw rows keyed by canonical column names with their Excel row numbers, so every
problem found later can name its sheet, row and column. Validation lives in `system_import`.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import pandas as pd
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from kpi_core.errors import KpiError
from kpi_core.ingest import files
from kpi_core.messages import Message

SHEETS: dict[str, tuple[str, ...]] = {
    "kpis": ("kpis", "指标库", "指标"),
    "org_units": ("org_units", "组织", "组织架构"),
    "tree": ("tree", "指标树"),
    "targets": ("targets", "目标"),
    "actuals": ("actuals", "实际", "实际值"),
    "phasing": ("phasing", "分解", "分解方案"),
}

COLUMNS: dict[str, dict[str, tuple[str, ...]]] = {
    "kpis": {
        "code": ("code", "编码", "指标编码"),
        "name_zh": ("name_zh", "中文名称", "指标名称"),
        "name_en": ("name_en", "英文名称", "english name"),
        "unit": ("unit", "单位", "计量单位"),
        "direction": ("direction", "方向", "指标方向"),
        "aggregation": ("aggregation", "汇总方式", "聚合方式"),
        "numerator": ("numerator", "分子"),
        "denominator": ("denominator", "分母"),
        "formula": ("formula", "公式", "计算公式"),
        "perspective": ("perspective", "维度", "平衡计分卡维度"),
        "kind": ("kind", "类型", "指标类型"),
        "veto": ("veto", "否决", "否决指标"),
        "decimals": ("decimals", "小数位"),
        "caliber": ("caliber", "口径", "统计口径"),
        "source": ("source", "数据来源", "来源"),
        "owner": ("owner", "责任人", "负责人"),
        "min": ("min", "最小值", "下限值"),
        "max": ("max", "最大值", "上限值"),
    },
    "org_units": {
        "code": ("code", "编码", "组织编码"),
        "name_zh": ("name_zh", "中文名称", "组织名称"),
        "name_en": ("name_en", "英文名称", "english name"),
        "parent": ("parent", "上级", "上级组织"),
        "kind": ("kind", "类型", "层级"),
    },
    "tree": {
        "parent": ("parent", "上级节点", "上级"),
        "child": ("child", "下级节点", "下级"),
        "weight": ("weight", "权重"),
        "valid_from": ("valid_from", "生效日期"),
    },
    "targets": {
        "unit": ("unit", "组织", "部门", "单位"),
        "kpi": ("kpi", "指标", "指标编码"),
        "period": ("period", "期间"),
        "baseline": ("baseline", "基准值"),
        "target": ("target", "目标值"),
        "challenge": ("challenge", "挑战值"),
        "phasing": ("phasing", "分解方式"),
        "low": ("low", "下限"),
        "high": ("high", "上限"),
        "tolerance": ("tolerance", "容差"),
        "valid_from": ("valid_from", "生效日期"),
    },
    "actuals": {
        "unit": ("unit", "组织", "部门", "单位"),
        "kpi": ("kpi", "指标", "指标编码"),
        "period": ("period", "期间", "月份"),
        "value": ("value", "实际值", "完成值", "数值"),
    },
    "phasing": {
        "name": ("name", "名称", "方案"),
        **{f"m{i}": (f"m{i}", f"{i}月") for i in range(1, 13)},
    },
}

# Columns a sheet cannot do without.
REQUIRED: dict[str, tuple[str, ...]] = {
    "kpis": ("code", "direction", "aggregation"),
    "org_units": ("code",),
    "tree": ("parent", "child", "weight"),
    "targets": ("unit", "kpi", "period"),
    "actuals": ("unit", "kpi", "period", "value"),
    "phasing": ("name", *(f"m{i}" for i in range(1, 13))),
}

ZH_SHEET = {key: names[1] for key, names in SHEETS.items()}
ZH_COLUMN = {sheet: {col: a[1] for col, a in cols.items()} for sheet, cols in COLUMNS.items()}

# Text a spreadsheet would run as a formula; written with a leading apostrophe, read back without.
_FORMULA_START = ("=", "+", "-", "@")


class WorkbookError(KpiError):
    """The file is not a readable KPI-system workbook."""


@dataclass
class Sheet:
    key: str  # canonical sheet key, e.g. "targets"
    name: str  # the sheet's name in the file, for messages
    headers: dict[str, str]  # canonical column → header as written in the file
    rows: list[tuple[int, dict[str, object]]] = field(default_factory=list)  # (Excel row, cells)


def _norm(text: object) -> str:
    return str(text).strip().lower().replace(" ", "_")


def _match_sheet(name: str) -> str | None:
    n = _norm(name)
    for key, aliases in SHEETS.items():
        if n in {_norm(a) for a in aliases}:
            return key
    return None


def _clean(cell: object) -> object:
    """A cell of the reader's grid (text already stripped, blanks already None) as imported."""
    if isinstance(cell, str) and cell.startswith("'") and cell.lstrip("'")[:1] in _FORMULA_START:
        return cell[1:]  # the apostrophe `_excel_safe` added; an apostrophe of the text stays
    if isinstance(cell, datetime):
        return cell.date()
    return cell


def read(source: str | os.PathLike | bytes, name: str = "upload.xlsx") -> dict[str, Sheet]:
    """Read the sheets we know; sheets with other names are ignored (notes, instructions).

    The file goes through the intake's reader and its guards (declared size, a value far away,
    a password, damage), so a hostile workbook is refused here as it is there: calamine alone
    would try to allocate a sheet reaching cell XFD1048576 and end the process."""
    if not isinstance(source, bytes):
        try:
            source, name = Path(source).read_bytes(), Path(source).name
        except FileNotFoundError:
            raise WorkbookError(Message("wb_err_no_file", path=str(source))) from None
    if Path(name).suffix.lower() not in (".xlsx", ".xlsm", ".xls"):
        name += ".xlsx"  # a label ("KPI library page"), not a file name: the bytes are a workbook
    try:
        tables = files.read_file(name, source)
    except files.FileError as exc:
        raise WorkbookError(exc.coded or str(exc)) from None
    out: dict[str, Sheet] = {}
    for table in tables:
        key = _match_sheet(table.sheet)
        if key is None:
            continue
        if key in out:
            raise WorkbookError(
                Message("wb_err_same_sheet", first=out[key].name, second=table.sheet, kind=key)
            )
        out[key] = _sheet(key, table.sheet, table.rows)
    return out


def _sheet(key: str, name: str, grid: list[list[object]]) -> Sheet:
    aliases = {_norm(a): col for col, names in COLUMNS[key].items() for a in names}
    header_row = next((i for i, r in enumerate(grid) if any(c is not None for c in r)), None)
    sheet = Sheet(key, name, {})
    if header_row is None:
        return sheet
    positions: dict[int, str] = {}
    for j, cell in enumerate(grid[header_row]):
        col = aliases.get(_norm(cell))
        if col and col not in sheet.headers:
            positions[j] = col
            sheet.headers[col] = str(cell).strip()
    for i in range(header_row + 1, len(grid)):
        cells = {col: _clean(grid[i][j]) for j, col in positions.items() if j < len(grid[i])}
        if any(v is not None for v in cells.values()):
            sheet.rows.append((i + 1, cells))
    return sheet


def _excel_safe(value: object) -> object:
    if isinstance(value, str):
        # Control characters (a NUL, ESC …) cannot be stored in a worksheet: openpyxl would
        # refuse the whole file. They carry no meaning in a name or a comment; drop them.
        value = ILLEGAL_CHARACTERS_RE.sub("", value)
        if value.lstrip("'").startswith(_FORMULA_START):
            return "'" + value  # "'=x" too, so that reading strips one apostrophe, not the text's
    return value


def write(frames: dict[str, pd.DataFrame], target: str | os.PathLike | io.BytesIO, lang="en"):
    """Write sheets in the documented format; `lang="zh"` uses the Chinese sheet/column names."""
    with pd.ExcelWriter(target, engine="openpyxl") as xw:
        for key in SHEETS:
            if key not in frames:
                continue
            df = frames[key].copy()
            for col in df.columns:
                if df[col].dtype == object or pd.api.types.is_string_dtype(df[col]):
                    df[col] = df[col].map(_excel_safe)
            if lang == "zh":
                df = df.rename(columns=ZH_COLUMN[key])
            df.to_excel(xw, sheet_name=ZH_SHEET[key] if lang == "zh" else key, index=False)
            ws = xw.sheets[ZH_SHEET[key] if lang == "zh" else key]
            ws.freeze_panes = "A2"
            for idx, col in enumerate(df.columns, start=1):
                width = max([len(str(col))] + [len(str(v)) for v in df[col].head(200)]) + 2
                ws.column_dimensions[ws.cell(1, idx).column_letter].width = min(width, 60)


def sheet_bytes(name: str, frame: pd.DataFrame) -> bytes:
    """Any table as a one-sheet workbook (downloads), text that Excel would run neutralised."""
    buf = io.BytesIO()
    safe = frame.copy()
    for col in safe.columns:
        if safe[col].dtype == object or pd.api.types.is_string_dtype(safe[col]):
            safe[col] = safe[col].map(_excel_safe)
    with pd.ExcelWriter(buf, engine="openpyxl") as xw:
        safe.to_excel(xw, sheet_name=name, index=False)
    return buf.getvalue()


def to_bytes(frames: dict[str, pd.DataFrame], lang: str = "en") -> bytes:
    buf = io.BytesIO()
    write(frames, buf, lang)
    return buf.getvalue()


def cell_date(value: object) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if value is None:
        return None
    return date.fromisoformat(str(value).strip()[:10])


DEMO_WORKBOOK = Path(__file__).resolve().parent.parent / "data" / "demo_company.xlsx"
