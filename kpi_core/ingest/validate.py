"""Records checked against the KPI library, the org, the calendar and the uploader's scope.

Every distinct raw text (a KPI name, a unit, a period) is looked up once, so a 500,000-row file
costs a few thousand lookups plus one pass over its values. Each problem keeps the place of its
cell; a row with any error is left out of what can be committed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from operator import is_

import numpy as np
import pandas as pd

from kpi_core import formula
from kpi_core.access import Scope
from kpi_core.catalog import Catalog
from kpi_core.errors import KpiError
from kpi_core.ingest import places
from kpi_core.ingest.layout import Finding, Records
from kpi_core.ingest.names import Names, either
from kpi_core.library import AGGREGATIONS
from kpi_core.messages import Items, Message
from kpi_core.numbers import NumberError, parse_number
from kpi_core.periods import PeriodError, month_of, parse_period
from kpi_core.texts import N_

MAX_LISTED = 200  # problems listed per kind; the rest are counted


@dataclass(frozen=True)
class Binding:
    """Which KPI a column holds (or, in a KPI column, a text names), and how that was decided:
    shown to the analyst before anything is loaded."""

    file: str
    sheet: str
    column: str  # the place, as findings name it: "header B (Sales)", "C (指标)", "profile 'x' …"
    text: str  # what the file says: the header, the cell, the profile's KPI code
    kpi: str  # the KPI's code; "" when the text names none or several
    name: str  # the KPI's names, "销售额 / Sales"
    how: str  # "code", "name", "profile", "source", or "" (no KPI matched)
    units: tuple[str, ...]  # the units its values are for
    values: int
    problem: str  # "", "unknown", "ambiguous", "not on tree", "formula", "no unit"

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What the analyst's answer is given for (`check(choices=…)`)."""
        return (self.file, self.sheet, self.column, self.text)


@dataclass(frozen=True)
class Checked:
    rows: pd.DataFrame  # kpi_id, unit_id, period, value, file, sheet, row, at: rows without errors
    findings: list[Finding]
    invalid: int  # records left out for errors
    bindings: list[Binding] = field(default_factory=list)


