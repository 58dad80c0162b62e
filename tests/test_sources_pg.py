"""Database sources against a real PostgreSQL server (tests/pgserver.py): a pull equals what the
test computes independently from the generated rows; passwords, read-only, limits and errors."""

import time
from datetime import date

import pandas as pd
import pytest

from kpi_core import access, service, workbook
from kpi_core.access import Scope
from kpi_core.catalog import load_catalog
from kpi_core.ingest import source_connections, sources
from kpi_core.ingest.profile import Measure, Profile
from kpi_core.ingest.sources import Source, SourceError
from kpi_core.system_import import import_system
from kpi_core.warehouse import Warehouse
from tests.pgserver import LINES_QUERY, load_orders, region_codes
from tests.test_sources import KPIS

TODAY = date(2026, 11, 21)
REGIONS = region_codes(3)


@pytest.fixture(scope="module")
def erp(postgres):
    postgres.create_database("erp_sources", drop=True)
    data = load_orders(postgres, "erp_sources", n_lines=3000, n_units=3, seed=5,
                       months=("2026-01", "2026-10"))  # fmt: skip
    return data


@pytest.fixture
def wh(tmp_path):
    units = pd.DataFrame(
        [["CO", "公司", "Company", None, "company"]]
        + [[r, f"区域{r}", f"Region {r}", "CO", "team"] for r in REGIONS],
        columns=["code", "name_zh", "name_en", "parent", "kind"],
    )
    book = tmp_path / "system.xlsx"
    workbook.write({"kpis": KPIS, "org_units": units}, book)
    w = Warehouse(tmp_path / "w.duckdb", linger=0)
    import_system(w, book, by="test", scope=Scope.all())
    yield w
    w.close()


def lines_source(url: str, **kw) -> Source:
    mapping = Profile(
        name="erp",
        date_column="order_date",
        unit_column="region",
        measures=[
            Measure("REV", "sum", "=[unit_price] × [quantity] × (1 - [discount])"),
            Measure("ORDERS", "count_distinct", "order_id"),
        ],
    )
    return Source("erp", url, LINES_QUERY, mapping, **kw)


def reader_url(postgres, monkeypatch, db="erp_sources") -> str:
    monkeypatch.setenv("KPI_SOURCE_SECRET_READER", postgres.reader_password)
    return postgres.url(user=postgres.reader, password="${KPI_SOURCE_SECRET_READER}", db=db)


def admin_url(postgres, monkeypatch, db="erp_sources") -> str:
    monkeypatch.setenv("KPI_SOURCE_SECRET_ADMIN", postgres.password)
    return postgres.url(password="${KPI_SOURCE_SECRET_ADMIN}", db=db)


def test_pull_equals_the_generated_rows(postgres, erp, wh, monkeypatch):
    url = reader_url(postgres, monkeypatch)
    probe = sources.test_connection(url)
    assert "PostgreSQL" in probe.said and probe.cautions == []  # the reader only reads
    assert {"orders", "order_lines"} <= set(sources.tables(url))
    prepared = sources.prepare_pull(wh, lines_source(url), access.SYSTEM, today=TODAY)
    assert prepared.errors == []
    assert prepared.files == [sources.mask(url)] and "***" in prepared.files[0]
    cat = load_catalog(wh)
    got = {
        (cat.kpis[r.kpi_id].code, cat.units[r.unit_id].code, pd.Timestamp(r.period)): r.value
        for r in prepared.rows.itertuples()
    }
    expected = {}
    for (month, region), row in erp.monthly().iterrows():
        expected[("REV", region, pd.Timestamp(month))] = row["revenue"]
        expected[("ORDERS", region, pd.Timestamp(month))] = row["orders"]
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-9), key
    committed = service.commit_actuals(wh, prepared, access.SYSTEM)
    assert committed.counts["new"] == len(expected)


def test_a_month_range_is_read_from_the_source_only(postgres, erp, wh, monkeypatch):
    url = reader_url(postgres, monkeypatch)
    prepared = sources.prepare_pull(
        wh, lines_source(url), access.SYSTEM, first=date(2026, 3, 1), last=date(2026, 4, 1),
        today=TODAY,
    )  # fmt: skip
    assert prepared.months == [date(2026, 3, 1), date(2026, 4, 1)]


