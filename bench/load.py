"""A protocol-level load bench: N sessions rerun a page of the real app, beside a hello page.

    python bench/load.py [--warehouse demo|large|PATH] [--sessions 1] [--runs 6] [--rounds 3]
                         [--page 'Board?unit=SALES&period=2026-10' ...] [--user admin]
                         [--password admin] [--port 8617] [--cold] [--profile]
                         [--processes 1,2] [--engines file,postgresql]

It starts `streamlit run app.py` from a temporary copy of the app's entry (app.py, the pages, and
one more page, `Hello`, that writes one line) on a temporary copy of the warehouse, so the hello
page is served by the same Streamlit in the same run. Each page is measured in turns with the
hello page (rounds × [hello, page1, page2, …]): N sessions (WebSockets to `/_stcore/stream`, as
tests/stream.py speaks it) each send `rerun_script` with the page and its query string `--runs`
times, reading until `script_finished`. The first run of every session (a first visit: session
state, pickers, sign-in check) is reported apart from the warm runs after it.

A warehouse with users is signed into through the app's own route (`/auth/signin`, the session
cookie `kpi_session`, kpi_core/sessions.py) as `--user`; one without users needs no sign-in.

`--processes 1,2` measures the same pages served by 1 and then 2 processes on one port
(kpi_core/serving.py: the processes behind nginx, which sends each browser to one process by its
sign-in cookie), each count started afresh on the same warehouse; every session signs in on its
own, as its own browser, so the sessions spread over the processes.

`--engines file,postgresql` runs all of it on each engine in turn, in the same run: the DuckDB file,
then the same warehouse kind in a throw-away PostgreSQL (tests/pgserver.py; `KPI_WAREHOUSE` its
URL). There each app process runs from a working directory of its own (its own copy of the app's
entry and links to the pages), as on separate machines; they share only the database.

`--cold` commits a write (a comment, through the core) before every round, so each round's first
runs read new data: the cold run the caches must pay once per commit.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

import httpx  # noqa: E402

from kpi_core import demo, serving  # noqa: E402
from kpi_core.warehouse import open_warehouse  # noqa: E402
from tests.stream import COOKIE, Session  # noqa: E402

HELLO = "Hello"
HELLO_PAGE = 'import streamlit as st\n\nst.write("hello")\n'

# Main pages and the query strings a user clicks to, per warehouse.
DEMO_PAGES = [
    "?lang=en",  # the Overview
    "Board?unit=SALES&period=2026-10&lang=en",
    "Trends?unit=SALES&kpi=REV&lang=en",
    "Tree?unit=GROUP&period=2026-10&lang=en",
    "Alerts?lang=en",
    "Targets?unit=SALES&lang=en",
    "Big_Screen?lang=en",
]
LARGE_PAGES = [
    "?lang=en",
    "Board?unit=U0001&lang=en",
    "Board?unit=U0100&lang=en",
    "Trends?unit=U0002&lang=en",
    "Tree?unit=U0001&lang=en",
    "Alerts?lang=en",
    "Targets?unit=U0002&lang=en",
]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--warehouse", default="demo", help="demo, large, or a DuckDB file to copy")
    p.add_argument("--sessions", type=int, default=1, help="concurrent sessions per page")
    p.add_argument("--runs", type=int, default=6, help="warm runs per session per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--page", action="append", help="page?query ('' page: the Overview)")
    p.add_argument("--user", default="admin")
    p.add_argument("--password", default="admin")
    p.add_argument("--port", type=int, default=8617)
    p.add_argument("--cold", action="store_true", help="commit a write before every round")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (its log)")
    p.add_argument("--processes", default="1", help="process counts to measure in turn, e.g. 1,2")
    p.add_argument("--engines", default="file", help="file, postgresql, or both: file,postgresql")
    return p.parse_args()


def make_warehouse(kind: str, path: str | Path) -> None:
    """The warehouse at `path`: a DuckDB file, or a PostgreSQL URL (the demo only)."""
    if kind == "demo":
        from kpi_core import service

        wh = open_warehouse(path, linger=0)
        service.ensure_demo(wh, today=demo.REFERENCE_TODAY)
        wh.close()
    elif str(path).startswith("postgresql"):
        raise SystemExit("--engines postgresql runs the demo warehouse only")
    elif kind == "large":
        subprocess.run(
            [sys.executable, str(ROOT / "bench" / "make_warehouse.py"), "--path", str(path)],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
    else:
        shutil.copyfile(kind, path)


def make_app(folder: Path) -> Path:
    """app.py and the pages as they are, plus the hello page: links to the files, not copies."""
    app = folder / "app"
    (app / "pages").mkdir(parents=True)
    shutil.copyfile(ROOT / "app.py", app / "app.py")  # st.App finds the pages beside its file
    shutil.copytree(
        ROOT / ".streamlit", app / ".streamlit", ignore=shutil.ignore_patterns("*.toml.example")
    )
    for page in (ROOT / "pages").glob("*.py"):
        (app / "pages" / page.name).symlink_to(page)
    (app / "pages" / f"99_{HELLO}.py").write_text(HELLO_PAGE)
    return app


def start(
    app: Path | list[Path], warehouse: str | Path, port: int, folder: Path, processes: int
) -> serving.Cluster:
    """`processes` Streamlit processes of the app on `port` (behind nginx when more than one);
    with a list of app folders, process i runs from folder i."""
    env = {"KPI_WAREHOUSE": str(warehouse), "PYTHONPATH": str(ROOT)}
    env["KPI_TODAY"] = os.environ.get("KPI_TODAY", demo.REFERENCE_TODAY.isoformat())
    logs = folder / f"logs-{processes}-{len(list(folder.glob('logs-*')))}"
    logs.mkdir()
    return serving.Cluster(processes, port, folder=logs, app_dir=app, env=env, address="127.0.0.1")


def sign_in(base: str, user: str, password: str) -> str:
    r = httpx.post(
        base + "/auth/signin", data={"user": user, "password": password, "next": "/"},
        headers={"Origin": base}, follow_redirects=False, timeout=60,
    )  # fmt: skip
    for header in r.headers.get_list("set-cookie"):
        if header.startswith(f"{COOKIE}="):
            return header.split(";")[0].split("=", 1)[1]
    raise SystemExit(f"signing in as {user} failed: {r.status_code} {r.headers.get('location')}")


def has_users(path: str | Path) -> bool:
    wh = open_warehouse(path, linger=0)
    try:
        return wh.one("SELECT count(*) FROM app_user")[0] > 0
    finally:
        wh.close()


@dataclass
class Tally:
    first: list[float] = field(default_factory=list)
    warm: list[float] = field(default_factory=list)
    busy: float = 0.0  # seconds the phases took, for throughput
    errors: list[str] = field(default_factory=list)


def phase(
    base: str, cookies: list[str | None], spec: str, sessions: int, runs: int, tally: Tally
) -> None:
    """`sessions` new sessions at once, each one first run then `runs` warm runs of `spec`;
    session i as the browser of `cookies[i % len(cookies)]`."""
    page, _, query = spec.partition("?")
    lock = threading.Lock()
    go = threading.Barrier(sessions)

    def one(cookie: str | None) -> None:
        try:
            with Session(base, cookie=cookie, timeout=300) as s:
                go.wait()
                first = s.run(page, query, texts=False)
                warm = [s.run(page, query, texts=False) for _ in range(runs)]
        except Exception as exc:  # reported below, the bench goes on
            with lock:
                tally.errors.append(f"{type(exc).__name__}: {exc}")
            return
        with lock:
            tally.first.append(first.seconds)
            tally.warm += [r.seconds for r in warm]
            for r in [first, *warm]:
                if r.exception:
                    tally.errors.append(r.exception.splitlines()[0])

    started = time.perf_counter()
    threads = [
        threading.Thread(target=one, args=(cookies[i % len(cookies)],)) for i in range(sessions)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tally.busy += time.perf_counter() - started


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def commit_something(path: str | Path) -> None:
    """A commit from another process, as the command line's would be: every cache keyed by
    the data version must miss on the next run."""
    wh = open_warehouse(path, linger=0)
    try:
        with wh.transaction():
            pass
    finally:
        wh.close()


def main() -> None:
    args = parse_args()
    pages = args.page or (LARGE_PAGES if args.warehouse == "large" else DEMO_PAGES)
    counts = [int(n) for n in args.processes.split(",")]
    engines = [e.strip() for e in args.engines.split(",")]
    folder = Path(tempfile.mkdtemp(prefix="kpi-load-"))
    server = None
    results = {}
    try:
        for engine in engines:
            if engine == "postgresql":
                from tests.pgserver import PgServer

                server = PgServer().start()
                server.create_database("kpi")
                warehouse: str | Path = server.url(db="kpi")
            else:
                warehouse = folder / "wh.duckdb"
            make_warehouse(args.warehouse, warehouse)
            for processes in counts:
                apps = (
                    [make_app(folder / f"{engine}-{processes}-{i}") for i in range(processes)]
                    if engine == "postgresql"
                    else make_app(folder / f"{engine}-{processes}")
                )
                tallies = measure(args, pages, apps, warehouse, folder, processes)
                results[(engine, processes)] = tallies
                report(args, tallies, tallies["load"], has_users(warehouse), processes, engine)
        if len(results) > 1:
            compare(results)
    finally:
        if server is not None:
            server.stop()
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def measure(
    args: argparse.Namespace,
    pages: list[str],
    app: Path | list[Path],
    warehouse: str | Path,
    folder: Path,
    processes: int,
) -> dict:
    """Every page in turns with the hello page, served by `processes` processes."""
    base = f"http://127.0.0.1:{args.port}"
    cluster = start(app, warehouse, args.port, folder, processes)
    try:
        # One sign-in per session: its own browser (and, behind nginx, its process).
        cookies = (
            [sign_in(base, args.user, args.password) for _ in range(args.sessions)]
            if has_users(warehouse)
            else [None]
        )
        specs = [f"{HELLO}?lang=en", *pages]
        tallies: dict = {spec: Tally() for spec in specs}
        tallies["load"] = os.getloadavg()[0]
        for _ in range(args.rounds):
            if args.cold:
                commit_something(warehouse)
            for spec in specs:
                phase(base, cookies, spec, args.sessions, args.runs, tallies[spec])
    finally:
        cluster.stop()
    return tallies


def compare(results: dict[tuple[str, int], dict]) -> None:
    """Throughput by engine and process count, page by page, beside the hello page's; the
    gain is each engine's last count over its first."""
    counts = list(results)
    print("runs/s by engine and processes: " + "  ".join(f"{e} ×{n}" for e, n in counts))
    for spec in [s for s in next(iter(results.values())) if s != "load"]:
        rates = []
        for n in counts:
            t = results[n][spec]
            rates.append((len(t.first) + len(t.warm)) / t.busy if t.busy else float("nan"))
        gains = []
        for engine in dict.fromkeys(e for e, _ in counts):
            mine = [r for (e, _), r in zip(counts, rates, strict=True) if e == engine]
            gains.append(f"{engine} ×{mine[-1] / mine[0]:.2f}" if mine[0] else "")
        print(f"{spec[:44]:44} " + " ".join(f"{r:8.1f}" for r in rates) + "   " + " ".join(gains))


