"""Alert pushes received by real servers on 127.0.0.1 started here: HTTP receivers that record
every request (and fail, stall or recover on cue) and an SMTP server (aiosmtpd). Every loop is
bounded: a few attempts, back-off in hundredths of a second, timeouts under a second."""

from __future__ import annotations

import base64
import email
import hashlib
import hmac
import json
import re
import socket
import time
from email import policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from streamlit.testing.v1 import AppTest

from kpi_core import access, push
from kpi_core.access import Scope
from kpi_core.errors import ScopeError
from kpi_core.messages import Message
from kpi_core.push import PushError, PushMessage
from kpi_core.warehouse import Warehouse

BOTH_ENGINES = True  # the file and PostgreSQL (tests/conftest.py)

ROOT = Path(__file__).resolve().parent.parent
ADMIN = access.SYSTEM
FAST = {"backoff": 0.01, "timeout": 2.0}


@pytest.fixture
def secrets_file(tmp_path, monkeypatch):
    """A .streamlit/secrets.toml of the test's own, where `${secrets.…}` is looked up."""
    path = tmp_path / "secrets.toml"
    monkeypatch.setenv("KPI_SECRETS", str(path))
    return path


def message(alert_id=1, severity="high", **kw) -> PushMessage:
    base = dict(
        alert_id=alert_id,
        severity=severity,
        kind="status",
        title_zh="营业收入 红灯",
        title_en="Revenue is red",
        text_zh="销售部 2025-03 营业收入 4,200万，低于基准值 5,000万。",
        text_en="Sales revenue for 2025-03 is 42.0M, below the baseline of 50.0M.",
        kpi="REV",
        unit="销售部 Sales",
        period="2025-03",
        owner="王磊 Wang Lei",
    )
    base.update(kw)
    return PushMessage(**base)


def log_rows(wh, channel=None):
    sql = "SELECT channel, alert_id, attempt, ok, status, error FROM push_log"
    if channel:
        return wh.rows(sql + " WHERE channel = ? ORDER BY sent_at, attempt", [channel])
    return wh.rows(sql + " ORDER BY sent_at, attempt")


# --- payloads, channel by channel ---------------------------------------------------------------


def test_webhook_posts_every_field_in_both_languages(warehouse, receiver, monkeypatch):
    r = receiver((200, "ok"))
    monkeypatch.setenv("KPI_PUSH_SECRET_HOOK_TOKEN", "t0ken")
    push.save_channel(
        warehouse, ADMIN, "ops", "webhook", f"{r.base}/hook",
        {"lang": "en", "headers": {"Authorization": "Bearer ${KPI_PUSH_SECRET_HOOK_TOKEN}"}}, "low",
    )  # fmt: skip
    [d] = push.deliver(warehouse, [message(7)], **FAST)
    assert d.ok and d.attempts == 1 and d.alert_ids == (7,) and d.status == "200"
    [req] = r.requests
    assert req["path"] == "/hook" and req["headers"]["Authorization"] == "Bearer t0ken"
    assert req["headers"]["Content-Type"].startswith("application/json")
    body = req["json"]
    assert body["source"] == "kpi-monitor" and body["test"] is False
    assert body["title"] == "Revenue is red" and "below the baseline" in body["text"]
    assert body["alerts"] == [
        {
            "alert_id": 7, "severity": "high", "kind": "status",
            "title_zh": "营业收入 红灯", "title_en": "Revenue is red",
            "text_zh": "销售部 2025-03 营业收入 4,200万，低于基准值 5,000万。",
            "text_en": "Sales revenue for 2025-03 is 42.0M, below the baseline of 50.0M.",
            "kpi": "REV", "unit": "销售部 Sales", "period": "2025-03", "owner": "王磊 Wang Lei",
            "link": None,  # no link into the app: its address is not set (tests/test_push_links.py)
        }
    ]  # fmt: skip
    assert log_rows(warehouse) == [("ops", 7, 1, True, "200", None)]
    # The secret went out in the header; the warehouse holds only its reference.
    assert "t0ken" not in json.dumps(warehouse.rows("SELECT * FROM push_channel"), default=str)


def test_dingtalk_markdown_signed_with_the_secret_from_secrets_toml(
    warehouse, receiver, monkeypatch, secrets_file
):
    r = receiver()
    secret = "SECa1b2c3+/="  # characters that base64 and URL encoding must survive
    secrets_file.write_text(f'[push]\ndingtalk_secret = "{secret}"\n', encoding="utf-8")
    monkeypatch.setenv("KPI_PUSH_SECRET_DING_TOKEN", "abc123")
    push.save_channel(
        warehouse, ADMIN, "钉钉群", "dingtalk",
        f"{r.base}/robot/send?access_token=${{KPI_PUSH_SECRET_DING_TOKEN}}",
        {"secret": "${secrets.push.dingtalk_secret}", "keyword": "KPI预警", "lang": "zh"},
    )  # fmt: skip
    before = int(time.time() * 1000)
    [d] = push.deliver(warehouse, [message(3)], **FAST)
    after = int(time.time() * 1000)
    assert d.ok, d.error
    [req] = r.requests
    assert req["path"] == "/robot/send"
    q = req["query"]
    assert q["access_token"] == "abc123"
    ts = int(q["timestamp"])
    assert before <= ts <= after
    # DingTalk's rule, recomputed here: HMAC-SHA256 keyed by the secret over "timestamp\nsecret",
    # base64, then URL-encoded in the query.
    expected = base64.b64encode(
        hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), hashlib.sha256).digest()
    ).decode()
    assert q["sign"] == expected
    assert f"sign={push.dingtalk_sign(secret, ts)}" in req["raw_query"]
    assert "+" not in req["raw_query"].split("sign=")[1]  # '+' and '/' arrive percent-encoded
    body = req["json"]
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"] == "KPI预警 · 营业收入 红灯"
    text = body["markdown"]["text"]
    assert text.startswith("### KPI预警 · 营业收入 红灯\n\n销售部 2025-03 营业收入")
    assert "级别：高 · 组织：销售部 Sales · 期间：2025-03 · 责任人：王磊 Wang Lei" in text
    assert "Revenue" not in text  # the channel speaks Chinese only


