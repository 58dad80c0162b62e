"""Targets and weights as grids a department head edits in place, saved as dated versions.

The Targets & weights page shows one grid of levels per KPI × unit × period and one of weights
per parent node. Saving an edit
- checks every changed row with the rules a KPI-system workbook row meets (`system_import`:
  target present, levels in order for the KPI's direction, percent guard, range band, phasing)
  plus the rules of an edit (a reason, an effective date, no closed month re-judged, weights of
  a parent summing to 100), and names the cell and the reason of each problem — nothing is
  written while any is left;
- refuses rows somebody else saved since the grid was read (optimistic versions: the version
  each row was read at is compared inside the write transaction), so a second editor never
  overwrites the first one's change unseen;
- adds a version valid from the effective month (for a target, not before its period starts):
  months before it keep the levels and weights they were judged by, and the latest decision
  wins for the months it covers (`catalog.pick_version`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np
import pandas as pd

from kpi_core import audit, clock, system_import, targets, workbook
from kpi_core.access import can
from kpi_core.catalog import SCORECARD, Catalog, pick_version
from kpi_core.errors import KpiError, Problem, ScopeError, ValidationError
from kpi_core.ingest.intake import closed_months
from kpi_core.library import Kpi
from kpi_core.memo import by_data_version
from kpi_core.numbers import NumberError, parse_number
from kpi_core.periods import Period, month_of
from kpi_core.scoring import Levels
from kpi_core.service import Actor
from kpi_core.warehouse import Warehouse

LEVELS = targets.LEVEL_FIELDS  # baseline, target, challenge, low, high, tolerance
WEIGHT_TOLERANCE = 0.01  # a group of weights sums to 100 within this


class ConflictError(KpiError):
    """Rows changed by somebody else since the grid was read; nothing was written."""

    def __init__(self, conflicts: list[Conflict]):
        self.conflicts = conflicts
        super().__init__(
            "\n".join(
                f"{c.where} was changed by {c.by} at {c.at:%Y-%m-%d %H:%M} — reload to see it; "
                "your edits are kept"
                for c in conflicts
            )
        )


@dataclass(frozen=True)
class Conflict:
    where: str  # "SALES/REV 2026" or "SALES/REV"
    by: str
    at: datetime


@dataclass(frozen=True)
class CellProblem:
    """A problem at one cell of a grid (row: the grid's index; None for the form's fields)."""

    row: int | None
    column: str
    where: str
    message: str


@dataclass
class Saved:
    rows: int  # target rows or parent groups given a new version
    cells: int  # cells changed
    unit_ids: set[int] = field(default_factory=set)  # units whose scores may change


def can_edit(who: Actor, unit_id: int) -> bool:
    return can(who, "edit_targets", unit_id)


def _editor(who: Actor) -> None:
    if not can(who, "edit_targets"):
        raise ScopeError("Only department heads and admins change targets and weights.")


# --- Levels written as text ----------------------------------------------------------------


def level_text(value: float | None, kpi: Kpi, lang: str = "en") -> str:
    """A level the way a person types it, and `_parse_level` reads back exactly: 95% for a
    percent KPI, 5000万 in Chinese or 50,000,000 in English for large numbers, '' for none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if kpi.is_percent:
        return f"{value * 100:.10g}%"
    if lang == "zh":
        for scale, word in ((1e8, "亿"), (1e4, "万")):
            if abs(value) >= 10 * scale and round(value / scale, 4) * scale == value:
                return f"{value / scale:.15g}{word}"
    return f"{value:,.15g}"


def _parse_level(text: object) -> float | None:
    """A typed level as a number (raises NumberError): 6000, 5,000万, 95% (→ 0.95), blank."""
    parsed = parse_number(text.strip() if isinstance(text, str) else text)
    return None if parsed is None else parsed.value


# --- The targets grid ----------------------------------------------------------------------


def _node_pairs(cat: Catalog, unit_ids: set[int], month: date) -> list[tuple[int, int]]:
    """(KPI, unit) pairs that are KPI nodes of the tree under the given units, in tree order."""
    out: dict[tuple[int, int], None] = {}
    tree = cat.tree(month)
    for u in sorted(unit_ids, key=lambda u: (len(cat.ancestors(u)), cat.units[u].sort_order)):
        stack = [(u, SCORECARD)]
        while stack:
            for (cu, ck), _ in tree.get(stack.pop(0), []):
                if ck != SCORECARD and cu in unit_ids and (ck, cu) not in out:
                    out[(ck, cu)] = None
                    stack.append((cu, ck))
    return list(out)


def target_grid(
    wh: Warehouse,
    cat: Catalog,
    who: Actor,
    unit_id: int,
    year: int,
    grain: str,
    lang: str,
    today: date | None = None,
) -> pd.DataFrame:
    """One row per KPI node × period of `grain` in `year` under `unit_id` (within the caller's
    scope), with the latest version of its levels as text, the version it was read at, and
    what applies now where the row has no levels of its own (a year's phased share). Pairs off
    today's tree (a KPI taken off a scorecard) are not judged, so not offered; their targets
    stay and the KPI-system workbook still reaches them."""
    who.scope.check(unit_id, cat.units[unit_id].code)
    return _target_grid(wh, cat, who, unit_id, year, grain, lang, month_of(today or clock.today()))


