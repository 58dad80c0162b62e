"""Effective-dated targets and their phasing into months.

A target row holds the levels of one KPI and unit for a year, quarter or month, with the date it
is valid from and a version number. A month is judged by the most specific row covering it
(month before quarter before year) and, of that row's versions, the highest valid on or before
the month — so a change made in July leaves January to June judged as they were, and the latest
decision wins for the months it covers.

For `sum` KPIs an annual (or quarterly) target is spread over its months by a phasing profile
(`even` twelfths or a named seasonal profile), and a longer period is compared with the sum of its
months' shares up to the last month with data. For other aggregations the levels hold as they are.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import date, datetime

import duckdb
import numpy as np
import pandas as pd

from kpi_core import actuals
from kpi_core.catalog import Catalog, pick_version
from kpi_core.library import AGGREGATIONS, Kpi
from kpi_core.pairs import select
from kpi_core.scoring import Levels
from kpi_core.warehouse import Warehouse, in_background

Pair = tuple[int, int]
LEVEL_FIELDS = tuple(f.name for f in fields(Levels))
_GRAIN_RANK = {"M": 0, "Q": 1, "Y": 2}


# What a new version of a target says; who, when and why come with the write.
VERSION_COLUMNS = (
    "kpi_id", "unit_id", "grain", "period_start", *LEVEL_FIELDS, "phasing", "valid_from",
    "version",
)  # fmt: skip


def add_versions(
    cur: duckdb.DuckDBPyConnection, versions: pd.DataFrame, *, by: str, at: datetime, reason: str
) -> None:
    """Write new target versions (a frame with VERSION_COLUMNS; others are ignored) on the
    caller's cursor, in one statement, so they commit with the checks and the audit that go
    with them. Rows are never updated: an edit is a higher version. Empty levels are NULL."""
    missing = [c for c in VERSION_COLUMNS if c not in versions.columns]
    if missing:
        raise ValueError(f"Target versions need {', '.join(map(repr, missing))}.")
    if versions.empty:
        return
    cols = ", ".join(VERSION_COLUMNS)
    # A read the caller left unfinished (`fetchone`) would make DuckDB refuse the register.
    cur.complete()
    cur.register("target_versions", versions)
    try:
        cur.execute(
            f"""INSERT INTO target ({cols}, changed_by, changed_at, reason)
               SELECT {cols}, ?, ?, ? FROM target_versions""",  # noqa: S608 - fixed names
            [by, at, reason],
        )
    finally:
        cur.unregister("target_versions")


@dataclass(frozen=True)
class TargetRow:
    grain: str
    period_start: date
    levels: Levels
    phasing: str | None
    valid_from: date
    version: int

    def covers(self, month: date) -> bool:
        if self.grain == "Y":
            return month.year == self.period_start.year
        if self.grain == "Q":
            return (
                month.year == self.period_start.year
                and (month.month - 1) // 3 == (self.period_start.month - 1) // 3
            )
        return month == self.period_start


def shares(profile: str | None, cat: Catalog) -> list[float]:
    """Twelve monthly shares summing to 1."""
    raw = cat.profiles.get(profile or "even") or [1.0] * 12
    total = sum(raw)
    return [s / total for s in raw]


def _pick(rows: list[TargetRow], month: date) -> TargetRow | None:
    covering = [r for r in rows if r.covers(month)]
    if len(covering) <= 1:
        return covering[0] if covering else None
    grain = min(covering, key=lambda r: _GRAIN_RANK[r.grain]).grain
    same = [r for r in covering if r.grain == grain]
    chosen = pick_version({r.version: r.valid_from for r in same}, month)
    return next(r for r in same if r.version == chosen)


def _scale(levels: Levels, factor: float) -> Levels:
    return Levels(
        *(None if (v := getattr(levels, f)) is None else v * factor for f in LEVEL_FIELDS)
    )


def _share(row: TargetRow, month: date, cat: Catalog) -> float:
    """The part of a `sum` KPI's yearly or quarterly levels that falls on `month`."""
    s = shares(row.phasing, cat)
    if row.grain == "Y":
        return s[month.month - 1]
    q0 = (month.month - 1) // 3 * 3
    return s[month.month - 1] / sum(s[q0 : q0 + 3])


