"""The warehouse's data version and the caches keyed by it: a commit from this process or from
another one is seen by the next run, and a run without a commit recomputes nothing."""

import subprocess
import sys
import textwrap
from datetime import datetime

import pytest

from kpi_core import auth, memo, sessions, workbook
from kpi_core.access import Scope
from kpi_core.board import board
from kpi_core.catalog import load_catalog
from kpi_core.periods import parse_period
from kpi_core.system_import import import_system
from kpi_core.warehouse import Warehouse
from tests.apptest import ROOT, open_page
from tests.conftest import sales_system

HALVE_REVENUE = (
    "UPDATE actual SET value = value / 2 WHERE kpi_id = (SELECT id FROM kpi WHERE code = 'REV')"
)


def test_every_commit_changes_the_version_and_a_rollback_does_not(warehouse):
    first = warehouse.data_version()
    assert warehouse.data_version() == first
    with warehouse.transaction() as cur:
        cur.execute("INSERT INTO phasing_profile VALUES ('p', [1.0])")
    second = warehouse.data_version()
    assert second != first
    with pytest.raises(RuntimeError), warehouse.transaction() as cur:
        cur.execute("INSERT INTO phasing_profile VALUES ('q', [1.0])")
        raise RuntimeError("changed my mind")
    assert warehouse.data_version() == second
    # Another Warehouse object of the same file in this process shares the version.
    other = Warehouse(warehouse.path, linger=0)
    with other.transaction() as cur:
        cur.execute("DELETE FROM phasing_profile")
    assert warehouse.data_version() == other.data_version() != second
    other.close()


def test_a_commit_in_another_process_is_seen(warehouse):
    before = warehouse.data_version()
    code = textwrap.dedent(f"""
        from kpi_core.warehouse import Warehouse
        wh = Warehouse({warehouse.path!r}, linger=0)
        with wh.transaction() as cur:
            cur.execute("INSERT INTO phasing_profile VALUES ('p', [1.0])")
        wh.close()
    """)
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)
    assert warehouse.data_version() != before


def test_a_session_touch_keeps_the_caches(warehouse):
    with warehouse.transaction() as cur:
        cur.execute(
            "INSERT INTO app_user (name, display_name, role, scope, password_hash) "
            "VALUES ('u', 'U', 'admin', [], 'x')"
        )
    now = datetime(2026, 11, 20, 9)
    session_id = sessions.create(warehouse, "u", now=now, rules=auth.policy())
    version = warehouse.data_version()
    # A run a few minutes later moves the session's last-seen time: bookkeeping only.
    later = now.replace(minute=5)
    assert sessions.check(warehouse, session_id, now=later, rules=auth.policy()).ok
    assert warehouse.one("SELECT last_seen FROM app_session")[0] == later
    assert warehouse.data_version() == version


@pytest.fixture
def sales_file(tmp_path):
    book = tmp_path / "sales.xlsx"
    workbook.write(sales_system(), book)
    wh = Warehouse(tmp_path / "wh.duckdb", linger=0)
    import_system(wh, book, by="test", scope=Scope.all())
    wh.close()
    return tmp_path / "wh.duckdb"


def test_a_cached_board_follows_a_commit(sales_file):
    wh = Warehouse(sales_file, linger=0)
    cat = load_catalog(wh)
    assert load_catalog(wh) is cat  # the same data: the same catalog, not a new one
    sales = cat.unit_by_code["SALES"].id
    year = parse_period("2024-12")  # a month: read from `actual` itself
    first = board(wh, cat, Scope.all(), sales, year)
    assert board(wh, cat, Scope.all(), sales, year) is first
    with wh.transaction() as cur:
        cur.execute(HALVE_REVENUE)
    cat = load_catalog(wh)
    again = board(wh, cat, Scope.all(), sales, year)
    assert again.result.score < first.result.score
    wh.close()


def test_the_board_page_shows_a_commit_from_another_process_at_the_next_run(
    sales_file, monkeypatch
):
    at = open_page(
        "pages/1_Board.py", sales_file, monkeypatch, query={"unit": "SALES", "period": "2024-12"}
    )
    score = next(m.value for m in at.metric if m.label == "Score")
    # A warm run of the same data computes nothing again.
    misses = memo.stats["misses"]
    at.run()
    assert memo.stats["misses"] == misses
    assert next(m.value for m in at.metric if m.label == "Score") == score
    # An analyst's load from the command line, say: another process, which waits for the
    # app's connection to linger out, then commits.
    code = textwrap.dedent(f"""
        from kpi_core.warehouse import Warehouse
        wh = Warehouse({str(sales_file)!r}, linger=0)
        with wh.transaction() as cur:
            cur.execute({HALVE_REVENUE!r})
        wh.close()
    """)
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)
    at.run()
    assert not at.exception
    assert next(m.value for m in at.metric if m.label == "Score") != score


def _charts(at) -> list[tuple[str, list[bytes]]]:
    found = at.get("vega_lite_chart")
    return [(c.proto.spec, [d.data.data for d in c.proto.datasets]) for c in found]


def test_a_chart_drawn_again_carries_its_data(sales_file, monkeypatch):
    """Charts are built and turned into a spec once for the same data (kpi_core.charts): the
    next run must draw the same spec with the same data, not an empty chart."""
    at = open_page(
        "pages/1_Board.py", sales_file, monkeypatch, query={"unit": "SALES", "period": "2024-12"}
    )
    first = _charts(at)
    assert first and all(data and all(data) for _, data in first)
    at.run()
    assert _charts(at) == first


def test_a_target_save_is_seen_by_the_next_grid_and_board(sales_file):
    """The Targets page's grid and the Board are both cached: a saved target changes both."""
    from datetime import date

    from kpi_core import planning
    from kpi_core.access import SYSTEM

    wh = Warehouse(sales_file, linger=0)
    cat = load_catalog(wh)
    sales = cat.unit_by_code["SALES"].id
    month = parse_period("2024-12")

    def grid():
        return planning.target_grid(wh, load_catalog(wh), SYSTEM, sales, 2024, "Y", "en",
                                    date(2024, 12, 1))  # fmt: skip

    before = grid()
    score = board(wh, cat, Scope.all(), sales, month).result.score
    row = int(before.index[before["code"] == "SALES/NEW_CUST"][0])
    assert grid().at[row, "target"] == before.at[row, "target"]
    edited = before.copy()
    for col, text in (("baseline", "1"), ("target", "2")):  # far below what was won: higher
        edited[col] = edited[col].astype(object)
        edited.at[row, col] = text
    planning.save_target_grid(
        wh, cat, SYSTEM, before, edited, reason="bench", effective=date(2024, 1, 1)
    )
    assert grid().at[row, "target"] == "2"
    assert board(wh, load_catalog(wh), Scope.all(), sales, month).result.score != score
    wh.close()
