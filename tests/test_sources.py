"""Database sources on a real SQLite file and real CSV/Parquet exports: pulls checked against
values computed independently by the database itself, safety, and errors people can act on."""

import json
import re
import sqlite3
import subprocess
import sys
import threading
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from kpi_core import access, service, workbook
from kpi_core.access import Scope
from kpi_core.catalog import load_catalog
from kpi_core.errors import NotFoundError, ScopeError
from kpi_core.ingest import source_connections, sources
from kpi_core.ingest.profile import Filter, Measure, Profile
from kpi_core.ingest.sources import Source, SourceError
from kpi_core.messages import Message
from kpi_core.system_import import import_system
from kpi_core.warehouse import Warehouse
from tests.said import CJK, chinese

ROOT = Path(__file__).resolve().parent.parent
TODAY = date(2026, 11, 21)

KPIS = pd.DataFrame(
    [
        ["REV", "营业收入", "Revenue", "元", "up", "sum", None, None, None],
        ["ORDERS", "订单数", "Orders", "个", "up", "sum", None, None, None],
        ["SHIPPED", "发货单数", "Orders shipped", "个", "up", "sum", None, None, None],
        ["ONTIME", "准时发货单数", "Shipped on time", "个", "up", "sum", None, None, None],
        ["ONTIME_RATE", "准时发货率", "On-time shipping", "%", "up", "ratio", "ONTIME",
         "SHIPPED", None],
        ["AOV", "客单价", "Average order value", "元", "up", "formula", None, None, "REV / ORDERS"],
    ],
    columns=["code", "name_zh", "name_en", "unit", "direction", "aggregation", "numerator",
             "denominator", "formula"],
)  # fmt: skip
UNITS = pd.DataFrame(
    [["CO", "公司", "Company", None, "company"], ["EAST", "华东", "East", "CO", "team"],
     ["WEST", "华西", "West", "CO", "team"]],
    columns=["code", "name_zh", "name_en", "parent", "kind"],
)  # fmt: skip
TREE = pd.DataFrame(
    [["CO", "CO/REV", 50], ["CO", "CO/ONTIME_RATE", 50], ["CO/REV", "EAST/REV", 50],
     ["CO/REV", "WEST/REV", 50]],
    columns=["parent", "child", "weight"],
)  # fmt: skip

# order id, order date, required, shipped (None: not yet), region, lines (price, qty, discount)
ORDERS = [
    (1, "2026-07-03", "2026-07-10", "2026-07-08", "east", [(100.0, 3, 0.0), (50.0, 2, 0.1)]),
    (2, "2026-07-15", "2026-07-20", "2026-07-25", "east", [(200.0, 1, 0.0)]),
    (3, "2026-07-21", "2026-07-30", "2026-07-29", "west", [(10.0, 10, 0.5)]),
    (4, "2026-08-02", "2026-08-09", "2026-08-09", "east", [(80.0, 5, 0.0)]),
    (5, "2026-08-19", "2026-08-25", None, "west", [(40.0, 4, 0.25)]),
    (6, "2026-09-01", "2026-09-05", "2026-09-04", "West", [(300.0, 1, 0.0), (5.0, 20, 0.0)]),
]

QUERY = """
SELECT o.id, o.order_date, o.region, l.price, l.qty, l.discount,
       CASE WHEN o.shipped IS NOT NULL THEN o.id END AS shipped_id,
       CASE WHEN o.shipped <= o.required THEN 1 ELSE 0 END AS on_time
FROM orders o JOIN lines l ON l.order_id = o.id
"""


def mapping(**kw) -> Profile:
    return Profile(
        name="erp",
        date_column="order_date",
        unit_column="region",
        unit_map={"east": "EAST", "west": "WEST"},
        measures=[
            Measure("REV", "sum", "=[price] × [qty] × (1 - [discount])"),
            Measure("ORDERS", "count_distinct", "id"),
            Measure("SHIPPED", "count_distinct", "shipped_id"),
            # on_time repeats on each line of an order: count orders, not lines.
            Measure("ONTIME", "count_distinct", "id", [Filter("on_time", "=", "1")]),
        ],
        **kw,
    )


def erp_sqlite(path: Path) -> Path:
    con = sqlite3.connect(path)
    con.executescript(
        """CREATE TABLE orders (id INTEGER PRIMARY KEY, order_date TEXT, required TEXT,
                                shipped TEXT, region TEXT);
           CREATE TABLE lines (order_id INTEGER, price REAL, qty INTEGER, discount REAL);"""
    )
    for oid, ordered, required, shipped, region, lines in ORDERS:
        con.execute("INSERT INTO orders VALUES (?, ?, ?, ?, ?)",
                    (oid, ordered, required, shipped, region))  # fmt: skip
        con.executemany("INSERT INTO lines VALUES (?, ?, ?, ?)", [(oid, *x) for x in lines])
    con.commit()
    con.close()
    return path


