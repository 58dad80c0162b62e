"""`access.can`: one table says which roles may do what; scope is checked on top of it."""

import re
from pathlib import Path

import pytest

from kpi_core import access
from kpi_core.access import Actor, Scope

ROOT = Path(__file__).resolve().parent.parent

# What each role could do before the checks moved into one table (the tuples they replaced).
BEFORE = {
    "load_actuals": {"analyst", "admin"},
    "publish_months": {"analyst", "admin"},
    "close_months": {"admin"},
    "define_sources": {"analyst", "admin"},
    "save_profiles": {"head", "analyst", "admin"},
    "edit_targets": {"head", "admin"},
    "comment": {"head", "analyst", "admin"},
    "act_on_alerts": {"head", "analyst", "admin"},
    "edit_alert_rules": {"admin"},
    "configure_push": {"admin"},
    "read_push_errors": {"admin"},
    "edit_library": {"admin"},
    "manage_users": {"admin"},
    "manage_backups": {"admin"},
    "manage_screens": {"admin"},
}


@pytest.mark.parametrize("action", sorted(BEFORE))
@pytest.mark.parametrize("role", access.ROLES)
def test_each_role_may_do_what_it_could_before(role, action):
    assert access.can(Actor("x", role, Scope.all()), action) == (role in BEFORE[action])


def test_every_action_is_listed():
    assert set(access.ACTIONS) == set(BEFORE)
    for roles, what in access.ACTIONS.values():
        assert set(roles) <= set(access.ROLES) and what


def test_a_unit_outside_the_scope_is_refused_even_to_the_right_role():
    head = Actor("h", "head", Scope(frozenset({7, 8})))
    assert access.can(head, "edit_targets", 7)
    assert not access.can(head, "edit_targets", 9)
    assert access.can(head, "edit_targets")  # the role question alone
    viewer = Actor("v", "viewer", Scope.all())
    assert not access.can(viewer, "edit_targets", 7)


def test_an_unknown_action_is_an_error_not_a_no():
    with pytest.raises(ValueError, match="Unknown action 'edit_target'"):
        access.can(Actor("a", "admin", Scope.all()), "edit_target")


def readme_table() -> str:
    lines = [
        "| Action | " + " | ".join(access.ROLES) + " | What it covers |",
        "|---|" + "---|" * len(access.ROLES) + "---|",
    ]
    for action, (roles, what) in access.ACTIONS.items():
        marks = " | ".join("✓" if r in roles else "" for r in access.ROLES)
        lines.append(f"| `{action}` | {marks} | {what} |")
    return "\n".join(lines)


def test_the_readme_table_is_the_access_table():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"^\| Action \|.*?(?=\n\n)", readme, re.M | re.S)
    assert found, "README.md has no 'Who may do what' table; paste:\n" + readme_table()
    assert found.group(0) == readme_table(), "README.md's table is stale; paste:\n" + readme_table()