def test_the_source_is_never_written(postgres, erp, wh, monkeypatch):
    postgres.execute("CREATE SEQUENCE IF NOT EXISTS kpi_seq", db="erp_sources")
    # Even as the superuser, and with a query the one-SELECT check lets through (nextval
    # writes), the read-only transaction refuses.
    url = admin_url(postgres, monkeypatch)
    source = lines_source(url)
    source.query = "SELECT nextval('kpi_seq') AS order_id, now() AS order_date"
    with pytest.raises(SourceError, match="refused to write"):
        sources.prepare_pull(wh, source, access.SYSTEM, today=TODAY)
    assert postgres.execute("SELECT last_value, is_called FROM kpi_seq", db="erp_sources") == [
        (1, False)
    ]


def test_errors_people_can_act_on(postgres, erp, wh, monkeypatch):
    good = reader_url(postgres, monkeypatch)
    monkeypatch.setenv("KPI_SOURCE_SECRET_WRONG", "not-it")
    wrong = postgres.url(user=postgres.reader, password="${KPI_SOURCE_SECRET_WRONG}",
                         db="erp_sources")  # fmt: skip
    with pytest.raises(SourceError, match="user name or password is wrong") as err:
        sources.test_connection(wrong)
    assert "not-it" not in str(err.value) and "***" in str(err.value)
    from tests.pgserver import free_port

    nowhere = good.replace(f":{postgres.port}/", f":{free_port()}/")
    with pytest.raises(SourceError, match="cannot reach the server"):
        sources.test_connection(nowhere)
    with pytest.raises(SourceError, match="check the database name"):
        sources.test_connection(reader_url(postgres, monkeypatch, db="no_such_db"))
    source = lines_source(good)
    source.query = "SELECT * FRM orders"
    with pytest.raises(SourceError, match="cannot be read as one SELECT: syntax error"):
        sources.prepare_pull(wh, source, access.SYSTEM, today=TODAY)
    source.query = "SELECT * FROM no_such_table"
    with pytest.raises(SourceError, match="rejected the query: .*no_such_table"):
        sources.prepare_pull(wh, source, access.SYSTEM, today=TODAY)
    source = lines_source(good, timeout_s=1)
    source.query = "SELECT pg_sleep(3) AS x, now() AS order_date"
    with pytest.raises(SourceError, match="longer than the time limit"):
        sources.prepare_pull(wh, source, access.SYSTEM, today=TODAY)
    monkeypatch.delenv("KPI_SOURCE_SECRET_READER")
    with pytest.raises(SourceError, match="KPI_SOURCE_SECRET_READER is not set"):
        sources.test_connection(good)


def test_nothing_new_is_not_an_error(postgres, erp, wh, monkeypatch):
    url = reader_url(postgres, monkeypatch)
    source = lines_source(url)
    service.commit_actuals(
        wh, sources.prepare_pull(wh, source, access.SYSTEM, today=TODAY), access.SYSTEM
    )
    assert sources.last_pulled_month(wh, "erp") == date(2026, 10, 1)
    nothing = sources.prepare_pull(wh, source, access.SYSTEM, new_only=True, today=TODAY)
    assert nothing.errors == [] and len(nothing.rows) == 0


# --- attacks: a pull or a sample never escapes its read-only transaction or its time limit ------


@pytest.fixture
def victim(postgres, erp):
    postgres.execute("DROP TABLE IF EXISTS victim", db="erp_sources")
    postgres.execute("CREATE TABLE victim (id int)", db="erp_sources")
    postgres.execute("INSERT INTO victim VALUES (1), (2)", db="erp_sources")
    yield lambda: postgres.execute("SELECT count(*) FROM victim", db="erp_sources")[0][0]
    postgres.execute("DROP TABLE victim", db="erp_sources")


def hidden(tail: str) -> str:
    """A query whose '--' inside a string once hid the rest of the line from the check."""
    return f"SELECT '--' AS a) TO STDOUT; {tail}; COPY (SELECT * FROM orders"


def test_statements_hidden_after_a_string_never_run(postgres, wh, monkeypatch, victim, tmp_path):
    url = admin_url(postgres, monkeypatch)  # a superuser, who could write and run programs
    spot = tmp_path / "drop"
    spot.mkdir()
    spot.chmod(0o777)  # the server's user could write here
    pwned = spot / "pwned"
    attacks = [
        hidden("COMMIT; BEGIN READ WRITE; DELETE FROM victim WHERE id = 1; COMMIT"),
        hidden(f"COPY (SELECT 1) TO PROGRAM 'touch {pwned}'"),
        f"SELECT 1 AS a) TO PROGRAM 'touch {pwned}'; COPY (SELECT 1 AS a",
        f"COPY (SELECT 1) TO PROGRAM 'touch {pwned}'",
        "SELECT 1 AS a; DELETE FROM victim",
        "SELECT 1 AS a /* ; */; DELETE FROM victim",
        "SELECT $$;$$ AS a; DELETE FROM victim",
        "WITH d AS (DELETE FROM victim RETURNING id) SELECT id AS order_date FROM d",
    ]
    for query in attacks:
        with pytest.raises(SourceError):
            sources.sample(url, query)
        source = lines_source(url)
        source.query = query
        with pytest.raises(SourceError):
            sources.prepare_pull(wh, source, access.SYSTEM, today=TODAY)
    assert victim() == 2 and not pwned.exists()


