"""The engine on the DuckDB file and on PostgreSQL in the same run (issue 24's bench).

    python bench/bench_pg.py [--path bench/large.duckdb] [--repeat 15]

It starts a real PostgreSQL (tests/pgserver.py), makes the schema there with the product's own
`PgWarehouse` (kpi_core/pg_warehouse.py, its migrations and keys), copies every table of the file
into it, and runs the **same engine code** on both, each through its own Warehouse and its own
catalog (`load_catalog` on each): (i) a leaf unit's scorecard for the latest month, (ii) the
company roll-up for the latest year, (iii) a 36-month trend — bench_engine.py's cases, picked as
bench_scale.py picks them. The results are compared node by node before anything is timed
(`check: ok`). Prints medians (min–max) in ms, the ratio PostgreSQL / file and the goals:
within 3× of the file, under 20 / 500 / 20 ms.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere
sys.path.insert(0, str(ROOT / "bench"))
from bench_scale import compare, load, pick_cases, run_cases  # noqa: E402

from kpi_core import memo  # noqa: E402
from kpi_core.access import SYSTEM  # noqa: E402
from kpi_core.catalog import load_catalog  # noqa: E402
from kpi_core.ingest import intake  # noqa: E402
from kpi_core.warehouse import Warehouse, open_warehouse  # noqa: E402
from tests.pgserver import PgServer  # noqa: E402

memo.ENABLED = False  # the engine is timed, not the page caches
GOALS = {"i": 20.0, "ii": 500.0, "iii": 20.0}
NAMES = {"i": "leaf scorecard, a month", "ii": "company roll-up, a year", "iii": "36-month trend"}
_SKIP = {"schema_version", "data_version"}  # the PostgreSQL schema has its own


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--path", default="bench/large.duckdb")
    p.add_argument("--repeat", type=int, default=15)
    p.add_argument("--upload", type=int, default=100_000, help="values of the upload case")
    return p.parse_args()


def copy_into(server: PgServer, db: str, wh: Warehouse) -> tuple[float, int]:
    """Every table of the file into the PostgreSQL database; (seconds, rows)."""
    t0, total = time.perf_counter(), 0
    tables = [
        r[0]
        for r in wh.rows("SELECT table_name FROM information_schema.tables ORDER BY table_name")
        if r[0] not in _SKIP
    ]
    for table in tables:
        frame = wh.df(f"SELECT * FROM {table}")  # noqa: S608 - the file's own table names
        if frame.empty:
            continue
        cols = list(frame.columns)
        if len(frame) > 50_000:  # the large ones have no list columns: CSV, the fast path
            total += server.copy_rows(table, cols, frame, db)
        else:
            rows = [
                tuple(None if _missing(v) else _plain(v) for v in row)
                for row in frame.itertuples(index=False, name=None)
            ]
            total += server.copy_rows(table, cols, rows, db)
    server.execute("VACUUM ANALYZE", db=db)
    return time.perf_counter() - t0, total


def _missing(v: object) -> bool:
    return v is None or v is pd.NaT or v is pd.NA or (isinstance(v, float) and v != v)


def _plain(v: object) -> object:
    if hasattr(v, "tolist"):
        return v.tolist()
    if isinstance(v, pd.Timestamp):
        return v.to_pydatetime()
    return v


class _Undo(Exception):
    """Ends the upload case's transaction with a rollback: every run writes the same values."""


def upload_ms(wh, rows: pd.DataFrame, repeat: int) -> tuple[float, float, float]:
    """(median, min, max) ms of the product's upload write: `intake._diff` of the rows against
    the warehouse and `intake._write` of what moves (values, replaced values, change log,
    yearly summary), in one transaction that is then rolled back."""
    times = []
    for _ in range(repeat + 1):  # the first warms up
        try:
            with wh.transaction() as cur:
                t0 = time.perf_counter()
                diff = intake._diff(cur, rows, "bench upload", "upload", SYSTEM)
                moving = diff[diff["change"] != "unchanged"]
                batch = cur.execute("SELECT max(id) FROM batch").fetchall()[0][0]
                intake._write(cur, moving, batch, "bench", datetime.now(), "bench upload")
                times.append((time.perf_counter() - t0) * 1000)
                raise _Undo
        except _Undo:
            pass
    times = times[1:]
    return statistics.median(times), min(times), max(times)


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "wh.duckdb"
        shutil.copy(args.path, path)  # the source file is never opened for writing
        file_wh = Warehouse(path, linger=float("inf"))
        server = PgServer()
        server.start()
        try:
            server.create_database("bench")
            url = server.url(db="bench")
            pg_wh = open_warehouse(url)  # migrates: the product's schema, with its keys
            seconds, rows = copy_into(server, "bench", file_wh)
            print(f"copied {rows:,} rows into PostgreSQL in {seconds:.1f} s; {load()}")
            file_cat, pg_cat = load_catalog(file_wh), load_catalog(pg_wh)
            picked = pick_cases(file_wh, file_cat)
            file_times, file_results = run_cases(file_wh, file_cat, picked, args.repeat)
            pg_times, pg_results = run_cases(pg_wh, pg_cat, picked, args.repeat)
            problems = compare(file_results, pg_results, "postgresql")
            print("check: " + ("ok" if not problems else "; ".join(problems)))
            print(f"\n{'case':<28} {'file ms':>20} {'PostgreSQL ms':>20} {'ratio':>7}  goal")
            for case in ("q", "i", "ii", "iii"):
                f, p = file_times[case], pg_times[case]
                ratio = p[0] / f[0] if f[0] else float("nan")
                goal = ""
                if case in GOALS:
                    ok = p[0] < GOALS[case] and ratio <= 3.0
                    goal = f"< {GOALS[case]:.0f} ms, ≤ 3×: {'met' if ok else 'MISSED'}"
                name = NAMES.get(case, "one-row query")
                print(
                    f"{name:<28} {f[0]:>8.1f} ({f[1]:.1f}–{f[2]:.1f}) "
                    f"{p[0]:>8.1f} ({p[1]:.1f}–{p[2]:.1f}) {ratio:>6.1f}×  {goal}"
                )
            # An upload: `--upload` values of the latest month, each changed (a month of the
            # whole company on the bench warehouse is 94,000).
            server.execute(
                "SELECT setval('value_change_set_id',"
                " (SELECT coalesce(max(id), 0) + 1 FROM value_change_set))",
                db="bench",
            )  # the copy brought the ids, not the sequence
            rows = file_wh.df(
                "SELECT kpi_id, unit_id, period, value * 1.01 + 1 AS value FROM actual"
                " WHERE period = (SELECT max(period) FROM actual) ORDER BY unit_id, kpi_id"
                " LIMIT ?",
                [args.upload],
            )
            f, p = upload_ms(file_wh, rows, 3), upload_ms(pg_wh, rows, 3)
            name = f"upload write, {len(rows):,} values"
            print(
                f"{name:<28} {f[0]:>8.0f} ({f[1]:.0f}–{f[2]:.0f}) "
                f"{p[0]:>8.0f} ({p[1]:.0f}–{p[2]:.0f}) {p[0] / f[0]:>6.1f}×"
            )
            print(f"\n{load()}")
            pg_wh.close()
        finally:
            file_wh.close()
            server.stop()


if __name__ == "__main__":
    main()
