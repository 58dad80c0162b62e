"""What pages and the command line call: the core's operations, each taking the acting user."""

from __future__ import annotations

import os
from datetime import date

from kpi_core import alerts, demo, scorecard, system_import, users, workbook
from kpi_core.access import SYSTEM, Actor, Scope, User, hash_password
from kpi_core.after_commit import AfterCommit, rejudge
from kpi_core.catalog import Catalog, load_catalog, load_user
from kpi_core.ingest import batches, intake
from kpi_core.periods import Period
from kpi_core.scoring import DEFAULT_LADDER, Ladder
from kpi_core.warehouse import Warehouse

# One demo user per role; the README and the sign-in form list them with their passwords.
DEMO_USERS = (
    ("admin", "管理员 Admin", "admin", (), "admin"),
    ("head_sales", "王磊 Wang Lei", "head", ("SALES",), "head"),
    ("analyst", "李娜 Li Na", "analyst", ("GROUP",), "analyst"),
    ("viewer_prod", "赵强 Zhao Qiang", "viewer", ("PROD",), "viewer"),
)


def actor(wh: Warehouse, user_name: str | None) -> Actor:
    if not user_name:
        return SYSTEM
    user = load_user(wh, user_name)
    return actor_for(user, load_catalog(wh))


def actor_for(user: User, cat: Catalog) -> Actor:
    return Actor(user.name, user.role, cat.scope_for(user))


def ensure_demo(wh: Warehouse, *, today: date, source: str | os.PathLike | None = None) -> bool:
    """Load the demo company into a new warehouse through the ordinary import path: one with
    no KPIs and no users. A warehouse somebody has started (an admin created, say) never gets
    the demo's KPIs, nor its well-known passwords.

    The demo's actuals end with the last complete month before `today` (demo.demo_end), so a
    new user sees last month's board and no stale data; `source` loads a given workbook instead.
    """
    if not wh.is_empty() or users.anyone(wh):
        return False
    if source is None:
        frames = demo.build_demo(demo.demo_end(today))
        system_import.import_system(
            wh, workbook.to_bytes(frames), by="demo", scope=Scope.all(),
            source_name=workbook.DEMO_WORKBOOK.name, today=today,
        )  # fmt: skip
    else:
        system_import.import_system(wh, source, by="demo", scope=Scope.all(), today=today)
    with wh.transaction() as cur:
        for name, display, role, scope, password in DEMO_USERS:
            cur.execute(
                "INSERT OR IGNORE INTO app_user (name, display_name, role, scope, password_hash) "
                "VALUES (?, ?, ?, ?, ?)",
                [name, display, role, list(scope), hash_password(password)],
            )
    # The demo's latest month judged by the alert rules, as a month loaded by an analyst would
    # be: a new user's Alerts page and Board badges show what the morning meeting would see.
    alerts.run(wh, SYSTEM, today=today)
    return True


def commit_actuals(
    wh: Warehouse, prepared: intake.Intake, who: Actor, *, accept_invalid: bool = False
) -> intake.Committed:
    """Commit a prepared intake; once it is written the alert rules run on its months and the
    new alerts are pushed, outside the transaction (after_commit.AfterCommit): a failing rule or
    push is logged and never undoes the batch."""
    return intake.commit(wh, prepared, who, accept_invalid=accept_invalid, after=AfterCommit)


def rollback_actuals(wh: Warehouse, batch_id: int, who: Actor, reason: str = "") -> dict[str, int]:
    """Roll a batch back; then the alert rules judge its months again (after_commit.rejudge)."""
    return batches.rollback(wh, batch_id, who, reason, after=rejudge)


def import_workbook(
    wh: Warehouse, source, who: Actor, *, dry_run: bool = False, source_name: str | None = None
) -> system_import.ImportResult:
    return system_import.import_system(
        wh, source, by=who.name, scope=who.scope, dry_run=dry_run, source_name=source_name
    )


def scorecard_dict(
    wh: Warehouse,
    cat: Catalog,
    who: Actor,
    unit_code: str,
    period: Period,
    ladder: Ladder = DEFAULT_LADDER,
) -> dict:
    """The unit's scorecard in the shape of DESIGN.md §5 (`score --json`)."""
    unit = cat.unit(unit_code)
    res = scorecard.evaluate(wh, cat, who.scope, [unit.id], period, ladder)[unit.id]

    def r(v: float | None, n: int = 6) -> float | None:
        return None if v is None else round(v, n)

    kpis = []
    for weight, node in res.kpi_children():
        lv = node.levels
        kpis.append(
            {
                "kpi": cat.kpis[node.kpi_id].code,
                "unit": cat.units[node.unit_id].code,
                "actual": r(node.actual),
                "baseline": r(lv.baseline) if lv else None,
                "target": r(lv.target) if lv else None,
                "challenge": r(lv.challenge) if lv else None,
                "score": r(node.score, 4),
                "status": node.status,
                "weight": weight,
                "veto": cat.kpis[node.kpi_id].veto,
            }
        )
    units = [
        {"unit": cat.units[n.unit_id].code, "score": r(n.score, 4), "status": n.status, "weight": w}
        for w, n in res.unit_children()
    ]
    return {
        "unit": unit.code,
        "period": period.label(),
        "score": r(res.score, 4),
        "status": res.status,
        "coverage": r(res.coverage or 0.0, 4),
        "vetoed_by": list(res.vetoed_by),
        "kpis": kpis,
        "units": units,
    }


def score_unit(wh: Warehouse, who: Actor, unit_code: str, period: Period) -> dict:
    return scorecard_dict(wh, load_catalog(wh), who, unit_code, period)