@pytest.fixture
def wh(tmp_path):
    book = tmp_path / "system.xlsx"
    workbook.write({"kpis": KPIS, "org_units": UNITS, "tree": TREE}, book)
    w = Warehouse(tmp_path / "w.duckdb", linger=0)
    import_system(w, book, by="test", scope=Scope.all())
    yield w
    w.close()


@pytest.fixture(autouse=True)
def exports(tmp_path, monkeypatch) -> Path:
    """The one folder sources may read here (the warehouse is beside it, not in it)."""
    folder = tmp_path / "exports"
    folder.mkdir()
    monkeypatch.setenv("KPI_SOURCE_DIRS", str(folder))
    return folder


@pytest.fixture
def erp(exports) -> str:
    return f"sqlite:///{erp_sqlite(exports / 'erp.db')}"


def independent(db: Path) -> dict[tuple[str, str, str], float]:
    """The same monthly values, computed by SQLite itself from the raw tables."""
    con = sqlite3.connect(db)
    out = {}
    rows = con.execute(
        """SELECT substr(o.order_date, 1, 7), upper(o.region),
                  sum(l.price * l.qty * (1 - l.discount)), count(DISTINCT o.id)
           FROM orders o JOIN lines l ON l.order_id = o.id GROUP BY 1, 2"""
    ).fetchall()
    for month, region, rev, orders in rows:
        out[("REV", region, month)] = rev
        out[("ORDERS", region, month)] = orders
    # A month with orders and none shipped (on time) has 0, not nothing.
    rows = con.execute(
        """SELECT substr(order_date, 1, 7), upper(region), count(shipped),
                  coalesce(sum(shipped <= required), 0)
           FROM orders GROUP BY 1, 2"""
    ).fetchall()
    for month, region, shipped, ontime in rows:
        out[("SHIPPED", region, month)] = shipped
        out[("ONTIME", region, month)] = ontime
    con.close()
    return out


def pulled(prepared, cat) -> dict[tuple[str, str, str], float]:
    return {
        (cat.kpis[r.kpi_id].code, cat.units[r.unit_id].code, f"{r.period:%Y-%m}"): r.value
        for r in prepared.rows.itertuples()
    }


def test_a_pull_says_its_steps_in_either_language(wh, erp):
    steps = []
    source = Source("erp", erp, QUERY, mapping())
    sources.prepare_pull(
        wh, source, access.SYSTEM, today=TODAY, progress=lambda f, s: steps.append(s)
    )
    said = [(str(s), s.render("zh")) for s in steps]
    assert said[0] == (f"Querying {sources.mask(erp)}", f"正在查询 {sources.mask(erp)}")
    assert ("Aggregating by month and unit", "正在按月份和组织汇总") in said
    rows = [s for s in steps if s.key == "up_step_rows"]
    assert rows and all(isinstance(s.values["n"], int) for s in rows)  # the page counts them
    assert said[-1] == ("Ready", "完成")


def test_pull_equals_what_the_database_computes(wh, erp, exports):
    source = Source("erp", erp, QUERY, mapping())
    prepared = sources.prepare_pull(wh, source, access.SYSTEM, today=TODAY)
    assert prepared.errors == [] and prepared.kind == "pull"
    got = pulled(prepared, load_catalog(wh))
    assert got == pytest.approx(independent(exports / "erp.db"))
    # By hand, July East: 100×3 + 50×2×0.9 + 200 = 590; orders 1 and 2; only 1 on time.
    assert got[("REV", "EAST", "2026-07")] == pytest.approx(590)
    assert (got[("SHIPPED", "EAST", "2026-07")], got[("ONTIME", "EAST", "2026-07")]) == (2, 1)
    committed = service.commit_actuals(wh, prepared, access.SYSTEM)
    assert committed.batch_id is not None
    assert sources.last_pulled_month(wh, "erp") == date(2026, 9, 1)
    # The ratio over the quarter is Σ on time / Σ shipped of the company: (1+1+1+1) / (2+1+1+1).
    card = service.score_unit(wh, access.SYSTEM, "CO", parse("2026-Q3"))
    rate = next(k for k in card["kpis"] if k["kpi"] == "ONTIME_RATE")
    assert rate["actual"] == pytest.approx(4 / 5)


def parse(p):
    from kpi_core.periods import parse_period

    return parse_period(p)


def test_incremental_and_ranged_pulls(wh, erp, exports):
    source = Source("erp", erp, QUERY, mapping())
    first = sources.prepare_pull(wh, source, access.SYSTEM, last=date(2026, 7, 1), today=TODAY)
    assert first.months == [date(2026, 7, 1)]
    service.commit_actuals(wh, first, access.SYSTEM)
    # A new order arrives in September; only the months after July are asked for.
    con = sqlite3.connect(exports / "erp.db")
    con.execute("INSERT INTO orders VALUES (7, '2026-09-20', '2026-09-30', NULL, 'east')")
    con.execute("INSERT INTO lines VALUES (7, 1000.0, 1, 0.0)")
    con.commit()
    con.close()
    new = sources.prepare_pull(wh, source, access.SYSTEM, new_only=True, today=TODAY)
    assert new.months == [date(2026, 8, 1), date(2026, 9, 1)]
    assert pulled(new, load_catalog(wh))[("REV", "EAST", "2026-09")] == 1000.0
    service.commit_actuals(wh, new, access.SYSTEM)
    nothing = sources.prepare_pull(wh, source, access.SYSTEM, new_only=True, today=TODAY)
    assert nothing.counts["new"] == 0 and nothing.errors == []
    again = sources.prepare_pull(
        wh, source, access.SYSTEM, first=date(2026, 8, 1), last=date(2026, 8, 1), today=TODAY
    )
    assert again.months == [date(2026, 8, 1)] and again.counts["unchanged"] == len(again.rows)


