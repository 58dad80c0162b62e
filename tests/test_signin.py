"""Signing in: passwords, lock-out, idle time-out and the audit trail, in the core and on the
sign-in form every page shows first."""

from datetime import datetime, timedelta

import pytest
from streamlit.testing.v1 import AppTest

from kpi_core import auth, service, users
from kpi_core.auth import Policy
from kpi_core.warehouse import Warehouse
from tests.apptest import ROOT, ok

RULES = Policy(max_failures=3, lock_minutes=15, idle_minutes=30)


def session_log(wh, user: str) -> list[tuple[str, str]]:
    return wh.rows(
        "SELECT field, new FROM audit WHERE entity = 'session' AND key = ? ORDER BY changed_at",
        [user],
    )


def test_right_password_signs_in_and_is_audited(demo_wh):
    out = auth.sign_in(demo_wh, "head_sales", "head", rules=RULES)
    assert out.ok and out.user == "head_sales"
    assert session_log(demo_wh, "head_sales") == [("signed_in", "password")]
    last = demo_wh.one("SELECT last_sign_in FROM app_user WHERE name = 'head_sales'")[0]
    assert last is not None


def test_wrong_name_and_wrong_password_read_the_same(demo_wh):
    wrong_password = auth.sign_in(demo_wh, "head_sales", "nope", rules=RULES)
    unknown = auth.sign_in(demo_wh, "nobody", "head", rules=RULES)
    assert not wrong_password.ok and not unknown.ok
    assert wrong_password.reason == unknown.reason == "wrong"
    assert session_log(demo_wh, "head_sales") == [("failed", "password: wrong password")]
    assert session_log(demo_wh, "nobody") == [("failed", "password: unknown user")]


def test_lock_out_after_repeated_failures_then_it_runs_out(demo_wh):
    t0 = datetime(2026, 11, 2, 9, 0)
    first = auth.sign_in(demo_wh, "analyst", "x", rules=RULES, now=t0)
    assert first.failures_left == 2
    auth.sign_in(demo_wh, "analyst", "y", rules=RULES, now=t0)
    third = auth.sign_in(demo_wh, "analyst", "z", rules=RULES, now=t0)
    assert third.reason == "locked" and third.locked_until == t0 + timedelta(minutes=15)
    # Locked: even the right password is refused, and the lock is in the warehouse (any session).
    during = auth.sign_in(demo_wh, "analyst", "analyst", rules=RULES, now=t0 + timedelta(minutes=5))
    assert during.reason == "locked"
    events = [e for e, _ in session_log(demo_wh, "analyst")]
    assert events == ["failed", "failed", "failed", "locked", "failed"]
    # Run out: a fresh count, and the right password works again.
    after = t0 + timedelta(minutes=16)
    assert auth.sign_in(demo_wh, "analyst", "wrong", rules=RULES, now=after).failures_left == 2
    assert auth.sign_in(demo_wh, "analyst", "analyst", rules=RULES, now=after).ok
    assert demo_wh.one("SELECT failed_sign_ins FROM app_user WHERE name = 'analyst'")[0] == 0


def test_an_admin_unlocks_a_user(demo_wh):
    for _ in range(3):
        auth.sign_in(demo_wh, "viewer_prod", "x", rules=RULES)
    listed = {u.name: u for u in users.list_users(demo_wh, service.SYSTEM)}
    assert listed["viewer_prod"].locked_until is not None
    users.unlock(demo_wh, service.SYSTEM, "viewer_prod")
    assert auth.sign_in(demo_wh, "viewer_prod", "viewer", rules=RULES).ok
    assert demo_wh.one(
        "SELECT changed_by FROM audit WHERE entity = 'user' AND field = 'unlocked'"
    ) == ("system",)
    head = service.actor(demo_wh, "head_sales")
    with pytest.raises(Exception, match="Only admins"):
        users.unlock(demo_wh, head, "viewer_prod")


def test_settings_from_secrets(tmp_path, monkeypatch):
    path = tmp_path / "secrets.toml"
    monkeypatch.setenv("KPI_SECRETS", str(path))
    assert auth.policy() == Policy(5, 15, 60)  # no file: the defaults
    path.write_text("[sign_in]\nmax_failures = 4\nidle_minutes = 10\n")
    assert auth.policy() == Policy(4, 15, 10)
    path.write_text('[sign_in]\nlock_minutes = "ten"\n')
    with pytest.raises(auth.SignInError, match="lock_minutes"):
        auth.policy()


