"""The warehouse beyond one machine: the engine's reads and writes on the DuckDB file, on
PostgreSQL and on DuckLake, in one run (issue 24; the decision is in docs/scale.md).

    python bench/bench_scale.py [--path bench/large.duckdb] [--repeat 15] [--write-repeat 5]
                                [--cells 500] [--upload 100000] [--lake-venv DIR] [--no-lake]

What runs, on the same data (bench/make_warehouse.py's file, built first if missing):

- **DuckDB file** (this process, duckdb 2.0): the engine as the product runs it;
- **PostgreSQL 15** (`tests/pgserver.py`: a throw-away server on 127.0.0.1, stopped at the end):
  the tables the cases read and write are COPYed in, with a primary key or index where DuckDB
  prunes by insertion order. The *same engine code* (`scorecard.evaluate`, `actuals.monthly`,
  `targets.fetch`) runs on it through `PgWarehouse`, a thin adapter that rewrites the engine's
  SQL (`TRANSLATIONS` below lists every rewrite it needed);
- **DuckLake** (a subprocess in a separate venv with duckdb 1.5.5 and the PyPI wheels
  `duckdb-extension-ducklake` / `-postgres` 1.5.5, loaded from the wheels' files, nothing
  downloaded at run time): catalog in a database of the same PostgreSQL, Parquet data files in a
  temp dir standing for shared storage. Every table is copied in through Parquet, sorted as the
  file is; the same engine code runs on it unchanged (DuckDB SQL) through `LakeWarehouse`.
  Beside it, in the same subprocess, a plain duckdb 1.5.5 file with the same rows, so a gap can
  be told apart as DuckLake's or the older DuckDB's. The subprocess also applies the product's
  migrations to an empty DuckLake, statement by statement, and lists what fails.

Timed, median of the runs after a warm-up, the connection held open as during a page run:
(q) a one-row query (each engine's floor: DuckLake asks its catalog for a snapshot on every
query); (i) one leaf unit's scorecard, latest month; (ii) the company roll-up, latest year;
(iii) a 36-month trend of one KPI of one unit; (w1) a target save of `--cells` yearly rows
(conflict check, new versions, audit rows, one transaction, as `planning.save_targets`);
(w2) an upload-sized write of `--upload` changed actuals (as `intake._write`: replaced values
kept, delete + insert, the audit change set, the yearly summary refreshed). Before timing, every
engine's results of (i)–(iii) are compared with the file's; after the writes (the same number
of runs everywhere) the written tables' counts and sums must agree (`check: ok`, else exit 1).
Last, `two_writers`: two connections write at once, as two app servers would (other units'
actuals, appends, the same target's next version), on PostgreSQL and on DuckLake.

The DuckLake venv is made once (`--lake-venv`, default `$TMPDIR/kpi_bench_ducklake`, ~40 s, pip
from the package registry); `--no-lake` skips DuckLake.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere
from kpi_core import actuals, scorecard, targets  # noqa: E402
from kpi_core.access import Scope  # noqa: E402
from kpi_core.catalog import Catalog, load_catalog  # noqa: E402
from kpi_core.migrations import MIGRATIONS  # noqa: E402
from kpi_core.periods import Period, add_months  # noqa: E402
from kpi_core.warehouse import Warehouse  # noqa: E402

LAKE_PINS = [
    "duckdb==1.5.5",
    "duckdb-extension-ducklake==1.5.5",
    "duckdb-extension-postgres==1.5.5",
    "numpy",
    "pandas==3.1.1",
    "pyarrow",
]

# Every rewrite PgWarehouse needed for the engine's read queries (i)–(iii); the writes' own
# rewrites are in PG_WRITES beside the DuckDB text they replace.
TRANSLATIONS = [
    "placeholders: ? -> %s",
    "pairs past pairs.LIST_LIMIT, an Arrow table registered as `wanted` on the cursor -> "
    "JOIN unnest(%s::int[], %s::int[]) AS w(kpi_id, unit_id) (two bound arrays)",
    "fetchnumpy() -> fetchall() turned into numpy columns (NULL as NaN / NaT / None)",
]

# The DuckLake worker and the file in it need the tables they read and write; the PostgreSQL
# copy needs only these (the catalog is the file's, loaded once in this process).
PG_TABLES = [
    "actual", "actual_year", "target", "audit", "actual_replaced", "value_change",
    "value_change_set", "kpi",
]  # fmt: skip
PG_KEYS = {  # DuckDB prunes row groups by insertion order; PostgreSQL needs an index
    "actual": "PRIMARY KEY (unit_id, kpi_id, period)",
    "actual_year": "PRIMARY KEY (unit_id, kpi_id, year)",
    "target": "UNIQUE (unit_id, kpi_id, grain, period_start, version)",
    "value_change_set": "PRIMARY KEY (id)",
}
PG_TYPES = {
    "INTEGER": "integer", "BIGINT": "bigint", "DOUBLE": "double precision", "VARCHAR": "text",
    "DATE": "date", "TIMESTAMP": "timestamp", "BOOLEAN": "boolean",
}  # fmt: skip


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--path", default="bench/large.duckdb")
    p.add_argument("--repeat", type=int, default=15)
    p.add_argument("--write-repeat", type=int, default=5)
    p.add_argument("--cells", type=int, default=500)
    p.add_argument("--upload", type=int, default=100_000)
    p.add_argument("--lake-venv", default=str(Path(tempfile.gettempdir()) / "kpi_bench_ducklake"))
    p.add_argument("--no-lake", action="store_true")
    p.add_argument("--worker", help=argparse.SUPPRESS)  # JSON job for the DuckLake subprocess
    return p.parse_args()


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


# -- timing and the cases, the same code in both processes -------------------------------------


def median_ms(fn: Callable[[], object], repeat: int, before: Callable[[], None] | None = None):
    """(median, min, max) ms of `repeat` runs after a warm-up; `before` runs untimed."""
    if before:
        before()
    fn()
    times = []
    for _ in range(repeat):
        if before:
            before()
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), min(times), max(times)


def pick_cases(wh: Warehouse, cat: Catalog) -> dict[str, Any]:
    """The bench_engine cases: leaf closest to 25 KPIs, the root, a 36-month trend."""
    latest = wh.one("SELECT max(period) FROM actual")[0]
    month = Period("M", latest)
    leaves = [u for u in cat.units if not cat.children_of.get(u)]

    def fit(u: int) -> tuple:
        ks = cat.scorecard_kpis(u, month.end)
        derived = sum(cat.kpis[k].aggregation in ("ratio", "formula") for k in ks)
        return (abs(len(ks) - 25), -min(derived, 2), u)

    leaf = min(leaves, key=fit)
    sums = [k for k in cat.scorecard_kpis(leaf, month.end) if cat.kpis[k].aggregation == "sum"]
    return {
        "latest": latest.isoformat(),
        "leaf": leaf,
        "root": cat.roots()[0],
        "trend_kpi": sums[0],
    }


def run_cases(wh: Warehouse, cat: Catalog, picked: dict, repeat: int) -> tuple[dict, dict]:
    """Times of (i)–(iii) and their results flattened for the cross-engine check."""
    latest = date.fromisoformat(picked["latest"])
    leaf, root, kpi = picked["leaf"], picked["root"], picked["trend_kpi"]
    month, year = Period("M", latest), Period("Y", date(latest.year, 1, 1))
    months = [add_months(latest, -i) for i in range(35, -1, -1)]

    def trend():
        series = actuals.monthly(wh, cat, [(kpi, leaf)], months)
        rows = targets.fetch(wh, [(kpi, leaf)], {m.year for m in months})[(kpi, leaf)]
        return [
            (m, series[m].value(kpi, leaf), targets.month_levels(rows, cat.kpis[kpi], m, cat))
            for m in months
        ]

    cases = {
        "i": lambda: scorecard.evaluate(wh, cat, Scope.all(), [leaf], month),
        "ii": lambda: scorecard.evaluate(wh, cat, Scope.all(), [root], year),
        "iii": trend,
        "q": lambda: wh.one("SELECT count(*) FROM kpi"),
    }
    with wh.hold():
        results = {
            "i": flatten(cases["i"]()[leaf]),
            "ii": flatten(cases["ii"]()[root]),
            "iii": [[m.isoformat(), v, None if lv is None else lv.target] for m, v, lv in trend()],
        }
        times = {k: median_ms(fn, repeat) for k, fn in cases.items()}
    return times, results


def flatten(res) -> list:
    out, stack = [], [res]
    while stack:
        n = stack.pop()
        stack.extend(c for _, c in n.children)
        out.append([n.unit_id, n.kpi_id, n.actual, n.score, str(n.status)])
    return sorted(out, key=lambda r: (r[0], r[1]))


def compare(a: dict, b: dict, label: str, cases: Sequence[str] = ("i", "ii", "iii")) -> list[str]:
    """Reads (i)–(iii) agree; or, with ("after",), the tables after the same writes."""

    def same(x, y) -> bool:
        if x is None or y is None or isinstance(x, str) or isinstance(y, str):
            return x == y or (x is None and y is None)
        return abs(x - y) <= 1e-9 * max(1.0, abs(x), abs(y))

    problems = []
    for case in cases:
        ra, rb = a[case], b[case]
        if len(ra) != len(rb):
            problems.append(f"{label} ({case}): {len(ra)} rows vs {len(rb)}")
            continue
        for x, y in zip(ra, rb, strict=True):
            if not all(same(p, q) for p, q in zip(x, y, strict=True)):
                problems.append(f"{label} ({case}): file {x} vs {y}")
                break
    return problems


# -- the writes, per dialect ---------------------------------------------------------------------

# (w1) as planning.save_targets, (w2) as intake._write + actuals.refresh_summary. DuckDB's text
# runs on the file and on DuckLake; PostgreSQL's is its translation, statement by statement.
SAVE_CLASH = {
    "duckdb": """SELECT e.kpi_id FROM edits e
       LEFT JOIN (SELECT t.kpi_id, t.unit_id, t.grain, t.period_start,
                         max(t.version) AS version,
                         arg_max(t.changed_by, t.version) AS by,
                         arg_max(t.changed_at, t.version) AS at
                  FROM target t
                  SEMI JOIN edits USING (kpi_id, unit_id, grain, period_start)
                  GROUP BY ALL) c
         USING (kpi_id, unit_id, grain, period_start)
       WHERE coalesce(c.version, 0) <> e.expected""",
    "postgres": """SELECT e.kpi_id FROM edits e
       LEFT JOIN (SELECT t.kpi_id, t.unit_id, t.grain, t.period_start,
                         max(t.version) AS version,
                         (array_agg(t.changed_by ORDER BY t.version DESC))[1] AS by,
                         (array_agg(t.changed_at ORDER BY t.version DESC))[1] AS at
                  FROM target t
                  WHERE EXISTS (SELECT 1 FROM edits x WHERE x.kpi_id = t.kpi_id
                                AND x.unit_id = t.unit_id AND x.grain = t.grain
                                AND x.period_start = t.period_start)
                  GROUP BY t.kpi_id, t.unit_id, t.grain, t.period_start) c
         USING (kpi_id, unit_id, grain, period_start)
       WHERE coalesce(c.version, 0) <> e.expected""",
}
LEVELS = "baseline, target, challenge, low, high, tolerance"
SAVE_INSERT = f"""INSERT INTO target (kpi_id, unit_id, grain, period_start, {LEVELS},
           phasing, valid_from, version, changed_by, changed_at, reason)
       SELECT kpi_id, unit_id, grain, period_start, {LEVELS}, phasing,
              valid_from, version, ?, ?, ?
       FROM edits"""  # noqa: S608 - fixed column names
UPLOAD = {
    "duckdb": [
        """CREATE OR REPLACE TEMP TABLE changed AS
           SELECT m.kpi_id::INTEGER AS kpi_id, m.unit_id::INTEGER AS unit_id,
                  m.period::DATE AS period, m.old, m.new, a.batch_id AS old_batch_id
           FROM moving m
           LEFT JOIN actual a ON a.kpi_id = m.kpi_id AND a.unit_id = m.unit_id
                              AND a.period = m.period::DATE""",
        """INSERT INTO actual_replaced
           SELECT ?, kpi_id, unit_id, period, old, old_batch_id FROM changed
           WHERE old IS NOT NULL""",
        """DELETE FROM actual USING changed c
           WHERE actual.kpi_id = c.kpi_id AND actual.unit_id = c.unit_id
             AND actual.period = c.period""",
        "INSERT INTO actual SELECT kpi_id, unit_id, period, new, ? FROM changed "
        "WHERE new IS NOT NULL",
        "SET_ID",
        "INSERT INTO value_change_set VALUES (?, ?, ?, ?)",
        "INSERT INTO value_change SELECT ?, kpi_id, unit_id, period, old, new FROM changed",
        """CREATE OR REPLACE TEMP TABLE summary_keys AS
           SELECT DISTINCT kpi_id, unit_id, year(period) AS year FROM changed""",
        """DELETE FROM actual_year USING summary_keys k
           WHERE actual_year.kpi_id = k.kpi_id AND actual_year.unit_id = k.unit_id
             AND actual_year.year = k.year""",
        """INSERT INTO actual_year
           SELECT a.kpi_id, a.unit_id, year(a.period), sum(a.value), avg(a.value),
                  arg_max(a.value, a.period), count(*), max(a.period)
           FROM actual a JOIN summary_keys k ON a.kpi_id = k.kpi_id AND a.unit_id = k.unit_id
                AND year(a.period) = k.year
           GROUP BY ALL ORDER BY 3, 2, 1""",
        "DROP TABLE summary_keys",
        "DROP TABLE changed",
    ],
    # Not word for word: values that stay are updated in place (not deleted and inserted again,
    # which moves every index entry), and temp tables are ANALYZEd: autovacuum never sees them,
    # and without statistics the planner joined them to `actual` by full scans (w2 ~2x slower).
    "postgres": [
        """CREATE TEMP TABLE changed ON COMMIT DROP AS
           SELECT m.kpi_id, m.unit_id, m.period, m.old, m.new, a.batch_id AS old_batch_id,
                  a.kpi_id IS NOT NULL AS stored
           FROM moving m
           LEFT JOIN actual a ON a.kpi_id = m.kpi_id AND a.unit_id = m.unit_id
                              AND a.period = m.period""",
        "ANALYZE changed",
        """INSERT INTO actual_replaced
           SELECT %s, kpi_id, unit_id, period, old, old_batch_id FROM changed
           WHERE old IS NOT NULL""",
        """UPDATE actual SET value = c.new, batch_id = %s FROM changed c
           WHERE actual.unit_id = c.unit_id AND actual.kpi_id = c.kpi_id
             AND actual.period = c.period AND c.stored AND c.new IS NOT NULL""",
        """DELETE FROM actual USING changed c
           WHERE actual.unit_id = c.unit_id AND actual.kpi_id = c.kpi_id
             AND actual.period = c.period AND c.new IS NULL""",
        "INSERT INTO actual SELECT kpi_id, unit_id, period, new, %s FROM changed "
        "WHERE new IS NOT NULL AND NOT stored",
        "SET_ID",
        "INSERT INTO value_change_set VALUES (%s, %s, %s, %s)",
        "INSERT INTO value_change SELECT %s, kpi_id, unit_id, period, old, new FROM changed",
        """CREATE TEMP TABLE summary_keys ON COMMIT DROP AS
           SELECT DISTINCT kpi_id, unit_id, extract(year FROM period)::int AS year
           FROM changed""",
        "ANALYZE summary_keys",
        """DELETE FROM actual_year USING summary_keys k
           WHERE actual_year.kpi_id = k.kpi_id AND actual_year.unit_id = k.unit_id
             AND actual_year.year = k.year""",
        """INSERT INTO actual_year
           SELECT a.kpi_id, a.unit_id, k.year, sum(a.value), avg(a.value),
                  (array_agg(a.value ORDER BY a.period DESC))[1], count(*), max(a.period)
           FROM actual a JOIN summary_keys k ON a.kpi_id = k.kpi_id AND a.unit_id = k.unit_id
                AND a.period >= make_date(k.year, 1, 1) AND a.period < make_date(k.year + 1, 1, 1)
           GROUP BY a.kpi_id, a.unit_id, k.year""",
    ],
}
# The set id: a sequence in the file and in PostgreSQL; DuckLake has no sequences.
SET_ID = {
    "duckdb": "SELECT nextval('value_change_set_id')",
    "ducklake": "SELECT coalesce(max(id), 0) + 1 FROM value_change_set",
    "postgres": "SELECT coalesce(max(id), 0) + 1 FROM value_change_set",
}


def edits_frame(rows: list[tuple]) -> pd.DataFrame:
    """New versions of (kpi, unit, period_start, version, target) rows: levels 2 % lower."""
    f = pd.DataFrame(rows, columns=["kpi_id", "unit_id", "period_start", "version", "target"])
    out = pd.DataFrame(
        {
            "kpi_id": f["kpi_id"].astype("int32"),
            "unit_id": f["unit_id"].astype("int32"),
            "grain": "Y",
            "period_start": pd.to_datetime(f["period_start"]),
            "baseline": f["target"].astype(float) * 0.9,
            "target": f["target"].astype(float) * 0.98,
            "challenge": f["target"].astype(float) * 1.1,
            "low": np.nan,
            "high": np.nan,
            "tolerance": np.nan,
            "phasing": "even",
            "valid_from": pd.to_datetime(f["period_start"]),
            "version": (f["version"] + 1).astype("int32"),
            "expected": f["version"].astype("int32"),
        }
    )
    return out


SAVE_KEYS = """SELECT kpi_id, unit_id, period_start, max(version) AS version,
       max(target) AS target
    FROM target WHERE grain = 'Y' AND period_start = ? AND target IS NOT NULL
    GROUP BY kpi_id, unit_id, period_start ORDER BY unit_id, kpi_id"""
UPLOAD_KEYS = """SELECT kpi_id, unit_id, period, value FROM actual
    WHERE period >= ? ORDER BY unit_id, kpi_id, period LIMIT ?"""


def duckdb_writes(wh: Warehouse, flavour: str, picked: dict, args) -> dict:
    """(w1) and (w2) on a DuckDB connection (the file, or DuckLake: `flavour`)."""
    use = getattr(wh, "_use", None)  # LakeWarehouse: USE is per connection
    latest = date.fromisoformat(picked["latest"])
    year_start = date(latest.year, 1, 1)
    state: dict[str, Any] = {}
    # Raw writes on the connection: the process's turn to write (a file is otherwise read-only).
    with wh._writing() as con:
        step = max(1, len(con.execute(SAVE_KEYS, [year_start]).fetchall()) // args.cells)

        def prepare_save():
            keys = con.execute(SAVE_KEYS, [year_start]).fetchall()[::step][: args.cells]
            state["edits"] = edits_frame(keys)

        def save():
            cur = con.cursor()
            if use:
                cur.execute(f"USE {use}")
            cur.execute("BEGIN TRANSACTION")
            cur.register("edits", state["edits"])
            assert not cur.execute(SAVE_CLASH["duckdb"]).fetchall()
            cur.execute(SAVE_INSERT, ["bench", datetime.now(), "bench"])
            cur.register("audit_rows", audit_frame(state["edits"]))
            cur.execute("INSERT INTO audit SELECT * FROM audit_rows")
            cur.execute("COMMIT")
            cur.close()

        first = add_months(latest, -11)
        keys = con.execute(UPLOAD_KEYS, [first, args.upload]).df()
        moving = pd.DataFrame(
            {
                "kpi_id": keys["kpi_id"],
                "unit_id": keys["unit_id"],
                "period": pd.to_datetime(keys["period"]),
                "old": keys["value"],
                "new": keys["value"] * 1.01,
            }
        )

        def upload():
            cur = con.cursor()
            if use:
                cur.execute(f"USE {use}")
            cur.execute("BEGIN TRANSACTION")
            cur.register("moving", moving)
            for sql in UPLOAD["duckdb"]:
                if sql == "SET_ID":
                    set_id = cur.execute(SET_ID[flavour]).fetchall()[0][0]
                elif "VALUES (?, ?, ?, ?)" in sql:
                    cur.execute(sql, [set_id, datetime.now(), "bench", "bench"])
                elif "value_change SELECT" in sql:
                    cur.execute(sql, [set_id])
                elif "?" in sql:
                    cur.execute(sql, [1])
                else:
                    cur.execute(sql)
            cur.unregister("moving")
            cur.execute("COMMIT")
            cur.close()

        return {
            "w1": median_ms(save, args.write_repeat, prepare_save),
            "w2": median_ms(upload, args.write_repeat),
        }


def audit_frame(edits: pd.DataFrame) -> pd.DataFrame:
    n = len(edits)
    return pd.DataFrame(
        {
            "changed_at": [datetime.now()] * n,
            "changed_by": "bench",
            "entity": "target",
            "key": [f"{u}/{k}" for k, u in zip(edits["kpi_id"], edits["unit_id"], strict=True)],
            "field": "target",
            "old": edits["target"].astype(str),
            "new": (edits["target"] * 0.98).astype(str),
            "reason": "bench",
        }
    )


# -- DuckLake: the subprocess in the duckdb 1.5.5 venv --------------------------------------------


class LakeWarehouse(Warehouse):
    """The engine's Warehouse on a connection with DuckLake attached as `lake` (no migrations:
    the tables were copied in; every cursor selects `lake`, as USE is per connection)."""

    def __init__(self, setup: list[str], use: str):
        self.path, self.in_memory, self.linger, self.wait = ":memory:", True, float("inf"), 30.0
        self._con, self._mode, self._users, self._pins = None, None, 0, 0
        self._draining = self._writing_now = False
        self._state, self._writer = threading.Condition(threading.RLock()), threading.RLock()
        self._mine, self._gate, self._watcher = threading.local(), None, None
        self._setup, self._use = setup, use

    def _open_read(self) -> None:  # in memory: always the one read-write connection
        self._con, self._mode = self._open(), "write"

    def _open(self):
        import duckdb

        con = duckdb.connect(
            config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
        )
        for sql in self._setup:
            con.execute(sql)
        con.execute(f"USE {self._use}")
        return con

    @contextlib.contextmanager
    def cursor(self) -> Iterator[Any]:
        with self.hold() as con:
            cur = con.cursor()
            cur.execute(f"USE {self._use}")
            try:
                yield cur
            finally:
                cur.close()


def lake_setup(tmp: Path) -> list[str]:
    import duckdb_extension_ducklake
    import duckdb_extension_postgres

    def ext(mod, name: str) -> Path:
        return next(Path(mod.__file__).parent.glob(f"extensions/*/{name}.duckdb_extension"))

    # The postgres extension's entry point follows its file name: postgres_scanner.
    scanner = tmp / "postgres_scanner.duckdb_extension"
    shutil.copyfile(ext(duckdb_extension_postgres, "postgres"), scanner)
    return [
        f"LOAD '{scanner}'",
        f"LOAD '{ext(duckdb_extension_ducklake, 'ducklake')}'",
    ]


def split_sql(script: str) -> list[str]:
    text = "\n".join(re.sub(r"--.*$", "", line) for line in script.splitlines())
    return [s.strip() for s in text.split(";") if s.strip()]


def worker(job: dict) -> None:
    """Runs in the DuckLake venv: copy in, check the migrations, run the cases and writes."""
    import duckdb

    tmp = Path(job["tmp"])
    loads = lake_setup(tmp)
    out: dict[str, Any] = {"duckdb": duckdb.__version__}

    # The product's migrations on an empty DuckLake, statement by statement.
    mig = LakeWarehouse(
        [*loads, f"ATTACH 'ducklake:postgres:{job['dsn_mig']}' AS lake "
                 f"(DATA_PATH '{tmp / 'mig_data'}')"],
        "lake",
    )  # fmt: skip
    failed, total = [], 0
    with mig.cursor() as cur:
        for version, _desc, script in sorted(MIGRATIONS):
            for sql in split_sql(script):
                total += 1
                try:
                    cur.execute(sql)
                except Exception as exc:
                    first = " ".join(sql.split())[:70]
                    failed.append(f"{version}: {first} -> {str(exc).splitlines()[0][:110]}")
    mig.close()
    out["migrations"] = {"statements": total, "failed": failed}

    # The same rows in DuckLake and in a plain 1.5.5 file, each table sorted as in the file.
    lake = LakeWarehouse(
        [*loads, f"ATTACH 'ducklake:postgres:{job['dsn']}' AS lake "
                 f"(DATA_PATH '{tmp / 'lake_data'}')",
         f"ATTACH '{tmp / 'v155.duckdb'}' AS v155"],
        "lake",
    )  # fmt: skip
    t0 = time.perf_counter()
    with lake.cursor() as cur:
        for table, order in job["tables"].items():
            src = f"read_parquet('{tmp / 'parquet' / table}.parquet')"
            by = f" ORDER BY {order}" if order else ""
            for db in ("lake", "v155"):
                cur.execute(f"CREATE TABLE {db}.{table} AS SELECT * FROM {src}{by}")  # noqa: S608
        cur.execute("CREATE SEQUENCE v155.value_change_set_id START 1000000")
    out["copy_s"] = time.perf_counter() - t0
    lake_files = sorted((tmp / "lake_data").rglob("*.parquet"))
    out["lake_files"] = [len(lake_files), sum(p.stat().st_size for p in lake_files)]
    v155 = LakeWarehouse(lake._setup, "v155")

    class Args:
        cells, upload, write_repeat = job["cells"], job["upload"], job["write_repeat"]

    for name, wh in (("ducklake", lake), ("duckdb 1.5.5 file", v155)):
        t0 = time.perf_counter()
        cat = load_catalog(wh)
        cat_ms = (time.perf_counter() - t0) * 1000
        times, results = run_cases(wh, cat, job["picked"], job["repeat"])
        flavour = "ducklake" if name == "ducklake" else "duckdb"
        times.update(duckdb_writes(wh, flavour, job["picked"], Args))
        results["after"] = after_writes(wh.one)
        out[name] = {"times": times, "results": results, "catalog_ms": cat_ms}
        wh.close()
    # DuckLake's data files are immutable: each write adds files (and deletion files).
    lake_files = sorted((tmp / "lake_data").rglob("*.parquet"))
    out["lake_files_after"] = [len(lake_files), sum(p.stat().st_size for p in lake_files)]
    with LakeWarehouse(lake._setup[:3], "lake").cursor() as cur:
        out["lake_snapshots"] = cur.execute(
            "SELECT count(*) FROM ducklake_snapshots('lake')"
        ).fetchall()[0][0]
    lake_only = LakeWarehouse(lake._setup[:3], "lake")
    out["writers"] = two_writers(lake_only._open, job["picked"])
    print("RESULT " + json.dumps(out, default=str))


def probes(picked: dict) -> dict[str, tuple[list[str], list[str]]]:
    """Two writers at once, as two app servers would: each a list of statements (literal
    values, so the same text runs on every engine)."""
    latest = picked["latest"]
    year = f"{latest[:4]}-01-01"
    leaf, kpi = picked["leaf"], picked["trend_kpi"]
    bump = "UPDATE actual SET value = value + 1 WHERE unit_id = {u} AND period = DATE '{p}'"
    audit = (
        "INSERT INTO audit (changed_at, changed_by, entity, key) "
        "VALUES (TIMESTAMP '2026-01-01 00:00:00', '{w}', 'probe', 'k')"
    )
    # The target save's check-then-write in one statement: the next version of one key.
    save = (
        "INSERT INTO target (kpi_id, unit_id, grain, period_start, valid_from, version) "  # noqa: S608 - our ids
        f"SELECT {kpi}, {leaf}, 'Y', DATE '{year}', DATE '{year}', max(version) + 1 "
        f"FROM target WHERE kpi_id = {kpi} AND unit_id = {leaf} AND grain = 'Y' "
        f"AND period_start = DATE '{year}'"
    )
    return {
        "two uploads, other units, same month (update actual)": (
            [bump.format(u=leaf, p=latest)],
            [bump.format(u=leaf - 1, p=latest)],
        ),
        "two appends to one table (audit rows)": ([audit.format(w="a")], [audit.format(w="b")]),
        "two saves of the same target (next version)": ([save], [save]),
    }


def duplicate_versions(picked: dict) -> str:
    year = f"{picked['latest'][:4]}-01-01"
    return (
        "SELECT count(*) - count(DISTINCT version) FROM target "  # noqa: S608 - our ids
        f"WHERE kpi_id = {picked['trend_kpi']}"
        f" AND unit_id = {picked['leaf']} AND grain = 'Y' AND period_start = DATE '{year}'"
    )


AFTER_WRITES = [
    "SELECT count(*), sum(value) FROM actual",
    "SELECT count(*), sum(total), sum(last) FROM actual_year",
    "SELECT count(*), sum(target) FROM target",
    "SELECT count(*) FROM value_change",
    "SELECT count(*) FROM actual_replaced",
]


def after_writes(one: Callable[[str], tuple]) -> list:
    """Every engine ran the same writes the same number of times: these must agree."""
    return [[float(x) for x in one(sql)] for sql in AFTER_WRITES]


def two_writers(connect: Callable[[], Any], picked: dict) -> dict[str, Any]:
    """Each probe on two connections of their own: A writes, B writes after A (before A's
    COMMIT), A commits, then B. What became of each, and duplicate target versions after."""
    out: dict[str, Any] = {}
    for name, sqls in probes(picked).items():
        cons = [connect(), connect()]
        outcome = ["", ""]
        a_wrote = threading.Event()

        def run(i: int, cons=cons, outcome=outcome, a_wrote=a_wrote, sqls=sqls) -> None:
            con = cons[i]
            try:
                con.execute("BEGIN TRANSACTION")
                if i == 1:
                    a_wrote.wait(10)
                for sql in sqls[i]:
                    con.execute(sql)
                if i == 0:
                    a_wrote.set()
                    time.sleep(0.5)  # B writes (or waits for A's row lock) meanwhile
                con.execute("COMMIT")
                outcome[i] = "committed"
            except Exception as exc:
                a_wrote.set()
                outcome[i] = "refused: " + str(exc).splitlines()[0][:120]
                with contextlib.suppress(Exception):
                    con.execute("ROLLBACK")

        threads = [threading.Thread(target=run, args=(i,)) for i in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        out[name] = outcome
        for con in cons:
            con.close()
    con = connect()
    out["duplicate target versions after"] = con.execute(duplicate_versions(picked)).fetchall()[0][
        0
    ]
    con.close()
    return out


def ensure_lake_venv(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if python.exists():
        return python
    print(f"making the DuckLake venv {venv} ({', '.join(LAKE_PINS[:3])}) …", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", *LAKE_PINS], check=True,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return python


# -- PostgreSQL: the engine through a thin adapter ---------------------------------------------


class PgWarehouse(Warehouse):
    """The engine's Warehouse on PostgreSQL: a pool of psycopg connections (a scorecard fetches
    its targets on a thread of its own), the engine's SQL rewritten (TRANSLATIONS)."""

    def __init__(self, dsn: str):
        self.path, self.in_memory, self.linger = "postgres", True, float("inf")
        self._dsn = dsn
        self._idle: queue.LifoQueue = queue.LifoQueue()  # a pool: threads come and go
        self._all: list = []

    @contextlib.contextmanager
    def _con(self) -> Iterator[Any]:
        import psycopg

        try:
            con = self._idle.get_nowait()
        except queue.Empty:
            con = psycopg.connect(self._dsn, autocommit=True)
            self._all.append(con)
        try:
            yield con
        finally:
            self._idle.put(con)

    @contextlib.contextmanager
    def hold(self) -> Iterator[Any]:
        with self._con() as con:
            yield con

    @contextlib.contextmanager
    def cursor(self) -> Iterator[Any]:
        with self._con() as con, con.cursor() as cur:
            yield cur

    def close(self) -> None:
        for con in self._all:
            con.close()
        self._all.clear()
        self._idle = queue.LifoQueue()

    @staticmethod
    def translate(sql: str, params: Sequence | None, tables: dict | None) -> tuple[str, list]:
        params = list(params or [])
        sql = sql.replace("?", "%s")
        if tables and "wanted" in tables:
            w = tables["wanted"]
            sql = sql.replace(
                "JOIN wanted w ON",
                "JOIN unnest(%s::int[], %s::int[]) AS w(kpi_id, unit_id) ON",
            )
            params = [
                w.column("kpi_id").to_numpy().tolist(),
                w.column("unit_id").to_numpy().tolist(),
                *params,
            ]
        return sql, params

    def rows(self, sql, params=None):
        with self.cursor() as cur:
            cur.execute(*self.translate(sql, params, None))
            return cur.fetchall()

    def one(self, sql, params=None):
        with self.cursor() as cur:
            cur.execute(*self.translate(sql, params, None))
            return cur.fetchone()

    def arrays(self, sql, params=None, tables=None) -> dict[str, np.ndarray]:
        with self.cursor() as cur:
            cur.execute(*self.translate(sql, params, tables))
            rows = cur.fetchall()
            names = [d.name for d in cur.description]
            types = [d.type_code for d in cur.description]
        cols = list(zip(*rows, strict=True)) if rows else [()] * len(names)
        return {n: _column(c, t) for n, c, t in zip(names, cols, types, strict=True)}