def test_dingtalk_refusal_in_a_200_is_a_failure_and_not_retried(warehouse, receiver, monkeypatch):
    r = receiver((200, {"errcode": 310000, "errmsg": "sign not match"}))
    monkeypatch.setenv("KPI_PUSH_SECRET_DING_TOKEN", "abc")
    push.save_channel(warehouse, ADMIN, "d", "dingtalk",
                      f"{r.base}/robot/send?access_token=${{KPI_PUSH_SECRET_DING_TOKEN}}", {})  # fmt: skip
    [d] = push.deliver(warehouse, [message()], **FAST)
    assert not d.ok and d.attempts == 1 and len(r.requests) == 1
    assert d.error == (
        "DingTalk refused the message: errcode 310000 (sign not match) — check the signing "
        "secret, the keyword and the robot's IP allow-list"
    )
    assert d.said.render("zh") == (
        "钉钉拒收了消息：errcode 310000（sign not match）——请检查加签密钥、自定义关键词和机器人的 IP 白名单"
    )


def test_wecom_markdown(warehouse, receiver, monkeypatch):
    r = receiver()
    monkeypatch.setenv("KPI_PUSH_SECRET_WECOM_KEY", "k-693a")
    push.save_channel(warehouse, ADMIN, "wecom", "wecom",
                      f"{r.base}/cgi-bin/webhook/send?key=${{KPI_PUSH_SECRET_WECOM_KEY}}", {"lang": "both"})  # fmt: skip
    [d] = push.deliver(warehouse, [message(4, owner=None)], **FAST)
    assert d.ok
    [req] = r.requests
    assert req["path"] == "/cgi-bin/webhook/send" and req["query"] == {"key": "k-693a"}
    body = req["json"]
    assert set(body) == {"msgtype", "markdown"} and body["msgtype"] == "markdown"
    content = body["markdown"]["content"]
    assert content.startswith("### 营业收入 红灯 / Revenue is red\n")
    assert "低于基准值" in content and "below the baseline" in content
    assert "责任人" not in content and "Owner" not in content  # no owner, no empty field


def test_wecom_content_is_cut_to_its_limit(warehouse, receiver, monkeypatch):
    r = receiver()
    monkeypatch.setenv("KPI_PUSH_SECRET_WECOM_KEY", "k")
    push.save_channel(
        warehouse, ADMIN, "w", "wecom", f"{r.base}/send?key=${{KPI_PUSH_SECRET_WECOM_KEY}}", {}
    )
    push.deliver(warehouse, [message(text_zh="长" * 3000, text_en="long " * 600)], **FAST)
    content = r.requests[0]["json"]["markdown"]["content"]
    assert len(content.encode()) <= push.WECOM_LIMIT and content.endswith("…")


def test_slack_text_with_the_whole_address_a_reference(warehouse, receiver, monkeypatch):
    r = receiver((200, "ok"))
    # The whole address is the secret: its value goes in as it is, slashes and all.
    monkeypatch.setenv("KPI_PUSH_SECRET_SLACK_WEBHOOK_URL", f"{r.base}/services/T000/B000/XXXX")
    push.save_channel(
        warehouse, ADMIN, "slack", "slack", "${KPI_PUSH_SECRET_SLACK_WEBHOOK_URL}", {"lang": "en"}
    )
    [d] = push.deliver(warehouse, [message(title_en="Revenue <red> & falling")], **FAST)
    assert d.ok
    [req] = r.requests
    assert req["path"] == "/services/T000/B000/XXXX"
    body = req["json"]
    assert body["mrkdwn"] is True and set(body) == {"text", "mrkdwn"}
    assert body["text"].startswith("*Revenue &lt;red&gt; &amp; falling*\nSales revenue for")
    assert (
        "Severity: high · Unit: 销售部 Sales · Period: 2025-03 · Owner: 王磊 Wang Lei"
        in body["text"]
    )


def test_many_alerts_go_as_one_digest(warehouse, receiver):
    r = receiver((200, "ok"))
    push.save_channel(warehouse, ADMIN, "ops", "webhook", f"{r.base}/hook", {"lang": "en"}, "low")
    ms = [message(i, severity=("high", "medium", "low")[i % 3]) for i in range(1, 8)]
    [d] = push.deliver(warehouse, ms, **FAST)
    assert d.ok and d.alert_ids == tuple(range(1, 8))
    [req] = r.requests
    body = req["json"]
    assert body["title"] == "KPI Monitor: 7 alerts (2 high, 3 medium, 2 low)"
    assert [a["alert_id"] for a in body["alerts"]] == list(range(1, 8))
    assert body["text"].splitlines()[0].startswith("- [high] Revenue is red — 销售部 Sales")
    assert sorted(r[1] for r in log_rows(warehouse)) == list(range(1, 8))  # a row per alert
    # Below the threshold each alert is its own message.
    r.requests.clear()
    assert len(push.deliver(warehouse, ms[:3], **FAST)) == 3 and len(r.requests) == 3


