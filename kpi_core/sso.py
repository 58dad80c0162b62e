"""Single sign-on: which KPI Monitor user an identity from the company's identity provider is.

Streamlit's `st.login` does the OpenID Connect sign-in (configured in `[auth]` of
.streamlit/secrets.toml); this module maps the identity it returns to a user, in this order:

1. a user whose e-mail (set on the Admin page) or name equals the identity's e-mail;
2. otherwise the identity's groups, mapped in `[sso.groups]`: the first group listed there
   that the identity belongs to gives the role and scope of a user created for it:

       [sso]
       groups_claim = "groups"            # the claim that lists the identity's groups
       [sso.groups]
       "kpi-admins" = { role = "admin" }
       "sales-managers" = { role = "head", scope = ["SALES"] }

3. otherwise the sign-in is refused with a message saying what an admin must do.

An identity without an e-mail, or whose e-mail the provider marks unverified
(`email_verified = false`), is refused: the e-mail is what ties it to a user.

Users created from groups are named after their e-mail (cleaned up to the Admin page's rule for
user names if need be), have no password (they can only sign in through the provider) and are
managed on the Admin page like any other; their creation is audited by 'sso'.
"""

from __future__ import annotations

import re
from datetime import datetime

from kpi_core import audit, settings
from kpi_core.access import ROLE_WORDS, ROLES
from kpi_core.errors import KpiError
from kpi_core.messages import Items, Message
from kpi_core.warehouse import Warehouse

# How [sso.groups] is written, for the messages that say it was written wrong.
EXAMPLE_TABLE = '"group" = { role = "...", scope = [...] }'
EXAMPLE_RULE = '{ role = "head", scope = ["SALES"] }'


class SsoError(KpiError):
    """The identity cannot be mapped to a user; the message says what to do."""


def _groups(claims: dict, claim: str) -> list[str]:
    value = claims.get(claim)
    if isinstance(value, str):
        return [g for g in re.split(r"[,\s]+", value) if g]
    if isinstance(value, list | tuple):
        return [str(g) for g in value]
    return []


def _group_rule(groups: list[str], conf: dict) -> tuple[str, str, list[str]] | None:
    rules = conf.get("groups", {})
    if not isinstance(rules, dict):
        raise SsoError(Message("sso_groups_not_table", example=EXAMPLE_TABLE))
    for group, rule in rules.items():
        if group not in groups:
            continue
        if not isinstance(rule, dict):
            raise SsoError(Message("sso_group_not_table", group=group, example=EXAMPLE_RULE))
        role = rule.get("role")
        scope = rule.get("scope", [])
        scope = [scope] if isinstance(scope, str) else list(scope)  # "SALES" is one unit
        scope = [str(c).strip() for c in scope if str(c).strip()]
        if role not in ROLES:
            raise SsoError(
                Message("sso_bad_role", group=group, role=repr(role),
                        roles=Items(ROLES, commas=True))
            )  # fmt: skip
        if role != "admin" and not scope:
            raise SsoError(Message("sso_needs_scope", group=group, role=Message(ROLE_WORDS[role])))
        return group, role, scope
    return None


def _new_name(wh: Warehouse, email: str) -> str:
    """A user name for a new identity: the e-mail itself when it is a valid, free user name
    (the Admin page's rule), else a cleaned-up and numbered form of it."""
    base = re.sub(r"[^A-Za-z0-9_.@-]", "_", email).lstrip("_.@-")[:60] or "sso_user"
    name, n = base, 1
    while wh.one("SELECT 1 FROM app_user WHERE lower(name) = lower(?)", [name]):
        n += 1
        name = f"{base[:60]}-{n}"
    return name


def resolve(wh: Warehouse, claims: dict, conf: dict | None = None) -> str:
    """The user name for an identity's claims; creates a user from a group rule if need be."""
    conf = settings.section("sso") if conf is None else conf
    email = str(claims.get("email") or "").strip()
    if not email:
        raise SsoError(Message("sso_no_email"))
    if claims.get("email_verified") in (False, "false"):
        raise SsoError(Message("sso_unverified", email=email))
    row = wh.one(
        "SELECT name FROM app_user WHERE lower(email) = lower(?) OR lower(name) = lower(?) "
        "ORDER BY lower(email) = lower(?) DESC LIMIT 1",
        [email, email, email],
    )
    if row:
        return row[0]
    claim = conf.get("groups_claim", "groups")
    rule = _group_rule(_groups(claims, str(claim)), conf)
    if rule is None:
        raise SsoError(Message("sso_no_user", email=email))
    group, role, scope = rule
    known = {r[0] for r in wh.rows("SELECT code FROM org_unit")}
    unknown = [c for c in scope if c not in known]
    if unknown:
        raise SsoError(Message("sso_unknown_units", group=group, units=Items(unknown, commas=True)))
    name = _new_name(wh, email)
    display = str(claims.get("name") or email).strip() or email
    now = datetime.now()
    try:
        with wh.transaction() as cur:
            cur.execute(
                "INSERT INTO app_user (name, display_name, role, scope, email) "
                "VALUES (?, ?, ?, ?, ?)",
                [name, display, role, scope, email],
            )
            changes = (("created", role), ("display_name", display),
                       ("scope", ",".join(scope)), ("email", email))  # fmt: skip
            for field, value in changes:
                audit.record(
                    cur, changed_at=now, changed_by="sso", entity="user", key=name,
                    field=field, new=value, reason=f"group {group}",
                )  # fmt: skip
    except Exception:
        # Another session signing the same identity in created the user a moment ago.
        row = wh.one("SELECT name FROM app_user WHERE lower(email) = lower(?)", [email])
        if row:
            return row[0]
        raise
    return name