def test_demo_passwords_are_offered_only_while_they_work(demo_wh):
    offered = auth.demo_sign_ins(demo_wh, service.DEMO_USERS)
    assert [(n, p) for n, p, _ in offered] == [
        ("admin", "admin"), ("head_sales", "head"), ("analyst", "analyst"),
        ("viewer_prod", "viewer"),
    ]  # fmt: skip
    users.save_user(
        demo_wh, service.SYSTEM, "admin", display_name="Admin", role="admin", scope=[],
        password="a real password",
    )  # fmt: skip
    assert "admin" not in [n for n, _, _ in auth.demo_sign_ins(demo_wh, service.DEMO_USERS)]


# The form, through the app.


def app(own_file, monkeypatch, lang="en") -> AppTest:
    monkeypatch.setenv("KPI_WAREHOUSE", str(own_file))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["lang"] = lang
    return at.run()


def submit(at: AppTest, name: str, password: str) -> AppTest:
    at.text_input(key="si_name").input(name)
    at.text_input(key="si_password").input(password)
    return at.button[0].click().run()


def test_every_page_asks_to_sign_in_first(own_file, monkeypatch):
    at = app(own_file, monkeypatch)
    ok(at)
    assert at.subheader[0].value == "Sign in"
    assert not at.metric and not at.dataframe  # nothing of the company before signing in
    assert not at.sidebar.get("page_link")
    demo = at.table[0].value
    assert list(demo.iloc[:, 0]) == ["admin", "head_sales", "analyst", "viewer_prod"]
    # A deep link to another page asks too.
    at.switch_page("pages/1_Board.py").run()
    ok(at)
    assert at.subheader[0].value == "Sign in" and not at.metric


def test_sign_in_wrong_then_right_then_sign_out(own_file, monkeypatch):
    at = app(own_file, monkeypatch)
    submit(at, "head_sales", "wrong")
    assert at.error[0].value == "The user name or password is not right."
    submit(at, "head_sales", "head")
    ok(at)
    assert "head_sales" in at.sidebar.caption[0].value
    assert [b.label for b in at.sidebar.button] == ["Sign out"]
    links = [link.label for link in at.sidebar.get("page_link")]
    assert "Admin" not in links and "Board" in links
    at.sidebar.button[0].click().run()
    ok(at)
    assert at.subheader[0].value == "Sign in"
    assert at.info[0].value == "You are signed out."
    assert session_log_of(own_file, "head_sales") == ["failed", "signed_in", "signed_out"]


def session_log_of(path, user: str) -> list[str]:
    wh = Warehouse(path, linger=0)
    try:
        return [e for e, _ in session_log(wh, user)]
    finally:
        wh.close()


def test_lock_out_on_the_form_in_chinese(own_file, monkeypatch):
    at = app(own_file, monkeypatch, lang="zh")
    for _ in range(4):
        submit(at, "viewer_prod", "wrong")
    assert at.error[0].value == "用户名或密码不正确。再失败 1 次，该用户将被暂时锁定。"
    submit(at, "viewer_prod", "wrong")
    assert at.error[0].value.startswith("失败次数过多，该用户已锁定至")
    submit(at, "viewer_prod", "viewer")  # the right password, but locked
    assert at.error[0].value.startswith("失败次数过多") and not at.sidebar.get("page_link")


def test_idle_session_is_signed_out(own_file, monkeypatch):
    at = app(own_file, monkeypatch)
    submit(at, "analyst", "analyst")
    assert at.sidebar.get("page_link")
    at.session_state["auth_seen"] = at.session_state["auth_seen"] - 61 * 60  # default: 60 min
    at.run()
    ok(at)
    assert at.subheader[0].value == "Sign in"
    assert (
        at.info[0].value == "You were signed out after 60 minutes without activity. Sign in again."
    )
    assert session_log_of(own_file, "analyst")[-1] == "timed_out"


def test_the_admin_page_shows_and_lifts_a_lock(own_file, monkeypatch):
    at = app(own_file, monkeypatch)
    for _ in range(5):
        submit(at, "viewer_prod", "wrong")
    submit(at, "admin", "admin")
    at.switch_page("pages/10_Admin.py").run()
    ok(at)
    at.selectbox(key="ad_user_pick").select("viewer_prod").run()
    assert at.warning[0].value.startswith("viewer_prod is locked out after failed sign-ins until")
    at.button(key="ad_unlock_viewer_prod").click().run()
    ok(at)
    assert at.success[0].value == "viewer_prod is unlocked."
    assert session_log_of(own_file, "viewer_prod").count("failed") == 5


def test_a_deleted_users_session_ends(own_file, monkeypatch):
    at = app(own_file, monkeypatch)
    submit(at, "viewer_prod", "viewer")
    assert at.sidebar.get("page_link")
    wh = Warehouse(own_file, linger=0)
    users.delete_user(wh, service.SYSTEM, "viewer_prod")
    wh.close()
    at.run()
    ok(at)
    assert at.subheader[0].value == "Sign in" and not at.sidebar.get("page_link")
