"""Finding the actuals in a sheet laid out however its department likes, without configuration.

A sheet is read as blocks: a header row, then data rows, until the next header. The header is the
row among the first ones that best matches known column names (期间/月份/日期, 部门/单位/组织,
指标/指标编码, 实际值/完成值 … in either language), KPI names or codes, or months. Its matches
decide the layout:

- long: period, unit, KPI and value columns;
- wide by KPI: a column per KPI, rows per period and/or unit;
- wide by month: a column per month, a row per KPI (and unit).

What a sheet leaves out comes from its context: a sheet named `2024-03` or `销售部`, a title above
the header (`期间：2024年3月`), or a section title row (`华东区`) in a stacked form. Merged cells
are filled across header and label cells; merged over values they are reported, since no one can
tell which row the number belongs to. Subtotal rows (合计/小计/Total) are skipped: totals are
computed from the parts.

The result is `Records`: raw cells with their places; validation reads them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import chain, islice, pairwise, repeat
from operator import is_, itemgetter

from kpi_core.ingest.files import Table, column_letter
from kpi_core.ingest.names import Names, norm
from kpi_core.periods import PeriodError, parse_period

# Aliases in order of preference: when a sheet has both 指标编码 and 指标名称, the code is used.
FIELDS: dict[str, tuple[str, ...]] = {
    "period": (
        "period", "month", "date", "期间", "月份", "日期", "年月", "时间", "统计期间", "所属期间",
        "会计期间", "报告期", "期次", "月度",
    ),
    "unit": (
        "unit", "unit_code", "org_unit", "org", "organization", "department", "dept", "组织",
        "组织编码", "部门编码", "单位编码", "部门", "单位", "部门名称", "单位名称", "组织名称", "机构",
        "责任部门", "责任单位", "区域",
    ),
    "kpi": (
        "kpi", "kpi_code", "指标编码", "指标代码", "code", "指标", "指标名称", "kpi_name", "metric",
        "measure", "考核指标", "项目", "名称",
    ),
    "value": (
        "value", "actual", "actual_value", "实际值", "完成值", "数值", "实际", "实际完成", "本月实际",
        "本期实际", "本月完成", "完成",
    ),
}  # fmt: skip
# Columns a template or report carries for people; read past without comment.
INFORMATIONAL = {
    norm(a)
    for a in (
        "uom", "计量单位", "单位(计量)", "target", "目标值", "目标", "baseline", "基准值",
        "challenge", "挑战值", "备注", "note", "notes", "remark", "说明", "序号", "no", "no.", "#",
        "name", "kpi_name", "name_zh", "name_en", "指标名称", "达成率", "完成率", "状态", "status",
    )
}  # fmt: skip
_ALIAS = {norm(a): (f, i) for f, names in FIELDS.items() for i, a in enumerate(names)}
_SUBTOTAL = re.compile(r"^(合计|小计|总计|总额|共计|sub-?total|total|grand total)\b", re.I)
_TITLE_PAIR = re.compile(r"^\s*([^:：]{1,12})\s*[:：]\s*(.+?)\s*$")
_HEADER_SCAN = 30  # rows searched for the best header
# A form-like sheet may open with a long form above its table: when the first rows hold no
# header, the search goes on down to this row for the first one.
_HEADER_FAR = 1000
# A month written as a decimal number ("2024.03"): an amount such as 1931.04 reads the same.
_DECIMAL_MONTH = re.compile(r"\s*\d{4}\.\d{1,2}\s*")


@dataclass
class Records:
    """Raw cells of the actuals found, one entry per value, with where each came from."""

    file: list[str] = field(default_factory=list)
    sheet: list[str] = field(default_factory=list)
    row: list[int | None] = field(default_factory=list)
    period: list[object] = field(default_factory=list)
    period_at: list[str] = field(default_factory=list)
    unit: list[object] = field(default_factory=list)
    unit_at: list[str] = field(default_factory=list)
    kpi: list[object] = field(default_factory=list)
    kpi_at: list[str] = field(default_factory=list)
    value: list[object] = field(default_factory=list)
    value_at: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.value)

    def extend(self, other: Records) -> None:
        for name in self.__dataclass_fields__:
            getattr(self, name).extend(getattr(other, name))


@dataclass(frozen=True)
class Finding:
    """Something the reader noticed about a sheet; `error` ones keep rows out."""

    severity: str  # "error", "warning" or "info"
    file: str
    sheet: str
    row: int | None
    column: str | None
    message: str
    hint: str = ""


@dataclass
class _Context:
    period: object = None
    period_at: str = ""
    unit: object = None
    unit_at: str = ""


@dataclass
class _Header:
    row: int  # 0-based
    fields: dict[str, int]  # field → column
    kpi_cols: dict[int, object]  # column → KPI cell text (wide by KPI)
    month_cols: dict[int, object]  # column → period text (wide by month)
    labels: dict[int, str]  # column → header text, for messages
    score: int


def read_table(table: Table, names: Names) -> tuple[Records, list[Finding]]:
    """Records and findings of one sheet."""
    rows = table.rows
    findings: list[Finding] = []
    label = table.label
    if not any(any(c is not None for c in r) for r in rows):
        findings.append(Finding("info", table.file, label, None, None, "the sheet is empty"))
        return Records(), findings
    for ref in table.formulas_without_values[:20]:
        findings.append(
            Finding(
                "error", table.file, label, _ref_row(ref), ref,
                f"cell {ref} holds a formula whose result was never saved",
                "open the file in Excel and save it (Excel stores the results), or paste values",
            )
        )  # fmt: skip
    if len(table.formulas_without_values) > 20:
        n = len(table.formulas_without_values) - 20
        findings.append(
            Finding("error", table.file, label, None, None, f"and {n} more formula cells")
        )
    bad_rows = {_ref_row(r) for r in table.formulas_without_values}
    context = _sheet_context(table, names)
    header = _find_header(rows, 0, names, table)
    if header is None:
        looked = min(len(rows), _HEADER_FAR)
        far = len(rows) > _HEADER_FAR
        findings.append(
            Finding(
                "warning", table.file, label, None, None,
                f"no header row found in rows 1–{looked} (looked for period/期间, unit/部门, "
                "KPI/指标, value/实际值, KPI names as columns or months as columns)",
                "move the table up to the first rows, or load the sheet with a mapping profile"
                if far else "add such a header, or load the sheet with a mapping profile",
            )
        )  # fmt: skip
        return Records(), findings
    _fill_merged_headers(rows, table.merged, header.row)
    header = _find_header(rows, max(0, header.row - _HEADER_SCAN + 1), names, table) or header
    _title_context(rows, header.row, names, context)
    value_merges = _fill_merged_labels(table, header, findings)
    out = Records()
    sink = _Sink(table, header, out)
    skip = bad_rows | value_merges
    subtotals = _subtotal_texts(rows, header.row + 1)
    r = header.row + 1
    while r < len(rows):
        if sink.plain_long and subtotals is not None and sink.has_number(rows[r]):
            r = sink.take_run(rows, r, skip, subtotals)
            if r == len(rows):
                break
        cells = rows[r]
        excel_row = r + 1
        r += 1
        kinds = set(map(type, cells))
        kinds.discard(_NONE)
        if not kinds or excel_row in skip:
            continue
        if str in kinds:  # rows of numbers alone are neither titles, headers nor subtotals
            filled = [c for c in cells if c is not None]
            lone = cells[0] if len(filled) == 1 and isinstance(cells[0], str) else None
            if lone is not None and _section_title(lone, names, context, excel_row):
                continue
            # A header again starts the next stacked table; headers are all text, data rows not.
            if len(kinds) == 1:
                again = _header_at(rows, excel_row - 1, names, table)
                if again is not None and again.score >= max(2, header.score - 1):
                    header = again
                    sink.flush()
                    sink = _Sink(table, header, out)
                    continue
            if _subtotal(filled[:3], subtotals):
                continue
        sink.emit(cells, excel_row, context)
    sink.flush()
    if not len(out) and not any(f.severity == "error" for f in findings):
        # Say where the header is, so "nothing to load" is not a mystery (a template never
        # filled in, or values typed into a different sheet, or columns not recognised).
        below = sum(1 for row in rows[header.row + 1 :] if not all(c is None for c in row))
        lacking = [] if header.kpi_cols or header.month_cols else [
            name for f, name in (("kpi", "KPI/指标"), ("value", "value/实际值"))
            if f not in header.fields
        ]  # fmt: skip
        if below and lacking:
            findings.append(
                Finding(
                    "warning", table.file, label, header.row + 1, None,
                    f"the header in row {header.row + 1} has no {' or '.join(lacking)} column, "
                    f"so its {below:,} rows give no values",
                    "name the columns as the template does (期间/period, 部门/unit, 指标/KPI, "
                    "实际值/value), or load the sheet with a mapping profile",
                )
            )  # fmt: skip
        else:
            findings.append(
                Finding(
                    "warning", table.file, label, header.row + 1, None,
                    f"the header in row {header.row + 1} has no values below it",
                    "fill in the rows under the header, or upload the sheet that holds the "
                    "values",
                )
            )  # fmt: skip
    _require_context(table, header, context, out, findings)
    return out, findings


_NONE = type(None)
_NUMBERS = frozenset((float, int))


def _subtotal_texts(rows: list[list], start: int) -> set[str] | None:
    """The subtotal labels (合计, Total …) among the cells from row `start` on; None when the
    cells cannot be put in a set (a Parquet list column)."""
    try:
        distinct = set(chain.from_iterable(islice(rows, start, None)))
    except TypeError:
        return None
    return {c for c in distinct if type(c) is str and _SUBTOTAL.match(c)}


def _has_none(values: list) -> bool:
    """By identity, at C speed (`None in values` would compare, and pd.NA refuses that)."""
    return any(map(is_, values, repeat(None)))


def _subtotal(head: list, subtotals: set[str] | None) -> bool:
    """Whether a row's first filled cells hold a subtotal label (合计, Total …): looked up in the
    sheet's `subtotals` when known, else matched."""
    return any(
        type(c) is str and (c in subtotals if subtotals is not None else _SUBTOTAL.match(c))
        for c in head
    )


