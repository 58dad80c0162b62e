"""Database sources against a real PostgreSQL server (tests/pgserver.py): a pull equals what the
test computes independently from the generated rows; passwords, read-only, limits and errors."""

from datetime import date

import pandas as pd
import pytest

from kpi_core import service, workbook
from kpi_core.access import Scope
from kpi_core.catalog import load_catalog
from kpi_core.ingest import intake, sources
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
    monkeypatch.setenv("ERP_READER_PASSWORD", postgres.reader_password)
    return postgres.url(user=postgres.reader, password="${ERP_READER_PASSWORD}", db=db)


def test_pull_equals_the_generated_rows(postgres, erp, wh, monkeypatch):
    url = reader_url(postgres, monkeypatch)
    assert "PostgreSQL" in sources.test_connection(url)
    assert {"orders", "order_lines"} <= set(sources.tables(url))
    prepared = sources.prepare_pull(wh, lines_source(url), service.SYSTEM, today=TODAY)
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
    committed = intake.commit(wh, prepared, service.SYSTEM)
    assert committed.counts["new"] == len(expected)


def test_a_month_range_is_read_from_the_source_only(postgres, erp, wh, monkeypatch):
    url = reader_url(postgres, monkeypatch)
    prepared = sources.prepare_pull(
        wh, lines_source(url), service.SYSTEM, first=date(2026, 3, 1), last=date(2026, 4, 1),
        today=TODAY,
    )  # fmt: skip
    assert prepared.months == [date(2026, 3, 1), date(2026, 4, 1)]


def test_the_source_is_never_written(postgres, erp, wh, monkeypatch):
    postgres.execute("CREATE SEQUENCE IF NOT EXISTS kpi_seq", db="erp_sources")
    # Even as the superuser, and with a query the one-SELECT check lets through (nextval
    # writes), the read-only transaction refuses.
    monkeypatch.setenv("ERP_ADMIN_PASSWORD", postgres.password)
    url = postgres.url(password="${ERP_ADMIN_PASSWORD}", db="erp_sources")
    source = lines_source(url)
    source.query = "SELECT nextval('kpi_seq') AS order_id, now() AS order_date"
    with pytest.raises(SourceError, match="refused to write"):
        sources.prepare_pull(wh, source, service.SYSTEM, today=TODAY)
    assert postgres.execute("SELECT last_value, is_called FROM kpi_seq", db="erp_sources") == [
        (1, False)
    ]


def test_errors_people_can_act_on(postgres, erp, wh, monkeypatch):
    good = reader_url(postgres, monkeypatch)
    wrong = postgres.url(user=postgres.reader, password="not-it", db="erp_sources")
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
    with pytest.raises(SourceError, match="rejected the query: syntax error"):
        sources.prepare_pull(wh, source, service.SYSTEM, today=TODAY)
    source = lines_source(good, timeout_s=1)
    source.query = "SELECT pg_sleep(3) AS x, now() AS order_date"
    with pytest.raises(SourceError, match="longer than the time limit"):
        sources.prepare_pull(wh, source, service.SYSTEM, today=TODAY)
    monkeypatch.delenv("ERP_READER_PASSWORD")
    with pytest.raises(SourceError, match="ERP_READER_PASSWORD is not set"):
        sources.test_connection(good)


def test_nothing_new_is_not_an_error(postgres, erp, wh, monkeypatch):
    url = reader_url(postgres, monkeypatch)
    source = lines_source(url)
    intake.commit(wh, sources.prepare_pull(wh, source, service.SYSTEM, today=TODAY), service.SYSTEM)
    assert sources.last_pulled_month(wh, "erp") == date(2026, 10, 1)
    nothing = sources.prepare_pull(wh, source, service.SYSTEM, new_only=True, today=TODAY)
    assert nothing.errors == [] and len(nothing.rows) == 0