def test_the_server_itself_refuses_a_second_statement(postgres, monkeypatch, victim, tmp_path):
    """Should a query ever pass the parser, the protocol still carries one statement only."""
    import psycopg

    from kpi_core.ingest import source_pg

    target = source_connections._pg_target(admin_url(postgres, monkeypatch))
    # Made to close the wrapper around it: three statements once wrapped, were it not refused.
    raw = ("SELECT '--' AS a) AS x) TO STDOUT; COMMIT; BEGIN READ WRITE; "
           "DELETE FROM victim WHERE id = 1; COMMIT; COPY (SELECT * FROM (SELECT 1 AS b")  # fmt: skip
    with source_pg.read_only(target, 10) as con:
        statement = source_pg.copy_text(con, raw, None, None, None)
        with pytest.raises(psycopg.Error, match="multiple commands"):
            source_pg.copy_out(con, statement, lambda block: None)
    with source_pg.read_only(target, 10) as con, pytest.raises(psycopg.Error, match="multiple"):
        source_pg.sample(con, "SELECT 1 AS a) x; DELETE FROM victim; SELECT * FROM (SELECT 1", 5)
    with source_pg.read_only(target, 10) as con, pytest.raises(psycopg.Error, match="read-only"):
        source_pg.sample(con, "SELECT 1 AS a FROM (SELECT nextval('kpi_seq')) s", 5)
    assert victim() == 2


def bounded(work, seconds: float = 90):
    """Run `work` on a thread; its exception, once it ends (it must end well before `seconds`)."""
    import threading

    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            work()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "the query was not stopped at its time limit"
    return outcome[0]


@pytest.mark.parametrize(
    "query",
    [
        "SELECT pg_sleep(60) AS x, now() AS order_date",
        # The limit cannot be lifted from inside the query …
        "SELECT set_config('statement_timeout', '0', true) AS x, pg_sleep(60) AS y, "
        "now() AS order_date",
        # … nor by a statement hidden after it.
        "SELECT '--' AS a) TO STDOUT; SET statement_timeout = 0; "
        "COPY (SELECT pg_sleep(60) AS x, now() AS order_date",
    ],
)
def test_a_sixty_second_sleep_stops_at_a_five_second_limit(postgres, erp, wh, monkeypatch, query):
    source = lines_source(reader_url(postgres, monkeypatch), timeout_s=5)
    source.query = query
    # Bounded well below the sleep's 60 s: a query still running then was not stopped.
    error = bounded(lambda: sources.prepare_pull(wh, source, access.SYSTEM, today=TODAY), 45)
    assert isinstance(error, SourceError), error
    error = bounded(lambda: sources.sample(source.url, query, timeout_s=5), 45)
    assert isinstance(error, SourceError), error
    sleeping = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' " \
               "AND state = 'active' AND pid <> pg_backend_pid()"  # fmt: skip
    for _ in range(100):  # the server, too, has stopped it
        if postgres.execute(sleeping)[0][0] == 0:
            break
        time.sleep(0.1)
    assert postgres.execute(sleeping)[0][0] == 0


def test_percent_signs_reach_the_server_as_written(postgres, erp, wh, monkeypatch):
    url = reader_url(postgres, monkeypatch)
    query = (
        "SELECT o.order_id, o.order_date, o.region, '50%' AS tag, 7 % 3 AS m, "
        "'%(x)s %s %%' AS odd FROM orders o"
    )
    got = sources.sample(url, query, 1)
    assert got[["tag", "m", "odd"]].to_dict("records") == [
        {"tag": "50%", "m": 1, "odd": "%(x)s %s %%"}
    ]
    from kpi_core.ingest.profile import Filter

    mapping = Profile(
        name="erp", date_column="order_date", unit_column="region",
        measures=[Measure("ORDERS", "count_distinct", "order_id",
                          [Filter("tag", "=", "50%"), Filter("m", "=", "1"),
                           Filter("odd", "=", "%(x)s %s %%")])],
    )  # fmt: skip
    source = Source("pct", url, query, mapping)
    every = sources.prepare_pull(wh, source, access.SYSTEM, today=TODAY)
    ranged = sources.prepare_pull(wh, source, access.SYSTEM, first=date(2026, 3, 1),
                                  last=date(2026, 4, 1), today=TODAY)  # fmt: skip
    assert every.errors == [] and ranged.errors == []
    assert len(every.rows) == 10 * len(REGIONS) and len(ranged.rows) == 2 * len(REGIONS)
    assert every.rows["value"].sum() == erp.monthly()["orders"].sum()