# --- retries, failures, timeouts ----------------------------------------------------------------


def test_a_receiver_that_fails_twice_then_recovers(warehouse, receiver):
    r = receiver((500, "boom"), (500, "boom"), (200, "ok"))
    push.save_channel(warehouse, ADMIN, "flaky", "webhook", f"{r.base}/hook", {})
    pauses: list[float] = []

    def sleep(s: float) -> None:
        pauses.append(s)
        time.sleep(s)

    [d] = push.deliver(warehouse, [message(9)], retries=3, backoff=0.05, timeout=2, sleep=sleep)
    assert d.ok and d.attempts == 3 and d.status == "200"
    assert pauses == [0.05, 0.1]  # exponential back-off between the attempts
    gaps = [b["at"] - a["at"] for a, b in zip(r.requests, r.requests[1:], strict=False)]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1
    assert log_rows(warehouse, "flaky") == [
        ("flaky", 9, 1, False, "500", "HTTP 500 from the receiver: boom"),
        ("flaky", 9, 2, False, "500", "HTTP 500 from the receiver: boom"),
        ("flaky", 9, 3, True, "200", None),
    ]


def test_a_receiver_that_never_recovers(warehouse, receiver):
    r = receiver((503, "down"))
    push.save_channel(warehouse, ADMIN, "down", "webhook", f"{r.base}/hook", {})
    started = time.monotonic()
    got = push.deliver(warehouse, [message(1), message(2)], retries=2, **FAST)
    assert time.monotonic() - started < 5
    assert [(d.ok, d.attempts, d.alert_ids) for d in got] == [(False, 3, (1,)), (False, 3, (2,))]
    assert got[0].error == "HTTP 503 from the receiver: down"
    assert len(r.requests) == 6
    rows = log_rows(warehouse, "down")
    assert [(a, at, ok) for _, a, at, ok, _, _ in rows] == [
        (1, 1, False), (1, 2, False), (1, 3, False), (2, 1, False), (2, 2, False), (2, 3, False)
    ]  # fmt: skip
    # A client error is not retried: the same request would fail the same way.
    r.answers = [(404, "no such hook")]
    [d] = push.deliver(warehouse, [message(3)], retries=2, **FAST)
    assert d.attempts == 1 and d.status == "404"


def test_a_receiver_that_does_not_answer_in_time(warehouse, receiver):
    r = receiver((200, "ok"), delay=1.5)
    push.save_channel(warehouse, ADMIN, "slow", "webhook", f"{r.base}/hook", {})
    started = time.monotonic()
    [d] = push.deliver(warehouse, [message()], retries=1, backoff=0.01, timeout=0.3)
    elapsed = time.monotonic() - started
    assert not d.ok and d.attempts == 2 and d.status == "timeout"
    assert d.error.startswith("no answer within 0.3 s")
    assert elapsed < 1.5  # bounded by the attempts' timeouts, not by the receiver


def test_nobody_listening_is_a_failure_too(warehouse):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free once closed: nothing listens there
    push.save_channel(warehouse, ADMIN, "gone", "webhook", f"http://127.0.0.1:{port}/x", {})
    [d] = push.deliver(warehouse, [message()], retries=1, **FAST)
    assert not d.ok and d.attempts == 2 and d.status == "unreachable"
    assert "cannot connect" in d.error and "check the host and port" in d.error


def test_a_missing_secret_fails_the_send_not_the_run(warehouse, receiver, monkeypatch):
    r = receiver()
    monkeypatch.delenv("KPI_PUSH_SECRET_NOT_SET_TOKEN", raising=False)
    push.save_channel(warehouse, ADMIN, "d", "dingtalk",
                      f"{r.base}/send?access_token=${{KPI_PUSH_SECRET_NOT_SET_TOKEN}}", {})  # fmt: skip
    ok = receiver((200, "ok"))
    push.save_channel(warehouse, ADMIN, "ok", "webhook", f"{ok.base}/hook", {})
    got = {d.channel: d for d in push.deliver(warehouse, [message()], **FAST)}
    assert not got["d"].ok and got["d"].attempts == 1 and got["d"].status == "config"
    assert got["d"].error == "the environment variable KPI_PUSH_SECRET_NOT_SET_TOKEN is not set"
    assert got["ok"].ok and r.requests == []


