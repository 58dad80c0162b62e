"""Pushed alerts link into the app (kpi_core.links): the demo's real alerts sent to real HTTP
receivers and a real SMTP server, in each channel's own format; without the app's address, no
link and the test send says how to turn links on. Opening a pushed link in a real browser:
tests/test_browser_push_links.py."""

from __future__ import annotations

import os
import re
from datetime import date, datetime
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from kpi_core import access, alerts, links, push
from kpi_core.alerts import Alert
from kpi_core.catalog import load_catalog
from kpi_core.warehouse import Warehouse
from tests import apptest, test_push

ADMIN = access.SYSTEM
APP = "https://kpi.example.com/monitor"
DETAIL = f"{APP}/Detail?unit=SALES_S&kpi=REV&period=2026-10"
smtp = test_push.smtp  # the real SMTP server of the push tests


@pytest.fixture
def app_url(monkeypatch, tmp_path):
    """No address from the developer's environment or secrets file; the test sets its own."""
    monkeypatch.delenv(links.ENV, raising=False)
    monkeypatch.setenv("KPI_SECRETS", str(tmp_path / "secrets.toml"))
    return lambda value: monkeypatch.setenv(links.ENV, value)


def south_revenue(wh) -> Alert:
    """The demo's red alert on 华南 营业收入 for 2026-10, as the alert run raised it."""
    cat = load_catalog(wh)
    [a] = [
        a
        for a in alerts.unpushed(wh, cat, ADMIN)
        if (a.unit, a.kpi, a.kind) == ("SALES_S", "REV", "status")
    ]
    return a


def made(kind: str, kpi: str | None, unit: str, period: date) -> Alert:
    return Alert(1, kind, None if kpi is None else 1, 1, kpi, unit, period, "medium", "k", None,
                 "中", "en", {}, "open", datetime(2026, 11, 20))  # fmt: skip


def test_a_pushed_alert_leads_to_its_kpis_detail_in_every_channel(
    demo_wh, receiver, smtp, app_url, monkeypatch
):
    app_url(APP + "/")  # a final slash is not doubled
    r = receiver()
    monkeypatch.setenv("KPI_PUSH_SECRET_T", "t")
    push.save_channel(demo_wh, ADMIN, "hook", "webhook", f"{r.base}/hook", {"lang": "en"})
    push.save_channel(
        demo_wh,
        ADMIN,
        "ding",
        "dingtalk",
        f"{r.base}/ding?access_token=${{KPI_PUSH_SECRET_T}}",
        {"lang": "both"},
    )
    push.save_channel(
        demo_wh,
        ADMIN,
        "wecom",
        "wecom",
        f"{r.base}/wecom?key=${{KPI_PUSH_SECRET_T}}",
        {"lang": "zh"},
    )
    monkeypatch.setenv("KPI_PUSH_SECRET_SLACK", f"{r.base}/slack")
    push.save_channel(demo_wh, ADMIN, "slack", "slack", "${KPI_PUSH_SECRET_SLACK}", {"lang": "en"})
    push.save_channel(
        demo_wh, ADMIN, "mail", "email", push.smtp_url("127.0.0.1", smtp.port),
        {"security": "none", "from": "kpi@example.com", "to": "head@example.com",
         "lang": "zh"},
    )  # fmt: skip
    sent = alerts.push_alerts(demo_wh, [south_revenue(demo_wh)])
    assert sent and all(d.ok for d in sent), [d.error for d in sent]
    got = {req["path"]: req["json"] for req in r.requests}

    hook = got["/hook"]
    assert hook["link"] == f"{DETAIL}&lang=en"
    assert hook["alerts"][0]["link"] == f"{DETAIL}&lang=en"
    assert hook["text"].endswith(f"Open the details: {DETAIL}&lang=en")
    ding = got["/ding"]["markdown"]["text"]
    assert f"[查看详情]({DETAIL}&lang=zh)" in ding
    assert f"[Open the details]({DETAIL}&lang=en)" in ding
    assert f"[查看详情]({DETAIL}&lang=zh)" in got["/wecom"]["markdown"]["content"]
    # Slack's own link syntax, not its escaped text: &amp; would break the address.
    assert f"<{DETAIL}&lang=en|Open the details>" in got["/slack"]["text"]
    [(_, _, mail)] = smtp.mails
    assert f"查看详情: {DETAIL}&lang=zh" in mail.get_content()


