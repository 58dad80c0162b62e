"""Opening a page the way a user does: the app's entry script first, then the page."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent


def ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def open_page(
    page: str,
    warehouse,
    monkeypatch,
    lang: str = "en",
    user: str = "admin",
    *,
    query: dict | None = None,
    timeout: float = 60,
) -> AppTest:
    """`page` (or "app.py", the Overview) signed in as `user`, reached with `query` in the URL."""
    monkeypatch.setenv("KPI_WAREHOUSE", str(warehouse))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)
    at.session_state["lang"] = lang
    # What signing in sets (kpi_core.ui.signin); the form itself is tested in test_signin.
    at.session_state["user_name"] = user
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    if page != "app.py":
        at.switch_page(page).run()
    ok(at)
    return at
