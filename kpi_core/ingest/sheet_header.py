"""Where a sheet's table starts and what frames it: the header row (the row among the first ones
that best matches known column names, KPI names or codes, or months), merged header and label
cells filled across, and the context a sheet gives outside its table (its name, a title above
the header, a section title row). `layout` reads the rows under the header found here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from itertools import chain, islice, pairwise, repeat
from operator import is_

from kpi_core.ingest import places
from kpi_core.ingest.files import Table, column_letter
from kpi_core.ingest.names import Names, norm
from kpi_core.messages import Message
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


@dataclass(frozen=True)
class Finding:
    """Something the reader noticed about a sheet; `error` ones keep rows out. Its message and
    hint are coded messages, rendered in the reader's language; `str()` of either is the
    English the command line prints."""

    severity: str  # "error", "warning" or "info"
    file: str
    sheet: str
    row: int | None
    column: str | None
    message: Message | str
    hint: Message | str = ""

    def says(self, key: str) -> bool:
        """Whether the finding's message is the coded message `key`: findings are told apart
        by their key, never by their English."""
        return isinstance(self.message, Message) and self.message.key == key


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
                    Message("ly_merged_values", cells=where), Message("ly_merged_values_hint"),
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
            ctx.period, ctx.period_at = p.start, places.sheet_name(table.sheet)
            return ctx
    except PeriodError:
        pass
    if names.unit(table.sheet) is not None:
        ctx.unit, ctx.unit_at = table.sheet, places.sheet_name(table.sheet)
    return ctx


def _title_context(rows, header_row: int, names: Names, ctx: _Context) -> None:
    """Titles above the header: `期间：2024年3月`, `部门: 销售部`, or a lone `2024年3月`."""
    for r in range(header_row):
        for j, c in enumerate(rows[r]):
            if not isinstance(c, str):
                continue
            at = places.title(f"{column_letter(j)}{r + 1}")
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
        ctx.unit, ctx.unit_at = text, places.section_title(f"A{row}")
        return True
    if _is_month(text):
        ctx.period, ctx.period_at = text, places.section_title(f"A{row}")
        return True
    return False


def _at(header: _Header, j: int) -> str:
    label = header.labels.get(j, "")
    return f"{column_letter(j)} ({label})" if label else column_letter(j)