@by_data_version
def _target_grid(
    wh: Warehouse, cat: Catalog, who: Actor, unit_id: int, year: int, grain: str, lang: str,
    month: date,
) -> pd.DataFrame:  # fmt: skip
    # Kept per data version and month: a company's grid is tens of thousands of rows, read at
    # every run of the Targets page (its history tab lists the grid's pairs).
    units = {u for u in cat.descendants(unit_id) if who.scope.allows(u)}
    pairs = _node_pairs(cat, units, month)
    stored = wh.df(
        """SELECT kpi_id, unit_id, period_start, baseline, target, challenge, low, high,
                  tolerance, phasing, valid_from, version, changed_by, changed_at
           FROM target
           WHERE grain = ? AND year(period_start) = ? AND list_contains(?, unit_id)
           QUALIFY row_number() OVER (PARTITION BY kpi_id, unit_id, period_start
                                      ORDER BY version DESC) = 1""",
        [grain, year, sorted(units)],
    )
    latest = {(r.kpi_id, r.unit_id, r.period_start.date()): r for r in stored.itertuples()}
    periods = [Period.containing(grain, date(year, m, 1)) for m in range(1, 13, _STEP[grain])]
    rows_by_pair = targets.fetch(wh, pairs, [year])
    out = []
    for kpi_id, uid in pairs:
        kpi, unit = cat.kpis[kpi_id], cat.units[uid]
        for p in periods:
            r = latest.get((kpi_id, uid, p.start))
            row = {
                "kpi_id": kpi_id,
                "unit_id": uid,
                "grain": grain,
                "period_start": p.start,
                "unit": unit.name(lang),
                "kpi": kpi.name(lang),
                "code": f"{unit.code}/{kpi.code}",
                "period": p.label(),
                "measure": kpi.unit,
                "direction": kpi.direction,
                **{f: level_text(None if r is None else getattr(r, f), kpi, lang) for f in LEVELS},
                "phasing": "" if r is None or pd.isna(r.phasing) else r.phasing,
                "applies": "",
                "valid_from": None if r is None else r.valid_from.date(),
                "version": 0 if r is None else int(r.version),
                "changed_by": None if r is None else r.changed_by,
                "changed_at": None if r is None else r.changed_at,
                "editable": can_edit(who, uid),
            }
            if r is None:
                lv = targets.period_levels(rows_by_pair.get((kpi_id, uid), []), kpi, p.months, cat)
                row["applies"] = _levels_text(lv, kpi, lang)
            out.append(row)
    return pd.DataFrame(out, columns=TARGET_COLUMNS)


_STEP = {"Y": 12, "Q": 3, "M": 1}
TARGET_COLUMNS = [
    "kpi_id", "unit_id", "grain", "period_start", "unit", "kpi", "code", "period", "measure",
    "direction", *LEVELS, "phasing", "applies", "valid_from", "version", "changed_by",
    "changed_at", "editable",
]  # fmt: skip


def _levels_text(lv: Levels | None, kpi: Kpi, lang: str) -> str:
    if lv is None:
        return ""
    if kpi.direction == "range":
        return f"{level_text(lv.low, kpi, lang) or '…'} – {level_text(lv.high, kpi, lang) or '…'}"
    return level_text(lv.target, kpi, lang)


@dataclass(frozen=True)
class TargetEdit:
    """A new version of one target row: all its levels as they will be."""

    row: int | None  # the grid's index, for placing problems
    kpi_id: int
    unit_id: int
    grain: str
    period_start: date
    expected_version: int  # the version the editor saw (0: none existed)
    new: dict[str, float | str | None]  # LEVELS and "phasing"
    old: dict[str, float | str | None]
    changed: tuple[str, ...]  # the fields that differ from `old`

    def where(self, cat: Catalog) -> str:
        p = Period(self.grain, self.period_start)
        return f"{cat.units[self.unit_id].code}/{cat.kpis[self.kpi_id].code} {p.label()}"


def _stored(wh: Warehouse, keys: list[tuple]) -> dict[tuple, dict]:
    """The latest version's levels of each (kpi, unit, grain, period_start)."""
    if not keys:
        return {}
    frame = pd.DataFrame(keys, columns=["kpi_id", "unit_id", "grain", "period_start"])
    with wh.cursor() as cur:
        cur.register("asked", frame)
        rows = cur.execute(
            f"""SELECT t.kpi_id, t.unit_id, t.grain, t.period_start, {", ".join(LEVELS)}, phasing
               FROM target t JOIN asked a USING (kpi_id, unit_id, grain, period_start)
               QUALIFY row_number() OVER (PARTITION BY t.kpi_id, t.unit_id, t.grain,
                                          t.period_start ORDER BY t.version DESC) = 1"""  # noqa: S608 - fixed columns
        ).fetchall()
    return {
        (r[0], r[1], r[2], r[3]): dict(zip([*LEVELS, "phasing"], r[4:], strict=True)) for r in rows
    }


