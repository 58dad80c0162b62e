"""Generate a large KPI warehouse for benchmarking the engine (not part of the test suite).

    python bench/make_warehouse.py [--path bench/large.duckdb] [--kpis 500] [--units 200]
                                   [--months 60] [--first-year 2021] [--seed 7]

Everything is generated with numpy (vectorised, seeded, so the same arguments give the same file)
and inserted in bulk from registered DataFrames inside one `wh.transaction()`; no Python loop ever
runs over actuals or targets, only over units (to pick each scorecard's KPIs) and formula KPIs.

What the file holds (defaults):
- 500 KPIs: about 45 % sum, 32 % avg, 23 % last of the stored ones, plus `ratio` KPIs (numerator
  and denominator are `sum` KPIs) and a few `formula` KPIs over `avg` rate KPIs (`K0012 * K0340`);
  directions up / down / range; four `down` KPIs are vetoes;
- 200 org units in 4 levels: 1 company, 8 departments, 40 teams, 151 positions;
- monthly actuals of every stored (sum/avg/last) KPI for every unit for every month (ratio and
  formula KPIs are computed from them, as in real use): 470 × 200 × 60 = 5.64 M rows;
- one annual target (grain 'Y', valid_from = 1 January, version 1) per KPI, unit and year;
- the KPI tree: every unit's scorecard has 22–29 KPI nodes of its own (weights summing to 100) and,
  for units with child units, the child units' scorecards (weights summing to 100 as well).

Physical order of `actual`: rows are inserted sorted by (unit_id, kpi_id, period), and DuckDB keeps
insertion order. It keeps min/max per row group (122,880 rows), so one unit's 28,200 actuals sit in
one or two of the ~55 row groups, and a query for one unit (a scorecard or a trend, the common pages)
can skip the other row groups by their unit_id range. A whole-company roll-up reads every unit
anyway and loses nothing; a (period, ...) order would favour whole-company queries for one month
and spread every unit's trend over all row groups.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere
from kpi_core import actuals, formula
from kpi_core.warehouse import Warehouse

EPOCH = date(1900, 1, 1)
SEASONAL = np.array([6, 6, 8, 8, 8, 9, 8, 8, 9, 9, 10, 11], dtype=float)
SEASONAL /= SEASONAL.sum()
FORMULAS = ("{a} * {b}", "{a} * {b} * {c}", "({a} + {b}) / 2", "{a} * 100")
LEVEL_COLUMNS = ("baseline", "target", "challenge", "low", "high", "tolerance")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--path", default="bench/large.duckdb")
    p.add_argument("--kpis", type=int, default=500)
    p.add_argument("--units", type=int, default=200)
    p.add_argument("--months", type=int, default=60)
    p.add_argument("--first-year", type=int, default=2021)
    p.add_argument("--seed", type=int, default=7)
    return p.parse_args()


def make_units(n: int) -> pd.DataFrame:
    """1 company, n/25 departments, n/5 teams, positions for the rest; ids 1..n, parents first."""
    n_dept = max(1, n // 25)
    n_team = max(1, n // 5)
    n_pos = n - 1 - n_dept - n_team
    if n_pos < 1:
        raise SystemExit("--units must be at least 8")
    ids = np.arange(1, n + 1)
    dept_ids = np.arange(2, 2 + n_dept)
    team_ids = np.arange(2 + n_dept, 2 + n_dept + n_team)
    pos_ids = np.arange(2 + n_dept + n_team, n + 1)
    parent = np.zeros(n + 1, dtype=np.int64)  # index = unit id; 0 = none
    parent[dept_ids] = 1
    parent[team_ids] = dept_ids[np.arange(n_team) % n_dept]
    parent[pos_ids] = team_ids[np.arange(n_pos) % n_team]
    kind = np.empty(n + 1, dtype=object)
    kind[1], kind[dept_ids], kind[team_ids], kind[pos_ids] = (
        "company",
        "department",
        "team",
        "position",
    )
    code = np.empty(n + 1, dtype=object)
    code[1] = "CO"
    code[dept_ids] = [f"D{i:02d}" for i in range(1, n_dept + 1)]
    code[team_ids] = [f"T{i:03d}" for i in range(1, n_team + 1)]
    code[pos_ids] = [f"P{i:04d}" for i in range(1, n_pos + 1)]
    zh = {"company": "公司", "department": "部门", "team": "团队", "position": "岗位"}
    return pd.DataFrame(
        {
            "id": ids.astype(np.int32),
            "code": code[ids],
            "name_zh": [f"{zh[k]} {c}" for k, c in zip(kind[ids], code[ids], strict=True)],
            "name_en": [f"{k.title()} {c}" for k, c in zip(kind[ids], code[ids], strict=True)],
            "parent_id": pd.array([int(p) or None for p in parent[ids]], dtype="Int32"),
            "kind": kind[ids],
            "sort_order": ids.astype(np.int32),
        }
    )


def unit_level(units: pd.DataFrame) -> np.ndarray:
    """Index = unit id: 0 company, 1 department, 2 team, 3 position."""
    lv = np.zeros(len(units) + 1, dtype=np.int64)
    lv[units["id"].to_numpy()] = (
        units["kind"].map({"company": 0, "department": 1, "team": 2, "position": 3}).to_numpy()
    )
    return lv


def make_kpis(n: int, rng: np.random.Generator) -> pd.DataFrame:
    n_formula = max(1, n // 50)
    n_ratio = max(1, n // 25)
    n_stored = n - n_formula - n_ratio
    n_sum = round(n_stored * 0.45)
    n_avg = round(n_stored * 0.32)
    n_last = n_stored - n_sum - n_avg
    agg = np.array(
        ["sum"] * n_sum + ["avg"] * n_avg + ["last"] * n_last + ["ratio"] * n_ratio
        + ["formula"] * n_formula,
        dtype=object,
    )  # fmt: skip
    agg = agg[rng.permutation(n)]  # interleave the kinds over the ids
    ids = np.arange(1, n + 1)
    codes = np.array([f"K{i:04d}" for i in ids], dtype=object)
    u = rng.random(n)
    direction = np.where(
        agg == "sum",
        np.where(u < 0.75, "up", "down"),
        np.where(
            np.isin(agg, ["avg", "last"]),
            np.where(u < 0.55, "up", np.where(u < 0.78, "down", "range")),
            np.where((agg == "ratio") & (u >= 0.7), "down", "up"),
        ),
    ).astype(object)
    # "rate" KPIs: avg KPIs with values in (0.6, 0.95) — what formulas multiply (OEE-like).
    is_rate = (agg == "avg") & (direction == "up") & (rng.random(n) < 0.6)
    veto = np.zeros(n, dtype=bool)
    veto[rng.choice(np.flatnonzero((agg == "sum") & (direction == "down")), 4, replace=False)] = (
        True
    )
    phasing = np.where(agg == "sum", np.where(rng.random(n) < 0.33, "seasonal", "even"), None)

    numerator = np.full(n, None, dtype=object)
    denominator = np.full(n, None, dtype=object)
    sums = np.flatnonzero((agg == "sum") & (direction == "up"))
    for i in np.flatnonzero(agg == "ratio"):
        a, b = rng.choice(sums, 2, replace=False)
        numerator[i], denominator[i] = codes[a], codes[b]
    text = np.full(n, None, dtype=object)
    rates = np.flatnonzero(is_rate)
    for j, i in enumerate(np.flatnonzero(agg == "formula")):
        a, b, c = codes[rng.choice(rates, 3, replace=False)]
        text[i] = FORMULAS[j % len(FORMULAS)].format(a=a, b=b, c=c)

    perspective = np.array(["financial", "customer", "process", "learning"], dtype=object)
    unit_label = np.where(
        is_rate, "%", np.where(agg == "sum", "元", np.where(agg == "last", "人", "分"))
    )
    decimals = np.where(is_rate, 4, np.where(agg == "last", 0, 2)).astype(np.int32)
    return pd.DataFrame(
        {
            "id": ids.astype(np.int32),
            "code": codes,
            "name_zh": [f"指标 {c}" for c in codes],
            "name_en": [f"KPI {c}" for c in codes],
            "unit": unit_label,
            "direction": direction,
            "aggregation": agg,
            "numerator": numerator,
            "denominator": denominator,
            "formula": text,
            "perspective": perspective[ids % 4],
            "kind": np.where(ids % 3 == 0, "process", "result"),
            "veto": veto,
            "decimals": decimals,
            "is_rate": is_rate,
            "phasing": phasing,
        }
    )


def make_actuals(
    kpis: pd.DataFrame, level: np.ndarray, n_units: int, n_months: int, first_year: int, rng
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Monthly actuals of every stored KPI for every unit, ordered by (unit, kpi, period).

    Also returns the per-KPI and per-pair parameters the targets are derived from.
    """
    n_kpi = len(kpis)
    agg = kpis["aggregation"].to_numpy()
    is_rate = kpis["is_rate"].to_numpy()
    # Per KPI (index = kpi id - 1): scale, growth per year, monthly noise, seasonality.
    scale = 10 ** rng.uniform(1, 6, n_kpi)
    scale[agg == "avg"] = rng.uniform(50, 100, (agg == "avg").sum())
    growth = rng.uniform(-0.02, 0.08, n_kpi)
    growth[is_rate] = rng.uniform(-0.01, 0.02, is_rate.sum())
    noise = rng.uniform(0.03, 0.15, n_kpi)
    noise[is_rate] = rng.uniform(0.01, 0.04, is_rate.sum())
    season = np.ones((n_kpi, 12))
    season[(kpis["phasing"] == "seasonal").to_numpy()] = SEASONAL * 12
    # Per (unit, kpi): bigger units have bigger sums and headcounts; rates stay rates.
    unit_factor = np.array([20.0, 5.0, 2.0, 1.0])[level[1:]]  # (units,)
    mu = scale[None, :] * rng.lognormal(0.0, 0.4, (n_units, n_kpi))
    big = np.isin(agg, ["sum", "last"])
    mu[:, big] *= unit_factor[:, None]
    mu[:, is_rate] = rng.uniform(0.6, 0.95, (n_units, is_rate.sum()))

    stored = np.flatnonzero(np.isin(agg, ["sum", "avg", "last"]))  # kpi index, ascending id
    n_stored = len(stored)
    n_rows = n_units * n_stored * n_months
    unit_idx = np.repeat(np.arange(n_units, dtype=np.int32), n_stored * n_months)
    kpi_idx = np.tile(np.repeat(stored.astype(np.int32), n_months), n_units)
    t = np.tile(np.arange(n_months, dtype=np.int32), n_units * n_stored)
    value = (
        mu[unit_idx, kpi_idx]
        * (1.0 + growth[kpi_idx] * t / 12.0)
        * season[kpi_idx, t % 12]
        * (1.0 + noise[kpi_idx] * rng.standard_normal(n_rows))
    )
    np.maximum(value, 0.0, out=value)
    dec = 10.0 ** kpis["decimals"].to_numpy()[kpi_idx]
    value = np.round(value * dec) / dec
    start = np.datetime64(f"{first_year}-01", "M")
    frame = pd.DataFrame(
        {
            "kpi_id": kpi_idx + 1,
            "unit_id": unit_idx + 1,
            "period": (start + t).astype("datetime64[D]"),
            "value": value,
        }
    )
    return frame, {"mu": mu, "growth": growth}


