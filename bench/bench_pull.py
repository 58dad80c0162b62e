"""Time a database pull (PostgreSQL order lines → monthly KPIs → committed batch) against reading
the same query with `pandas.read_sql`.

    python bench/bench_pull.py [--lines 1000000] [--units 50] [--repeat 3] [--no-memory]

Each run starts its own PostgreSQL server in a temp dir (tests/pgserver.py; Debian's `postgresql`
package) and loads --lines order lines for --units regions into it (deterministic from --seed;
nothing is cached between runs), and builds a warehouse holding the demo company plus one sales
unit per region (`SALES_R01` …, added through `service.import_workbook` as an admin would).

The source's query returns the raw order lines joined to their orders (`LINES_QUERY`); its
mapping profile sums `unit_price × quantity × (1 − discount)` into REV and counts distinct
orders into ORDERS, per month of `order_date` and unit (`region` mapped to the unit codes).

Timed, in turns, median of --repeat runs after a warm-up run that is also the check:
  read_sql  `pandas.read_sql(LINES_QUERY, engine)`: the raw lines in one frame (the baseline);
  pull      `sources.prepare_pull` + `intake.commit` on a fresh copy of the warehouse;
  group-by  `pandas.read_sql` of the same aggregation done by PostgreSQL (the floor: what a
            pull that pushed its aggregation down to the source would cost at least);
  1 month   an incremental pull of the last month only (`first=last=`).
With memory on (the default), the peak resident memory of the pull and of read_sql, each in a
fresh subprocess (VmHWM, reset just before the work).

The check: after the warm-up pull, every unit × month's REV and ORDERS in the warehouse equal
PostgreSQL's own GROUP BY of the same lines (and that equals the generator's pandas values).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere
from kpi_core import access, demo, service, workbook  # noqa: E402
from kpi_core.catalog import load_catalog  # noqa: E402
from kpi_core.ingest import intake, profile  # noqa: E402
from kpi_core.warehouse import Warehouse  # noqa: E402
from tests.pgserver import (  # noqa: E402
    LINES_QUERY,
    MONTHLY_REVENUE_PG,
    PgServer,
    generate_orders,
    load_orders,
)

TODAY = date(2026, 11, 21)  # the demo's actuals end 2026-10
PASSWORD_VAR = "KPI_SOURCE_SECRET_BENCH"  # sources store ${VAR} (their vault), never the password
DB = "erp"
SOURCE = "bench_erp"
REL_TOL = 1e-9


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lines", type=int, default=1_000_000, help="order lines in PostgreSQL")
    p.add_argument("--units", type=int, default=50, help="regions = sales units")
    p.add_argument("--first", default="2024-01", help="first month of order dates")
    p.add_argument("--last", default="2026-10", help="last month of order dates")
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--child", nargs=3, metavar=("WHAT", "URL", "WAREHOUSE"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def unit_code(region: str) -> str:
    return f"SALES_{region}"


def make_source(url: str, regions: list[str]):
    from kpi_core.ingest import sources

    mapping = profile.Profile(
        name="bench_orders",
        date_column="order_date",
        unit_column="region",
        unit_map={r: unit_code(r) for r in regions},
        measures=[
            profile.Measure("REV", "sum", "=[unit_price] * [quantity] * (1 - [discount])"),
            profile.Measure("ORDERS", "count_distinct", "order_id"),
        ],
    )
    return sources.Source(SOURCE, url, LINES_QUERY, mapping, row_limit=10_000_000, timeout_s=600)


# ---------------------------------------------------------------------------------------------
# The warehouse


def build_warehouse(path: Path, regions: list[str]) -> float:
    """The demo company plus a sales unit per region, imported as an admin would."""
    t0 = time.perf_counter()
    wh = Warehouse(path, linger=0)
    service.ensure_demo(wh, today=demo.REFERENCE_TODAY)
    rows = [
        {"code": unit_code(r), "name_zh": f"销售区域{r}", "name_en": f"Sales region {r}",
         "parent": "SALES", "kind": "team"}
        for r in regions
    ]  # fmt: skip
    data = workbook.to_bytes({"org_units": pd.DataFrame(rows)})
    service.import_workbook(wh, data, access.SYSTEM, source_name="bench_units.xlsx")
    with wh.hold() as con:
        con.execute("CHECKPOINT")
    wh.close()
    return time.perf_counter() - t0


def fresh_copy(base: Path, tag: str) -> Path:
    path = base.parent / f"run-{os.getpid()}-{tag}.duckdb"
    drop(path)
    shutil.copyfile(base, path)
    return path


def drop(path: Path) -> None:
    for p in (path, Path(str(path) + ".wal")):
        p.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# The timed work


def read_sql(url: str, query: str = LINES_QUERY) -> pd.DataFrame:
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        return pd.read_sql(query, engine)
    finally:
        engine.dispose()


def pull(base: Path, source, *, first=None, last=None, check=None) -> tuple[float, float, object]:
    """prepare_pull + commit on a fresh copy: (prepare s, commit s, what check returned)."""
    from kpi_core.ingest import sources

    path = fresh_copy(base, "pull")
    wh = Warehouse(path, linger=0)
    gc.collect()
    try:
        with wh.hold():
            t0 = time.perf_counter()
            prepared = sources.prepare_pull(
                wh, source, access.SYSTEM, first=first, last=last, today=TODAY
            )
            t1 = time.perf_counter()
            committed = service.commit_actuals(wh, prepared, access.SYSTEM)
            t2 = time.perf_counter()
            got = check(wh, prepared, committed) if check else None
    finally:
        wh.close()
        drop(path)
    return t1 - t0, t2 - t1, got


def verify(pg: PgServer, data, regions: list[str]) -> Callable:
    """A check of the pulled warehouse against PostgreSQL's own GROUP BY of the same lines."""
    truth = pd.DataFrame(
        pg.execute(MONTHLY_REVENUE_PG, db=DB), columns=["month", "region", "revenue", "orders"]
    )
    truth["month"] = pd.to_datetime(truth["month"])
    truth["revenue"] = truth["revenue"].astype(float)
    truth["unit"] = truth["region"].map(unit_code)
    truth = truth.set_index(["month", "unit"]).sort_index()
    # PostgreSQL's GROUP BY against the generator's own pandas sums: is the data what we think?
    gen = data.monthly().rename(index=unit_code, level="region")
    gen.index = gen.index.set_names(["month", "unit"])
    gen_diff = ((gen["revenue"] - truth["revenue"]).abs() / truth["revenue"]).max()
    gen_ok = list(gen.index) == list(truth.index) and (gen["orders"] == truth["orders"]).all()

    def check(wh: Warehouse, prepared, committed) -> list[str]:
        problems = []
        errors = [f for f in prepared.findings if f.severity == "error"]
        if errors:
            problems.append(f"{len(errors)} errors, e.g. {intake.describe(errors[0])}")
        got = wh.df(
            """SELECT a.period AS month, u.code AS unit, k.code AS kpi, a.value, a.batch_id
               FROM actual a JOIN kpi k ON k.id = a.kpi_id JOIN org_unit u ON u.id = a.unit_id
               WHERE u.code LIKE 'SALES\\_R%' ESCAPE '\\' AND k.code IN ('REV', 'ORDERS')"""
        )
        got["month"] = pd.to_datetime(got["month"])
        wide = got.pivot_table(index=["month", "unit"], columns="kpi", values="value").sort_index()
        in_batch = int((got["batch_id"] == committed.batch_id).sum())
        same_keys = list(wide.index) == list(truth.index)
        if not same_keys:
            problems.append(
                f"unit × month keys: {len(wide)} in the warehouse, {len(truth)} in PostgreSQL"
            )
            wide = wide.reindex(truth.index)
        rel = ((wide["REV"] - truth["revenue"]).abs() / truth["revenue"]).max()
        orders_off = int((wide["ORDERS"] != truth["orders"]).sum())
        if not rel <= REL_TOL or orders_off:
            problems.append(f"REV max relative difference {rel:.2e}; ORDERS differ in {orders_off}")
        if in_batch != 2 * len(truth):
            problems.append(f"the batch holds {in_batch} values, expected {2 * len(truth)}")
        if not gen_ok or not gen_diff <= REL_TOL:
            problems.append(f"PostgreSQL's GROUP BY differs from the generated data ({gen_diff})")
        k = truth.index[len(truth) // 2]
        print(
            f"  pulled {len(wide):,} unit × month pairs ({len(regions)} units × "
            f"{truth.index.get_level_values('month').nunique()} months), batch "
            f"{committed.batch_id} holds {in_batch:,} values; REV max relative difference from "
            f"PostgreSQL's GROUP BY {rel:.1e}, ORDERS different in {orders_off}; PostgreSQL vs "
            f"generator {gen_diff:.1e}"
        )
        print(
            f"    sample {k[1]} {k[0]:%Y-%m}: REV warehouse {wide.at[k, 'REV']:,.2f}, PostgreSQL "
            f"{truth.at[k, 'revenue']:,.2f}; ORDERS {wide.at[k, 'ORDERS']:.0f} / "
            f"{truth.at[k, 'orders']}"
        )
        return problems

    return check


class Stages:
    """Seconds spent in the pull's module functions during one pull (None: not in kpi_core)."""

    WHAT = [  # (module attribute, label)
        ("sources._copy_postgres", "reading the source (COPY → CSV → DuckDB table)"),
        ("sources._records", "aggregating in DuckDB (profile → records)"),
        ("intake.check_and_diff", "checking and diffing (validate, diff, effects)"),
    ]

    def __init__(self):
        from kpi_core.ingest import sources

        self.spent: dict[str, float] = {}
        self._undo = []
        for name, _ in self.WHAT:
            module = {"sources": sources, "intake": intake}[name.split(".")[0]]
            attr = name.split(".")[1]
            orig = getattr(module, attr, None)
            if orig is None:
                continue
            self.spent[name] = 0.0
            wrapper = self._gen(name, orig) if name == "sources._chunks" else self._fn(name, orig)
            self._undo.append((module, attr, orig))
            setattr(module, attr, wrapper)

    def _fn(self, name, orig):
        def run(*a, **kw):
            t0 = time.perf_counter()
            try:
                return orig(*a, **kw)
            finally:
                self.spent[name] += time.perf_counter() - t0

        return run

    def _gen(self, name, orig):
        """A generator's time: only while it produces an item, not while its consumer works."""

        def run(*a, **kw):
            it = orig(*a, **kw)
            while True:
                t0 = time.perf_counter()
                try:
                    item = next(it)
                except StopIteration:
                    return
                finally:
                    self.spent[name] += time.perf_counter() - t0
                yield item

        return run

    def uninstall(self) -> None:
        for module, attr, orig in reversed(self._undo):
            setattr(module, attr, orig)


def timed(fn: Callable[[], object]) -> float:
    gc.collect()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------
# Peak memory, each in a fresh process


def _rss_kib() -> tuple[int, int]:
    """(current, peak) resident set size of this process in KiB, from /proc/self/status."""
    fields = dict(ln.split(":", 1) for ln in Path("/proc/self/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def child(what: str, url: str, warehouse: str) -> None:
    """In a subprocess: JSON with the resident set size (KiB) before the work and its peak
    during it (VmHWM reset just before the work through /proc/self/clear_refs)."""
    import sqlalchemy  # noqa: F401 - imported before the reset, as in a running app

    from kpi_core.ingest import sources

    regions = json.loads(os.environ["KPI_BENCH_REGIONS"])
    source = make_source(url, regions)
    if what == "pull":
        wh = Warehouse(warehouse, linger=0)
        load_catalog(wh)
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")
        how = "VmHWM"
    except OSError:
        how = "VmHWM (not reset: includes the start-up)"
    before = _rss_kib()[0]
    t0 = time.perf_counter()
    if what == "pull":
        with wh.hold():
            prepared = sources.prepare_pull(wh, source, access.SYSTEM, today=TODAY)
            service.commit_actuals(wh, prepared, access.SYSTEM)
        wh.close()
    else:
        n = len(read_sql(sources.resolve(url)))
        assert n > 0
    secs = time.perf_counter() - t0
    print(json.dumps({"before": before, "peak": _rss_kib()[1], "secs": secs, "how": how}))


def peak_rss(what: str, url: str, base: Path, regions: list[str]) -> dict:
    path = fresh_copy(base, f"rss-{what}")
    env = {**os.environ, "KPI_BENCH_REGIONS": json.dumps(regions)}
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--child", what, url, str(path)],
            capture_output=True, text=True, env=env, timeout=600,
        )  # fmt: skip
    finally:
        drop(path)
    if out.returncode:
        raise SystemExit(f"the {what} subprocess failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def git_state() -> str:
    def git(*a):
        r = subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True)
        return r.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "?"
    dirty = git("status", "--porcelain", "--", "kpi_core").splitlines()
    return head + (f" + uncommitted changes in {len(dirty)} kpi_core file(s)" if dirty else "")


# ---------------------------------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    if args.child:
        child(*args.child)
        return
    try:
        from kpi_core.ingest import sources  # noqa: F401
    except ImportError as exc:
        raise SystemExit(f"kpi_core.ingest.sources is not there yet ({exc})") from None

    print(f"code: {git_state()}")
    work = Path(tempfile.mkdtemp(prefix="kpi_bench_pull_"))
    pg = PgServer()
    try:
        t0 = time.perf_counter()
        pg.start()
        print(f"PostgreSQL started in {time.perf_counter() - t0:.1f} s on 127.0.0.1:{pg.port}")
        pg.create_database(DB)
        t0 = time.perf_counter()
        data = generate_orders(args.lines, args.units, args.seed, (args.first, args.last))
        t1 = time.perf_counter()
        load_orders(pg, DB, args.lines, args.units, data=data)
        t2 = time.perf_counter()
        size = pg.execute("SELECT pg_size_pretty(pg_database_size(current_database()))", db=DB)
        print(
            f"data: {len(data.lines):,} order lines in {len(data.orders):,} orders, "
            f"{args.units} regions, {args.first} … {args.last}; generated in {t1 - t0:.1f} s, "
            f"loaded (COPY + keys + ANALYZE) in {t2 - t1:.1f} s; database {size[0][0]}"
        )
        base = work / "base.duckdb"
        print(f"warehouse: demo company + {args.units} sales units, built in "
              f"{build_warehouse(base, data.regions):.1f} s")  # fmt: skip

        os.environ[PASSWORD_VAR] = pg.reader_password
        url = pg.url(user=pg.reader, password="${" + PASSWORD_VAR + "}", db=DB)
        plain_url = pg.url(user=pg.reader, db=DB)
        source = make_source(url, data.regions)
        last_month = date.fromisoformat(args.last + "-01")

        print("check (warm-up pull, before timing):")
        prep, comm, problems = pull(base, source, check=verify(pg, data, data.regions))
        print("check: ok" if not problems else f"check: {len(problems)} problems")
        for p in problems:
            print("  " + p)
        n_rows = len(read_sql(plain_url))  # warm-up of the baseline

        runs: dict[str, list[float]] = {k: [] for k in ("read_sql", "pull", "prepare", "commit",
                                                        "group-by", "1 month")}  # fmt: skip
        for _ in range(args.repeat):
            runs["read_sql"].append(timed(lambda: read_sql(plain_url)))
            stages = Stages()
            try:
                prep, comm, _ = pull(base, source)
            finally:
                stages.uninstall()
            for name, secs in stages.spent.items():
                runs.setdefault(name, []).append(secs)
            runs.setdefault("prepare.rest", []).append(prep - sum(stages.spent.values()))
            runs["pull"].append(prep + comm)
            runs["prepare"].append(prep)
            runs["commit"].append(comm)
            runs["group-by"].append(timed(lambda: read_sql(plain_url, MONTHLY_REVENUE_PG)))
            prep, comm, _ = pull(base, source, first=last_month, last=last_month)
            runs["1 month"].append(prep + comm)
        med = {k: statistics.median(v) for k, v in runs.items()}

        load = os.getloadavg()
        print(
            f"\nmedian of {args.repeat} runs each, in turns; {os.cpu_count()} cores, load average "
            f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
        )
        rows = [
            ("read_sql", f"pandas.read_sql of the raw lines ({n_rows:,} rows) — the baseline"),
            ("pull", f"prepare_pull + commit, every month ({n_rows:,} lines → REV, ORDERS)"),
            ("prepare", "  of which prepare_pull (query, stream, aggregate, check, diff)"),
            *[(k, f"    {what}") for k, what in Stages.WHAT if k in runs],
            ("prepare.rest", "    rest: catalog, query checks, …"),
            ("commit", "  of which intake.commit"),
            ("group-by", "pandas.read_sql of PostgreSQL's own GROUP BY (the floor)"),
            ("1 month", f"incremental pull of {args.last} only (first = last)"),
        ]
        for key, what in rows:
            spread = f"{min(runs[key]):.2f}–{max(runs[key]):.2f}"
            print(f"  {what:<70} {med[key]:>7.2f} s  ({spread})")
        ratio = med["pull"] / med["read_sql"]
        print(f"  pull ÷ read_sql: {ratio:.2f}  (goal ≤ 1.00: {'PASS' if ratio <= 1 else 'MISS'})")

        if not args.no_memory:
            print("\npeak RSS, each in a fresh process (MiB):")
            peaks = {}
            for what in ("pull", "read_sql"):
                r = peak_rss(what, url if what == "pull" else plain_url, base, data.regions)
                peaks[what] = (r["peak"] - r["before"]) / 1024
                print(
                    f"  {what:<9} peak {r['peak'] / 1024:>6.0f}, before the work "
                    f"{r['before'] / 1024:>5.0f}, growth {peaks[what]:>6.0f}  "
                    f"({r['secs']:.1f} s; {r['how']})"
                )
            print(f"  pull's growth ÷ read_sql's: {peaks['pull'] / peaks['read_sql']:.2f}")
    finally:
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    if problems:
        raise SystemExit("the pull did not load PostgreSQL's monthly values (see the check above)")


if __name__ == "__main__":
    main()
