"""What a message looks like on each kind of channel: one alert or a digest, in the channel's
language, with a link into the app when its address is set; the DingTalk signature."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Sequence
from datetime import date
from urllib.parse import quote_plus

from kpi_core import clock, i18n, links
from kpi_core.push.config import (
    SEVERITIES,
    Channel,
    PushMessage,
)

WECOM_LIMIT = 4096  # bytes of markdown content a WeCom robot accepts


# --- what a message looks like on each channel ------------------------------------------------

_SEVERITY_WORD = {"high": ("高", "high"), "medium": ("中", "medium"), "low": ("低", "low")}
_APP = ("KPI 监控", "KPI Monitor")


def _details(m: PushMessage, lang: str) -> str:
    zh = lang == "zh"
    parts = [
        ("级别", "Severity", _SEVERITY_WORD.get(m.severity, (m.severity,) * 2)[0 if zh else 1]),
        ("组织", "Unit", m.unit),
        ("期间", "Period", m.period),
    ]
    if m.owner:
        parts.append(("责任人", "Owner", m.owner))
    sep = "：" if zh else ": "
    return " · ".join(f"{z if zh else e}{sep}{v}" for z, e, v in parts if v)


# How a link is written in each kind of channel's text: (url, label) -> text. Slack's is put in
# after its text is escaped (see `render`), so a placeholder stands for it until then.
_LinkFormat = Callable[[str, str], str]


def _plain(url: str, label: str) -> str:
    return f"{label}: {url}"


def _markdown(url: str, label: str) -> str:
    return f"[{label}]({url})"


def _link_label(m: PushMessage, lang: str) -> str:
    board = (m.target or "").startswith(links.BOARD)
    return i18n.t("push_link_board" if board else "push_link_detail", lang)


def _link(m: PushMessage, lang: str, base: str | None, fmt: _LinkFormat) -> str:
    url = links.absolute(base, m.target, lang)
    return fmt(url, _link_label(m, lang)) if url else ""


def _one(
    m: PushMessage, lang: str, base: str | None = None, fmt: _LinkFormat = _plain
) -> tuple[str, str]:
    """(title, body) of one message in `lang` (zh, en or both), with its link when there is
    one: each language's part opens the app in that language."""
    if lang == "both":
        zt, zb = _one(m, "zh", base, fmt)
        et, eb = _one(m, "en", base, fmt)
        return f"{zt} / {et}", f"{zb}\n\n---\n\n{eb}"
    title = m.title_zh if lang == "zh" else m.title_en
    text = m.text_zh if lang == "zh" else m.text_en
    link = _link(m, lang, base, fmt)
    return title, f"{text}\n\n{_details(m, lang)}" + (f"\n\n{link}" if link else "")


def _digest(
    ms: Sequence[PushMessage], lang: str, base: str | None = None, fmt: _LinkFormat = _plain
) -> tuple[str, str]:
    """(title, body) of several messages as one, each line with its link."""
    if lang == "both":
        zt, zb = _digest(ms, "zh", base, fmt)
        et, eb = _digest(ms, "en", base, fmt)
        return f"{zt} / {et}", f"{zb}\n\n---\n\n{eb}"
    zh = lang == "zh"
    counts = {s: sum(m.severity == s for m in ms) for s in SEVERITIES}
    said = ("，" if zh else ", ").join(
        f"{_SEVERITY_WORD[s][0]} {n}" if zh else f"{n} {s}" for s, n in counts.items() if n
    )
    title = (
        f"{_APP[0]}：{len(ms)} 条预警（{said}）" if zh else f"{_APP[1]}: {len(ms)} alerts ({said})"
    )
    lines = []
    for m in sorted(
        ms, key=lambda m: SEVERITIES.index(m.severity) if m.severity in SEVERITIES else 9
    ):
        word = _SEVERITY_WORD.get(m.severity, (m.severity,) * 2)[0 if zh else 1]
        who = f" · {m.owner}" if m.owner else ""
        link = _link(m, lang, base, fmt)
        lines.append(
            f"- [{word}] {m.title_zh if zh else m.title_en} — {m.unit} · {m.period}{who}"
            + (f" · {link}" if link else "")
        )
    return title, "\n".join(lines)