def test_severity_filter_and_disabled_channels(warehouse, receiver):
    hi, lo, off = receiver((200, "ok")), receiver((200, "ok")), receiver((200, "ok"))
    push.save_channel(warehouse, ADMIN, "hi", "webhook", f"{hi.base}/h", {}, "high")
    push.save_channel(warehouse, ADMIN, "lo", "webhook", f"{lo.base}/h", {}, "low")
    push.save_channel(warehouse, ADMIN, "mid", "webhook", f"{off.base}/h", {}, "medium")
    push.set_enabled(warehouse, ADMIN, "mid", False)
    ms = [message(1, "high"), message(2, "medium"), message(3, "low")]
    got = push.deliver(warehouse, ms, **FAST)
    assert sorted((d.channel, d.alert_ids) for d in got) == [
        ("hi", (1,)), ("lo", (1,)), ("lo", (2,)), ("lo", (3,))
    ]  # fmt: skip
    assert off.requests == []
    assert [q["json"]["alerts"][0]["alert_id"] for q in lo.requests] == [1, 2, 3]
    # Naming channels restricts the run to them.
    assert [d.channel for d in push.deliver(warehouse, ms[:1], channels=["hi"], **FAST)] == ["hi"]
    # A test reaches a channel that is off.
    d = push.send_test(warehouse, "mid", **FAST)
    assert d.ok and d.alert_ids == () and off.requests[0]["json"]["test"] is True
    assert log_rows(warehouse, "mid") == [("mid", None, 1, True, "200", None)]
    assert push.deliver(warehouse, [], **FAST) == []


def test_recent_log_and_last_results(warehouse, receiver):
    bad, good = receiver((500, "x")), receiver((200, "ok"))
    push.save_channel(warehouse, ADMIN, "bad", "webhook", f"{bad.base}/h", {})
    push.save_channel(warehouse, ADMIN, "good", "webhook", f"{good.base}/h", {})
    push.deliver(warehouse, [message(5)], retries=1, **FAST)
    df = push.recent_log(warehouse, ADMIN)
    assert list(df.columns) == [
        "sent_at",
        "channel",
        "alert_id",
        "attempt",
        "ok",
        "status",
        "error",
    ]
    assert len(df) == 3 and len(push.recent_log(warehouse, ADMIN, limit=2)) == 2
    last = push.last_results(warehouse, ADMIN)
    assert last["good"][1] is True and last["bad"][1] is False
    assert str(last["bad"][2]) == "HTTP 500 from the receiver: x"
    assert last["bad"][2].render("zh") == "接收方返回 HTTP 500：x"
    # push_log keeps the English text, and the key and values the pages render.
    assert warehouse.rows(
        "SELECT DISTINCT error, error_key, error_values FROM push_log WHERE NOT ok"
    ) == [("HTTP 500 from the receiver: x", "ps_http_said", '{"code": 500, "said": "x"}')]


def test_a_row_written_before_failures_were_coded_is_shown_as_it_was(warehouse):
    """A row from before migration 14 has only its English text: read as it was written."""
    with warehouse.transaction() as cur:
        cur.execute(
            "INSERT INTO push_log (sent_at, channel, alert_id, attempt, ok, status, error) VALUES "
            "(TIMESTAMP '2026-11-01 09:00', 'old', 5, 1, false, '500', "
            "'HTTP 500 from the receiver: down for maintenance')"
        )
    assert list(push.recent_log(warehouse, ADMIN)["error"]) == [
        "HTTP 500 from the receiver: down for maintenance"
    ]
    assert list(push.recent_log(warehouse, VIEWER)["error"]) == ["HTTP 500 from the receiver"]
    assert push.last_results(warehouse, VIEWER)["old"][2] == "HTTP 500 from the receiver"


VIEWER = access.Actor("viewer_prod", "viewer", Scope(frozenset({1})))


def test_the_delivery_log_shows_what_receivers_answered_to_admins_only(
    warehouse, receiver, monkeypatch
):
    """A receiver's answer can hold anything (its internals, addresses, a token echoed back):
    the log keeps it for admins; everyone else reads what happened without it."""
    monkeypatch.setenv("KPI_PUSH_SECRET_DING_T", "tok")
    bad = receiver((500, "db down: password=hunter2 host=10.0.0.5"))
    ding = receiver((200, {"errcode": 310000, "errmsg": "sign not match, from ip 10.0.0.5"}))
    push.save_channel(warehouse, ADMIN, "bad", "webhook", f"{bad.base}/h", {})
    push.save_channel(warehouse, ADMIN, "ding", "dingtalk",
                      f"{ding.base}/robot/send?access_token=${{KPI_PUSH_SECRET_DING_T}}", {})  # fmt: skip
    push.deliver(warehouse, [message(5)], retries=0, **FAST)
    for who, shown in (
        (ADMIN, {
            "HTTP 500 from the receiver: db down: password=hunter2 host=10.0.0.5",
            "DingTalk refused the message: errcode 310000 (sign not match, from ip 10.0.0.5) — "
            "check the signing secret, the keyword and the robot's IP allow-list",
        }),
        (VIEWER, {
            "HTTP 500 from the receiver",
            "DingTalk refused the message: errcode 310000 — check the signing secret, the "
            "keyword and the robot's IP allow-list",
        }),
    ):  # fmt: skip
        assert {str(e) for e in push.recent_log(warehouse, who)["error"]} == shown
        assert {str(e) for _, _, e in push.last_results(warehouse, who).values()} == shown
    # What the others read is in Chinese too, still without the receiver's words.
    assert {e.render("zh") for e in push.recent_log(warehouse, VIEWER)["error"]} == {
        "接收方返回 HTTP 500",
        "钉钉拒收了消息：errcode 310000——请检查加签密钥、自定义关键词和机器人的 IP 白名单",
    }
    smtp = Message("ps_smtp_said", code=554, said="rejected, your IP 10.0.0.5 is listed")
    assert str(push.shown_said(smtp, VIEWER)) == "the SMTP server answered 554"
    assert push.shown_said(smtp, VIEWER).render("zh") == "SMTP 服务器返回 554"
    assert push.shown_said(smtp, ADMIN) == smtp
    # The English text of a row from before is cut the same way.
    said = "the SMTP server answered 554: rejected, your IP 10.0.0.5 is listed"
    assert push.shown_error(said, VIEWER) == "the SMTP server answered 554"
    assert push.shown_error(said, ADMIN) == said


