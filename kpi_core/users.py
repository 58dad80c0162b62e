"""User management for admins: names, roles, scopes and passwords, every change audited.

Passwords are stored only as salted scrypt hashes (`access.hash_password`); the audit log says
that a password was set, never what it or its hash is, and no listing returns the hash.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from kpi_core import audit, sessions
from kpi_core.access import ROLE_WORDS, ROLES, Actor, can, hash_password
from kpi_core.errors import KpiError, NotFoundError, ScopeError
from kpi_core.messages import Items, Message
from kpi_core.warehouse import Warehouse

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
MIN_PASSWORD = 8


class UserError(KpiError):
    """A user's settings were refused; the message says which and how to fix it."""


@dataclass(frozen=True)
class UserInfo:
    name: str
    display_name: str
    role: str
    scope: tuple[str, ...]
    has_password: bool
    email: str = ""
    locked_until: datetime | None = None
    last_sign_in: datetime | None = None


def _admin(who: Actor) -> None:
    if not can(who, "manage_users"):
        raise ScopeError(Message("us_admins_only"))


def anyone(wh: Warehouse) -> bool:
    """Whether the warehouse has any user. Without one (set up by hand) there is no sign-in
    and everyone has full access."""
    return wh.one("SELECT count(*) FROM app_user")[0] > 0


def list_users(wh: Warehouse, who: Actor) -> list[UserInfo]:
    """Every user, by name, without password hashes (only whether one is set)."""
    _admin(who)
    return [
        UserInfo(r[0], r[1] or r[0], r[2], tuple(r[3]), bool(r[4]), r[5] or "", r[6], r[7])
        for r in wh.rows(
            "SELECT name, display_name, role, scope, password_hash IS NOT NULL, email, "
            "CASE WHEN locked_until > now() THEN locked_until END, last_sign_in "
            "FROM app_user ORDER BY name"
        )
    ]