def expected(kpis: pd.DataFrame, params: dict, n_years: int) -> np.ndarray:
    """Expected value of each KPI, unit and year by the KPI's own rule: shape (kpi, unit, year)."""
    mu, growth = params["mu"], params["growth"]  # (unit, kpi), (kpi,)
    agg = kpis["aggregation"].to_numpy()
    years = np.arange(n_years)
    mid = 1.0 + growth[:, None] * (12 * years[None, :] + 5.5) / 12  # mean of the year's months
    dec = 1.0 + growth[:, None] * (12 * years[None, :] + 11) / 12  # December
    base = mu.T[:, :, None]  # (kpi, unit, 1)
    e = np.where(
        (agg == "sum")[:, None, None],
        12 * base * mid[:, None, :],
        np.where((agg == "last")[:, None, None], base * dec[:, None, :], base * mid[:, None, :]),
    )
    by_code = dict(zip(kpis["code"], range(len(kpis)), strict=True))
    for i in np.flatnonzero(agg == "ratio"):
        row = kpis.iloc[i]
        e[i] = e[by_code[row["numerator"]]] / e[by_code[row["denominator"]]]
    for i in np.flatnonzero(agg == "formula"):
        parsed = formula.parse(kpis.iloc[i]["formula"])
        refs = {c: e[by_code[c]].ravel() for c in formula.references(parsed)}
        e[i] = formula.evaluate_arrays(parsed, refs, e[i].size).reshape(e[i].shape)
    return e


