"""Database sources on a real SQLite file and real CSV/Parquet exports: pulls checked against
values computed independently by the database itself, safety, and errors people can act on."""

import json
import sqlite3
import subprocess
import sys
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from kpi_core import service, workbook
from kpi_core.access import Scope
from kpi_core.catalog import load_catalog
from kpi_core.ingest import intake, sources
from kpi_core.ingest.profile import Filter, Measure, Profile
from kpi_core.ingest.sources import Source, SourceError
from kpi_core.system_import import import_system
from kpi_core.warehouse import Warehouse

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


@pytest.fixture
def erp(tmp_path) -> str:
    return f"sqlite:///{erp_sqlite(tmp_path / 'erp.db')}"


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


def test_pull_equals_what_the_database_computes(wh, erp, tmp_path):
    source = Source("erp", erp, QUERY, mapping())
    prepared = sources.prepare_pull(wh, source, service.SYSTEM, today=TODAY)
    assert prepared.errors == [] and prepared.kind == "pull"
    got = pulled(prepared, load_catalog(wh))
    assert got == pytest.approx(independent(tmp_path / "erp.db"))
    # By hand, July East: 100×3 + 50×2×0.9 + 200 = 590; orders 1 and 2; only 1 on time.
    assert got[("REV", "EAST", "2026-07")] == pytest.approx(590)
    assert (got[("SHIPPED", "EAST", "2026-07")], got[("ONTIME", "EAST", "2026-07")]) == (2, 1)
    committed = intake.commit(wh, prepared, service.SYSTEM)
    assert committed.batch_id is not None
    assert sources.last_pulled_month(wh, "erp") == date(2026, 9, 1)
    # The ratio over the quarter is Σ on time / Σ shipped of the company: (1+1+1+1) / (2+1+1+1).
    card = service.score_unit(wh, service.SYSTEM, "CO", parse("2026-Q3"))
    rate = next(k for k in card["kpis"] if k["kpi"] == "ONTIME_RATE")
    assert rate["actual"] == pytest.approx(4 / 5)


def parse(p):
    from kpi_core.periods import parse_period

    return parse_period(p)


def test_incremental_and_ranged_pulls(wh, erp, tmp_path):
    source = Source("erp", erp, QUERY, mapping())
    first = sources.prepare_pull(wh, source, service.SYSTEM, last=date(2026, 7, 1), today=TODAY)
    assert first.months == [date(2026, 7, 1)]
    intake.commit(wh, first, service.SYSTEM)
    # A new order arrives in September; only the months after July are asked for.
    con = sqlite3.connect(tmp_path / "erp.db")
    con.execute("INSERT INTO orders VALUES (7, '2026-09-20', '2026-09-30', NULL, 'east')")
    con.execute("INSERT INTO lines VALUES (7, 1000.0, 1, 0.0)")
    con.commit()
    con.close()
    new = sources.prepare_pull(wh, source, service.SYSTEM, new_only=True, today=TODAY)
    assert new.months == [date(2026, 8, 1), date(2026, 9, 1)]
    assert pulled(new, load_catalog(wh))[("REV", "EAST", "2026-09")] == 1000.0
    intake.commit(wh, new, service.SYSTEM)
    nothing = sources.prepare_pull(wh, source, service.SYSTEM, new_only=True, today=TODAY)
    assert nothing.counts["new"] == 0 and nothing.errors == []
    again = sources.prepare_pull(
        wh, source, service.SYSTEM, first=date(2026, 8, 1), last=date(2026, 8, 1), today=TODAY
    )
    assert again.months == [date(2026, 8, 1)] and again.counts["unchanged"] == len(again.rows)


