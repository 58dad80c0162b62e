"""Signing in: passwords checked against salted scrypt hashes, lock-out after repeated failures,
idle time-out, and every sign-in, failure, lock and sign-out written to the audit log.

Settings come from `[sign_in]` in secrets.toml (all optional):

    [sign_in]
    max_failures = 5      # failed attempts in a row before the user is locked out
    lock_minutes = 15     # how long a lock-out lasts
    idle_minutes = 60     # a session without activity for this long is signed out
    session_hours = 12    # a session ends this long after signing in, active or not

Failures and locks live in the warehouse (`app_user`), so a lock holds across browser sessions,
processes and restarts. Each attempt is counted there, in one UPDATE … RETURNING, before its
password is checked: attempts sent in parallel each take their own number, and those beyond
`max_failures` are refused unchecked (and lock the user), so no burst gets more guesses than the
limit. The answer for a wrong name, a wrong password and a locked user is the same, and each
costs one scrypt check, so the form tells an outsider neither which user names exist nor which
are locked.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

import duckdb

from kpi_core import audit, pauses, settings
from kpi_core.access import hash_password, verify_password
from kpi_core.errors import KpiError
from kpi_core.messages import Message
from kpi_core.warehouse import Warehouse

# Typed user names are kept in the audit log cut to this length: enough to recognise a
# mistyped name, too short to fill the log with whatever an outsider pastes.
_NAME_IN_LOG = 64

T = TypeVar("T")


@functools.cache
def _dummy_hash() -> str:
    """Checked against when the user does not exist, so a wrong name takes as long as a wrong
    password and timing does not reveal which names exist (made once, on first need)."""
    return hash_password("not a password")


class SignInError(KpiError):
    """The `[sign_in]` settings cannot be used; the message names the setting."""


@dataclass(frozen=True)
class Policy:
    max_failures: int = 5
    lock_minutes: int = 15
    idle_minutes: int = 60
    session_hours: int = 12


def policy() -> Policy:
    conf = settings.section("sign_in")
    values = {}
    for field, default in (("max_failures", 5), ("lock_minutes", 15), ("idle_minutes", 60),
                           ("session_hours", 12)):  # fmt: skip
        value = conf.get(field, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SignInError(Message("si_err_policy", field=field, value=repr(value)))
        values[field] = value
    return Policy(**values)


@dataclass(frozen=True)
class Outcome:
    """What a sign-in attempt came to: `user` is set only when it succeeded. A refusal carries
    nothing more — a wrong name, a wrong password and a locked user read the same, so the answer
    does not tell an outsider which names exist (the audit log keeps the reason)."""

    user: str | None

    @property
    def ok(self) -> bool:
        return self.user is not None


REFUSED = Outcome(None)

# A write conflict between two connections of one process on the same row (DuckDB's optimistic
# concurrency) is retried this many times; within a Warehouse, writes are serialized anyway.
_CONFLICT_RETRIES = 20


def log(cur, user: str, event: str, detail: str | None = None) -> None:
    """One audit row for a session event (signed_in, failed, locked, signed_out, timed_out)."""
    audit.record(
        cur, changed_at=datetime.now(), changed_by=user[:_NAME_IN_LOG], entity="session",
        key=user[:_NAME_IN_LOG], field=event, new=detail,
    )  # fmt: skip


def _write(wh: Warehouse, work: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
    """`work` in one write transaction, again if another connection changed the same row."""
    for attempt in range(_CONFLICT_RETRIES):
        try:
            with wh.transaction() as cur:
                return work(cur)
        except duckdb.TransactionException:
            if attempt == _CONFLICT_RETRIES - 1:
                raise
            pauses.sleep(0.005 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


def _count_attempt(
    cur, name: str, via: str, rules: Policy, now: datetime
) -> tuple[int, str | None] | None:
    """Count an attempt on `name` before its password is checked, in the caller's transaction:
    (its number in the current run of failures, the stored hash) when it may be checked, None
    when it is refused unchecked (no such user, locked, or beyond the limit: parallel attempts
    each take their own number, so N of them at once cannot all be checked)."""
    counted = cur.execute(
        """UPDATE app_user SET
               failed_sign_ins = CASE WHEN locked_until IS NULL THEN failed_sign_ins + 1 ELSE 1 END,
               locked_until = NULL
           WHERE name = ? AND (locked_until IS NULL OR locked_until <= ?)
           RETURNING failed_sign_ins, password_hash""",
        [name, now],
    ).fetchall()
    if not counted:
        row = cur.execute("SELECT locked_until FROM app_user WHERE name = ?", [name]).fetchone()
        if row is None:
            log(cur, name or "(empty)", "failed", f"{via}: unknown user")
        else:
            log(cur, name, "failed", f"{via}: locked until {row[0]:%Y-%m-%d %H:%M}")
        return None
    number, stored = counted[0]
    if number > rules.max_failures:
        lock = now + timedelta(minutes=rules.lock_minutes)
        cur.execute(
            "UPDATE app_user SET failed_sign_ins = 0, locked_until = ? WHERE name = ?",
            [lock, name],
        )
        log(cur, name, "failed", f"{via}: over {rules.max_failures} attempts at once, not checked")
        log(cur, name, "locked", f"after {number} attempts at once, until {lock:%H:%M}")
        return None
    return int(number), stored


def sign_in(
    wh: Warehouse,
    name: str,
    password: str,
    *,
    rules: Policy | None = None,
    now: datetime | None = None,
    via: str = "password",
) -> Outcome:
    """Check a name and password, after counting the attempt; clear the count on success or
    lock the user at the limit; audit either way.

    Every attempt checks exactly one scrypt hash — the user's, or a dummy one for an unknown,
    locked or password-less user — so a refusal takes as long whatever its reason.
    """
    rules = rules or policy()
    now = now or datetime.now()
    name = (name or "").strip()
    counted = _write(wh, lambda cur: _count_attempt(cur, name, via, rules, now))
    if counted is None:
        verify_password(password or "", _dummy_hash())
        return REFUSED
    number, stored = counted
    if not stored:
        verify_password(password or "", _dummy_hash())
    right = bool(stored) and verify_password(password or "", stored)

    def settle(cur) -> Outcome:
        if right:
            # The attempts counted up to this one are forgiven; those counted after it (still
            # being checked) stay counted. A lock set meanwhile holds: refused.
            done = cur.execute(
                """UPDATE app_user SET failed_sign_ins = greatest(failed_sign_ins - ?, 0),
                       locked_until = NULL, last_sign_in = ?
                   WHERE name = ? AND (locked_until IS NULL OR locked_until <= ?)
                   RETURNING name""",
                [number, now, name, now],
            ).fetchall()
            if done:
                log(cur, name, "signed_in", via)
                return Outcome(name)
            log(cur, name, "failed", f"{via}: locked while its password was checked")
            return REFUSED
        log(cur, name, "failed", f"{via}: wrong password")
        if number >= rules.max_failures:
            lock = now + timedelta(minutes=rules.lock_minutes)
            locked = cur.execute(
                "UPDATE app_user SET failed_sign_ins = 0, locked_until = ? "
                "WHERE name = ? AND (locked_until IS NULL OR locked_until <= ?) RETURNING name",
                [lock, name, now],
            ).fetchall()
            if locked:
                log(cur, name, "locked", f"after {number} failures, until {lock:%H:%M}")
        return REFUSED

    return _write(wh, settle)


def record(wh: Warehouse, user: str, event: str, detail: str | None = None) -> None:
    """Audit a session event that needs no check (signed_out, timed_out, a single sign-on)."""
    with wh.transaction() as cur:
        log(cur, user, event, detail)
        if event == "signed_in":
            cur.execute(
                "UPDATE app_user SET last_sign_in = ? WHERE name = ?", [datetime.now(), user]
            )


def idle_expired(last_seen: float, now: float, rules: Policy) -> bool:
    return now - last_seen > rules.idle_minutes * 60


def demo_sign_ins(wh: Warehouse, demo_users: tuple) -> list[tuple[str, str, str]]:
    """The demo users whose documented password still works, as (name, password, role): shown
    on the sign-in form of a demo warehouse, and nowhere once the passwords are changed."""
    names = [u[0] for u in demo_users]
    stored = dict(
        wh.rows("SELECT name, password_hash FROM app_user WHERE list_contains(?, name)", [names])
    )
    return [
        (name, password, role)
        for name, _display, role, _scope, password in demo_users
        if verify_password(password, stored.get(name))
    ]