def stored_levels(wh: Warehouse, keys: list[tuple]) -> dict[tuple, tuple[int, dict]]:
    """The latest version number and levels (with phasing) of each (kpi, unit, grain,
    period_start) that has one: what a new version of it must name as expected."""
    if not keys:
        return {}
    frame = pd.DataFrame(keys, columns=["kpi_id", "unit_id", "grain", "period_start"])
    with wh.cursor() as cur:
        cur.register("asked", frame)
        rows = cur.execute(
            f"""SELECT t.kpi_id, t.unit_id, t.grain, t.period_start, t.version,
                      {", ".join(LEVELS)}, phasing
               FROM target t JOIN asked a USING (kpi_id, unit_id, grain, period_start)
               QUALIFY row_number() OVER (PARTITION BY t.kpi_id, t.unit_id, t.grain,
                                          t.period_start ORDER BY t.version DESC) = 1"""  # noqa: S608 - fixed columns
        ).fetchall()
    fields = [*LEVELS, "phasing"]
    return {
        (r[0], r[1], r[2], r[3]): (
            int(r[4]),
            {f: _none(v) for f, v in zip(fields, r[5:], strict=True)},
        )
        for r in rows
    }


@by_data_version
def data_years(wh: Warehouse) -> list[int]:
    """Years with targets or actuals (the Targets page's year picker asks at every run)."""
    rows = wh.rows(
        "SELECT DISTINCT year(period_start) FROM target "
        "UNION SELECT DISTINCT year(period) FROM actual"
    )
    return sorted(r[0] for r in rows)


def target_edits(
    wh: Warehouse, cat: Catalog, base: pd.DataFrame, edited: pd.DataFrame
) -> tuple[list[TargetEdit], list[CellProblem]]:
    """The rows of `edited` that differ from `base` (the grid as read), as new versions; and
    the cells that are not numbers. Unchanged cells keep their stored value exactly."""
    cols = [*LEVELS, "phasing"]
    rows = base.index.intersection(edited.index)
    differs = {c: _differs(base.loc[rows, c], edited.loc[rows, c]) for c in cols}
    changed_rows = []
    for n in (sum(differs.values()) > 0).nonzero()[0]:
        changed_rows.append((rows[n], tuple(c for c in cols if differs[c][n])))
    keys = [
        (int(base.at[i, "kpi_id"]), int(base.at[i, "unit_id"]), base.at[i, "grain"],
         base.at[i, "period_start"])
        for i, _ in changed_rows
    ]  # fmt: skip
    stored = _stored(wh, keys)
    edits, problems = [], []
    for (i, diff), key in zip(changed_rows, keys, strict=True):
        old = stored.get(key, dict.fromkeys(cols))
        new = dict(old)
        bad = False
        for c in diff:
            text = _cell(edited.at[i, c])
            if c == "phasing":
                new[c] = text or None
                continue
            try:
                new[c] = _parse_level(text)
            except NumberError:
                problems.append(
                    CellProblem(
                        int(i),
                        c,
                        str(base.at[i, "code"]) + " " + str(base.at[i, "period"]),
                        f"'{text}' is not a number — write 6000, 5,000万 or 95%",
                    )
                )
                bad = True
        if bad:
            continue
        real = tuple(c for c in diff if new[c] != old[c])
        if real:
            edits.append(TargetEdit(int(i), *key, int(base.at[i, "version"]), new, old, real))
    return edits, problems