def _ref_row(ref: str) -> int:
    return int(re.sub(r"[A-Z]", "", ref))


def _cell_text(c: object) -> str:
    if isinstance(c, float) and c.is_integer():
        return str(int(c))  # a legacy .xls stores 2 as 2.0; the cell shows 2
    return "" if c is None else str(c).strip()


def _header_at(rows, r: int, names: Names, table: Table) -> _Header | None:
    cells = rows[r]
    fields: dict[str, tuple[int, int]] = {}
    kpi_cols: dict[int, object] = {}
    month_cols: dict[int, object] = {}
    labels: dict[int, str] = {}
    recognised = 0
    for j, c in enumerate(cells):
        if c is None:
            continue
        labels[j] = _cell_text(c)
        key = norm(c)
        if key in _ALIAS:
            f, rank = _ALIAS[key]
            if f not in fields or rank < fields[f][1]:
                fields[f] = (j, rank)
            recognised += 1
        elif key in INFORMATIONAL:
            recognised += 1
        elif isinstance(c, str) and names.kpi_match(c).kpis:
            kpi_cols[j] = c
        elif _is_month(c):
            month_cols[j] = c
    # Decimal numbers read as months (1931.04 → 1931-04) are amounts unless the whole row
    # reads as a header of months: all its months written so, in order, within a few years,
    # beside nothing but text.
    dotted = [j for j, c in month_cols.items() if isinstance(c, str) and
              _DECIMAL_MONTH.fullmatch(c)]  # fmt: skip
    if dotted and not _months_header(cells, month_cols, dotted):
        month_cols = {j: c for j, c in month_cols.items() if j not in dotted}
    # Dates beside numbers, or two dates in one month, are a row of data (an order's dates and
    # amounts), not months over columns: such a row must not outscore the real header above.
    dates = [c for c in month_cols.values() if isinstance(c, date)]
    if dates and (
        any(type(c) in _NUMBERS or type(c) is bool for c in cells)
        or len({(d.year, d.month) for d in dates}) < len(dates)
    ):
        month_cols = {j: c for j, c in month_cols.items() if not isinstance(c, date)}
    # A KPI named like a column alias ("名称") must not also be a KPI column.
    used = {j for j, _ in fields.values()}
    kpi_cols = {j: c for j, c in kpi_cols.items() if j not in used}
    # Row labels often have no header of their own (the first column of a report): for months
    # as columns they name the KPI; for KPIs as columns, the unit or the month of each row.
    wide = sorted(kpi_cols) or sorted(month_cols)
    if wide and wide[0] > 0:
        free = [j for j in range(wide[0]) if j not in used and norm(labels.get(j, "")) not in
                INFORMATIONAL]  # fmt: skip
        if free and month_cols and not kpi_cols and "kpi" not in fields:
            fields["kpi"] = (free[0], 99)
        elif free and kpi_cols and not ("unit" in fields and "period" in fields):
            fields["label"] = (free[0], 99)
    score = 2 * len(fields) + len(kpi_cols) + len(month_cols) + (recognised - len(fields)) // 2
    if len(fields) + len(kpi_cols) + len(month_cols) == 0 or score < 2:
        return None
    return _Header(r, {f: j for f, (j, _) in fields.items()}, kpi_cols, month_cols, labels, score)


