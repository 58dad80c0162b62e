"""Time the KPI engine against a careful pandas implementation on the same warehouse.

    python bench/bench_engine.py [--path bench/large.duckdb] [--repeat 15]

Cases (each the median of --repeat runs after one warm-up, the connection held open as a page run
holds it):
  (i)   one leaf unit's scorecard (~25 KPI nodes) for the latest month;
  (ii)  the company scorecard for the latest year: every KPI node of every unit, rolled up
        through the 4 levels;
  (iii) a 36-month trend of one KPI of one unit with its monthly target levels.

The pandas side works on the `actual` and `target` tables loaded once with `.df()` (sorted by unit,
kpi, period) and on the small tables prepared once, as the engine's catalog is. It filters first
(binary search on the sorted unit column, then boolean masks), then groups, merges and scores with
numpy. It implements what this data needs: annual targets with one version each, every unit
having its own actuals (no fall-back to child units), formulas over stored KPIs — so it does less
than the engine in general, never more. Both sides' results are compared before anything is timed.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere
from kpi_core import actuals, formula, memo, scorecard, targets
from kpi_core.access import Scope
from kpi_core.catalog import SCORECARD, Catalog, load_catalog
from kpi_core.periods import Period, add_months
from kpi_core.scorecard import NodeResult
from kpi_core.warehouse import Warehouse

# The engine is timed, not the page caches (kpi_core/memo.py).
memo.ENABLED = False

KEY = 1 << 20  # pair key = unit_id * KEY + kpi_id
LEVELS = ["baseline", "target", "challenge", "low", "high", "tolerance"]
AGG_CODE = {"sum": 0, "avg": 1, "last": 2, "ratio": 3, "formula": 4}
GREEN, AMBER, RED, GREY = 0, 1, 2, 3
STATUS_NAME = {GREEN: "green", AMBER: "amber", RED: "red", GREY: "grey"}
GOALS = {"i": (20.0, 3.0), "ii": (500.0, 3.0), "iii": (20.0, 3.0)}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--path", default="bench/large.duckdb")
    p.add_argument("--repeat", type=int, default=15)
    return p.parse_args()


@dataclass
class Frames:
    """What the pandas side holds in memory: the two big tables and the small ones, prepared."""

    actual: pd.DataFrame  # kpi_id, unit_id, period, value, key; sorted by unit, kpi, period
    actual_unit: np.ndarray
    target: pd.DataFrame  # + year, key; sorted by unit, kpi, year
    target_unit: np.ndarray
    agg: np.ndarray  # by kpi id
    direction: np.ndarray  # by kpi id: 0 up, 1 down, 2 range
    veto: np.ndarray  # by kpi id
    numerator: np.ndarray  # by kpi id, 0 = none
    denominator: np.ndarray
    formulas: dict[int, formula.Node]
    kpi_by_code: dict[str, int]
    deps: pd.DataFrame  # kpi_id, dep_id: stored KPIs a derived KPI is computed from
    kpi_edges: pd.DataFrame  # parent_unit, child_unit, child_kpi, weight (valid tree)
    unit_edges: pd.DataFrame  # parent_unit, child_unit, weight
    depth: np.ndarray  # by unit id
    children: dict[int, np.ndarray]
    cum_shares: np.ndarray  # (profiles, 13): cumulative monthly shares, 0 first
    profile_index: dict[str, int]


def load_frames(wh: Warehouse) -> Frames:
    actual = wh.df(
        """SELECT kpi_id, unit_id, period, value, unit_id::BIGINT * ? + kpi_id AS key
           FROM actual ORDER BY unit_id, kpi_id, period""",
        [KEY],
    )
    target = wh.df(
        """SELECT kpi_id, unit_id, grain, year(period_start) AS year, baseline, target, challenge,
                  low, high, tolerance, coalesce(phasing, 'even') AS phasing, valid_from, version,
                  unit_id::BIGINT * ? + kpi_id AS key
           FROM target ORDER BY unit_id, kpi_id, period_start, valid_from, version""",
        [KEY],
    )
    kpis = wh.df(
        "SELECT id, code, direction, aggregation, numerator, denominator, formula, veto FROM kpi"
    )
    n = int(kpis["id"].max()) + 1
    ids = kpis["id"].to_numpy()
    by_code = dict(zip(kpis["code"], ids, strict=True))
    agg, direction = np.full(n, -1), np.full(n, -1)
    agg[ids] = kpis["aggregation"].map(AGG_CODE).to_numpy()
    direction[ids] = kpis["direction"].map({"up": 0, "down": 1, "range": 2}).to_numpy()
    veto = np.zeros(n, dtype=bool)
    veto[ids] = kpis["veto"].to_numpy()
    numerator, denominator = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    formulas: dict[int, formula.Node] = {}
    deps = []
    for row in kpis.itertuples():
        if row.aggregation == "ratio":
            numerator[row.id], denominator[row.id] = (
                by_code[row.numerator],
                by_code[row.denominator],
            )
            deps += [(row.id, numerator[row.id]), (row.id, denominator[row.id])]
        elif row.aggregation == "formula":
            formulas[row.id] = formula.parse(row.formula)
            deps += [(row.id, by_code[c]) for c in formula.references(formulas[row.id])]

    edges = wh.df("SELECT * FROM tree_edge")
    # The tree valid now: per parent, the rows of its latest version (the bench data has one).
    latest = edges.groupby(["parent_unit", "parent_kpi"])["valid_from"].transform("max")
    edges = edges[(edges["valid_from"] == latest) & (edges["parent_kpi"] == SCORECARD)]
    kpi_edges = edges[edges["child_kpi"] != SCORECARD][
        ["parent_unit", "child_unit", "child_kpi", "weight"]
    ].reset_index(drop=True)
    unit_edges = edges[edges["child_kpi"] == SCORECARD][
        ["parent_unit", "child_unit", "weight"]
    ].reset_index(drop=True)

    units = wh.df("SELECT id, parent_id FROM org_unit")
    parent = dict(zip(units["id"], units["parent_id"], strict=True))
    depth = np.zeros(int(units["id"].max()) + 1, dtype=np.int64)
    for u in units["id"]:
        d, p = 0, parent[u]
        while pd.notna(p):
            d, p = d + 1, parent[int(p)]
        depth[u] = d
    children = {
        int(p): g["id"].to_numpy()
        for p, g in units.dropna(subset=["parent_id"]).groupby("parent_id")
    }
    profiles = wh.rows("SELECT name, shares FROM phasing_profile")
    profile_index = {"even": 0}  # also what an unknown profile falls back to, as in the engine
    cum = [np.concatenate([[0.0], np.cumsum(np.full(12, 1 / 12))])]
    for name, shares in profiles:
        s = np.asarray(shares, dtype=float)
        profile_index[name] = len(cum)
        cum.append(np.concatenate([[0.0], np.cumsum(s / s.sum())]))
    return Frames(
        actual=actual,
        actual_unit=actual["unit_id"].to_numpy(),
        target=target,
        target_unit=target["unit_id"].to_numpy(),
        agg=agg,
        direction=direction,
        veto=veto,
        numerator=numerator,
        denominator=denominator,
        formulas=formulas,
        kpi_by_code={str(c): int(i) for c, i in by_code.items()},
        deps=pd.DataFrame(deps, columns=["kpi_id", "dep_id"]),
        kpi_edges=kpi_edges,
        unit_edges=unit_edges,
        depth=depth,
        children=children,
        cum_shares=np.array(cum),
        profile_index=profile_index,
    )


def unit_rows(frame: pd.DataFrame, sorted_units: np.ndarray, units: np.ndarray) -> pd.DataFrame:
    """Rows of some units from a frame sorted by unit: binary search, no full-column mask."""
    if len(units) >= sorted_units[-1] - sorted_units[0] + 1:  # every unit (ids are dense here)
        return frame
    lo = np.searchsorted(sorted_units, units, "left")
    hi = np.searchsorted(sorted_units, units, "right")
    idx = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi, strict=True)])
    return frame.iloc[idx]


def subtree(f: Frames, root: int) -> np.ndarray:
    out, frontier = [np.array([root])], np.array([root])
    while len(frontier):
        frontier = np.concatenate([f.children.get(int(u), np.empty(0, int)) for u in frontier])
        out.append(frontier)
    return np.concatenate(out)


def eval_formula(node: formula.Node, values: dict[str, np.ndarray]) -> np.ndarray | float:
    """A formula over arrays, NaN for missing values and for division by zero."""
    if isinstance(node, formula.Num):
        return node.value
    if isinstance(node, formula.Ref):
        return values[node.code]
    if isinstance(node, formula.Neg):
        return -eval_formula(node.operand, values)
    left, right = eval_formula(node.left, values), eval_formula(node.right, values)
    if node.op == "+":
        return left + right
    if node.op == "-":
        return left - right
    if node.op == "*":
        return left * right
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(right == 0, np.nan, left / np.where(right == 0, 1, right))


def score_arrays(a, direction, lv: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The engine's ladder (scoring.score / scoring.status) over arrays."""
    b, t, c = lv["baseline"], lv["target"], lv["challenge"]
    sign = np.where(direction == 1, -1.0, 1.0)
    sa, sb, st, sc = sign * a, sign * b, sign * t, sign * c
    with np.errstate(divide="ignore", invalid="ignore"):
        above = np.where(
            np.isnan(sc) | (sc <= st),
            100.0,
            np.where(sa >= sc, 120.0, 100.0 + 20.0 * (sa - st) / (sc - st)),
        )
        no_base = np.where(st == 0, 0.0, np.maximum(0.0, 100.0 - 100.0 * (st - sa) / np.abs(st)))
        slope = 40.0 / (st - sb)
        with_base = np.where(
            sb >= st,
            0.0,
            np.where(sa >= sb, 60.0 + slope * (sa - sb), np.maximum(0.0, 60.0 - slope * (sb - sa))),
        )
        below = np.where(np.isnan(sb), no_base, with_base)
        ladder = np.where(sa >= st, above, below)
        ladder = np.where(np.isnan(st), np.nan, ladder)
        low, high, tol = lv["low"], lv["high"], lv["tolerance"]
        dist = np.maximum(
            np.where(np.isnan(low), 0.0, low - a), np.where(np.isnan(high), 0.0, a - high)
        )
        has_tol = ~np.isnan(tol) & (tol != 0)
        ranged = np.where(
            dist <= 0,
            100.0,
            np.where(
                ~has_tol,
                0.0,
                np.where(
                    dist <= tol,
                    100.0 - 40.0 * dist / tol,
                    np.maximum(0.0, 60.0 - 60.0 * (dist - tol) / tol),
                ),
            ),
        )
        ranged = np.where(np.isnan(low) & np.isnan(high), np.nan, ranged)
    is_range = direction == 2
    score = np.where(is_range, ranged, ladder)
    score = np.where(np.isnan(a), np.nan, score)

    range_status = np.where(dist <= 0, GREEN, np.where(dist <= np.nan_to_num(tol), AMBER, RED))
    base_status = np.where(sa >= sb - 1e-12, AMBER, RED)
    no_base_status = np.where(np.nan_to_num(ladder, nan=0.0) >= 60.0, AMBER, RED)
    ladder_status = np.where(
        sa >= st - 1e-12, GREEN, np.where(np.isnan(sb), no_base_status, base_status)
    )
    ladder_status = np.where(np.isnan(t), GREY, ladder_status)
    status = np.where(is_range, range_status, ladder_status)
    empty = np.isnan(t) & np.isnan(low) & np.isnan(high)
    status = np.where(np.isnan(a) | empty, GREY, status)
    return score, status


