"""Single sign-on mapping (kpi_core/sso.py) on a real copy of the demo warehouse."""

from __future__ import annotations

import pytest

from kpi_core import sso
from kpi_core.sso import SsoError

GROUPS = {
    "groups_claim": "groups",
    "groups": {
        "kpi-admins": {"role": "admin"},
        "sales-managers": {"role": "head", "scope": ["SALES"]},
        "prod-viewers": {"role": "viewer", "scope": ["PROD", "QA"]},
    },
}


def run(wh, sql: str) -> None:
    with wh.transaction() as cur:
        cur.execute(sql)


def user(wh, name):
    return wh.one(
        "SELECT name, display_name, role, scope, email FROM app_user WHERE name = ?", [name]
    )


def users(wh) -> int:
    return wh.one("SELECT count(*) FROM app_user")[0]


def test_email_of_a_user_maps_to_that_user_whatever_its_case(demo_wh):
    run(demo_wh, "UPDATE app_user SET email = 'Wang.Lei@Example.com' WHERE name = 'head_sales'")
    before = users(demo_wh)
    claims = {"email": "wang.lei@example.COM", "name": "Wang Lei", "groups": ["kpi-admins"]}
    # The e-mail wins over a group rule: the existing user is used as it is.
    assert sso.resolve(demo_wh, claims, GROUPS) == "head_sales"
    assert users(demo_wh) == before
    assert user(demo_wh, "head_sales")[2] == "head"


def test_a_user_named_as_the_email_is_that_user(demo_wh):
    run(
        demo_wh,
        "INSERT INTO app_user (name, display_name, role, scope) "
        "VALUES ('li.na@example.com', 'Li Na', 'analyst', ['GROUP'])",
    )
    assert sso.resolve(demo_wh, {"email": "Li.Na@example.com"}, {}) == "li.na@example.com"


def test_email_beats_a_name_when_both_match_different_users(demo_wh):
    run(
        demo_wh,
        "INSERT INTO app_user (name, display_name, role, scope) "
        "VALUES ('zhao@example.com', 'Someone else', 'viewer', ['QA'])",
    )
    run(demo_wh, "UPDATE app_user SET email = 'zhao@example.com' WHERE name = 'viewer_prod'")
    assert sso.resolve(demo_wh, {"email": "zhao@example.com"}, {}) == "viewer_prod"


def test_group_rule_creates_a_user_with_its_role_and_scope(demo_wh):
    claims = {
        "email": "Chen.Jie@example.com",
        "name": "陈杰 Chen Jie",
        "groups": ["sales-managers"],
    }
    name = sso.resolve(demo_wh, claims, GROUPS)
    assert name == "Chen.Jie@example.com"
    assert user(demo_wh, name) == (name, "陈杰 Chen Jie", "head", ["SALES"], "Chen.Jie@example.com")
    assert demo_wh.one("SELECT password_hash FROM app_user WHERE name = ?", [name])[0] is None
    log = demo_wh.rows(
        "SELECT changed_by, entity, key, field, new, reason FROM audit "
        "WHERE entity = 'user' AND key = ? ORDER BY field",
        [name],
    )
    assert {(r[0], r[1], r[2], r[5]) for r in log} == {
        ("sso", "user", name, "group sales-managers")
    }
    assert {r[3]: r[4] for r in log} == {
        "created": "head",
        "display_name": "陈杰 Chen Jie",
        "email": "Chen.Jie@example.com",
        "scope": "SALES",
    }
    # The next sign-in finds the user by e-mail: no second user, no second audit.
    assert sso.resolve(demo_wh, {**claims, "groups": []}, GROUPS) == name
    assert demo_wh.one("SELECT count(*) FROM audit WHERE key = ?", [name])[0] == 4


def test_first_group_listed_in_the_settings_wins(demo_wh):
    # The identity lists its groups in another order; the order of [sso.groups] decides.
    claims = {"email": "boss@example.com", "groups": ["prod-viewers", "kpi-admins"]}
    name = sso.resolve(demo_wh, claims, GROUPS)
    assert user(demo_wh, name)[2:4] == ("admin", [])
    claims = {"email": "eve@example.com", "groups": ["prod-viewers", "sales-managers"]}
    assert user(demo_wh, sso.resolve(demo_wh, claims, GROUPS))[2:4] == ("head", ["SALES"])


def test_groups_claim_given_as_a_string_and_under_another_name(demo_wh):
    conf = {**GROUPS, "groups_claim": "roles"}
    claims = {"email": "qa@example.com", "roles": "staff, prod-viewers", "groups": ["kpi-admins"]}
    name = sso.resolve(demo_wh, claims, conf)
    assert user(demo_wh, name)[2:4] == ("viewer", ["PROD", "QA"])
    claims = {"email": "solo@example.com", "roles": "sales-managers"}
    assert user(demo_wh, sso.resolve(demo_wh, claims, conf))[2] == "head"


