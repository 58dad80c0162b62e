"""The one error boundary (kpi_core/ui/boundary.py): a fault inside any page, or inside one of the
sections that read a user's files, databases or settings, gives a message in the user's language
and never a traceback; the fault is logged with its traceback, the secret vaults' values cleaned
out of the log and the page.

The faults are injected: a bug cannot be summoned from real input on purpose (once found, it is
fixed). Each replaces one function the page calls inside its boundary with one that raises."""

import logging

import pytest
from streamlit.testing.v1 import AppTest

from kpi_core import i18n, workbook
from kpi_core.access import Scope
from kpi_core.system_import import import_system
from kpi_core.warehouse import Warehouse
from tests import apptest
from tests.conftest import sales_system

SECRET = "ERP-SECRET-4711"
SECRETS = f'[source_secrets]\nerp = "{SECRET}"\n'

# A function each page calls inside its boundary, as (module, name): the page looks it up there
# at every run.
PAGE_FAULTS = {
    "app.py": ("kpi_core.ui.overview", "data_range"),
    "pages/1_Board.py": ("kpi_core.actuals", "data_range"),
    "pages/2_Upload.py": ("kpi_core.ui.upload", "load_section"),
    "pages/3_Sources.py": ("kpi_core.ui.sources", "source_picker"),
    "pages/4_Library.py": ("kpi_core.ui.library", "kpi_picker"),
    "pages/5_Tree.py": ("kpi_core.ui.tree", "tree_page"),
    "pages/6_Targets.py": ("kpi_core.ui.targets", "year_options"),
    "pages/7_Trends.py": ("kpi_core.ui.trends", "trends_page"),
    "pages/8_Alerts.py": ("kpi_core.ui.alerts", "filters"),
    "pages/9_Big_Screen.py": ("kpi_core.ui.wall", "snapshot"),
    "pages/10_Admin.py": ("kpi_core.ui.admin", "main"),
    "pages/11_Detail.py": ("kpi_core.ui.detail", "detail_page"),
}

# A function a section with a boundary of its own calls, and the message that section gives.
SECTION_FAULTS = {
    "pages/2_Upload.py": ("kpi_core.month_locks", "closed_months", "up_unexpected"),
    "pages/3_Sources.py": ("kpi_core.ingest.sources", "listing", "src_unexpected"),
    "pages/4_Library.py": ("kpi_core.ui.library", "library_frame", "lib_unexpected"),
    "pages/8_Alerts.py": ("kpi_core.push", "channels", "push_unexpected"),
}


@pytest.fixture(scope="module")
def app_warehouse(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("boundary")
    path = tmp / "sales.xlsx"
    workbook.write(sales_system(), path)
    wh = Warehouse(tmp / "wh.duckdb", linger=0)
    import_system(wh, path, by="test", scope=Scope.all())
    wh.close()
    return tmp / "wh.duckdb"


def _open(page: str, request, monkeypatch, lang: str):
    if page != "pages/9_Big_Screen.py":
        return apptest.open_page(page, request.getfixturevalue("app_warehouse"), monkeypatch, lang)
    # The wall is opened on its own, as a signed-in user of the demo previews it
    # (tests/test_screen.py); the sign-in writes its session, so to a copy.
    warehouse = request.getfixturevalue("own_file")
    monkeypatch.setenv("KPI_WAREHOUSE", str(warehouse))
    apptest.sign_in(monkeypatch, warehouse, "admin")
    at = AppTest.from_file(str(apptest.ROOT / page), default_timeout=60)
    at.query_params["lang"] = lang
    at.run()
    apptest.ok(at)
    assert "bs-slide-body" in "".join(h.proto.body for h in at.get("html"))
    return at


def _broken(*args, **kwargs):
    # The text of a fault may repeat a secret (a URL a source was opened with, a header).
    raise RuntimeError(f"injected fault near postgresql://kpi:{SECRET}@db/erp")


def _with_secrets(monkeypatch, tmp_path) -> None:
    # Before the page opens: the sign-in's cookie is checked against this file's settings too.
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(SECRETS, encoding="utf-8")
    monkeypatch.setenv("KPI_SECRETS", str(secrets))


def _said(at) -> str:
    return "\n".join(e.value for e in at.error)


def _expected(key: str, lang: str) -> str:
    return i18n.t(key, lang, error="RuntimeError: injected fault near postgresql://kpi:***@db/erp")


def _logged_cleanly(caplog) -> None:
    logged = caplog.text
    assert "Traceback (most recent call last)" in logged and "_broken" in logged
    assert "injected fault" in logged and SECRET not in logged


@pytest.mark.parametrize("page", sorted(PAGE_FAULTS))
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_fault_in_any_page_is_a_message_not_a_traceback(
    page, lang, request, monkeypatch, tmp_path, caplog
):
    _with_secrets(monkeypatch, tmp_path)
    at = _open(page, request, monkeypatch, lang)  # runs clean before the fault
    monkeypatch.setattr(".".join(PAGE_FAULTS[page]), _broken)
    with caplog.at_level(logging.ERROR, logger="kpi_core.ui.boundary"):
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert _expected("page_unexpected", lang) in _said(at)
    assert SECRET not in _said(at)
    _logged_cleanly(caplog)


@pytest.mark.parametrize("page", sorted(SECTION_FAULTS))
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_fault_in_a_section_is_that_sections_message(
    page, lang, request, monkeypatch, tmp_path, caplog
):
    _with_secrets(monkeypatch, tmp_path)
    at = _open(page, request, monkeypatch, lang)
    module, name, key = SECTION_FAULTS[page]
    monkeypatch.setattr(f"{module}.{name}", _broken)
    with caplog.at_level(logging.ERROR, logger="kpi_core.ui.boundary"):
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert _expected(key, lang) in _said(at)
    assert SECRET not in _said(at)
    _logged_cleanly(caplog)
    # The rest of the page is still drawn: the fault stayed in its section.
    assert at.tabs
