"""Sign-in sessions in the core (kpi_core/sessions.py) on a real copy of the demo warehouse:
a random id stored hashed, a signed cookie, absolute expiry, idle time-out and every way a
session is revoked. Every function gets a fixed `now`."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import pytest

from kpi_core import access, backup, service, sessions, users
from kpi_core.auth import Policy, SignInError
from kpi_core.errors import ScopeError
from tests.conftest import reopen

BOTH_ENGINES = True  # the file and PostgreSQL (tests/conftest.py)

T0 = datetime(2026, 11, 2, 9, 0)
RULES = Policy(max_failures=5, lock_minutes=15, idle_minutes=30, session_hours=8)


def events(wh, user: str) -> list[tuple[str, str, str]]:
    return wh.rows(
        "SELECT changed_by, field, new FROM audit WHERE entity = 'session' AND key = ? "
        "ORDER BY changed_at",
        [user],
    )


def test_a_session_is_random_stored_hashed_and_checked(demo_wh):
    sid = sessions.create(demo_wh, "head_sales", now=T0, rules=RULES)
    other = sessions.create(demo_wh, "head_sales", now=T0, rules=RULES)
    assert sid != other and len(sid) == 43  # secrets.token_urlsafe(32)
    stored = demo_wh.rows("SELECT id_hash FROM app_session")
    assert sid not in str(stored)
    assert (hashlib.sha256(sid.encode()).hexdigest(),) in stored
    got = sessions.check(demo_wh, sid, now=T0 + timedelta(minutes=5), rules=RULES)
    assert got.ok and got.session.user == "head_sales" and got.session.via == "password"
    assert got.session.expires_at == T0 + timedelta(hours=8)


def test_an_unknown_or_missing_id_is_refused(demo_wh):
    assert sessions.check(demo_wh, None, now=T0, rules=RULES).reason == "none"
    made_up = "A" * 43
    assert sessions.check(demo_wh, made_up, now=T0, rules=RULES).reason == "unknown"


def test_the_cookie_is_signed_and_a_tampered_one_is_refused(demo_wh):
    key = sessions.key(demo_wh, now=T0)
    sid = sessions.create(demo_wh, "analyst", now=T0, rules=RULES)
    value = sessions.sign(sid, key)
    assert sessions.unsign(value, key) == sid
    body, _, sig = value.partition(".")
    flipped = sig[:-1] + ("A" if sig[-1] != "A" else "B")
    for bad in (
        f"{body}.{flipped}",  # the signature changed
        f"{'B' * 43}.{sig}",  # another id with this signature
        sessions.sign(sid, b"another server's key, long enough"),  # signed by another key
        sid,  # the bare id
        "",
        None,
        value + "x",
        value.replace(".", "|"),
    ):
        assert sessions.unsign(bad, key) is None, bad


def test_the_key_is_made_once_and_kept_or_comes_from_secrets(demo_wh, tmp_path, monkeypatch):
    monkeypatch.setenv("KPI_SECRETS", str(tmp_path / "none.toml"))
    first = sessions.key(demo_wh, now=T0)
    assert len(first) >= 48 and sessions.key(demo_wh, now=T0) == first
    again = reopen(demo_wh)  # another process would read the same key
    try:
        assert sessions.key(again, now=T0) == first
    finally:
        again.close()
    secrets_file = tmp_path / "secrets.toml"
    secrets_file.write_text('[sign_in]\ncookie_secret = "' + "k" * 40 + '"\n')
    monkeypatch.setenv("KPI_SECRETS", str(secrets_file))
    assert sessions.key(demo_wh, now=T0) == b"k" * 40
    secrets_file.write_text('[sign_in]\ncookie_secret = "short"\n')
    with pytest.raises(SignInError, match="cookie_secret .* at least 32 characters"):
        sessions.key(demo_wh, now=T0)


def test_absolute_expiry_holds_however_active(demo_wh):
    sid = sessions.create(demo_wh, "analyst", now=T0, rules=RULES)
    t = T0
    while t < T0 + timedelta(hours=8) - timedelta(minutes=20):
        t += timedelta(minutes=20)  # busy all day: never idle
        assert sessions.check(demo_wh, sid, now=t, rules=RULES).ok
    assert sessions.check(demo_wh, sid, now=T0 + timedelta(hours=8), rules=RULES).reason == (
        "expired"
    )


def test_idle_time_out_ends_the_session_and_is_audited_once(demo_wh):
    sid = sessions.create(demo_wh, "analyst", now=T0, rules=RULES)
    assert sessions.check(demo_wh, sid, now=T0 + timedelta(minutes=29), rules=RULES).ok
    # last seen at 09:29; idle from there on.
    late = T0 + timedelta(minutes=29 + 31)
    assert sessions.check(demo_wh, sid, now=late, rules=RULES).reason == "idle"
    # Ended: a later run (another tab) does not bring it back, and the time-out is one row.
    assert sessions.check(demo_wh, sid, now=late, rules=RULES).reason == "revoked"
    assert [e[1] for e in events(demo_wh, "analyst")] == ["timed_out"]


def test_last_seen_is_written_at_most_once_a_minute(demo_wh):
    sid = sessions.create(demo_wh, "analyst", now=T0, rules=RULES)

    def seen():
        return demo_wh.one("SELECT last_seen FROM app_session")[0]

    sessions.check(demo_wh, sid, now=T0 + timedelta(seconds=30), rules=RULES)
    assert seen() == T0
    sessions.check(demo_wh, sid, now=T0 + timedelta(seconds=61), rules=RULES)
    assert seen() == T0 + timedelta(seconds=61)


def test_sign_out_ends_only_this_session(demo_wh):
    here = sessions.create(demo_wh, "head_sales", now=T0, rules=RULES)
    phone = sessions.create(demo_wh, "head_sales", now=T0, rules=RULES)
    ended = sessions.revoke(demo_wh, here, now=T0 + timedelta(minutes=1))
    assert ended.user == "head_sales"
    assert sessions.check(demo_wh, here, now=T0 + timedelta(minutes=2), rules=RULES).reason == (
        "revoked"
    )
    assert sessions.check(demo_wh, phone, now=T0 + timedelta(minutes=2), rules=RULES).ok
    assert sessions.revoke(demo_wh, here, now=T0 + timedelta(minutes=3)) is None  # once
    assert events(demo_wh, "head_sales") == [("head_sales", "signed_out", "password")]


def test_sign_out_everywhere_ends_all_of_the_users_sessions(demo_wh):
    mine = [sessions.create(demo_wh, "head_sales", now=T0, rules=RULES) for _ in range(3)]
    theirs = sessions.create(demo_wh, "analyst", now=T0, rules=RULES)
    now = T0 + timedelta(minutes=5)
    assert sessions.revoke_user(demo_wh, "head_sales", now=now, by="head_sales") == 3
    assert all(sessions.check(demo_wh, s, now=now, rules=RULES).reason == "revoked" for s in mine)
    assert sessions.check(demo_wh, theirs, now=now, rules=RULES).ok
    assert events(demo_wh, "head_sales") == [
        ("head_sales", "signed_out", "everywhere: 3 session(s)")
    ]


def test_an_admin_ends_a_users_sessions_and_only_an_admin(demo_wh):
    sid = sessions.create(demo_wh, "viewer_prod", now=T0, rules=RULES)
    now = T0 + timedelta(minutes=5)
    head = service.actor(demo_wh, "head_sales")
    with pytest.raises(ScopeError, match="Only admins"):
        sessions.end_sessions(demo_wh, head, "viewer_prod", now=now)
    assert sessions.check(demo_wh, sid, now=now, rules=RULES).ok
    admin = service.actor(demo_wh, "admin")
    assert sessions.live(demo_wh, "viewer_prod", now=now, rules=RULES)
    assert sessions.end_sessions(demo_wh, admin, "viewer_prod", now=now) == 1
    assert sessions.check(demo_wh, sid, now=now, rules=RULES).reason == "revoked"
    assert sessions.live(demo_wh, "viewer_prod", now=now, rules=RULES) == []
    assert events(demo_wh, "viewer_prod") == [("admin", "sessions_ended", "admin: 1 session(s)")]


def test_a_new_password_or_deleting_the_user_ends_the_sessions(demo_wh):
    a = sessions.create(demo_wh, "analyst", now=T0, rules=RULES)
    v = sessions.create(demo_wh, "viewer_prod", now=T0, rules=RULES)
    users.save_user(
        demo_wh, access.SYSTEM, "analyst", display_name="Li Na", role="analyst",
        scope=["GROUP"], password="a brand new password",
    )  # fmt: skip
    users.delete_user(demo_wh, access.SYSTEM, "viewer_prod")
    # A user of the same name added later does not inherit the old cookie.
    users.save_user(
        demo_wh, access.SYSTEM, "viewer_prod", display_name="Someone else", role="viewer",
        scope=["PROD"], password="another password", create=True,
    )  # fmt: skip
    for sid in (a, v):
        assert sessions.check(demo_wh, sid, now=T0, rules=RULES).reason == "revoked"
    why = dict(demo_wh.rows("SELECT user_name, revoked_why FROM app_session"))
    assert why == {"analyst": "password", "viewer_prod": "deleted"}


def test_a_deleted_users_session_is_refused_even_unrevoked(demo_wh):
    sid = sessions.create(demo_wh, "viewer_prod", now=T0, rules=RULES)
    with demo_wh.transaction() as cur:  # removed behind the app's back (by hand, a restore)
        cur.execute("DELETE FROM app_user WHERE name = 'viewer_prod'")
    assert sessions.check(demo_wh, sid, now=T0, rules=RULES).reason == "no_user"


def test_old_ended_sessions_are_pruned(demo_wh):
    old = sessions.create(demo_wh, "analyst", now=T0, rules=RULES)
    sessions.revoke(demo_wh, old, now=T0 + timedelta(hours=1))
    sessions.create(demo_wh, "analyst", now=T0 + timedelta(days=31), rules=RULES)
    assert demo_wh.one("SELECT count(*) FROM app_session")[0] == 1


@pytest.mark.file_only  # PostgreSQL's backups are pg_dump's
def test_a_restored_backup_brings_no_session_back(demo_wh, tmp_path):
    """A backup holds the sessions live when it was made; one ended since (signed out, by an
    admin) must not work again after restoring it, and whoever is signed in now (the admin
    restoring it) stays signed in: the sessions are today's, not the backup's."""
    ended = sessions.create(demo_wh, "head_sales", now=T0, rules=RULES)
    key = sessions.key(demo_wh, now=T0)
    made = backup.backup(demo_wh, tmp_path / "bk", access.SYSTEM)
    sessions.revoke(demo_wh, ended, now=T0 + timedelta(minutes=1))  # signed out since
    admin = sessions.create(demo_wh, "admin", now=T0 + timedelta(minutes=1), rules=RULES)
    backup.restore(demo_wh, made.path, access.SYSTEM)
    later = T0 + timedelta(minutes=2)
    assert sessions.check(demo_wh, ended, now=later, rules=RULES).reason == "revoked"
    assert sessions.check(demo_wh, admin, now=later, rules=RULES).ok
    assert sessions.key(demo_wh, now=later) == key
