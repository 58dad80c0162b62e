"""Every page on a PostgreSQL warehouse (KPI_WAREHOUSE=postgresql+psycopg://…), in both
languages, as tests/test_pages.py runs them on the file: the app opens the warehouse by its URL."""

import pytest

from kpi_core import service
from kpi_core.warehouse import open_warehouse
from tests.apptest import open_page
from tests.conftest import TODAY, fresh_pg_database
from tests.test_pages import PAGES


@pytest.fixture(scope="module")
def pg_app(postgres):
    """The demo company in its own PostgreSQL database, as `init --demo` loads it."""
    url = fresh_pg_database(postgres)
    wh = open_warehouse(url)
    service.ensure_demo(wh, today=TODAY)
    wh.close()
    return url


@pytest.mark.parametrize("page", ["app.py", *PAGES])
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_page_runs_on_postgresql(page, lang, pg_app, postgres, monkeypatch):
    at = open_page(page, pg_app, monkeypatch, lang)
    assert not at.error, [e.value for e in at.error]
    shown = "\n".join(m.value for m in at.markdown)
    assert postgres.password not in shown


def test_the_board_shows_the_demo_company(pg_app, monkeypatch):
    at = open_page("pages/1_Board.py", pg_app, monkeypatch, "en", "head_sales")
    assert at.title[0].value.startswith("Sales")
    assert at.metric, "the board shows its numbers"


def test_the_admin_page_points_to_pg_dump(pg_app, monkeypatch):
    at = open_page("pages/10_Admin.py", pg_app, monkeypatch, "en")
    shown = "\n".join([m.value for m in at.markdown] + [i.value for i in at.info])
    assert "pg_dump" in shown


def test_an_unreachable_warehouse_is_a_message_without_its_password(monkeypatch):
    from streamlit.testing.v1 import AppTest

    from tests.apptest import ROOT
    from tests.pgserver import free_port

    url = f"postgresql+psycopg://kpi:TopSecret99@127.0.0.1:{free_port()}/kpi"
    monkeypatch.setenv("KPI_WAREHOUSE", url)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["lang"] = "zh"
    at.run()
    assert not at.exception
    shown = "\n".join(e.value for e in at.error)
    assert "无法连接 PostgreSQL 仓库 postgresql+psycopg://kpi:***@127.0.0.1:" in shown
    assert "TopSecret99" not in shown + "\n".join(m.value for m in at.markdown)
