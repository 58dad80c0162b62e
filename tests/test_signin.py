"""Signing in: passwords, lock-out, idle time-out and the audit trail, in the core and on the
sign-in gate every page passes first (the session cookie through tests/apptest.py; the routes
that set it are tested on a real server in test_session_routes)."""

import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta

import pytest
from streamlit.testing.v1 import AppTest

from kpi_core import access, auth, service, sessions, users
from kpi_core.auth import Policy
from kpi_core.warehouse import Warehouse
from tests.apptest import ROOT, browser_cookie, ok, sign_in

BOTH_ENGINES = True  # the file and PostgreSQL (tests/conftest.py)

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
    assert wrong_password == unknown
    assert session_log(demo_wh, "head_sales") == [("failed", "password: wrong password")]
    assert session_log(demo_wh, "nobody") == [("failed", "password: unknown user")]


def locked_until(wh, user: str) -> datetime | None:
    return wh.one("SELECT locked_until FROM app_user WHERE name = ?", [user])[0]


def test_lock_out_after_repeated_failures_then_it_runs_out(demo_wh):
    t0 = datetime(2026, 11, 2, 9, 0)
    assert not auth.sign_in(demo_wh, "analyst", "x", rules=RULES, now=t0).ok
    auth.sign_in(demo_wh, "analyst", "y", rules=RULES, now=t0)
    assert locked_until(demo_wh, "analyst") is None
    auth.sign_in(demo_wh, "analyst", "z", rules=RULES, now=t0)
    assert locked_until(demo_wh, "analyst") == t0 + timedelta(minutes=15)
    # Locked: even the right password is refused, and the lock is in the warehouse (any session).
    during = auth.sign_in(demo_wh, "analyst", "analyst", rules=RULES, now=t0 + timedelta(minutes=5))
    assert not during.ok
    events = [e for e, _ in session_log(demo_wh, "analyst")]
    assert events == ["failed", "failed", "failed", "locked", "failed"]
    # Run out: a fresh count, and the right password works again.
    after = t0 + timedelta(minutes=16)
    assert not auth.sign_in(demo_wh, "analyst", "wrong", rules=RULES, now=after).ok
    assert locked_until(demo_wh, "analyst") is None
    assert demo_wh.one("SELECT failed_sign_ins FROM app_user WHERE name = 'analyst'")[0] == 1
    assert auth.sign_in(demo_wh, "analyst", "analyst", rules=RULES, now=after).ok
    assert demo_wh.one("SELECT failed_sign_ins FROM app_user WHERE name = 'analyst'")[0] == 0


def test_an_admin_unlocks_a_user(demo_wh):
    for _ in range(3):
        auth.sign_in(demo_wh, "viewer_prod", "x", rules=RULES)
    listed = {u.name: u for u in users.list_users(demo_wh, access.SYSTEM)}
    assert listed["viewer_prod"].locked_until is not None
    users.unlock(demo_wh, access.SYSTEM, "viewer_prod")
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
        demo_wh, access.SYSTEM, "admin", display_name="Admin", role="admin", scope=[],
        password="a real password",
    )  # fmt: skip
    assert "admin" not in [n for n, _, _ in auth.demo_sign_ins(demo_wh, service.DEMO_USERS)]


# Parallel attempts: each is counted before its password is checked.

PARALLEL = Policy(max_failures=5, lock_minutes=15, idle_minutes=30)
T0 = datetime(2026, 11, 2, 9, 0)