def make_targets(
    kpis: pd.DataFrame, params: dict, n_units: int, n_years: int, first_year: int, rng
) -> pd.DataFrame:
    """One annual target per KPI, unit and year, ordered by (unit, kpi, year)."""
    n_kpi = len(kpis)
    e = expected(kpis, params, n_years)  # (kpi, unit, year)
    e = e.transpose(1, 0, 2).reshape(-1)  # unit-major
    kpi_idx = np.tile(np.repeat(np.arange(n_kpi), n_years), n_units)
    unit_idx = np.repeat(np.arange(n_units), n_kpi * n_years)
    year = np.tile(np.arange(n_years), n_units * n_kpi) + first_year
    direction = kpis["direction"].to_numpy()[kpi_idx]
    veto = kpis["veto"].to_numpy()[kpi_idx]
    spread = rng.uniform(0.05, 0.15, n_kpi)[kpi_idx]  # baseline/challenge distance per KPI
    ambition = rng.uniform(0.93, 1.07, len(e))  # so some pairs beat their target, some miss
    target = e * ambition
    up, is_range = direction == "up", direction == "range"
    baseline = np.where(up, target * (1 - spread), target * (1 + spread))
    challenge = np.where(up, target * (1 + spread), target * (1 - spread))
    # Veto KPIs (incidents): a few units go red in a month and their scorecard drops to 0.
    target = np.where(veto, e * 1.05, target)
    baseline = np.where(veto, e * 1.15, baseline)
    challenge = np.where(veto, e * 0.9, challenge)
    nan = np.full(len(e), np.nan)
    frame = pd.DataFrame(
        {
            "kpi_id": (kpi_idx + 1).astype(np.int32),
            "unit_id": (unit_idx + 1).astype(np.int32),
            "year": year.astype(np.int32),
            "baseline": np.where(is_range, nan, baseline),
            "target": np.where(is_range, nan, target),
            "challenge": np.where(is_range, nan, challenge),
            "low": np.where(is_range, target * (1 - spread), nan),
            "high": np.where(is_range, target * (1 + spread), nan),
            "tolerance": np.where(is_range, e * spread, nan),
            "phasing": kpis["phasing"].to_numpy()[kpi_idx],
        }
    )
    return frame


