"""Writing a checked KPI-system plan in one transaction: units, KPIs, the tree, target versions
(through targets.add_versions) and actuals, each change audited; a dry run counts and rolls back."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime

import pandas as pd

from kpi_core import actuals, audit, targets
from kpi_core.catalog import SCORECARD
from kpi_core.periods import month_of
from kpi_core.system_checks import (
    _LEVELS,
    EPOCH,
    Plan,
)


class _DryRun(Exception):
    """Raised inside the transaction so a dry run rolls back after counting what it would do."""

    def __init__(self, summary: dict[str, int]):
        self.summary = summary


def _audit(cur, by: str, entity: str, key: str, field_: str | None, old, new, reason: str) -> None:
    audit.record(
        cur, changed_at=datetime.now(), changed_by=by, entity=entity, key=key, field=field_,
        old=None if old is None else str(old), new=None if new is None else str(new),
        reason=reason,
    )  # fmt: skip


_UNIT_FIELDS = ("name_zh", "name_en", "kind", "sort_order")
_KPI_FIELDS = (
    "name_zh",
    "name_en",
    "unit",
    "direction",
    "aggregation",
    "numerator",
    "denominator",
    "formula",
    "perspective",
    "kind",
    "veto",
    "decimals",
    "caliber",
    "source",
    "owner",
    "min_value",
    "max_value",
    "sort_order",
)


def _apply(
    cur, plan: Plan, by: str, source_name: str, sha: str, today: date
) -> tuple[dict[str, int], int | None]:
    reason = f"import {source_name}"
    summary: dict[str, int] = defaultdict(int)
    now = datetime.now()
    this_month = month_of(today)

    for name, shares in plan.profiles.items():
        old = cur.execute("SELECT shares FROM phasing_profile WHERE name = ?", [name]).fetchone()
        if old is None or list(old[0]) != shares:
            cur.execute("INSERT OR REPLACE INTO phasing_profile VALUES (?, ?)", [name, shares])
            _audit(cur, by, "phasing", name, "shares", old and list(old[0]), shares, reason)
            summary["phasing_changed"] += 1

    unit_ids = dict(cur.execute("SELECT code, id FROM org_unit").fetchall())
    for u in plan.units:
        cols = {f: u[f] for f in _UNIT_FIELDS}
        if u["code"] not in unit_ids:
            uid = cur.execute("SELECT nextval('org_unit_id')").fetchone()[0]
            cur.execute(
                "INSERT INTO org_unit (id, code, name_zh, name_en, kind, sort_order) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [uid, u["code"], *cols.values()],
            )
            unit_ids[u["code"]] = uid
            _audit(cur, by, "org_unit", u["code"], None, None, "created", reason)
            summary["units_new"] += 1
        else:
            summary["units_changed"] += _update(
                cur, "org_unit", unit_ids[u["code"]], cols, by, u["code"], reason
            )
    for u in plan.units:
        parent_id = unit_ids.get(u["parent"]) if u["parent"] else None
        old = cur.execute(
            "SELECT parent_id FROM org_unit WHERE id = ?", [unit_ids[u["code"]]]
        ).fetchone()
        if old[0] != parent_id:
            cur.execute(
                "UPDATE org_unit SET parent_id = ? WHERE id = ?", [parent_id, unit_ids[u["code"]]]
            )
            if old[0] is not None:
                _audit(cur, by, "org_unit", u["code"], "parent", old[0], parent_id, reason)

    kpi_ids = dict(cur.execute("SELECT code, id FROM kpi").fetchall())
    # A sheet listing every KPI orders the library; one listing a few (an edit from the KPI
    # library page) leaves the others' places alone and puts new KPIs after the last.
    orders = dict(cur.execute("SELECT code, sort_order FROM kpi").fetchall())
    whole = set(orders) <= {k["code"] for k in plan.kpis}
    next_order = max(orders.values(), default=-1) + 1
    for k in plan.kpis:
        cols = {f: k[f] for f in _KPI_FIELDS}
        if not whole:
            if k["code"] in orders:
                cols["sort_order"] = orders[k["code"]]
            else:
                cols["sort_order"], next_order = next_order, next_order + 1
        if k["code"] not in kpi_ids:
            kid = cur.execute("SELECT nextval('kpi_id')").fetchone()[0]
            cur.execute(
                f"INSERT INTO kpi (id, code, {', '.join(cols)}) "  # noqa: S608 - fixed column names
                f"VALUES (?, ?, {', '.join('?' for _ in cols)})",
                [kid, k["code"], *cols.values()],
            )
            kpi_ids[k["code"]] = kid
            _audit(cur, by, "kpi", k["code"], None, None, "created", reason)
            summary["kpis_new"] += 1
        else:
            summary["kpis_changed"] += _update(
                cur, "kpi", kpi_ids[k["code"]], cols, by, k["code"], reason
            )

    for (pu, pk), children in plan.tree.items():
        parent_unit, parent_kpi = unit_ids[pu], kpi_ids[pk] if pk else SCORECARD
        current = cur.execute(
            """SELECT child_unit, child_kpi, weight, version FROM tree_edge
               WHERE parent_unit = ? AND parent_kpi = ?
                 AND version = (SELECT max(version) FROM tree_edge
                                WHERE parent_unit = ? AND parent_kpi = ?)""",
            [parent_unit, parent_kpi, parent_unit, parent_kpi],
        ).fetchall()
        new = [
            (unit_ids[c["unit"]], kpi_ids[c["kpi"]] if c["kpi"] else SCORECARD, c["weight"])
            for c in children
        ]
        if sorted(new) == sorted((r[0], r[1], r[2]) for r in current):
            continue
        explicit = next((c["valid_from"] for c in children if c["valid_from"]), None)
        valid_from = explicit or (EPOCH if not current else this_month)
        version = current[0][3] + 1 if current else 1
        for order, (cu, ck_, w) in enumerate(new):
            cur.execute(
                "INSERT INTO tree_edge (parent_unit, parent_kpi, child_unit, child_kpi, weight, "
                "valid_from, sort_order, changed_by, changed_at, reason, version) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [parent_unit, parent_kpi, cu, ck_, w, valid_from, order, by, now, reason, version],
            )
        node = pu + (f"/{pk}" if pk else "")
        old_text = "; ".join(f"{r[0]}/{r[1]}={r[2]:g}" for r in current) or None
        _audit(
            cur,
            by,
            "tree",
            node,
            "children",
            old_text,
            "; ".join(f"{c['unit']}/{c['kpi'] or ''}={c['weight']:g}" for c in children),
            reason,
        )
        summary["tree_parents_changed"] += 1

    versions = []
    for t in plan.targets:
        kid, uid = kpi_ids[t["kpi"]], unit_ids[t["unit"]]
        old = cur.execute(
            f"""SELECT version, {", ".join(_LEVELS)}, phasing FROM target
               WHERE kpi_id = ? AND unit_id = ? AND grain = ? AND period_start = ?
               ORDER BY version DESC LIMIT 1""",  # noqa: S608 - fixed columns
            [kid, uid, t["grain"], t["period_start"]],
        ).fetchone()
        new_levels = [t[f] for f in _LEVELS] + [t["phasing"]]
        if old is not None and list(old[1:]) == new_levels:
            continue
        version = 1 if old is None else old[0] + 1
        # A changed target holds from this month on unless the file says otherwise, so months
        # already judged keep the levels they were judged by.
        default_from = t["period_start"] if old is None else max(t["period_start"], this_month)
        versions.append(
            [kid, uid, t["grain"], t["period_start"], *new_levels, t["valid_from"] or default_from,
             version]
        )  # fmt: skip
        if old is not None:
            _audit(
                cur,
                by,
                "target",
                f"{t['unit']}/{t['kpi']}/{t['period_start']}",
                "levels",
                list(old[1:]),
                new_levels,
                reason,
            )
        summary["targets_new" if old is None else "targets_changed"] += 1
    # Written together: the file lists each target once, so no row above read another's version.
    versions_frame = pd.DataFrame(versions, columns=targets.VERSION_COLUMNS)
    targets.add_versions(cur, versions_frame, by=by, at=now, reason=reason)

    batch_id = None
    if plan.actuals:
        batch_id, counts = _load_actuals(
            cur, plan.actuals, unit_ids, kpi_ids, by, source_name, sha, now
        )
        summary.update(counts)
        if batch_id is not None:
            _audit(cur, by, "batch", str(batch_id), None, None, f"{len(plan.actuals)} rows", reason)
    return {k: v for k, v in summary.items() if v}, batch_id


def _update(cur, table: str, row_id: int, cols: dict, by: str, code: str, reason: str) -> int:
    names = list(cols)
    old = cur.execute(
        f"SELECT {', '.join(names)} FROM {table} WHERE id = ?",  # noqa: S608 - fixed names
        [row_id],
    ).fetchone()
    changed = {n: v for n, o, v in zip(names, old, cols.values(), strict=True) if o != v}
    if not changed:
        return 0
    cur.execute(
        f"UPDATE {table} SET {', '.join(f'{n} = ?' for n in changed)} WHERE id = ?",  # noqa: S608
        [*changed.values(), row_id],
    )
    for n, v in changed.items():
        _audit(cur, by, table, code, n, old[names.index(n)], v, reason)
    return 1


def _load_actuals(cur, rows, unit_ids, kpi_ids, by, source_name, sha, now):
    """Upsert actuals as one batch, keeping the values it replaces so it can be rolled back.
    Values equal at their KPI's precision are left alone (`actuals.same_values`); when nothing
    is new or changed, no batch is written and the batch id is None."""
    places = actuals.comparison_places(cur)  # (its query also ends any result left unread)
    incoming = pd.DataFrame(
        {
            "kpi_id": pd.array([kpi_ids[r[1]] for r in rows], dtype="int32"),
            "unit_id": pd.array([unit_ids[r[0]] for r in rows], dtype="int32"),
            "period": pd.to_datetime([r[2] for r in rows]).date,
            "value": [float(r[3]) for r in rows],
        }
    )
    cur.register("incoming", incoming)
    try:
        matched = cur.execute(
            """SELECT i.kpi_id, i.unit_id, i.period::DATE AS period, i.value,
                      a.value AS old_value, a.batch_id AS old_batch_id
               FROM incoming i
               LEFT JOIN actual a ON a.kpi_id = i.kpi_id AND a.unit_id = i.unit_id
                                  AND a.period = i.period::DATE"""
        ).df()
    finally:
        cur.unregister("incoming")
    old = matched["old_value"].to_numpy(dtype=float, na_value=float("nan"))
    same = actuals.same_values(
        places, matched["kpi_id"], old, matched["value"].to_numpy(dtype=float)
    )
    moving = matched[~same]
    new = int(moving["old_value"].isna().sum())
    changed = len(moving) - new
    counts = {
        "actuals_new": new,
        "actuals_changed": changed,
        "actuals_unchanged": len(rows) - new - changed,
    }
    if not len(moving):
        return None, counts
    batch_id = cur.execute("SELECT nextval('batch_id')").fetchall()[0][0]
    cur.register("moving", moving)
    try:
        cur.execute(
            """CREATE TEMP TABLE changed AS
               SELECT kpi_id::INTEGER AS kpi_id, unit_id::INTEGER AS unit_id,
                      period::DATE AS period, value, old_value, old_batch_id
               FROM moving"""
        )
    finally:
        cur.unregister("moving")
    cur.execute(
        """INSERT INTO actual_replaced
           SELECT ?, kpi_id, unit_id, period, old_value, old_batch_id
           FROM changed WHERE old_value IS NOT NULL""",
        [batch_id],
    )
    cur.execute(
        """DELETE FROM actual USING changed c
           WHERE actual.kpi_id = c.kpi_id AND actual.unit_id = c.unit_id
             AND actual.period = c.period"""
    )
    cur.execute(
        "INSERT INTO actual SELECT kpi_id, unit_id, period, value, ? FROM changed", [batch_id]
    )
    actuals.refresh_summary(cur, "changed")
    cur.execute("DROP TABLE changed")
    cur.execute(
        "INSERT INTO batch (id, kind, source_name, sha256, created_by, created_at, rows, status,"
        " files) VALUES (?, 'workbook', ?, ?, ?, ?, ?, 'committed', ?)",
        [batch_id, source_name, sha, by, now, new + changed, source_name],
    )
    return batch_id, counts