# --- where pushes may go: [push] allowed_hosts, and no redirect followed ------------------------


def test_allowed_hosts_refuse_saving_a_channel_to_another_host(warehouse, secrets_file, receiver):
    secrets_file.write_text('[push]\nallowed_hosts = ["127.0.0.1", "*.hooks.example.com"]\n')
    r = receiver()
    push.save_channel(warehouse, ADMIN, "ok", "webhook", f"{r.base}/h")
    push.save_channel(warehouse, ADMIN, "sub", "webhook", "https://a.hooks.example.com/h")
    for url in (
        f"http://localhost:{r.port}/h",  # the same server by another name: the list is of names
        "https://hooks.example.com/h",  # "*." is for the names below it
        "https://127.0.0.1.evil.example/h",
        "https://evil.example/h?u=127.0.0.1",
    ):
        with pytest.raises(PushError, match=r"is not in \[push\] allowed_hosts") as refused:
            push.save_channel(warehouse, ADMIN, "x", "webhook", url)
        assert refused.value.coded is not None and "主机 " in refused.value.text("zh")
    mail = {"security": "none", "from": "kpi@example.com", "to": ["head@example.com"]}
    with pytest.raises(PushError, match="the SMTP server localhost is not in"):
        push.save_channel(warehouse, ADMIN, "mail", "email", push.smtp_url("localhost", 25), mail)
    push.save_channel(warehouse, ADMIN, "mail", "email", push.smtp_url("127.0.0.1", 25), mail)
    assert [c.name for c in push.channels(warehouse)] == ["mail", "ok", "sub"]
    secrets_file.write_text('[push]\nallowed_hosts = "127.0.0.1"\n')
    with pytest.raises(PushError, match=r"\[push\] allowed_hosts .* must be a list"):
        push.save_channel(warehouse, ADMIN, "ok", "webhook", f"{r.base}/h")


def test_allowed_hosts_refuse_sending_to_another_host(warehouse, secrets_file, receiver):
    """A channel saved before the list, and one whose whole address is a reference (its host
    known only when sending): nothing reaches the other host, and the refusal does not echo
    the resolved address."""
    r = receiver()
    secrets_file.write_text(f'[push]\nhook = "http://localhost:{r.port}/h"\n')
    push.save_channel(warehouse, ADMIN, "early", "webhook", f"http://localhost:{r.port}/h")
    push.save_channel(warehouse, ADMIN, "ref", "webhook", "${secrets.push.hook}")
    with secrets_file.open("a") as fh:
        fh.write('allowed_hosts = ["127.0.0.1"]\n')
    out = push.deliver(warehouse, [message()], **FAST)
    assert r.requests == []
    assert [(d.channel, d.ok, d.attempts) for d in out] == [("early", False, 1), ("ref", False, 1)]
    errors = {e for *_, e in log_rows(warehouse)}
    assert len(errors) == 2 and all("is not in [push] allowed_hosts" in e for e in errors)
    assert not any("localhost" in e or str(r.port) in e for e in errors)
    assert not push.send_test(warehouse, "ref", **FAST).ok and r.requests == []


def test_a_redirect_is_not_followed(warehouse, secrets_file, receiver):
    """A receiver that answers with a redirect would have the message — and its headers, a
    token among them — sent on to wherever it points."""
    other = receiver()
    hop = receiver((302, "moved", {"Location": f"http://localhost:{other.port}/stolen"}))
    secrets_file.write_text('[push]\ntoken = "s3cret-token"\n')
    headers = {"Authorization": "Bearer ${secrets.push.token}"}
    push.save_channel(warehouse, ADMIN, "hop", "webhook", f"{hop.base}/h", {"headers": headers})
    d = push.deliver(warehouse, [message()], **FAST)[0]
    assert other.requests == [] and len(hop.requests) == 1
    assert not d.ok and d.attempts == 1
    assert d.error == (
        "the receiver redirects to another address (HTTP 302); pushes do not follow redirects "
        "— write the final address"
    )
    assert d.said.render("zh") == (
        "接收方要求跳转到另一个地址（HTTP 302）；推送不跟随跳转——请填写最终的地址"
    )


