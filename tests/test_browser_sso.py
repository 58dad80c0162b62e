"""Single sign-on for real: headless Chromium, `streamlit run` with `[auth]` in its secrets, and an
OpenID Connect provider on loopback (tests/oidc_provider.py). The browser clicks the button,
goes through the provider and back, and the app maps the identity to a user (kpi_core/sso.py)."""

from __future__ import annotations

import shutil
import time
from datetime import datetime
from pathlib import Path

import pytest

from kpi_core import access, sessions
from kpi_core.warehouse import Warehouse
from tests.browsing import settle
from tests.oidc_provider import OidcProvider
from tests.test_browser import free_port, shot, start_app

pytestmark = pytest.mark.browser

SALES_HEAD = {"email": "Wang.Lei@example.com", "name": "王磊 Wang Lei", "groups": ["staff"]}
NEW_PLANT = {"email": "liu.yang@example.com", "name": "刘洋 Liu Yang", "groups": ["plant-viewers"]}
STRANGER = {"email": "stranger@example.com", "name": "Stranger", "groups": ["visitors"]}


def start_sso_app(warehouse: Path, tmp: Path, idp: OidcProvider):
    """The app with Streamlit's own secrets holding `[auth]` (through `--secrets.files`) and the
    KPI secrets (`KPI_SECRETS`) holding `[sso.groups]`. The redirect_uri names localhost, so
    the app is used as http://localhost:PORT (the identity cookie belongs to that host)."""
    port = free_port()
    st_secrets = tmp / "streamlit-secrets.toml"
    st_secrets.write_text(
        "[auth]\n"
        f'redirect_uri = "http://localhost:{port}/oauth2callback"\n'
        'cookie_secret = "a-long-random-cookie-secret-for-tests-only"\n'
        f'client_id = "{idp.client_id}"\n'
        f'client_secret = "{idp.client_secret}"\n'
        f'server_metadata_url = "{idp.discovery_url}"\n',
        encoding="utf-8",
    )
    kpi_secrets = tmp / "kpi-secrets.toml"
    kpi_secrets.write_text(
        '[sso]\ngroups_claim = "groups"\n[sso.groups]\n'
        '"plant-viewers" = { role = "viewer", scope = ["PROD"] }\n',
        encoding="utf-8",
    )
    proc, _ = start_app(
        warehouse, port=port, args=("--secrets.files", str(st_secrets)),
        env={"KPI_SECRETS": str(kpi_secrets)}, log=tmp / "streamlit.log",
    )  # fmt: skip
    return proc, port


@pytest.fixture(scope="module")
def sso_app(tmp_path_factory, demo_file):
    tmp = tmp_path_factory.mktemp("sso")
    path = tmp / "wh.duckdb"
    shutil.copy(demo_file, path)
    wh = Warehouse(path, linger=0)
    with wh.transaction() as cur:
        cur.execute("UPDATE app_user SET email = 'wang.lei@example.com' WHERE name = 'head_sales'")
    wh.close()
    idp = OidcProvider(client_id="kpi-monitor", client_secret="s3cret-for-tests")
    proc, port = start_sso_app(path, tmp, idp)
    try:
        yield idp, port, path, tmp
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        idp.stop()


def sign_in_through_provider(page, url: str) -> None:
    page.goto(url)
    page.get_by_text("Demo users").wait_for(timeout=60_000)  # the sign-in form
    page.get_by_role("button", name="Sign in with single sign-on").click()
    back_signed_in(page)


def back_signed_in(page) -> None:
    # Out to the provider and back to the app's root on localhost, signed in there.
    page.wait_for_url("http://localhost:*/**", timeout=30_000)
    page.locator("input[autocomplete='username']").wait_for(state="detached", timeout=60_000)
    settle(page)


def audit(path: Path, sql: str, params=None) -> list[tuple]:
    wh = Warehouse(path, linger=0)
    try:
        return wh.rows(sql, params)
    finally:
        wh.close()