def test_parallel_wrong_passwords_and_a_right_one_lock_the_account(demo_wh, monkeypatch):
    """64 wrong passwords and the right one at once: the password is checked at most
    `max_failures` times, the rest are refused unchecked, and the account ends locked."""
    stored = demo_wh.one("SELECT password_hash FROM app_user WHERE name = 'analyst'")[0]
    real_verify = auth.verify_password
    checked: list[str] = []
    guard, release = threading.Lock(), threading.Event()

    def verify(password: str, against: str | None) -> bool:
        if against == stored:
            with guard:
                checked.append(password)
            # Held until every attempt has either come here or been answered: the race of
            # the old code made certain, not left to the scheduler.
            assert release.wait(60), "the test never let the checks go on"
        return real_verify(password, against)

    monkeypatch.setattr(auth, "verify_password", verify)
    passwords = [f"wrong-{i}" for i in range(64)]
    passwords.insert(37, "analyst")
    answered: list[auth.Outcome] = []

    def attempt(password: str) -> None:
        answered.append(auth.sign_in(demo_wh, "analyst", password, rules=PARALLEL, now=T0))

    threads = [threading.Thread(target=attempt, args=(p,)) for p in passwords]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(answered) + len(checked) < len(passwords) and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    for t in threads:
        t.join(60)
    assert len(answered) == len(passwords)
    assert len(checked) <= PARALLEL.max_failures
    assert not any(o.ok for o in answered)
    locked = demo_wh.one("SELECT locked_until FROM app_user WHERE name = 'analyst'")[0]
    assert locked == T0 + timedelta(minutes=15)
    assert not auth.sign_in(demo_wh, "analyst", "analyst", rules=PARALLEL, now=T0).ok
    events = [e for e, _ in session_log(demo_wh, "analyst")]
    assert events.count("locked") == 1


ATTEMPTS = """
import sys, time
from datetime import datetime
from kpi_core import auth
from kpi_core.warehouse import Warehouse

path, start, n = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
wh = Warehouse(path, linger=0)
rules = auth.Policy(max_failures=5, lock_minutes=15, idle_minutes=30)
time.sleep(max(0.0, start - time.time()))
for i in range(n):
    auth.sign_in(wh, "analyst", f"wrong-{i}", rules=rules, now=datetime(2026, 11, 2, 9, 0))
wh.close()
"""