# --- configuration: secrets refused, admins only ------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "url", "options", "field"),
    [
        ("dingtalk", "https://oapi.dingtalk.com/robot/send?access_token=abc123", {},
         "URL: 'access_token=' holds a secret in plain text"),
        ("dingtalk", "https://oapi.dingtalk.com/robot/send?access_token=${KPI_PUSH_SECRET_DING}",
         {"secret": "SECabc"}, "secret: the signing secret (SEC…) would be stored"),
        ("wecom", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6", {},
         "URL: 'key=' holds a secret in plain text"),
        ("slack", "https://hooks.slack.com/services/T0/B0/XXXX", {},
         "URL: a Slack webhook's address is its secret"),
        ("webhook", "https://user:pw@hooks.example.com/x", {}, "URL: the address holds a password"),
        ("webhook", "https://hooks.example.com/x", {"headers": {"Authorization": "Bearer abc"}},
         "headers: 'Authorization' holds a secret in plain text"),
        ("email", "smtp://smtp.example.com:587",
         {"user": "kpi", "password": "hunter2", "from": "kpi@example.com", "to": ["a@example.com"]},
         "password: the mail password would be stored in plain text"),
        ("webhook", "ftp://example.com/x", {}, "is not a web address"),
        ("email", "smtp://smtp.example.com:587", {"from": "nobody", "to": "a@example.com, b"},
         "from: 'nobody' is not an email address"),
        ("fax", "https://example.com", {}, "kind: 'fax' is not a kind of channel"),
        ("webhook", "https://example.com", {"secret": "${KPI_PUSH_SECRET_X}"}, "option 'secret' is not used"),
    ],
)  # fmt: skip
def test_literal_secrets_and_bad_settings_are_refused(warehouse, kind, url, options, field):
    with pytest.raises(PushError, match="cannot be saved") as err:
        push.save_channel(warehouse, ADMIN, "c", kind, url, options)
    assert field in str(err.value)
    assert "hunter2" not in str(err.value) and "abc123" not in str(err.value)
    zh = err.value.text("zh")  # every problem coded: no English left in the Chinese
    assert err.value.coded is not None and zh.startswith("推送渠道“c”无法保存：")
    assert not re.search(r"[a-z]{3,} [a-z]{3,} [a-z]{3,}", zh), zh
    assert push.channels(warehouse) == []


def test_saving_keeps_references_and_masks_what_is_shown(warehouse):
    ch = push.save_channel(
        warehouse, ADMIN, " 钉钉 ", "dingtalk",
        "https://oapi.dingtalk.com/robot/send?access_token=${secrets.push.dingtalk_token}",
        {"secret": " ${KPI_PUSH_SECRET_DINGTALK_SECRET} ", "keyword": "", "lang": "zh"}, "high",
    )  # fmt: skip
    assert ch.name == "钉钉" and ch.options == {
        "secret": "${KPI_PUSH_SECRET_DINGTALK_SECRET}",
        "lang": "zh",
    }
    [saved] = push.channels(warehouse)
    assert (saved.name, saved.kind, saved.options, saved.min_severity, saved.enabled) == (
        "钉钉", "dingtalk", {"secret": "${KPI_PUSH_SECRET_DINGTALK_SECRET}", "lang": "zh"}, "high", True
    )  # fmt: skip
    assert saved.updated_by == "system"
    assert push.mask("https://x/send?access_token=abc&x=1") == "https://x/send?access_token=***&x=1"
    assert push.mask(saved.url) == saved.url  # a reference says where, not what
    audit = warehouse.rows("SELECT key, field FROM audit WHERE entity = 'push_channel'")
    assert audit == [("钉钉", "definition")]
    push.delete_channel(warehouse, ADMIN, "钉钉")
    assert push.channels(warehouse) == []


def test_only_admins_configure(warehouse):
    head = access.Actor("head_sales", "head", Scope.all())
    with pytest.raises(ScopeError, match="Only admins"):
        push.save_channel(warehouse, head, "c", "webhook", "https://example.com/x", {})
    push.save_channel(warehouse, ADMIN, "c", "webhook", "https://example.com/x", {})
    with pytest.raises(ScopeError):
        push.delete_channel(warehouse, head, "c")
    with pytest.raises(ScopeError):
        push.set_enabled(warehouse, head, "c", False)


# --- email through a real SMTP server ------------------------------------------------------------


class Inbox:
    def __init__(self):
        self.mails: list[tuple[str, list[str], email.message.EmailMessage]] = []
        self.logins: list[tuple[str, str]] = []

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content, policy=policy.default)
        self.mails.append((envelope.mail_from, list(envelope.rcpt_tos), msg))
        return "250 Message accepted for delivery"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        user, password = auth_data.login.decode(), auth_data.password.decode()
        self.logins.append((user, password))
        # handled=False: the server answers (535 on a refusal), not this function.
        return AuthResult(success=(user, password) == ("kpi", "s3cret-mail"), handled=False)


@pytest.fixture
def smtp():
    inbox = Inbox()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port, authenticator=inbox.authenticate,
        auth_require_tls=False, ready_timeout=5,
    )  # fmt: skip
    controller.start()
    inbox.port = port
    yield inbox
    controller.stop()


def test_email_over_smtp_with_the_password_from_the_environment(warehouse, smtp, monkeypatch):
    monkeypatch.setenv("KPI_PUSH_SECRET_SMTP_PASSWORD", "s3cret-mail")
    push.save_channel(
        warehouse, ADMIN, "mail", "email", push.smtp_url("127.0.0.1", smtp.port),
        {"security": "none", "user": "kpi", "password": "${KPI_PUSH_SECRET_SMTP_PASSWORD}",
         "from": "kpi@example.com", "to": "head@example.com; analyst@example.com", "lang": "zh"},
    )  # fmt: skip
    [d] = push.deliver(warehouse, [message(11)], **FAST)
    assert d.ok, d.error
    assert smtp.logins == [("kpi", "s3cret-mail")]
    [(sender, rcpts, msg)] = smtp.mails
    assert sender == "kpi@example.com"
    assert rcpts == ["head@example.com", "analyst@example.com"]
    assert msg["Subject"] == "[KPI 监控] 营业收入 红灯"
    assert msg["To"] == "head@example.com, analyst@example.com" and msg["Message-ID"]
    body = msg.get_content()
    assert body.startswith("销售部 2025-03 营业收入 4,200万，低于基准值 5,000万。")
    assert "责任人：王磊 Wang Lei" in body and "Revenue" not in body
    assert log_rows(warehouse, "mail") == [("mail", 11, 1, True, "250", None)]