def int_weights(n: int, rng: np.random.Generator) -> np.ndarray:
    """n positive integer weights summing to 100 (largest remainder)."""
    raw = rng.integers(1, 11, n).astype(float)
    share = raw / raw.sum() * 100
    w = np.floor(share)
    w[np.argsort(share - w)[::-1][: int(100 - w.sum())]] += 1
    if (w == 0).any():  # more than 100 children would need fractions; keep every child weighted
        return share
    return w


def make_tree(units: pd.DataFrame, n_kpi: int, rng: np.random.Generator) -> pd.DataFrame:
    parts = []
    parent = units.set_index("id")["parent_id"]
    for uid in units["id"]:
        n = int(rng.integers(22, 30))
        kp = np.sort(rng.choice(np.arange(1, n_kpi + 1), min(n, n_kpi), replace=False))
        parts.append(
            pd.DataFrame(
                {
                    "parent_unit": uid,
                    "parent_kpi": 0,
                    "child_unit": uid,
                    "child_kpi": kp,
                    "weight": int_weights(len(kp), rng),
                    "sort_order": np.arange(len(kp)),
                }
            )
        )
        kids = parent.index[(parent == uid).fillna(False).to_numpy()].to_numpy()
        if len(kids):
            parts.append(
                pd.DataFrame(
                    {
                        "parent_unit": uid,
                        "parent_kpi": 0,
                        "child_unit": kids,
                        "child_kpi": 0,
                        "weight": int_weights(len(kids), rng),
                        "sort_order": 1000 + np.arange(len(kids)),
                    }
                )
            )
    tree = pd.concat(parts, ignore_index=True)
    for c in ("parent_unit", "parent_kpi", "child_unit", "child_kpi", "sort_order"):
        tree[c] = tree[c].astype(np.int32)
    return tree