def _differs(old: pd.Series, new: pd.Series) -> np.ndarray:
    """Which cells read differently. Equal values read the same, so only the others are read
    (a grid of thousands of rows is compared at every run, with a handful of edits)."""
    a, b = old.to_numpy(dtype=object), new.to_numpy(dtype=object)
    try:
        same = np.asarray(a == b, dtype=bool)
    except (TypeError, ValueError):  # pd.NA compares to nothing: read every cell
        same = np.zeros(len(a), dtype=bool)
    out = np.zeros(len(a), dtype=bool)
    check = np.flatnonzero(~same)
    out[check] = [_cell(x) != _cell(y) for x, y in zip(a[check], b[check], strict=True)]
    return out


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def check_targets(
    wh: Warehouse,
    cat: Catalog,
    who: Actor,
    edits: list[TargetEdit],
    effective: date | None,
    reason: str | None = None,
    *,
    need_reason: bool = False,
) -> list[CellProblem]:
    """Every problem of saving `edits` from `effective` on, each at its cell."""
    problems = _form_problems(effective, reason, need_reason)
    closed = closed_months(wh)
    rows: list[tuple[int, dict]] = []
    place: dict[int, TargetEdit] = {}
    for n, e in enumerate(edits, start=2):  # "rows" of a targets sheet, as system_import reads it
        where = e.where(cat)
        if not can_edit(who, e.unit_id):
            problems.append(CellProblem(e.row, "unit", where, _NOT_YOURS))
            continue
        p = Period(e.grain, e.period_start)
        if effective is not None:
            start = _valid_from(e, effective)
            if e.expected_version and start > p.end:
                problems.append(
                    CellProblem(
                        e.row, "valid_from", where,
                        f"the change would start in {start:%Y-%m}, after {p.label()} ends, and "
                        f"never be used — pick an effective date on or before {p.end:%Y-%m}",
                    )
                )  # fmt: skip
            problems += _closed_problem(e.row, where, start, p.end, closed)
        cells = {"unit": cat.units[e.unit_id].code, "kpi": cat.kpis[e.kpi_id].code}
        cells |= {"period": p.label(), **e.new}
        rows.append((n, cells))
        place[n] = e
    if rows:
        sheet = workbook.Sheet("targets", "targets", {c: c for c in workbook.COLUMNS["targets"]})
        sheet.rows = rows
        try:
            system_import.parse({"targets": sheet}, cat, who.scope)
        except ValidationError as exc:
            for pr in exc.problems:
                e = place[pr.row]
                problems.append(CellProblem(e.row, pr.column or "", e.where(cat), pr.message))
    return problems


_NOT_YOURS = "outside your scope — you can read it, not change it"


def _closed_problem(
    row: int | None, where: str, start: date, end: date | None, closed: list[date]
) -> list[CellProblem]:
    """A change from `start` (to `end`, or for good) must not re-judge a closed month."""
    judged = sorted(m for m in closed if m >= start and (end is None or m <= end))
    if not judged:
        return []
    return [
        CellProblem(
            row, "valid_from", where,
            f"{judged[0]:%Y-%m} is closed — a change from {start:%Y-%m} would re-judge it; "
            "pick a later effective date or ask an admin to reopen it",
        )
    ]  # fmt: skip


def _form_problems(effective: date | None, reason: str | None, need_reason: bool):
    out = []
    if effective is None:
        out.append(CellProblem(None, "effective", "", "give the date the change takes effect"))
    if need_reason and not (reason or "").strip():
        out.append(CellProblem(None, "reason", "", "give a reason — it is kept with the change"))
    return out


def _valid_from(e: TargetEdit, effective: date) -> date:
    """A first version holds for its whole period; a later one from the effective month."""
    if not e.expected_version:
        return e.period_start
    return max(month_of(effective), e.period_start)


def save_target_grid(
    wh: Warehouse,
    cat: Catalog,
    who: Actor,
    base: pd.DataFrame,
    edited: pd.DataFrame,
    *,
    reason: str,
    effective: date | None,
) -> Saved:
    """Save what the grid `edited` changes from `base`: refused whole while any cell is bad —
    a cell that is not a number is not left out while the good ones are saved."""
    _editor(who)
    edits, problems = target_edits(wh, cat, base, edited)
    return save_targets(
        wh, cat, who, edits, reason=reason, effective=effective, cell_problems=problems
    )


def save_targets(
    wh: Warehouse,
    cat: Catalog,
    who: Actor,
    edits: list[TargetEdit],
    *,
    reason: str,
    effective: date | None,
    cell_problems: list[CellProblem] = (),
) -> Saved:
    """Write `edits` as new versions, all or nothing. Raises ValidationError (the problems,
    with `cell_problems` found while reading the grid, placed at their cells) or ConflictError
    (rows saved by somebody else meanwhile)."""
    _editor(who)
    problems = [*cell_problems]
    problems += check_targets(wh, cat, who, edits, effective, reason, need_reason=True)
    if problems:
        raise ValidationError([as_problem("targets", p) for p in problems])
    if not edits:
        return Saved(0, 0)
    now = datetime.now()
    frame = pd.DataFrame(
        [
            {
                "kpi_id": e.kpi_id,
                "unit_id": e.unit_id,
                "grain": e.grain,
                "period_start": e.period_start,
                **{f: e.new[f] for f in LEVELS},
                "phasing": e.new["phasing"],
                "valid_from": _valid_from(e, effective),
                "version": e.expected_version + 1,
                "expected": e.expected_version,
            }
            for e in edits
        ]
    )
    frame[list(LEVELS)] = frame[list(LEVELS)].astype(float)
    cells = pd.DataFrame(
        [
            (now, who.name, "target", e.where(cat).replace(" ", "/"), f,
             _audit_text(e.old[f]), _audit_text(e.new[f]), reason.strip())
            for e in edits
            for f in e.changed
        ],
        columns=audit.COLUMNS,
    )  # fmt: skip
    with wh.transaction() as cur:
        cur.register("edits", frame)
        clash = cur.execute(
            """SELECT e.kpi_id, e.unit_id, e.grain, e.period_start, c.by, c.at
               FROM edits e
               LEFT JOIN (SELECT t.kpi_id, t.unit_id, t.grain, t.period_start,
                                 max(t.version) AS version,
                                 arg_max(t.changed_by, t.version) AS by,
                                 arg_max(t.changed_at, t.version) AS at
                          FROM target t
                          SEMI JOIN edits USING (kpi_id, unit_id, grain, period_start)
                          GROUP BY ALL) c
                 USING (kpi_id, unit_id, grain, period_start)
               WHERE coalesce(c.version, 0) <> e.expected"""
        ).fetchall()
        if clash:
            raise ConflictError(
                [
                    Conflict(
                        f"{cat.units[u].code}/{cat.kpis[k].code} {Period(g, p).label()}",
                        by or "?",
                        at or now,
                    )
                    for k, u, g, p, by, at in clash
                ]
            )
        targets.add_versions(cur, frame, by=who.name, at=now, reason=reason.strip())
        audit.record_many(cur, cells)
    return Saved(len(edits), len(cells), {e.unit_id for e in edits})