def _column(values: tuple, oid: int) -> np.ndarray:
    """A PostgreSQL column as fetchnumpy + warehouse._plain would give it."""
    if oid in (21, 23, 20):  # int2, int4, int8
        if any(v is None for v in values):
            return np.array(values, dtype=float)
        return np.array(values, dtype=np.int32 if oid != 20 else np.int64)
    if oid in (700, 701, 1700):
        return np.array(values, dtype=float)
    if oid in (1082, 1114):  # date, timestamp
        return np.array(values, dtype="datetime64[us]")
    return np.array(values, dtype=object)


def pg_copy_tables(server, db: str, wh: Warehouse) -> float:
    t0 = time.perf_counter()
    with wh.hold() as con:
        ddl = {}
        for table in PG_TABLES:
            cols = con.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = ? ORDER BY ordinal_position",
                [table],
            ).fetchall()
            ddl[table] = cols
    with server.connect(db) as pg:
        for table, cols in ddl.items():
            body = ", ".join(f"{c} {PG_TYPES[t]}" for c, t in cols)
            # Room on each page for in-place (HOT) updates of the tables uploads update.
            fill = " WITH (fillfactor = 90)" if table in ("actual", "actual_year") else ""
            pg.execute(f"CREATE TABLE {table} ({body}){fill}")
    for table, cols in ddl.items():
        names = [c for c, _ in cols]
        frame = wh.df(f"SELECT * FROM {table}")  # noqa: S608 - our own table names
        if len(frame):
            server.copy_rows(table, names, frame, db)
    with server.connect(db) as pg:
        for table, key in PG_KEYS.items():
            pg.execute(f"ALTER TABLE {table} ADD {key}")
        pg.execute("CREATE INDEX target_find ON target (unit_id, kpi_id, period_start)")
        pg.execute("VACUUM ANALYZE")
    return time.perf_counter() - t0