def test_email_wrong_password_is_reported_and_not_retried(warehouse, smtp, monkeypatch):
    monkeypatch.setenv("KPI_PUSH_SECRET_SMTP_PASSWORD", "wrong")
    push.save_channel(
        warehouse, ADMIN, "mail", "email", push.smtp_url("127.0.0.1", smtp.port),
        {"security": "none", "user": "kpi", "password": "${KPI_PUSH_SECRET_SMTP_PASSWORD}",
         "from": "kpi@example.com", "to": ["head@example.com"], "lang": "en"},
    )  # fmt: skip
    d = push.send_test(warehouse, "mail", retries=2, **FAST)
    assert not d.ok and d.attempts == 1 and d.status == "535"
    assert d.error == "the SMTP server refused the login — check the user and the password"
    assert smtp.mails == []
    # The same server without a login takes the test message, in English.
    push.save_channel(
        warehouse, ADMIN, "mail", "email", push.smtp_url("127.0.0.1", smtp.port),
        {"security": "none", "from": "kpi@example.com", "to": ["head@example.com"], "lang": "en"},
    )  # fmt: skip
    assert push.send_test(warehouse, "mail", **FAST).ok
    assert smtp.mails[0][2]["Subject"] == "[KPI Monitor] KPI Monitor test message"


# --- the section on a page (AppTest) ------------------------------------------------------------

SCRIPT = """
import os
import streamlit as st
from kpi_core import service
from kpi_core.catalog import load_catalog
from kpi_core.ui import PageContext
from kpi_core.ui.push import channels_section
from kpi_core.warehouse import Warehouse


@st.cache_resource
def warehouse(path):
    return Warehouse(path, linger=0)


wh = warehouse(os.environ["KPI_WAREHOUSE"])
who = service.actor(wh, st.session_state.get("user_name"))
channels_section(PageContext(wh, load_catalog(wh), who, st.session_state.get("lang", "en")))
"""


def _page(tmp_path, monkeypatch, lang="en") -> AppTest:
    script = tmp_path / "push_page.py"
    script.write_text(SCRIPT, encoding="utf-8")
    monkeypatch.setenv("KPI_WAREHOUSE", str(tmp_path / "page.duckdb"))
    monkeypatch.syspath_prepend(str(ROOT))
    at = AppTest.from_file(str(script), default_timeout=30)
    at.session_state["lang"] = lang
    return at.run()


def _texts(elements) -> list[str]:
    return [e.value for e in elements]


def test_the_section_adds_tests_and_logs_a_channel(tmp_path, monkeypatch, receiver):
    monkeypatch.delenv("KPI_APP_URL", raising=False)
    r = receiver((200, "ok"))
    at = _page(tmp_path, monkeypatch)
    assert not at.exception
    assert "No push channel yet: alerts are shown on this page only." in _texts(at.info)
    at.selectbox(key="push_new_kind").set_value("dingtalk").run()
    at.text_input(key="push_new_name").input("ding").run()
    at.text_input(key="push_new_url").input(f"{r.base}/robot/send?access_token=abc123").run()
    problems = "\n".join(_texts(at.info))
    assert "holds a secret in plain text" in problems
    assert at.button(key="push_new_save").disabled
    at.text_input(key="push_new_url").input(
        f"{r.base}/robot/send?access_token=${{KPI_PUSH_SECRET_DING_T}}"
    )
    at.text_input(key="push_new_secret").input("SEC123").run()
    assert "signing secret" in "\n".join(_texts(at.info))
    at.text_input(key="push_new_secret").input("").run()
    assert not at.button(key="push_new_save").disabled
    at.button(key="push_new_save").click().run()
    assert not at.exception
    assert "Channel 'ding' saved." in _texts(at.success)
    assert at.selectbox(key="push_pick").value == "ding"
    listing = at.dataframe[0].value
    assert list(listing["Name"]) == ["ding"]
    assert list(listing["Address (secrets hidden)"]) == [
        f"{r.base}/robot/send?access_token=${{KPI_PUSH_SECRET_DING_T}}"
    ]

    # The test send fails while the token is not set, and says why.
    test_key = next(b.key for b in at.button if b.key and b.key.endswith("_test"))
    at.button(key=test_key).click().run()
    assert any("DING\\_T is not set" in e for e in _texts(at.error)), _texts(at.error)
    monkeypatch.setenv("KPI_PUSH_SECRET_DING_T", "tok")
    at.button(key=test_key).click().run()
    assert any("Test message delivered to 'ding'" in s for s in _texts(at.success))
    # … and whether its alerts will link into the app (not while its address is not set).
    assert any(
        "Links in alerts are off" in c and "KPI\\_APP\\_URL" in c for c in _texts(at.caption)
    ), _texts(at.caption)
    assert r.requests[-1]["query"]["access_token"] == "tok"
    log = at.dataframe[-1].value
    assert list(log["Result"]) == ["✔ sent", "✖ failed"] and list(log["Alert"]) == ["test"] * 2

    # A new email channel: its own fields, the password only as a reference.
    at.selectbox(key="push_pick").set_value(None).run()
    at.selectbox(key="push_new_kind").set_value("email").run()
    at.text_input(key="push_new_name").input("mail").run()
    at.text_input(key="push_new_host").input("127.0.0.1")
    at.text_input(key="push_new_password").input("hunter2").run()
    assert not at.exception
    problems = "\n".join(_texts(at.info))
    assert "the mail password would be stored in plain text" in problems
    assert "write the sender's address" in problems and "hunter2" not in problems
    assert at.button(key="push_new_save").disabled

    # In Chinese, and for a department head: the list and the log, read-only.
    zh = _page(tmp_path, monkeypatch, lang="zh")
    assert not zh.exception and "推送渠道" in [s.value for s in zh.subheader]
    assert any("钉钉机器人" in str(v) for v in zh.dataframe[0].value.iloc[0])
    # The failed test send's row of the log, in Chinese (push_log keeps its key and values).
    zlog = zh.dataframe[-1].value
    assert list(zlog["错误"])[1] == "环境变量 KPI_PUSH_SECRET_DING_T 未设置", zlog
    wh = Warehouse(tmp_path / "page.duckdb", linger=0)
    with wh.transaction() as cur:
        cur.execute(
            "INSERT INTO app_user (name, display_name, role, scope) VALUES ('head', 'Head', 'head', [])"
        )
    wh.close()
    zh.session_state["user_name"] = "head"
    zh.run()
    assert not zh.exception
    assert "只有管理员可以设置推送渠道。" in _texts(zh.info)
    assert not [b for b in zh.button if b.key and b.key.startswith("push_")]


