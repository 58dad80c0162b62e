"""People: one name for one person on every surface.

A person is named in several places: the author of a comment, the owner of an action, a KPI's
owner in the library, the owner of an alert. Where the person has an account, the reference is
(or resolves to) the user: it is shown as the user's display name ("王磊 Wang Lei"), never as
the user id ("head_sales") nor as the library's free text ("王磊（销售总监）"). Where the person
has no account, free text stays what it is.

A reference resolves to a user by, in this order:
- the user id itself (what the app stores when it knows the user);
- the display name, ignoring case and spacing;
- the person's name without a role in brackets ("王磊（销售总监）", "Wang Lei (Sales)") equal
  to the display name or to one of its Chinese or Latin parts ("王磊", "Wang Lei").
A text that fits two users is ambiguous and stays free text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import duckdb

from kpi_core.access import ANSWERING_ROLES
from kpi_core.catalog import Catalog
from kpi_core.warehouse import Warehouse

# A role in brackets after the name: 王磊（销售总监）, Wang Lei (Sales Director).
_ROLE = re.compile(r"\s*[（(][^（()）]*[)）]\s*$")
_CJK_RUN = re.compile(r"[\u3400-\u9fff·]+")
_SPACES = re.compile(r"\s+")
# Several users named in one reference (the analysts of a scope): ids joined by commas.
SEPARATOR = ","


def _norm(text: str) -> str:
    return _SPACES.sub(" ", text).strip().casefold()


def _keys(display: str) -> set[str]:
    """The texts a display name is known by: itself, its Chinese runs, its Latin rest."""
    keys = {_norm(display)}
    keys.update(_norm(run) for run in _CJK_RUN.findall(display))
    latin = _norm(_CJK_RUN.sub(" ", display))
    if latin:
        keys.add(latin)
    return {k for k in keys if k}


@dataclass(frozen=True)
class People:
    """Who has an account, by user id: their display name and role."""

    display: dict[str, str] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)
    scopes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _by_text: dict[str, str | None] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, users: list[tuple[str, str | None, str, list[str] | None]]) -> People:
        """From (user id, display name, role, scope codes) rows."""
        display = {name: (shown or "").strip() or name for name, shown, _, _ in users}
        by_text: dict[str, str | None] = {}
        for name, shown in display.items():
            for key in _keys(shown):
                # Two users known by the same text: it names neither.
                by_text[key] = name if by_text.get(key, name) == name else None
        return cls(
            display,
            {name: role for name, _, role, _ in users},
            {name: tuple(scope or ()) for name, _, _, scope in users},
            by_text,
        )

    def user_of(self, ref: str | None) -> str | None:
        """The user id a reference names, or None for free text (and for nothing)."""
        if ref is None or not str(ref).strip():
            return None
        ref = str(ref).strip()
        if ref in self.display:
            return ref
        text = _norm(ref)
        if text in self._by_text:
            return self._by_text[text]
        bare = _norm(_ROLE.sub("", ref))
        return self._by_text.get(bare) if bare and bare != text else None

    def canonical(self, ref: str | None) -> str | None:
        """What to store for a reference: the user id where it names a user, else the text."""
        if ref is None or not str(ref).strip():
            return None
        return self.user_of(ref) or str(ref).strip()

    def name(self, ref: str | None) -> str | None:
        """How a reference is shown: the user's display name, or the free text as it is.
        Several user ids joined by commas are shown as their display names."""
        if ref is None or not str(ref).strip():
            return None
        ref = str(ref).strip()
        user = self.user_of(ref)
        if user is not None:
            return self.display[user]
        parts = [p.strip() for p in ref.split(SEPARATOR)]
        if len(parts) > 1 and all(p in self.display for p in parts):
            return ", ".join(self.display[p] for p in parts)
        return ref

    def answering_for(self, cat: Catalog) -> dict[int, str]:
        """Who answers for each unit when nothing names a person (a stale-data alert): the
        department head whose scope is nearest above the unit; where there is none, the analysts
        whose scope is nearest above it (user ids, joined by commas)."""
        out: dict[int, str] = {}
        for role in ANSWERING_ROLES:
            best: dict[int, tuple[int, list[str]]] = {}
            for name in sorted(self.display):
                if self.roles.get(name) != role:
                    continue
                for code in self.scopes.get(name, ()):
                    root = cat.unit_by_code.get(code)
                    if root is None:
                        continue
                    depth = len(cat.ancestors(root.id))
                    for u in cat.descendants(root.id):
                        if u not in best or best[u][0] < depth:
                            best[u] = (depth, [name])
                        elif best[u][0] == depth and name not in best[u][1]:
                            best[u][1].append(name)
            for u, (_, names) in best.items():
                out.setdefault(u, SEPARATOR.join(names))
        return out


_USERS = "SELECT name, display_name, role, scope FROM app_user ORDER BY name"


def load(source: Warehouse | duckdb.DuckDBPyConnection) -> People:
    """Every user of the warehouse (or of the transaction `source` is a cursor of)."""
    rows = (
        # A warehouse of either engine has `rows`; a cursor has not.
        source.rows(_USERS) if hasattr(source, "rows") else source.execute(_USERS).fetchall()
    )
    return People.of([(name, shown, role, list(scope or [])) for name, shown, role, scope in rows])
