"""User management: validation, the last admin kept, and an audit trail without passwords."""

import pytest

from kpi_core import access, service, users
from kpi_core.access import Scope, verify_password
from kpi_core.catalog import load_user
from kpi_core.errors import NotFoundError, ScopeError

BOTH_ENGINES = True  # the file and PostgreSQL (tests/conftest.py)

ADMIN = access.Actor("admin", "admin", Scope.all())


def test_add_edit_delete_with_audit(demo_wh):
    users.save_user(
        demo_wh, ADMIN, "li.wei", display_name="李伟 Li Wei", role="head", scope=["SALES"],
        password="long-enough-1", create=True,
    )  # fmt: skip
    u = load_user(demo_wh, "li.wei")
    assert (u.role, u.scope_codes, u.display_name) == ("head", ("SALES",), "李伟 Li Wei")
    stored = demo_wh.one("SELECT password_hash FROM app_user WHERE name = 'li.wei'")[0]
    assert verify_password("long-enough-1", stored) and "long-enough-1" not in stored
    listed = {x.name: x for x in users.list_users(demo_wh, ADMIN)}
    assert listed["li.wei"].has_password and not hasattr(listed["li.wei"], "password_hash")
    assert "password_hash" not in users.users_frame(demo_wh, ADMIN).columns

    # Without a new password the old one stays.
    users.save_user(
        demo_wh, ADMIN, "li.wei", display_name="李伟 Li Wei", role="analyst",
        scope=["SALES", "PROD"],
    )  # fmt: skip
    assert demo_wh.one("SELECT password_hash FROM app_user WHERE name = 'li.wei'")[0] == stored
    users.save_user(
        demo_wh, ADMIN, "li.wei", display_name="Li", role="analyst", scope=["PROD", "SALES"],
        password="another-pass",
    )  # fmt: skip
    new_hash = demo_wh.one("SELECT password_hash FROM app_user WHERE name = 'li.wei'")[0]
    assert verify_password("another-pass", new_hash)
    users.delete_user(demo_wh, ADMIN, "li.wei")
    with pytest.raises(NotFoundError):
        load_user(demo_wh, "li.wei")

    log = demo_wh.df(
        "SELECT changed_by, field, old, new FROM audit WHERE entity = 'user' AND key = 'li.wei' "
        "ORDER BY changed_at, field"
    )
    fields = list(log["field"])
    assert fields.count("password") == 2 and "created" in fields and "deleted" in fields
    assert {"role", "scope", "display_name"} <= set(fields)
    assert set(log["changed_by"]) == {"admin"}
    role_change = log[(log["field"] == "role") & log["old"].notna()].iloc[0]
    assert (role_change["old"], role_change["new"]) == ("head", "analyst")
    text = log.astype(str).to_csv()
    for secret in (stored, new_hash, "long-enough-1", "another-pass", "scrypt$"):
        assert secret not in text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "bad name"}, "not allowed"),
        ({"name": ""}, "not allowed"),
        ({"role": "boss"}, "Role 'boss' does not exist"),
        ({"scope": ["NOPE"]}, "Unknown org unit"),
        ({"scope": []}, "at least one org unit"),
        ({"password": "short"}, "at least 8"),
        ({"password": None}, "password"),
        ({"name": "admin"}, "already a user"),
    ],
)
def test_validation_refuses_and_writes_nothing(demo_wh, kwargs, message):
    args = {"name": "new_user", "display_name": "", "role": "viewer", "scope": ["SALES"],
            "password": "good-password"}  # fmt: skip
    args.update(kwargs)
    before = demo_wh.rows("SELECT * FROM app_user ORDER BY name")
    audit_rows = demo_wh.one("SELECT count(*) FROM audit")[0]
    with pytest.raises(users.UserError, match=message):
        users.save_user(demo_wh, ADMIN, args.pop("name"), create=True, **args)
    assert demo_wh.rows("SELECT * FROM app_user ORDER BY name") == before
    assert demo_wh.one("SELECT count(*) FROM audit")[0] == audit_rows


def test_last_admin_and_self_are_kept(demo_wh):
    with pytest.raises(users.UserError, match="yourself"):
        users.delete_user(demo_wh, ADMIN, "admin")
    other = access.Actor("root2", "admin", Scope.all())
    with pytest.raises(users.UserError, match="last admin"):
        users.delete_user(demo_wh, other, "admin")
    with pytest.raises(users.UserError, match="last admin"):
        users.save_user(demo_wh, ADMIN, "admin", display_name="", role="viewer", scope=["SALES"])
    users.save_user(
        demo_wh, ADMIN, "root2", display_name="", role="admin", scope=[], password="12345678",
        create=True,
    )  # fmt: skip
    users.delete_user(demo_wh, other, "admin")  # now there is another admin
    with pytest.raises(NotFoundError):
        users.save_user(demo_wh, other, "ghost", display_name="", role="viewer", scope=["SALES"])


def test_only_admins_manage_users(demo_wh):
    head = service.actor(demo_wh, "head_sales")
    with pytest.raises(ScopeError):
        users.list_users(demo_wh, head)
    with pytest.raises(ScopeError):
        users.save_user(
            demo_wh, head, "x", display_name="", role="viewer", scope=["SALES"],
            password="12345678", create=True,
        )  # fmt: skip
    with pytest.raises(ScopeError):
        users.delete_user(demo_wh, head, "viewer_prod")


@pytest.mark.parametrize(
    ("kwargs", "en", "zh"),
    [
        ({"scope": []},
         "A user with the role Department head needs at least one org unit in their scope "
         "(admins see all).",
         "角色为部门负责人的用户需要在权限范围内至少有一个组织（管理员可查看全部）。"),
        ({"scope": ["NOPE", "ZZZ"]},
         "Unknown org unit(s) in the scope: NOPE, ZZZ.", "权限范围中有未知的组织：NOPE、ZZZ。"),
        ({"name": "admin"}, "There is already a user 'admin'.", "已有用户“admin”。"),
    ],
)  # fmt: skip
def test_a_refusal_reads_in_either_language(demo_wh, kwargs, en, zh):
    """The role is named as the pages name it, in the reader's language."""
    args = {"name": "new_user", "display_name": "", "role": "head", "scope": ["SALES"],
            "password": "good-password"}  # fmt: skip
    args.update(kwargs)
    with pytest.raises(users.UserError) as refused:
        users.save_user(demo_wh, ADMIN, args.pop("name"), create=True, **args)
    assert (str(refused.value), refused.value.text("zh")) == (en, zh)


def test_whether_anyone_may_sign_in(warehouse):
    """Without any user everyone has full access (the pages and the command line ask this)."""
    assert users.anyone(warehouse) is False
    users.save_user(
        warehouse, ADMIN, "first", display_name="First", role="admin", scope=[],
        password="long-enough-1", create=True,
    )  # fmt: skip
    assert users.anyone(warehouse) is True
