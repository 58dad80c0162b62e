"""Fixtures on real parts: DuckDB files in a temp dir and workbooks written and read back."""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
from pathlib import Path

import pandas as pd
import pytest

from kpi_core import demo, service, workbook
from kpi_core.access import Scope
from kpi_core.ingest import intake
from kpi_core.system_import import import_system
from kpi_core.warehouse import Warehouse, open_warehouse
from tests.receiver import Receiver

# The day every test runs on, whatever the system clock says. The core takes it as `today`; the
# edges (pages, the command line, app servers the tests start) read KPI_TODAY (kpi_core.clock).
# The demo built for this day ends in October 2026, as the shipped workbook does.
TODAY = demo.REFERENCE_TODAY
os.environ["KPI_TODAY"] = TODAY.isoformat()
# Pages skip Altair's schema validation of their charts; tests validate each chart built.
os.environ["KPI_VALIDATE_CHARTS"] = "1"


def pytest_configure(config: pytest.Config) -> None:
    # pytest-xdist's --dist loadfile hands out the files with the most tests first by default
    # ("loadscope reorder"). The browser files have few tests but are by far the slowest, so
    # they ended up last and one worker ran them alone at the end. The order is set below.
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The files that start an app server and a browser first, then the others by their number
    of tests, largest first: the long files start early and short ones fill the end, so both
    workers finish together. A file keeps its own order (some tests build on the one before)."""
    files: dict[Path, list[pytest.Item]] = {}
    for item in items:
        files.setdefault(item.path, []).append(item)

    def cost(path: Path) -> tuple[bool, int]:
        tests = files[path]
        return (not any(t.get_closest_marker("browser") for t in tests), -len(tests))

    items[:] = [item for path in sorted(files, key=cost) for item in files[path]]


def sales_system() -> dict[str, pd.DataFrame]:
    """DESIGN.md §4's worked example: the sales department's scorecard, plus a company above it."""
    kpis = pd.DataFrame(
        [
            ["REV", "营业收入", "Revenue", "元", "up", "sum", None, None, None, "financial", False],
            ["NEW_CUST", "新客户数", "New customers", "个", "up", "sum", None, None, None, "customer", False],
            ["CSAT", "客户满意度", "Customer satisfaction", "分", "up", "avg", None, None, None, "customer", False],
            ["COLLECTED", "回款额", "Cash collected", "元", "up", "sum", None, None, None, "financial", False],
            ["RECEIVABLE", "应收额", "Receivables due", "元", "up", "sum", None, None, None, "financial", False],
            ["COLLECT_RATE", "回款率", "Collection rate", "%", "up", "ratio", "COLLECTED", "RECEIVABLE", None, "financial", False],
            ["COMPLAINT", "投诉率", "Complaint rate", "%", "down", "avg", None, None, None, "customer", False],
            ["INV_DAYS", "库存周转天数", "Inventory days", "天", "range", "avg", None, None, None, "process", False],
            ["SAFETY", "安全事故", "Safety incidents", "次", "down", "sum", None, None, None, "process", True],
            ["AVAIL", "可用率", "Availability", "%", "up", "avg", None, None, None, "process", False],
            ["PERF", "性能率", "Performance", "%", "up", "avg", None, None, None, "process", False],
            ["QUAL", "良品率", "Quality rate", "%", "up", "avg", None, None, None, "process", False],
            ["OEE", "设备综合效率", "OEE", "%", "up", "formula", None, None, "AVAIL * PERF * QUAL", "process", False],
            ["HEADCOUNT", "人数", "Headcount", "人", "up", "last", None, None, None, "learning", False],
        ],
        columns=["code", "name_zh", "name_en", "unit", "direction", "aggregation", "numerator",
                 "denominator", "formula", "perspective", "veto"],
    )  # fmt: skip
    units = pd.DataFrame(
        [
            ["CO", "示例公司", "Example Co", None, "company"],
            ["SALES", "销售部", "Sales", "CO", "department"],
            ["EAST", "华东大区", "East region", "SALES", "team"],
            ["NORTH", "华北大区", "North region", "SALES", "team"],
            ["PROD", "生产部", "Production", "CO", "department"],
        ],
        columns=["code", "name_zh", "name_en", "parent", "kind"],
    )
    tree = pd.DataFrame(
        [
            ["CO", "SALES", 60], ["CO", "PROD", 40],
            ["SALES", "SALES/REV", 40], ["SALES", "SALES/NEW_CUST", 25],
            ["SALES", "SALES/CSAT", 20], ["SALES", "SALES/COLLECT_RATE", 15],
            ["SALES/REV", "EAST/REV", 60], ["SALES/REV", "NORTH/REV", 40],
            ["PROD", "PROD/OEE", 50], ["PROD", "PROD/COMPLAINT", 20], ["PROD", "PROD/INV_DAYS", 30],
            ["PROD", "PROD/SAFETY", 0],
        ],
        columns=["parent", "child", "weight"],
    )  # fmt: skip
    targets = pd.DataFrame(
        [
            ["SALES", "REV", "2024", 50_000_000, 60_000_000, 70_000_000, "even", None, None, None],
            ["EAST", "REV", "2024", 30_000_000, 36_000_000, 42_000_000, "even", None, None, None],
            ["NORTH", "REV", "2024", 20_000_000, 24_000_000, 28_000_000, "even", None, None, None],
            ["SALES", "NEW_CUST", "2024", 50, 60, 70, "even", None, None, None],
            ["SALES", "CSAT", "2024", 85, 90, 95, None, None, None, None],
            ["SALES", "COLLECT_RATE", "2024", 0.90, 0.95, 0.98, None, None, None, None],
            ["PROD", "OEE", "2024", 0.60, 0.65, 0.75, None, None, None, None],
            ["PROD", "COMPLAINT", "2024", 0.02, 0.01, 0.005, None, None, None, None],
            ["PROD", "INV_DAYS", "2024", None, None, None, None, 25, 35, 5],
            ["PROD", "SAFETY", "2024", 0, 0, 0, "even", None, None, None],
        ],
        columns=["unit", "kpi", "period", "baseline", "target", "challenge", "phasing", "low",
                 "high", "tolerance"],
    )  # fmt: skip
    actual_rows = []
    for m in range(1, 13):
        p = f"2024-{m:02d}"
        actual_rows += [
            ["EAST", "REV", p, 2_900_000], ["NORTH", "REV", p, 1_933_333.3333333333],
            ["SALES", "NEW_CUST", p, 5.5], ["SALES", "CSAT", p, 88],
            ["SALES", "COLLECTED", p, 90 if m <= 6 else 200],
            ["SALES", "RECEIVABLE", p, 100 if m <= 6 else 200],
            ["PROD", "AVAIL", p, 0.9], ["PROD", "PERF", p, 0.8], ["PROD", "QUAL", p, 0.95],
            ["PROD", "COMPLAINT", p, 0.012], ["PROD", "INV_DAYS", p, 37.5],
            ["PROD", "SAFETY", p, 0],
        ]  # fmt: skip
    actuals = pd.DataFrame(actual_rows, columns=["unit", "kpi", "period", "value"])
    return {"kpis": kpis, "org_units": units, "tree": tree, "targets": targets, "actuals": actuals}


@pytest.fixture(autouse=True)
def commit_waits_for_alerts(monkeypatch):
    """A commit's alert rules run after it on a thread of their own; tests read and hash the
    warehouse right after committing, so here `intake.commit` returns once they are done
    (pages run in AppTest included). test_alerts checks the thread itself."""
    real = intake.commit

    def commit(*args, **kwargs):
        done = real(*args, **kwargs)
        done.wait_for_alerts()
        _UNFINISHED.append(done)
        return done

    monkeypatch.setattr(intake, "commit", commit)
    yield
    _UNFINISHED.clear()


# Commits whose pushes may still be under way on their own thread: a warehouse fixture lets them
# finish before it closes the warehouse they use (as the command line does before it exits).
_UNFINISHED: list = []


def _close(wh) -> None:
    while _UNFINISHED:
        _UNFINISHED.pop().finish(30)
    wh.close()


# The warehouse engines. A test module that sets `BOTH_ENGINES = True` runs each of its tests
# that uses `warehouse`, `sales_wh` or `demo_wh` on the DuckDB file and on PostgreSQL (the
# session's server, a fresh database per test); other modules use the file only, unless
# KPI_TEST_ENGINES=both asks for both everywhere (to try a module on PostgreSQL).
ENGINES = ("file", "pg")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    both = getattr(metafunc.module, "BOTH_ENGINES", False)
    if "engine" in metafunc.fixturenames and (both or os.environ.get("KPI_TEST_ENGINES") == "both"):
        only_file = metafunc.definition.get_closest_marker("file_only") is not None
        metafunc.parametrize("engine", ENGINES[:1] if only_file else ENGINES, indirect=True)


@pytest.fixture
def engine(request) -> str:
    return getattr(request, "param", "file")


def fresh_pg_database(server, template: str | None = None) -> str:
    """A new database on the session's server (a copy of `template`); its URL."""
    name = f"wh_{secrets.token_hex(6)}"
    copy = f" TEMPLATE {template}" if template else ""
    server.execute(f"CREATE DATABASE {name}{copy}")
    return server.url(db=name)