def test_saved_source_pulled_from_the_cli(wh, erp, exports):
    sources.save(wh, Source("erp", erp, QUERY, mapping()), access.SYSTEM)
    assert sources.load(wh, "erp").mapping == mapping()
    wh.close()
    base = [sys.executable, "-m", "kpi_core", "--warehouse", str(wh.path), "pull"]
    run = subprocess.run([*base, "erp", "--json"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["batch"] is not None and out["source"] == "erp" and out["counts"]["new"] == 20
    assert out["files"] == [erp]  # the URL, masked (there is no password here)
    again = subprocess.run([*base, "erp", "--new"], cwd=ROOT, capture_output=True, text=True,
                           timeout=120)  # fmt: skip
    assert again.returncode == 0 and "nothing to load" in again.stdout
    missing = subprocess.run([*base, "nope"], cwd=ROOT, capture_output=True, text=True,
                             timeout=120)  # fmt: skip
    assert missing.returncode == 3 and "no source 'nope'" in missing.stderr
    (exports / "erp.db").unlink()
    gone = subprocess.run([*base, "erp"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert gone.returncode == 5 and "does not exist" in gone.stderr


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_exports_are_sources(wh, exports, kind):
    db = erp_sqlite(exports / "erp.db")
    con = sqlite3.connect(db)
    lines = pd.read_sql(QUERY, con)
    con.close()
    path = exports / f"order_lines.{kind}"
    lines.to_csv(path, index=False) if kind == "csv" else lines.to_parquet(path)
    url = f"{kind}://{path}"
    assert "order_lines" in sources.tables(url)
    source = Source("export", url, "SELECT * FROM order_lines", mapping())
    prepared = sources.prepare_pull(wh, source, access.SYSTEM, today=TODAY)
    assert prepared.errors == []
    assert pulled(prepared, load_catalog(wh)) == pytest.approx(independent(db))


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("DELETE FROM orders", "only a SELECT"),
        ("SELECT 1; DROP TABLE orders", "one statement only"),
        ("WITH x AS (DELETE FROM orders RETURNING *) SELECT * FROM x", "'DELETE'"),
        (
            "SELECT * FROM t WHERE EXISTS (WITH x AS (UPDATE t SET a = 1 RETURNING *) "
            "SELECT 1 FROM x)",
            "'UPDATE'",
        ),
        ("SELECT * INTO copy FROM orders", "cannot be read as one SELECT"),
        ("", "empty"),
        ("-- nothing but a comment\n;", "empty"),
    ],
)
def test_only_one_select_is_accepted(query, words):
    with pytest.raises(SourceError, match=words):
        sources.check_query(query)


@pytest.mark.parametrize(
    ("query", "url", "key", "english"),
    [
        ("", None, "sq_empty", "the query is empty — write one SELECT statement"),
        ("SELECT 1; SELECT 2", None, "sq_one_statement",
         "write one statement only: the query holds a ';' between statements"),
        ("DELETE FROM orders", None, "sq_not_select",
         "only a SELECT (or WITH … SELECT) query can be used as a source"),
        ("WITH x AS (DELETE FROM t RETURNING *) SELECT 1", None, "sq_writes",
         "the query uses 'DELETE', which could change data; a source query may only read"),
        ("SELECT TOP 1 a FROM t; DROP TABLE t", "mssql://u@h/d", "sq_one_statement",
         "write one statement only: the query holds a ';' between statements"),
        ("SELECT a FROM t FOR UPDATE", "mysql://u@h/d", "sq_writes",
         "the query uses 'FOR UPDATE', which could change data; a source query may only read"),
        ("SELECT (", None, "sq_unreadable",
         'the query cannot be read as one SELECT: syntax error at or near "("'),
    ],
)  # fmt: skip
def test_a_refused_query_is_a_coded_message(query, url, key, english):
    """The command line reads the English as before; a page renders the key in its language."""
    with pytest.raises(SourceError) as exc:
        sources.check_query(query, url)
    assert exc.value.coded is not None and exc.value.coded.key == key
    assert str(exc.value) == english
    assert chinese(exc.value) != english and CJK.search(chinese(exc.value))


@pytest.mark.parametrize(
    ("url", "key", "english"),
    [
        ("", "su_no_url", "write the connection URL"),
        ("not a url", "su_not_a_url",
         "'not a url' is not a database URL — write it like "
         "postgresql+psycopg://user:${secrets.source_secrets.erp}@host:5432/db or "
         "sqlite:////path/to/file.db"),
        ("postgresql+psycopg://u:pw@h/db", "su_password",
         "the URL holds a password — it would be stored in plain text. Put it in the "
         "[source_secrets] section of .streamlit/secrets.toml or in an environment variable named "
         "KPI_SOURCE_SECRET_…, and write user:${secrets.source_secrets.erp}@host or "
         "user:${KPI_SOURCE_SECRET_ERP}@host in its place"),
        ("csv:///data/${KPI_SOURCE_SECRET_X}.csv", "su_file_reference",
         "a file source's path cannot hold a reference (${…}) — write the path itself"),
        ("postgresql+psycopg://u@h/db?passfile=x", "su_option",
         "the URL's option 'passfile' is not allowed for a source (it could read files or change "
         "the session) — the options a source may set are sslmode, application_name, "
         "target_session_attrs, charset, driver, encrypt, trustservercertificate, service_name"),
        ("postgresql+psycopg://${KPI_SOURCE_SECRET_X}@h/db", "su_reference_password_only",
         "a reference (${…}) may stand only for the password "
         "(user:${secrets.source_secrets.erp}@host) — write the rest of the URL as it is"),
        ("sqlite://", "su_sqlite_file",
         "a SQLite source needs a database file: sqlite:////path/to/file.db"),
        ("postgresql+psycopg://u@/db", "su_no_host",
         "write the database server's host name in the URL (…@host:5432/db)"),
    ],
)  # fmt: skip
def test_a_refused_url_is_a_coded_message(url, key, english):
    with pytest.raises(SourceError) as exc:
        sources.check_url(url)
    assert exc.value.coded is not None and exc.value.coded.key == key
    assert str(exc.value) == english
    zh = chinese(exc.value)
    assert zh != english and CJK.search(zh)
    # no English words left but what the user wrote
    assert not re.search(r"\b(the|write|is|not)\b", zh.replace(url, "")), zh


def test_words_inside_strings_and_comments_are_not_writes():
    sql = "SELECT 'delete; drop' AS note, \"update\" -- insert\nFROM t /* create */;"
    assert sources.check_query(sql).endswith("/* create */")


def test_sqlite_is_opened_read_only(erp):
    # Even a statement that slipped past the check cannot write: the file is opened read-only.
    from kpi_core.ingest.sources import _chunks

    with pytest.raises(SourceError, match="refused to write|read"):
        list(_chunks(erp, "UPDATE orders SET region = 'x'", {}, 10, 100))


def secrets_file(tmp_path, monkeypatch, text: str) -> Path:
    path = tmp_path / "secrets.toml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("KPI_SECRETS", str(path))
    return path


def test_passwords_are_not_stored_and_urls_are_masked(wh, monkeypatch, tmp_path):
    url = "postgresql+psycopg://kpi:s3cret@db.example:5432/erp"
    with pytest.raises(SourceError, match="holds a password"):
        sources.check_url(url)
    with pytest.raises(SourceError, match="holds a password"):
        sources.save(wh, Source("erp", url, "SELECT 1", mapping()), access.SYSTEM)
    assert sources.mask(url) == "postgresql+psycopg://kpi:***@db.example:5432/erp"
    # A password in the URL's query is a password all the same, even as a reference.
    for query in ("?password=s3cret", "?PASSWORD=${KPI_SOURCE_SECRET_ERP}", "?pwd=x"):
        with pytest.raises(SourceError, match="holds a password"):
            sources.check_url(f"postgresql+psycopg://kpi@db.example/erp{query}")
    sources.check_url("postgresql+psycopg://kpi:${KPI_SOURCE_SECRET_ERP}@db.example/erp")
    sources.check_url("postgresql+psycopg://kpi:${secrets.source_secrets.erp}@db.example/erp")
    monkeypatch.setenv("KPI_SOURCE_SECRET_ERP", "p@ss/word")
    assert sources.resolve("postgresql+psycopg://kpi:${KPI_SOURCE_SECRET_ERP}@h/erp") == (
        "postgresql+psycopg://kpi:p%40ss%2Fword@h/erp"
    )
    secrets_file(tmp_path, monkeypatch, '[source_secrets]\nerp = "from-the-file"\n')
    assert sources.resolve("postgresql+psycopg://kpi:${secrets.source_secrets.erp}@h/e") == (
        "postgresql+psycopg://kpi:from-the-file@h/e"
    )
    monkeypatch.delenv("KPI_SOURCE_SECRET_ERP")
    with pytest.raises(SourceError, match="KPI_SOURCE_SECRET_ERP is not set"):
        sources.resolve("postgresql+psycopg://kpi:${KPI_SOURCE_SECRET_ERP}@h/erp")


SERVER_SECRETS = """
[push]
smtp_password = "SMTP-SECRET-4711"
[auth]
cookie_secret = "COOKIE-SECRET-4711"
[source_secrets]
erp = "ERP-SECRET-4711"
"""


@pytest.mark.parametrize(
    "url",
    [
        # Anywhere but the password: the value would be echoed ("the file … does not exist").
        "sqlite:////srv/${secrets.push.smtp_password}.db",
        "sqlite:////srv/${secrets.source_secrets.erp}.db",
        "csv:///srv/${KPI_SOURCE_SECRET_ERP}.csv",
        "parquet:///srv/${HOME}/x.parquet",
        "postgresql+psycopg://${secrets.source_secrets.erp}@db.example/erp",
        "postgresql+psycopg://kpi@${secrets.source_secrets.erp}.example/erp",
        "postgresql+psycopg://kpi@db.example/${secrets.source_secrets.erp}",
        "postgresql+psycopg://kpi@db.example/erp?application_name=${secrets.source_secrets.erp}",
        # In the password, but outside the sources' own section or prefix.
        "postgresql+psycopg://kpi:${secrets.push.smtp_password}@db.example/erp",
        "postgresql+psycopg://kpi:${secrets.auth.cookie_secret}@db.example/erp",
        "postgresql+psycopg://kpi:${secrets.source_secrets}@db.example/erp",
        "postgresql+psycopg://kpi:${HOME}@db.example/erp",
        "postgresql+psycopg://kpi:${KPI_SECRETS}@db.example/erp",
        "postgresql+psycopg://kpi:x${secrets.source_secrets.erp}@db.example/erp",
    ],
)
def test_secret_references_only_in_the_password_and_only_from_the_sources_vault(
    url, tmp_path, monkeypatch, wh
):
    secrets_file(tmp_path, monkeypatch, SERVER_SECRETS)
    monkeypatch.setenv("KPI_SOURCE_SECRET_ERP", "ENV-SECRET-4711")
    said = []
    for work in (
        lambda: sources.check_url(url),
        lambda: sources.test_connection(url),
        lambda: sources.tables(url),
        lambda: sources.sample(url, "SELECT 1 AS x"),
        lambda: sources.prepare_pull(
            wh, Source("s", url, "SELECT 1 AS x", mapping()), access.SYSTEM, today=TODAY
        ),  # fmt: skip
        lambda: sources.save(wh, Source("s", url, "SELECT 1 AS x", mapping()), access.SYSTEM),
    ):
        with pytest.raises(SourceError) as err:
            work()
        said.append(str(err.value))
    assert not [m for m in said if "4711" in m or str(Path.home()) in m], said
    assert wh.rows("SELECT count(*) FROM source") == [(0,)]


def test_options_that_reach_past_the_database_are_refused():
    for option in ("sslkey=/etc/shadow", "passfile=/root/.pgpass", "service=x", "host=/tmp",
                   "options=-c default_transaction_read_only=off", "local_infile=1",
                   "driver=/tmp/evil.so", "sslrootcert=/etc/ssl/x"):  # fmt: skip
        with pytest.raises(SourceError, match="is not allowed for a source"):
            sources.check_url(f"postgresql+psycopg://kpi@db.example/erp?{option}")
    for url in ("postgresql+psycopg://kpi@/erp", "mysql+pymysql://kpi@/erp"):
        with pytest.raises(SourceError, match="host name"):
            sources.check_url(url)
    sources.check_url("postgresql+psycopg://kpi@db.example/erp?sslmode=require")


def test_a_resolved_value_is_cut_out_of_every_message(monkeypatch):
    monkeypatch.setenv("KPI_SOURCE_SECRET_ERP", "p@ss/w0rd-4711")
    url = "postgresql+psycopg://kpi:${KPI_SOURCE_SECRET_ERP}@db.example/erp"
    # As a driver would repeat it: as it is, and as the URL carried it.
    for echoed in ("p@ss/w0rd-4711", "p%40ss%2Fw0rd-4711"):
        said = sources.explain(RuntimeError(f"server said: bad {echoed}!"), url)
        for lang in ("en", "zh"):  # the coded message's values are cut, in either language
            assert "4711" not in said.text(lang) and "***" in said.text(lang)


@pytest.mark.parametrize(
    ("driver_said", "key", "english", "chinese_words"),
    [
        ("password authentication failed for user kpi", "sc_login_wrong",
         "postgresql+psycopg://kpi@db.example/erp: the user name or password is wrong "
         "(password authentication failed for user kpi)", "用户名或密码错误"),
        ("connection refused", "sc_unreachable",
         "postgresql+psycopg://kpi@db.example/erp: cannot reach the server (connection refused)"
         " — check the host, the port and that the database is running", "无法连接服务器"),
        ('database "erp" does not exist', "sc_no_database",
         'postgresql+psycopg://kpi@db.example/erp: database "erp" does not exist — check the '
         "database name in the URL", "数据库名"),
        ("attempt to write a readonly database", "sc_refused_write",
         "the source refused to write: a source query may only read (attempt to write a "
         "readonly database)", "数据源拒绝写入"),
        ('relation "x" does not exist', "sc_rejected",
         'the database rejected the query: relation "x" does not exist', "数据库拒绝了该查询"),
        ("something else", "sc_said",
         "postgresql+psycopg://kpi@db.example/erp: something else", "数据库返回"),
    ],
)  # fmt: skip
def test_a_driver_error_is_a_coded_message(driver_said, key, english, chinese_words):
    said = sources.explain(RuntimeError(driver_said), "postgresql+psycopg://kpi@db.example/erp")
    assert said.coded is not None and said.coded.key == key
    assert str(said) == english
    assert chinese_words in chinese(said)


# --- file sources: confined, and read by a DuckDB that can reach nothing else ---------------


@pytest.fixture
def export_url(exports) -> str:
    path = exports / "orders.csv"
    path.write_text("day,region,amount\n2026-10-03,East,10\n", encoding="utf-8")
    return f"csv://{path}"


def _attacks(tmp_path: Path, warehouse: Path, secrets: Path) -> list[str]:
    w, sec, out = str(warehouse), str(secrets), str(tmp_path / "pwned.csv")
    return [
        f"SELECT content FROM read_text('{sec}')",
        f"SELECT * FROM read_csv('{sec}', header = false, sep = '|')",
        f"SELECT * FROM read_blob('{w}')",
        f"SELECT * FROM read_csv('{w}')",
        f"SELECT * FROM read_text('{w}.wal')",
        "SELECT * FROM glob('/*')",
        "SELECT * FROM read_text('/etc/passwd')",
        f"SELECT '--' AS a) x; COPY (SELECT 42) TO '{out}'; SELECT * FROM (SELECT 1 AS b",
        f"SELECT '--' AS a) x; ATTACH '{w}' AS w; UPDATE w.app_user SET role = 'admin'; "
        "DETACH w; SELECT * FROM (SELECT 1 AS b",
        f"SELECT 1 AS a /* ; */; COPY (SELECT 42) TO '{out}'",
        f"SELECT 1 AS a -- '\n; COPY (SELECT 42) TO '{out}'",
        f"ATTACH '{w}' AS w",
        f"COPY (SELECT 42) TO '{out}'",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "PRAGMA enable_profiling",
        f"SELECT * FROM query('ATTACH ''{w}'' AS w')",
        f"WITH x AS (SELECT 1) SELECT * FROM read_text('{sec}')",
        f"SELECT * FROM (SELECT content FROM read_text('{sec}')) UNION ALL SELECT '1'",
        "SELECT * FROM duckdb_extensions()",
    ]


def test_a_file_source_reaches_no_other_file(wh, export_url, tmp_path, monkeypatch):
    secrets = secrets_file(tmp_path, monkeypatch, SERVER_SECRETS)
    before = wh.rows("SELECT name, role FROM app_user ORDER BY 1")
    for query in _attacks(tmp_path, Path(wh.path), secrets):
        shown: list[str] = []
        try:
            got = sources.sample(export_url, query)
            shown.append(got.to_csv())
        except SourceError as exc:
            shown.append(str(exc))
        source = Source("x", export_url, query, Profile("x", "day", [Measure("REV", "sum",
                                                                             "amount")]))  # fmt: skip
        try:
            shown.append(str(sources.prepare_pull(wh, source, access.SYSTEM, today=TODAY)))
        except SourceError as exc:
            shown.append(str(exc))
        assert not [s for s in shown if "4711" in s or "root:" in s], (query, shown)
        assert not (tmp_path / "pwned.csv").exists(), query
    assert wh.rows("SELECT name, role FROM app_user ORDER BY 1") == before


def test_the_view_over_the_export_is_still_readable_when_everything_else_is_shut(export_url):
    # DuckDB 2.0 checks file access when a view is read: the export stays allowed, alone.
    got = sources.sample(export_url, "SELECT day, amount * 2 AS twice FROM orders")
    # A CSV's dates stay text (DuckDB never guesses them); the mapping reads them.
    assert got.to_dict("records") == [{"day": "2026-10-03", "twice": 20}]
    con = source_connections._file_db(export_url)
    try:
        assert con.execute("SELECT current_setting('enable_external_access')").fetchone() == (
            False,
        )
        with pytest.raises(duckdb.Error, match="locked"):
            con.execute("SET enable_external_access = true")
    finally:
        con.close()


def test_file_paths_are_confined_to_the_allowed_folders(wh, exports, tmp_path, monkeypatch):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "x.csv").write_text("a\n1\n")
    (exports / "link.csv").symlink_to(outside / "x.csv")
    (exports / "warehouse.csv").symlink_to(wh.path)
    (exports / "sub").mkdir()
    refused = {
        f"csv://{outside / 'x.csv'}": "outside the folders",
        f"csv://{exports / 'link.csv'}": "outside the folders",  # a symlink out
        f"csv://{exports / 'sub' / '..' / '..' / 'elsewhere' / 'x.csv'}": "outside the folders",
        f"csv://{exports / 'warehouse.csv'}": "outside the folders",
        f"sqlite:///{outside / 'x.csv'}": "outside the folders",
        "csv://relative.csv": "full path",
        f"csv://{exports / 'missing.csv'}": "does not exist",
        # The answer never tells whether a file outside the folders exists.
        "csv:///etc/passwd": "outside the folders",
        "csv:///no/such/file.csv": "outside the folders",
    }
    for url, words in refused.items():
        with pytest.raises(SourceError, match=words):
            sources.test_connection(url)
    # A DuckDB database (a copy of the warehouse) inside the folder is not an export either.
    (exports / "copy.csv").write_bytes(Path(wh.path).read_bytes())
    with pytest.raises(SourceError, match="DuckDB database"):
        sources.test_connection(f"csv://{exports / 'copy.csv'}")
    # A folder that holds the warehouse (or the secrets file) is never one sources may read.
    monkeypatch.setenv("KPI_SOURCE_DIRS", str(tmp_path))
    (tmp_path / "beside.csv").write_text("a\n1\n")
    with pytest.raises(SourceError, match="also holds the warehouse"):
        sources.test_connection(f"csv://{tmp_path / 'beside.csv'}")
    # The setting: KPI_SOURCE_DIRS beats [sources] file_dirs, which beats data/exports.
    monkeypatch.delenv("KPI_SOURCE_DIRS")
    assert sources.source_dirs() == [sources.source_files.ROOT.resolve() / "data" / "exports"]
    secrets_file(tmp_path, monkeypatch, f'[sources]\nfile_dirs = ["{exports}", "rel"]\n')
    assert sources.source_dirs() == [exports.resolve(), sources.source_files.ROOT / "rel"]
    assert "orders" in sources.tables(f"csv://{_csv(exports / 'orders.csv')}")


def _csv(path: Path) -> Path:
    path.write_text("a\n1\n")
    return path


def test_sqlite_reads_only_one_statement_and_nothing_else(erp, exports, tmp_path):
    other = tmp_path / "other.db"
    sqlite3.connect(other).close()
    for query in (
        "SELECT 1; DROP TABLE orders",
        "SELECT 1 AS a /* /* */ ; DELETE FROM orders; */",  # SQLite does not nest comments
    ):
        with pytest.raises(SourceError):
            sources.sample(erp, query)
    from kpi_core.ingest.sources import _chunks

    for statement in (f"ATTACH '{other}' AS o", "PRAGMA writable_schema = 1",
                      "DELETE FROM orders", "SELECT 1; DELETE FROM orders"):  # fmt: skip
        with pytest.raises(SourceError, match="only read|refused"):
            list(_chunks(erp, statement, [], 10, 100))
    con = sqlite3.connect(exports / "erp.db")
    assert con.execute("SELECT count(*) FROM orders").fetchone() == (len(ORDERS),)
    con.close()


ENDLESS = (
    "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) AS n FROM r"
)


@pytest.mark.parametrize("kind", ["sqlite", "csv"])
def test_an_endless_query_stops_at_the_time_limit(kind, erp, export_url, wh):
    url = erp if kind == "sqlite" else export_url
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            sources.sample(url, ENDLESS, timeout_s=2)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(60)  # far beyond the limit: the query must have been stopped, not finished
    assert not worker.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], sources.TimeLimit), outcome
    source = Source("endless", url, ENDLESS, mapping(), timeout_s=2)
    with pytest.raises(sources.TimeLimit, match="longer than the time limit"):
        sources.prepare_pull(wh, source, access.SYSTEM, today=TODAY)