def _months_header(cells: list, month_cols: dict[int, object], dotted: list[int]) -> bool:
    """Whether a row with months written as decimal numbers reads as a header of months."""
    if len(dotted) < 2 or len(dotted) != len(month_cols):
        return False
    others = [c for j, c in enumerate(cells) if c is not None and j not in month_cols]
    if any(not isinstance(c, str) or _number_text(c) for c in others):
        return False
    months = [parse_period(cells[j]).start for j in sorted(dotted)]
    steps = [(b.year - a.year) * 12 + b.month - a.month for a, b in pairwise(months)]
    return all(s > 0 for s in steps) and sum(steps) <= 60


def _number_text(c: str) -> bool:
    try:
        float(c.replace(",", ""))
    except ValueError:
        return False
    return True


def _is_month(c: object) -> bool:
    if isinstance(c, date):
        # A time of day makes it a moment (an update stamp), not a month; whole days come
        # from the reader as dates.
        return not isinstance(c, datetime)
    if not isinstance(c, str):
        return False
    try:
        return parse_period(c).grain == "M"
    except PeriodError:
        return False


def _find_header(rows, start: int, names: Names, table: Table) -> _Header | None:
    """The best header among the rows from `start` on; when they hold none, the best among the
    rows from the first header further down (a table below a long form)."""
    best = None
    for r in range(start, min(len(rows), start + _HEADER_SCAN)):
        h = _header_at(rows, r, names, table)
        if h is not None and (best is None or h.score > best.score):
            best = h
    if best is None and start == 0:
        first = next(
            (r for r in range(_HEADER_SCAN, min(len(rows), _HEADER_FAR))
             if _header_at(rows, r, names, table) is not None),
            None,
        )  # fmt: skip
        if first is not None:
            return _find_header(rows, first, names, table)
    return best