def pandas_scorecard(f: Frames, root: int, months: list[date]) -> dict:
    """KPI nodes and scorecards under `root` for a run of months within one year."""
    units = subtree(f, root)
    first, last = np.datetime64(months[0], "us"), np.datetime64(months[-1], "us")
    year = months[0].year
    nodes = f.kpi_edges[f.kpi_edges["parent_unit"].isin(units)]
    n_unit = nodes["child_unit"].to_numpy()
    n_kpi = nodes["child_kpi"].to_numpy()
    n_key = n_unit * KEY + n_kpi
    d = nodes[["child_unit", "child_kpi"]].merge(f.deps, left_on="child_kpi", right_on="kpi_id")
    need = np.union1d(n_key, d["child_unit"].to_numpy() * KEY + d["dep_id"].to_numpy())

    a = unit_rows(f.actual, f.actual_unit, units)
    period = a["period"].to_numpy()
    a = a[(period >= first) & (period <= last)]
    a = a[np.isin(a["key"].to_numpy(), need)]
    g = a.groupby("key", sort=False).agg(
        total=("value", "sum"),
        mean=("value", "mean"),
        last=("value", "last"),  # rows are in period order within a pair
        last_month=("period", "max"),
    )
    code = f.agg[g.index.to_numpy() % KEY]
    stored = np.select(
        [code == 0, code == 1, code == 2], [g["total"], g["mean"], g["last"]], np.nan
    )
    values = pd.Series(stored, index=g.index)
    lm = g["last_month"]

    value = values.reindex(n_key).to_numpy(copy=True)
    last_month = lm.reindex(n_key).to_numpy(copy=True)
    n_agg = f.agg[n_kpi]
    ratio = n_agg == 3
    if ratio.any():
        nk = n_unit[ratio] * KEY + f.numerator[n_kpi[ratio]]
        dk = n_unit[ratio] * KEY + f.denominator[n_kpi[ratio]]
        num, den = values.reindex(nk).to_numpy(), values.reindex(dk).to_numpy()
        ok = ~np.isnan(num) & ~np.isnan(den) & (den != 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            value[ratio] = np.where(ok, num / den, np.nan)
        lm_r = np.maximum(lm.reindex(nk).to_numpy(), lm.reindex(dk).to_numpy())
        last_month[ratio] = np.where(ok, lm_r, np.datetime64("NaT"))
    for kpi_id in np.unique(n_kpi[n_agg == 4]):
        sel = n_kpi == kpi_id
        node = f.formulas[int(kpi_id)]
        comps = {}
        lms = []
        for c in formula.references(node):
            ck = n_unit[sel] * KEY + f.kpi_by_code[c]
            comps[c] = values.reindex(ck).to_numpy()
            lms.append(lm.reindex(ck).to_numpy())
        v = eval_formula(node, comps) * np.ones(sel.sum())
        value[sel] = v
        last_month[sel] = np.where(np.isnan(v), np.datetime64("NaT"), np.max(lms, axis=0))

    t = unit_rows(f.target, f.target_unit, units)
    t = t[(t["year"].to_numpy() == year) & (t["valid_from"].to_numpy() <= last)]
    t = t[np.isin(t["key"].to_numpy(), n_key)].drop_duplicates("key", keep="last")
    t = t.set_index("key").reindex(n_key)
    lv = {c: t[c].to_numpy(dtype=float) for c in LEVELS}
    # `sum` KPIs compare with the phased shares of the months up to the last month with data.
    month_idx = np.array([m.month for m in months])
    n_pace = np.searchsorted(np.array(months, dtype="datetime64[us]"), last_month, "right")
    n_pace = np.where(n_pace == 0, len(months), n_pace)
    prof = t["phasing"].map(f.profile_index).fillna(0).to_numpy(dtype=np.int64)
    share = f.cum_shares[prof, month_idx[n_pace - 1]] - f.cum_shares[prof, month_idx[0] - 1]
    factor = np.where(n_agg == 0, share, 1.0)
    for c in LEVELS:
        lv[c] = lv[c] * factor
    direction = f.direction[n_kpi]
    score, status = score_arrays(value, direction, lv)

    # Roll-up, deepest units first: Σ w·score / Σ w of scored children; a red veto child → 0.
    size = len(f.depth)
    parent = nodes["parent_unit"].to_numpy()
    w = nodes["weight"].to_numpy()
    scored = ~np.isnan(score)
    k_cov = np.bincount(parent, np.where(scored, w, 0.0), size)
    k_sum = np.bincount(parent, np.where(scored, w * np.nan_to_num(score), 0.0), size)
    k_veto = np.bincount(parent, (f.veto[n_kpi] & (status == RED)).astype(float), size) > 0
    ue = f.unit_edges[f.unit_edges["parent_unit"].isin(units)]
    ue_parent, ue_child = ue["parent_unit"].to_numpy(), ue["child_unit"].to_numpy()
    ue_w = ue["weight"].to_numpy()
    card = np.full(size, np.nan)
    for level in range(int(f.depth[units].max()), int(f.depth[root]) - 1, -1):
        at = units[f.depth[units] == level]
        rows = f.depth[ue_parent] == level
        cs = card[ue_child[rows]]
        ok = ~np.isnan(cs)
        cov = k_cov + np.bincount(ue_parent[rows], np.where(ok, ue_w[rows], 0.0), size)
        tot = k_sum + np.bincount(ue_parent[rows], np.where(ok, ue_w[rows] * cs, 0.0), size)
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.where(cov > 0, tot / cov, np.nan)
        card[at] = np.where(k_veto[at], 0.0, s[at])
    card_status = np.where(
        np.isnan(card),
        GREY,
        np.where(card >= 100 - 1e-9, GREEN, np.where(card >= 60 - 1e-9, AMBER, RED)),
    )
    card_status = np.where(k_veto, RED, card_status)
    return {
        "nodes": pd.DataFrame(
            {
                "unit_id": n_unit,
                "kpi_id": n_kpi,
                "actual": value,
                "target": lv["target"],
                "low": lv["low"],
                "score": score,
                "status": status,
            }
        ),
        "card": card,
        "card_status": card_status,
        "units": units,
    }


def pandas_trend(f: Frames, kpi_id: int, unit_id: int, months: list[date]) -> pd.DataFrame:
    first, last = np.datetime64(months[0], "us"), np.datetime64(months[-1], "us")
    a = unit_rows(f.actual, f.actual_unit, np.array([unit_id]))
    period = a["period"].to_numpy()
    a = a[(a["kpi_id"].to_numpy() == kpi_id) & (period >= first) & (period <= last)]
    out = pd.DataFrame({"period": np.array(months, dtype="datetime64[us]")})
    out["year"] = out["period"].dt.year
    out = out.merge(a[["period", "value"]], on="period", how="left")
    t = unit_rows(f.target, f.target_unit, np.array([unit_id]))
    t = t[(t["kpi_id"].to_numpy() == kpi_id) & (t["grain"] == "Y")]
    t = t[(t["year"] >= months[0].year) & (t["year"] <= months[-1].year)]
    # Per month, the latest version valid on or before it (rows come sorted by valid_from).
    m = out[["period", "year"]].merge(t, on="year")
    m = m[m["valid_from"] <= m["period"]].drop_duplicates("period", keep="last")
    out = out.merge(m[["period", "phasing", *LEVELS]], on="period", how="left")
    if f.agg[kpi_id] == 0:
        prof = out["phasing"].map(f.profile_index).fillna(0).to_numpy(dtype=np.int64)
        mi = out["period"].dt.month.to_numpy()
        share = f.cum_shares[prof, mi] - f.cum_shares[prof, mi - 1]
        for c in LEVELS:
            out[c] = out[c] * share
    return out


def engine_trend(wh, cat: Catalog, kpi_id: int, unit_id: int, months: list[date]) -> list:
    series = actuals.monthly(wh, cat, [(kpi_id, unit_id)], months)
    rows = targets.fetch(wh, [(kpi_id, unit_id)], {m.year for m in months})[(kpi_id, unit_id)]
    kpi = cat.kpis[kpi_id]
    return [
        (m, series[m].value(kpi_id, unit_id), targets.month_levels(rows, kpi, m, cat))
        for m in months
    ]


def timed(
    engine: Callable[[], object], pandas_fn: Callable[[], object], repeat: int
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """(median, min, max) ms of each side over `repeat` runs after a warm-up.

    The two sides take turns, so a burst of load from other work on the machine hits both.
    """
    engine()
    pandas_fn()
    gc.collect()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for fn, out in ((engine, times[0]), (pandas_fn, times[1])):
            t0 = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t0) * 1000)
    return tuple((statistics.median(t), min(t), max(t)) for t in times)