def _audit_text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return f"{value:.15g}" if isinstance(value, float) else str(value)


def as_problem(sheet: str, p: CellProblem) -> Problem:
    return Problem(
        sheet,
        None if p.row is None else p.row + 1,
        p.column,
        f"{p.where}: {p.message}" if p.where else p.message,
    )


# --- History and revert --------------------------------------------------------------------


def target_history(
    wh: Warehouse, cat: Catalog, who: Actor, kpi_id: int, unit_id: int, lang: str = "en"
) -> pd.DataFrame:
    """Every version of a KPI's targets in a unit, newest first: period, version, valid from,
    who, when, why, and what changed from the version before (old → new)."""
    who.scope.check(unit_id, cat.units[unit_id].code)
    kpi = cat.kpis[kpi_id]
    df = wh.df(
        f"""SELECT grain, period_start, version, valid_from, changed_by, changed_at, reason,
                  {", ".join(LEVELS)}, phasing
           FROM target WHERE kpi_id = ? AND unit_id = ?
           ORDER BY period_start, grain, version""",  # noqa: S608 - fixed column names
        [kpi_id, unit_id],
    )
    out = []
    previous: dict[tuple, dict] = {}
    for r in df.to_dict("records"):
        key = (r["grain"], r["period_start"])
        now = {f: _none(r[f]) for f in [*LEVELS, "phasing"]}
        before = previous.get(key)
        if before is None:
            change = "; ".join(
                f"{_FIELD[f][lang]} {_shown(v, kpi, lang)}" for f, v in now.items() if v is not None
            )
        else:
            change = "; ".join(
                f"{_FIELD[f][lang]} {_shown(before[f], kpi, lang)} → {_shown(v, kpi, lang)}"
                for f, v in now.items()
                if v != before[f]
            )
        previous[key] = now
        out.append(
            {
                "period": Period(r["grain"], pd.Timestamp(r["period_start"]).date()).label(),
                "grain": r["grain"],
                "period_start": pd.Timestamp(r["period_start"]).date(),
                "version": int(r["version"]),
                "valid_from": pd.Timestamp(r["valid_from"]).date(),
                "changed_by": r["changed_by"],
                "changed_at": r["changed_at"],
                "reason": r["reason"],
                "change": change,
                **now,
            }
        )
    frame = pd.DataFrame(out)
    if frame.empty:
        return frame
    return frame.sort_values(["changed_at", "version"], ascending=False, ignore_index=True)


def _none(v: object) -> object:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def _shown(v: object, kpi: Kpi, lang: str) -> str:
    if v is None:
        return "—"
    return level_text(v, kpi, lang) if isinstance(v, float | int) else str(v)


_FIELD = {
    "baseline": {"zh": "基准", "en": "baseline"}, "target": {"zh": "目标", "en": "target"},
    "challenge": {"zh": "挑战", "en": "challenge"}, "low": {"zh": "下限", "en": "low"},
    "high": {"zh": "上限", "en": "high"}, "tolerance": {"zh": "容差", "en": "tolerance"},
    "phasing": {"zh": "分解", "en": "phasing"},
}  # fmt: skip


def revert_edit(
    wh: Warehouse,
    cat: Catalog,
    kpi_id: int,
    unit_id: int,
    grain: str,
    period_start: date,
    to_version: int,
) -> TargetEdit:
    """An edit that brings back the levels of `to_version` as a new version (a revert is a
    change like any other: dated, reasoned, audited, and itself revertible)."""
    rows = wh.df(
        f"""SELECT version, {", ".join(LEVELS)}, phasing FROM target
           WHERE kpi_id = ? AND unit_id = ? AND grain = ? AND period_start = ?
           ORDER BY version""",  # noqa: S608 - fixed column names
        [kpi_id, unit_id, grain, period_start],
    ).to_dict("records")
    by_version = {int(r["version"]): {f: _none(r[f]) for f in [*LEVELS, "phasing"]} for r in rows}
    if to_version not in by_version:
        raise KpiError(f"There is no version {to_version} of that target.")
    latest = max(by_version)
    old, new = by_version[latest], by_version[to_version]
    changed = tuple(f for f in new if new[f] != old[f])
    return TargetEdit(None, kpi_id, unit_id, grain, period_start, latest, new, old, changed)