def month_levels(rows: list[TargetRow], kpi: Kpi, month: date, cat: Catalog) -> Levels | None:
    row = _pick(rows, month)
    if row is None:
        return None
    if kpi.aggregation != "sum" or row.grain == "M":
        return row.levels
    return _scale(row.levels, _share(row, month, cat))


def period_levels(
    rows: list[TargetRow], kpi: Kpi, months: list[date], cat: Catalog
) -> Levels | None:
    """Levels for a run of months: phased shares summed for `sum` KPIs, otherwise as they hold."""
    # Months judged by the same row (a year's twelve, usually) share its levels: add up their
    # shares and scale once, instead of building and summing a Levels per month.
    picked: dict[int, tuple[TargetRow, list[date]]] = {}
    if len(rows) == 1:  # the usual case: one yearly row, nothing to choose between
        ms = [m for m in months if rows[0].covers(m)]
        if ms:
            picked[id(rows[0])] = (rows[0], ms)
    else:
        for m in months:
            row = _pick(rows, m)
            if row is not None:
                picked.setdefault(id(row), (row, []))[1].append(m)
    if not picked:
        return None
    is_sum = kpi.aggregation == "sum"
    parts = []  # (levels, factor for a sum, months for a mean)
    for row, ms in picked.values():
        if is_sum and row.grain == "Y":
            s = shares(row.phasing, cat)
            factor = sum(s[m.month - 1] for m in ms)
        elif is_sum and row.grain == "Q":
            factor = sum(_share(row, m, cat) for m in ms)
        else:
            factor = float(len(ms))
        parts.append((row.levels, factor, len(ms)))
    if len(parts) == 1 and parts[0][2] == 1:
        levels, factor, _ = parts[0]
        return _scale(levels, factor) if is_sum and factor != 1.0 else levels
    combined = {}
    for f in LEVEL_FIELDS:
        vals = [(v, factor, n) for lv, factor, n in parts if (v := getattr(lv, f)) is not None]
        if not vals:
            combined[f] = None
        elif is_sum:
            combined[f] = sum(v * factor for v, factor, _ in vals)
        else:
            combined[f] = sum(v * n for v, _, n in vals) / sum(n for _, _, n in vals)
    return Levels(**combined)


_ROWS_SQL = """
SELECT a.kpi_id, a.unit_id, a.grain, a.period_start, a.baseline, a.target, a.challenge,
       a.low, a.high, a.tolerance, a.phasing, a.valid_from, a.version
FROM target a {join}
WHERE {match} AND a.period_start BETWEEN ? AND ?
"""


def fetch(
    wh: Warehouse, pairs: Iterable[Pair], years: Iterable[int]
) -> dict[Pair, list[TargetRow]]:
    pairs = sorted(set(pairs))
    years = sorted(set(years))
    out: dict[Pair, list[TargetRow]] = defaultdict(list)
    if not pairs or not years:
        return out
    kpi_ids, unit_ids = zip(*pairs, strict=True)
    first, last = date(years[0], 1, 1), date(years[-1], 12, 31)
    rows = select(wh, _ROWS_SQL, kpi_ids, unit_ids, [first, last])
    for j in range(len(rows["kpi_id"])):
        out[(int(rows["kpi_id"][j]), int(rows["unit_id"][j]))].append(_target_row(rows, j))
    return out


def _target_row(rows: dict[str, np.ndarray], j: int) -> TargetRow:
    """Row `j` of `_ROWS_SQL`'s columns."""
    return TargetRow(
        rows["grain"][j],
        pd.Timestamp(rows["period_start"][j]).date(),
        Levels(*(_none(rows[f][j]) for f in LEVEL_FIELDS)),
        rows["phasing"][j],
        pd.Timestamp(rows["valid_from"][j]).date(),
        int(rows["version"][j]),
    )


def level_rows(
    wh: Warehouse, kpi_ids: np.ndarray, unit_ids: np.ndarray, months: list[date]
) -> dict[str, np.ndarray]:
    """The target rows of the pairs in the years of `months` (`_ROWS_SQL`'s columns)."""
    first, last = date(months[0].year, 1, 1), date(months[-1].year, 12, 31)
    return select(wh, _ROWS_SQL, kpi_ids, unit_ids, [first, last])


