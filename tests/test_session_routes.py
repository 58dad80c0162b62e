"""The sign-in and sign-out routes on a real server (`streamlit run app.py` on a free loopback
port), driven with httpx at the HTTP level and with a WebSocket client at Streamlit's protocol
level (tests/stream.py) — what an attacker without a browser can send."""

from __future__ import annotations

import re
import shutil
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from kpi_core import sessions
from kpi_core.warehouse import Warehouse
from tests.stream import run_page
from tests.test_browser import start_app

SIGN_IN = "/auth/signin"
SIGN_OUT = "/auth/signout"


@pytest.fixture(scope="module")
def server(tmp_path_factory, demo_file):
    tmp = tmp_path_factory.mktemp("routes")
    path = tmp / "wh.duckdb"
    shutil.copy(demo_file, path)
    log = tmp / "streamlit.log"
    proc, url = start_app(path, log=log)
    yield url, path, log
    proc.terminate()
    proc.wait(timeout=20)


def post(url: str, route: str, data: dict, *, headers: dict | None = None, cookie=None):
    sent = {"Origin": url} if headers is None else headers
    cookies = {sessions.COOKIE: cookie} if cookie else None
    with httpx.Client(base_url=url, timeout=60, cookies=cookies) as client:
        return client.post(route, data=data, headers=sent, follow_redirects=False)


def session_cookie(response: httpx.Response) -> str | None:
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(f"{sessions.COOKIE}="):
            return header
    return None


def cookie_value(response: httpx.Response) -> str:
    header = session_cookie(response)
    assert header, f"no session cookie: {response.status_code} {response.headers}"
    return header.split(";")[0].split("=", 1)[1]


def sign_in(url: str, user: str, password: str, next_: str = "/?lang=en") -> str:
    r = post(url, SIGN_IN, {"user": user, "password": password, "next": next_})
    assert r.status_code == 303
    return cookie_value(r)


def audit(path, sql: str, params=None) -> list[tuple]:
    wh = Warehouse(path, linger=0)
    try:
        return wh.rows(sql, params)
    finally:
        wh.close()


def test_sign_in_sets_a_signed_httponly_lax_cookie_and_goes_to_next(server):
    url, _, _ = server
    r = post(url, SIGN_IN, {"user": "head_sales", "password": "head",
                            "next": "/Board?unit=SALES&lang=en"})  # fmt: skip
    assert r.status_code == 303
    assert r.headers["location"] == "/Board?unit=SALES&lang=en"
    header = session_cookie(r)
    attributes = {a.strip().split("=")[0].lower() for a in header.split(";")[1:]}
    assert {"httponly", "path", "max-age", "samesite"} <= attributes
    assert "samesite=lax" in header.lower() and "path=/" in header.lower()
    assert "secure" not in attributes  # plain http here; see the next test
    value = cookie_value(r)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}", value)
    page = run_page(url, page="Board", query="unit=SALES&lang=en", cookie=value)
    assert page.signed_in and "head_sales" in page.text and not page.sign_in_form


def test_the_cookie_is_secure_behind_https(server):
    url, _, _ = server
    # A TLS-terminating proxy on this host says the browser spoke https (uvicorn trusts
    # X-Forwarded-Proto from 127.0.0.1).
    host = urlsplit(url).netloc
    r = post(url, SIGN_IN, {"user": "analyst", "password": "analyst", "next": "/"},
             headers={"Origin": f"https://{host}", "X-Forwarded-Proto": "https"})  # fmt: skip
    assert r.status_code == 303
    assert "secure" in {a.strip().lower() for a in session_cookie(r).split(";")}