# --- Weights ---------------------------------------------------------------------------------


def node_text(cat: Catalog, unit_id: int, kpi_id: int) -> str:
    """A node as the workbook writes it: UNIT for a scorecard, UNIT/KPI for a KPI node."""
    code = cat.units[unit_id].code
    return code if kpi_id == SCORECARD else f"{code}/{cat.kpis[kpi_id].code}"


def node_name(cat: Catalog, unit_id: int, kpi_id: int, lang: str) -> str:
    unit = cat.units[unit_id].name(lang)
    return unit if kpi_id == SCORECARD else f"{unit} · {cat.kpis[kpi_id].name(lang)}"


def weights_month(year: int, today: date) -> date:
    """The month whose weights the page shows for `year`: today's month in the running year,
    the year's last month for a past year, its first for a year to come."""
    return min(max(month_of(today), date(year, 1, 1)), date(year, 12, 1))


def _child_label(cat: Catalog, parent_unit: int, child_unit: int, child_kpi: int, lang: str):
    """A child as people name it under its parent: a KPI of the parent's own unit by the KPI's
    name (营业收入 under 销售部), anything else by unit and KPI (华东大区 · 营业收入)."""
    if child_kpi != SCORECARD and child_unit == parent_unit:
        return cat.kpis[child_kpi].name(lang)
    return node_name(cat, child_unit, child_kpi, lang)


def _weight_versions(
    cat: Catalog, who: Actor, unit_id: int
) -> dict[tuple[int, int], dict[int, date]]:
    """Each parent node under `unit_id` (within the caller's scope): its versions' start months."""
    who.scope.check(unit_id, cat.units[unit_id].code)
    units = {u for u in cat.descendants(unit_id) if who.scope.allows(u)}
    versions: dict[tuple[int, int], dict[int, date]] = {}
    for e in cat.edges:
        if e.parent_unit in units:
            versions.setdefault((e.parent_unit, e.parent_kpi), {})[e.version] = e.valid_from
    return versions


def _weight_rows(cat: Catalog, who: Actor, unit_id: int, lang: str, chosen: dict) -> list[dict]:
    """Rows of the edges of `chosen` {(parent unit, parent kpi, version): latest version}, in
    tree order (the unit's own scorecard first)."""
    order = {u: i for i, u in enumerate(cat.descendants(unit_id))}
    edges = sorted(
        (e for e in cat.edges if (e.parent_unit, e.parent_kpi, e.version) in chosen),
        key=lambda e: (order[e.parent_unit], e.parent_kpi != SCORECARD, e.parent_kpi,
                       e.valid_from, e.version, e.sort_order),
    )  # fmt: skip
    return [
        {
            "parent_unit": e.parent_unit,
            "parent_kpi": e.parent_kpi,
            "child_unit": e.child_unit,
            "child_kpi": e.child_kpi,
            "parent": node_text(cat, e.parent_unit, e.parent_kpi),
            "parent_name": node_name(cat, e.parent_unit, e.parent_kpi, lang),
            "child": node_text(cat, e.child_unit, e.child_kpi),
            "child_name": node_name(cat, e.child_unit, e.child_kpi, lang),
            "child_label": _child_label(cat, e.parent_unit, e.child_unit, e.child_kpi, lang),
            "weight": float(e.weight),
            "valid_from": _dated(e.valid_from),
            "version": e.version,
            "latest_version": chosen[(e.parent_unit, e.parent_kpi, e.version)],
            "editable": can_edit(who, e.parent_unit),
        }
        for e in edges
    ]


def weight_grid(cat: Catalog, who: Actor, unit_id: int, lang: str, month: date) -> pd.DataFrame:
    """The children of every parent node under `unit_id` (within the caller's scope) with their
    weights as in force in `month` (`catalog.pick_version`): what judges that month, and what an
    edit for it starts from. `latest_version` is the parent's newest version, scheduled ones
    included — a save is checked against it (somebody else's save since the grid was read)."""
    chosen = {
        (*parent, pick_version(starts, month)): max(starts)
        for parent, starts in _weight_versions(cat, who, unit_id).items()
    }
    return pd.DataFrame(_weight_rows(cat, who, unit_id, lang, chosen), columns=WEIGHT_COLUMNS)


def scheduled_weights(
    cat: Catalog, who: Actor, unit_id: int, lang: str, month: date
) -> pd.DataFrame:
    """Versions of weights that take effect after `month` (each from its own start month), in
    the shape of `weight_grid`; shown apart, read-only. A later version that a newer decision
    overrides before it starts never takes effect, so it is not listed."""
    chosen = {}
    for parent, starts in _weight_versions(cat, who, unit_id).items():
        now = pick_version(starts, month)
        for v, start in starts.items():
            if start > month and v > now and pick_version(starts, start) == v:
                chosen[(*parent, v)] = max(starts)
    return pd.DataFrame(_weight_rows(cat, who, unit_id, lang, chosen), columns=WEIGHT_COLUMNS)


