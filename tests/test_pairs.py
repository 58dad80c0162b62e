"""Queries over (KPI, unit) pairs: every way of handing the pairs to DuckDB returns exactly the
rows of the pairs asked for, each once."""

from __future__ import annotations

import numpy as np
import pytest

from kpi_core import pairs
from kpi_core.warehouse import Warehouse, in_background, open_warehouse
from tests.conftest import fresh_pg_database

TEMPLATE = "SELECT a.kpi_id, a.unit_id, a.v FROM cells a {join} WHERE {match} AND a.v >= ?"


@pytest.fixture(scope="module", params=["file", "pg"])
def wh(request, tmp_path_factory):
    """The DuckDB file, and PostgreSQL, where the pairs go as arrays (kpi_core/pg_warehouse.py)."""
    if request.param == "pg":
        wh = open_warehouse(fresh_pg_database(request.getfixturevalue("postgres")))
    else:
        wh = Warehouse(tmp_path_factory.mktemp("pairs") / "w.duckdb", linger=0)
    with wh.transaction() as cur:
        # 60 KPIs × 80 units, v = kpi * 1000 + unit; KPI 7 of unit 3 is missing.
        cur.execute(
            """CREATE TABLE cells AS
               SELECT k::INTEGER AS kpi_id, u::INTEGER AS unit_id, (k * 1000 + u)::DOUBLE AS v
               FROM range(1, 61) r1(k), range(1, 81) r2(u)
               WHERE NOT (k = 7 AND u = 3)"""
        )
    yield wh
    wh.close()


def expected(kpi_ids, unit_ids, floor: float = 0) -> set[tuple[int, int, float]]:
    out = set()
    for k, u in zip(kpi_ids, unit_ids, strict=True):
        if 1 <= k <= 60 and 1 <= u <= 80 and (k, u) != (7, 3) and k * 1000 + u >= floor:
            out.add((int(k), int(u), float(k * 1000 + u)))
    return out


def got(wh, kpi_ids, unit_ids, floor: float = 0) -> list[tuple[int, int, float]]:
    cols = pairs.select(wh, TEMPLATE, np.array(kpi_ids), np.array(unit_ids), [floor])
    return list(
        zip(cols["kpi_id"].tolist(), cols["unit_id"].tolist(), cols["v"].tolist(), strict=True)
    )


@pytest.mark.parametrize(
    ("kpi_ids", "unit_ids"),
    [
        ([5], [3]),  # one pair
        ([7], [3]),  # one pair without a row
        ([2, 3, 4, 5], [3, 3, 3, 3]),  # one unit, a run of KPIs
        ([2, 9, 40, 7, 9], [3, 3, 3, 3, 3]),  # one unit, KPIs with gaps, one missing, one twice
        ([1, 1, 60, 60], [1, 80, 1, 80]),  # corners of several units
        ([5, 5, 6], [10, 10, 11]),  # a pair asked for twice
        ([99, 5], [3, 999]),  # unknown KPI and unit
    ],
)
def test_each_pair_once(wh, kpi_ids, unit_ids):
    rows = got(wh, kpi_ids, unit_ids)
    assert len(rows) == len(set(rows))
    assert set(rows) == expected(kpi_ids, unit_ids)


def test_template_parameters_follow_the_pairs(wh):
    assert set(got(wh, [5, 50], [3, 3], floor=6000)) == {(50, 3, 50003.0)}
    assert set(got(wh, [5, 50], [3, 4], floor=6000)) == {(50, 4, 50004.0)}


def test_many_pairs_go_through_a_registered_table(wh):
    rng = np.random.default_rng(3)
    n = pairs.LIST_LIMIT + 500
    k = rng.integers(1, 62, n)
    u = rng.integers(1, 82, n)
    rows = got(wh, k, u, floor=2000)
    assert len(rows) == len(set(rows))
    assert set(rows) == expected(k, u, floor=2000)
    # The same just under the limit (two bound lists) gives the same rows.
    few = got(wh, k[: pairs.LIST_LIMIT], u[: pairs.LIST_LIMIT], floor=2000)
    assert set(few) == expected(k[: pairs.LIST_LIMIT], u[: pairs.LIST_LIMIT], floor=2000)


def test_no_pairs_gives_the_columns_and_no_rows(wh):
    cols = pairs.select(wh, TEMPLATE, np.array([], dtype=int), np.array([], dtype=int), [0])
    assert list(cols) == ["kpi_id", "unit_id", "v"]
    assert all(len(c) == 0 for c in cols.values())


def test_in_background_returns_the_value_or_raises_the_error():
    assert in_background(sum, [1, 2, 3])() == 6

    def fails():
        raise ValueError("from the thread")

    wait = in_background(fails)
    with pytest.raises(ValueError, match="from the thread"):
        wait()
