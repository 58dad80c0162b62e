"""A target's history on the Targets & weights page: every version of a KPI's levels in a unit
with what changed from the one before, and a revert, which is an edit like any other
(`planning.TargetEdit`, saved by `planning.save_targets`: dated, reasoned, audited).
"""

from __future__ import annotations

from datetime import date

import pandas as pd

from kpi_core.access import Actor
from kpi_core.catalog import Catalog
from kpi_core.errors import KpiError
from kpi_core.library import Kpi
from kpi_core.messages import Message
from kpi_core.periods import Period
from kpi_core.planning import LEVELS, TargetEdit, level_text, missing_as_none
from kpi_core.warehouse import Warehouse


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
        now = {f: missing_as_none(r[f]) for f in [*LEVELS, "phasing"]}
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
    by_version = {
        int(r["version"]): {f: missing_as_none(r[f]) for f in [*LEVELS, "phasing"]} for r in rows
    }
    if to_version not in by_version:
        raise KpiError(Message("pl_err_no_version", n=to_version))
    latest = max(by_version)
    old, new = by_version[latest], by_version[to_version]
    changed = tuple(f for f in new if new[f] != old[f])
    return TargetEdit(None, kpi_id, unit_id, grain, period_start, latest, new, old, changed)
