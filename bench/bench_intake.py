"""Time the Excel intake (file bytes → committed batch) against reading the same file with pandas.

    python bench/bench_intake.py [--repeat 3] [--big] [--profile]

Cases, each on a warehouse holding the demo company plus --extra-units position units (so that
100,000 distinct KPI × unit × month keys exist):
  long  a --rows (100,000) row sheet: 期间, 组织, 指标编码, 实际值 (KPI and unit codes, months
        2024-01 … 2026-10, no repeated key, every row valid);
  wide  12 sheets named 2025-11 … 2026-10, a row per unit (组织 = the unit's Chinese name) and a
        column per KPI (its Chinese name): --wide-units × --wide-kpis values per sheet;
  big   (--big) like long with --big-rows (500,000) rows; also peak RSS of the intake, of the raw
        calamine read and of pandas/openpyxl, each in a fresh subprocess.

For each case, the median of --repeat runs after one warm-up run (which is also the correctness
run): `intake.prepare` + `intake.commit` on a fresh copy of the same warehouse file, held open as
the command line holds it, so every commit writes the same rows. Beside it, on the same file:
`pandas.read_excel(sheet_name=None, engine="openpyxl")` (the slow baseline, --reader-repeat runs)
and calamine's raw read of every sheet (`CalamineWorkbook.from_path` + `to_python`, the floor).
The intake's time is split into its stages by timers wrapped around the module functions.

Generated files are cached in --dir (default: <tmp>/kpi_bench_intake, outside the repository),
keyed by the arguments that shape them and by the demo workbook's contents.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import hashlib
import io
import json
import os
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere
from kpi_core import access, actuals, collector, demo, service, workbook  # noqa: E402
from kpi_core.catalog import load_catalog  # noqa: E402
from kpi_core.ingest import files, intake, layout, validate, xlsx  # noqa: E402
from kpi_core.warehouse import Warehouse  # noqa: E402

# Others edit kpi_core while benches run: keep the source each module was imported from, so the
# line profiles below print the lines that actually ran.
SOURCES = {
    m.__file__: (Path(m.__file__).read_text().splitlines(), Path(m.__file__).stat().st_mtime)
    for m in (files, xlsx, layout, validate, intake, actuals)
}

GEN_VERSION = 2  # bump when the generated files change shape
TODAY = date(2026, 11, 21)  # demo actuals end 2026-10
FIRST_MONTH, LAST_MONTH = date(2024, 1, 1), date(2026, 10, 1)
WIDE_MONTHS = 12  # 2025-11 … 2026-10
GOAL_VS_OPENPYXL = 8.0  # intake at least this many times faster than pandas/openpyxl's read
GOAL_VS_CALAMINE = 2.0  # intake at most this many times calamine's raw read
STORED = ("sum", "avg", "last")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dir", default=str(Path(tempfile.gettempdir()) / "kpi_bench_intake"))
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--reader-repeat", type=int, default=1, help="runs of pandas/openpyxl")
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--wide-units", type=int, default=200)
    p.add_argument("--wide-kpis", type=int, default=40)
    p.add_argument("--extra-units", type=int, default=360, help="position units added to the demo")
    p.add_argument("--big", action="store_true", help="also the --big-rows case and peak RSS")
    p.add_argument("--big-rows", type=int, default=500_000)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--cases", default=None, help="comma-separated subset of long,wide,big")
    p.add_argument("--profile", action="store_true", help="cProfile + line_profiler of one run")
    p.add_argument(
        "--line",
        default=None,
        help="with --profile: stages to profile line by line (comma-separated, from "
        "read,layout,validate,diff,effects,commit); default the 3 slowest of each case",
    )
    p.add_argument(
        "--child", nargs=3, metavar=("WHAT", "FILE", "WAREHOUSE"), help=argparse.SUPPRESS
    )
    return p.parse_args(argv)


def months(first: date, last: date) -> list[date]:
    out, m = [], first
    while m <= last:
        out.append(m)
        m = date(m.year + (m.month == 12), m.month % 12 + 1, 1)
    return out


# ---------------------------------------------------------------------------------------------
# The bench warehouse and the files


def cache_key(args: argparse.Namespace, *fields: str) -> str:
    demo = hashlib.sha256(workbook.DEMO_WORKBOOK.read_bytes()).hexdigest()
    parts = [GEN_VERSION, demo, args.seed, args.extra_units] + [getattr(args, f) for f in fields]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:12]


def build_warehouse(path: Path, extra_units: int) -> float:
    """The demo company plus `extra_units` positions spread over its teams, via the system
    import as an admin would add them. Returns seconds taken."""
    t0 = time.perf_counter()
    tmp = path.with_suffix(".tmp.duckdb")
    tmp.unlink(missing_ok=True)
    wh = Warehouse(tmp, linger=0)
    service.ensure_demo(wh, today=demo.REFERENCE_TODAY)
    cat = load_catalog(wh)
    teams = sorted((u for u in cat.units.values() if u.kind == "team"), key=lambda u: u.id)
    rows = []
    for i in range(extra_units):
        team = teams[i % len(teams)]
        n = i // len(teams) + 1
        rows.append(
            {
                "code": f"{team.code}_P{n:03d}",
                "name_zh": f"{team.name_zh}岗位{n:03d}",
                "name_en": f"{team.name_en} – position {n}",
                "parent": team.code,
                "kind": "position",
            }
        )
    data = workbook.to_bytes({"org_units": pd.DataFrame(rows)})
    service.import_workbook(wh, data, access.SYSTEM, source_name="bench_units.xlsx")
    with wh.hold() as con:
        con.execute("CHECKPOINT")
    wh.close()
    tmp.rename(path)
    return time.perf_counter() - t0


@dataclass
class Universe:
    """What the generated files draw from: stored KPIs, units, and a plausible scale per KPI."""

    kpis: list  # stored Kpi objects, in sort order
    units: list  # Unit objects, by id
    median: dict[int, float]  # KPI id → median demo actual


def universe(base: Path) -> Universe:
    wh = Warehouse(base, linger=0)
    cat = load_catalog(wh)
    med = dict(wh.rows("SELECT kpi_id, median(value) FROM actual GROUP BY 1"))
    wh.close()
    kpis = sorted(
        (k for k in cat.kpis.values() if k.aggregation in STORED),
        key=lambda k: (k.sort_order, k.id),
    )
    units = sorted(cat.units.values(), key=lambda u: u.id)
    return Universe(kpis, units, {k: float(v) for k, v in med.items()})


def plausible(rng: np.random.Generator, kpi, median: float | None, n: int) -> np.ndarray:
    """n values for a KPI: fractions 0..1 for % KPIs, else positive numbers around the demo's
    typical value, within the KPI's min/max, rounded to its decimals."""
    if kpi.is_percent:
        centre = min(max(median if median else 0.8, 0.05), 0.95)
        v = np.clip(centre + rng.normal(0, 0.05, n), 0.001, 0.999)
        return np.round(v, 4)
    scale = median if median and median > 0 else 10.0
    v = scale * rng.lognormal(0.0, 0.25, n)
    if kpi.max_value is not None:
        v = np.minimum(v, kpi.max_value)
    decimals = 2 if kpi.decimals is None else kpi.decimals
    v = np.round(v, decimals)
    step = 10.0**-decimals
    v = np.maximum(v, step)  # positive, also after rounding
    if kpi.min_value is not None:
        v = np.maximum(v, kpi.min_value + step)
    return v