WEIGHT_COLUMNS = [
    "parent_unit", "parent_kpi", "child_unit", "child_kpi", "parent", "parent_name", "child",
    "child_name", "child_label", "weight", "valid_from", "version", "latest_version", "editable",
]  # fmt: skip


@dataclass(frozen=True)
class WeightEdit:
    """A new version of one parent's children: every child's weight as it will be."""

    parent_unit: int
    parent_kpi: int
    parent: str
    expected_version: int
    children: tuple[tuple[int, int, float], ...]  # (child unit, child kpi, new weight)
    old: tuple[float, ...]
    rows: tuple[int, ...]  # the grid's index of each child
    parent_name: str = ""  # as people know it (销售部, 销售部 · 营业收入), for messages

    @property
    def named(self) -> str:
        return self.parent_name or self.parent


def _dated(valid_from: date) -> date | None:
    """None for a tree set up with no date (it holds from the start)."""
    return None if valid_from == system_import.EPOCH else valid_from


def weight_sums(edited: pd.DataFrame) -> pd.DataFrame:
    """Each parent's sum of weights as edited, and whether it is 100 (the live check)."""
    if edited.empty:
        return pd.DataFrame(columns=["parent", "parent_name", "sum", "ok"])
    weights = pd.to_numeric(edited["weight"], errors="coerce")
    sums = (
        edited.assign(weight=weights)
        .groupby(["parent", "parent_name"], sort=False)["weight"]
        .sum(min_count=1)
        .reset_index(name="sum")
    )
    sums["ok"] = (sums["sum"] - 100).abs() <= WEIGHT_TOLERANCE
    return sums


def weight_edits(
    base: pd.DataFrame, edited: pd.DataFrame
) -> tuple[list[WeightEdit], list[CellProblem]]:
    """The parents whose weights `edited` changes, and every cell or group that is wrong:
    empty or negative weights, and groups not summing to 100. Problems name the parent and
    its children as the grid does (by name, in the grid's language)."""
    edits, problems = [], []
    typed = pd.to_numeric(edited["weight"], errors="coerce").astype(float)
    if edited.index.equals(base.index) and typed.equals(base["weight"].astype(float)):
        return edits, problems  # nothing typed: the common run, without a look at each group
    for parent, group in base.groupby("parent", sort=False):
        idx = [i for i in group.index if i in edited.index]
        new = pd.to_numeric(edited.loc[idx, "weight"], errors="coerce")
        old = group.loc[idx, "weight"].astype(float)
        if new.equals(old):
            continue
        first = group.index[0]
        name = str(group.at[first, "parent_name"])
        bad = False
        for i in idx:
            w = new[i]
            where = f"{name} → {group.at[i, 'child_label']}"
            if pd.isna(w):
                problems.append(
                    CellProblem(int(i), "weight", where, "is empty — give a weight (0 for none)")
                )
                bad = True
            elif w < 0:
                problems.append(
                    CellProblem(int(i), "weight", where, f"{w:g} — a weight cannot be negative")
                )
                bad = True
        total = float(new.sum())
        if not bad and abs(total - 100) > WEIGHT_TOLERANCE:
            children = ", ".join(str(group.at[i, "child_label"]) for i in idx)
            problems.append(
                CellProblem(
                    int(idx[-1]), "weight", "",
                    f"{name}: weights of {children} sum to {total:g}, not 100",
                )
            )  # fmt: skip
            bad = True
        if bad:
            continue
        edits.append(
            WeightEdit(
                int(group.at[first, "parent_unit"]),
                int(group.at[first, "parent_kpi"]),
                str(parent),
                # A save is refused if the parent got any version since the grid was read.
                int(group.at[first, "latest_version"]),
                tuple(
                    (int(group.at[i, "child_unit"]), int(group.at[i, "child_kpi"]), float(new[i]))
                    for i in idx
                ),
                tuple(float(v) for v in old),
                tuple(int(i) for i in idx),
                name,
            )
        )
    return edits, problems


def weight_changes(base: pd.DataFrame, edited: pd.DataFrame) -> pd.DataFrame:
    """Every weight `edited` changes, old → new (new NaN for an emptied cell), named as the
    grid names it: row (the grid's index), parent, parent_name, child_label, old, new."""
    cols = ["row", "parent", "parent_name", "child_label", "old", "new"]
    idx = base.index.intersection(edited.index)
    old = base.loc[idx, "weight"].astype(float)
    new = pd.to_numeric(edited.loc[idx, "weight"], errors="coerce").astype(float)
    moved = ~((old == new) | (old.isna() & new.isna()))
    rows = base.loc[idx[moved.to_numpy()]]
    return pd.DataFrame(
        {
            "row": rows.index.astype(int),
            "parent": rows["parent"].to_numpy(),
            "parent_name": rows["parent_name"].to_numpy(),
            "child_label": rows["child_label"].to_numpy(),
            "old": old[moved].to_numpy(),
            "new": new[moved].to_numpy(),
        },
        columns=cols,
    )