def test_file_and_limit_refusals_are_coded_messages(wh, erp, exports, tmp_path):
    def refused(work) -> SourceError:
        with pytest.raises(SourceError) as exc:
            work()
        assert exc.value.coded is not None, str(exc.value)
        return exc.value

    outside = refused(lambda: sources.test_connection(f"csv://{tmp_path}/elsewhere.csv"))
    assert (outside.coded.key, chinese(outside)) == (
        "sf_outside",
        f"文件 {tmp_path}/elsewhere.csv 不在数据源可以读取的文件夹中（{exports}）——请把导出文件放到"
        "那里，或请管理员把它所在的文件夹加入 .streamlit/secrets.toml 的 [sources] file_dirs（或 "
        "KPI_SOURCE_DIRS）",
    )
    missing = refused(lambda: sources.test_connection(f"csv://{exports}/none.csv"))
    assert str(missing) == f"the file {exports}/none.csv does not exist"
    assert (
        refused(lambda: sources.test_connection("csv://relative.csv")).coded.key == "sf_full_path"
    )
    limit = refused(
        lambda: sources.prepare_pull(
            wh, Source("erp", erp, QUERY, mapping(), row_limit=3), access.SYSTEM, today=TODAY
        )
    )
    assert str(limit) == (
        "the query returns more than 3 rows (the source's row limit) — aggregate in the query, "
        "narrow its months, or raise the limit"
    )
    assert chinese(limit).startswith("查询返回的行数超过 3 行")
    assert sources.TimeLimit().coded.key == "sf_time_limit"