def render(ch: Channel, ms: Sequence[PushMessage], *, test: bool = False) -> dict:
    """The JSON body an HTTP channel posts (also the email's subject and body, as
    {"subject", "body"}). One message, or a digest of several; each alert with its link into
    the app while `[push] app_url` / KPI_APP_URL is set (kpi_core.links)."""
    base = links.app_url()
    slack: list[str] = []

    def fmt(url: str, label: str) -> str:
        if ch.kind in ("dingtalk", "wecom"):
            return _markdown(url, label)
        if ch.kind == "slack":
            slack.append(f"<{url}|{_slack(label)}>")
            return f"\x00{len(slack) - 1}\x00"
        return _plain(url, label)

    title, body = (
        _one(ms[0], ch.lang, base, fmt) if len(ms) == 1 else _digest(ms, ch.lang, base, fmt)
    )
    if ch.kind == "webhook":
        lang = ch.lang if ch.lang in ("zh", "en") else None
        alerts = [
            {k: getattr(m, k) for k in PushMessage.__dataclass_fields__ if k != "target"}
            | {"link": links.absolute(base, m.target, lang)}
            for m in ms
        ]
        return {
            "source": "kpi-monitor",
            "test": test,
            "title": title,
            "text": body,
            "link": alerts[0]["link"] if len(ms) == 1 else None,
            "alerts": alerts,
        }
    if ch.kind == "dingtalk":
        keyword = str(ch.options.get("keyword") or "")
        if keyword and keyword not in title:
            title = f"{keyword} · {title}"  # a robot with a keyword drops messages without it
        return {
            "msgtype": "markdown",
            "markdown": {"title": title, "text": f"### {title}\n\n{body}"},
        }
    if ch.kind == "wecom":
        content = f"### {title}\n{body}"
        if len(content.encode()) > WECOM_LIMIT:
            content = content.encode()[: WECOM_LIMIT - 3].decode("utf-8", "ignore") + "…"
        return {"msgtype": "markdown", "markdown": {"content": content}}
    if ch.kind == "slack":
        text = f"*{_slack(title)}*\n{_slack(body)}"
        text = re.sub("\x00(\\d+)\x00", lambda g: slack[int(g[1])], text)
        return {"text": text, "mrkdwn": True}
    return {"subject": f"[{_APP[0] if ch.lang == 'zh' else _APP[1]}] {title}", "body": body}


def _slack(text: str) -> str:
    """Slack's three control characters, escaped as its API asks."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's signature: HMAC-SHA256 of "timestamp\\nsecret" keyed by the secret, base64,
    then URL-encoded — appended to the address as &timestamp=…&sign=…"""
    digest = hmac.new(
        secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256
    ).digest()
    return quote_plus(base64.b64encode(digest))


def links_note(lang: str) -> str:
    """What the test message says about links into the app: on (to where), off and how to turn
    them on, or set wrong and why."""
    base, problem = links.setting()
    if base:
        return i18n.t("push_links_on", lang, url=base)
    if problem:
        return i18n.t("push_links_wrong", lang, problem=problem, env=links.ENV)
    return i18n.t("push_links_off", lang, env=links.ENV, example=links.EXAMPLE)


def _test_message(name: str, today: date | None = None) -> PushMessage:
    return PushMessage(
        alert_id=None,
        severity="high",
        kind="test",
        title_zh="KPI 监控测试消息",
        title_en="KPI Monitor test message",
        text_zh=f"这是推送渠道“{name}”的测试消息。收到即表示设置正确。{links_note('zh')}",
        text_en=f"This is a test message for the push channel '{name}'. If you can read it, "
        f"the channel works. {links_note('en')}",
        kpi=None,
        unit="",
        period=f"{today or clock.today():%Y-%m-%d}",
        owner=None,
    )