def long_frame(u: Universe, n_rows: int, seed: int) -> pd.DataFrame:
    """n_rows distinct (month, unit, KPI) keys drawn at random, in month, unit, KPI order."""
    ms = months(FIRST_MONTH, LAST_MONTH)
    nk, nu, nm = len(u.kpis), len(u.units), len(ms)
    if n_rows > nk * nu * nm:
        raise SystemExit(
            f"{n_rows:,} rows need more keys than {nk} KPIs × {nu} units × {nm} months — "
            "raise --extra-units"
        )
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(nk * nu * nm, size=n_rows, replace=False))
    m_i, rest = np.divmod(idx, nu * nk)
    u_i, k_i = np.divmod(rest, nk)
    value = np.empty(n_rows)
    for j, k in enumerate(u.kpis):
        sel = k_i == j
        value[sel] = plausible(rng, k, u.median.get(k.id), int(sel.sum()))
    return pd.DataFrame(
        {
            "期间": np.array([m.strftime("%Y-%m") for m in ms], dtype=object)[m_i],
            "组织": np.array([x.code for x in u.units], dtype=object)[u_i],
            "指标编码": np.array([k.code for k in u.kpis], dtype=object)[k_i],
            "实际值": value,
            # for the checks, not written
            "kpi_id": np.array([k.id for k in u.kpis])[k_i],
            "unit_id": np.array([x.id for x in u.units])[u_i],
            "period": np.array(ms, dtype="datetime64[D]")[m_i],
        }
    )