def test_stale_data_leads_to_the_board_and_an_overdue_action_to_its_kpi(app_url):
    app_url(APP)
    stale = alerts.to_message(made("stale", None, "SALES_S", date(2026, 10, 1)))
    overdue = alerts.to_message(made("overdue", "REV", "SALES_S", date(2026, 9, 1)))
    forecast = alerts.to_message(made("at_risk", "REV", "SALES_S", date(2026, 1, 1)))
    assert stale["target"] == "Board?unit=SALES_S&period=2026-10"
    assert overdue["target"] == "Detail?unit=SALES_S&kpi=REV&period=2026-09"
    assert forecast["target"] == "Detail?unit=SALES_S&kpi=REV&period=2026"  # the year's target
    ch = push.Channel("x", "webhook", "http://127.0.0.1/x", {"lang": "zh"})
    body = push.render(ch, [push.PushMessage(**stale)])
    assert body["link"] == f"{APP}/Board?unit=SALES_S&period=2026-10&lang=zh"
    assert body["text"].endswith(f"查看看板: {APP}/Board?unit=SALES_S&period=2026-10&lang=zh")


def test_codes_and_periods_are_url_encoded(app_url):
    app_url(APP)
    m = alerts.to_message(made("status", "R&D 1/2", "华南#1", date(2026, 10, 1)))
    assert m["target"] == "Detail?unit=%E5%8D%8E%E5%8D%97%231&kpi=R%26D%201%2F2&period=2026-10"
    ch = push.Channel("x", "dingtalk", "http://127.0.0.1/x", {"lang": "en"})
    text = push.render(ch, [push.PushMessage(**m)])["markdown"]["text"]
    [url] = re.findall(r"\]\((.*?)\)", text)
    assert url == f"{APP}/{m['target']}&lang=en" and " " not in url


def test_without_the_apps_address_no_link_and_the_test_send_says_how(demo_wh, receiver, app_url):
    r = receiver()
    push.save_channel(demo_wh, ADMIN, "hook", "webhook", f"{r.base}/hook", {"lang": "both"})
    assert all(d.ok for d in alerts.push_alerts(demo_wh, [south_revenue(demo_wh)]))
    body = r.requests[0]["json"]
    assert body["link"] is None and body["alerts"][0]["link"] is None
    assert "http" not in body["text"] and "查看详情" not in body["text"]
    assert push.send_test(demo_wh, "hook").ok
    test = r.requests[1]["json"]["text"]
    assert "Links in alerts are off" in test and links.ENV in test and "[push] app_url" in test
    assert "预警消息暂不附带链接" in test
    # Turned on in secrets.toml, the same test send names the address.
    Path(os.environ["KPI_SECRETS"]).write_text(f'[push]\napp_url = "{APP}"\n', encoding="utf-8")
    assert push.send_test(demo_wh, "hook").ok
    assert f"Alerts carry links that open the app at {APP}." in r.requests[2]["json"]["text"]


@pytest.mark.parametrize(
    "value",
    ["kpi.example.com", "javascript:alert(1)", "https://kpi.example.com/?x=1",
     "https://kpi.example.com/a b", "https://kpi.example.com/a)(b", "ftp://kpi.example.com"],
)  # fmt: skip
def test_an_address_set_wrong_sends_no_link_and_says_why(app_url, value):
    app_url(value)
    base, problem = links.setting()
    assert base is None and links.ENV in problem and "https://kpi.example.com" in problem
    m = push.PushMessage(**alerts.to_message(made("status", "REV", "SALES_S", date(2026, 10, 1))))
    ch = push.Channel("x", "webhook", "http://127.0.0.1/x", {"lang": "en"})
    assert push.render(ch, [m])["link"] is None
    assert "is set wrong" in push.links_note("en")


def load_catalog_named(path, code: str) -> str:
    wh = Warehouse(path, linger=0)
    try:
        return load_catalog(wh).kpi(code).name("en")
    finally:
        wh.close()


def test_each_kind_of_pushed_link_opens_its_page(own_file, monkeypatch):
    wh = Warehouse(own_file, linger=0)
    try:
        raised = alerts.unpushed(wh, load_catalog(wh), ADMIN)
        one = {a.kind: a for a in raised}
        targets = {k: alerts.to_message(a)["target"] for k, a in one.items()}
    finally:
        wh.close()
    assert set(targets) >= {"status", "at_risk", "anomaly"}
    for kind, target in targets.items():
        page, query = target.split("?")
        at = apptest.open_page(
            f"pages/11_{page}.py", own_file, monkeypatch, "en", "admin",
            query=dict(parse_qsl(query)),
        )  # fmt: skip
        # The KPI's detail for the alert's own period: the year of a forecast, else the month.
        kpi = load_catalog_named(own_file, one[kind].kpi)
        period = "2026" if kind == "at_risk" else "2026-10"
        assert at.title[0].value.startswith(kpi) and at.title[0].value.endswith(period), kind