def _fill_merged_headers(rows, merged, header_row: int) -> None:
    """A merged header cell labels every column under it ("2024年" over twelve months)."""
    # A header may span two rows: "指标" merged down beside "2026年" merged across "7月 8月 9月".
    # The first guess is then the top row, which holds no month; the row below is filled too so
    # that the search after this finds the month row.
    last = header_row + 1 if any(r0 <= header_row < r1 for r0, _, r1, _ in merged) else header_row
    last = min(last, len(rows) - 1)
    for r0, c0, r1, c1 in merged:
        if r0 > last:
            continue
        top = rows[r0][c0] if c0 < len(rows[r0]) else None
        for r in range(r0, min(r1, last) + 1):
            for c in range(c0, c1 + 1):
                if c < len(rows[r]) and rows[r][c] is None:
                    rows[r][c] = top
    # Months written "3月" under a year: combine with the row above.
    for r in range(max(header_row, 1), last + 1):
        above, cells = rows[r - 1], rows[r]
        for j, c in enumerate(cells):
            if isinstance(c, str) and re.fullmatch(r"\s*\d{1,2}\s*月\s*", c) and j < len(above):
                year = re.search(r"(\d{4})", _cell_text(above[j]))
                if year:
                    cells[j] = f"{year[1]}年{c.strip()}"


