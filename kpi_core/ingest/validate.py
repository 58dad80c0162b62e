"""Records checked against the KPI library, the org, the calendar and the uploader's scope.

Every distinct raw text (a KPI name, a unit, a period) is looked up once, so a 500,000-row file
costs a few thousand lookups plus one pass over its values. Each problem keeps the place of its
cell; a row with any error is left out of what can be committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from kpi_core.access import Scope
from kpi_core.catalog import Catalog
from kpi_core.ingest.layout import Finding, Records
from kpi_core.ingest.names import Names
from kpi_core.library import AGGREGATIONS
from kpi_core.numbers import NumberError, parse_number
from kpi_core.periods import PeriodError, month_of, parse_period

MAX_LISTED = 200  # problems listed per kind; the rest are counted


@dataclass(frozen=True)
class Checked:
    rows: pd.DataFrame  # kpi_id, unit_id, period, value, file, sheet, row, at: rows without errors
    findings: list[Finding]
    invalid: int  # records left out for errors


def check(
    records: Records,
    cat: Catalog,
    scope: Scope,
    *,
    today: date,
    locked: set[date],
    names: Names | None = None,
) -> Checked:
    names = names or Names(cat)
    n = len(records)
    findings: list[Finding] = []
    bad = np.zeros(n, dtype=bool)
    at = {f: np.asarray(getattr(records, f + "_at"), dtype=object) for f in FIELDS}

    def problem(
        mask: np.ndarray, field: str, message, hint, severity: str = "error", *, own: bool = False
    ) -> None:
        """Report the records in `mask`; message/hint map an index. A check of a cell of its own
        (`own`: the KPI, the unit, the period, whether the value is a number) is reported for
        every record, so a row with three wrong cells shows all three at once; a check that
        needs the others right (a value's range needs its KPI) only for records not refused."""
        idx = np.flatnonzero(mask if own else mask & ~bad)
        if severity == "error":
            bad[idx] = True
        for i in idx[:MAX_LISTED].tolist():
            findings.append(
                Finding(
                    severity, records.file[i], records.sheet[i], records.row[i],
                    at[field][i] or None, message(i), hint(i),
                )
            )  # fmt: skip
        if len(idx) > MAX_LISTED:
            findings.append(
                Finding(
                    severity,
                    "",
                    "",
                    None,
                    None,
                    f"… and {len(idx) - MAX_LISTED:,} more like these ({message(idx[0])})",
                )  # fmt: skip
            )

    # Each distinct raw text is looked up once; records get its result by their code.
    kpi_code, kpi_raw = pd.factorize(np.asarray(records.kpi, dtype=object), use_na_sentinel=False)
    kpis = [names.kpi(_text(x)) for x in kpi_raw]
    kpi_ids = np.array([k.id if k else 0 for k in kpis], dtype=np.int32)[kpi_code]
    raw = records.kpi
    problem(kpi_ids == 0, "kpi",
            lambda i: f"unknown KPI '{_text(raw[i])}'" if raw[i] is not None else "no KPI given",
            lambda i: names.kpi_hint(_text(raw[i])) or "check the KPI library for its code"
            if raw[i] is not None else "fill in the KPI code or name", own=True)  # fmt: skip
    columns = cat.kpi_columns
    is_formula = columns.aggregation[kpi_ids] == AGGREGATIONS.index("formula")
    problem(is_formula & (kpi_ids != 0), "kpi",
            lambda i: f"'{cat.kpis[kpi_ids[i]].code}' is computed by its formula "
                      f"({cat.kpis[kpi_ids[i]].formula})",
            lambda i: "load the KPIs it is made of instead", own=True)  # fmt: skip

    unit_code, unit_raw = pd.factorize(
        np.asarray(records.unit, dtype=object), use_na_sentinel=False
    )
    units = [names.unit(_text(x)) for x in unit_raw]
    unit_ids = np.array([u.id if u else 0 for u in units], dtype=np.int32)[unit_code]
    raw_u = records.unit
    problem(unit_ids == 0, "unit",
            lambda i: f"unknown unit '{_text(raw_u[i])}'" if raw_u[i] is not None
                      else "no unit given",
            lambda i: names.unit_hint(_text(raw_u[i])) or "check the org units for its code"
            if raw_u[i] is not None else "fill in the unit code or name", own=True)  # fmt: skip
    allowed = np.array([u is not None and scope.allows(u.id) for u in units], dtype=bool)[unit_code]
    problem(~allowed & (unit_ids != 0), "unit",
            lambda i: f"unit '{cat.units[unit_ids[i]].code}' is outside your scope",
            lambda i: "upload only the units you are responsible for, or ask an admin",
            own=True)  # fmt: skip

    period_code, period_raw = pd.factorize(
        np.asarray(records.period, dtype=object), use_na_sentinel=False
    )
    months = [_month(x) for x in period_raw]
    is_month = np.array([isinstance(m, date) for m in months], dtype=bool)[period_code]
    problem(~is_month, "period", lambda i: months[period_code[i]],
            lambda i: "write the month as 2024-03, 2024年3月 or an Excel date", own=True)  # fmt: skip
    this_month = month_of(today)
    stamp = np.array(
        [np.datetime64(m, "D") if isinstance(m, date) else np.datetime64("NaT") for m in months],
        dtype="datetime64[D]",
    )[period_code]
    future = is_month & (stamp > np.datetime64(this_month, "D"))
    problem(future, "period", lambda i: f"{_label(stamp[i])} is in the future",
            lambda i: "check the period; actuals are loaded once the month has begun",
            own=True)  # fmt: skip
    closed = is_month & np.isin(stamp, np.array(sorted(locked), dtype="datetime64[D]"))
    problem(closed, "period", lambda i: f"{_label(stamp[i])} is closed",
            lambda i: "ask an admin to reopen the month", own=True)  # fmt: skip

    values, percent, not_number, blank = _numbers(records.value)
    vraw = records.value
    problem(not_number, "value",
            lambda i: f"'{vraw[i]}' is an Excel error, not a number" if vraw[i] in EXCEL_ERRORS
            else f"'{vraw[i]}' is not a number",
            lambda i: "fix the cell's formula in Excel (or type the value) and save again"
            if vraw[i] in EXCEL_ERRORS
            else "write a number such as 1250000, 12.5万, 1,234.5 or 96%", own=True)  # fmt: skip
    bad |= blank  # a blank value is no value: nothing to load and nothing to say
    is_pct = np.zeros(len(columns.aggregation), dtype=bool)
    lo = np.full(len(columns.aggregation), np.nan)
    hi = np.full(len(columns.aggregation), np.nan)
    for k in cat.kpis.values():
        is_pct[k.id] = k.is_percent
        lo[k.id] = np.nan if k.min_value is None else k.min_value
        hi[k.id] = np.nan if k.max_value is None else k.max_value
    k_lo, k_hi = lo[kpi_ids], hi[kpi_ids]
    with np.errstate(invalid="ignore"):
        plain_pct = is_pct[kpi_ids] & ~percent & (values > 1.5) & ~(k_hi >= values)
        problem(plain_pct, "value",
                lambda i: f"{values[i]:g} in percent KPI {cat.kpis[kpi_ids[i]].code} — "
                          f"did you mean {values[i]:g}%?",
                lambda i: f"write {values[i]:g}% or {values[i] / 100:g}")  # fmt: skip
        problem(values < k_lo, "value",
                lambda i: f"{values[i]:g} is below {cat.kpis[kpi_ids[i]].code}'s allowed "
                          f"minimum {k_lo[i]:g}",
                lambda i: "check the sign and the unit of the number")  # fmt: skip
        problem(values > k_hi, "value",
                lambda i: f"{values[i]:g} is above {cat.kpis[kpi_ids[i]].code}'s allowed "
                          f"maximum {k_hi[i]:g}",
                lambda i: "check the number and its unit (万, %, …)")  # fmt: skip

    ok = ~bad
    rows = pd.DataFrame(
        {
            "kpi_id": kpi_ids[ok],
            "unit_id": unit_ids[ok],
            "period": stamp[ok],
            "value": values[ok],
            # Kept as objects: inferring pandas' string type for 100,000 places costs more
            # than the rest of the frame, and these are only read back one at a time.
            "file": pd.Series(np.asarray(records.file, dtype=object)[ok], dtype=object),
            "sheet": pd.Series(np.asarray(records.sheet, dtype=object)[ok], dtype=object),
            "row": pd.Series(np.asarray(records.row, dtype=object)[ok], dtype=object),
            "at": pd.Series(at["value"][ok], dtype=object),
        }
    )
    kept, dup_findings, conflicting = _duplicates(rows, cat)
    findings += dup_findings
    # A repeat of the same value is a warning and one copy is loaded: it is not invalid.
    invalid = int((bad & ~blank).sum()) + conflicting
    return Checked(kept, findings, invalid)


FIELDS = ("period", "unit", "kpi", "value")
# What a cell shows when its formula fails; files.py puts these back where calamine drops them.
EXCEL_ERRORS = frozenset(
    ("#DIV/0!", "#N/A", "#NAME?", "#NULL!", "#NUM!", "#REF!", "#VALUE!", "#GETTING_DATA",
     "#SPILL!", "#CALC!")
)  # fmt: skip


def _label(stamp: np.datetime64) -> str:
    return str(stamp)[:7]


def _numbers(cells: list[object]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(value, written as percent, not a number, blank) per cell; text parsed once per text."""
    n = len(cells)
    percent = np.zeros(n, dtype=bool)
    not_number = np.zeros(n, dtype=bool)
    if set(map(type, cells)) <= {float, int}:  # the usual sheet: numeric cells only, at C speed
        values = np.array(cells, dtype=float)
        return values, percent, not_number, np.isnan(values)
    values = np.full(n, np.nan)
    blank = np.zeros(n, dtype=bool)
    memo: dict[object, object] = {}
    for i, c in enumerate(cells):
        if type(c) is float or type(c) is int:
            if c != c:  # NaN from a Parquet or CSV reader
                blank[i] = True
            values[i] = c
            continue
        got = memo.get(c, memo)
        if got is memo:
            try:
                got = memo[c] = parse_number(c)
            except (NumberError, TypeError):
                got = memo[c] = False
        if got is None:
            blank[i] = True
        elif got is False:
            not_number[i] = True
        else:
            values[i], percent[i] = got.value, got.percent
    return values, percent, not_number, blank


def _text(raw: object) -> object:
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    return raw


def _month(raw: object) -> date | str:
    """The month of a cell, or the message saying why it is not one."""
    if raw is None or raw != raw:  # None, or the NaN pandas' factorize makes of it
        return "no period given"
    try:
        p = parse_period(raw)
    except PeriodError as exc:
        return str(exc)
    if p.grain != "M":
        # _text: Excel gives the year 2025 as the float 2025.0, which is not what the cell shows.
        what = "year" if p.grain == "Y" else "quarter"
        return f"'{_text(raw)}' is a {what} — actuals are monthly"
    return p.start


def _duplicates(rows: pd.DataFrame, cat: Catalog) -> tuple[pd.DataFrame, list[Finding], int]:
    """The same KPI, unit and month twice: one copy is kept if the values agree (a warning);
    if they differ, neither is (an error), since only the analyst knows which one is right.
    Returns the rows kept, the findings and how many rows were left out for disagreeing."""
    key = ["kpi_id", "unit_id", "period"]
    dup = rows.duplicated(key, keep=False)
    if not dup.any():
        return rows, [], 0
    findings = []
    drop = []
    conflicting = 0
    for _, group in rows[dup].groupby(key, sort=False):
        first = group.iloc[0]
        agree = bool((group["value"] == first["value"]).all())
        drop.extend(group.index[1:] if agree else group.index)
        conflicting += 0 if agree else len(group)
        what = f"{cat.units[first['unit_id']].code}/{cat.kpis[first['kpi_id']].code}"
        for _, r in group.iloc[1:].iterrows():
            # A sheet named "2026-09" must not read as the month: say "sheet '2026-09'".
            there = (
                f"sheet '{first['sheet']}'" if first["sheet"] else f"file '{first['file']}'"
            ) + (f" row {first['row']}" if first["row"] is not None else "")
            if agree:
                message = f"{what} {r['period']:%Y-%m} repeats {there} with the same value"
            else:
                message = (
                    f"{what} {r['period']:%Y-%m} is also given in {there}: "
                    f"{first['value']:g} there, {r['value']:g} here — neither is loaded"
                )
            findings.append(
                Finding(
                    "warning" if agree else "error", r["file"], r["sheet"], r["row"], r["at"],
                    message, "delete the repeated row" if agree else "keep the right one",
                )
            )  # fmt: skip
    return rows.drop(index=drop).reset_index(drop=True), findings, conflicting