def test_saved_source_refusals_are_coded_messages(wh, erp):
    with pytest.raises(NotFoundError) as none:
        sources.load(wh, "nope")
    assert str(none.value) == "There is no source 'nope'. None is defined yet."
    assert chinese(none.value) == "没有名为“nope”的数据源。目前还没有定义任何数据源。"
    for name in ("erp", "crm"):
        sources.save(wh, Source(name, erp, QUERY, mapping()), access.SYSTEM)
    with pytest.raises(NotFoundError) as other:
        sources.load(wh, "nope")
    assert str(other.value) == "There is no source 'nope'. Sources: crm, erp."
    assert chinese(other.value) == "没有名为“nope”的数据源。已有的数据源：crm、erp。"
    viewer = access.Actor("v", "viewer", Scope.all())
    with pytest.raises(ScopeError) as refused:
        sources.delete(wh, "erp", viewer)
    assert chinese(refused.value) == "只有数据分析和管理员可以定义数据源。"


def test_errors_people_can_act_on(wh, erp, tmp_path):
    def pull(**kw):
        return sources.prepare_pull(wh, Source("erp", **kw), access.SYSTEM, today=TODAY)

    with pytest.raises(SourceError, match="does not exist"):
        pull(url=f"sqlite:///{tmp_path / 'exports' / 'missing.db'}", query=QUERY, mapping=mapping())
    with pytest.raises(SourceError, match="rejected the query: no such table: nope"):
        pull(url=erp, query="SELECT * FROM nope", mapping=mapping())
    with pytest.raises(SourceError, match="driver for mysql is not installed.*pymysql"):
        sources.test_connection("mysql+pymysql://reader@127.0.0.1/db")
    with pytest.raises(SourceError, match="more than 3 rows"):
        pull(url=erp, query=QUERY, mapping=mapping(), row_limit=3)
    # A column the mapping needs that the query does not return: placed, nothing loaded.
    bad = pull(url=erp, query="SELECT id, order_date, region FROM orders", mapping=mapping())
    assert {(e.column, str(e.message)) for e in bad.errors} >= {
        ("price", "the measure column 'price' is not in the query's result")
    }
    assert len(bad.rows) == 0