def check_weights(
    wh: Warehouse,
    who: Actor,
    edits: list[WeightEdit],
    effective: date | None,
    reason: str | None = None,
    *,
    need_reason: bool = False,
) -> list[CellProblem]:
    """Problems of saving weight edits from `effective` on: scope and closed months."""
    problems = _form_problems(effective, reason, need_reason)
    closed = closed_months(wh)
    for e in edits:
        if not can_edit(who, e.parent_unit):
            problems.append(CellProblem(e.rows[0], "parent", e.named, _NOT_YOURS))
        elif effective is not None:
            # A new set of weights holds from its month on, with no end.
            problems += _closed_problem(e.rows[0], e.named, month_of(effective), None, closed)
    return problems


def save_weight_grid(
    wh: Warehouse,
    cat: Catalog,
    who: Actor,
    base: pd.DataFrame,
    edited: pd.DataFrame,
    *,
    reason: str,
    effective: date | None,
) -> Saved:
    """Save the weights the grid `edited` changes from `base`; refused whole while any group is
    wrong (a bad group is not left out while the good ones are saved)."""
    _editor(who)
    edits, problems = weight_edits(base, edited)
    return save_weights(
        wh, cat, who, edits, reason=reason, effective=effective, cell_problems=problems
    )


def save_weights(
    wh: Warehouse,
    cat: Catalog,
    who: Actor,
    edits: list[WeightEdit],
    *,
    reason: str,
    effective: date | None,
    cell_problems: list[CellProblem] = (),
) -> Saved:
    """Write each parent's new weights as a new edge set valid from the effective month, all or
    nothing. Raises ValidationError or ConflictError as `save_targets` does."""
    _editor(who)
    problems = [*cell_problems]
    problems += check_weights(wh, who, edits, effective, reason, need_reason=True)
    if problems:
        raise ValidationError([as_problem("weights", p) for p in problems])
    if not edits:
        return Saved(0, 0)
    now = datetime.now()
    start = month_of(effective)
    with wh.transaction() as cur:
        clashes = []
        for e in edits:
            current = cur.execute(
                """SELECT version, changed_by, changed_at FROM tree_edge
                   WHERE parent_unit = ? AND parent_kpi = ?
                   ORDER BY version DESC LIMIT 1""",
                [e.parent_unit, e.parent_kpi],
            ).fetchone()
            if current is None or current[0] != e.expected_version:
                by, at = (current[1], current[2]) if current else ("?", now)
                clashes.append(Conflict(e.named, by or "?", at or now))
        if clashes:
            raise ConflictError(clashes)
        cells = 0
        for e in edits:
            for order, ((cu, ck, w), old) in enumerate(zip(e.children, e.old, strict=True)):
                cur.execute(
                    "INSERT INTO tree_edge (parent_unit, parent_kpi, child_unit, child_kpi, "
                    "weight, valid_from, sort_order, changed_by, changed_at, reason, version) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [e.parent_unit, e.parent_kpi, cu, ck, w, start, order, who.name, now,
                     reason.strip(), e.expected_version + 1],
                )  # fmt: skip
                if w != old:
                    audit.record(
                        cur, changed_at=now, changed_by=who.name, entity="tree", key=e.parent,
                        field=f"weight {node_text(cat, cu, ck)}", old=f"{old:g}", new=f"{w:g}",
                        reason=reason.strip(),
                    )  # fmt: skip
                    cells += 1
    return Saved(len(edits), cells, {e.parent_unit for e in edits})


def weight_history(
    wh: Warehouse, cat: Catalog, who: Actor, unit_id: int, kpi_id: int
) -> pd.DataFrame:
    """Every version of the weight a node carries under its parent(s), newest first."""
    who.scope.check(unit_id, cat.units[unit_id].code)
    df = wh.df(
        """SELECT parent_unit, parent_kpi, version, valid_from, weight, changed_by, changed_at,
                  reason
           FROM tree_edge WHERE child_unit = ? AND child_kpi = ?
           ORDER BY parent_unit, parent_kpi, version""",
        [unit_id, kpi_id],
    )
    out, before = [], {}
    for r in df.itertuples():
        parent = (r.parent_unit, r.parent_kpi)
        old = before.get(parent)
        if old is not None and old == r.weight:
            continue
        before[parent] = r.weight
        out.append(
            {
                "parent": node_text(cat, *parent),
                "version": int(r.version),
                "valid_from": _dated(r.valid_from.date()),
                "changed_by": r.changed_by,
                "changed_at": r.changed_at,
                "reason": r.reason,
                "change": f"{r.weight:g}%" if old is None else f"{old:g}% → {r.weight:g}%",
            }
        )
    return pd.DataFrame(out).iloc[::-1].reset_index(drop=True) if out else pd.DataFrame(out)