def test_test_connection_warns_of_an_account_that_can_do_more_than_read(postgres, erp, monkeypatch):
    said = sources.test_connection(admin_url(postgres, monkeypatch)).cautions
    assert [c.code for c in said] == ["superuser"]
    writer = "kpi_writer"
    postgres.execute(f"DROP ROLE IF EXISTS {writer}")
    postgres.execute(f"CREATE ROLE {writer} LOGIN PASSWORD 'w-pass-4711'")
    try:
        postgres.execute(f"GRANT SELECT, UPDATE ON orders TO {writer}", db="erp_sources")
        postgres.execute(f"GRANT CREATE ON SCHEMA public TO {writer}", db="erp_sources")
        postgres.execute(f"GRANT pg_read_server_files TO {writer}")
        monkeypatch.setenv("KPI_SOURCE_SECRET_WRITER", "w-pass-4711")
        url = postgres.url(user=writer, password="${KPI_SOURCE_SECRET_WRITER}", db="erp_sources")
        said = {c.code: c.names for c in sources.test_connection(url).cautions}
        assert said == {
            "server_files": ("pg_read_server_files",),
            "writes": ("public.orders",),
            "creates": ("schema public",),
        }
        assert "4711" not in " ".join(str(c) for c in sources.test_connection(url).cautions)
    finally:
        postgres.execute(f"REVOKE ALL ON orders FROM {writer}", db="erp_sources")
        postgres.execute(f"REVOKE ALL ON SCHEMA public FROM {writer}", db="erp_sources")
        postgres.execute(f"DROP ROLE {writer}")


class FakeServer:
    """A TCP listener on 127.0.0.1 that answers a PostgreSQL client's start-up with `answer` and
    keeps every byte the client sent: a server of an attacker's choosing."""

    def __init__(self, answer: bytes):
        import socket
        import threading

        self.answer, self.received = answer, b""
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(20)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        import struct

        try:
            con, _ = self.sock.accept()
        except OSError:
            return
        con.settimeout(10)
        with con:
            while True:
                head = con.recv(8)
                self.received += head
                if len(head) < 8:
                    return
                size, code = struct.unpack("!ii", head)
                if size == 8 and code in (80877103, 80877104):  # SSL or GSS encryption: no
                    con.sendall(b"N")
                    continue
                self.received += con.recv(size - 8)
                con.sendall(self.answer)
                try:
                    while data := con.recv(4096):  # whatever the client says next
                        self.received += data
                except OSError:
                    pass
                return

    def close(self) -> None:
        self.sock.close()
        self.thread.join(30)


def _message(kind: bytes, body: bytes) -> bytes:
    import struct

    return kind + struct.pack("!i", len(body) + 4) + body


def test_the_password_never_leaves_in_clear_text_nor_comes_back_in_a_message(monkeypatch):
    import struct

    secret = "ERP-SECRET-4711"
    monkeypatch.setenv("KPI_SOURCE_SECRET_ERP", secret)
    clear = FakeServer(_message(b"R", struct.pack("!i", 3)))  # "send me the password"
    url = f"postgresql+psycopg://kpi:${{KPI_SOURCE_SECRET_ERP}}@127.0.0.1:{clear.port}/erp"
    with pytest.raises(SourceError, match="clear text") as err:
        sources.test_connection(url)
    clear.close()
    assert secret.encode() not in clear.received and secret not in str(err.value)
    # A server that repeats the value in its error: the message shows *** in its place.
    fields = b"SFATAL\0VFATAL\0C28000\0M" + f"no entry for {secret}".encode() + b"\0\0"
    echo = FakeServer(_message(b"E", fields))
    url = f"postgresql+psycopg://kpi:${{KPI_SOURCE_SECRET_ERP}}@127.0.0.1:{echo.port}/erp"
    with pytest.raises(SourceError) as err:
        sources.test_connection(url)
    echo.close()
    assert "no entry for ***" in str(err.value) and secret not in str(err.value)