def test_a_wrong_password_or_an_unknown_name_sets_no_cookie(server):
    url, _, _ = server
    wrong = post(url, SIGN_IN, {"user": "head_sales", "password": "nope", "next": "/Board"})
    unknown = post(url, SIGN_IN, {"user": "nobody", "password": "head", "next": "/Board"})
    for r in (wrong, unknown):
        assert r.status_code == 303 and session_cookie(r) is None
    assert wrong.headers["location"] == unknown.headers["location"] == "/Board?si_error=wrong"
    # The form says so (and the flag leaves the URL).
    page = run_page(url, page="Board", query="si_error=wrong&lang=en")
    assert "The user name or password is not right" in page.text and page.sign_in_form


def test_lock_out_still_holds_through_the_route(server):
    url, _, _ = server
    for _ in range(5):
        post(url, SIGN_IN, {"user": "viewer_prod", "password": "wrong", "next": "/"})
    r = post(url, SIGN_IN, {"user": "viewer_prod", "password": "viewer", "next": "/"})
    assert r.status_code == 303 and session_cookie(r) is None
    # locked, and told exactly what a wrong password or an unknown name is told
    assert "si_error=wrong" in r.headers["location"] and "until" not in r.headers["location"]
    unknown = post(url, SIGN_IN, {"user": "nobody", "password": "x", "next": "/"})
    assert unknown.headers["location"] == r.headers["location"]


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/x",
        "///evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "\\/evil.example",
        "javascript:alert(1)",
        "http:evil.example",
        " //evil.example",
        "/\t/evil.example",
        "/%0d%0aSet-Cookie:%20x=y",
        "/\r\nSet-Cookie: x=y",
        "",
    ],
)
def test_next_never_leads_to_another_site(server, target):
    url, _, _ = server
    # Signed in, and refused (a name that does not exist, so no one gets locked out here).
    for user, password in (("admin", "admin"), ("nobody", "wrong")):
        r = post(url, SIGN_IN, {"user": user, "password": password, "next": target})
        assert r.status_code == 303
        location = r.headers["location"]
        assert urlsplit(urljoin(url + "/Board", location)).netloc == urlsplit(url).netloc
        assert "\r" not in location and "\n" not in location
        assert all(not h.lower().startswith("x=") for h in r.headers.get_list("set-cookie"))


def test_a_post_from_another_site_is_refused(server):
    url, path, _ = server
    form = {"user": "analyst", "password": "analyst", "next": "/"}
    host = urlsplit(url).netloc
    for headers in (
        {"Origin": "http://evil.example"},
        {"Origin": f"http://{host}.evil.example"},
        {"Origin": "null"},
        {"Referer": "http://evil.example/page"},
        {},  # neither Origin nor Referer
    ):
        r = post(url, SIGN_IN, form, headers=headers)
        assert r.status_code == 403 and session_cookie(r) is None, headers
        assert "another site" in r.text
    # A browser that sends only a Referer of this server is fine.
    r = post(url, SIGN_IN, form, headers={"Referer": f"{url}/Board?lang=en"})
    assert r.status_code == 303 and session_cookie(r)
    # Sign-out is guarded the same way: another site cannot end a session.
    value = cookie_value(r)
    assert post(url, SIGN_OUT, {}, headers={"Origin": "http://evil.example"},
                cookie=value).status_code == 403  # fmt: skip
    assert run_page(url, cookie=value).signed_in


def test_sign_out_ends_the_session_and_clears_the_cookie(server):
    url, path, _ = server
    value = sign_in(url, "head_sales", "head")
    assert run_page(url, cookie=value).signed_in
    r = post(url, SIGN_OUT, {"next": "/Board?lang=en"}, cookie=value)
    assert r.status_code == 303
    assert r.headers["location"] == "/Board?lang=en&si_notice=signed_out"
    cleared = session_cookie(r)
    assert cleared and 'kpi_session=""' in cleared and "max-age=0" in cleared.lower()
    # The old cookie, replayed: the form.
    page = run_page(url, cookie=value)
    assert page.sign_in_form and not page.signed_in
    assert "Your session was ended" in page.text
    events = audit(
        path,
        "SELECT field FROM audit WHERE entity = 'session' AND key = 'head_sales' "
        "ORDER BY changed_at DESC LIMIT 1",
    )
    assert events == [("signed_out",)]


