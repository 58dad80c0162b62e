"""Opening a page the way a user does: the app's entry script first, then the page."""

from datetime import datetime
from pathlib import Path

import streamlit.runtime.context
from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx
from streamlit.testing.v1 import AppTest

from kpi_core import auth, sessions
from kpi_core.warehouse import open_warehouse

ROOT = Path(__file__).resolve().parent.parent


def ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


class _Handshake:
    """What Streamlit's server keeps of a browser's WebSocket handshake (its ClientContext):
    here only the cookies."""

    def __init__(self, cookies: dict[str, str]):
        self.cookies = cookies
        self.headers: list[tuple[str, str]] = []
        self.remote_ip = "127.0.0.1"


class _Browsers:
    """The cookies of each AppTest's browser (by the AppTest's session state), and of any
    other AppTest run in the test."""

    def __init__(self) -> None:
        self.default: dict[str, str] = {}
        self.by_app: dict[int, dict[str, str]] = {}

    def __call__(self) -> _Handshake:
        ctx = get_script_run_ctx()
        state = getattr(getattr(ctx, "session_state", None), "_state", None)
        return _Handshake(self.by_app.get(id(state), self.default))


def browser_cookie(monkeypatch, value: str | None, at: AppTest | None = None) -> None:
    """Test-only: the runs of `at` (of every AppTest when None) see `value` as their browser's
    kpi_session cookie (None: a browser without it).

    AppTest has no browser: its runtime is a mock, and `AppTest.context` cannot seed cookies
    (Streamlit 1.67 reads st.context.cookies from the session's client, not from the context
    AppTest sends). So the function st.context asks for that client context is replaced for
    the test. Nothing in the app is bypassed: the page reads `st.context.cookies` and the gate
    checks the signature and the store as it does for a browser.
    """
    browsers = streamlit.runtime.context._get_client_context
    if not isinstance(browsers, _Browsers):
        browsers = _Browsers()
        monkeypatch.setattr(streamlit.runtime.context, "_get_client_context", browsers)
    cookies = {} if value is None else {sessions.COOKIE: value}
    if at is None:
        browsers.default = cookies
    else:
        browsers.by_app[id(at._session_state._state)] = cookies


def sign_in(monkeypatch, warehouse, user: str, at: AppTest | None = None) -> str:
    """A real session for `user` in the warehouse the page reads, as the sign-in route makes
    it, and its signed cookie in the browser of `at` (of every AppTest when None; see
    `browser_cookie`). Returns the cookie's value."""
    wh = open_warehouse(str(warehouse), linger=0)  # a file or a PostgreSQL URL
    try:
        now = datetime.now()  # the gate checks the session against the clock, as in the app
        session_id = sessions.create(wh, user, now=now, rules=auth.policy())
        value = sessions.sign(session_id, sessions.key(wh, now=now))
    finally:
        wh.close()
    browser_cookie(monkeypatch, value, at)
    return value


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
    sign_in(monkeypatch, warehouse, user, at)
    at.session_state["lang"] = lang
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    if page != "app.py":
        at.switch_page(page).run()
    ok(at)
    return at