def test_parallel_attempts_from_separate_processes_are_all_counted(own_file):
    """Four processes on one warehouse file, six wrong passwords each: the password is checked
    no more than `max_failures` times in all (each check is audited as a wrong password)."""
    start = time.time() + 3  # all four have opened the warehouse by then
    procs = [
        subprocess.Popen([sys.executable, "-c", ATTEMPTS, str(own_file), str(start), "6"])
        for _ in range(4)
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0
    wh = Warehouse(own_file, linger=0)
    try:
        details = [d for e, d in session_log(wh, "analyst") if e == "failed"]
        locked = wh.one("SELECT locked_until FROM app_user WHERE name = 'analyst'")[0]
    finally:
        wh.close()
    assert len(details) == 24
    assert details.count("password: wrong password") <= PARALLEL.max_failures
    assert locked == T0 + timedelta(minutes=15)


def test_unknown_wrong_and_locked_users_get_the_same_answer_and_work(demo_wh, monkeypatch):
    """Nothing in the answer, nor in the work done (one password hash checked), tells an
    outsider whether a name exists or is locked."""
    for _ in range(3):
        auth.sign_in(demo_wh, "viewer_prod", "x", rules=RULES, now=T0)
    with demo_wh.transaction() as cur:  # a user who signs in only by single sign-on
        cur.execute(
            "INSERT INTO app_user (name, display_name, role, scope) "
            "VALUES ('sso_only', 'S', 'viewer', ['SALES'])"
        )
    real_verify = auth.verify_password
    calls: list[str | None] = []

    def verify(password: str, against: str | None) -> bool:
        calls.append(against)
        return real_verify(password, against)

    monkeypatch.setattr(auth, "verify_password", verify)
    answers, work = set(), []
    for name, password in [
        ("head_sales", "nope"),  # a real name, a wrong password
        ("nobody", "nope"),  # no such user
        ("viewer_prod", "viewer"),  # locked: even the right password
        ("sso_only", "anything"),  # no password at all
        ("", ""),
    ]:
        calls.clear()
        answers.add(auth.sign_in(demo_wh, name, password, rules=RULES, now=T0))
        work.append(len(calls))
        assert all(c and c.startswith("scrypt$") for c in calls), name
    assert answers == {auth.Outcome(None)}
    assert work == [1, 1, 1, 1, 1]


# The gate, through the app.


def app(own_file, monkeypatch, lang="en", *, url=None, query=None) -> AppTest:
    """The Overview (or the page at `url`) in a browser that holds whatever cookie the test
    gave it (`sign_in`, `browser_cookie`), none by default."""
    monkeypatch.setenv("KPI_WAREHOUSE", str(own_file))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["lang"] = lang
    if url:
        at.context = {"url": url}
    for k, v in (query or {}).items():
        at.query_params[k] = v
    return at.run()


def form_html(at: AppTest) -> str:
    return "".join(h.proto.body for h in at.get("html"))


def session_log_of(path, user: str) -> list[str]:
    wh = Warehouse(path, linger=0)
    try:
        return [e for e, _ in session_log(wh, user)]
    finally:
        wh.close()


def test_every_page_asks_to_sign_in_first(own_file, monkeypatch):
    browser_cookie(monkeypatch, None)
    at = app(own_file, monkeypatch)
    ok(at)
    assert at.subheader[0].value == "Sign in"
    assert not at.metric and not at.dataframe  # nothing of the company before signing in
    assert not at.sidebar.get("page_link")
    demo = at.table[0].value
    assert list(demo.iloc[:, 0]) == ["admin", "head_sales", "analyst", "viewer_prod"]
    # A plain HTML form posting to the sign-in route (a script cannot set an HttpOnly cookie).
    form = form_html(at)
    assert 'method="post" action="/auth/signin"' in form
    assert 'name="user" autocomplete="username"' in form and 'type="password"' in form
    assert ">User name<" in form and ">Password<" in form and ">Sign in</button>" in form
    # A deep link to another page asks too, and comes back to it after signing in.
    at.switch_page("pages/1_Board.py")
    at.context = {"url": "http://localhost:8501/Board"}
    at.query_params["unit"] = "SALES"
    at.run()
    ok(at)
    assert at.subheader[0].value == "Sign in" and not at.metric
    assert 'name="next" value="/Board?lang=en&amp;unit=SALES"' in form_html(at)


def test_the_form_in_chinese(own_file, monkeypatch):
    browser_cookie(monkeypatch, None)
    at = app(own_file, monkeypatch, lang="zh")
    form = form_html(at)
    assert at.subheader[0].value == "登录"
    assert ">用户名<" in form and ">密码<" in form and ">登录</button>" in form
    assert at.expander[0].label == "演示用户"


def test_session_state_alone_grants_nothing(own_file, monkeypatch):
    """What a replayed Streamlit session id brings along — the session's state, a user name
    in it — without the browser's cookie: the form."""
    browser_cookie(monkeypatch, None)
    monkeypatch.setenv("KPI_WAREHOUSE", str(own_file))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["lang"] = "en"
    at.session_state["user_name"] = "admin"
    at.session_state["auth_via"] = "password"
    at.run()
    ok(at)
    assert at.subheader[0].value == "Sign in" and not at.metric
    assert not at.sidebar.get("page_link")
    # A cookie the server did not sign is nothing either.
    browser_cookie(monkeypatch, "A" * 43 + "." + "B" * 43)
    at.run()
    assert at.subheader[0].value == "Sign in" and not at.metric


def test_signed_in_by_the_cookie_then_signed_out(own_file, monkeypatch):
    value = sign_in(monkeypatch, own_file, "head_sales")
    at = app(own_file, monkeypatch)
    ok(at)
    # The id one signs in with, and the name everyone else sees (comments, owners, the wall).
    assert at.sidebar.caption[0].value == (
        "Signed in as: **head_sales** · 王磊 Wang Lei · Department head"
    )
    links = [link.label for link in at.sidebar.get("page_link")]
    assert "Admin" not in links and "Board" in links
    sidebar = "".join(h.proto.body for h in at.sidebar.get("html"))
    assert 'method="post" action="/auth/signout"' in sidebar
    assert ">Sign out</button>" in sidebar and ">Sign out everywhere</button>" in sidebar
    # The sign-out route ends the session (tested on a real server); this tab's next run:
    wh = Warehouse(own_file, linger=0)
    sid = sessions.unsign(value, sessions.key(wh, now=datetime.now()))
    sessions.revoke(wh, sid, now=datetime.now())
    wh.close()
    at.run()
    ok(at)
    assert at.subheader[0].value == "Sign in" and not at.sidebar.get("page_link")
    assert at.info[0].value.startswith("Your session was ended")
    assert session_log_of(own_file, "head_sales") == ["signed_out"]


def test_the_routes_messages_on_the_form(own_file, monkeypatch):
    browser_cookie(monkeypatch, None)
    at = app(own_file, monkeypatch, query={"si_error": "wrong"})
    assert at.error[0].value.startswith("The user name or password is not right, or the user")
    assert "si_error" not in at.query_params  # said once, not on a reload
    at = app(own_file, monkeypatch, lang="zh", query={"si_error": "wrong"})
    assert at.error[0].value.startswith("用户名或密码不正确，或该用户因连续")
    at = app(own_file, monkeypatch, query={"si_notice": "signed_out"})
    assert at.info[0].value == "You are signed out."
    assert not at.error


def test_idle_session_is_signed_out(own_file, monkeypatch):
    wh = Warehouse(own_file, linger=0)
    now = datetime.now()
    sid = sessions.create(wh, "analyst", now=now - timedelta(minutes=61), rules=auth.policy())
    browser_cookie(monkeypatch, sessions.sign(sid, sessions.key(wh, now=now)))
    wh.close()
    at = app(own_file, monkeypatch)
    ok(at)
    assert at.subheader[0].value == "Sign in"
    assert (
        at.info[0].value == "You were signed out after 60 minutes without activity. Sign in again."
    )
    assert session_log_of(own_file, "analyst")[-1] == "timed_out"


def test_the_admin_page_shows_and_lifts_a_lock(own_file, monkeypatch):
    wh = Warehouse(own_file, linger=0)
    for _ in range(5):
        auth.sign_in(wh, "viewer_prod", "wrong")
    wh.close()
    sign_in(monkeypatch, own_file, "admin")
    at = app(own_file, monkeypatch)
    at.switch_page("pages/10_Admin.py").run()
    ok(at)
    at.selectbox(key="ad_user_pick").select("viewer_prod").run()
    assert at.warning[0].value.startswith("viewer_prod is locked out after failed sign-ins until")
    at.button(key="ad_unlock_viewer_prod").click().run()
    ok(at)
    assert at.success[0].value == "viewer_prod is unlocked."
    assert session_log_of(own_file, "viewer_prod").count("failed") == 5


def test_an_admin_signs_a_user_out_everywhere(own_file, monkeypatch):
    theirs = sign_in(monkeypatch, own_file, "viewer_prod")
    sign_in(monkeypatch, own_file, "admin")
    at = app(own_file, monkeypatch)
    at.switch_page("pages/10_Admin.py").run()
    at.selectbox(key="ad_user_pick").select("viewer_prod").run()
    ok(at)
    assert any("viewer_prod has 1 active session(s)" in c.value for c in at.caption)
    at.button(key="ad_end_viewer_prod").click().run()
    ok(at)
    assert at.success[0].value == "Ended 1 session(s) of viewer_prod."
    assert any("viewer_prod has no active session." in c.value for c in at.caption)
    # The viewer's browser, at its next run:
    browser_cookie(monkeypatch, theirs)
    viewer = app(own_file, monkeypatch)
    assert viewer.subheader[0].value == "Sign in"
    assert viewer.info[0].value.startswith("Your session was ended")


def test_a_deleted_users_session_ends(own_file, monkeypatch):
    sign_in(monkeypatch, own_file, "viewer_prod")
    at = app(own_file, monkeypatch)
    assert at.sidebar.get("page_link")
    wh = Warehouse(own_file, linger=0)
    users.delete_user(wh, access.SYSTEM, "viewer_prod")
    wh.close()
    at.run()
    ok(at)
    assert at.subheader[0].value == "Sign in" and not at.sidebar.get("page_link")