def main() -> None:
    args = parse_args()
    t0 = time.perf_counter()
    path = Path(args.path)
    for p in (path, path.with_name(path.name + ".wal")):
        if p.exists():
            p.unlink()
    rng = np.random.default_rng(args.seed)
    n_years = -(-args.months // 12)

    units = make_units(args.units)
    level = unit_level(units)
    kpis = make_kpis(args.kpis, rng)
    actual, params = make_actuals(kpis, level, args.units, args.months, args.first_year, rng)
    target = make_targets(kpis, params, args.units, n_years, args.first_year, rng)
    tree = make_tree(units, args.kpis, rng)
    t_gen = time.perf_counter() - t0

    kpi_rows = kpis.drop(columns=["is_rate", "phasing"])
    now = datetime.now().replace(microsecond=0)
    wh = Warehouse(path, linger=0)
    with wh.transaction() as cur:
        for name, frame in (
            ("gen_unit", units),
            ("gen_kpi", kpi_rows),
            ("gen_actual", actual),
            ("gen_target", target),
            ("gen_tree", tree),
        ):
            cur.register(name, frame)
        cur.execute(
            "INSERT INTO phasing_profile VALUES ('even', ?), ('seasonal', ?)",
            [[1 / 12] * 12, SEASONAL.tolist()],
        )
        cur.execute(
            """INSERT INTO org_unit (id, code, name_zh, name_en, parent_id, kind, sort_order)
               SELECT id, code, name_zh, name_en, parent_id, kind, sort_order FROM gen_unit"""
        )
        cur.execute(
            """INSERT INTO kpi (id, code, name_zh, name_en, unit, direction, aggregation,
                                numerator, denominator, formula, perspective, kind, veto, decimals,
                                owner, source)
               SELECT id, code, name_zh, name_en, unit, direction, aggregation, numerator,
                      denominator, formula, perspective, kind, veto, decimals, 'bench', 'generated'
               FROM gen_kpi"""
        )
        cur.execute(
            "INSERT INTO batch (id, kind, source_name, created_by, created_at, rows, status)"
            " VALUES (1, 'actuals', 'bench/make_warehouse.py', 'bench', ?, ?, 'committed')",
            [now, len(actual)],
        )
        # The frame is already in (unit_id, kpi_id, period) order and DuckDB preserves
        # insertion order, so no ORDER BY (a 5.6M-row sort) is needed.
        cur.execute(
            "INSERT INTO actual SELECT kpi_id, unit_id, period::DATE, value, 1 FROM gen_actual"
        )
        cur.execute(
            """INSERT INTO target (kpi_id, unit_id, grain, period_start, baseline, target,
                                   challenge, low, high, tolerance, phasing, valid_from, version,
                                   changed_by, changed_at)
               SELECT kpi_id, unit_id, 'Y', make_date(year, 1, 1), baseline, target, challenge,
                      low, high, tolerance, phasing, make_date(year, 1, 1), 1, 'bench', ?
               FROM gen_target
               -- Targets are read a year at a time: keep each year's rows together.
               ORDER BY year, unit_id, kpi_id""",
            [now],
        )
        # The yearly summary is kept with the actuals, as every import keeps it.
        actuals.refresh_summary(cur)
        cur.execute(
            """INSERT INTO tree_edge (parent_unit, parent_kpi, child_unit, child_kpi, weight,
                                      valid_from, sort_order, changed_by, changed_at)
               SELECT parent_unit, parent_kpi, child_unit, child_kpi, weight, ?, sort_order,
                      'bench', ? FROM gen_tree""",
            [EPOCH, now],
        )
        # Move the id sequences past the generated ids, so a later import can add more.
        for seq, n in (("org_unit_id", args.units), ("kpi_id", args.kpis), ("batch_id", 1)):
            cur.execute("SELECT max(nextval(?)) FROM range(?)", [seq, n]).fetchall()
        names = ("org_unit", "kpi", "tree_edge", "target", "actual", "phasing_profile")
        counts = dict(
            zip(
                names,
                cur.execute(
                    """SELECT (SELECT count(*) FROM org_unit), (SELECT count(*) FROM kpi),
                              (SELECT count(*) FROM tree_edge), (SELECT count(*) FROM target),
                              (SELECT count(*) FROM actual),
                              (SELECT count(*) FROM phasing_profile)"""
                ).fetchall()[0],
                strict=True,
            )
        )
        for name in ("gen_unit", "gen_kpi", "gen_actual", "gen_target", "gen_tree"):
            cur.unregister(name)
    with wh.hold() as con:
        con.execute("CHECKPOINT")
        groups = con.execute(
            "SELECT count(DISTINCT row_group_id) FROM pragma_storage_info('actual')"
        ).fetchall()[0]
    wh.close()
    elapsed = time.perf_counter() - t0

    aggs = kpis["aggregation"].value_counts().to_dict()
    dirs = kpis["direction"].value_counts().to_dict()
    kinds = units["kind"].value_counts().to_dict()
    print(f"warehouse: {path}")
    print(f"KPIs by aggregation: {aggs}; by direction: {dirs}; veto: {int(kpis['veto'].sum())}")
    print(f"units by kind: {kinds}")
    for t, n in counts.items():
        print(f"  {t:<16} {n:>10,} rows")
    print(f"actual: {groups[0]} row groups, inserted ordered by (unit_id, kpi_id, period)")
    size = path.stat().st_size
    print(f"file size: {size / 1e6:.1f} MB ({size:,} bytes)")
    print(
        f"generated in {elapsed:.1f} s: {t_gen:.1f} s in numpy,"
        f" {elapsed - t_gen:.1f} s inserting and checkpointing"
    )


if __name__ == "__main__":
    main()