def sql_share(wh: Warehouse, fn: Callable[[], object], repeat: int) -> tuple[float, dict]:
    """Median total ms of `repeat` runs, and median ms per run in each table's queries."""
    spent: dict[str, list[float]] = {}

    def timed_query(orig):
        def run(sql, *args, **kwargs):
            table = sql.split("FROM ")[-1].split()[0]
            t0 = time.perf_counter()
            try:
                return orig(sql, *args, **kwargs)
            finally:
                spent.setdefault(table, []).append((time.perf_counter() - t0) * 1000)

        return run

    # Counts the engine's query calls (query and fetch) on this instance only.
    wh.rows, wh.arrays = timed_query(wh.rows), timed_query(wh.arrays)
    totals = []
    try:
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            totals.append((time.perf_counter() - t0) * 1000)
    finally:
        del wh.rows, wh.arrays
    per_query = {t: statistics.median(v) * len(v) / repeat for t, v in spent.items()}
    return statistics.median(totals), per_query


def close(a, b, rel=1e-6) -> bool:
    if a is None or (isinstance(a, float) and np.isnan(a)):
        return b is None or (isinstance(b, float) and np.isnan(b))
    if b is None or np.isnan(b):
        return False
    return abs(a - b) <= rel * max(1.0, abs(a), abs(b))


