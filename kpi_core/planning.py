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

What lives where: `grid_edits` holds what both grids share (who may edit, cell problems,
conflicts, `Saved`); this module the targets grid, its checks and saves (each new version
written by `targets.add_versions`); `target_history` a target's versions and their revert;
`weights` the weights grid. The names of `grid_edits` and `weights` that callers use are
re-exported here, so `planning.<name>` keeps working for both grids.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import pandas as pd

from kpi_core import audit, clock, dialects, system_import, targets, workbook
from kpi_core.access import Actor
from kpi_core.catalog import SCORECARD, Catalog
from kpi_core.errors import DuplicateKeyError, ValidationError
from kpi_core.grid_edits import (
    NOT_YOURS,
    CellProblem,
    Conflict,
    ConflictError,
    Saved,
    as_problem,
    audit_text,
    can_edit,
    closed_problem,
    form_problems,
    require_editor,
)
from kpi_core.library import Kpi
from kpi_core.memo import by_data_version
from kpi_core.messages import Message
from kpi_core.month_locks import closed_months
from kpi_core.numbers import NumberError, parse_number
from kpi_core.periods import Period, month_of
from kpi_core.scoring import Levels
from kpi_core.warehouse import Warehouse

# Re-exported: callers reach both grids through `planning`.
from kpi_core.weights import WeightEdit as WeightEdit
from kpi_core.weights import check_weights as check_weights
from kpi_core.weights import node_name as node_name
from kpi_core.weights import save_weight_grid as save_weight_grid
from kpi_core.weights import save_weights as save_weights
from kpi_core.weights import scheduled_weights as scheduled_weights
from kpi_core.weights import weight_changes as weight_changes
from kpi_core.weights import weight_edits as weight_edits
from kpi_core.weights import weight_grid as weight_grid
from kpi_core.weights import weight_history as weight_history
from kpi_core.weights import weight_sums as weight_sums
from kpi_core.weights import weights_month as weights_month

LEVELS = targets.LEVEL_FIELDS  # baseline, target, challenge, low, high, tolerance


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
            {f: missing_as_none(v) for f, v in zip(fields, r[5:], strict=True)},
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
                        Message("pl_not_a_number", value=text),
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
    problems = form_problems(effective, reason, need_reason)
    closed = closed_months(wh)
    rows: list[tuple[int, dict]] = []
    place: dict[int, TargetEdit] = {}
    for n, e in enumerate(edits, start=2):  # "rows" of a targets sheet, as system_import reads it
        where = e.where(cat)
        if not can_edit(who, e.unit_id):
            problems.append(CellProblem(e.row, "unit", where, NOT_YOURS))
            continue
        p = Period(e.grain, e.period_start)
        if effective is not None:
            start = _valid_from(e, effective)
            if e.expected_version and start > p.end:
                problems.append(
                    CellProblem(
                        e.row, "valid_from", where,
                        Message(
                            "pl_never_used",
                            start=f"{start:%Y-%m}",
                            period=p.label(),
                            end=f"{p.end:%Y-%m}",
                        ),
                    )
                )  # fmt: skip
            problems += closed_problem(e.row, where, start, p.end, closed)
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
    require_editor(who)
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
    require_editor(who)
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
             audit_text(e.old[f]), audit_text(e.new[f]), reason.strip())
            for e in edits
            for f in e.changed
        ],
        columns=audit.COLUMNS,
    )  # fmt: skip
    try:
        _write_targets(wh, cat, who, frame, cells, reason, now)
    except DuplicateKeyError:
        # On PostgreSQL, another server saved the same version between our check and our
        # write, and the target's key refused ours: check again, which now names theirs.
        _write_targets(wh, cat, who, frame, cells, reason, now)
    return Saved(len(edits), len(cells), {e.unit_id for e in edits})


# The edits whose target has a version other than the one the grid was read at.
_CLASH = dialects.postgres(
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
       WHERE coalesce(c.version, 0) <> e.expected""",
    """SELECT e.kpi_id, e.unit_id, e.grain, e.period_start, c.by, c.at
       FROM edits e
       LEFT JOIN (SELECT DISTINCT ON (t.kpi_id, t.unit_id, t.grain, t.period_start)
                         t.kpi_id, t.unit_id, t.grain, t.period_start, t.version,
                         t.changed_by AS by, t.changed_at AS at
                  FROM target t
                  WHERE EXISTS (SELECT 1 FROM edits x
                                WHERE x.kpi_id = t.kpi_id AND x.unit_id = t.unit_id
                                  AND x.grain = t.grain AND x.period_start = t.period_start)
                  ORDER BY t.kpi_id, t.unit_id, t.grain, t.period_start, t.version DESC) c
         USING (kpi_id, unit_id, grain, period_start)
       WHERE coalesce(c.version, 0) <> e.expected""",
)


def _write_targets(
    wh: Warehouse,
    cat: Catalog,
    who: Actor,
    frame: pd.DataFrame,
    cells: pd.DataFrame,
    reason: str,
    now: datetime,
) -> None:
    """The new versions and their audit, unless a row was saved by somebody else meanwhile."""
    with wh.transaction() as cur:
        cur.register("edits", frame)
        clash = cur.execute(_CLASH).fetchall()
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


def missing_as_none(v: object) -> object:
    """A stored level as the grid and the history compare it: NaN (a NULL in a frame) is None."""
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v