def test_signing_in_again_ends_the_browsers_previous_session(server):
    url, _, _ = server
    first = sign_in(url, "analyst", "analyst")
    r = post(url, SIGN_IN, {"user": "admin", "password": "admin", "next": "/"}, cookie=first)
    assert cookie_value(r) != first
    assert run_page(url, cookie=first).sign_in_form


def test_sign_out_everywhere_ends_every_browser_of_the_user(server):
    url, _, _ = server
    laptop = sign_in(url, "analyst", "analyst")
    phone = sign_in(url, "analyst", "analyst")
    other = sign_in(url, "admin", "admin")
    assert post(url, SIGN_OUT, {"scope": "all"}, cookie=laptop).status_code == 303
    assert run_page(url, cookie=phone).sign_in_form
    assert run_page(url, cookie=other).signed_in


def test_a_tampered_or_made_up_cookie_gets_the_form(server):
    url, _, _ = server
    value = sign_in(url, "admin", "admin")
    sid, _, sig = value.partition(".")
    for bad in (
        f"{sid}.{sig[::-1]}",
        f"{'A' * 43}.{sig}",
        sid,
        "admin",
    ):
        page = run_page(url, cookie=bad)
        assert page.sign_in_form and not page.signed_in, bad


def test_a_replayed_streamlit_session_id_gets_the_form(server):
    url, _, log = server
    value = sign_in(url, "admin", "admin")
    victim = run_page(url, cookie=value)
    assert victim.signed_in and victim.session_id
    # Another client presents the victim's Streamlit session id, without the cookie.
    attacker = run_page(url, session_id=victim.session_id)
    assert attacker.session_id == victim.session_id  # Streamlit did reconnect it
    assert attacker.sign_in_form and not attacker.signed_in
    assert "Department scores, ranked" not in attacker.text
    # With a cookie of its own user, it is that user, not the victim.
    own = sign_in(url, "head_sales", "head")
    as_head = run_page(url, session_id=victim.session_id, cookie=own)
    assert "**head_sales**" in as_head.text and "**admin**" not in as_head.text
    assert victim.session_id not in log.read_text(encoding="utf-8", errors="replace")


def test_the_flags_in_the_url_are_read_once(server):
    url, _, _ = server
    page = run_page(url, query="si_error=wrong&lang=en")
    assert "The user name or password is not right" in page.text
    page = run_page(url, query="si_notice=signed_out&lang=zh")
    assert "已退出。" in page.text


def test_session_ids_are_masked_in_every_log_record(caplog):
    """Streamlit logs a reconnecting session's id at WARNING and an access log would hold the
    upload URLs (`/_stcore/upload_file/<session id>/<file id>`); the app's record factory
    masks both, whichever logger writes them."""
    import logging

    from kpi_core.ui.server import hide_session_ids

    sid = "0f8fad5b-d9cb-469f-a165-70867728950e"
    previous = logging.getLogRecordFactory()
    hide_session_ids()
    try:
        with caplog.at_level(logging.INFO):
            logging.getLogger("streamlit.runtime.websocket_session_manager").warning(
                "Session with id %s is already connected! Reconnecting to existing session.", sid
            )
            logging.getLogger("uvicorn.access").info(
                '%s - "%s %s HTTP/%s" %d', "127.0.0.1:1", "PUT",
                f"/_stcore/upload_file/{sid}/6ba7b810-9dad-11d1-80b4-00c04fd430c8", "1.1", 204,
            )  # fmt: skip
            logging.getLogger("any").info(f"formatted already: {sid}")
    finally:
        logging.setLogRecordFactory(previous)
    text = caplog.text
    assert sid not in text and "6ba7b810" not in text
    assert "Session with id <id hidden> is already connected" in text
    assert "/_stcore/upload_file/<id hidden>/<id hidden>" in text
