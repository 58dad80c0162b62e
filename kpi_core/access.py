"""Users, roles and scopes. Every read in the core takes a `Scope` and returns only rows inside it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from kpi_core.errors import ScopeError

ROLES = ("viewer", "head", "analyst", "admin")

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
            raise ScopeError(f"Org unit {code or unit_id} is outside your scope.")

    def filter(self, unit_ids: Iterable[int]) -> list[int]:
        return [u for u in unit_ids if self.allows(u)]


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