def check(
    records: Records,
    cat: Catalog,
    scope: Scope,
    *,
    today: date,
    locked: set[date],
    names: Names | None = None,
    choices: dict[tuple[str, str, str, str], str] | None = None,
) -> Checked:
    """`choices`: the analyst's answers, a KPI code per binding (`Binding.key`): those values
    go to that KPI, whatever the text matched."""
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
                    Message("vl_more", n=len(idx) - MAX_LISTED, sub=message(idx[0])),
                )  # fmt: skip
            )

    def grouped(mask: np.ndarray, by_unit: bool, message, hint) -> None:
        """Report the records in `mask` once per column (and unit, `by_unit`) they come from,
        at the first one's row: a column bound to the wrong KPI is one problem, not a row's."""
        idx = np.flatnonzero(mask)
        if not len(idx):
            return
        bad[idx] = True
        keys = _group_keys(records, idx, kpi_code, unit_code if by_unit else None)
        first, counts = np.unique(keys, return_index=True, return_counts=True)[1:]
        for j in np.argsort(first, kind="stable")[:MAX_LISTED].tolist():
            i = int(idx[first[j]])
            findings.append(
                Finding(
                    "error", records.file[i], records.sheet[i], records.row[i],
                    at["kpi"][i] or None, message(i, int(counts[j])), hint(i),
                )
            )  # fmt: skip

    # Each distinct raw text is looked up once; records get its result by their code.
    kpi_code, kpi_raw = pd.factorize(np.asarray(records.kpi, dtype=object), use_na_sentinel=False)
    matches = [names.kpi_match(_text(x)) for x in kpi_raw]
    kpis = [m.kpi for m in matches]
    kpi_ids = np.array([k.id if k else 0 for k in kpis], dtype=np.int32)[kpi_code]
    several = np.array([len(m.kpis) > 1 for m in matches], dtype=bool)[kpi_code]
    raw = records.kpi
    chosen = _chosen(records, cat, choices or {}, kpi_raw, kpi_code)
    if chosen:
        for i_kpi, idx in chosen.values():
            kpi_ids[idx], several[idx] = i_kpi, False
    answered = np.zeros(n, dtype=bool)
    for _, idx in chosen.values():
        answered[idx] = True
    # A name two KPIs share is a question for the analyst: the reader does not pick.
    grouped(several, False,
            lambda i, n: Message(
                "vl_ambiguous", text=_text(raw[i]),
                choices=either(_named(k) for k in matches[kpi_code[i]].kpis), n=n),
            lambda i: Message(
                "vl_ambiguous_hint", codes=either(k.code for k in matches[kpi_code[i]].kpis)))  # fmt: skip
    problem((kpi_ids == 0) & ~several, "kpi",
            lambda i: Message("vl_unknown_kpi", kpi=_text(raw[i])) if raw[i] is not None
                      else Message("vl_no_kpi"),
            lambda i: names.kpi_hint(_text(raw[i])) or Message("vl_check_kpi")
            if raw[i] is not None else Message("vl_fill_kpi"), own=True)  # fmt: skip
    columns = cat.kpi_columns
    is_formula = columns.aggregation[kpi_ids] == AGGREGATIONS.index("formula")
    problem(is_formula & (kpi_ids != 0), "kpi",
            lambda i: Message("vl_formula", kpi=cat.kpis[kpi_ids[i]].code,
                              formula=cat.kpis[kpi_ids[i]].formula),
            lambda i: Message("vl_formula_hint"), own=True)  # fmt: skip

    unit_code, unit_raw = pd.factorize(
        np.asarray(records.unit, dtype=object), use_na_sentinel=False
    )
    units = [names.unit(_text(x)) for x in unit_raw]
    unit_ids = np.array([u.id if u else 0 for u in units], dtype=np.int32)[unit_code]
    raw_u = records.unit
    problem(unit_ids == 0, "unit",
            lambda i: Message("vl_unknown_unit", unit=_text(raw_u[i])) if raw_u[i] is not None
                      else Message("vl_no_unit"),
            lambda i: names.unit_hint(_text(raw_u[i])) or Message("vl_check_unit")
            if raw_u[i] is not None else Message("vl_fill_unit"), own=True)  # fmt: skip
    allowed = np.array([u is not None and scope.allows(u.id) for u in units], dtype=bool)[unit_code]
    problem(~allowed & (unit_ids != 0), "unit",
            lambda i: Message("vl_outside_scope", unit=cat.units[unit_ids[i]].code),
            lambda i: Message("vl_outside_scope_hint"), own=True)  # fmt: skip

    # A KPI found by its name must be on the unit's tree: a column "Sales" on the car unit's
    # sheet is not the retail department's "Sales". A code (in a header, a KPI cell or a
    # profile's measure) is the analyst's own choice, and a KPI on no tree at all is nobody
    # else's: both are loaded as given.
    relevant = _relevant_pairs(cat)
    if relevant is not None:
        by_name = np.array([m.how == "name" for m in matches], dtype=bool)[kpi_code]
        on_a_tree = np.zeros(len(columns.aggregation), dtype=bool)
        on_a_tree[np.unique(relevant % _PAIR)] = True
        known = by_name & ~answered & (kpi_ids != 0) & (unit_ids != 0) & ~bad & on_a_tree[kpi_ids]
        pair = unit_ids.astype(np.int64) * _PAIR + kpi_ids
        off = known & ~np.isin(pair, relevant)
        grouped(off, True,
                lambda i, n: _off_tree(cat, raw[i], at["kpi"][i], matches[kpi_code[i]].how,
                                       kpi_ids[i], unit_ids[i], n),
                lambda i: _off_tree_hint(cat, at["kpi"][i], kpi_ids[i], unit_ids[i]))  # fmt: skip
    else:
        off = np.zeros(n, dtype=bool)

    period_code, period_raw = pd.factorize(
        np.asarray(records.period, dtype=object), use_na_sentinel=False
    )
    months = [_month(x) for x in period_raw]
    is_month = np.array([isinstance(m, date) for m in months], dtype=bool)[period_code]
    problem(~is_month, "period", lambda i: months[period_code[i]],
            lambda i: Message("vl_month_hint"), own=True)  # fmt: skip
    this_month = month_of(today)
    stamp = np.array(
        [np.datetime64(m, "D") if isinstance(m, date) else np.datetime64("NaT") for m in months],
        dtype="datetime64[D]",
    )[period_code]
    future = is_month & (stamp > np.datetime64(this_month, "D"))
    problem(future, "period", lambda i: Message("vl_future", month=_label(stamp[i])),
            lambda i: Message("vl_future_hint"), own=True)  # fmt: skip
    closed = is_month & np.isin(stamp, np.array(sorted(locked), dtype="datetime64[D]"))
    problem(closed, "period", lambda i: Message("vl_closed", month=_label(stamp[i])),
            lambda i: Message("vl_closed_hint"), own=True)  # fmt: skip

    values, percent, not_number, blank = _numbers(records.value)
    vraw = records.value
    problem(not_number, "value",
            lambda i: Message("vl_excel_error" if vraw[i] in EXCEL_ERRORS else "vl_not_a_number",
                              value=vraw[i]),
            lambda i: Message("vl_excel_error_hint" if vraw[i] in EXCEL_ERRORS
                              else "vl_number_hint"), own=True)  # fmt: skip
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
                lambda i: Message("vl_percent", value=f"{values[i]:g}",
                                  kpi=cat.kpis[kpi_ids[i]].code),
                lambda i: Message("vl_percent_hint", value=f"{values[i]:g}",
                                  fraction=f"{values[i] / 100:g}"))  # fmt: skip
        problem(values < k_lo, "value",
                lambda i: Message("vl_below", value=f"{values[i]:g}",
                                  kpi=cat.kpis[kpi_ids[i]].code, limit=f"{k_lo[i]:g}"),
                lambda i: Message("vl_below_hint"))  # fmt: skip
        problem(values > k_hi, "value",
                lambda i: Message("vl_above", value=f"{values[i]:g}",
                                  kpi=cat.kpis[kpi_ids[i]].code, limit=f"{k_hi[i]:g}"),
                lambda i: Message("vl_above_hint"))  # fmt: skip

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
    bindings = _bindings(records, cat, matches, kpi_code, unit_code, units, is_formula, off)
    bindings = [_answered(b, cat, choices) for b in bindings] if choices else bindings
    return Checked(kept, findings, invalid, bindings)


