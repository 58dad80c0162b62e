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

The result is `Records`: raw cells with their places; validation reads them. Finding the header
and the sheet's context is in `sheet_header`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import itemgetter

from kpi_core.ingest import places
from kpi_core.ingest.files import Table, column_letter
from kpi_core.ingest.names import Names
from kpi_core.ingest.sheet_header import (
    _HEADER_FAR,
    _HEADER_SCAN,
    _NONE,
    _NUMBERS,
    Finding,
    _at,
    _Context,
    _fill_merged_headers,
    _fill_merged_labels,
    _find_header,
    _has_none,
    _Header,
    _header_at,
    _is_month,
    _ref_row,
    _section_title,
    _sheet_context,
    _subtotal,
    _subtotal_texts,
    _title_context,
)
from kpi_core.ingest.sheet_header import FIELDS as FIELDS  # handed on, as Finding
from kpi_core.messages import Message
from kpi_core.texts import N_


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


def read_table(table: Table, names: Names) -> tuple[Records, list[Finding]]:
    """Records and findings of one sheet."""
    rows = table.rows
    findings: list[Finding] = []
    label = table.label
    if not any(any(c is not None for c in r) for r in rows):
        findings.append(Finding("info", table.file, label, None, None, Message("ly_empty")))
        return Records(), findings
    for ref in table.formulas_without_values[:20]:
        findings.append(
            Finding(
                "error", table.file, label, _ref_row(ref), ref,
                Message("ly_formula_unsaved", ref=ref), Message("ly_formula_unsaved_hint"),
            )
        )  # fmt: skip
    if len(table.formulas_without_values) > 20:
        n = len(table.formulas_without_values) - 20
        findings.append(
            Finding("error", table.file, label, None, None, Message("ly_more_formulas", n=n))
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
                Message("ly_no_header", rows=looked),
                Message(N_("ly_no_header_far_hint") if far else N_("ly_no_header_hint")),
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
            columns: Message | str = lacking[0]
            if len(lacking) == 2:  # "KPI/指标 or value/实际值"
                columns = Message("ly_either", first=lacking[0], second=lacking[1])
            findings.append(
                Finding(
                    "warning", table.file, label, header.row + 1, None,
                    Message("ly_header_lacks", row=header.row + 1, columns=columns, n=below),
                    Message("ly_header_lacks_hint"),
                )
            )  # fmt: skip
        else:
            findings.append(
                Finding(
                    "warning", table.file, label, header.row + 1, None,
                    Message("ly_header_no_values", row=header.row + 1),
                    Message("ly_header_no_values_hint"),
                )
            )  # fmt: skip
    _require_context(table, header, context, out, findings)
    return out, findings


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
        self.kpi_cols = [(j, kpi, places.header(self.at[j]), self.at[j]) for j, kpi in
                         header.kpi_cols.items()]  # fmt: skip
        self.month_cols = [(j, month, places.header(self.at[j]), self.at[j]) for j, month in
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
        missing.append((N_("ly_no_period"), N_("ly_no_period_hint")))
    if _has_none(out.unit):
        missing.append((N_("ly_no_unit"), N_("ly_no_unit_hint")))
    if header.month_cols and "kpi" not in header.fields:
        missing.append((N_("ly_no_kpi"), N_("ly_no_kpi_hint")))
    for what, hint in missing:
        findings.append(
            Finding("error", table.file, table.label, None, None, Message(what), Message(hint))
        )
