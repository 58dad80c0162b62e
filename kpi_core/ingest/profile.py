"""Mapping profiles: how to turn a sheet that is not KPI-shaped (an ERP export of order lines)
into monthly actuals — saved by name, reused next month from the page or the command line.

A profile names the sheet and its header row, the column holding a date (its month is the
period), the column holding the org unit (with a map from the file's values to unit codes, or
one fixed unit), and measures: a KPI, an aggregation (sum, count, count distinct, average) of a
column over the month and unit, and optional filters on other columns.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime

import duckdb
import numpy as np
import pandas as pd

from kpi_core import audit
from kpi_core.access import Actor, can
from kpi_core.errors import KpiError, NotFoundError, ScopeError
from kpi_core.ingest import aggregation, dates, expression, places
from kpi_core.ingest.files import Table, column_letter
from kpi_core.ingest.layout import Finding, Records
from kpi_core.ingest.names import norm
from kpi_core.messages import Items, Message
from kpi_core.warehouse import Warehouse

AGGS = ("sum", "count", "count_distinct", "avg")
OPS = ("=", "!=", "in", "not in", ">", ">=", "<", "<=", "contains")
EXPRESSION_OPS = ("=", "!=", ">", ">=", "<", "<=")


class ProfileError(KpiError):
    """A profile that is incomplete or does not fit the file."""


@dataclass
class Filter:
    column: str
    op: str
    value: str  # for `in` / `not in`: values separated by commas; `=[Order Date] + 4`: columns

    @property
    def is_expression(self) -> bool:
        """A value naming columns ([Order Date] + 4) is computed per row; any other value,
        '=' and all, is the text or number compared."""
        return self.op in EXPRESSION_OPS and bool(re.search(r"\[[^\]]+\]", self.value or ""))

    def columns(self) -> list[str]:
        refs = expression.parse(self.value).references() if self.is_expression else []
        return [self.column, *refs]


@dataclass
class Measure:
    kpi: str  # KPI code
    agg: str
    # A column, or an expression of columns read by `expression`: "=[单价] * [数量] * (1 - [折扣])",
    # "=[Ship Date] - [Order Date]" (days), "=[Shipped] <= [Required]" (summed: how many rows;
    # averaged: their share; counted: the rows where it holds). None: count rows.
    column: str | None = None
    filters: list[Filter] = field(default_factory=list)

    @property
    def is_expression(self) -> bool:
        return expression.is_expression(self.column)

    def expression(self) -> expression.Expression:
        return expression.parse(self.column)

    def columns(self) -> list[str]:
        """The sheet columns the measure reads (not its filters')."""
        if not self.column:
            return []
        if self.is_expression:
            return self.expression().references()
        return [self.column]


@dataclass
class Profile:
    name: str
    date_column: str
    measures: list[Measure]
    sheet: str | None = None  # None: the first sheet
    header_row: int = 1  # Excel row number
    unit_column: str | None = None
    unit_map: dict[str, str] = field(default_factory=dict)  # file value → unit code
    unit: str | None = None  # one unit for the whole file when it has no unit column
    # How text dates read: "" detects (and asks when a column reads both ways), dmy / mdy / ymd,
    # or a pattern such as "%d/%m/%y". ISO dates (2019-01-20) always read as ISO.
    date_format: str = ""

    def problems(
        self, columns: list[str] | None = None, from_query: bool = False
    ) -> list[Message | str]:
        """What keeps the profile from being used, as messages; empty when it is complete. With
        the file's `columns`, every column a measure or filter names must be one of them
        (`from_query`: they are a source's query result, not a file's header)."""
        out: list[Message | str] = []
        if bad := dates.check_format(self.date_format):
            out.append(bad)
        if not self.name.strip():
            out.append(NO_NAME)
        if not self.date_column:
            out.append(Message("pf_no_date_column"))
        if not self.unit_column and not self.unit:
            out.append(Message("pf_no_unit"))
        if not self.measures:
            out.append(Message("pf_no_measures"))
        for i, m in enumerate(self.measures, start=1):
            if not (m.kpi or "").strip():  # never a KPI picked for the analyst
                out.append(Message("pf_measure", i=i, problem=Message("pf_choose_kpi")))
            if m.agg not in AGGS:
                options = Items(AGGS, commas=True)
                out.append(Message("pf_measure", i=i, problem=Message("pf_agg", options=options)))
            if m.agg != "count" and not m.column:
                column = Message("pf_choose_column", agg=agg_word(m.agg))
                out.append(Message("pf_measure", i=i, problem=column))
            out += [
                Message("pf_measure_kpi", i=i, kpi=m.kpi, problem=p)
                for p in _measure_problems(self, m, columns, from_query)
            ]
        if self.header_row < 1:
            out.append(Message("pf_header_row"))
        return out

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Profile:
        d = json.loads(text)
        known = {f for f in cls.__dataclass_fields__}
        d = {k: v for k, v in d.items() if k in known}
        d["measures"] = [
            Measure(**{**m, "filters": [Filter(**f) for f in m.get("filters", [])]})
            for m in d.get("measures", [])
        ]
        return cls(**d)


# The one problem a source's mapping does not have: it is named after the source.
NO_NAME = Message("pf_no_name")


# An aggregation as a sentence names it ("the column to sum" / "求和所用的列").
AGG_WORDS = {
    "sum": Message("pf_w_sum"),
    "count": Message("pf_w_count"),
    "count_distinct": Message("pf_w_count_distinct"),
    "avg": Message("pf_w_avg"),
}


# What a column is for, as a message about it names it ("the date column" / "日期列").
COLUMN_WORDS = {
    "date": Message("pf_w_date"),
    "unit": Message("pf_w_unit"),
    "measure": Message("pf_w_measure"),
    "filter": Message("pf_w_filter"),
}


def agg_word(agg: str) -> Message | str:
    """`agg` as a sentence names it; an unknown one as it was written."""
    return AGG_WORDS.get(agg, agg)


def _measure_problems(
    profile: Profile, m: Measure, columns: list[str] | None, from_query: bool = False
) -> list[Message | str]:
    out: list[Message | str] = []
    have = {norm(c) for c in columns} if columns is not None else None
    kinds = {profile.date_column: expression.DATE} if profile.date_column else {}
    named: list[str] = []
    if m.is_expression:
        if m.agg == "count_distinct":
            out.append(Message("pf_expression_distinct"))
        try:
            e = m.expression()
            kind = expression.check(e, kinds)
            named += e.references()
            if kind == expression.DATE:
                out.append(Message("pf_expression_date", text=e.text))
        except expression.ExpressionError as exc:
            out.append(exc.said())
    elif m.column:
        named.append(m.column)
    for f in m.filters:
        if f.op not in OPS:
            out.append(Message("pf_filter_op", options=Items(OPS, commas=True)))
        named.append(f.column)
        if f.is_expression:
            try:
                e = expression.parse(f.value)
                expression.check(e, kinds)
                named += e.references()
            except expression.ExpressionError as exc:
                out.append(Message("pf_filter_on", column=f.column, problem=exc.said()))
    if have is not None:
        for name in dict.fromkeys(named):
            if name and norm(name) not in have:
                out.append(
                    Message("pf_not_in_result" if from_query else "pf_not_in_file", column=name)
                )
    return out


def save(wh: Warehouse, profile: Profile, who: Actor) -> None:
    if not can(who, "save_profiles"):
        raise ScopeError(Message("pf_who_saves"))
    by = who.name
    problems = profile.problems()
    if problems:
        raise ProfileError(Message("pf_not_complete", problems=Items(problems)))
    with wh.transaction() as cur:
        old = cur.execute(
            "SELECT mapping FROM import_profile WHERE name = ?", [profile.name]
        ).fetchall()
        cur.execute(
            "INSERT OR REPLACE INTO import_profile VALUES (?, ?, ?, ?)",
            [profile.name, profile.to_json(), by, datetime.now()],
        )
        audit.record(
            cur, changed_at=datetime.now(), changed_by=by, entity="import_profile",
            key=profile.name, field="mapping", old=old[0][0] if old else None,
            new=profile.to_json(), reason="",
        )  # fmt: skip


def load(wh: Warehouse, name: str) -> Profile:
    rows = wh.rows("SELECT mapping FROM import_profile WHERE name = ?", [name])
    if not rows:
        known = names(wh)
        if known:
            raise NotFoundError(
                Message("pf_no_profile", name=name, known=Items(known, commas=True))
            )
        raise NotFoundError(Message("pf_no_profile_yet", name=name))
    return Profile.from_json(rows[0][0])


def names(wh: Warehouse) -> list[str]:
    return [r[0] for r in wh.rows("SELECT name FROM import_profile ORDER BY name")]


def pick_table(profile: Profile, tables: list[Table]) -> Table:
    if profile.sheet is None:
        return tables[0]
    for t in tables:
        if norm(t.sheet) == norm(profile.sheet):
            return t
    have = Items([Message("pf_quoted", name=t.label) for t in tables], commas=True)
    raise ProfileError(Message("pf_no_sheet", name=profile.name, sheet=profile.sheet, sheets=have))


def frame(table: Table, header_row: int) -> pd.DataFrame:
    """The sheet below its header as text-headed columns (for the profile editor and apply)."""
    if header_row > len(table.rows):
        raise ProfileError(
            Message("pf_header_below", sheet=table.label, n=len(table.rows), row=header_row)
        )
    header = table.rows[header_row - 1]
    width = max((len(r) for r in table.rows[header_row - 1 :]), default=0)
    labels, seen = [], set()
    for j in range(width):
        text = str(header[j]).strip() if j < len(header) and header[j] is not None else ""
        text = text or column_letter(j)
        while text in seen:
            text += "'"
        seen.add(text)
        labels.append(text)
    body = [r + [None] * (width - len(r)) for r in table.rows[header_row:]]
    df = pd.DataFrame(body, columns=labels, dtype=object)
    df.index = np.arange(header_row + 1, header_row + 1 + len(df))  # Excel row numbers
    return df


def apply(profile: Profile, tables: list[Table]) -> tuple[Records, list[Finding]]:
    """Records of the monthly aggregates the profile describes, with every problem placed."""
    if problems := profile.problems():
        raise ProfileError(
            Message("pf_named_not_complete", name=profile.name, problems=Items(problems))
        )
    table = pick_table(profile, tables)
    df = frame(table, profile.header_row)
    findings: list[Finding] = []

    def missing(col: str, what: str) -> None:
        have = Items([str(c) for c in df.columns[:30]], commas=True)
        findings.append(
            Finding(
                "error", table.file, table.label, profile.header_row, col,
                Message("pf_not_in_header", what=COLUMN_WORDS[what], column=col,
                        row=profile.header_row),
                Message("pf_header_has", columns=have),
            )
        )  # fmt: skip

    cols = {norm(c): c for c in df.columns}

    def col(name: str | None) -> str | None:
        return cols.get(norm(name)) if name else None

    needed = [(profile.date_column, "date"), (profile.unit_column, "unit")]
    for m in profile.measures:
        needed += [(c, "measure") for c in m.columns()]
        needed += [(c, "filter") for f in m.filters for c in f.columns()]
    for name, what in needed:
        if name and col(name) is None:
            missing(name, what)
    if any(f.severity == "error" for f in findings):
        return Records(), findings

    con = duckdb.connect()
    try:
        columns = aggregation.land_frame(con, df)
        place = aggregation.Place(
            table.file, table.label, places.profile(profile.name),
            Message("pf_fix_cell"), Message("pf_fix_date"),
        )  # fmt: skip
        out, found = aggregation.aggregate(con, profile, columns, place)
    finally:
        con.close()
    return out, findings + found