def _drop_pg_database(server, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    server.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def warehouse(tmp_path, engine, request):
    if engine == "pg":
        server = request.getfixturevalue("postgres")
        url = fresh_pg_database(server)
        wh = open_warehouse(url)
        yield wh
        _close(wh)
        _drop_pg_database(server, url)
        return
    wh = Warehouse(tmp_path / "wh.duckdb", linger=0)
    yield wh
    _close(wh)


@pytest.fixture
def sales_wh(warehouse, tmp_path):
    path = tmp_path / "sales.xlsx"
    workbook.write(sales_system(), path)
    import_system(warehouse, path, by="test", scope=Scope.all())
    return warehouse


@pytest.fixture(scope="session")
def postgres():
    """One real PostgreSQL server for the whole session (tests/pgserver.py), stopped at the end.
    Fails — never skips — when Debian's `postgresql` package is missing: CI installs it."""
    from tests.pgserver import PgMissingError, PgServer

    server = PgServer()
    try:
        server.start()
    except PgMissingError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def demo_file(tmp_path_factory, worker_id) -> Path:
    """The demo company in a real DuckDB file, built once for the whole run; never written.
    The xdist workers of a run share one build (the first to come builds it under a lock, the
    others wait for it), and each reads its own copy: two processes never open one file."""
    mine = tmp_path_factory.mktemp("demo")
    shared = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        shared = shared.parent  # the run's directory, above each worker's own
    built = shared / f"demo-{TODAY.isoformat()}.duckdb"
    with open(shared / "demo.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        if not built.exists():
            building = mine / "building.duckdb"
            wh = Warehouse(building, linger=0)
            service.ensure_demo(wh, today=TODAY)
            wh.close()
            shutil.copy(building, shared / "demo.part")
            (shared / "demo.part").rename(built)  # whole or absent, for any other worker
    path = mine / "demo.duckdb"
    shutil.copy(built, path)
    return path


@pytest.fixture
def own_file(demo_file, tmp_path) -> Path:
    """A copy of the demo warehouse for a test that writes."""
    path = tmp_path / "wh.duckdb"
    shutil.copy(demo_file, path)
    return path


@pytest.fixture(scope="session")
def pg_demo(postgres) -> str:
    """The demo company in a PostgreSQL database built once; tests get copies (`demo_wh`)."""
    url = fresh_pg_database(postgres)
    wh = open_warehouse(url)
    service.ensure_demo(wh, today=TODAY)
    wh.close()
    return url.rsplit("/", 1)[1]


@pytest.fixture
def demo_wh(engine, request):
    """A copy of the demo warehouse, open: a file, or a PostgreSQL database (`engine`)."""
    if engine == "pg":
        server = request.getfixturevalue("postgres")
        url = fresh_pg_database(server, template=request.getfixturevalue("pg_demo"))
        wh = open_warehouse(url)
        yield wh
        _close(wh)
        _drop_pg_database(server, url)
        return
    wh = Warehouse(request.getfixturevalue("own_file"), linger=0)
    yield wh
    _close(wh)


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the whole run; each test opens its own page or context."""
    from tests.test_browser import CHROMIUM, FLAGS

    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: apt-get install -y chromium fonts-noto-cjk")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


@pytest.fixture
def receiver():
    """Start HTTP receivers on 127.0.0.1 (tests/receiver.py); all stopped at the end."""
    started: list[Receiver] = []

    def start(*answers, delay: float = 0.0) -> Receiver:
        r = Receiver(answers or ((200, {"errcode": 0, "errmsg": "ok"}),), delay)
        started.append(r)
        return r

    yield start
    for r in started:
        r.stop()


def reopen(wh: Warehouse) -> Warehouse:
    """Another Warehouse object on the same warehouse, as another process would open it."""
    if wh.engine == "duckdb":
        return Warehouse(wh.path, linger=0)
    return open_warehouse(wh._url)  # the URL with its password, which `path` leaves out