def report(
    args: argparse.Namespace,
    tallies: dict[str, Tally],
    load: float,
    signed: bool,
    processes: int = 1,
    engine: str = "file",
) -> None:
    hello = tallies[f"{HELLO}?lang=en"]
    h50 = statistics.median(hello.warm) if hello.warm else float("nan")
    h_first = statistics.median(hello.first) if hello.first else float("nan")
    print(
        f"{engine}, {processes} process(es); "
        f"warehouse {args.warehouse}, {args.sessions} session(s) per page × {args.runs} warm "
        f"runs × {args.rounds} rounds{', cold rounds' if args.cold else ''}, "
        f"{'signed in as ' + args.user if signed else 'no users'}; "
        f"load average {load:.2f} → {os.getloadavg()[0]:.2f}"
    )
    print(
        f"{'page':44} {'first p50':>9} {'÷hello':>6} {'warm p50':>8} {'÷hello':>6} "
        f"{'p95':>6} {'max':>6} {'runs/s':>6}"
    )
    for spec, t in tallies.items():
        if spec == "load":
            continue
        if not t.warm:
            print(f"{spec:44} no runs: {t.errors[:1]}")
            continue
        first, warm = statistics.median(t.first), statistics.median(t.warm)
        rate = (len(t.first) + len(t.warm)) / t.busy
        print(
            f"{spec[:44]:44} {first:9.3f} {first / h_first:6.1f} {warm:8.3f} {warm / h50:6.1f} "
            f"{pct(t.warm, 0.95):6.3f} {max(t.warm):6.3f} {rate:6.1f}"
        )
        for e in sorted(set(t.errors))[:3]:
            print(f"    ! {e}")


if __name__ == "__main__":
    main()
