"""The Admin page through AppTest: users, the change log, backup and restore; admins only."""

from kpi_core import auth, backup, users
from kpi_core.access import SYSTEM, verify_password
from kpi_core.warehouse import Warehouse
from tests.apptest import ok, open_page

PAGE = "pages/10_Admin.py"


def _open(own_file, monkeypatch, tmp_path, user="admin", lang="en"):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'[backup]\ndir = "{(tmp_path / "backups").as_posix()}"\nkeep = 2\n')
    monkeypatch.setenv("KPI_SECRETS", str(secrets))
    return open_page(PAGE, own_file, monkeypatch, lang, user)


def test_admin_sees_tabs_adds_a_user_and_makes_a_backup(own_file, monkeypatch, tmp_path):
    at = _open(own_file, monkeypatch, tmp_path)
    assert [t.label for t in at.tabs] == [
        "Users",
        "Kiosk screens",
        "Change log",
        "Backup & restore",
    ]
    assert not at.error, [e.value for e in at.error]

    at.text_input(key="ad_name_new").input("wu.fang")
    at.text_input(key="ad_display_new").input("吴芳 Wu Fang")
    at.selectbox(key="ad_role_new").select("head")
    at.multiselect(key="ad_scope_new").select("SALES")
    at.text_input(key="ad_password_new").input("a-long-password")
    at.button(key="ad_save_new").click().run()
    ok(at)
    assert not at.error, [e.value for e in at.error]
    assert any("wu.fang" in s.value for s in at.success)
    wh = Warehouse(own_file, linger=0)
    row = wh.one("SELECT role, scope, password_hash FROM app_user WHERE name = 'wu.fang'")
    assert (
        row[0] == "head"
        and list(row[1]) == ["SALES"]
        and verify_password("a-long-password", row[2])
    )
    wh.close()
    assert at.session_state["ad_user_pick"] == "wu.fang"  # the new user is picked for editing

    at.button(key="ad_backup_now").click().run()
    ok(at)
    assert not at.error, [e.value for e in at.error]
    made = list((tmp_path / "backups").glob("kpi-backup-*.zip"))
    assert len(made) == 1
    assert backup.verify(made[0]).tables["app_user"]["rows"] == 5
    assert any(made[0].name in s.value for s in at.success)
    assert at.get("download_button")  # the file offered for download

    # Restore it from the list, after the confirmation.
    wh = Warehouse(own_file, linger=0)
    with wh.transaction() as cur:
        cur.execute("DELETE FROM app_user WHERE name = 'wu.fang'")
    wh.close()
    at.selectbox(key="ad_pick_backup").select_index(0).run()
    ok(at)
    assert at.button(key="ad_restore_go").disabled
    assert any("Backup of" in i.value for i in at.info)
    at.checkbox(key="ad_restore_sure").check().run()
    at.button(key="ad_restore_go").click().run()
    ok(at)
    assert not at.error, [e.value for e in at.error]
    assert any("Restored from" in s.value for s in at.success)
    wh = Warehouse(own_file, linger=0)
    assert wh.one("SELECT count(*) FROM app_user WHERE name = 'wu.fang'")[0] == 1
    wh.close()


def test_invalid_user_gets_a_clear_message(own_file, monkeypatch, tmp_path):
    at = _open(own_file, monkeypatch, tmp_path, lang="zh")
    at.text_input(key="ad_name_new").input("bad name")
    at.text_input(key="ad_password_new").input("a-long-password")
    at.button(key="ad_save_new").click().run()
    ok(at)
    # The page is in Chinese, and so is the refusal (it was English before users.py's
    # messages were coded).
    assert any("用户名“bad name”不可用" in e.value for e in at.error), [e.value for e in at.error]


def test_a_head_is_refused(own_file, monkeypatch, tmp_path):
    at = _open(own_file, monkeypatch, tmp_path, user="head_sales")
    assert not at.tabs
    assert any("Only admins" in i.value for i in at.info)
    assert not list(tmp_path.glob("backups/*"))


def test_the_change_log_speaks_the_page_language(own_file, monkeypatch, tmp_path):
    """Field words in the log are labels ("登录", "显示名称"), not the stored codes."""
    wh = Warehouse(own_file, linger=0)
    auth.record(wh, "analyst", "signed_in", "sso")
    users.save_user(
        wh, SYSTEM, "wu.fang", display_name="吴芳", role="viewer", scope=["PROD"],
        password="pw-long-1", create=True,
    )  # fmt: skip
    wh.close()
    at = _open(own_file, monkeypatch, tmp_path, lang="zh")
    ok(at)
    log = next(d.value for d in at.dataframe if "字段" in d.value.columns)
    fields = set(log["字段"])
    assert {"登录", "显示名称", "范围", "密码"} <= fields, fields
    assert not fields & {"signed_in", "display_name", "scope", "password"}
    assert set(log["对象"]) >= {"登录与退出", "用户"}
    assert {"单点登录", "已设置"} <= set(log["新值"])  # how they signed in; a password was set


def test_a_backup_refusal_shows_in_the_page_language(own_file, monkeypatch, tmp_path):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'[backup]\ndir = "{(tmp_path / "backups").as_posix()}"\nkeep = 0\n')
    monkeypatch.setenv("KPI_SECRETS", str(secrets))
    for lang, said in [
        ("zh", "secrets.toml 中的 [backup] keep = 0 有误：必须是 ≥ 1 的整数。"),
        ("en", "[backup] keep = 0 in secrets.toml must be a whole number ≥ 1."),
    ]:
        at = open_page(PAGE, own_file, monkeypatch, lang, "admin")
        ok(at)
        assert [e.value for e in at.error] == [said]