def test_saved_source_pulled_from_the_cli(wh, erp, tmp_path):
    sources.save(wh, Source("erp", erp, QUERY, mapping()), service.SYSTEM)
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
    (tmp_path / "erp.db").unlink()
    gone = subprocess.run([*base, "erp"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert gone.returncode == 5 and "does not exist" in gone.stderr


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_exports_are_sources(wh, tmp_path, kind):
    db = erp_sqlite(tmp_path / "erp.db")
    con = sqlite3.connect(db)
    lines = pd.read_sql(QUERY, con)
    con.close()
    path = tmp_path / f"order_lines.{kind}"
    lines.to_csv(path, index=False) if kind == "csv" else lines.to_parquet(path)
    url = f"{kind}://{path}"
    assert "order_lines" in sources.tables(url)
    source = Source("export", url, "SELECT * FROM order_lines", mapping())
    prepared = sources.prepare_pull(wh, source, service.SYSTEM, today=TODAY)
    assert prepared.errors == []
    assert pulled(prepared, load_catalog(wh)) == pytest.approx(independent(db))


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("DELETE FROM orders", "only a SELECT"),
        ("SELECT 1; DROP TABLE orders", "one statement only"),
        ("WITH x AS (DELETE FROM orders RETURNING *) SELECT * FROM x", "'DELETE'"),
        ("SELECT * INTO copy FROM orders", "'INTO'"),
        ("", "empty"),
    ],
)
def test_only_one_select_is_accepted(query, words):
    with pytest.raises(SourceError, match=words):
        sources.check_query(query)


def test_words_inside_strings_and_comments_are_not_writes():
    sql = "SELECT 'delete; drop' AS note, \"update\" -- insert\nFROM t /* create */;"
    assert sources.check_query(sql).endswith("/* create */")


def test_sqlite_is_opened_read_only(erp):
    # Even a statement that slipped past the check cannot write: the file is opened read-only.
    from kpi_core.ingest.sources import _chunks

    with pytest.raises(SourceError, match="refused to write|read"):
        list(_chunks(erp, "UPDATE orders SET region = 'x'", {}, 10, 100))


def test_passwords_are_not_stored_and_urls_are_masked(wh, monkeypatch, tmp_path):
    url = "postgresql+psycopg://kpi:s3cret@db.example:5432/erp"
    with pytest.raises(SourceError, match="holds a password"):
        sources.check_url(url)
    with pytest.raises(SourceError, match="holds a password"):
        sources.save(wh, Source("erp", url, "SELECT 1", mapping()), service.SYSTEM)
    assert sources.mask(url) == "postgresql+psycopg://kpi:***@db.example:5432/erp"
    sources.check_url("postgresql+psycopg://kpi:${ERP_PASSWORD}@db.example/erp")
    monkeypatch.setenv("ERP_PASSWORD", "p@ss/word")
    assert sources.resolve("postgresql+psycopg://kpi:${ERP_PASSWORD}@h/erp") == (
        "postgresql+psycopg://kpi:p%40ss%2Fword@h/erp"
    )
    monkeypatch.delenv("ERP_PASSWORD")
    with pytest.raises(SourceError, match="ERP_PASSWORD is not set"):
        sources.resolve("postgresql+psycopg://kpi:${ERP_PASSWORD}@h/erp")


def test_errors_people_can_act_on(wh, erp, tmp_path):
    def pull(**kw):
        return sources.prepare_pull(wh, Source("erp", **kw), service.SYSTEM, today=TODAY)

    with pytest.raises(SourceError, match="does not exist"):
        pull(url=f"sqlite:///{tmp_path / 'missing.db'}", query=QUERY, mapping=mapping())
    with pytest.raises(SourceError, match="rejected the query: no such table: nope"):
        pull(url=erp, query="SELECT * FROM nope", mapping=mapping())
    with pytest.raises(SourceError, match="driver for mysql is not installed.*pymysql"):
        sources.test_connection("mysql+pymysql://reader@127.0.0.1/db")
    with pytest.raises(SourceError, match="more than 3 rows"):
        pull(url=erp, query=QUERY, mapping=mapping(), row_limit=3)
    # A column the mapping needs that the query does not return: placed, nothing loaded.
    bad = pull(url=erp, query="SELECT id, order_date, region FROM orders", mapping=mapping())
    assert {(e.column, e.message) for e in bad.errors} >= {
        ("price", "the measure column 'price' is not in the query's result")
    }
    assert len(bad.rows) == 0