_PAIR = 1 << 32  # a (unit, KPI) pair as one number: unit id × _PAIR + KPI id


def _named(k) -> str:
    return f"{k.code} ({k.name_zh} / {k.name_en})"


def _relevant_pairs(cat: Catalog) -> np.ndarray | None:
    """The (unit, KPI) pairs a value may be loaded for, as `_PAIR` numbers: the KPIs on the
    tree of the unit, of the units above it (their totals are summed from it) and below it,
    with the KPIs they are computed from (a ratio's numerator and denominator, a formula's
    inputs). None when the library has no tree: nothing to check against."""
    memo = cat.memo.get(("relevant_pairs",), cat)
    if memo is not cat:
        return memo
    result = None
    if cat.edges:
        on: dict[int, set[int]] = {}
        for e in cat.edges:
            for u, k in ((e.parent_unit, e.parent_kpi), (e.child_unit, e.child_kpi)):
                if k in cat.kpis:
                    on.setdefault(u, set()).add(k)
        parts: dict[int, set[int]] = {}
        for k in cat.kpis.values():
            codes = {k.numerator, k.denominator} | (
                formula.references(k.parsed) if k.parsed is not None else set()
            )
            parts[k.id] = {cat.kpi_by_code[c].id for c in codes if c in cat.kpi_by_code}
        pairs = []
        for u in cat.units:
            kpis: set[int] = set()
            for v in (*cat.ancestors(u), *cat.descendants(u)):
                kpis |= on.get(v, set())
            todo = list(kpis)
            while todo:
                for p in parts.get(todo.pop(), ()):
                    if p not in kpis:
                        kpis.add(p)
                        todo.append(p)
            pairs += [u * _PAIR + k for k in kpis]
        result = np.array(sorted(pairs), dtype=np.int64)
    cat.memo[("relevant_pairs",)] = result
    return result


