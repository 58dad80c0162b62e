"""The session cookie in a real browser (headless Chromium against `streamlit run app.py`): a
sign-in survives a reload, a new tab and a deep link; a second browser that presents another's
Streamlit session id (the WebSocket subprotocol list) gets the sign-in form; signing out in one
tab signs the other out at its next run."""

from __future__ import annotations

import shutil

import pytest
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from tests.browsing import settle
from tests.test_browser import shot, start_app, visit

pytestmark = pytest.mark.browser

# Installed before any page script: the app's WebSocket is opened with `window.__replay` as the
# session id to reconnect to — what an attacker who read the id from a log, an upload URL or a
# shared screen would send.
REPLAY = """
(() => {
  const Real = window.WebSocket;
  function Replaying(url, protocols) {
    if (String(url).includes('/_stcore/stream')) {
      const list = Array.isArray(protocols) ? protocols : [protocols];
      protocols = [list[0] || 'streamlit', list[1] || 'none', window.__replay];
    }
    return new Real(url, protocols);
  }
  Replaying.prototype = Real.prototype;
  Object.assign(Replaying, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
  window.WebSocket = Replaying;
})();
"""


@pytest.fixture(scope="module")
def demo_app(tmp_path_factory, demo_file):
    tmp = tmp_path_factory.mktemp("session")
    shutil.copy(demo_file, tmp / "wh.duckdb")
    log = tmp / "streamlit.log"
    proc, url = start_app(tmp / "wh.duckdb", log=log)
    yield url, log
    proc.terminate()
    proc.wait(timeout=20)


def signed_in_as(page, user: str) -> None:
    page.locator("[data-testid='stSidebar']").get_by_text(f"Signed in as: {user}").wait_for(
        timeout=60_000
    )
    assert page.locator("input[autocomplete='username']").count() == 0


def sign_in_form(page) -> None:
    page.locator("input[autocomplete='username']").wait_for(timeout=60_000)
    settle(page)
    assert "Signed in as" not in page.locator("[data-testid='stApp']").inner_text()


def session_ids(page) -> list[str]:
    """The Streamlit session ids the server hands this page (from its WebSocket frames)."""
    found: list[str] = []

    def frame(payload) -> None:
        if isinstance(payload, str):
            return
        msg = ForwardMsg()
        try:
            msg.ParseFromString(payload)
        except Exception:
            return
        if msg.WhichOneof("type") == "new_session":
            found.append(msg.new_session.initialize.session_id)

    page.on("websocket", lambda ws: ws.on("framereceived", frame))
    return found


def test_a_session_survives_reload_new_tab_and_deep_link(browser, demo_app):
    url, _ = demo_app
    ctx = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = ctx.new_page()
    visit(page, f"{url}/?lang=en", "head_sales", "head")
    signed_in_as(page, "head_sales")
    page.reload()
    settle(page)
    signed_in_as(page, "head_sales")
    tab = ctx.new_page()
    tab.goto(f"{url}/Board?unit=SALES&lang=en")
    settle(tab)
    signed_in_as(tab, "head_sales")
    tab.get_by_text("Sales Department · ").first.wait_for(timeout=60_000)
    shot(tab, "session-new-tab-board")
    ctx.close()

    # A link from a push opened by a browser that is not signed in: the form, then that page.
    ctx = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = ctx.new_page()
    page.goto(f"{url}/Board?unit=SALES&lang=en")
    sign_in_form(page)
    shot(page, "session-sign-in-form")
    page.locator("input[autocomplete='username']").fill("head_sales")
    page.locator("input[type='password']").fill("head")
    page.locator("input[type='password']").press("Enter")
    page.wait_for_url("**/Board?*", timeout=60_000)
    settle(page)
    signed_in_as(page, "head_sales")
    page.get_by_text("Sales Department · ").first.wait_for(timeout=60_000)
    assert "unit=SALES" in page.url
    ctx.close()


def test_a_replayed_streamlit_session_id_gets_the_sign_in_form(browser, demo_app):
    url, log = demo_app
    victim_ctx = browser.new_context(viewport={"width": 1440, "height": 1000})
    victim = victim_ctx.new_page()
    ids = session_ids(victim)
    visit(victim, f"{url}/?lang=en", "admin", "admin")
    signed_in_as(victim, "admin")
    assert ids, "the page got no session id"
    stolen = ids[-1]

    attacker_ctx = browser.new_context(viewport={"width": 1440, "height": 1000})
    attacker_ctx.add_init_script(f"window.__replay = {stolen!r};" + REPLAY)
    attacker = attacker_ctx.new_page()
    got = session_ids(attacker)
    attacker.goto(f"{url}/?lang=en")
    settle(attacker)
    sign_in_form(attacker)
    shot(attacker, "session-replay-refused")
    # The server did hand the attacker the victim's Streamlit session (its state and all):
    # only the missing cookie keeps it out.
    assert stolen in got
    text = attacker.locator("[data-testid='stApp']").inner_text()
    assert "Overall score" not in text and "Department scores, ranked" not in text
    attacker_ctx.close()
    victim_ctx.close()
    # Nor does the id appear in the server's log, where Streamlit writes at WARNING that it
    # was presented again.
    logged = log.read_text(encoding="utf-8", errors="replace")
    assert "Session with id <id hidden> is already connected" in logged
    assert stolen not in logged


def test_signing_out_in_one_tab_signs_the_other_out(browser, demo_app):
    url, _ = demo_app
    ctx = browser.new_context(viewport={"width": 1440, "height": 1000})
    first = ctx.new_page()
    visit(first, f"{url}/?lang=en", "analyst", "analyst")
    signed_in_as(first, "analyst")
    second = ctx.new_page()
    second.goto(f"{url}/Board?lang=en")
    settle(second)
    signed_in_as(second, "analyst")

    first.get_by_role("button", name="Sign out", exact=True).click()
    sign_in_form(first)
    first.get_by_text("You are signed out.").wait_for(timeout=60_000)

    # The other tab's next run (here: switching the language) finds the session ended.
    second.locator("[data-testid='stSidebar']").get_by_text("中文").click()
    second.locator("input[autocomplete='username']").wait_for(timeout=60_000)
    settle(second)
    assert "当前用户" not in second.locator("[data-testid='stApp']").inner_text()
    shot(second, "session-signed-out-elsewhere")
    ctx.close()


def test_the_big_screen_preview_stops_when_the_session_ends(browser, demo_app):
    """The wall previewed from the sidebar redraws itself every few seconds without a full run
    of the page: each tick checks the session too."""
    url, _ = demo_app
    ctx = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = ctx.new_page()
    visit(page, f"{url}/?lang=en", "admin", "admin")
    screen = ctx.new_page()
    screen.goto(f"{url}/Big_Screen?lang=en&rotate=5")
    screen.locator(".bs-slide").first.wait_for(timeout=60_000)
    assert "This screen is not set up" not in screen.locator("[data-testid='stApp']").inner_text()
    page.get_by_role("button", name="Sign out", exact=True).click()
    page.get_by_text("You are signed out.").wait_for(timeout=60_000)
    screen.get_by_text("This screen is not set up").wait_for(timeout=60_000)
    ctx.close()
