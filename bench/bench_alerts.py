"""Time the alert rules on the large bench warehouse against the scorecard evaluation they build on.

    python bench/bench_alerts.py [--path bench/large.duckdb] [--repeat 7]

Cases (median of --repeat runs after one warm-up, the connection held open as the command line
holds it):
  evaluate    `alerts.evaluate` for the latest month, whole company: status of every KPI node,
              at-risk forecasts (run-rate and trend), anomalies against the same month of
              earlier years, stale data, overdue actions — nothing written;
  baseline    `scorecard.evaluate` of every unit with a scorecard for the same month: the one
              engine call `evaluate` starts from, so evaluate ÷ baseline is what the rules cost
              on top of scoring;
  raise       on a copy of the file: `alerts.run` the first time (every alert new, inserted in
              one transaction) and again (nothing new: the dedupe path cron takes every day).

Goal: `evaluate` under 2 s (issue 6). `raise` is reported, not judged.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere
from kpi_core import alerts, memo, scorecard
from kpi_core.access import SYSTEM
from kpi_core.actuals import data_range
from kpi_core.catalog import SCORECARD, load_catalog
from kpi_core.periods import Period, add_months
from kpi_core.warehouse import Warehouse

# The engine is timed, not the page caches (kpi_core/memo.py).
memo.ENABLED = False

GOAL_S = 2.0


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--path", default="bench/large.duckdb")
    p.add_argument("--repeat", type=int, default=7)
    return p.parse_args()


def timed(fn, repeat: int) -> tuple[float, float, float]:
    fn()  # warm-up: catalog memo, DuckDB caches
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times), max(times)


def main() -> None:
    args = parse_args()
    path = Path(args.path)
    if not path.exists():
        print(f"{path} is missing; building it (~3 s)")
        maker = Path(__file__).resolve().parent / "make_warehouse.py"
        subprocess.run([sys.executable, str(maker), "--path", str(path)], check=True)
    wh = Warehouse(path)
    cat = load_catalog(wh)
    latest = data_range(wh, SYSTEM.scope, cat)[1]
    today = add_months(latest, 1).replace(day=21)  # the month after, past the grace days
    month = Period("M", latest)
    units = [u for u in cat.units if cat.tree(latest).get((u, SCORECARD))]

    def evaluate():
        return alerts.evaluate(wh, cat, SYSTEM, today=today)

    def baseline():
        return scorecard.evaluate(wh, cat, SYSTEM.scope, units, month)

    with wh.hold():
        found = evaluate()
        kinds = Counter(c.kind for c in found)
        print(
            f"{path}: {len(cat.kpis)} KPIs, {len(cat.units)} units, month {latest:%Y-%m}, "
            f"today {today}; {len(found)} conditions: "
            + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
        )
        results = {
            "evaluate": timed(evaluate, args.repeat),
            "baseline": timed(baseline, args.repeat),
        }
    wh.close()

    # Raising writes: on a copy, so the bench file stays as make_warehouse.py left it.
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "alerts.duckdb"
        shutil.copy(path, copy)
        wc = Warehouse(copy)
        with wc.hold():
            t = time.perf_counter()
            first = alerts.run(wc, SYSTEM, today=today)
            results["raise (first run)"] = (time.perf_counter() - t,) * 3
            again = [alerts.run, alerts.run, alerts.run]
            times = []
            for fn in again:
                t = time.perf_counter()
                nothing = fn(wc, SYSTEM, today=today)
                times.append(time.perf_counter() - t)
            assert nothing.new == [] and nothing.closed == [], "the second run raised again"
            results["raise (again)"] = (statistics.median(times), min(times), max(times))
        wc.close()

    load = os.getloadavg()[0]
    print(
        f"\nmedian of {args.repeat} runs after a warm-up (raise: 1 and 3 runs); "
        f"{os.cpu_count()} cores, load average {load:.2f}"
    )
    header = f"{'case':<20} {'median s':>9} {'min s':>7} {'max s':>7}"
    print(header)
    print("-" * len(header))
    for name, (med, lo, hi) in results.items():
        print(f"{name:<20} {med:>9.3f} {lo:>7.3f} {hi:>7.3f}")
    e, b = results["evaluate"][0], results["baseline"][0]
    print(f"\nfirst run raised {len(first.new)} alerts; evaluate ÷ baseline = {e / b:.2f}×")
    verdict = "PASS" if e < GOAL_S else "MISS"
    print(f"evaluate {e:.3f} s against the goal < {GOAL_S:.0f} s: {verdict}")


if __name__ == "__main__":
    main()