def export_parquet(wh: Warehouse, folder: Path) -> dict[str, str]:
    """Every table as a Parquet file (DuckDB 1.5.5 cannot open a 2.0 file); the order each is
    to be loaded in, as make_warehouse inserted it (DuckDB prunes by it)."""
    folder.mkdir()
    order = {"actual": "unit_id, kpi_id, period", "actual_year": "year, unit_id, kpi_id"}
    with wh.hold() as con:
        names = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
        ).fetchall()]  # fmt: skip
        for name in names:
            con.execute(f"COPY {name} TO '{folder / name}.parquet' (FORMAT parquet)")
    return {name: order.get(name, "") for name in names}


def copy_csv(cur, table: str, frame: pd.DataFrame) -> None:
    """What `cur.register(name, frame)` does for DuckDB: the frame into a table, by COPY."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    # Arrow's CSV writer, not pandas': 100,000 rows in ~30 ms instead of ~300 ms.
    buf = pa.BufferOutputStream()
    pacsv.write_csv(
        pa.Table.from_pandas(frame, preserve_index=False), buf,
        pacsv.WriteOptions(include_header=False, quoting_style="needed"),
    )  # fmt: skip
    cols = ", ".join(frame.columns)
    with cur.copy(f"COPY {table} ({cols}) FROM STDIN (FORMAT csv)") as cp:
        cp.write(buf.getvalue().to_pybytes())


def pg_writes(dsn: str, picked: dict, args) -> dict:
    import psycopg

    latest = date.fromisoformat(picked["latest"])
    year_start = date(latest.year, 1, 1)
    sql_keys = SAVE_KEYS.replace("?", "%s")
    state: dict[str, Any] = {}
    with psycopg.connect(dsn) as con:
        con.autocommit = True
        step = max(1, len(con.execute(sql_keys, [year_start]).fetchall()) // args.cells)

        def prepare_save():
            keys = con.execute(sql_keys, [year_start]).fetchall()[::step][: args.cells]
            state["edits"] = edits_frame(keys)

        def copy_in(cur, name: str, ddl: str, frame: pd.DataFrame) -> None:
            # cur.register(name, frame) -> a temp table filled by COPY
            cur.execute(f"CREATE TEMP TABLE {name} ({ddl}) ON COMMIT DROP")
            copy_csv(cur, name, frame)

        def save():
            with con.transaction(), con.cursor() as cur:
                copy_in(
                    cur, "edits",
                    "kpi_id int, unit_id int, grain text, period_start date, baseline float8,"
                    " target float8, challenge float8, low float8, high float8, tolerance float8,"
                    " phasing text, valid_from date, version int, expected int",
                    state["edits"],
                )  # fmt: skip
                cur.execute("ANALYZE edits")
                assert not cur.execute(SAVE_CLASH["postgres"]).fetchall()
                cur.execute(SAVE_INSERT.replace("?", "%s"), ["bench", datetime.now(), "bench"])
                copy_csv(cur, "audit", audit_frame(state["edits"]))

        first = add_months(latest, -11)
        keys = pd.DataFrame(
            con.execute(UPLOAD_KEYS.replace("?", "%s"), [first, args.upload]).fetchall(),
            columns=["kpi_id", "unit_id", "period", "value"],
        )
        moving = pd.DataFrame(
            {
                "kpi_id": keys["kpi_id"],
                "unit_id": keys["unit_id"],
                "period": keys["period"],
                "old": keys["value"],
                "new": keys["value"] * 1.01,
            }
        )

        def upload():
            with con.transaction(), con.cursor() as cur:
                cur.execute(
                    "CREATE TEMP TABLE moving (kpi_id int, unit_id int, period date,"
                    " old float8, new float8) ON COMMIT DROP"
                )
                copy_csv(cur, "moving", moving)
                cur.execute("ANALYZE moving")
                for sql in UPLOAD["postgres"]:
                    if sql == "SET_ID":
                        set_id = cur.execute(SET_ID["postgres"]).fetchone()[0]
                    elif "VALUES (%s, %s, %s, %s)" in sql:
                        cur.execute(sql, [set_id, datetime.now(), "bench", "bench"])
                    elif "value_change SELECT" in sql:
                        cur.execute(sql, [set_id])
                    elif "%s" in sql:
                        cur.execute(sql, [1])
                    else:
                        cur.execute(sql)

        return {
            "w1": median_ms(save, args.write_repeat, prepare_save),
            "w2": median_ms(upload, args.write_repeat),
        }


# -- the run ----------------------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    if args.worker:
        worker(json.loads(Path(args.worker).read_text()))
        return
    import psycopg

    from tests.pgserver import PgServer

    print(f"start: {load()}, {os.cpu_count()} cores")
    path = Path(args.path)
    if not path.exists():
        subprocess.run([sys.executable, str(ROOT / "bench" / "make_warehouse.py"),
                        "--path", str(path)], check=True)  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="kpi_bench_scale_"))
    work = tmp / "file.duckdb"
    shutil.copyfile(path, work)  # the writes change it
    wh = Warehouse(work, linger=0)
    cat = load_catalog(wh)
    picked = pick_cases(wh, cat)
    n_actual = wh.one("SELECT count(*) FROM actual")[0]
    print(f"{path}: {n_actual:,} actuals, {len(cat.units)} units, {len(cat.kpis)} KPIs; cases "
          f"leaf={cat.units[picked['leaf']].code} trend={cat.kpis[picked['trend_kpi']].code} "
          f"latest={picked['latest']}")  # fmt: skip

    report: dict[str, dict] = {}
    t, file_results = run_cases(wh, cat, picked, args.repeat)
    report["duckdb 2.0 file"] = t
    problems: list[str] = []

    with PgServer() as server:
        server.create_database("kpi")
        server.create_database("lake")
        server.create_database("lake_mig")
        # Copies first: the writes below change the file.
        copy_s = pg_copy_tables(server, "kpi", wh)
        print(f"PostgreSQL {server.execute('SHOW server_version')[0][0]}: copied in {copy_s:.1f} s")
        tables = export_parquet(wh, tmp / "parquet")
        t.update(duckdb_writes(wh, "duckdb", picked, args))
        file_results["after"] = after_writes(wh.one)
        pg = PgWarehouse(server.dsn(db="kpi"))
        t, pg_results = run_cases(pg, cat, picked, args.repeat)
        problems += compare(file_results, pg_results, "postgres")
        t.update(pg_writes(server.dsn(db="kpi"), picked, args))
        pg_results["after"] = after_writes(pg.one)
        problems += compare(file_results, pg_results, "postgres", ("after",))
        report["postgresql 15"] = t
        pg.close()
        writers = {"postgresql 15": two_writers(
            lambda: psycopg.connect(server.dsn(db="kpi"), autocommit=True), picked)}  # fmt: skip

        if not args.no_lake:
            python = ensure_lake_venv(Path(args.lake_venv))
            job = {
                "tmp": str(tmp), "dsn": server.dsn(db="lake"), "dsn_mig": server.dsn(db="lake_mig"),
                "tables": tables, "picked": picked, "repeat": args.repeat, "cells": args.cells,
                "upload": args.upload, "write_repeat": args.write_repeat,
            }  # fmt: skip
            (tmp / "job.json").write_text(json.dumps(job))
            print(f"DuckLake: {load()}; running in {python} …", flush=True)
            r = subprocess.run(
                [str(python), str(Path(__file__).resolve()), "--worker", str(tmp / "job.json")],
                capture_output=True, text=True, cwd=tmp,
            )  # fmt: skip
            line = next((x for x in r.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                print(r.stdout[-3000:], r.stderr[-3000:])
                raise SystemExit("the DuckLake worker failed")
            lake = json.loads(line[len("RESULT ") :])
            m = lake["migrations"]
            print(f"DuckLake on duckdb {lake['duckdb']}: copied in {lake['copy_s']:.1f} s "
                  f"({lake['lake_files'][0]} Parquet files, {lake['lake_files'][1] / 1e6:.1f} MB);"
                  f" migrations: {len(m['failed'])} of {m['statements']} statements fail")  # fmt: skip
            for f in m["failed"]:
                print("  " + f)
            n, size = lake["lake_files_after"]
            print(f"  after the writes: {n} Parquet files ({size / 1e6:.1f} MB), "
                  f"{lake['lake_snapshots']} snapshots in the catalog")  # fmt: skip
            writers["ducklake"] = lake["writers"]
            for name in ("ducklake", "duckdb 1.5.5 file"):
                report[name] = lake[name]["times"]
                problems += compare(file_results, lake[name]["results"], name)
                problems += compare(file_results, lake[name]["results"], name, ("after",))
                print(f"  {name}: catalog loaded in {lake[name]['catalog_ms']:.0f} ms")
    wh.close()
    shutil.rmtree(tmp, ignore_errors=True)

    print("check: ok" if not problems else f"check: {len(problems)} differences")
    for p in problems[:20]:
        print("  " + p)
    print(f"\nend: {load()}; median ms of {args.repeat} runs (reads), {args.write_repeat} (writes)")
    labels = {
        "q": "(q) one-row query (the floor)",
        "i": "(i) scorecard, leaf, month",
        "ii": "(ii) roll-up, company, year",
        "iii": "(iii) trend, 36 months",
        "w1": f"(w1) target save, {args.cells} rows",
        "w2": f"(w2) upload write, {args.upload:,} values",
    }
    engines = list(report)
    print(f"{'case':<34}" + "".join(f"{e:>22}" for e in engines))
    base = report[engines[0]]
    for key, label in labels.items():
        cells = []
        for e in engines:
            med = report[e][key][0]
            ratio = "" if e == engines[0] else f" ({med / base[key][0]:.1f}×)"
            cells.append(f"{med:.1f}{ratio}")
        print(f"{label:<34}" + "".join(f"{c:>22}" for c in cells))
    print("\nspread (min–max ms):")
    for key, label in labels.items():
        print(f"  {label:<34}" + "; ".join(
            f"{e} {report[e][key][1]:.1f}–{report[e][key][2]:.1f}" for e in engines))  # fmt: skip
    print(
        "\ntwo writers at once (two connections, as two app servers; B writes after A, before A commits):"
    )
    for engine, res in writers.items():
        for name, what in res.items():
            print(f"  {engine:<14} {name:<54} {what}")
    print("\nPostgreSQL: rewrites of the engine's read SQL:")
    for t in TRANSLATIONS:
        print("  - " + t)
    if problems:
        raise SystemExit("an engine disagrees with the file (see the check above)")


if __name__ == "__main__":
    main()
