"""Pages through Streamlit's AppTest: every page runs clean, and pickers change what is shown."""

import pytest

from kpi_core import workbook
from kpi_core.access import Scope
from kpi_core.system_import import import_system
from kpi_core.warehouse import Warehouse
from tests.apptest import ROOT, open_page
from tests.conftest import sales_system

PAGES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "pages").glob("*.py"))


@pytest.fixture(scope="module")
def app_warehouse(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pages")
    path = tmp / "sales.xlsx"
    workbook.write(sales_system(), path)
    wh = Warehouse(tmp / "wh.duckdb", linger=0)
    import_system(wh, path, by="test", scope=Scope.all())
    wh.close()
    return tmp / "wh.duckdb"


def run(page, warehouse, monkeypatch, query=None, lang="en", user="admin"):
    return open_page(page, warehouse, monkeypatch, lang, user, query=query)


def texts(at):
    parts = [m.value for m in at.markdown] + [t.value for t in at.title]
    parts += [f"{m.label}={m.value}" for m in at.metric]
    return "\n".join(parts)


@pytest.mark.parametrize("page", ["app.py", *PAGES])
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_page_runs_without_exception(page, lang, app_warehouse, monkeypatch):
    at = run(page, app_warehouse, monkeypatch, lang=lang)
    assert not at.error, [e.value for e in at.error]


def test_overview_shows_company_score(app_warehouse, monkeypatch):
    at = run("app.py", app_warehouse, monkeypatch, query={"period": "2024"})
    shown = texts(at)
    assert "Example Co" in shown
    assert "Overall score" in shown


def test_board_changes_with_unit_and_period(app_warehouse, monkeypatch):
    at = run(
        "pages/1_Board.py", app_warehouse, monkeypatch, query={"unit": "SALES", "period": "2024"}
    )
    assert at.title[0].value == "Sales · 2024"
    year = texts(at)
    assert "Score=98.3" in year  # (40×92 + 25×112 + 20×84 + 15×111.11) / 100 = 98.27
    at.selectbox(key="unit_pick").select(
        next(o for o in at.selectbox(key="unit_pick").options if "Production" in o)
    )
    at.run()
    assert at.title[0].value.startswith("Production")
    at.segmented_control(key="grain_pick").set_value("M").run()
    at.selectbox(key="period_pick_M").set_value(at.selectbox(key="period_pick_M").options[0])
    at.run()
    assert at.title[0].value != "Production · 2024"
    assert not at.exception


def test_chinese_board_uses_wan_and_chinese_labels(app_warehouse, monkeypatch):
    at = run(
        "pages/1_Board.py",
        app_warehouse,
        monkeypatch,
        query={"unit": "SALES", "period": "2024"},
        lang="zh",
    )
    assert at.title[0].value == "销售部 · 2024年"
    assert any(m.value == "5,800万元" for m in at.metric), [m.value for m in at.metric]


def test_board_shows_comment_counts_and_the_comments_panel(app_warehouse, tmp_path, monkeypatch):
    import shutil
    from datetime import date

    from kpi_core import review
    from kpi_core.access import SYSTEM
    from kpi_core.catalog import load_catalog

    path = tmp_path / "wh.duckdb"
    shutil.copy(app_warehouse, path)
    wh = Warehouse(path, linger=0)
    cat = load_catalog(wh)
    rev, sales = cat.kpi("REV").id, cat.unit("SALES").id
    review.add_comment(wh, SYSTEM, rev, sales, date(2024, 6, 1), "Two big orders slipped")
    review.add_comment(
        wh, SYSTEM, rev, sales, date(2024, 7, 1), "Q3 plan", action="Chase", owner="wang",
        due=date(2024, 8, 1),
    )  # fmt: skip
    wh.close()
    at = run("pages/1_Board.py", path, monkeypatch, query={"unit": "SALES", "period": "2024"})
    card = next(m.value for m in at.markdown if m.value.startswith("**Revenue**"))
    assert ":material/forum: 2" in card and "1 open" in card
    panel = at.expander[0]
    assert panel.label == "Comments and actions (2, 1 open)"
    assert not at.text  # the panel's content runs only when it is opened
    at.session_state["board_rv_open"] = True
    at.run()
    assert not at.exception
    assert "Two big orders slipped" in [t.value for t in at.text]


def test_overview_of_a_department_viewer_ranks_what_lies_below(own_file, monkeypatch):
    """A viewer scoped to one department sees its units below ranked, or why there are none —
    never a heading over nothing."""
    at = run("app.py", own_file, monkeypatch, user="viewer_prod")
    assert not at.error, [e.value for e in at.error]
    headings = [h.value for h in at.subheader]
    assert "Scores of the units below, ranked" in headings
    assert "Department scores, ranked" not in headings
    said = [c.value for c in at.caption]
    has_chart = any(e.type == "arrow_vega_lite_chart" for e in at.get("arrow_vega_lite_chart"))
    assert has_chart or any("has a scorecard of its own" in c for c in said), said
