"""Signing in: passwords checked against salted scrypt hashes, lock-out after repeated failures,
idle time-out, and every sign-in, failure, lock and sign-out written to the audit log.

Settings come from `[sign_in]` in secrets.toml (all optional):

    [sign_in]
    max_failures = 5      # failed attempts in a row before the user is locked out
    lock_minutes = 15     # how long a lock-out lasts
    idle_minutes = 60     # a session without activity for this long is signed out
    session_hours = 12    # a session ends this long after signing in, active or not

Failures and locks live in the warehouse (`app_user`), so a lock holds across browser sessions,
processes and restarts. The message for a wrong name and a wrong password is the same, so the
form does not tell an outsider which user names exist.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta

from kpi_core.access import hash_password, verify_password
from kpi_core.errors import KpiError
from kpi_core.references import read_secrets
from kpi_core.warehouse import Warehouse

# Typed user names are kept in the audit log cut to this length: enough to recognise a
# mistyped name, too short to fill the log with whatever an outsider pastes.
_NAME_IN_LOG = 64


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
    conf = read_secrets().get("sign_in", {})
    values = {}
    for field, default in (("max_failures", 5), ("lock_minutes", 15), ("idle_minutes", 60),
                           ("session_hours", 12)):  # fmt: skip
        value = conf.get(field, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SignInError(
                f"[sign_in] {field} = {value!r} in secrets.toml must be a whole number ≥ 1."
            )
        values[field] = value
    return Policy(**values)


@dataclass(frozen=True)
class Outcome:
    """What a sign-in attempt came to. `user` is set only when it succeeded."""

    user: str | None
    reason: str = ""  # "", "wrong" (name or password), "locked"
    locked_until: datetime | None = None
    failures_left: int | None = None

    @property
    def ok(self) -> bool:
        return self.user is not None


def log(cur, user: str, event: str, detail: str | None = None) -> None:
    """One audit row for a session event (signed_in, failed, locked, signed_out, timed_out)."""
    cur.execute(
        "INSERT INTO audit VALUES (?, ?, 'session', ?, ?, NULL, ?, NULL)",
        [datetime.now(), user[:_NAME_IN_LOG], user[:_NAME_IN_LOG], event, detail],
    )


def sign_in(
    wh: Warehouse,
    name: str,
    password: str,
    *,
    rules: Policy | None = None,
    now: datetime | None = None,
    via: str = "password",
) -> Outcome:
    """Check a name and password; count the failure or clear the count; audit either way."""
    rules = rules or policy()
    now = now or datetime.now()
    name = (name or "").strip()
    row = wh.one(
        "SELECT password_hash, failed_sign_ins, locked_until FROM app_user WHERE name = ?",
        [name],
    )
    if row is None:
        verify_password(password or "", _dummy_hash())
        with wh.transaction() as cur:
            log(cur, name or "(empty)", "failed", f"{via}: unknown user")
        return Outcome(None, "wrong")
    stored, failures, locked_until = row
    if locked_until is not None and locked_until > now:
        with wh.transaction() as cur:
            log(cur, name, "failed", f"{via}: locked until {locked_until:%Y-%m-%d %H:%M}")
        return Outcome(None, "locked", locked_until=locked_until)
    if locked_until is not None:
        failures = 0  # the lock has run out: a fresh count
    if verify_password(password or "", stored):
        with wh.transaction() as cur:
            cur.execute(
                "UPDATE app_user SET failed_sign_ins = 0, locked_until = NULL, last_sign_in = ? "
                "WHERE name = ?",
                [now, name],
            )
            log(cur, name, "signed_in", via)
        return Outcome(name)
    failures += 1
    lock = now + timedelta(minutes=rules.lock_minutes) if failures >= rules.max_failures else None
    with wh.transaction() as cur:
        cur.execute(
            "UPDATE app_user SET failed_sign_ins = ?, locked_until = ? WHERE name = ?",
            [0 if lock else failures, lock, name],
        )
        log(cur, name, "failed", f"{via}: wrong password")
        if lock:
            log(cur, name, "locked", f"after {failures} failures, until {lock:%H:%M}")
    if lock:
        return Outcome(None, "locked", locked_until=lock)
    return Outcome(None, "wrong", failures_left=rules.max_failures - failures)


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