def _fill_merged_labels(table: Table, header: _Header, findings: list[Finding]) -> set[int]:
    """Below the header: fill merged label cells; report merges over values. Returns bad rows."""
    rows = table.rows
    value_cols = set(header.kpi_cols) | set(header.month_cols)
    if "value" in header.fields:
        value_cols.add(header.fields["value"])
    bad: set[int] = set()
    for r0, c0, r1, c1 in table.merged:
        if r1 <= header.row:
            continue
        r0 = max(r0, header.row + 1)
        covered = set(range(c0, c1 + 1))
        if covered & value_cols and (r1 > r0 or len(covered & value_cols) > 1):
            where = f"{column_letter(c0)}{r0 + 1}:{column_letter(c1)}{r1 + 1}"
            findings.append(
                Finding(
                    "error", table.file, table.label, r0 + 1, column_letter(c0),
                    f"cells {where} are merged over values — no one can tell which row the "
                    "number belongs to",
                    "unmerge the cells and give each row its own value",
                )
            )  # fmt: skip
            bad.update(range(r0 + 1, min(r1, len(rows) - 1) + 2))
            continue
        # A merged range may run past the last row or column with data (a whole column merged):
        # only the cells that exist are filled.
        if r0 >= len(rows):
            continue
        top = rows[r0][c0] if c0 < len(rows[r0]) else None
        for r in range(r0, min(r1, len(rows) - 1) + 1):
            for c in range(c0, min(c1, len(rows[r]) - 1) + 1):
                rows[r][c] = top
    return bad


def _sheet_context(table: Table, names: Names) -> _Context:
    ctx = _Context()
    if not table.sheet:
        return ctx
    try:
        p = parse_period(table.sheet)
        if p.grain == "M":
            ctx.period, ctx.period_at = p.start, f"sheet name '{table.sheet}'"
            return ctx
    except PeriodError:
        pass
    if names.unit(table.sheet) is not None:
        ctx.unit, ctx.unit_at = table.sheet, f"sheet name '{table.sheet}'"
    return ctx


def _title_context(rows, header_row: int, names: Names, ctx: _Context) -> None:
    """Titles above the header: `期间：2024年3月`, `部门: 销售部`, or a lone `2024年3月`."""
    for r in range(header_row):
        for j, c in enumerate(rows[r]):
            if not isinstance(c, str):
                continue
            at = f"title {column_letter(j)}{r + 1}"
            if m := _TITLE_PAIR.match(c):
                f = _ALIAS.get(norm(m[1]), (None,))[0]
                if f == "period" and _is_month(m[2]):
                    ctx.period, ctx.period_at = m[2], at
                elif f == "unit":
                    ctx.unit, ctx.unit_at = m[2], at
            elif _is_month(c) and not re.fullmatch(r"\d{4}", c.strip()):
                ctx.period, ctx.period_at = c, at
            elif names.unit(c) is not None and sum(x is not None for x in rows[r]) == 1:
                # A lone unit name above the header: the first section of a stacked form
                # ("华东大区", then its table), or a title naming the sheet's unit.
                ctx.unit, ctx.unit_at = c, at


def _section_title(text: str, names: Names, ctx: _Context, row: int) -> bool:
    """A row holding only a unit name (华东区) or a month starts a section of a stacked form."""
    if names.unit(text) is not None:
        ctx.unit, ctx.unit_at = text, f"section title A{row}"
        return True
    if _is_month(text):
        ctx.period, ctx.period_at = text, f"section title A{row}"
        return True
    return False


def _at(header: _Header, j: int) -> str:
    label = header.labels.get(j, "")
    return f"{column_letter(j)} ({label})" if label else column_letter(j)


