"""Sign-in sessions: a random id in a signed, HttpOnly cookie, checked against a store in the
warehouse on every script run (DESIGN.md §7).

A browser signs in through the app's sign-in route (kpi_core/ui/routes.py), which creates a
session here and sets the cookie `kpi_session` = `<id>.<signature>`:

- the id is `secrets.token_urlsafe(32)` (256 random bits); the store keeps only its SHA-256,
  so the warehouse file or a backup cannot be turned into a working cookie;
- the signature is an HMAC-SHA256 of the id with the server's key (`[sign_in] cookie_secret`
  in secrets.toml, or a key generated once and kept in the warehouse): a cookie the server did
  not issue is refused before the store is asked;
- a session ends `session_hours` after it was created (absolute), after `idle_minutes` without
  a script run (idle), or when it is revoked: signing out (this session), signing out
  everywhere (all of the user's sessions), an admin ending a user's sessions, a new password,
  the user being deleted.

A Streamlit session id is not a credential: a script run is signed in only when the cookie of
its own browser names a live session, so replaying another browser's Streamlit session id from
a browser without the cookie gets the sign-in form.

Functions take `now` as a parameter and never read the clock; the edges pass `datetime.now()`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from kpi_core import audit, settings
from kpi_core.access import Actor, can
from kpi_core.auth import Policy, SignInError
from kpi_core.errors import NotFoundError, ScopeError
from kpi_core.messages import Message
from kpi_core.warehouse import Warehouse

COOKIE = "kpi_session"

# A script run writes `last_seen` at most this often: not a write per click. The idle time-out
# may therefore end a session up to this much early.
TOUCH_EVERY = timedelta(minutes=1)

# Ended sessions are kept this long (the Admin page and the audit log read them), then pruned.
KEEP_ENDED = timedelta(days=30)

_ID = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)
_SIG = re.compile(r"[A-Za-z0-9_-]{43}")  # urlsafe base64 of 32 bytes, unpadded
_KEY_NAME = "session_cookie_key"
_MIN_SECRET = 32


@dataclass(frozen=True)
class Session:
    user: str
    via: str
    created_at: datetime
    last_seen: datetime
    expires_at: datetime


@dataclass(frozen=True)
class Check:
    """What a cookie came to. `session` is set only when it is good; otherwise `reason` is one
    of "none" (no cookie, or one the server did not sign), "unknown", "revoked", "expired",
    "idle" or "no_user" (the user was deleted)."""

    session: Session | None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.session is not None


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("ascii")).hexdigest()


def _audit(cur, now: datetime, by: str, user: str, event: str, detail: str | None) -> None:
    # The same shape as auth.log: entity 'session', keyed by the user.
    audit.record(
        cur, changed_at=now, changed_by=by[:64], entity="session", key=user[:64],
        field=event, new=detail,
    )  # fmt: skip


# The signing key.


def key(wh: Warehouse, *, now: datetime) -> bytes:
    """The key that signs session cookies: `[sign_in] cookie_secret` from secrets.toml when it
    is set, else one generated on first need and kept in the warehouse (the same for every
    process using it)."""
    configured = settings.section("sign_in").get("cookie_secret")
    if configured is not None:
        if not isinstance(configured, str) or len(configured) < _MIN_SECRET:
            raise SignInError(Message("si_err_cookie_secret", n=_MIN_SECRET))
        return configured.encode("utf-8")
    row = wh.one("SELECT value FROM app_secret WHERE name = ?", [_KEY_NAME])
    if row is None:
        with wh.transaction() as cur:
            # Two processes starting at once: the first key written wins, both read it back.
            cur.execute(
                "INSERT OR IGNORE INTO app_secret VALUES (?, ?, ?)",
                [_KEY_NAME, secrets.token_urlsafe(48), now],
            )
        row = wh.one("SELECT value FROM app_secret WHERE name = ?", [_KEY_NAME])
    return row[0].encode("ascii")


def _signature(session_id: str, secret: bytes) -> str:
    mac = hmac.new(secret, f"{COOKIE}|{session_id}".encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def sign(session_id: str, secret: bytes) -> str:
    """The cookie's value for a session id: `<id>.<signature>`."""
    return f"{session_id}.{_signature(session_id, secret)}"


