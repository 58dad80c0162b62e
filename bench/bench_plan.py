"""Time saving an edit of 500 target cells and re-scoring the units it touches.

    python bench/bench_plan.py [--path bench/large.duckdb] [--cells 500] [--repeat 7]

On a copy of the large bench warehouse (bench/make_warehouse.py: 200 units, 500 KPIs, 500,000
annual targets, 5.6 M actuals). The edit is what a head does on the Targets & weights page: the
baseline, target and challenge of yearly rows spread over the whole company, typed as text
(2% lower each, so the levels stay in order and inside each KPI's range).

Timed, per run (median of --repeat, after one warm-up):
- **grid save** — `planning.target_edits` (what changed, typed text read as numbers),
  `planning.save_targets` (every check of `system_import`, the edit's own rules, the conflict
  check and the write of the new versions and their audit rows, in one transaction), then
  `scorecard.evaluate` of every touched unit for the latest month: the board it shows next;
- **workbook import** (the baseline, in the same run) — the same rows saved through the
  KPI-system workbook path (`system_import.import_system` of a `targets` sheet, as the KPI
  library page and `python -m kpi_core import` do), then the same re-scoring.

Goal: grid save under 1 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere
from kpi_core import access, memo, planning, scorecard, workbook
from kpi_core.catalog import load_catalog
from kpi_core.periods import Period
from kpi_core.system_import import import_system
from kpi_core.warehouse import Warehouse

# The engine is timed, not the page caches (kpi_core/memo.py).
memo.ENABLED = False

GOAL_S = 1.0


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--path", default="bench/large.duckdb")
    p.add_argument("--cells", type=int, default=500)
    p.add_argument("--repeat", type=int, default=7)
    return p.parse_args()


def edited_grid(wh: Warehouse, cells: int, year: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The company's yearly targets grid as read, and as edited: `cells` level cells changed on
    rows spread evenly over it."""
    cat = load_catalog(wh)
    root = cat.roots()[0]
    base = planning.target_grid(wh, cat, access.SYSTEM, root, year, "Y", "en", date(year, 12, 1))
    usable = base[(base["direction"] != "range") & (base["version"] > 0)]
    n_rows = -(-cells // 3)
    rows = usable.index[:: max(1, len(usable) // n_rows)][:n_rows]
    edited = base.copy()
    left = cells
    for i in rows:
        kpi = cat.kpis[int(base.at[i, "kpi_id"])]
        for f in ("baseline", "target", "challenge")[: min(3, left)]:
            value = planning._parse_level(base.at[i, f])
            edited.at[i, f] = planning.level_text(value * 0.98, kpi)
            left -= 1
    return base, edited


def grid_save(wh: Warehouse, base: pd.DataFrame, edited: pd.DataFrame, month: date) -> int:
    cat = load_catalog(wh)
    edits, problems = planning.target_edits(wh, cat, base, edited)
    assert not problems, problems[:3]
    saved = planning.save_targets(wh, cat, access.SYSTEM, edits, reason="bench", effective=month)
    scorecard.evaluate(wh, cat, access.SYSTEM.scope, sorted(saved.unit_ids), Period("M", month))
    return saved.cells


def workbook_save(wh: Warehouse, base: pd.DataFrame, edited: pd.DataFrame, month: date) -> int:
    changed = edited[(edited[["baseline", "target", "challenge"]] != base[["baseline", "target",
                                                                            "challenge"]]).any(axis=1)]  # fmt: skip
    sheet = pd.DataFrame(
        {
            "unit": changed["code"].str.split("/").str[0],
            "kpi": changed["code"].str.split("/").str[1],
            "period": changed["period"],
            **{
                f: changed[f].map(planning._parse_level)
                for f in ("baseline", "target", "challenge")
            },
            "phasing": changed["phasing"].replace("", None),
            "valid_from": month,
        }
    )
    data = workbook.to_bytes({"targets": sheet})
    start = time.perf_counter()
    import_system(wh, data, by="bench", scope=access.SYSTEM.scope, source_name="bench.xlsx")
    cat = load_catalog(wh)
    units = sorted({cat.unit(c).id for c in sheet["unit"]})
    scorecard.evaluate(wh, cat, access.SYSTEM.scope, units, Period("M", month))
    return time.perf_counter() - start


def main() -> None:
    args = parse_args()
    src = Path(args.path)
    if not src.exists():
        sys.exit(f"{src} is missing: run python bench/make_warehouse.py first")
    tmp = Path(tempfile.mkdtemp(prefix="bench_plan_"))
    try:
        path = tmp / "large.duckdb"
        shutil.copy(src, path)
        wh = Warehouse(path, linger=0)
        latest = wh.one("SELECT max(period) FROM actual")[0]
        year = latest.year
        grid_times, book_times, load_times = [], [], []
        cells = 0
        for run in range(args.repeat + 1):
            t0 = time.perf_counter()
            base, edited = edited_grid(wh, args.cells, year)
            load_times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            cells = grid_save(wh, base, edited, latest)
            elapsed = time.perf_counter() - t0
            base, edited = edited_grid(wh, args.cells, year)
            book = workbook_save(wh, base, edited, latest)
            if run:  # the first run warms caches up
                grid_times.append(elapsed)
                book_times.append(book)
        wh.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    g, b = statistics.median(grid_times), statistics.median(book_times)
    load = os.getloadavg()
    print(f"{cells} cells on {path.name} ({year}), median of {args.repeat}; "
          f"{os.cpu_count()} cores, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")  # fmt: skip
    print(f"  grid save + re-score   {g * 1000:8.0f} ms   goal < {GOAL_S * 1000:.0f} ms: "
          f"{'PASS' if g < GOAL_S else 'MISS'}")  # fmt: skip
    print(f"  workbook import + same {b * 1000:8.0f} ms   (baseline; grid is {b / g:.1f}x faster)")
    print(
        f"  (reading the company grid, not timed above: {statistics.median(load_times) * 1000:.0f} ms)"
    )


if __name__ == "__main__":
    main()
