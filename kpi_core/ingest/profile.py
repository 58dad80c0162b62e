"""Mapping profiles: how to turn a sheet that is not KPI-shaped (an ERP export of order lines)
into monthly actuals — saved by name, reused next month from the page or the command line.

A profile names the sheet and its header row, the column holding a date (its month is the
period), the column holding the org unit (with a map from the file's values to unit codes, or
one fixed unit), and measures: a KPI, an aggregation (sum, count, count distinct, average) of a
column over the month and unit, and optional filters on other columns.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import date, datetime

import numpy as np
import pandas as pd

from kpi_core import formula
from kpi_core.errors import KpiError, NotFoundError, ScopeError
from kpi_core.ingest.files import Table, column_letter
from kpi_core.ingest.layout import Finding, Records
from kpi_core.ingest.names import norm
from kpi_core.numbers import NumberError, parse_number
from kpi_core.periods import PeriodError, iso_week, parse_period
from kpi_core.service import Actor
from kpi_core.warehouse import Warehouse

AGGS = ("sum", "count", "count_distinct", "avg")
OPS = ("=", "!=", "in", "not in", ">", ">=", "<", "<=", "contains")


class ProfileError(KpiError):
    """A profile that is incomplete or does not fit the file."""


@dataclass
class Filter:
    column: str
    op: str
    value: str  # for `in` / `not in`: values separated by commas


@dataclass
class Measure:
    kpi: str  # KPI code
    agg: str
    # A column, or for sum/avg an expression of columns: "=[单价] * [数量] * (1 - [折扣])".
    # None: count rows.
    column: str | None = None
    filters: list[Filter] = field(default_factory=list)

    @property
    def is_expression(self) -> bool:
        return bool(self.column) and self.column.lstrip().startswith("=")

    def expression(self) -> formula.Node:
        return formula.parse(self.column.lstrip()[1:])

    def columns(self) -> list[str]:
        """The sheet columns the measure reads."""
        if not self.column:
            return []
        if self.is_expression:
            return sorted(formula.references(self.expression()))
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

    def problems(self) -> list[str]:
        """What keeps the profile from being used, in words; empty when it is complete."""
        out = []
        if not self.name.strip():
            out.append("give the profile a name")
        if not self.date_column:
            out.append("choose the date column")
        if not self.unit_column and not self.unit:
            out.append("choose the unit column, or one unit for all rows")
        if not self.measures:
            out.append("add at least one measure (a KPI and how to compute it)")
        for i, m in enumerate(self.measures, start=1):
            if not (m.kpi or "").strip():  # never a KPI picked for the analyst
                out.append(f"measure {i}: choose the KPI")
            if m.agg not in AGGS:
                out.append(f"measure {i}: aggregation must be one of {', '.join(AGGS)}")
            if m.agg != "count" and not m.column:
                out.append(f"measure {i}: choose the column to {m.agg}")
            if m.is_expression:
                if m.agg not in ("sum", "avg"):
                    out.append(f"measure {i}: an expression can only be summed or averaged")
                try:
                    m.expression()
                except formula.FormulaError as exc:
                    out.append(f"measure {i}: {exc}")
            for f in m.filters:
                if f.op not in OPS:
                    out.append(f"measure {i}: filter operator must be one of {', '.join(OPS)}")
        if self.header_row < 1:
            out.append("the header row is counted from 1")
        return out

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Profile:
        d = json.loads(text)
        d["measures"] = [
            Measure(**{**m, "filters": [Filter(**f) for f in m.get("filters", [])]})
            for m in d.get("measures", [])
        ]
        return cls(**d)


def save(wh: Warehouse, profile: Profile, who: Actor) -> None:
    if who.role not in ("analyst", "admin", "head"):
        raise ScopeError("Only analysts, department heads and admins save mapping profiles.")
    by = who.name
    problems = profile.problems()
    if problems:
        raise ProfileError("The profile is not complete: " + "; ".join(problems) + ".")
    with wh.transaction() as cur:
        old = cur.execute(
            "SELECT mapping FROM import_profile WHERE name = ?", [profile.name]
        ).fetchall()
        cur.execute(
            "INSERT OR REPLACE INTO import_profile VALUES (?, ?, ?, ?)",
            [profile.name, profile.to_json(), by, datetime.now()],
        )
        cur.execute(
            "INSERT INTO audit VALUES (?, ?, 'import_profile', ?, 'mapping', ?, ?, '')",
            [datetime.now(), by, profile.name, old[0][0] if old else None, profile.to_json()],
        )


def load(wh: Warehouse, name: str) -> Profile:
    rows = wh.rows("SELECT mapping FROM import_profile WHERE name = ?", [name])
    if not rows:
        known = names(wh)
        raise NotFoundError(
            f"There is no mapping profile '{name}'."
            + (f" Saved profiles: {', '.join(known)}." if known else " None is saved yet.")
        )
    return Profile.from_json(rows[0][0])


def names(wh: Warehouse) -> list[str]:
    return [r[0] for r in wh.rows("SELECT name FROM import_profile ORDER BY name")]


def pick_table(profile: Profile, tables: list[Table]) -> Table:
    if profile.sheet is None:
        return tables[0]
    for t in tables:
        if norm(t.sheet) == norm(profile.sheet):
            return t
    have = ", ".join(f"'{t.label}'" for t in tables)
    raise ProfileError(
        f"Profile '{profile.name}' reads sheet '{profile.sheet}', which this file does not have "
        f"(it has {have}). Choose the sheet in the profile, or upload the right file."
    )


def frame(table: Table, header_row: int) -> pd.DataFrame:
    """The sheet below its header as text-headed columns (for the profile editor and apply)."""
    if header_row > len(table.rows):
        raise ProfileError(
            f"Sheet '{table.label}' has {len(table.rows)} rows; the header row {header_row} is "
            "below them."
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
        raise ProfileError(f"Profile '{profile.name}' is not complete: " + "; ".join(problems))
    table = pick_table(profile, tables)
    df = frame(table, profile.header_row)
    findings: list[Finding] = []

    def missing(col: str, what: str) -> None:
        have = ", ".join(str(c) for c in df.columns[:30])
        findings.append(
            Finding(
                "error", table.file, table.label, profile.header_row, col,
                f"the {what} column '{col}' is not in header row {profile.header_row}",
                f"the header has: {have}",
            )
        )  # fmt: skip

    cols = {norm(c): c for c in df.columns}

    def col(name: str | None) -> str | None:
        return cols.get(norm(name)) if name else None

    needed = [(profile.date_column, "date"), (profile.unit_column, "unit")]
    for m in profile.measures:
        needed += [(c, "measure") for c in m.columns()] + [(f.column, "filter") for f in m.filters]
    for name, what in needed:
        if name and col(name) is None:
            missing(name, what)
    if any(f.severity == "error" for f in findings):
        return Records(), findings

    date_col = col(profile.date_column)
    month, bad_dates = _months(df[date_col])
    for row in bad_dates[:200]:
        findings.append(
            Finding(
                "error", table.file, table.label, int(row), date_col,
                f"'{df.at[row, date_col]}' is not a date", "write a date such as 2024-03-15",
            )
        )  # fmt: skip
    keep = month.notna()
    if profile.unit_column:
        ucol = col(profile.unit_column)
        mapping = {norm(k): v for k, v in profile.unit_map.items()}
        unit = df[ucol].map(lambda v: mapping.get(norm(v), v) if v is not None else None)
        unit_at = ucol
    else:
        unit = pd.Series(profile.unit, index=df.index, dtype=object)
        unit_at = f"profile '{profile.name}'"
    out = Records()
    for i, m in enumerate(profile.measures, start=1):
        mask = keep & _filters(df, m.filters, col)
        source = df[col(m.column)] if m.column and not m.is_expression else None
        values = None
        if m.agg in ("sum", "avg"):
            numbers = {}
            for name in m.columns():
                numbers[name], bad = _number_column(df[col(name)])
                for row in bad[mask.loc[bad].to_numpy()][:200]:
                    findings.append(
                        Finding(
                            "error", table.file, table.label, int(row), col(name),
                            f"'{df.at[row, col(name)]}' is not a number",
                            "fix the cell, or add a filter that leaves the row out",
                        )
                    )  # fmt: skip
                mask &= ~df.index.isin(bad)
            if m.is_expression:
                arrays = {name: v.to_numpy(float) for name, v in numbers.items()}
                values = pd.Series(
                    formula.evaluate_arrays(m.expression(), arrays, len(df)), index=df.index
                )
            else:
                values = numbers[m.column]
        grouped = pd.DataFrame({"month": month[mask], "unit": unit[mask]})
        if m.agg in ("sum", "avg"):
            grouped["v"] = values[mask]
            agg = grouped.groupby(["month", "unit"], dropna=False)["v"]
            result = agg.sum() if m.agg == "sum" else agg.mean()
        elif m.agg == "count":
            if source is not None:
                grouped = grouped[source[mask].notna().to_numpy()]
            result = grouped.groupby(["month", "unit"], dropna=False).size()
        else:
            grouped["v"] = source[mask].map(lambda v: None if v is None else str(v))
            result = grouped.groupby(["month", "unit"], dropna=False)["v"].nunique()
        how = f"{m.agg}({m.column})" if m.column else "count(rows)"
        for (mon, u), v in result.items():
            out.file.append(table.file)
            out.sheet.append(table.label)
            out.row.append(None)
            out.period.append(mon)
            out.period_at.append(date_col)
            out.unit.append(u)
            out.unit_at.append(unit_at)
            out.kpi.append(m.kpi)
            out.kpi_at.append(f"profile '{profile.name}' measure {i}")
            out.value.append(float(v))
            out.value_at.append(how)
    return out, findings


def _months(col: pd.Series) -> tuple[pd.Series, list[int]]:
    memo: dict[object, date | None] = {}

    def month(v: object) -> date | None:
        if v is None:
            return None
        if v not in memo:
            try:
                # An ISO week (2019-W15) counts in the month of its Thursday (periods.iso_week).
                week = iso_week(v) if isinstance(v, str) else None
                if week is not None:
                    memo[v] = week[1]
                else:
                    memo[v] = parse_period(v).start if parse_period(v).grain == "M" else None
            except (PeriodError, TypeError):
                memo[v] = None
        return memo[v]

    months = col.map(month)
    bad = col.index[months.isna() & col.notna()].tolist()
    return months, bad


def _number_column(col: pd.Series) -> tuple[pd.Series, pd.Index]:
    """Numbers of a column (NaN for blanks) and the index of cells that are not numbers."""
    memo: dict[object, float | None] = {}

    def number(v: object) -> float | None:
        if type(v) is float or type(v) is int:
            return float(v)
        if v not in memo:
            try:
                p = parse_number(v)
                memo[v] = np.nan if p is None else p.value
            except (NumberError, TypeError):
                memo[v] = None
        return memo[v]

    values = [number(v) for v in col.tolist()]
    bad = col.index[[v is None for v in values]]
    return pd.Series([np.nan if v is None else v for v in values], index=col.index), bad


def _filters(df: pd.DataFrame, filters: list[Filter], col) -> pd.Series:
    mask = pd.Series(True, index=df.index)
    for f in filters:
        c = df[col(f.column)]
        text = c.map(lambda v: "" if v is None else norm(_plain(v)))
        want = norm(f.value)
        if f.op in ("=", "!="):
            hit = text == want
        elif f.op in ("in", "not in"):
            hit = text.isin({norm(v) for v in f.value.split(",")})
        elif f.op == "contains":
            hit = text.str.contains(want, regex=False)
        else:
            nums, _ = _number_column(c)
            limit = parse_number(f.value)
            limit = limit.value if limit else np.nan
            hit = {">": nums > limit, ">=": nums >= limit, "<": nums < limit, "<=": nums <= limit}[
                f.op
            ]
        mask &= ~hit if f.op in ("!=", "not in") else hit
    return mask


def _plain(v: object) -> object:
    """12.0 → '12': an ERP's numeric codes compared as the text people type."""
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v