def unsign(value: object, secret: bytes) -> str | None:
    """The session id in a cookie value, or None when it is missing, malformed or not signed
    with `secret` (compared in constant time)."""
    if not isinstance(value, str) or len(value) != 87:
        return None
    session_id, _, sig = value.partition(".")
    if not _ID.fullmatch(session_id) or not _SIG.fullmatch(sig):
        return None
    if not hmac.compare_digest(sig, _signature(session_id, secret)):
        return None
    return session_id


# The store.


def create(wh: Warehouse, user: str, *, now: datetime, rules: Policy, via: str = "password") -> str:
    """A new session for `user` (already authenticated by the caller); returns its id, which
    is never stored — only its hash is."""
    session_id = secrets.token_urlsafe(32)
    expires = now + timedelta(hours=rules.session_hours)
    with wh.transaction() as cur:
        # Rows of sessions that ended long ago are of no use: pruned as new ones come.
        cur.execute(
            "DELETE FROM app_session WHERE coalesce(revoked_at, expires_at) < ?",
            [now - KEEP_ENDED],
        )
        cur.execute(
            "INSERT INTO app_session (id_hash, user_name, via, created_at, last_seen, "
            "expires_at) VALUES (?, ?, ?, ?, ?, ?)",
            [_hash(session_id), user, via, now, now, expires],
        )
    return session_id


def check(wh: Warehouse, session_id: str | None, *, now: datetime, rules: Policy) -> Check:
    """Whether `session_id` (from a cookie that `unsign` accepted) is a live session. Asked on
    every script run, so a revocation holds from the next run of every tab. A live session's
    `last_seen` moves to `now` (at most once per TOUCH_EVERY); one idle too long is ended here
    and its time-out audited."""
    if not session_id:
        return Check(None, "none")
    id_hash = _hash(session_id)
    row = wh.one(
        "SELECT s.user_name, s.via, s.created_at, s.last_seen, s.expires_at, s.revoked_at, "
        "u.name IS NOT NULL FROM app_session s LEFT JOIN app_user u ON u.name = s.user_name "
        "WHERE s.id_hash = ?",
        [id_hash],
    )
    if row is None:
        return Check(None, "unknown")
    user, via, created, last_seen, expires, revoked, user_exists = row
    if revoked is not None:
        return Check(None, "revoked")
    if not user_exists:
        return Check(None, "no_user")
    if now >= expires:
        return Check(None, "expired")
    # Idle time-out by what the session's policy is now: lowering idle_minutes takes effect
    # for sessions already open.
    if now - last_seen > timedelta(minutes=rules.idle_minutes):
        with wh.transaction(data=False) as cur:  # sessions are never cached: keep the caches
            ended = cur.execute(
                "UPDATE app_session SET revoked_at = ?, revoked_why = 'timed_out' "
                "WHERE id_hash = ? AND revoked_at IS NULL RETURNING user_name",
                [now, id_hash],
            ).fetchall()
            if ended:  # another tab may have ended it a moment ago: audited once
                _audit(cur, now, user, user, "timed_out", f"idle over {rules.idle_minutes} min")
        return Check(None, "idle")
    if now - last_seen >= TOUCH_EVERY:
        with wh.transaction(data=False) as cur:
            cur.execute(
                "UPDATE app_session SET last_seen = ? WHERE id_hash = ? AND last_seen < ?",
                [now, id_hash, now],
            )
        last_seen = now
    return Check(Session(user, via, created, last_seen, expires))


