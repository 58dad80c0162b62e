"""Weights as a grid a department head edits in place (DESIGN.md §3): one row per child of a
parent node, saved as a dated version of the parent's group when the group sums to 100."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import pandas as pd

from kpi_core import audit
from kpi_core.access import Actor
from kpi_core.catalog import SCORECARD, Catalog, pick_version
from kpi_core.errors import ValidationError
from kpi_core.grid_edits import (
    NOT_YOURS,
    CellProblem,
    Conflict,
    ConflictError,
    Saved,
    as_problem,
    can_edit,
    closed_problem,
    form_problems,
    require_editor,
)
from kpi_core.messages import Items, Message
from kpi_core.month_locks import closed_months
from kpi_core.periods import month_of
from kpi_core.system_checks import EPOCH
from kpi_core.warehouse import Warehouse

WEIGHT_TOLERANCE = 0.01  # a group of weights sums to 100 within this


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
    return None if valid_from == EPOCH else valid_from


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
                problems.append(CellProblem(int(i), "weight", where, Message("wt_empty")))
                bad = True
            elif w < 0:
                problems.append(
                    CellProblem(int(i), "weight", where, Message("wt_negative", value=f"{w:g}"))
                )
                bad = True
        total = float(new.sum())
        if not bad and abs(total - 100) > WEIGHT_TOLERANCE:
            children = Items((str(group.at[i, "child_label"]) for i in idx), commas=True)
            problems.append(
                CellProblem(
                    int(idx[-1]), "weight", "",
                    Message("wt_sum", parent=name, children=children, total=f"{total:g}"),
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
    problems = form_problems(effective, reason, need_reason)
    closed = closed_months(wh)
    for e in edits:
        if not can_edit(who, e.parent_unit):
            problems.append(CellProblem(e.rows[0], "parent", e.named, NOT_YOURS))
        elif effective is not None:
            # A new set of weights holds from its month on, with no end.
            problems += closed_problem(e.rows[0], e.named, month_of(effective), None, closed)
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
    require_editor(who)
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
    require_editor(who)
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