def test_the_delivery_log_on_the_page_holds_answers_for_admins_only(
    tmp_path, monkeypatch, receiver
):
    bad = receiver((500, "internal detail 7f3a"))
    at = _page(tmp_path, monkeypatch)  # no users yet: full access, as an admin
    wh = Warehouse(tmp_path / "page.duckdb", linger=0)
    push.save_channel(wh, ADMIN, "bad", "webhook", f"{bad.base}/h", {})
    push.deliver(wh, [message(3)], retries=0, **FAST)
    with wh.transaction() as cur:
        cur.execute(
            "INSERT INTO app_user (name, display_name, role, scope) VALUES "
            "('boss', 'Boss', 'admin', []), ('head', 'Head', 'head', [])"
        )
    wh.close()

    def page_text(user: str) -> str:
        at.session_state["user_name"] = user
        at.run()
        assert not at.exception
        shown = [e.value for e in [*at.warning, *at.error, *at.info, *at.caption]]
        shown += [f.value.to_csv() for f in at.dataframe if hasattr(f.value, "to_csv")]
        shown += [f.value.data.to_csv() for f in at.dataframe if hasattr(f.value, "data")]
        return "\n".join(map(str, shown))

    assert "internal detail 7f3a" in page_text("boss")
    seen = page_text("head")
    assert "HTTP 500 from the receiver" in seen and "internal detail 7f3a" not in seen


def test_a_secret_with_a_line_break_is_named_not_echoed(warehouse, secrets_file, receiver, caplog):
    """A token pasted with its line break: http.client would refuse the header with the value in
    its message. The send fails as a configuration error that names the header, and the value
    reaches neither push_log nor the log."""
    r = receiver()
    secrets_file.write_text('[push]\ntoken = "s3cret-token\\n"\n')
    headers = {"Authorization": "Bearer ${secrets.push.token}"}
    push.save_channel(warehouse, ADMIN, "nl", "webhook", f"{r.base}/h", {"headers": headers})
    d = push.deliver(warehouse, [message()], **FAST)[0]
    assert r.requests == [] and not d.ok and d.attempts == 1
    assert d.error == (
        "the header 'Authorization' holds a line break — remove it from the value (or from the "
        "secret it refers to)"
    )
    assert "请求头“Authorization”的值含有换行" in d.said.render("zh")
    logged = warehouse.one("SELECT string_agg(concat(error, error_values), ' ') FROM push_log")[0]
    assert "s3cret" not in logged and "s3cret" not in caplog.text


def test_a_fault_of_ours_is_logged_with_its_secrets_redacted(
    warehouse, secrets_file, receiver, caplog, monkeypatch
):
    """An unexpected exception (here injected into rendering) whose text repeats a secret, escaped
    as repr shows it: the traceback in the log and the row in push_log show *** instead."""
    r = receiver()
    secrets_file.write_text('[push]\ntoken = "s3cret-ß-token"\n')
    headers = {"Authorization": "Bearer ${secrets.push.token}"}
    push.save_channel(warehouse, ADMIN, "boom", "webhook", f"{r.base}/h", {"headers": headers})

    def broken(ch, ms, *, test=False):
        raise RuntimeError(f"cannot render {'s3cret-ß-token'.encode()!r} / s3cret-ß-token")

    monkeypatch.setattr(push.transport, "render", broken)
    with caplog.at_level("ERROR", logger=push.transport.log.name):
        d = push.deliver(warehouse, [message()], **FAST)[0]
    assert not d.ok and "RuntimeError" in caplog.text and "Traceback" in caplog.text
    assert "s3cret" not in caplog.text and "s3cret" not in d.error
    logged = warehouse.one("SELECT string_agg(concat(error, error_values), ' ') FROM push_log")[0]
    assert "***" in logged and "s3cret" not in logged
    assert d.said.key == "ps_fault" and "s3cret" not in d.said.render("zh")