def revoke(
    wh: Warehouse, session_id: str | None, *, now: datetime, why: str = "signed_out"
) -> Session | None:
    """End one session (signing out); returns it, or None when it was not live. Audited as
    the user's own `signed_out`."""
    if not session_id:
        return None
    with wh.transaction() as cur:
        row = cur.execute(
            "UPDATE app_session SET revoked_at = ?, revoked_by = user_name, revoked_why = ? "
            "WHERE id_hash = ? AND revoked_at IS NULL "
            "RETURNING user_name, via, created_at, last_seen, expires_at",
            [now, why, _hash(session_id)],
        ).fetchone()
        if row is None:
            return None
        _audit(cur, now, row[0], row[0], "signed_out", row[1])
    return Session(*row)


def revoke_user(
    wh: Warehouse, user: str, *, now: datetime, by: str, why: str = "everywhere"
) -> int:
    """End every live session of `user` (signing out everywhere, an admin, a new password);
    returns how many. Audited when there were any."""
    with wh.transaction() as cur:
        n = revoke_in(cur, user, now=now, by=by, why=why)
    return n


def revoke_in(cur, user: str, *, now: datetime, by: str, why: str) -> int:
    """`revoke_user` inside the caller's transaction (users.save_user, users.delete_user).
    Every unrevoked row is ended, expired ones too; the count is of those that were live."""
    n = cur.execute(
        "SELECT count(*) FROM app_session WHERE user_name = ? AND revoked_at IS NULL "
        "AND expires_at > ?",
        [user, now],
    ).fetchone()[0]
    cur.execute(
        "UPDATE app_session SET revoked_at = ?, revoked_by = ?, revoked_why = ? "
        "WHERE user_name = ? AND revoked_at IS NULL",
        [now, by, why, user],
    )
    if n:
        event = "signed_out" if why == "everywhere" and by == user else "sessions_ended"
        _audit(cur, now, by, user, event, f"{why}: {n} session(s)")
    return n


def end_sessions(wh: Warehouse, who: Actor, user: str, *, now: datetime) -> int:
    """An admin signs `user` out everywhere (a lost laptop, someone who left)."""
    if not can(who, "manage_users"):
        raise ScopeError(Message("si_err_end_admins_only"))
    if wh.one("SELECT 1 FROM app_user WHERE name = ?", [user]) is None:
        raise NotFoundError(Message("cat_err_no_user", name=user))
    return revoke_user(wh, user, now=now, by=who.name, why="admin")


def live(wh: Warehouse, user: str, *, now: datetime, rules: Policy) -> list[Session]:
    """The user's sessions that would still sign a browser in, newest first (Admin page)."""
    rows = wh.rows(
        "SELECT user_name, via, created_at, last_seen, expires_at FROM app_session "
        "WHERE user_name = ? AND revoked_at IS NULL AND expires_at > ? AND last_seen >= ? "
        "ORDER BY last_seen DESC",
        [user, now, now - timedelta(minutes=rules.idle_minutes)],
    )
    return [Session(*r) for r in rows]


# Restoring a backup (kpi_core.backup.restore).

_SESSION_COLUMNS = (
    "id_hash, user_name, via, created_at, last_seen, expires_at, revoked_at, revoked_by, "
    "revoked_why"
)


def taken(wh: Warehouse) -> tuple[list[tuple], list[tuple]]:
    """The sessions and the cookie's key as they are now, to put back after a restore."""
    return (
        wh.rows(f"SELECT {_SESSION_COLUMNS} FROM app_session"),  # noqa: S608 (constant)
        wh.rows("SELECT name, value, created_at FROM app_secret"),
    )


def put_back(cur, state: tuple[list[tuple], list[tuple]]) -> None:
    """Who is signed in is today's state, not a backup's: the restored warehouse gets the
    sessions and key it replaced (inside the restore's own transaction)."""
    rows, keys = state
    cur.execute("DELETE FROM app_session")
    if rows:
        cur.executemany(
            f"INSERT INTO app_session ({_SESSION_COLUMNS}) "  # noqa: S608 (constant)
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [list(r) for r in rows],
        )
    cur.execute("DELETE FROM app_secret")
    if keys:
        cur.executemany("INSERT INTO app_secret VALUES (?, ?, ?)", [list(r) for r in keys])