def values_and_levels(
    wh: Warehouse, cat: Catalog, kpi_ids: np.ndarray, unit_ids: np.ndarray, months: list[date]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """`actuals.node_values` (value, last month, own) and `node_levels` of the same pairs.

    The levels' query runs on a thread of its own meanwhile: on two cores a company roll-up's
    target query (~7 ms on the large bench warehouse) hides behind its actuals.
    """
    pending = in_background(level_rows, wh, kpi_ids, unit_ids, months) if len(kpi_ids) else None
    value, last, own = actuals.node_values(wh, cat, kpi_ids, unit_ids, months)
    rows = pending() if pending is not None else None
    return value, last, own, node_levels(wh, cat, kpi_ids, unit_ids, months, last, rows)


def node_levels(
    wh: Warehouse,
    cat: Catalog,
    kpi_ids: np.ndarray,
    unit_ids: np.ndarray,
    months: list[date],
    last_month: np.ndarray,
    rows: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Levels of many (KPI, unit) pairs for a run of months, as arrays (NaN where none).

    `last_month` (datetime64, NaT for none) bounds the months a `sum` KPI is compared over. The
    common case — one yearly row, months inside its year — is computed for all pairs at once;
    any other pair goes through `period_levels`, the rule written out month by month. `rows`
    are the pairs' `level_rows` when the caller fetched them already.
    """
    n = len(kpi_ids)
    out = {f: np.full(n, np.nan) for f in LEVEL_FIELDS}
    if n == 0:
        return out
    if rows is None:
        rows = level_rows(wh, kpi_ids, unit_ids, months)
    if len(rows["kpi_id"]) == 0:
        return out
    row_keys = rows["kpi_id"].astype(np.int64) << 32 | rows["unit_id"].astype(np.int64)
    # Group each pair's rows together (sorting here is cheaper than ORDER BY in the query).
    order = np.argsort(row_keys, kind="stable")
    rows = {name: col[order] for name, col in rows.items()}
    row_keys = row_keys[order]
    keys = kpi_ids.astype(np.int64) << 32 | unit_ids.astype(np.int64)
    uniq, start, count = np.unique(row_keys, return_index=True, return_counts=True)
    pos = np.searchsorted(uniq, keys)
    pos = np.minimum(pos, len(uniq) - 1)
    found = uniq[pos] == keys
    first_row = np.where(found, start[pos], -1)
    n_rows = np.where(found, count[pos], 0)

    grain = np.asarray(rows["grain"], dtype=object)
    is_sum = cat.kpi_columns.aggregation[kpi_ids] == AGGREGATIONS.index("sum")
    one_year = months[0].year == months[-1].year
    simple = found & (n_rows == 1)
    if one_year:
        simple &= np.where(found, grain[np.maximum(first_row, 0)] == "Y", False)
        row_year = pd.DatetimeIndex(rows["period_start"]).year.to_numpy()
        simple &= np.where(found, row_year[np.maximum(first_row, 0)] == months[0].year, False)
    else:
        simple[:] = False

    idx = first_row[simple]
    # Months compared: the period's, up to the pair's last month with data.
    m_first = months[0].month
    m_last = np.full(n, months[-1].month)
    has_last = ~np.isnat(last_month)
    lm = last_month.astype("datetime64[M]").astype(int) % 12 + 1
    m_last = np.where(has_last & (lm >= m_first) & (lm < m_last), lm, m_last)
    # Share of the year in the compared months, per row: cumulative shares of its profile.
    phasing = rows["phasing"][idx]
    names = np.where(pd.isna(phasing) | (phasing == ""), "even", phasing).astype(str)
    profile_names, profile = np.unique(names, return_inverse=True)
    cum = np.array([np.concatenate([[0.0], np.cumsum(shares(p, cat))]) for p in profile_names])
    cum = cum.reshape(len(profile_names), 13)
    share_sum = cum[profile, m_last[simple]] - cum[profile, m_first - 1]
    factor = np.where(is_sum[simple], share_sum, 1.0)
    for f in LEVEL_FIELDS:
        out[f][simple] = np.asarray(rows[f][idx], dtype=float) * factor

    for i in np.flatnonzero(found & ~simple):
        k = int(kpi_ids[i])
        s, c = int(first_row[i]), int(n_rows[i])
        pair_rows = [_target_row(rows, j) for j in range(s, s + c)]
        lm_i = None if np.isnat(last_month[i]) else pd.Timestamp(last_month[i]).date()
        pace = [m for m in months if lm_i is None or m <= lm_i] or months
        levels = period_levels(pair_rows, cat.kpis[k], pace, cat)
        if levels is not None:
            for f in LEVEL_FIELDS:
                v = getattr(levels, f)
                out[f][i] = np.nan if v is None else v
    return out


def _none(v) -> float | None:
    return None if v is None or np.isnan(v) else float(v)


def levels_by_month(
    wh: Warehouse, cat: Catalog, kpi_ids: np.ndarray, unit_ids: np.ndarray, months: np.ndarray
) -> dict[str, np.ndarray]:
    """Levels of many (KPI, unit, month) triples, each for its own month, from one query: the
    rule of `month_levels` (most specific grain, the version valid in the month, a `sum` KPI's
    share of a phased year or quarter) over arrays. For a whole upload's status changes."""
    n = len(kpi_ids)
    out = {f: np.full(n, np.nan) for f in LEVEL_FIELDS}
    if n == 0:
        return out
    month = pd.DatetimeIndex(np.asarray(months, dtype="datetime64[D]"))
    first, last = date(month.min().year, 1, 1), date(month.max().year, 12, 31)
    rows = select(wh, _ROWS_SQL, kpi_ids, unit_ids, [first, last])
    if len(rows["kpi_id"]) == 0:
        return out
    asked = pd.DataFrame({"i": np.arange(n), "kpi_id": kpi_ids, "unit_id": unit_ids, "m": month})
    m = asked.merge(pd.DataFrame(rows), on=["kpi_id", "unit_id"])
    start = pd.DatetimeIndex(m["period_start"])
    at = pd.DatetimeIndex(m["m"])
    grain = m["grain"].to_numpy(dtype=object)
    same_year = start.year == at.year
    covers = np.select(
        [grain == "Y", grain == "Q"],
        [same_year, same_year & ((start.month - 1) // 3 == (at.month - 1) // 3)],
        start == at,
    )
    m = m[covers]
    # The most specific grain covering the month; of its versions the highest valid in the
    # month, or, before any is valid, the first one (catalog.pick_version).
    m = m.assign(rank=m["grain"].map(_GRAIN_RANK))
    m = m[m["rank"] == m.groupby("i")["rank"].transform("min")]
    valid = pd.to_datetime(m["valid_from"]) <= m["m"]
    any_valid = valid.groupby(m["i"]).transform("any")
    m = m[valid | ~any_valid]
    days = pd.to_datetime(m["valid_from"]).to_numpy("datetime64[D]").astype(np.int64)
    m = m.assign(order=np.where(any_valid[m.index], 0, days))
    m = m.sort_values(["i", "order", "version"], ascending=[True, True, False])
    m = m.drop_duplicates("i")
    # Phasing: the month's share of a year, or of its quarter.
    names = m["phasing"].where(m["phasing"].notna() & (m["phasing"] != ""), "even").astype(str)
    profile_names, profile = np.unique(names.to_numpy(), return_inverse=True)
    table = np.array([shares(p, cat) for p in profile_names]).reshape(len(profile_names), 12)
    mon = pd.DatetimeIndex(m["m"]).month.to_numpy() - 1
    q0 = mon // 3 * 3
    quarter = table[profile, q0] + table[profile, q0 + 1] + table[profile, q0 + 2]
    g = m["grain"].to_numpy(dtype=object)
    share = np.select(
        [g == "Y", g == "Q"], [table[profile, mon], table[profile, mon] / quarter], 1.0
    )
    is_sum = cat.kpi_columns.aggregation[m["kpi_id"].to_numpy()] == AGGREGATIONS.index("sum")
    factor = np.where(is_sum, share, 1.0)
    idx = m["i"].to_numpy()
    for f in LEVEL_FIELDS:
        out[f][idx] = m[f].to_numpy(dtype=float) * factor
    return out
