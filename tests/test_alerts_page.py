"""The Alerts page through AppTest on a copy of the demo warehouse: evaluate, acknowledge, answer
an alert with a review action, see it among the actions, close both; viewers read only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from streamlit.testing.v1 import AppTest

from kpi_core import alerts
from kpi_core.warehouse import Warehouse
from tests.apptest import ok, open_page
from tests.conftest import TODAY

PAGE = "pages/8_Alerts.py"


def open_alerts(path, monkeypatch, user: str = "admin", lang: str = "en") -> AppTest:
    return open_page(PAGE, path, monkeypatch, lang, user, timeout=90)


def said(at: AppTest) -> str:
    return "\n".join(str(e.value) for kind in (at.success, at.error, at.info) for e in kind)


def test_evaluate_acknowledge_act_and_close(own_file, monkeypatch):
    at = open_alerts(own_file, monkeypatch, user="head_sales")
    at.button(key="al_run").click().run()
    ok(at)
    assert "Evaluated: " in said(at)
    # The head's list holds the head's units only (the demo's alerts cover the whole company).
    shown = set(at.dataframe[0].value["Unit"])
    assert shown and shown <= {
        "Sales Department", "East China Region", "North China Region", "South China Region",
    }  # fmt: skip
    aid = int(at.selectbox(key="al_pick").value)
    at.text_input(key=f"al_note_{aid}").input("looking into it")
    at.button(key=f"al_ack_{aid}").click().run()
    ok(at)
    assert "Acknowledged." in said(at)
    # Answer the alert with a review action due yesterday: it is flagged overdue.
    key = f"al_rv_{aid}"
    at.text_area(key=f"{key}_text").input("Distributor stock-out in week 40")
    at.text_input(key=f"{key}_action").input("Second supplier for the east region")
    at.date_input(key=f"{key}_due").set_value(TODAY - timedelta(days=1))
    at.button(key=f"{key}_submit").click().run()
    ok(at)
    wh = Warehouse(own_file, linger=0)
    assert wh.one("SELECT alert_id, state, owner FROM comment")[0:3] == (aid, "open", "head_sales")
    wh.close()
    assert "1 action(s) past due." in said(at)
    at.text_input(key="al_action_res").input("supplier signed")
    at.button(key="al_action_close").click().run()
    ok(at)
    assert "Action closed." in said(at)
    at.text_input(key=f"al_res_{aid}").input("stock back to normal")
    at.button(key=f"al_close_{aid}").click().run()
    ok(at)
    wh = Warehouse(own_file, linger=0)
    state = wh.one("SELECT state, closed_by, resolution FROM alert_event WHERE id = ?", [aid])
    audited = wh.one("SELECT count(*) FROM audit WHERE entity = 'alert'")[0]
    wh.close()
    assert state == ("closed", "head_sales", "stock back to normal")
    assert audited >= 2


def test_closing_needs_a_resolution(own_file, monkeypatch):
    at = open_alerts(own_file, monkeypatch)
    at.button(key="al_run").click().run()
    aid = int(at.selectbox(key="al_pick").value)
    at.button(key=f"al_close_{aid}").click().run()
    ok(at)
    assert "Say how the alert was resolved before closing it." in said(at)


def test_viewers_read_only_and_chinese(own_file, monkeypatch):
    at = open_alerts(own_file, monkeypatch)
    at.button(key="al_run").click().run()
    viewer = open_alerts(own_file, monkeypatch, user="viewer_prod", lang="zh")
    assert not [b for b in viewer.button if b.key == "al_run"]
    aid = int(viewer.selectbox(key="al_pick").value)
    assert not [b for b in viewer.button if b.key in (f"al_ack_{aid}", f"al_close_{aid}")]
    table = viewer.dataframe[0].value
    assert set(table["组织"]) <= {"生产部", "一号线（数控加工）", "二号线（精密装配）"}
    assert [t.label for t in viewer.tabs][:4] == ["预警列表", "复盘行动", "推送设置", "预警规则"]


def test_an_admin_changes_a_rule_through_typed_fields(own_file, monkeypatch):
    """Settings are labelled fields (a number, a severity, a switch), not JSON to type; the table
    reads in the page's language; what is saved is what the rules then use."""
    at = open_alerts(own_file, monkeypatch, lang="zh")
    rules_table = next(d.value for d in at.dataframe if "参数" in d.value.columns)
    stale = rules_table.loc[rules_table["类型"] == "数据未更新", "参数"].iloc[0]
    assert stale == "宽限天数：5；级别：▲ 中", stale
    assert not [t for t in at.text_area if t.key.startswith("al_rp")]  # no JSON box
    at.selectbox(key="al_rk").select("stale").run()
    at.number_input(key="al_rp_stale_grace_days").set_value(9)
    at.selectbox(key="al_rp_stale_severity").select("high")
    at.button(key="al_rule_save").click().run()
    ok(at)
    assert not at.error, [e.value for e in at.error]
    wh = Warehouse(own_file, linger=0)
    try:
        rule = alerts.load_rules(wh).stale
    finally:
        wh.close()
    assert (rule.grace_days, rule.severity, rule.enabled) == (9, "high", True)
    # Below the bounds the field refuses the value instead of the rule taking it.
    at.selectbox(key="al_rk").select("at_risk").run()
    assert at.number_input(key="al_rp_at_risk_min_points").min == 2