def test_a_scope_written_as_one_code(demo_wh):
    conf = {"groups": {"hr": {"role": "viewer", "scope": "HR"}}}
    name = sso.resolve(demo_wh, {"email": "hr@example.com", "groups": ["hr"]}, conf)
    assert user(demo_wh, name)[3] == ["HR"]


def test_an_email_that_is_no_valid_user_name_gets_a_cleaned_up_name(demo_wh):
    conf = {"groups": {"hr": {"role": "viewer", "scope": ["HR"]}}}
    name = sso.resolve(demo_wh, {"email": "o'brien+kpi@example.com", "groups": ["hr"]}, conf)
    assert name == "o_brien_kpi@example.com"
    assert user(demo_wh, name)[4] == "o'brien+kpi@example.com"
    assert sso.resolve(demo_wh, {"email": "O'Brien+kpi@example.com"}, conf) == name


def test_unknown_identity_is_refused_with_what_to_do(demo_wh):
    before = users(demo_wh)
    with pytest.raises(SsoError) as exc:
        sso.resolve(demo_wh, {"email": "stranger@example.com", "groups": ["guests"]}, GROUPS)
    message = str(exc.value)
    assert "stranger@example.com has no KPI Monitor user" in message
    assert "Admin page" in message and "[sso.groups]" in message
    assert users(demo_wh) == before
    with pytest.raises(SsoError, match="has no KPI Monitor user"):
        sso.resolve(demo_wh, {"email": "stranger@example.com"}, {})


@pytest.mark.parametrize("claims", [{}, {"email": ""}, {"email": "  "}, {"name": "admin"}])
def test_no_email_claim_is_refused(demo_wh, claims):
    with pytest.raises(SsoError, match="sent no e-mail address.*'email' claim"):
        sso.resolve(demo_wh, {**claims, "groups": ["kpi-admins"]}, GROUPS)


def test_an_unverified_email_is_refused(demo_wh):
    run(demo_wh, "UPDATE app_user SET email = 'admin@example.com' WHERE name = 'admin'")
    with pytest.raises(SsoError, match="has not verified the e-mail admin@example.com"):
        sso.resolve(demo_wh, {"email": "admin@example.com", "email_verified": False}, {})
    assert sso.resolve(demo_wh, {"email": "admin@example.com", "email_verified": True}, {}) == (
        "admin"
    )


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"role": "boss", "scope": ["SALES"]}, "\"staff\" has role 'boss' — use one of viewer"),
        ({"scope": ["SALES"]}, '"staff" has role None'),
        (
            {"role": "head"},
            '"staff" needs a scope \\(org unit codes\\) for the role Department head',
        ),
        ({"role": "viewer", "scope": []}, '"staff" needs a scope'),
        ({"role": "viewer", "scope": ["SALES", "MOON"]}, '"staff" names unknown org unit.*MOON'),
        ("viewer", '"staff" must be a table'),
    ],
)
def test_bad_group_settings_are_refused_naming_the_setting(demo_wh, rule, message):
    before = users(demo_wh)
    with pytest.raises(SsoError, match=r"\[sso\.groups\] " + message):
        sso.resolve(
            demo_wh, {"email": "x@example.com", "groups": ["staff"]}, {"groups": {"staff": rule}}
        )
    assert users(demo_wh) == before


def test_settings_of_groups_not_held_are_not_judged(demo_wh):
    conf = {"groups": {"broken": {"role": "boss"}, "hr": {"role": "viewer", "scope": ["HR"]}}}
    assert sso.resolve(demo_wh, {"email": "h@example.com", "groups": ["hr"]}, conf)


def test_groups_that_are_no_table_are_refused(demo_wh):
    with pytest.raises(SsoError, match=r"\[sso\.groups\] must be a table"):
        sso.resolve(demo_wh, {"email": "x@example.com", "groups": ["a"]}, {"groups": ["a"]})


def test_settings_come_from_the_kpi_secrets_file(demo_wh, tmp_path, monkeypatch):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(
        '[sso]\ngroups_claim = "teams"\n[sso.groups]\n"plant" = { role = "viewer", scope = ["PROD"] }\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("KPI_SECRETS", str(secrets))
    name = sso.resolve(demo_wh, {"email": "plant@example.com", "teams": ["plant"]})
    assert user(demo_wh, name)[2:4] == ("viewer", ["PROD"])


def test_a_refusal_reads_in_the_sign_in_pages_language(demo_wh):
    with pytest.raises(SsoError) as exc:
        sso.resolve(demo_wh, {"email": "stranger@example.com"}, {})
    assert exc.value.text("zh") == (
        "stranger@example.com 没有 KPI 监控用户。管理员可以在“系统管理”页用这个电子邮件添加用户，"
        "或在 [sso.groups] 中映射您所在的某个组。"
    )
    conf = {"groups": {"staff": {"role": "head"}}}
    with pytest.raises(SsoError) as exc:
        sso.resolve(demo_wh, {"email": "new@example.com", "groups": ["staff"]}, conf)
    assert exc.value.text("zh") == (
        '[sso.groups] 中的 "staff" 的角色为部门负责人，需要权限范围（组织代码）。'
    )
