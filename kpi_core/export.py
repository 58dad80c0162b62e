"""The warehouse as KPI-system workbook sheets (the format `import` reads), within a scope."""

from __future__ import annotations

import pandas as pd

from kpi_core import workbook
from kpi_core.access import Scope
from kpi_core.catalog import SCORECARD, load_catalog
from kpi_core.periods import Period
from kpi_core.warehouse import Warehouse

_KPI_COLUMNS = list(workbook.COLUMNS["kpis"])  # the documented column order


def _visible_kpis(wh: Warehouse, cat, scope: Scope, unit_ids: list[int]) -> list:
    """Every KPI for a full-scope export; for a scoped one, the KPIs its units use (on their
    trees, with targets or actuals) and those they are computed from, so the workbook imports
    back — and no other department's definitions, owners or calibers."""
    if scope.everything:
        return list(cat.kpis.values())
    used = {e.child_kpi for e in cat.edges if scope.allows(e.child_unit)}
    used |= {e.parent_kpi for e in cat.edges if scope.allows(e.parent_unit)}
    used |= {
        r[0]
        for r in wh.rows(
            "SELECT DISTINCT kpi_id FROM target WHERE list_contains(?, unit_id) UNION "
            "SELECT DISTINCT kpi_id FROM actual WHERE list_contains(?, unit_id)",
            [unit_ids, unit_ids],
        )
    }
    todo = [cat.kpis[k] for k in used if k in cat.kpis]
    seen: dict[str, object] = {}
    while todo:
        k = todo.pop()
        if k.code in seen:
            continue
        seen[k.code] = k
        todo += [cat.kpi_by_code[d] for d in k.dependencies() if d in cat.kpi_by_code]
    return list(seen.values())


def system_frames(wh: Warehouse, scope: Scope, *, actuals: bool = True) -> dict[str, pd.DataFrame]:
    cat = load_catalog(wh)
    units = [u for u in cat.units.values() if scope.allows(u.id)]
    units.sort(key=lambda u: (u.sort_order, u.code))
    unit_ids = [u.id for u in units]

    def code_of(unit_id: int | None) -> str | None:
        return cat.units[unit_id].code if unit_id in cat.units else None

    kpis = sorted(_visible_kpis(wh, cat, scope, unit_ids), key=lambda k: (k.sort_order, k.code))
    frames = {
        "kpis": pd.DataFrame(
            [
                [
                    k.code,
                    k.name_zh,
                    k.name_en,
                    k.unit,
                    k.direction,
                    k.aggregation,
                    k.numerator,
                    k.denominator,
                    k.formula,
                    k.perspective,
                    k.kind,
                    k.veto,
                    k.decimals,
                    k.caliber,
                    k.source,
                    k.owner,
                    k.min_value,
                    k.max_value,
                ]
                for k in kpis
            ],
            columns=_KPI_COLUMNS,
        ),
        "org_units": pd.DataFrame(
            [
                [
                    u.code,
                    u.name_zh,
                    u.name_en,
                    code_of(u.parent_id) if scope.allows(u.parent_id or -1) else None,
                    u.kind,
                ]
                for u in units
            ],
            columns=["code", "name_zh", "name_en", "parent", "kind"],
        ),
    }

    def node(unit_id: int, kpi_id: int) -> str:
        return code_of(unit_id) + ("" if kpi_id == SCORECARD else f"/{cat.kpis[kpi_id].code}")

    # The current tree: each parent's latest edge set.
    latest: dict[tuple[int, int], int] = {}
    for e in cat.edges:
        key = (e.parent_unit, e.parent_kpi)
        latest[key] = max(latest.get(key, e.version), e.version)
    edges = [
        e
        for e in sorted(cat.edges, key=lambda e: (e.parent_unit, e.parent_kpi, e.sort_order))
        if e.version == latest[(e.parent_unit, e.parent_kpi)] and scope.allows(e.parent_unit)
    ]
    frames["tree"] = pd.DataFrame(
        [
            [node(e.parent_unit, e.parent_kpi), node(e.child_unit, e.child_kpi), e.weight]
            for e in edges
        ],
        columns=["parent", "child", "weight"],
    )
    frames["phasing"] = pd.DataFrame(
        [[name, *shares] for name, shares in sorted(cat.profiles.items())],
        columns=["name", *(f"m{i}" for i in range(1, 13))],
    )
    targets = wh.df(
        """SELECT t.unit_id, t.kpi_id, t.grain, t.period_start, t.baseline, t.target, t.challenge,
                  t.phasing, t.low, t.high, t.tolerance
           FROM target t
           WHERE list_contains(?, t.unit_id)
           QUALIFY row_number() OVER (PARTITION BY t.kpi_id, t.unit_id, t.grain, t.period_start
                                      ORDER BY t.version DESC) = 1
           ORDER BY t.unit_id, t.kpi_id, t.period_start""",
        [unit_ids],
    )
    frames["targets"] = pd.DataFrame(
        {
            "unit": targets["unit_id"].map(code_of),
            "kpi": targets["kpi_id"].map(lambda k: cat.kpis[k].code),
            "period": [
                Period(g, p).label()
                for g, p in zip(targets["grain"], targets["period_start"], strict=True)
            ],
            **{
                c: targets[c]
                for c in ["baseline", "target", "challenge", "phasing", "low", "high", "tolerance"]
            },
        }
    )
    if actuals:
        df = wh.df(
            """SELECT unit_id, kpi_id, strftime(period, '%Y-%m') AS period, value FROM actual
               WHERE list_contains(?, unit_id) ORDER BY unit_id, kpi_id, period""",
            [unit_ids],
        )
        frames["actuals"] = pd.DataFrame(
            {
                "unit": df["unit_id"].map(code_of),
                "kpi": df["kpi_id"].map(lambda k: cat.kpis[k].code),
                "period": df["period"],
                "value": df["value"],
            }
        )
    return frames