def check_scorecard(res: NodeResult, pd_res: dict, cat: Catalog, label: str) -> list[str]:
    """Every KPI node's actual, target and score and every scorecard's score must agree."""
    problems = []
    nodes = pd_res["nodes"].set_index(["unit_id", "kpi_id"])
    n_kpi = n_card = 0
    stack = [res]
    while stack:
        n = stack.pop()
        stack.extend(c for _, c in n.children)
        if n.is_scorecard:
            n_card += 1
            p = pd_res["card"][n.unit_id]
            ps = STATUS_NAME[pd_res["card_status"][n.unit_id]]
            if not close(n.score, float(p)) or n.status != ps:
                code = cat.units[n.unit_id].code
                problems.append(
                    f"{label} card {code}: engine {n.score} {n.status}, pandas {p} {ps}"
                )
            continue
        n_kpi += 1
        name = f"{cat.kpis[n.kpi_id].code}@{cat.units[n.unit_id].code}"
        row = nodes.loc[(n.unit_id, n.kpi_id)]
        lv = n.levels
        t = None if lv is None else (lv.low if lv.target is None else lv.target)
        pt = row["low"] if np.isnan(row["target"]) else row["target"]
        for what, e, p in (
            ("actual", n.actual, row["actual"]),
            ("target", t, pt),
            ("score", n.score, row["score"]),
        ):
            if not close(e, float(p)):
                problems.append(f"{label} {name} {what}: engine {e}, pandas {p}")
        if n.status != STATUS_NAME[int(row["status"])]:
            ps = STATUS_NAME[int(row["status"])]
            problems.append(f"{label} {name} status: engine {n.status}, pandas {ps}")
    if n_kpi != len(nodes):
        problems.append(f"{label}: engine has {n_kpi} KPI nodes, pandas {len(nodes)}")
    vetoed = sum(1 for _ in _vetoed(res))
    print(f"  {label}: compared {n_kpi} KPI nodes and {n_card} scorecards ({vetoed} vetoed)")
    return problems