def test_a_sources_problems_findings_and_export_probe_are_coded(wh, erp, exports):
    """What a source says about itself, a pull's findings and Test connection's answer on an
    export: coded messages, their English as before, their Chinese from the catalogs."""
    broken = Source(
        "", "postgresql://u:pw@h/db", "UPDATE orders SET x = 1",
        Profile(name="", date_column="d", unit_column="r", measures=[Measure("REV", "sum")]),
        row_limit=0,
    )  # fmt: skip
    problems = broken.problems(["x"])
    assert all(isinstance(q, Message) for q in problems), problems
    assert [str(q) for q in problems] == [
        "give the source a name",
        "the URL holds a password — it would be stored in plain text. Put it in the "
        "[source_secrets] section of .streamlit/secrets.toml or in an environment variable named "
        "KPI_SOURCE_SECRET_…, and write user:${secrets.source_secrets.erp}@host or "
        "user:${KPI_SOURCE_SECRET_ERP}@host in its place",
        "only a SELECT (or WITH … SELECT) query can be used as a source",
        "the date column 'd' is not in the query's result",
        "the unit column 'r' is not in the query's result",
        "measure 1: choose the column to sum",
        "the row limit and the time limit must be positive",
    ]  # fmt: skip
    assert [chinese(q) for q in problems][:1] + [chinese(q) for q in problems][3:] == [
        "请为数据源命名",
        "查询结果中没有日期列“d”",
        "查询结果中没有组织列“r”",
        "第 1 项指标计算：请选择求和所用的列",
        "行数上限和时间上限必须大于 0",
    ]
    with pytest.raises(SourceError) as refused:
        sources.prepare_pull(wh, broken, access.SYSTEM)
    assert refused.value.coded is not None
    assert str(refused.value).startswith("Source '' is not complete: give the source a name; ")
    assert chinese(refused.value).startswith("数据源“”还不完整：请为数据源命名；")
    with pytest.raises(SourceError) as refused:
        sources.save(wh, broken, access.SYSTEM)
    assert chinese(refused.value).startswith("数据源“”还不完整：")

    def pull(query: str, **kw):
        return sources.prepare_pull(
            wh, Source("erp", erp, query, mapping()), access.SYSTEM, today=TODAY, **kw
        )

    found = pull("SELECT id, order_date, region FROM orders").findings
    found += pull("SELECT * FROM orders WHERE 1 = 0").findings
    said = [(str(t), chinese(t)) for f in found for t in (f.message, f.hint)]
    for t in (t for f in found for t in (f.message, f.hint)):
        assert isinstance(t, Message), t
    assert ("the measure column 'price' is not in the query's result",
            "查询结果中没有计算列“price”") in said  # fmt: skip
    assert (
        "the query returns: id, order_date, region",
        "查询返回的列有：id、order_date、region",
    ) in said
    assert ("the query returned no rows", "查询没有返回任何行") in said
    assert ("check the query and its months", "请检查查询及其月份范围") in said
    (exports / "orders.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    probe = sources.test_connection(f"csv://{exports}/orders.csv")
    assert str(probe.said) == "orders.csv: CSV file, 8 bytes"
    assert chinese(probe.said) == "orders.csv：CSV 文件，8 字节"
