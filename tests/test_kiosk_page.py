"""Kiosk screens through AppTest: the wall opened with a token (and refused with a wrong, weak
or revoked one), and the Admin page's "Kiosk screens" tab creating and revoking them. The first
four tests are the attacks of issue 18 item 11 as they were found; each failed on the code
before kiosk screens were managed by admins."""

import secrets
from datetime import datetime

from streamlit.testing.v1 import AppTest

from kpi_core import access, i18n, kiosk
from kpi_core.warehouse import Warehouse
from tests.apptest import ROOT, ok, open_page

WEAK = "a" * 16
NOW = datetime(2026, 11, 3, 9, 0)


def _wall_app(own_file, monkeypatch, tmp_path, token: str, secrets_text: str = "", lang="en"):
    monkeypatch.setenv("KPI_WAREHOUSE", str(own_file))
    path = tmp_path / "secrets.toml"
    path.write_text(secrets_text, encoding="utf-8")
    monkeypatch.setenv("KPI_SECRETS", str(path))
    at = AppTest.from_file(str(ROOT / "pages/9_Big_Screen.py"), default_timeout=60)
    if lang:
        at.query_params["lang"] = lang
    at.query_params["token"] = token
    at.run()
    ok(at)
    return at


def _html(at: AppTest) -> str:
    return "".join(h.proto.body for h in at.get("html"))


def _wall(own_file, monkeypatch, tmp_path, token: str, secrets_text: str = "") -> str:
    return _html(_wall_app(own_file, monkeypatch, tmp_path, token, secrets_text))


def _screen(own_file, **kw):
    wh = Warehouse(own_file, linger=0)
    try:
        args = {"name": "wall", "units": ["GROUP"], **kw}
        return kiosk.create(wh, access.SYSTEM, now=NOW, **args)
    finally:
        wh.close()


def test_a_weak_token_opens_nothing(own_file, monkeypatch, tmp_path):
    """A 16×a token in the old `[kiosk]` section of secrets.toml opened the wall."""
    html = _wall(own_file, monkeypatch, tmp_path, WEAK,
                 f'[kiosk.wall]\ntoken = "{WEAK}"\nunits = ["GROUP"]\n')  # fmt: skip
    assert "bs-slide-body" not in html
    assert i18n.t("bs_not_set_up", "en") in html


def test_wrong_tokens_are_audited_never_in_clear(own_file, monkeypatch, tmp_path):
    guesses = ["wrong-token-0123456789abcdef", secrets.token_urlsafe(32)]
    for guess in guesses:
        assert "bs-slide-body" not in _wall(own_file, monkeypatch, tmp_path, guess)
    wh = Warehouse(own_file, linger=0)
    rows = wh.rows("SELECT * FROM audit WHERE entity = 'kiosk'")
    wh.close()
    assert len(rows) == 2, rows
    cells = " ".join(str(c) for r in rows for c in r)
    assert not any(g in cells for g in guesses)


def test_wrong_tokens_are_throttled(own_file, monkeypatch, tmp_path):
    seen = [_wall(own_file, monkeypatch, tmp_path, secrets.token_urlsafe(32)) for _ in range(12)]
    assert "Too many wrong tokens" not in seen[9]
    assert "Too many wrong tokens" in seen[10] and "Too many wrong tokens" in seen[11]
    wh = Warehouse(own_file, linger=0)
    wrong = wh.one("SELECT count(*) FROM audit WHERE entity = 'kiosk' AND field = 'wrong_token'")
    wh.close()
    assert wrong[0] == 10  # refused without checking (and without a row each) once throttled


def test_an_admin_gets_a_kiosk_url_from_the_admin_page(own_file, monkeypatch, tmp_path):
    monkeypatch.setenv("KPI_SECRETS", str(tmp_path / "none.toml"))
    at = open_page("pages/10_Admin.py", own_file, monkeypatch, "en", "admin")
    assert "Kiosk screens" in [t.label for t in at.tabs]


# --- the wall with a screen's token ------------------------------------------------------------


def test_a_valid_token_shows_data_and_a_revoked_one_the_notice_at_the_next_run(
    own_file, monkeypatch, tmp_path
):
    made = _screen(own_file, units=["SALES"], lang="en")
    at = _wall_app(own_file, monkeypatch, tmp_path, made.token, lang=None)
    html = _html(at)
    assert "bs-slide-body" in html and "Sales" in html  # the screen's language: English
    assert "Production" not in html  # only the screen's units
    wh = Warehouse(own_file, linger=0)
    assert wh.one("SELECT last_seen_at IS NOT NULL, last_seen_from FROM kiosk_screen")[:2] == (
        True, "local",
    )  # fmt: skip
    kiosk.revoke(wh, access.SYSTEM, made.screen.id, datetime.now())
    wh.close()
    at.run()
    ok(at)
    html = _html(at)
    assert "bs-slide-body" not in html and "Sales" not in html
    assert i18n.t("bs_revoked", "en") in html.replace("&#x27;", "'")
    assert i18n.t("bs_revoked", "zh") in html  # both languages: nobody at the wall can switch
    assert made.token not in html


