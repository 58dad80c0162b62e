"""Users, roles and scopes. Every read in the core takes a `Scope` and returns only rows inside it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from kpi_core.errors import ScopeError
from kpi_core.messages import Message
from kpi_core.texts import N_

ROLES = ("viewer", "head", "analyst", "admin")
# Each role's name in messages, as the pages call it ("Department head" / "部门负责人").
ROLE_WORDS = {
    "admin": N_("role_admin"),
    "head": N_("role_head"),
    "analyst": N_("role_analyst"),
    "viewer": N_("role_viewer"),
}
# The role as a refusal names it inside a sentence ("User 'li' (viewer) cannot …"): lower case in
# English, as the command line has always printed it.
ROLE_NAMES = {
    "admin": N_("w_role_admin"),
    "head": N_("w_role_head"),
    "analyst": N_("w_role_analyst"),
    "viewer": N_("w_role_viewer"),
}

# Who may do what, beyond reading inside one's scope (which every role may). This table is the
# one place that names roles for a permission: code asks `can(actor, action)`, and the README's
# "Who may do what" table is checked against it (tests/test_access.py). Each action also holds
# only inside the actor's scope where it touches a unit (`can(actor, action, unit_id)`).
# (DESIGN.md §7: heads own targets, analysts own data.)
ACTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "load_actuals": (("analyst", "admin"), "upload actuals, roll back batches"),
    "publish_months": (("analyst", "admin"), "publish a unit's month or withdraw that"),
    "close_months": (("admin",), "close a month to further actuals and reopen it"),
    "define_sources": (("analyst", "admin"), "define and delete database sources, open the Sources page; read source definition files"),
    "save_profiles": (("head", "analyst", "admin"), "save mapping profiles; read profile definition files"),
    "edit_targets": (("head", "admin"), "change targets and weights (the page or a sheet)"),
    "comment": (("head", "analyst", "admin"), "write comments and actions on a unit's KPIs"),
    "act_on_alerts": (("head", "analyst", "admin"), "acknowledge, close and reopen alerts; run the rules"),
    "edit_alert_rules": (("admin",), "change alert rules"),
    "configure_push": (("admin",), "configure push channels"),
    "read_push_errors": (("admin",), "read what a push receiver answered in full"),
    "edit_library": (("admin",), "change the KPI library and scorecards"),
    "manage_users": (("admin",), "open the Admin page: users, their sessions, the audit log"),
    "manage_backups": (("admin",), "back up and restore the warehouse"),
    "manage_screens": (("admin",), "set up big-screen kiosks, open the Big screen page"),
}  # fmt: skip

# Who answers for a unit when nothing names a person (a stale-data alert), first role first.
ANSWERING_ROLES = ("head", "analyst")

# scrypt parameters: memory-hard, ~50 ms per check on this class of machine.
_N, _R, _P = 2**14, 8, 1


@dataclass(frozen=True)
class Scope:
    """The org units a caller may see: the given roots and all their descendants."""

    unit_ids: frozenset[int]
    everything: bool = False

    @classmethod
    def all(cls) -> Scope:
        return cls(frozenset(), everything=True)

    def allows(self, unit_id: int) -> bool:
        return self.everything or unit_id in self.unit_ids

    def check(self, unit_id: int, code: str = "") -> None:
        if not self.allows(unit_id):
            raise ScopeError(Message("ac_err_outside_scope", unit=code or unit_id))

    def filter(self, unit_ids: Iterable[int]) -> list[int]:
        return [u for u in unit_ids if self.allows(u)]


@dataclass(frozen=True)
class Actor:
    """Who is acting and what they may see."""

    name: str
    role: str
    scope: Scope


# Acting with full access: the demo's loader, the command line on a warehouse without users.
SYSTEM = Actor("system", "admin", Scope.all())


class Acting(Protocol):
    """What a permission check needs of the caller (an Actor)."""

    @property
    def role(self) -> str: ...

    @property
    def scope(self) -> Scope: ...


def roles_for(action: str) -> tuple[str, ...]:
    """The roles that may do `action`; an unknown action is a programming error."""
    try:
        return ACTIONS[action][0]
    except KeyError:
        raise ValueError(f"Unknown action '{action}' — add it to access.ACTIONS.") from None


def can(actor: Acting, action: str, unit: int | None = None) -> bool:
    """Whether `actor`'s role may do `action` and, given a unit id, whether that unit is inside
    their scope as well."""
    return actor.role in roles_for(action) and (unit is None or actor.scope.allows(unit))


@dataclass(frozen=True)
class User:
    name: str
    display_name: str
    role: str
    scope_codes: tuple[str, ...]

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, stored: str | None) -> bool:
    if not stored or not stored.startswith("scrypt$"):
        return False
    _, n, r, p, salt, digest = stored.split("$")
    expected = base64.b64decode(digest)
    actual = hashlib.scrypt(
        password.encode(),
        salt=base64.b64decode(salt),
        n=int(n),
        r=int(r),
        p=int(p),
        dklen=len(expected),
    )
    return hmac.compare_digest(actual, expected)