def _missing_pieces(path) -> dict[str, int]:
    """Alerts that lack what a row can lack: stale data (no KPI, no owner) in Production and in
    Sales, one naming a KPI deleted since, and one with empty texts. Returns name → id."""
    wh = Warehouse(path, linger=0)
    try:
        unit = dict(wh.rows("SELECT code, id FROM org_unit"))
        rev = wh.one("SELECT id FROM kpi WHERE code = 'REV'")[0]
        top = wh.one("SELECT coalesce(max(id), 0) FROM alert_event")[0]
        rows = {
            "stale_prod": (None, unit["PROD"], "stale", "medium", "缺少数据", "No data"),
            "stale_sales": (None, unit["SALES_S"], "stale", "high", "缺少数据", "No data"),
            "gone_kpi": (987_654, unit["PROD_L2"], "status", "low", "旧指标", "Old KPI"),
            "blank": (rev, unit["SALES"], "anomaly", "low", "", ""),
        }
        ids = {}
        with wh.transaction() as cur:
            for i, (name, (kpi, uid, kind, sev, zh, en)) in enumerate(rows.items(), top + 1):
                cur.execute(
                    """INSERT INTO alert_event (id, kpi_id, unit_id, period, kind, severity,
                           state_key, owner, message_zh, message_en, details, raised_at)
                       VALUES (?, ?, ?, DATE '2026-11-01', ?, ?, 'x', NULL, ?, ?, NULL,
                               TIMESTAMP '2026-12-06 09:00:00')""",
                    [i, kpi, uid, kind, sev, zh, en],
                )
                ids[name] = i
        return ids
    finally:
        wh.close()


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("user", ["admin", "head_sales", "analyst", "viewer_prod"])
def test_alerts_with_missing_pieces_show_a_dash(own_file, monkeypatch, user, lang):
    ids = _missing_pieces(own_file)
    owner = "责任人" if lang == "zh" else "Owner"
    at = open_alerts(own_file, monkeypatch, user=user, lang=lang)
    mine = {
        "head_sales": ["stale_sales", "blank"],
        "viewer_prod": ["stale_prod", "gone_kpi"],
    }.get(user, list(ids))
    for name in mine:
        aid = ids[name]
        at.selectbox(key="al_pick").set_value(aid).run()
        ok(at)
        caption = "\n".join(c.value for c in at.caption)
        assert f"{owner}: —" in caption, caption
    table = at.dataframe[0].value
    assert "—" in set(table[owner])
    assert not table.isna().any().any()
