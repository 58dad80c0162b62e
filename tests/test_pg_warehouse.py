"""The warehouse on PostgreSQL (kpi_core/pg_warehouse.py) on the session's real server: the SQL
layer, the schema, the URL and its password, and two writers on one warehouse."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from kpi_core.catalog import load_catalog
from kpi_core.errors import KpiError
from kpi_core.migrations import MIGRATIONS
from kpi_core.pg_migrations import PG_MIGRATIONS
from kpi_core.pg_warehouse import PgWarehouse, redacted
from kpi_core.warehouse import open_warehouse, resolve_path
from tests.conftest import TODAY, fresh_pg_database, sales_system
from tests.test_planning import actor, edit, grid

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def pg_url(postgres):
    url = fresh_pg_database(postgres)
    yield url
    postgres.execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")


@pytest.fixture
def pg_sales(pg_url, tmp_path):
    from kpi_core import workbook
    from kpi_core.access import Scope
    from kpi_core.system_import import import_system

    wh = open_warehouse(pg_url)
    path = tmp_path / "sales.xlsx"
    workbook.write(sales_system(), path)
    import_system(wh, path, by="test", scope=Scope.all())
    yield pg_url, wh
    wh.close()


def cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "kpi_core", *map(str, args)],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env={**os.environ, **(env or {})},
    )  # fmt: skip


# --- the schema and the SQL -----------------------------------------------------------------


def test_every_migration_has_its_postgresql_text():
    assert set(PG_MIGRATIONS) == {number for number, _, _ in MIGRATIONS}


def test_a_fresh_database_gets_the_schema_with_its_keys(pg_url):
    wh = open_warehouse(pg_url)
    try:
        assert isinstance(wh, PgWarehouse) and wh.engine == "postgresql"
        assert wh.schema_version() == max(n for n, _, _ in MIGRATIONS) and wh.is_empty()
        keys = dict(
            wh.rows(
                """SELECT c.relname, pg_get_constraintdef(k.oid) FROM pg_constraint k
                   JOIN pg_class c ON c.oid = k.conrelid
                   WHERE c.relname IN ('actual', 'actual_year') AND k.contype = 'p'"""
            )
        )
        assert keys == {
            "actual": "PRIMARY KEY (unit_id, kpi_id, period)",
            "actual_year": "PRIMARY KEY (unit_id, kpi_id, year)",
        }
        # A second server starting on the same database applies nothing again.
        again = open_warehouse(pg_url)
        assert again.rows("SELECT count(*) FROM schema_version") == [(len(MIGRATIONS),)]
        again.close()
    finally:
        wh.close()


def test_parameters_bind_in_order_whatever_the_translation_repeats(pg_url):
    wh = open_warehouse(pg_url)
    try:
        # A ? and a % inside literals are text; list_contains repeats its operand in sqlglot's
        # translation, and the values still land where the ? stood.
        assert wh.one("SELECT '50%?', ?, list_contains(?, 3), ?", [1, [1, 3], "x"]) == (
            "50%?", 1, True, "x",
        )  # fmt: skip
        assert wh.one("SELECT arg_max(v, k) FROM (VALUES (1, 'a'), (2, 'b')) t(k, v)") == ("b",)
        # Integers where DuckDB gives integers (a year feeds range() and date()); avg a float.
        got = wh.one("SELECT year(DATE '2024-03-01'), month(DATE '2024-03-01'), avg(2)")
        assert got == (2024, 3, 2.0) and [type(v) for v in got] == [int, int, float]
        with wh.transaction() as cur:
            cur.execute("INSERT OR REPLACE INTO app_secret VALUES (?, ?, ?)", ["k", "1", TODAY])
            cur.execute("INSERT OR REPLACE INTO app_secret VALUES (?, ?, ?)", ["k", "2", TODAY])
            cur.execute("INSERT OR IGNORE INTO app_secret VALUES (?, ?, ?)", ["k", "3", TODAY])
        assert wh.rows("SELECT name, value FROM app_secret") == [("k", "2")]
        # Columns as the file's fetchnumpy gives them; dates come through their ISO text.
        got = wh.arrays(
            "SELECT * FROM (VALUES (DATE '2024-03-01', 1.5), (NULL, NULL)) t(d, x) ORDER BY d"
        )
        assert got["d"].dtype == "datetime64[us]" and got["d"][0] == np.datetime64("2024-03-01")
        assert str(got["d"][1]) == "NaT" and got["x"][0] == 1.5 and got["x"][1] != got["x"][1]
        assert wh.rows("SELECT DATE '2024-03-01'") == [(date(2024, 3, 1),)]  # rows: dates
    finally:
        wh.close()


def test_a_commit_changes_the_data_version_another_server_reads(pg_url):
    one, other = open_warehouse(pg_url), open_warehouse(pg_url)
    try:
        before = other.data_version()
        with one.transaction() as cur:
            cur.execute("INSERT INTO period_lock VALUES (?, 'x', ?)", [date(2024, 1, 1), TODAY])
        assert other.data_version() != before
        with one.transaction(data=False) as cur:
            cur.execute("DELETE FROM period_lock")
        assert other.data_version() == one.data_version()
    finally:
        one.close()
        other.close()


def _roll_up_plan(wh, table: str, template: str, params: list) -> str:
    """EXPLAIN of the text a roll-up over 3,000 pairs runs (pairs.select's joined path)."""
    import pyarrow as pa

    from kpi_core import pairs

    kpis, units = zip(*[(k, u) for k in range(1, 61) for u in range(1, 51)], strict=True)
    wanted = pa.table({"kpi_id": list(kpis), "unit_id": list(units)})
    assert len(kpis) > pairs.LIST_LIMIT  # the path of a company's roll-up
    sql = template.format(join=pairs._JOIN, match="TRUE")
    with wh.cursor() as cur:
        text, values = cur.with_tables(sql, params, {"wanted": wanted})
        plan = "\n".join(r[0] for r in cur._cur.execute("EXPLAIN " + text, values))
    assert f"on {table}" in plan
    return plan


def test_a_roll_up_probes_the_keys_of_its_pairs_not_whole_tables(postgres, pg_url):
    """The company roll-up reads a few thousand pairs of a year out of every year's rows: key
    probes, not a full scan of actual_year and target hashed against the pairs (5× the file's
    time on the bench warehouse). The planner's default random_page_cost (4, disks that seek)
    priced the probes out; the warehouse's connections say 1.1 unless the server was tuned."""
    from kpi_core import actuals, targets

    db = pg_url.rsplit("/", 1)[1]
    wh = open_warehouse(pg_url)
    try:
        # 60 KPIs × 200 units × 10 years of summaries, and a yearly target for each pair.
        postgres.execute(
            """INSERT INTO actual_year
               SELECT k, u, y, 1, 1, 1, 12, make_date(y, 12, 1) FROM generate_series(1, 60) k,
               generate_series(1, 200) u, generate_series(2016, 2025) y;
               INSERT INTO target (kpi_id, unit_id, grain, period_start, target, valid_from,
                                   version)
               SELECT k, u, 'Y', make_date(y, 1, 1), 1, make_date(y, 1, 1), 1
               FROM generate_series(1, 60) k, generate_series(1, 200) u,
                    generate_series(2016, 2025) y;
               ANALYZE actual_year; ANALYZE target""",
            db=db,
        )
        year = _roll_up_plan(wh, "actual_year", actuals._ONE_YEAR_SQL, [2025])
        rows = _roll_up_plan(
            wh, "target", targets._ROWS_SQL, [date(2025, 1, 1), date(2025, 12, 31)]
        )
        assert "Seq Scan on actual_year" not in year and "Index Scan" in year, year
        assert "Seq Scan on target" not in rows and "Index Scan" in rows, rows
        assert wh.one("SELECT current_setting('random_page_cost')") == ("1.1",)
    finally:
        wh.close()
    # A server (or database, or role) tuned by its administrator keeps its own value.
    postgres.execute(f"ALTER DATABASE {db} SET random_page_cost = 2", db=db)
    wh = open_warehouse(pg_url)
    try:
        assert wh.one("SELECT current_setting('random_page_cost')") == ("2",)
    finally:
        wh.close()


def test_a_read_through_copy_gives_what_the_first_read_gave(pg_url, monkeypatch):
    """`arrays` reads a text's rows through COPY after its first run (kpi_core/pg_columns.py):
    the columns must be those of the ordinary fetch, type for type and NULL for NULL — texts
    with quotes, commas, new lines and nothing at all, and a hostile value still only a value."""
    from kpi_core import pg_columns

    copies = []
    read = pg_columns.read
    monkeypatch.setattr(pg_columns, "read", lambda *a: copies.append(a[1]) or read(*a))
    wh = open_warehouse(pg_url)
    try:
        with wh.transaction(data=False) as cur:
            cur.execute(
                """CREATE TABLE probe (i INTEGER, b BIGINT, f DOUBLE PRECISION, n NUMERIC, t VARCHAR,
                                   d DATE, ts TIMESTAMP, ok BOOLEAN, tags VARCHAR[])"""
            )
        rows = [
            (1, 2**40, 1.5, 2.25, 'say "hi", then\nleave', date(2025, 1, 31),
             "2025-01-31 08:30:00.123456", True, ["a", "b"]),
            (2, None, None, None, "", None, None, None, None),
            (3, 7, -0.1, 10, None, date(1999, 12, 1), "1999-12-01 00:00:00", False, []),
            (4, 8, 1e300, 0, "'); DROP TABLE probe; --", date(2030, 6, 1),
             "2030-06-01 23:59:59", True, ["x"]),
        ]  # fmt: skip
        with wh.transaction() as cur:
            cur.executemany("INSERT INTO probe VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        # As a roll-up reads: joined with a table of wanted keys (the only reads through COPY).
        wanted = {"wanted": pa.table({"i": np.array([1, 2, 3, 4, 5], dtype=np.int32)})}
        head = "SELECT a.i, b, f, n, t, d, ts, ok FROM probe a JOIN wanted w ON a.i = w.i"
        sql = f"{head} WHERE a.i >= ? ORDER BY a.i"
        hostile = f"{head} WHERE t = ? OR a.i >= ? ORDER BY a.i"
        for text, params in ((sql, [1]), (hostile, ["'); DROP TABLE probe; --", 3])):
            first = wh.arrays(text, params, wanted)
            before = len(copies)
            again = wh.arrays(text, params, wanted)  # through COPY now
            assert len(copies) == before + 1
            assert list(first) == list(again)
            for name in first:
                a, b = first[name], again[name]
                assert a.dtype == b.dtype, (name, a.dtype, b.dtype)
                assert a.tolist() == b.tolist() or (
                    a.dtype.kind == "f" and np.array_equal(a, b, equal_nan=True)
                ), (name, a, b)
        assert wh.one("SELECT count(*) FROM probe") == (4,)
        empty = wh.arrays(sql, [99], wanted), wh.arrays(sql, [99], wanted)
        assert [c.dtype for c in empty[0].values()] == [c.dtype for c in empty[1].values()]
        assert all(len(c) == 0 for c in empty[1].values())
        # A column type COPY is not read for (an array) keeps the ordinary fetch, and so does
        # a read without a table of keys.
        tags = "SELECT a.i, tags FROM probe a JOIN wanted w ON a.i = w.i ORDER BY a.i"
        before = len(copies)
        twice = [wh.arrays(tags, [], wanted)["tags"].tolist() for _ in range(2)]
        assert twice[0] == twice[1] == [["a", "b"], None, [], ["x"]]
        assert [wh.arrays("SELECT i FROM probe WHERE i >= ?", [1]) for _ in range(2)]
        assert len(copies) == before
    finally:
        wh.close()


# --- the URL and its password --------------------------------------------------------------


def test_the_url_chooses_postgresql_and_the_file_stays_the_default(pg_url, monkeypatch, tmp_path):
    monkeypatch.setenv("KPI_WAREHOUSE", pg_url)
    assert resolve_path() == pg_url
    wh = open_warehouse(resolve_path())
    assert wh.engine == "postgresql"
    wh.close()
    monkeypatch.delenv("KPI_WAREHOUSE")
    monkeypatch.setenv("KPI_SECRETS", str(tmp_path / "none.toml"))
    assert resolve_path().endswith("data/warehouse.duckdb")


def test_the_password_never_shows(postgres, pg_url):
    password = postgres.password
    assert password in pg_url.replace("%", "")  # (the URL may quote it)
    wh = open_warehouse(pg_url)
    assert password not in wh.path and password not in wh.version_key
    assert wh.path == pg_url.replace(pg_url.split("//")[1].split("@")[0], "postgres:***")
    wh.close()
    # A refused sign-in: the message names the warehouse without the password, and no traceback.
    wrong = pg_url.replace(pg_url.split(":")[2].split("@")[0], "Wrong-Secret-42")
    with pytest.raises(KpiError) as exc:
        open_warehouse(wrong)
    assert "Wrong-Secret-42" not in exc.value.text("en") + exc.value.text("zh")
    assert "postgres:***@127.0.0.1" in str(exc.value)
    assert exc.value.__cause__ is None and exc.value.__suppress_context__  # no chained text
    done = cli("--warehouse", wrong, "init")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "Wrong-Secret-42" not in done.stderr + done.stdout
    assert "postgres:***@" in done.stderr
    done = cli("init", env={"KPI_WAREHOUSE": pg_url})
    assert done.returncode == 0, done.stderr
    assert password not in done.stdout + done.stderr and "postgres:***@" in done.stdout


def test_redacted_keeps_everything_but_the_password():
    assert redacted("postgresql+psycopg://kpi:s3cr%40t@db:5433/kpi?sslmode=require") == (
        "postgresql+psycopg://kpi:***@db:5433/kpi?sslmode=require"
    )
    assert redacted("postgresql+psycopg://db/kpi") == "postgresql+psycopg://db/kpi"


# --- commands -------------------------------------------------------------------------------


def test_init_demo_loads_the_demo_company_and_backup_points_to_pg_dump(pg_url):
    done = cli("--warehouse", pg_url, "init", "--demo")
    assert done.returncode == 0, done.stderr
    assert "(demo company loaded)" in done.stdout
    wh = open_warehouse(pg_url)
    assert wh.one("SELECT count(*) > 1000 FROM actual")[0]
    wh.close()
    done = cli("--warehouse", pg_url, "--user", "admin", "backup")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "pg_dump" in done.stderr and "pg_restore" in done.stderr
    done = cli("--warehouse", pg_url, "--user", "admin", "restore", "x.zip", "--yes")
    assert done.returncode != 0 and "Traceback" not in done.stderr and "pg_dump" in done.stderr


# --- two writers ------------------------------------------------------------------------------


def test_a_save_racing_another_server_s_is_refused_as_a_conflict(pg_sales):
    """Another server writes the next version of a cell after this one checked it: the key
    refuses this one's insert, and the save is refused as on the file (ConflictError, naming
    who saved it), with nothing of it written."""
    from kpi_core import planning

    url, wh_a = pg_sales
    wh_b = open_warehouse(url)
    try:
        cat = load_catalog(wh_a)
        li = actor(wh_b, "li", "admin")
        e_li, _ = edit(wh_b, grid(wh_b, li), {("SALES/REV", "target"): "7000万"})
        rev, sales = cat.kpi("REV").id, cat.unit("SALES").id
        holding, release, done = threading.Event(), threading.Event(), threading.Event()

        def wang_saves():  # another server's save, its transaction open
            with wh_a.transaction() as cur:
                cur.execute(
                    """INSERT INTO target (kpi_id, unit_id, grain, period_start, target,
                           valid_from, version, changed_by, changed_at)
                       SELECT kpi_id, unit_id, grain, period_start, 65000000, valid_from,
                              version + 1, 'wang', now()
                       FROM target WHERE kpi_id = ? AND unit_id = ?""",
                    [rev, sales],
                )
                holding.set()
                release.wait(60)
            done.set()

        outcome: dict[str, object] = {}

        def li_saves():
            try:
                planning.save_targets(wh_b, cat, li, e_li, reason="l", effective=date(2024, 7, 1))
                outcome["li"] = "saved"
            except Exception as exc:  # the test looks at what it was
                outcome["li"] = exc

        a = threading.Thread(target=wang_saves)
        a.start()
        assert holding.wait(60)
        b = threading.Thread(target=li_saves)
        b.start()
        # li's check saw no newer version (wang's is not committed); its insert now waits on
        # wang's row of the same key.
        while not wh_a.one("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")[
            0
        ]:
            assert b.is_alive(), outcome
        release.set()
        a.join(60)
        b.join(60)
        assert done.is_set()
        assert isinstance(outcome["li"], planning.ConflictError), outcome
        assert [c.by for c in outcome["li"].conflicts] == ["wang"]
        assert wh_b.one("SELECT count(*) FROM target WHERE changed_by = 'li'")[0] == 0
    finally:
        wh_b.close()


WRITER = textwrap.dedent(
    """
    import sys, time
    from datetime import date
    from pathlib import Path
    sys.path.insert(0, sys.argv[4])
    from kpi_core import access, actuals, pauses, planning, review, service
    from kpi_core.access import Scope
    from kpi_core.catalog import load_catalog
    from kpi_core.ingest import intake
    from kpi_core.warehouse import open_warehouse
    from tests.test_planning import actor, edit, grid

    url, me, folder = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    unit, kpi_code = {"a": ("EAST", "NEW_CUST"), "b": ("NORTH", "CSAT")}[me]
    other = "b" if me == "a" else "a"


    def wait_for(step):  # the other writer's marker; give up if it died
        deadline = time.monotonic() + 120
        while not (folder / f"{step}-{other}").exists():
            if time.monotonic() > deadline:
                sys.exit(f"the other writer never reached {step}")
            pauses.sleep(0.01)  # time.sleep fails under faketime (kpi_core/pauses.py)


    wh = open_warehouse(url)
    cat = load_catalog(wh)
    head = actor(wh, "head_" + me, "admin")
    g = grid(wh, head)                              # read before the other writes
    (folder / f"ready-{me}").touch()
    wait_for("ready")
    # A target save of a cell of its own, an upload for its own unit, comments.
    edits, _ = edit(wh, g, {(f"SALES/{kpi_code}", "target"): "65" if me == "a" else "92"})
    planning.save_targets(wh, cat, head, edits, reason=me, effective=date(2024, 7, 1))
    csv = f"period,unit,kpi,value\\n2024-12,{unit},REV,{111 if me == 'a' else 222}\\n"
    prepared = intake.prepare(wh, [(f"{me}.csv", csv.encode())], access.SYSTEM,
                              today=date(2024, 12, 20))
    service.commit_actuals(wh, prepared, access.SYSTEM).wait_for_alerts()
    for i in range(3):
        review.add_comment(wh, head, cat.kpi("REV").id, cat.unit(unit).id,
                           date(2024, 12, 1), f"{me} says {i}")
    # The conflicting edit: both change SALES/REV's challenge from the same grid read.
    clash, _ = edit(wh, g, {("SALES/REV", "challenge"): "1亿" if me == "a" else "2亿"})
    (folder / f"wrote-{me}").touch()
    wait_for("wrote")
    try:
        planning.save_targets(wh, cat, head, clash, reason=me + " clash",
                              effective=date(2024, 7, 1))
        print("clash: saved")
    except planning.ConflictError as exc:
        print("clash: refused by", exc.conflicts[0].by)
    (folder / f"done-{me}").touch()
    wait_for("done")
    # Its next read sees the other's work.
    seen = wh.rows("SELECT text FROM comment WHERE text LIKE ? ORDER BY text", [other + " says %"])
    print("comments:", [t for (t,) in seen])
    ou = "NORTH" if me == "a" else "EAST"
    print("upload:", wh.one(
        "SELECT a.value FROM actual a JOIN org_unit u ON u.id = a.unit_id JOIN kpi k "
        "ON k.id = a.kpi_id WHERE u.code = ? AND k.code = 'REV' AND a.period = ?",
        [ou, date(2024, 12, 1)])[0])
    ok = "CSAT" if me == "a" else "NEW_CUST"
    mine = grid(wh, head)
    print("target:", mine.loc[mine["code"] == f"SALES/{ok}", "target"].iloc[0])
    """
)


def test_two_writer_processes_on_one_warehouse(pg_sales, tmp_path):
    url, wh = pg_sales
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    procs = {
        me: subprocess.Popen(
            [sys.executable, str(script), url, me, str(tmp_path), str(ROOT)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )  # fmt: skip
        for me in ("a", "b")
    }
    out, errors = {}, {}
    try:
        for me, proc in procs.items():
            stdout, errors[me] = proc.communicate(timeout=300)
            out[me] = stdout.splitlines()
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert all(p.returncode == 0 for p in procs.values()), errors
    # Every write of each landed, and each saw the other's on its next read.
    assert "comments: ['b says 0', 'b says 1', 'b says 2']" in out["a"]
    assert "comments: ['a says 0', 'a says 1', 'a says 2']" in out["b"]
    assert "upload: 222.0" in out["a"] and "upload: 111.0" in out["b"]
    assert "target: 92" in out["a"] and "target: 65" in out["b"]
    # The conflicting edit: one saved, the other refused and told who saved it.
    clashes = sorted(line for lines in out.values() for line in lines if line.startswith("clash"))
    assert clashes[1] == "clash: saved" and clashes[0] in (
        "clash: refused by head_a", "clash: refused by head_b",
    )  # fmt: skip
    assert wh.one("SELECT count(*) FROM target WHERE reason LIKE '% clash'")[0] == 1
    assert wh.one("SELECT count(*) FROM comment")[0] == 6


def test_a_url_is_never_taken_for_a_file_name(postgres, tmp_path, monkeypatch):
    from kpi_core.warehouse import Warehouse

    monkeypatch.chdir(tmp_path)
    shown = redacted(postgres.url())
    with pytest.raises(ValueError):
        Warehouse(shown)  # a file named after the URL: never
    assert list(tmp_path.iterdir()) == []