def _own_kpis(cat: Catalog, unit_id: int) -> list[str]:
    """The codes of the KPIs on a unit's own scorecard (any version), in the tree's order."""
    seen = sorted(
        {(e.sort_order, e.child_kpi) for e in cat.edges
         if e.child_unit == unit_id and e.child_kpi in cat.kpis}
    )  # fmt: skip
    return list(dict.fromkeys(cat.kpis[k].code for _, k in seen))


def _in_header(place: object) -> bool:
    """A KPI named by a column's header (not by a KPI cell or a profile)."""
    return isinstance(place, places.Place) and place.said.key == "ip_header"


def _off_tree(cat: Catalog, raw, place: object, how: str, kpi_id, unit_id, n: int) -> Message:
    k, u = cat.kpis[int(kpi_id)], cat.units[int(unit_id)].code
    if _in_header(place):
        key = N_("vl_off_tree_by_code") if how == "code" else N_("vl_off_tree_by_name")
        return Message(key, text=_text(raw), kpi=_named(k), code=k.code, unit=u, n=n)
    return Message("vl_off_tree", kpi=_named(k), unit=u, n=n)


def _off_tree_hint(cat: Catalog, place: object, kpi_id, unit_id) -> Message:
    k, unit = cat.kpis[int(kpi_id)], cat.units[int(unit_id)]
    codes = _own_kpis(cat, unit.id)
    shown = Items(codes[:8] + (["…"] if len(codes) > 8 else []), commas=True)
    if not codes:
        return Message("vl_off_tree_add", code=k.code, unit=unit.code)
    key = N_("vl_off_tree_header") if _in_header(place) else N_("vl_off_tree_use")
    return Message(key, unit=unit.code, codes=shown, code=k.code)


def _group_keys(records: Records, idx: np.ndarray, kpi_code: np.ndarray, unit_code) -> np.ndarray:
    """One number per record of `idx`: equal for the records of one file, sheet, KPI place,
    KPI text (and unit code, when given)."""
    parts = [_text_codes(getattr(records, f), idx) for f in ("file", "sheet", "kpi_at")]
    parts.append(kpi_code[idx])
    if unit_code is not None:
        parts.append(unit_code[idx])
    key = np.zeros(len(idx), dtype=np.int64)
    for p in parts:
        key = key * (int(p.max(initial=0)) + 1) + p
    return key


def _chosen(records, cat: Catalog, choices: dict, kpi_raw, kpi_code) -> dict:
    """The records each answer is for: {binding key: (KPI id, record indices)}."""
    out = {}
    for key, code in choices.items():
        kpi = cat.kpi_by_code.get(code)
        if kpi is None:
            raise KpiError(
                Message("vl_not_a_code", code=code, at=places.said(key[2]), sheet=key[1])
            )
        file, sheet, place, text = key
        codes = [j for j, x in enumerate(kpi_raw) if x is not None and str(_text(x)) == text]
        idx = np.flatnonzero(np.isin(kpi_code, codes))
        idx = np.array(
            [i for i in idx.tolist() if records.file[i] == file and records.sheet[i] == sheet
             and records.kpi_at[i] == place],
            dtype=np.int64,
        )  # fmt: skip
        if len(idx):
            out[key] = (kpi.id, idx)
    return out


def _answered(b: Binding, cat: Catalog, choices: dict) -> Binding:
    code = choices.get(b.key)
    if code is None or b.problem in ("formula", "no unit"):
        return b
    k = cat.kpi_by_code[code]
    problem = "formula" if k.aggregation == "formula" else ""
    return replace(b, kpi=k.code, name=f"{k.name_zh} / {k.name_en}", how="analyst",
                   problem=problem)  # fmt: skip


def _text_codes(values: list, idx: np.ndarray) -> np.ndarray:
    """Equal numbers for equal texts among `values[idx]`. A sheet's records share one string
    object per place, in long runs: the runs are found by identity at C speed, and only their
    first texts compared."""
    n = len(values)
    if n == 0 or values.count(values[0]) == n:  # one text throughout (C speed)
        return np.zeros(len(idx), dtype=np.int64)
    same = np.frombuffer(bytes(map(is_, values[1:], values[:-1])), dtype=bool)
    starts = np.concatenate(([0], np.flatnonzero(~same) + 1))
    if len(starts) > n // 4:  # no runs to speak of: compare every text
        codes = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=False)[0]
        return codes[idx]
    firsts = np.empty(len(starts), dtype=object)
    firsts[:] = [values[i] for i in starts.tolist()]
    run_codes = pd.factorize(firsts, use_na_sentinel=False)[0]
    return np.repeat(run_codes, np.diff(np.append(starts, n)))[idx]