def wide_frames(u: Universe, n_units: int, n_kpis: int, seed: int) -> dict[str, pd.DataFrame]:
    """Per month (sheet name): a row per unit, a column per KPI (Chinese names)."""
    if n_units > len(u.units) or n_kpis > len(u.kpis):
        raise SystemExit(f"the warehouse has {len(u.units)} units and {len(u.kpis)} stored KPIs")
    rng = np.random.default_rng(seed + 1)
    units = [u.units[i] for i in np.sort(rng.choice(len(u.units), n_units, replace=False))]
    kpis = u.kpis[:n_kpis]
    out = {}
    for m in months(FIRST_MONTH, LAST_MONTH)[-WIDE_MONTHS:]:
        sheet = {"组织": [x.name_zh for x in units]}
        for k in kpis:
            sheet[k.name_zh] = plausible(rng, k, u.median.get(k.id), n_units)
        df = pd.DataFrame(sheet)
        df.attrs["unit_id"] = [x.id for x in units]
        df.attrs["kpi_id"] = [k.id for k in kpis]
        df.attrs["period"] = m
        out[m.strftime("%Y-%m")] = df
    return out


def wide_expected(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    parts = []
    for df in frames.values():
        values = df.drop(columns="组织").to_numpy()
        n_u, n_k = values.shape
        parts.append(
            pd.DataFrame(
                {
                    "kpi_id": np.tile(df.attrs["kpi_id"], n_u),
                    "unit_id": np.repeat(df.attrs["unit_id"], n_k),
                    "period": np.datetime64(df.attrs["period"], "D"),
                    "实际值": values.ravel(),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def write_xlsx(path: Path, sheets: dict[str, pd.DataFrame]) -> float:
    """xlsxwriter with shared strings, as Excel writes them (its constant_memory mode would write
    inline strings instead); written to a temp name, then renamed."""
    import xlsxwriter

    t0 = time.perf_counter()
    tmp = path.with_suffix(".tmp.xlsx")
    book = xlsxwriter.Workbook(str(tmp))
    for name, df in sheets.items():
        ws = book.add_worksheet(name)
        ws.write_row(0, 0, list(df.columns))
        cols = [df[c].tolist() for c in df.columns]
        for r, row in enumerate(zip(*cols, strict=True), start=1):
            ws.write_row(r, 0, row)
    book.close()
    tmp.rename(path)
    return time.perf_counter() - t0


@dataclass
class Case:
    name: str
    label: str
    path: Path
    expected: pd.DataFrame  # kpi_id, unit_id, period, 实际值
    values: int


def prepare_cases(args: argparse.Namespace, base: Path) -> list[Case]:
    u = universe(base)
    wanted = (
        args.cases.split(",") if args.cases else ["long", "wide"] + (["big"] if args.big else [])
    )
    out = []
    for name in wanted:
        if name in ("long", "big"):
            n = args.rows if name == "long" else args.big_rows
            df = long_frame(u, n, args.seed + (name == "big"))
            path = (
                Path(args.dir)
                / f"{name}-{n}-{cache_key(args, 'rows' if name == 'long' else 'big_rows')}.xlsx"
            )
            sheets = {"实际值": df[["期间", "组织", "指标编码", "实际值"]]}
            exp = df[["kpi_id", "unit_id", "period", "实际值"]]
            label = f"{name}: 1 sheet × {n:,} rows"
        else:
            frames = wide_frames(u, args.wide_units, args.wide_kpis, args.seed)
            path = Path(args.dir) / (
                f"wide-{args.wide_units}x{args.wide_kpis}-"
                f"{cache_key(args, 'wide_units', 'wide_kpis')}.xlsx"
            )
            sheets = frames
            exp = wide_expected(frames)
            label = f"wide: {WIDE_MONTHS} sheets × {args.wide_units} units × {args.wide_kpis} KPIs"
        if path.exists():
            note = "cached"
        else:
            secs = write_xlsx(path, sheets)
            note = f"generated in {secs:.1f} s"
        print(f"  {path.name}: {path.stat().st_size / 2**20:.1f} MB, {len(exp):,} values ({note})")
        out.append(Case(name, label, path, exp.reset_index(drop=True), len(exp)))
    return out


# ---------------------------------------------------------------------------------------------
# Stage timers


class Stages:
    """Seconds spent in the intake's module functions, per run; nested ones are listed under
    their caller ("commit.diff" is the diff inside commit)."""

    def __init__(self):
        self.spent: dict[str, float] = defaultdict(float)
        self.phase = "prepare"
        self._undo: list[tuple[object, str, object]] = []

    missing: set[str] = set()  # functions the intake no longer has (renamed by its authors)

    def wrap(self, module, attr: str, label: str | Callable[[], str]) -> None:
        orig = getattr(module, attr, None)
        if orig is None:
            Stages.missing.add(f"{module.__name__}.{attr}")
            return

        def timed(*a, **kw):
            name = label() if callable(label) else label
            t0 = time.perf_counter()
            try:
                return orig(*a, **kw)
            finally:
                self.spent[name] += time.perf_counter() - t0

        self._undo.append((module, attr, orig))
        setattr(module, attr, timed)

    def install(self) -> None:
        self.wrap(intake, "load_catalog", "catalog")
        self.wrap(intake, "Names", "names")
        self.wrap(files, "read_file", "read")
        self.wrap(xlsx, "_oversized", "read.scan")
        self.wrap(xlsx, "_unreadable_cells", "read.scan")
        self._wrap_calamine()
        self.wrap(xlsx, "_pieces", "read.cut")
        self.wrap(xlsx, "_join_pieces", "read.pieces")
        self.wrap(layout, "read_table", "layout")
        self.wrap(validate, "check", "validate")
        self.wrap(validate, "_numbers", "validate.numbers")
        self.wrap(validate, "_duplicates", "validate.duplicates")
        self.wrap(
            intake, "_diff", lambda: f"{self.phase}.diff" if self.phase == "commit" else "diff"
        )
        self.wrap(intake, "_effects", "effects")
        self.wrap(intake, "_write", "commit.write")
        self.wrap(actuals, "refresh_summary", "commit.write.summary")
        self.wrap(intake, "_alert_after_load", "alerts")

    def _wrap_calamine(self) -> None:
        """calamine's own work inside read_file: open the book, and each sheet's to_python."""
        real = xlsx.CalamineWorkbook
        stages = self

        def timed(fn):
            def run(*a, **kw):
                if threading.current_thread().name.startswith("sheet-piece"):
                    return fn(*a, **kw)  # a piece's parsing: see read.pieces
                t0 = time.perf_counter()
                try:
                    return fn(*a, **kw)
                finally:
                    stages.spent["read.calamine"] += time.perf_counter() - t0

            return run

        class Sheet:
            def __init__(self, sheet):
                self._s = sheet
                self.to_python = timed(sheet.to_python)

            def __getattr__(self, name):
                return getattr(self._s, name)

        class Book:
            def __init__(self, book):
                self._b = book

            def get_sheet_by_name(self, name):
                return Sheet(timed(self._b.get_sheet_by_name)(name))

            def __getattr__(self, name):
                return getattr(self._b, name)

        class Shim:
            def from_filelike(self, f):
                return Book(timed(real.from_filelike)(f))

            def __getattr__(self, name):  # anything else calamine offers, untimed
                return getattr(real, name)

        self._undo.append((xlsx, "CalamineWorkbook", real))
        xlsx.CalamineWorkbook = Shim()

    def uninstall(self) -> None:
        for module, attr, orig in reversed(self._undo):
            setattr(module, attr, orig)
        self._undo.clear()


BREAKDOWN = [  # (label, indent, what it is)
    ("catalog", 0, "load_catalog"),
    ("names", 0, "Names(cat)"),
    ("read", 0, "files.read_file"),
    ("read.calamine", 1, "calamine open + to_python of sheets read whole"),
    ("read.cut", 1, "_pieces: a long sheet cut into workbooks"),
    ("read.scan", 1, "_oversized + _unreadable_cells (regex; pieces parse meanwhile)"),
    ("read.pieces", 1, "_join_pieces: waiting for the pieces, then joining"),
    ("read.rest", 1, "zip checks, unzip, _grid of sheets read whole"),
    ("layout", 0, "layout.read_table"),
    ("validate", 0, "validate.check"),
    ("validate.numbers", 1, "_numbers"),
    ("validate.duplicates", 1, "_duplicates"),
    ("validate.rest", 1, "factorize, lookups, masks, frame"),
    ("diff", 0, "intake._diff (prepare)"),
    ("effects", 0, "intake._effects"),
    ("prepare.rest", 0, "rest of prepare (sha256, period_lock …)"),
    ("commit", 0, "intake.commit"),
    ("commit.diff", 1, "_diff again, in the transaction"),
    ("commit.write", 1, "_write"),
    ("commit.write.summary", 2, "actuals.refresh_summary"),
    ("commit.rest", 1, "batch row, counts, COMMIT"),
    ("alerts", 0, "after the commit, beside it: alert rules on the loaded months"),
]


def derived(spent: dict[str, float], prepare_s: float, commit_s: float) -> dict[str, float]:
    s = dict(spent)
    s["read.rest"] = s.get("read", 0) - sum(
        s.get(k, 0) for k in ("read.calamine", "read.cut", "read.scan", "read.pieces")
    )
    s["validate.rest"] = (
        s.get("validate", 0) - s.get("validate.numbers", 0) - s.get("validate.duplicates", 0)
    )
    top = ("catalog", "names", "read", "layout", "validate", "diff", "effects")
    s["prepare.rest"] = prepare_s - sum(s.get(t, 0) for t in top)
    s["commit"] = commit_s
    s["commit.rest"] = commit_s - s.get("commit.diff", 0) - s.get("commit.write", 0)
    return s


# ---------------------------------------------------------------------------------------------
# Running the intake


def fresh_copy(base: Path, tag: str) -> Path:
    path = base.parent / f"run-{os.getpid()}-{tag}.duckdb"
    for p in (path, Path(str(path) + ".wal")):
        p.unlink(missing_ok=True)
    shutil.copyfile(base, path)
    return path


def drop(path: Path) -> None:
    for p in (path, Path(str(path) + ".wal")):
        p.unlink(missing_ok=True)


def run_intake(base: Path, case: Case, data: bytes, check: bool = False, limits=None):
    """One intake on a fresh copy: (prepare s, commit s, stage seconds, check problems)."""
    path = fresh_copy(base, case.name)
    wh = Warehouse(path, linger=0)
    stages = Stages()
    stages.install()
    gc.collect()
    try:
        with wh.hold():  # as the command line holds the file for a whole command
            t0 = time.perf_counter()
            prepared = intake.prepare(
                wh, [(case.path.name, data)], access.SYSTEM, today=TODAY, limits=limits
            )
            t1 = time.perf_counter()
            stages.phase = "commit"
            committed = service.commit_actuals(wh, prepared, access.SYSTEM)
            t2 = time.perf_counter()
            # The alert rules run after the commit on a thread of their own (timed as a stage,
            # outside the intake's time); the next run must not overlap them.
            committed.wait_for_alerts()
            problems = verify(wh, case, prepared, committed) if check else []
    finally:
        stages.uninstall()
        wh.close()
        drop(path)
    return t1 - t0, t2 - t1, dict(stages.spent), problems


def verify(wh: Warehouse, case: Case, prepared, committed) -> list[str]:
    """After commit the warehouse holds exactly the file's rows: every value, in this batch."""
    problems = []
    exp = case.expected
    shown = [f for f in prepared.findings if f.severity != "info"]
    if shown:
        problems.append(f"{len(shown)} findings, e.g. {intake.describe(shown[0])}")
    # A file value equal to the demo's own (a count KPI, say) is "unchanged": left alone.
    c = committed.counts
    written = c["new"] + c["changed"]
    if prepared.invalid or written + c["unchanged"] != len(exp) or c["removed"]:
        problems.append(f"counts {c}, expected {len(exp):,} new, changed or unchanged")
    frame = pd.DataFrame(
        {
            "kpi_id": exp["kpi_id"].astype("int32"),
            "unit_id": exp["unit_id"].astype("int32"),
            "period": pd.to_datetime(exp["period"]).dt.date,
            "value": exp["实际值"].astype(float),
        }
    )
    with wh.cursor() as cur:
        cur.register("expected", frame)
        n_batch, n_match, n_equal = cur.execute(
            """SELECT (SELECT count(*) FROM actual WHERE batch_id = ?),
                      count(a.value), count(*) FILTER (WHERE abs(a.value - e.value)
                                                       <= 1e-9 * greatest(1, abs(e.value)))
               FROM expected e LEFT JOIN actual a ON a.kpi_id = e.kpi_id
                    AND a.unit_id = e.unit_id AND a.period = e.period""",
            [committed.batch_id],
        ).fetchone()
        dup = cur.execute(
            "SELECT count(*) FROM (SELECT 1 FROM actual GROUP BY kpi_id, unit_id, period "
            "HAVING count(*) > 1)"
        ).fetchone()[0]
        sample = cur.execute(
            """SELECT k.code, u.code, strftime(e.period, '%Y-%m'), e.value, a.value
               FROM (SELECT * FROM expected USING SAMPLE reservoir(3 ROWS) REPEATABLE (1)) e
               JOIN kpi k ON k.id = e.kpi_id JOIN org_unit u ON u.id = e.unit_id
               LEFT JOIN actual a ON a.kpi_id = e.kpi_id AND a.unit_id = e.unit_id
                    AND a.period = e.period ORDER BY 3, 2, 1"""
        ).fetchall()
        cur.unregister("expected")
    if n_batch != written or not (n_match == n_equal == len(exp)) or dup:
        problems.append(
            f"warehouse: {n_batch:,} rows in the batch, {n_match:,} of {len(exp):,} file rows "
            f"found, {n_equal:,} equal; {dup} duplicated keys"
        )
    samples = "; ".join(f"{k}@{u} {p}: file {fv:g}, warehouse {wv:g}" for k, u, p, fv, wv in sample)
    print(
        f"  {case.name}: batch {committed.batch_id} holds {n_batch:,} rows; {n_equal:,} of "
        f"{len(exp):,} file values found equal in the warehouse; {dup} duplicated keys; "
        f"counts {c}"
    )
    print(f"    sample: {samples}")
    return problems


def calamine_read(path: Path, paused: bool = False) -> int:
    """calamine's raw read of every sheet; `paused`: with the garbage collector paused, as the
    intake reads (kpi_core.collector), so the floor gets the same help."""
    from python_calamine import CalamineWorkbook

    with collector.paused() if paused else contextlib.nullcontext():
        book = CalamineWorkbook.from_path(str(path))
        return sum(len(book.get_sheet_by_name(s).to_python()) for s in book.sheet_names)


def openpyxl_read(path: Path) -> int:
    return sum(len(df) for df in pd.read_excel(path, sheet_name=None, engine="openpyxl").values())


def timed_runs(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


# ---------------------------------------------------------------------------------------------
# Peak memory, each in a fresh process


def _rss_kib() -> tuple[int, int]:
    """(current, peak) resident set size of this process in KiB, from /proc/self/status."""
    fields = dict(ln.split(":", 1) for ln in Path("/proc/self/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def child(what: str, file: str, warehouse: str) -> None:
    """Runs in a subprocess: prints JSON with the resident set size (KiB) before the work and
    its peak during it. The peak is reset just before the work (/proc/self/clear_refs), since
    ru_maxrss would still hold the high-water mark of the parent this process was forked from."""
    data = Path(file).read_bytes()
    if what == "intake":
        wh = Warehouse(warehouse, linger=0)
        load_catalog(wh)  # the schema and catalog are there before the upload arrives
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")
        how = "VmHWM"
    except OSError:
        how = "ru_maxrss (not reset: includes the parent's peak)"
    before = _rss_kib()[0]
    marks: list[tuple[str, int, int]] = []  # (after stage, RSS, peak so far)

    def marked(orig, label):
        def run(*a, **kw):
            try:
                return orig(*a, **kw)
            finally:
                marks.append((label, *_rss_kib()))

        return run

    if what == "intake":
        for module, attr, label in (
            (files, "read_file", "read"), (layout, "read_table", "layout"),
            (validate, "check", "validate"), (intake, "_diff", "diff"),
            (intake, "_effects", "effects"), (intake, "_write", "write"),
        ):  # fmt: skip
            setattr(module, attr, marked(getattr(module, attr), label))
    t0 = time.perf_counter()
    if what == "intake":
        with wh.hold():
            prepared = intake.prepare(wh, [(Path(file).name, data)], access.SYSTEM, today=TODAY)
            service.commit_actuals(wh, prepared, access.SYSTEM).wait_for_alerts()
        wh.close()
    elif what == "calamine":
        calamine_read(Path(file))
    else:
        openpyxl_read(Path(file))
    secs = time.perf_counter() - t0
    peak = _rss_kib()[1] if how == "VmHWM" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"before": before, "peak": peak, "secs": secs, "how": how, "marks": marks}))


def peak_rss(what: str, case: Case, base: Path) -> dict:
    path = fresh_copy(base, f"rss-{what}")
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--child", what, str(case.path), str(path)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    finally:
        drop(path)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# Profiles


LINE_TARGETS = {  # stage → functions to profile line by line
    "read": ["xlsx._read_xlsx", "xlsx._read_calamine"],
    "layout": ["layout.read_table", "layout._emit", "layout._at", "layout._add"],
    "validate": ["validate.check", "validate._numbers"],
    "diff": ["intake._diff"],
    "effects": ["intake._effects"],
    "commit": ["intake.commit", "intake._write"],
}
MODULES = {"files": files, "xlsx": xlsx, "layout": layout, "validate": validate, "intake": intake}


def git_state() -> str:
    def git(*a):
        r = subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True)
        return r.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "?"
    dirty = git("status", "--porcelain", "--", "kpi_core").splitlines()
    return head + (f" + uncommitted changes in {len(dirty)} kpi_core file(s)" if dirty else "")


def profile_case(base: Path, case: Case, data: bytes, slowest: list[str]) -> None:
    print(f"\n=== cProfile of one {case.name} intake (prepare + commit), top 25 by own time ===")
    path = fresh_copy(base, "prof")
    wh = Warehouse(path, linger=0)
    prof = cProfile.Profile()
    with wh.hold():
        prof.enable()
        prepared = intake.prepare(wh, [(case.path.name, data)], access.SYSTEM, today=TODAY)
        service.commit_actuals(wh, prepared, access.SYSTEM).wait_for_alerts()
        prof.disable()
    wh.close()
    drop(path)
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(25)
    lines = out.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if "ncalls" in line)
    print("\n".join(line.replace(str(ROOT) + "/", "") for line in lines[start:] if line.strip()))

    try:
        from line_profiler import LineProfiler
    except ImportError:
        print("(pip install line_profiler for line-level profiles)")
        return
    wanted = [f for s in slowest for f in LINE_TARGETS.get(s, [])]
    funcs = [getattr(MODULES[m], n, None) for m, n in (w.split(".") for w in wanted)]
    wanted = [w for w, f in zip(wanted, funcs, strict=True) if f is not None]
    funcs = [f for f in funcs if f is not None]
    if not funcs:
        return
    print(
        f"\n=== line_profiler of {', '.join(wanted)} ({case.name}; lines ≥ 1 % of their function;"
        " a line's time includes the calls it makes) ==="
    )
    lp = LineProfiler(*funcs)
    path = fresh_copy(base, "prof")
    wh = Warehouse(path, linger=0)
    with wh.hold():
        lp.enable_by_count()
        prepared = intake.prepare(wh, [(case.path.name, data)], access.SYSTEM, today=TODAY)
        service.commit_actuals(wh, prepared, access.SYSTEM).wait_for_alerts()
        lp.disable_by_count()
    wh.close()
    drop(path)
    stats = lp.get_stats()
    for (filename, first, func), timings in stats.timings.items():
        if not timings:
            continue
        src, mtime = SOURCES.get(filename, ([], 0.0))
        total = sum(t for _, _, t in timings) * stats.unit
        changed = (
            " (file changed on disk since import)"
            if Path(filename).stat().st_mtime != mtime
            else ""
        )
        print(f"--- {func} ({Path(filename).relative_to(ROOT)}:{first}): {total:.3f} s{changed}")
        print(f"  {'line':>5} {'hits':>8} {'ms':>9} {'%':>6}  source")
        for lineno, hits, t in timings:
            sec = t * stats.unit
            if sec >= 0.01 * total:
                text = src[lineno - 1].strip() if lineno <= len(src) else "?"
                print(
                    f"  {lineno:>5} {hits:>8} {sec * 1000:>9.1f} {100 * sec / total:>5.1f}%  {text[:100]}"
                )


# ---------------------------------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    if args.child:
        child(*args.child)
        return
    cache = Path(args.dir)
    cache.mkdir(parents=True, exist_ok=True)
    base = cache / f"base-{cache_key(args)}.duckdb"
    print(f"code: {git_state()}")
    print(f"files in {cache}:")
    if base.exists():
        print(f"  {base.name}: cached")
    else:
        print(f"  {base.name}: built in {build_warehouse(base, args.extra_units):.1f} s")
    cases = prepare_cases(args, base)
    u = universe(base)
    print(f"  warehouse: demo company + {args.extra_units} positions = {len(u.units)} units, "
          f"{len(u.kpis)} stored KPIs")  # fmt: skip

    print("checks (warm-up run of each case, before timing):")
    problems: list[str] = []
    datas = {c.name: c.path.read_bytes() for c in cases}
    for c in cases:
        problems += [f"{c.name}: {p}" for p in run_intake(base, c, datas[c.name], check=True)[3]]
    print("check: ok" if not problems else f"check: {len(problems)} problems")
    for p in problems:
        print("  " + p)

    results = {}
    floors: dict[str, tuple[float, float]] = {}
    for c in cases:
        runs = [run_intake(base, c, datas[c.name]) for _ in range(args.repeat)]
        # The floor is the faster of the plain read and the read with the collector paused.
        plain = timed_runs(lambda c=c: calamine_read(c.path), args.repeat)
        paused = timed_runs(lambda c=c: calamine_read(c.path, paused=True), args.repeat)
        calamine = min(plain, paused, key=statistics.median)
        floors[c.name] = (statistics.median(plain), statistics.median(paused))
        openpyxl = timed_runs(lambda c=c: openpyxl_read(c.path), args.reader_repeat)
        results[c.name] = (runs, calamine, openpyxl)

    load = os.getloadavg()
    print(
        f"\nmedian of {args.repeat} intake and calamine runs, {args.reader_repeat} openpyxl "
        f"run(s); {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    header = (
        f"{'case':<44} {'intake s':>8} {'prep s':>7} {'openpyxl s':>10} {'calamine s':>10} "
        f"{'int÷cal':>7} {'opx÷int':>7}  result"
    )
    print(header)
    print("-" * len(header))
    for c in cases:
        runs, calamine, openpyxl = results[c.name]
        total = statistics.median(p + m for p, m, _, _ in runs)
        prep = statistics.median(p for p, _, _, _ in runs)
        cal, opx = statistics.median(calamine), statistics.median(openpyxl)
        vs_cal, vs_opx = total / cal, opx / total
        misses = []
        if vs_opx < GOAL_VS_OPENPYXL:
            misses.append(f"< {GOAL_VS_OPENPYXL:.0f}× openpyxl")
        if vs_cal > GOAL_VS_CALAMINE:
            misses.append(f"> {GOAL_VS_CALAMINE:.0f}× calamine")
        verdict = "PASS" if not misses else "MISS (" + ", ".join(misses) + ")"
        print(
            f"{c.label:<44} {total:>8.2f} {prep:>7.2f} {opx:>10.2f} {cal:>10.2f} "
            f"{vs_cal:>6.1f}× {vs_opx:>6.1f}×  {verdict}"
        )
    print(
        f"goals: intake (prepare + commit) ≥ {GOAL_VS_OPENPYXL:.0f}× faster than "
        f"pandas.read_excel(engine='openpyxl'), and ≤ {GOAL_VS_CALAMINE:.0f}× calamine's raw read"
    )

    print(
        "calamine's read (median s), plain / with the collector paused: "
        + "; ".join(f"{n} {a:.2f} / {b:.2f}" for n, (a, b) in floors.items())
        + " — the faster is the floor"
    )

    print("\nspread (min–max s): ")
    for c in cases:
        runs, calamine, openpyxl = results[c.name]
        tot = [p + m for p, m, _, _ in runs]
        print(
            f"  {c.name:<5} intake {min(tot):.2f}–{max(tot):.2f}, calamine "
            f"{min(calamine):.2f}–{max(calamine):.2f}, openpyxl {min(openpyxl):.2f}–{max(openpyxl):.2f}"
        )

    print("\nwhere the intake's time goes (median s per stage; % of prepare + commit):")
    names = [c.name for c in cases]
    print(f"  {'stage':<58}" + "".join(f"{n:>16}" for n in names))
    split = {}
    for c in cases:
        runs = results[c.name][0]
        per_run = [derived(s, p, m) for p, m, s, _ in runs]
        total = statistics.median(p + m for p, m, _, _ in runs)
        split[c.name] = ({k: statistics.median(r.get(k, 0.0) for r in per_run)
                          for k, _, _ in BREAKDOWN}, total)  # fmt: skip
    for key, indent, what in BREAKDOWN:
        name = "  " * indent + f"{key.split('.')[-1] if indent else key} ({what})"
        cells = ""
        for n in names:
            sec, total = split[n][0][key], split[n][1]
            cells += f"{sec:>8.3f} {100 * sec / total:>5.1f}% "
        print(f"  {name:<58}{cells}")

    if Stages.missing:
        print(f"  (not timed, no longer in kpi_core: {', '.join(sorted(Stages.missing))})")

    if args.big or "big" in names:
        big = next((c for c in cases if c.name == "big"), None)
        if big is not None:
            print(f"\npeak RSS ({big.name}, each in a fresh process; MiB):")
            for what in ("intake", "calamine", "openpyxl"):
                r = peak_rss(what, big, base)
                print(
                    f"  {what:<9} peak {r['peak'] / 1024:>7.0f}, before the work "
                    f"{r['before'] / 1024:>5.0f}, growth {(r['peak'] - r['before']) / 1024:>6.0f}"
                    f"  ({r['secs']:.1f} s; {r['how']})"
                )
                if r["marks"]:
                    print(
                        "            after each stage, RSS / peak so far: "
                        + ", ".join(
                            f"{lb} {rss / 1024:.0f}/{pk / 1024:.0f}" for lb, rss, pk in r["marks"]
                        )
                    )
            print(f"  (file: {big.path.stat().st_size / 2**20:.1f} MB, {big.values:,} values)")

    if args.profile:
        for c in cases:
            s = split[c.name][0]
            tops = sorted(
                (k for k, indent, _ in BREAKDOWN if indent == 0 and k in LINE_TARGETS),
                key=lambda k: -s[k],
            )[:3]
            if args.line:
                tops = args.line.split(",")
            profile_case(base, c, datas[c.name], tops)

    if problems:
        raise SystemExit("the intake did not load exactly the file's rows (see the check above)")


if __name__ == "__main__":
    main()
