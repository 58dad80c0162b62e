"""The real PostgreSQL server the database-source tests use (tests/pgserver.py), and its data."""

from __future__ import annotations

import sqlite3

import pandas as pd
import psycopg
import pytest
import sqlalchemy as sa

from tests.pgserver import (
    MONTHLY_REVENUE_PG,
    PgMissingError,
    PgServer,
    find_bin_dir,
    generate_orders,
    load_orders,
    load_orders_sqlite,
    port_open,
)


@pytest.fixture(scope="module")
def small_db(postgres):
    postgres.create_database("pgserver_small", drop=True)
    postgres.execute("CREATE TABLE t (id int PRIMARY KEY, name text)", db="pgserver_small")
    postgres.execute("INSERT INTO t VALUES (1, 'one'), (2, 'two')", db="pgserver_small")
    postgres.grant_read("pgserver_small")
    return "pgserver_small"


def test_both_roles_log_in_with_their_passwords_over_tcp(postgres, small_db):
    for user in (postgres.superuser, postgres.reader):
        url = postgres.url(user=user, db=small_db)
        assert url.startswith(f"postgresql+psycopg://{user}:") and "@127.0.0.1:" in url
        engine = sa.create_engine(url)
        try:
            with engine.connect() as con:
                who = con.execute(sa.text("SELECT current_user")).scalar()
                rows = con.execute(sa.text("SELECT id, name FROM t ORDER BY id")).all()
        finally:
            engine.dispose()
        assert who == user
        assert rows == [(1, "one"), (2, "two")]


def test_a_wrong_password_is_refused(postgres, small_db):
    engine = sa.create_engine(postgres.url(user=postgres.reader, password="wrong", db=small_db))
    with pytest.raises(sa.exc.OperationalError) as caught:
        engine.connect()
    engine.dispose()
    assert isinstance(caught.value.orig, psycopg.OperationalError)
    assert f'password authentication failed for user "{postgres.reader}"' in str(caught.value)


def test_a_read_only_transaction_refuses_writes(postgres, small_db):
    # As the superuser, so it is the transaction (not a missing privilege) that refuses.
    engine = sa.create_engine(postgres.url(db=small_db))
    try:
        with engine.connect().execution_options(postgresql_readonly=True) as con:
            with pytest.raises(sa.exc.InternalError) as caught:
                con.execute(sa.text("INSERT INTO t VALUES (3, 'three')"))
            assert isinstance(caught.value.orig, psycopg.errors.ReadOnlySqlTransaction)
    finally:
        engine.dispose()
    # The reader role owns nothing: it may not write even outside a read-only transaction.
    reader = psycopg.connect(postgres.dsn(user=postgres.reader, db=small_db))
    with reader as con, pytest.raises(psycopg.errors.InsufficientPrivilege):
        con.execute("DELETE FROM t")
    assert postgres.execute("SELECT count(*) FROM t", db=small_db) == [(2,)]


def test_order_data_is_deterministic_and_the_same_in_postgres_and_sqlite(postgres, tmp_path):
    a = generate_orders(20_000, 5, seed=3, months=("2025-11", "2026-02"))
    b = generate_orders(20_000, 5, seed=3, months=("2025-11", "2026-02"))
    pd.testing.assert_frame_equal(a.lines, b.lines)
    pd.testing.assert_frame_equal(a.orders, b.orders)
    assert len(a.lines) == 20_000 and a.orders["region"].nunique() == 5

    postgres.create_database("pgserver_orders", drop=True)
    load_orders(postgres, "pgserver_orders", 0, 0, data=a)
    load_orders_sqlite(tmp_path / "orders.sqlite", 0, 0, data=a)
    expected = a.monthly()
    assert list(expected.index.get_level_values("month").unique().strftime("%Y-%m")) == [
        "2025-11", "2025-12", "2026-01", "2026-02"
    ]  # fmt: skip

    pg = pd.DataFrame(
        postgres.execute(MONTHLY_REVENUE_PG, db="pgserver_orders"),
        columns=["month", "region", "revenue", "orders"],
    )
    with sqlite3.connect(tmp_path / "orders.sqlite") as con:
        lite = pd.read_sql(
            "SELECT substr(o.order_date, 1, 7) || '-01' AS month, o.region, "
            "sum(l.unit_price * l.quantity * (1 - l.discount)) AS revenue, "
            "count(DISTINCT o.order_id) AS orders, "
            "(SELECT count(*) FROM orders p WHERE substr(p.order_date, 1, 7) = "
            "substr(o.order_date, 1, 7) AND p.region = o.region AND p.shipped_date IS NOT NULL "
            "AND p.shipped_date <= p.required_date) AS on_time "
            "FROM order_lines l JOIN orders o ON o.order_id = l.order_id GROUP BY 1, 2",
            con,
        )
    for got in (pg, lite):
        got["month"] = pd.to_datetime(got["month"])
        got = got.set_index(["month", "region"]).sort_index()
        assert list(got.index) == list(expected.index)
        assert (got["orders"] == expected["orders"]).all()
        rel = (got["revenue"].astype(float) - expected["revenue"]).abs() / expected["revenue"]
        assert rel.max() < 1e-9
    lite = lite.set_index(["month", "region"]).sort_index()
    assert (lite["on_time"] == expected["on_time"]).all()


def test_the_server_stops_and_leaves_nothing_behind():
    with PgServer() as pg:
        port, where = pg.port, pg.dir
        assert port_open(port) and where.is_dir()
        assert pg.execute("SHOW fsync") == [("off",)]
        assert pg.execute("SHOW listen_addresses") == [("127.0.0.1",)]
    assert not pg.running and not port_open(port) and not where.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(host="127.0.0.1", port=port, user="postgres", connect_timeout=2)
    pg.stop()  # a second stop is harmless


def test_missing_binaries_name_the_debian_package(tmp_path):
    with pytest.raises(PgMissingError, match=r"apt-get install -y postgresql"):
        find_bin_dir(tmp_path)