def _bindings(records, cat, matches, kpi_code, unit_code, units, is_formula, off) -> list[Binding]:
    """Every distinct (file, sheet, KPI place, KPI text) and the KPI it was bound to."""
    n = len(records)
    if not n:
        return []
    idx = np.arange(n)
    keys = _group_keys(records, idx, kpi_code, None)
    uniq, first, group = np.unique(keys, return_index=True, return_inverse=True)
    counts = np.bincount(group, minlength=len(uniq))
    any_off = np.bincount(group, weights=off, minlength=len(uniq)) > 0
    any_formula = np.bincount(group, weights=is_formula, minlength=len(uniq)) > 0
    # The units of each group, in the order they first appear.
    group = group.reshape(-1)
    pair = group.astype(np.int64) * (int(unit_code.max(initial=0)) + 1) + unit_code
    _, at = np.unique(pair, return_index=True)
    at.sort()
    unit_lists: dict[int, list[str]] = {}
    for g, u in zip(group[at].tolist(), unit_code[at].tolist(), strict=True):
        unit = units[u]
        if unit is not None:
            unit_lists.setdefault(g, []).append(unit.code)
    out = []
    for g in np.argsort(first, kind="stable").tolist():
        i = int(first[g])
        m = matches[kpi_code[i]]
        place = records.kpi_at[i] or ""
        how = m.how
        if place.startswith(("profile '", "source '")) and m.kpis:
            how = place.split(" ", 1)[0]
        problem = (
            "unknown" if not m.kpis else "ambiguous" if len(m.kpis) > 1
            else "formula" if any_formula[g] else "not on tree" if any_off[g]
            else "" if g in unit_lists else "no unit"
        )  # fmt: skip
        k = m.kpi
        out.append(
            Binding(
                records.file[i], records.sheet[i], place,
                "" if records.kpi[i] is None else str(_text(records.kpi[i])),
                k.code if k else "", f"{k.name_zh} / {k.name_en}" if k else "", how,
                tuple(unit_lists.get(g, [])), int(counts[g]), problem,
            )
        )  # fmt: skip
    return out


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


def _month(raw: object) -> date | Message | str:
    """The month of a cell, or the message saying why it is not one."""
    if raw is None or raw != raw:  # None, or the NaN pandas' factorize makes of it
        return Message("vl_no_period")
    try:
        p = parse_period(raw)
    except PeriodError as exc:
        return exc.said()
    if p.grain != "M":
        # _text: Excel gives the year 2025 as the float 2025.0, which is not what the cell shows.
        key = N_("vl_a_year") if p.grain == "Y" else N_("vl_a_quarter")
        return Message(key, text=_text(raw))
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
        there = _there(first)
        for _, r in group.iloc[1:].iterrows():
            month = f"{r['period']:%Y-%m}"
            if agree:
                message = Message("vl_repeats", what=what, month=month, there=there)
            else:
                message = Message(
                    "vl_conflict", what=what, month=month, there=there,
                    first=f"{first['value']:g}", value=f"{r['value']:g}",
                )  # fmt: skip
            findings.append(
                Finding(
                    "warning" if agree else "error", r["file"], r["sheet"], r["row"], r["at"],
                    message, Message("vl_repeat_hint" if agree else "vl_conflict_hint"),
                )
            )  # fmt: skip
    return rows.drop(index=drop).reset_index(drop=True), findings, conflicting


def _there(first: pd.Series) -> Message:
    """Where a repeated value was first given. A sheet named "2026-09" must not read as the
    month: "sheet '2026-09'"."""
    row = first["row"]
    if first["sheet"]:
        if row is None:
            return Message("vl_there_sheet", sheet=first["sheet"])
        return Message("vl_there_sheet_row", sheet=first["sheet"], row=row)
    if row is None:
        return Message("vl_there_file", file=first["file"])
    return Message("vl_there_file_row", file=first["file"], row=row)