def test_single_sign_on_maps_email_group_or_refuses(browser, sso_app):
    idp, port, path, tmp = sso_app
    base = f"http://localhost:{port}"
    started = time.monotonic()

    # (a) A demo user matched by e-mail (another case than on the Admin page).
    idp.identity = SALES_HEAD
    ctx = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = ctx.new_page()
    page.goto(f"{base}/?lang=en")
    page.get_by_text("Demo users").wait_for(timeout=60_000)
    shot(page, "sso-sign-in-form-en")
    sign_in_through_provider(page, f"{base}/?lang=en")
    sidebar = page.locator("[data-testid='stSidebar']")
    sidebar.get_by_text("Signed in as: head_sales").wait_for(timeout=30_000)
    assert page.locator("[data-testid='stException']").count() == 0
    asked = next(r["query"] for r in idp.requests if r["path"] == "/authorize")
    assert asked["redirect_uri"] == f"{base}/oauth2callback"
    assert asked["code_challenge_method"] == "S256" and asked["nonce"] and asked["state"]
    assert any(r["path"] == "/token" and r["form"].get("code_verifier") for r in idp.requests)
    shot(page, "sso-signed-in-head-sales")
    # The Board shows the sales department only.
    page.goto(f"{base}/Board?lang=en")
    settle(page)
    sidebar.get_by_text("Signed in as: head_sales").wait_for(timeout=30_000)
    page.get_by_text("Sales Department · ").first.wait_for(timeout=30_000)
    assert "Production" not in page.locator("[data-testid='stApp']").inner_text()
    shot(page, "sso-board-head-sales")
    page.goto(f"{base}/Board?unit=PROD&lang=en")
    page.get_by_text("There is no unit 'PROD' in your scope").wait_for(timeout=60_000)
    # Signing out ends the session, the identity cookie and the provider's session.
    logouts = idp.logouts
    page.get_by_role("button", name="Sign out", exact=True).click()
    # The form may be drawn before the browser has followed the redirect to the provider.
    deadline = time.monotonic() + 30
    while idp.logouts == logouts and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    assert idp.logouts == logouts + 1
    page.locator("input[autocomplete='username']").wait_for(timeout=60_000)
    settle(page)
    assert not [c for c in ctx.cookies() if c["name"].startswith("_streamlit_user")]
    page.goto(f"{base}/?lang=en")  # a reload: still signed out
    page.get_by_text("Demo users").wait_for(timeout=60_000)
    assert sidebar.get_by_text("Signed in as").count() == 0
    shot(page, "sso-signed-out")
    ctx.close()

    # (b) An identity mapped by a group: a new user, a viewer of Production.
    idp.identity = NEW_PLANT
    ctx = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = ctx.new_page()
    sign_in_through_provider(page, f"{base}/Board?lang=en")
    sidebar = page.locator("[data-testid='stSidebar']")
    sidebar.get_by_text("Signed in as: liu.yang@example.com").wait_for(timeout=30_000)
    page.goto(f"{base}/Board?lang=en")  # the provider brings the browser back to the root
    page.get_by_text("Production Department · ").first.wait_for(timeout=30_000)
    assert page.locator("[data-testid='stException']").count() == 0
    shot(page, "sso-signed-in-group-user")
    # Single sign-on ends in the same session cookie as the password form; a reload keeps it.
    kept = {c["name"]: c for c in ctx.cookies()}
    assert kept["kpi_session"]["httpOnly"] and kept["kpi_session"]["sameSite"] == "Lax"
    page.goto(f"{base}/?lang=en")
    settle(page)
    sidebar.get_by_text("Signed in as: liu.yang@example.com").wait_for(timeout=30_000)
    # An admin ends the user's sessions: Streamlit's identity cookie, still in the browser,
    # does not bring the session back; signing in again goes through the provider.
    wh = Warehouse(path, linger=0)
    try:
        sessions.end_sessions(wh, access.SYSTEM, "liu.yang@example.com", now=datetime.now())
    finally:
        wh.close()
    page.goto(f"{base}/?lang=en")
    page.get_by_text("Your session was ended").wait_for(timeout=60_000)
    assert [c for c in ctx.cookies() if c["name"] == "_streamlit_user"]
    assert sidebar.get_by_text("Signed in as").count() == 0
    authorized = sum(r["path"] == "/authorize" for r in idp.requests)
    page.get_by_role("button", name="Sign in with single sign-on").click()
    back_signed_in(page)
    sidebar.get_by_text("Signed in as: liu.yang@example.com").wait_for(timeout=30_000)
    assert sum(r["path"] == "/authorize" for r in idp.requests) == authorized + 1
    ctx.close()

    # (c) An identity the app does not know: refused, no data, and a way back to the form.
    idp.identity = STRANGER
    ctx = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = ctx.new_page()
    sign_in_through_provider(page, f"{base}/?lang=en")
    page.get_by_text(
        "Single sign-on did not complete: stranger@example.com has no KPI Monitor user"
    ).wait_for(timeout=30_000)
    text = page.locator("[data-testid='stApp']").inner_text()
    assert "Overall score" not in text and "Signed in as" not in text
    shot(page, "sso-refused-stranger")
    page.get_by_role("button", name="Sign out").click()
    page.get_by_text("Demo users").wait_for(timeout=60_000)
    ctx.close()

    # (d) Opened as 127.0.0.1: the button leads to localhost, where the sign-in completes.
    idp.identity = SALES_HEAD
    ctx = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = ctx.new_page()
    page.goto(f"http://127.0.0.1:{port}/?lang=en")
    page.get_by_text("Demo users").wait_for(timeout=60_000)
    with ctx.expect_page() as opened:  # a link button opens a new tab
        page.get_by_role("link", name="Sign in with single sign-on").click()
    page = opened.value
    back_signed_in(page)
    page.locator("[data-testid='stSidebar']").get_by_text("Signed in as: head_sales").wait_for(
        timeout=30_000
    )
    ctx.close()
    print(f"single sign-on in the browser: {time.monotonic() - started:.1f} s")

    # The audit log: the sign-ins through sso, the refusal, the user created from the group.
    logged = audit(
        path,
        "SELECT changed_by, field, new FROM audit WHERE entity = 'session' "
        "AND new LIKE 'sso%' ORDER BY changed_at",
    )
    assert ("head_sales", "signed_in", "sso") in logged
    assert ("head_sales", "signed_out", "sso") in logged
    assert ("liu.yang@example.com", "signed_in", "sso") in logged
    # One sign-in per trip through the provider ((a) and (d)): reloads and other pages keep
    # the session cookie instead of signing in again.
    assert len([r for r in logged if r[:2] == ("head_sales", "signed_in")]) == 2
    refused = [r for r in logged if r[0] == "stranger@example.com"]
    assert len(refused) == 1 and refused[0][1] == "failed"
    assert "no KPI Monitor user" in refused[0][2]
    created = audit(
        path,
        "SELECT changed_by, field, new, reason FROM audit WHERE entity = 'user' AND key = ?",
        ["liu.yang@example.com"],
    )
    assert ("sso", "created", "viewer", "group plant-viewers") in created
    assert audit(path, "SELECT role, scope FROM app_user WHERE name = 'liu.yang@example.com'") == [
        ("viewer", ["PROD"])
    ]
    assert not audit(path, "SELECT 1 FROM app_user WHERE lower(email) LIKE 'stranger%'")