def _vetoed(res: NodeResult):
    stack = [res]
    while stack:
        n = stack.pop()
        stack.extend(c for _, c in n.children)
        if n.vetoed_by:
            yield n


def check_trend(eng: list, pdt: pd.DataFrame) -> list[str]:
    problems = []
    for (m, v, lv), row in zip(eng, pdt.itertuples(), strict=True):
        t = None if lv is None else lv.target if lv.target is not None else lv.low
        pt = row.target if not np.isnan(row.target) else row.low
        if not close(v, float(row.value)) or not close(t, float(pt)):
            problems.append(f"(iii) {m}: engine {v} / {t}, pandas {row.value} / {pt}")
    print(f"  (iii): compared {len(eng)} months (value and target level)")
    return problems


def main() -> None:
    args = parse_args()
    if not Path(args.path).exists():
        raise SystemExit(f"{args.path} does not exist — run bench/make_warehouse.py first")
    wh = Warehouse(args.path, linger=0)
    t0 = time.perf_counter()
    cat = load_catalog(wh)
    t_cat = time.perf_counter() - t0
    with wh.hold():
        t0 = time.perf_counter()
        f = load_frames(wh)
        t_frames = time.perf_counter() - t0
        latest = wh.one("SELECT max(period) FROM actual")[0]
    print(
        f"{args.path}: {len(f.actual):,} actuals, {len(f.target):,} targets, {len(cat.units)} units,"
        f" {len(cat.kpis)} KPIs, {len(cat.edges):,} tree edges"
    )
    print(f"catalog loaded in {t_cat * 1000:.0f} ms; pandas frames preloaded in {t_frames:.1f} s")

    # (i): the leaf unit whose scorecard is closest to 25 KPIs, preferring one with derived KPIs.
    month = Period("M", latest)
    leaves = [u for u in cat.units if not cat.children_of.get(u)]

    def fit(u: int) -> tuple:
        ks = cat.scorecard_kpis(u, month.end)
        derived = sum(cat.kpis[k].aggregation in ("ratio", "formula") for k in ks)
        return (abs(len(ks) - 25), -min(derived, 2), u)

    leaf = min(leaves, key=fit)
    root = cat.roots()[0]
    year = Period("Y", date(latest.year, 1, 1))
    trend_months = [add_months(latest, -i) for i in range(35, -1, -1)]
    leaf_kpis = cat.scorecard_kpis(leaf, month.end)
    # A `sum` KPI with a seasonal target profile, so the trend's monthly targets are phased.
    t = f.target
    seasonal = set(t.loc[(t["unit_id"] == leaf) & (t["phasing"] != "even"), "kpi_id"])
    sums = [k for k in leaf_kpis if cat.kpis[k].aggregation == "sum"]
    trend_kpi = next((k for k in sums if k in seasonal), sums[0] if sums else leaf_kpis[0])
    n_nodes = sum(len(cat.scorecard_kpis(u, year.end)) for u in cat.units)
    cases = {
        "i": (
            f"(i) scorecard {cat.units[leaf].code}, {month} ({len(leaf_kpis)} KPIs)",
            lambda: scorecard.evaluate(wh, cat, Scope.all(), [leaf], month),
            lambda: pandas_scorecard(f, leaf, month.months),
        ),
        "ii": (
            f"(ii) roll-up {cat.units[root].code}, {year} ({n_nodes:,} KPIs)",
            lambda: scorecard.evaluate(wh, cat, Scope.all(), [root], year),
            lambda: pandas_scorecard(f, root, year.months),
        ),
        "iii": (
            f"(iii) trend {cat.kpis[trend_kpi].code}@{cat.units[leaf].code}, 36 months",
            lambda: engine_trend(wh, cat, trend_kpi, leaf, trend_months),
            lambda: pandas_trend(f, trend_kpi, leaf, trend_months),
        ),
    }

    with wh.hold():
        print("checks (engine vs pandas, before timing):")
        problems = check_scorecard(cases["i"][1]()[leaf], cases["i"][2](), cat, "(i)")
        problems += check_scorecard(cases["ii"][1]()[root], cases["ii"][2](), cat, "(ii)")
        problems += check_trend(cases["iii"][1](), cases["iii"][2]())
        # Every month of the year at the top too: other phasing shares, and months with a veto.
        for m in year.months:
            res = scorecard.evaluate(wh, cat, Scope.all(), [root], Period("M", m))[root]
            problems += check_scorecard(res, pandas_scorecard(f, root, [m]), cat, f"({m:%Y-%m})")
        if problems:
            print(f"check: {len(problems)} differences")
            for p in problems[:20]:
                print("  " + p)
        else:
            print("check: ok")

        results = {}
        for key, (_label, engine, pandas_fn) in cases.items():
            results[key] = timed(engine, pandas_fn, args.repeat)
        shares = {key: sql_share(wh, c[1], args.repeat) for key, c in cases.items()}

    load = os.getloadavg()[0]
    print(
        f"\nmedian of {args.repeat} runs after a warm-up, connection held open; "
        f"{os.cpu_count()} cores, load average {load:.2f}"
    )
    header = f"{'case':<48} {'engine ms':>10} {'pandas ms':>10} {'ratio':>7}  {'goal':<22} result"
    print(header)
    print("-" * len(header))
    for key, (label, _e, _p) in cases.items():
        (e_med, _e_min, _e_max), (p_med, _p_min, _p_max) = results[key]
        limit, factor = GOALS[key]
        ratio = p_med / e_med
        misses = []
        if e_med >= limit:
            misses.append("time")
        if ratio < factor:
            misses.append("ratio")
        verdict = "PASS" if not misses else "MISS (" + ", ".join(misses) + ")"
        goal = f"< {limit:.0f} ms, ≥ {factor:.0f}× pandas"
        print(f"{label:<48} {e_med:>10.1f} {p_med:>10.1f} {ratio:>6.1f}×  {goal:<22} {verdict}")
    print(
        "\nspread (min–max ms), and the engine's time split into its queries and Python"
        " (a scorecard's target query runs beside its actuals, so those parts overlap):"
    )
    for key, (label, _e, _p) in cases.items():
        (_m, e_min, e_max), (_pm, p_min, p_max) = results[key]
        total, per_query = shares[key]
        sql = " + ".join(f"{t} {ms:.1f}" for t, ms in per_query.items())
        python = total - sum(per_query.values())
        print(
            f"  {label.split(' ')[0]:<5} engine {e_min:.1f}–{e_max:.1f},"
            f" pandas {p_min:.1f}–{p_max:.1f}; engine {total:.1f} = SQL ({sql})"
            f" + Python {python:.1f}"
        )
    wh.close()
    if problems:
        raise SystemExit("engine and pandas disagree (see the check above)")


if __name__ == "__main__":
    main()