def test_the_screens_settings_apply_and_the_url_only_narrows_its_units(
    own_file, monkeypatch, tmp_path
):
    made = _screen(own_file, units=["SALES"], slides=["freshness"], lang="zh", rotate=600)
    at = _wall_app(own_file, monkeypatch, tmp_path, made.token, lang=None)
    html = _html(at)
    assert 'data-slide="freshness-0"' in html and "数据更新情况" in html
    # ?units= cannot widen a screen to the whole company.
    monkeypatch.setenv("KPI_WAREHOUSE", str(own_file))
    wide = AppTest.from_file(str(ROOT / "pages/9_Big_Screen.py"), default_timeout=60)
    for k, v in {"token": made.token, "units": "GROUP,PROD", "slides": "company"}.items():
        wide.query_params[k] = v
    wide.run()
    ok(wide)
    html = _html(wide)
    assert "销售部" in html and "华创" not in html and "生产部" not in html


def test_a_token_from_the_old_secrets_section_is_not_read(own_file, monkeypatch, tmp_path):
    """The `[kiosk.<name>]` sections are dropped (README: Big screen): even a strong token
    there opens nothing."""
    strong = secrets.token_urlsafe(32)
    html = _wall(own_file, monkeypatch, tmp_path, strong,
                 f'[kiosk.wall]\ntoken = "{strong}"\nunits = ["GROUP"]\n')  # fmt: skip
    assert "bs-slide-body" not in html and i18n.t("bs_not_set_up", "en") in html


# --- the Admin page's tab ----------------------------------------------------------------------


def test_an_admin_creates_a_screen_sees_its_url_once_and_revokes_it(
    own_file, monkeypatch, tmp_path
):
    monkeypatch.setenv("KPI_SECRETS", str(tmp_path / "none.toml"))
    at = open_page("pages/10_Admin.py", own_file, monkeypatch, "en", "admin")
    at.text_input(key="ks_name").input("Lobby 大厅")
    at.multiselect(key="ks_units").select("SALES").select("PROD")
    at.multiselect(key="ks_slides").unselect("matrix")
    at.number_input(key="ks_rotate").set_value(20)
    at.number_input(key="ks_refresh").set_value(30)
    at.selectbox(key="ks_lang").select("en")
    at.button(key="ks_create").click().run()
    ok(at)
    assert not at.error, [e.value for e in at.error]
    assert any("Lobby 大厅" in s.value for s in at.success)
    urls = [c.value for c in at.code if "/Big_Screen?token=" in c.value]
    assert len(urls) == 1
    token = urls[0].split("token=", 1)[1]
    wh = Warehouse(own_file, linger=0)
    got = kiosk.verify(wh, token, datetime.now(), "10.0.0.7")
    assert isinstance(got, kiosk.Screen) and got.name == "Lobby 大厅"
    assert got.units == ("SALES", "PROD") and "matrix" not in got.slides
    assert (got.rotate, got.refresh, got.lang) == (20, 30, "en")
    wh.close()
    listed = next(d.value for d in at.dataframe if "Last seen" in d.value.columns)
    assert list(listed["Name"]) == ["Lobby 大厅"] and list(listed["State"]) == ["active"]

    # Shown once: the next run has no URL, the list says when the wall was last seen.
    at.run()
    ok(at)
    assert not [c for c in at.code if "token=" in c.value]
    assert token not in repr(at.session_state)
    listed = next(d.value for d in at.dataframe if "Last seen" in d.value.columns)
    assert "10.0.0.7" in listed["Last seen"].iloc[0]

    at.selectbox(key="ks_pick").select_index(0).run()
    assert at.button(key="ks_revoke").disabled
    at.checkbox(key="ks_revoke_sure").check().run()
    at.button(key="ks_revoke").click().run()
    ok(at)
    assert not at.error, [e.value for e in at.error]
    assert any("revoked" in s.value for s in at.success)
    listed = next(d.value for d in at.dataframe if "Last seen" in d.value.columns)
    assert listed["State"].iloc[0].startswith("revoked")
    wh = Warehouse(own_file, linger=0)
    assert kiosk.verify(wh, token, datetime.now(), "10.0.0.7") == kiosk.Refusal("revoked")
    fields = [r[0] for r in wh.rows("SELECT field FROM audit WHERE entity = 'kiosk' ORDER BY 1")]
    assert {"created", "revoked"} <= set(fields)
    text = " ".join(str(c) for r in wh.rows("SELECT * FROM audit") for c in r)
    assert token not in text
    wh.close()


def test_a_bad_screen_is_refused_in_the_page_language(own_file, monkeypatch, tmp_path):
    monkeypatch.setenv("KPI_SECRETS", str(tmp_path / "none.toml"))
    at = open_page("pages/10_Admin.py", own_file, monkeypatch, "zh", "admin")
    at.text_input(key="ks_name").input("大厅")
    at.button(key="ks_create").click().run()
    ok(at)
    assert [e.value for e in at.error] == ["请至少选择一个要显示的组织。"]
    assert not [c for c in at.code if "token=" in c.value]


def test_only_admins_see_the_tab(own_file, monkeypatch, tmp_path):
    monkeypatch.setenv("KPI_SECRETS", str(tmp_path / "none.toml"))
    _screen(own_file)
    for user in ("head_sales", "analyst", "viewer_prod"):
        at = open_page("pages/10_Admin.py", own_file, monkeypatch, "en", user)
        assert not at.tabs and not at.get("text_input")
        assert "wall" not in " ".join(str(d.value) for d in at.dataframe)