def users_frame(wh: Warehouse, who: Actor) -> pd.DataFrame:
    rows = [
        {"name": u.name, "display_name": u.display_name, "role": u.role,
         "scope": ", ".join(u.scope), "email": u.email, "password": u.has_password,
         "locked_until": u.locked_until, "last_sign_in": u.last_sign_in}
        for u in list_users(wh, who)
    ]  # fmt: skip
    columns = ["name", "display_name", "role", "scope", "email", "password", "locked_until",
               "last_sign_in"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def _check(
    wh: Warehouse, name: str, role: str, scope: list[str], password: str | None, email: str
) -> None:
    if not NAME.fullmatch(name or ""):
        raise UserError(Message("us_bad_name", name=name))
    if role not in ROLES:
        raise UserError(Message("us_bad_role", role=role, roles=Items(ROLES, commas=True)))
    known = {r[0] for r in wh.rows("SELECT code FROM org_unit")}
    unknown = [c for c in scope if c not in known]
    if unknown:
        raise UserError(Message("us_unknown_units", units=Items(unknown, commas=True)))
    if role != "admin" and not scope:
        raise UserError(Message("us_needs_scope", role=Message(ROLE_WORDS[role])))
    if email and not EMAIL.fullmatch(email):
        raise UserError(Message("us_bad_email", email=email))
    if email and wh.one(
        "SELECT name FROM app_user WHERE lower(email) = lower(?) AND name <> ?", [email, name]
    ):
        raise UserError(Message("us_email_taken", email=email))
    if password is not None and len(password) < MIN_PASSWORD:
        raise UserError(Message("us_short_password", n=MIN_PASSWORD))


def _other_admins(cur, name: str) -> int:
    return cur.execute(
        "SELECT count(*) FROM app_user WHERE role = 'admin' AND name <> ?", [name]
    ).fetchone()[0]


def save_user(
    wh: Warehouse,
    who: Actor,
    name: str,
    *,
    display_name: str,
    role: str,
    scope: list[str] | tuple[str, ...],
    password: str | None = None,
    email: str = "",
    create: bool = False,
) -> None:
    """Add a user (`create`) or change one. A new user needs a password; for an existing one,
    None keeps theirs."""
    _admin(who)
    name = (name or "").strip()
    scope = sorted(dict.fromkeys(c.strip() for c in scope if c and c.strip()))
    if password == "":
        password = None
    email = (email or "").strip()
    _check(wh, name, role, scope, password, email)
    if create and password is None:
        raise UserError(Message("us_needs_password", name=name))
    display_name = (display_name or "").strip() or name
    now = datetime.now()
    with wh.transaction() as cur:
        old = cur.execute(
            "SELECT display_name, role, scope, email FROM app_user WHERE name = ?", [name]
        ).fetchone()
        if create and old is not None:
            raise UserError(Message("us_exists", name=name))
        if not create and old is None:
            raise NotFoundError(Message("us_no_user", name=name))
        if (
            old is not None
            and old[1] == "admin"
            and role != "admin"
            and not _other_admins(cur, name)
        ):
            raise UserError(Message("us_last_admin_role", name=name))
        changes: list[tuple[str, str | None, str | None]] = []
        if old is None:
            cur.execute(
                "INSERT INTO app_user (name, display_name, role, scope, password_hash, email) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [name, display_name, role, scope, hash_password(password), email or None],
            )
            changes = [("created", None, role), ("display_name", None, display_name),
                       ("scope", None, ",".join(scope)), ("email", None, email or None),
                       ("password", None, "set")]  # fmt: skip
        else:
            cur.execute(
                "UPDATE app_user SET display_name = ?, role = ?, scope = ?, email = ? "
                "WHERE name = ?",
                [display_name, role, scope, email or None, name],
            )
            before = {"display_name": old[0] or name, "role": old[1], "scope": ",".join(old[2]),
                      "email": old[3] or ""}  # fmt: skip
            after = {"display_name": display_name, "role": role, "scope": ",".join(scope),
                     "email": email}  # fmt: skip
            changes = [(f, before[f], after[f]) for f in before if before[f] != after[f]]
            if password is not None:
                cur.execute(
                    "UPDATE app_user SET password_hash = ? WHERE name = ?",
                    [hash_password(password), name],
                )
                changes.append(("password", None, "changed"))
                # A new password is often set because the old one leaked: whoever signed in
                # with it is signed out.
                sessions.revoke_in(cur, name, now=now, by=who.name, why="password")
        for fld, was, now_value in changes:
            audit.record(
                cur, changed_at=now, changed_by=who.name, entity="user", key=name,
                field=fld, old=was, new=now_value,
            )  # fmt: skip


def delete_user(wh: Warehouse, who: Actor, name: str) -> None:
    """Remove a user; not yourself, and never the last admin."""
    _admin(who)
    if name == who.name:
        raise UserError(Message("us_not_yourself"))
    with wh.transaction() as cur:
        old = cur.execute("SELECT role FROM app_user WHERE name = ?", [name]).fetchone()
        if old is None:
            raise NotFoundError(Message("us_no_user", name=name))
        if old[0] == "admin" and not _other_admins(cur, name):
            raise UserError(Message("us_last_admin_delete", name=name))
        now = datetime.now()
        cur.execute("DELETE FROM app_user WHERE name = ?", [name])
        audit.record(
            cur, changed_at=now, changed_by=who.name, entity="user", key=name,
            field="deleted", old=old[0],
        )  # fmt: skip
        # Ended with the user, so a user added later under the same name starts with none.
        sessions.revoke_in(cur, name, now=now, by=who.name, why="deleted")


def unlock(wh: Warehouse, who: Actor, name: str) -> None:
    """Lift a lock-out before it runs out (the user asked an admin)."""
    _admin(who)
    with wh.transaction() as cur:
        if cur.execute("SELECT 1 FROM app_user WHERE name = ?", [name]).fetchone() is None:
            raise NotFoundError(Message("us_no_user", name=name))
        cur.execute(
            "UPDATE app_user SET failed_sign_ins = 0, locked_until = NULL WHERE name = ?", [name]
        )
        audit.record(
            cur, changed_at=datetime.now(), changed_by=who.name, entity="user", key=name,
            field="unlocked",
        )  # fmt: skip