class _Sink:
    """Appends records for the rows under one header. Everything that depends only on the
    header (columns, their place names) is worked out once, not once per row: a sheet may have
    hundreds of thousands of rows."""

    def __init__(self, table: Table, header: _Header, out: Records):
        f = header.fields
        self.pc, self.uc, self.kc, self.vc = (f.get(k) for k in ("period", "unit", "kpi", "value"))
        self.lc = f.get("label")
        self.at = {j: _at(header, j) for j in header.labels} | {
            j: column_letter(j) for j in f.values() if j not in header.labels
        }
        self.long = self.kc is not None and self.vc is not None
        self.kpi_cols = [(j, kpi, f"header {self.at[j]}", self.at[j]) for j, kpi in
                         header.kpi_cols.items()]  # fmt: skip
        self.month_cols = [(j, month, f"header {self.at[j]}", self.at[j]) for j, month in
                           header.month_cols.items()]  # fmt: skip
        self.file, self.sheet = table.file, table.label
        self.out = out
        # The common long sheet (period, unit, KPI and value columns): only those four cells
        # and the row number vary, collected here and joined to the constant columns by `flush`.
        self.plain_long = self.long and None not in (self.pc, self.uc) and self.lc is None
        self.got: tuple[list, ...] = ([], [], [], [], [])  # row, period, unit, KPI, value
        if self.plain_long:
            self.emit = self._emit_plain_long
            self.width = max(self.pc, self.uc, self.kc, self.vc) + 1  # of a plain row
        o = out
        self.add = (
            o.file.append, o.sheet.append, o.row.append, o.period.append, o.period_at.append,
            o.unit.append, o.unit_at.append, o.kpi.append, o.kpi_at.append, o.value.append,
            o.value_at.append,
        )  # fmt: skip

    def emit(self, cells: list, row: int, ctx: _Context) -> None:
        n = len(cells)
        pc, uc, lc = self.pc, self.uc, self.lc
        if pc is not None:
            period, period_at = (cells[pc] if pc < n else None), self.at[pc]
        else:
            period, period_at = ctx.period, ctx.period_at
        if uc is not None:
            unit, unit_at = (cells[uc] if uc < n else None), self.at[uc]
        else:
            unit, unit_at = ctx.unit, ctx.unit_at
        if lc is not None and lc < n and (label := cells[lc]) is not None:
            # A row label is the row's month if it reads as one, else its unit.
            if pc is None and (_is_month(label) or isinstance(label, int | float)):
                period, period_at = label, self.at[lc]
            elif uc is None:
                unit, unit_at = label, self.at[lc]
        if self.long:
            kpi = cells[self.kc] if self.kc < n else None
            value = cells[self.vc] if self.vc < n else None
            if kpi is not None or value is not None:
                self._add(row, period, period_at, unit, unit_at, kpi, self.at[self.kc], value,
                          self.at[self.vc])  # fmt: skip
            return
        if self.kpi_cols:  # wide by KPI
            for j, kpi, kpi_at, value_at in self.kpi_cols:
                if j < n and (v := cells[j]) is not None:
                    self._add(row, period, period_at, unit, unit_at, kpi, kpi_at, v, value_at)
            return
        if self.month_cols and self.kc is not None:  # wide by month
            kpi = cells[self.kc] if self.kc < n else None
            if kpi is None:
                return
            for j, month, month_at, value_at in self.month_cols:
                if j < n and (v := cells[j]) is not None:
                    self._add(row, month, month_at, unit, unit_at, kpi, self.at[self.kc], v,
                              value_at)  # fmt: skip

    def has_number(self, cells: list) -> bool:
        """Whether a row of a plain long sheet has a number in its value column: where a run
        of plain rows may start (a CSV's values are text, parsed later: it has none)."""
        return len(cells) > self.vc and type(cells[self.vc]) in _NUMBERS

    def take_run(self, rows: list[list], start: int, skip: set[int], subtotals: set[str]) -> int:
        """Collect the plain data rows of a plain long sheet from `start` on, and return where
        they end (the caller reads that row itself). A plain row has a number in the value
        column, no subtotal label and is not to be skipped: it is no title, header or subtotal,
        and it always gives a value — the checks of the general loop, done without it.

        The checks run in C (map, itemgetter) over blocks of rows that double in size from 16:
        a call costs about what it takes, wherever the run ends."""
        r, size = start, 16
        while r < len(rows):
            block = rows[r : r + size]
            block = block[: self._plain(block, r, skip, subtotals)]
            if block:
                got_rows, periods, units, kpis, values = self.got
                got_rows.extend(range(r + 1, r + len(block) + 1))
                periods.extend(map(itemgetter(self.pc), block))
                units.extend(map(itemgetter(self.uc), block))
                kpis.extend(map(itemgetter(self.kc), block))
                values.extend(map(itemgetter(self.vc), block))
            r += len(block)
            if len(block) < size:
                break
            size *= 2
        return r

    def _plain(self, block: list[list], start: int, skip: set[int], subtotals: set[str]) -> int:
        """How many rows at the start of `block` (row `start` on) are plain."""
        end = len(block)
        lengths = list(map(len, block))
        if min(lengths, default=self.width) < self.width:
            end = next(i for i, k in enumerate(lengths) if k < self.width)
        if later := [x - 1 - start for x in skip if start <= x - 1 < start + end]:
            end = min(later)
        block = block[:end]
        numeric = list(map(_NUMBERS.__contains__, map(type, map(itemgetter(self.vc), block))))
        if False in numeric:
            end = numeric.index(False)
        if subtotals:
            total = next(
                (i for i, c in enumerate(block[:end]) if not subtotals.isdisjoint(c)), None
            )
            end = end if total is None else total
        return end

    def _emit_plain_long(self, cells: list, row: int, ctx: _Context) -> None:
        n = len(cells)
        kpi = cells[self.kc] if self.kc < n else None
        value = cells[self.vc] if self.vc < n else None
        if kpi is None and value is None:
            return
        rows, periods, units, kpis, values = self.got
        rows.append(row)
        periods.append(cells[self.pc] if self.pc < n else None)
        units.append(cells[self.uc] if self.uc < n else None)
        kpis.append(kpi)
        values.append(value)

    def flush(self) -> None:
        """Hand the rows `_emit_plain_long` collected to the records."""
        rows, periods, units, kpis, values = self.got
        if not rows:
            return
        k, o, at = len(rows), self.out, self.at
        o.file.extend([self.file] * k)
        o.sheet.extend([self.sheet] * k)
        o.row.extend(rows)
        o.period.extend(periods)
        o.period_at.extend([at[self.pc]] * k)
        o.unit.extend(units)
        o.unit_at.extend([at[self.uc]] * k)
        o.kpi.extend(kpis)
        o.kpi_at.extend([at[self.kc]] * k)
        o.value.extend(values)
        o.value_at.extend([at[self.vc]] * k)
        self.got = ([], [], [], [], [])

    def _add(self, row, period, period_at, unit, unit_at, kpi, kpi_at, value, value_at):
        a = self.add
        a[0](self.file)
        a[1](self.sheet)
        a[2](row)
        a[3](period)
        a[4](period_at)
        a[5](unit)
        a[6](unit_at)
        a[7](kpi)
        a[8](kpi_at)
        a[9](value)
        a[10](value_at)


def _require_context(table, header: _Header, ctx: _Context, out: Records, findings) -> None:
    """A block with values but no way to know their period or unit is one finding, not n."""
    if not len(out):
        return
    missing = []
    if _has_none(out.period):
        missing.append(
            ("period", "add a period/期间 column, or name the sheet by its month (2024-03)")
        )
    if _has_none(out.unit):
        missing.append(("unit", "add a unit/部门 column, or name the sheet after the unit"))
    if header.month_cols and "kpi" not in header.fields:
        missing.append(("KPI", "add a KPI/指标 column naming the KPI of each row"))
    for what, hint in missing:
        findings.append(
            Finding("error", table.file, table.label, None, None, f"no {what} for the values", hint)
        )
