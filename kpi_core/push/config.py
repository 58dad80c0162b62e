"""Pushing alerts out: a generic JSON webhook, a DingTalk robot, a WeCom robot, a Slack-compatible
incoming webhook, or email over SMTP.

Channels live in the warehouse (`push_channel`) without their secrets. A robot's address holds
its access token, a Slack webhook's path is its secret, a DingTalk robot may sign with a secret,
and a mail server wants a password: each is written as a reference, `${ENV_VAR}` or
`${secrets.push.key}` (a key of .streamlit/secrets.toml), resolved only to send — the mechanism
of database sources (`kpi_core.references`). A literal secret is refused when the
channel is saved, and so is a reference outside the channels' own vault (the `[push]` section
and environment variables named `KPI_PUSH_SECRET_…`): a header must not carry the sign-in cookie
secret or a source's password to a host of the author's choosing.

Where pushes may go can be narrowed by the server's operator: `[push] allowed_hosts` in
secrets.toml lists host names (`*.example.com` for the names below one); when it is set, a channel
to another host is refused when it is saved and again when it sends (its address may be a
reference, known only then). Redirects are never followed: the message and its headers would go
wherever the receiver points. What a receiver answered is kept in the delivery log for admins;
`recent_log` and `last_results` leave it out for everyone else.

`deliver` never raises: an alert run (after an import, from cron) must not fail because a robot
is down. Each send is tried up to `retries + 1` times with exponential back-off, each attempt
bounded by `timeout`, and every attempt is written to `push_log`, so failures are visible on the
page as well as in the log.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import logging
import re
import smtplib
import ssl
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import parse_qsl, quote_plus, urlsplit

import pandas as pd

from kpi_core import audit, clock, i18n, links
from kpi_core.access import can
from kpi_core.errors import KpiError, NotFoundError, ScopeError
from kpi_core.references import (
    PUSH,
    expand,
    has_reference,
    is_reference,
    not_in_vault,
    outside,
    read_secrets,
)
from kpi_core.references import mask as _mask_password
from kpi_core.references import redact as _redact
from kpi_core.references import values as _values
from kpi_core.service import Actor
from kpi_core.warehouse import Warehouse

log = logging.getLogger(__name__)

KINDS = ("webhook", "dingtalk", "wecom", "slack", "email")
SEVERITIES = ("high", "medium", "low")  # most severe first
LANGS = ("zh", "en", "both")
SECURITY = ("starttls", "ssl", "none")
OPTIONS: dict[str, tuple[str, ...]] = {
    "webhook": ("lang", "headers"),
    "dingtalk": ("lang", "secret", "keyword"),
    "wecom": ("lang",),
    "slack": ("lang",),
    "email": ("lang", "security", "user", "password", "from", "to"),
}
# Where each kind keeps its token when it is in the address (and the names suggested for it).
_TOKEN_PARAM = {"dingtalk": "access_token", "wecom": "key"}
_EXAMPLE = {
    "dingtalk": ("KPI_PUSH_SECRET_DINGTALK_TOKEN", "secrets.push.dingtalk_token"),
    "wecom": ("KPI_PUSH_SECRET_WECOM_KEY", "secrets.push.wecom_key"),
    "slack": ("KPI_PUSH_SECRET_SLACK_URL", "secrets.push.slack_url"),
    "webhook": ("KPI_PUSH_SECRET_TOKEN", "secrets.push.token"),
}
# Query parameters and headers whose value is a password in all but name.
_SECRET_NAME = re.compile(r"token|key|secret|sign|pass|auth|cookie|session|credential", re.I)
_ADDRESS = re.compile(r"[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+")
WECOM_LIMIT = 4096  # bytes of markdown content a WeCom robot accepts
MAX_PAUSE = 30.0  # seconds: the longest back-off between two attempts
TIMEOUT = 5.0  # seconds: the default bound of one attempt
DIGEST_OVER = 5  # more messages than this to one channel in one run go as one digest
_RATE_LIMITED = {130101, 45009}  # DingTalk "send too fast", WeCom "api freq out of limit"


class PushError(KpiError):
    """A push channel that cannot be saved or used; the message names the field and what to do."""


@dataclass(frozen=True)
class PushMessage:
    """One alert as it is pushed, in both languages (built by kpi_core.alerts)."""

    alert_id: int | None
    severity: str  # high / medium / low
    kind: str
    title_zh: str
    title_en: str
    text_zh: str
    text_en: str
    kpi: str | None
    unit: str
    period: str
    owner: str | None
    # Where the alert leads in the app, relative to its address (kpi_core.links): made absolute
    # when rendered, and left out while `[push] app_url` / KPI_APP_URL is not set.
    target: str | None = None


@dataclass(frozen=True)
class Channel:
    """Where alerts go. `url` and `options` hold references, never secrets."""

    name: str
    kind: str
    url: str
    options: dict = field(default_factory=dict, hash=False)
    min_severity: str = "medium"
    enabled: bool = True
    updated_by: str | None = None
    updated_at: datetime | None = None

    @property
    def lang(self) -> str:
        return self.options.get("lang") or "both"

    def admits(self, severity: str) -> bool:
        """True when a message of `severity` is at least the channel's minimum."""
        if severity not in SEVERITIES or self.min_severity not in SEVERITIES:
            return False
        return SEVERITIES.index(severity) <= SEVERITIES.index(self.min_severity)

    def shown_url(self) -> str:
        return mask(self.url)

    def problems(self) -> list[str]:
        """What stops the channel from being saved, each naming its field; [] when none."""
        out = []
        if not self.name.strip():
            out.append("name: give the channel a name")
        if self.kind not in KINDS:
            return [*out, f"kind: '{self.kind}' is not a kind of channel — use webhook, "
                          "dingtalk, wecom, slack or email"]  # fmt: skip
        if self.min_severity not in SEVERITIES:
            out.append(
                f"minimum severity: '{self.min_severity}' is not a severity — use high, medium "
                "or low"
            )
        known = OPTIONS[self.kind]
        for key in self.options:
            if key not in known:
                out.append(
                    f"option '{key}' is not used by {self.kind} channels — use " + ", ".join(known)
                )
        if self.lang not in LANGS:
            out.append(f"language: '{self.lang}' is not a language — use zh, en or both")
        out += _email_problems(self) if self.kind == "email" else _url_problems(self)
        for where, text in self._referring():
            out += [f"{where}: {not_in_vault(ref, PUSH)}" for ref in outside(text, PUSH)]
        return out

    def _referring(self) -> list[tuple[str, str]]:
        """Every field of the channel that may hold a reference, with its name."""
        fields = [("URL", self.url)]
        fields += [(k, v) for k, v in self.options.items() if k in ("secret", "password")]
        headers = self.options.get("headers")
        if isinstance(headers, dict):
            fields += [("headers", str(v)) for v in headers.values()]
        return [(where, str(text or "")) for where, text in fields]


@dataclass(frozen=True)
class Delivery:
    """What became of one send: a message (or a digest of several) to one channel."""

    channel: str
    kind: str
    alert_ids: tuple[int | None, ...]
    ok: bool
    attempts: int
    status: str | None = None
    error: str | None = None


# --- where a channel may send ------------------------------------------------------------------

_ALLOWED_EXAMPLE = '["oapi.dingtalk.com", "*.example.com"]'


def allowed_hosts() -> tuple[str, ...] | None:
    """`[push] allowed_hosts` in secrets.toml, normalized; None when it is not set (any host).
    An entry `*.example.com` allows the names below example.com, not example.com itself."""
    conf = read_secrets().get("push", {})
    if not isinstance(conf, dict) or "allowed_hosts" not in conf:
        return None
    value = conf["allowed_hosts"]
    if not isinstance(value, list) or not all(isinstance(h, str) and h.strip() for h in value):
        raise PushError(
            "[push] allowed_hosts in .streamlit/secrets.toml must be a list of host names, "
            f"e.g. {_ALLOWED_EXAMPLE}"
        )
    return tuple(
        ("*." + _normal_host(h.strip()[2:])) if h.strip().startswith("*.") else _normal_host(h)
        for h in value
    )


def _normal_host(host: str) -> str:
    """A host name as compared: lower case, no final dot, international names in their ASCII
    (IDNA) form — the form the connection uses."""
    host = host.strip().strip("[]").lower().rstrip(".")
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host  # not a name IDNA can write: compared as it is, and matches no list entry


def host_allowed(host: str | None, allowed: Sequence[str] | None) -> bool:
    """True when `host` may be sent to: no list, or a name on it (or below a `*.` entry)."""
    if allowed is None:
        return True
    if not host:
        return False
    host = _normal_host(host)
    return any(
        host.endswith(entry[1:]) if entry.startswith("*.") else host == entry for entry in allowed
    )


def _allowed_list() -> str:
    return ", ".join(allowed_hosts() or ())


def _connects_to(url: str) -> str | None:
    """The host urllib will connect to for `url`, parsed the way it parses it (so an address
    that reads one way and connects another cannot pass the list)."""
    try:
        return http.client.HTTPConnection(urllib.request.Request(url).host).host
    except (ValueError, http.client.InvalidURL):
        return None


def _refuse_unlisted(ch: Channel, host: str | None) -> None:
    """At sending: the channel's resolved host must be on the list. The message does not name
    it — it may come from a reference, and resolved values are never shown."""
    if not host_allowed(host, allowed_hosts()):
        raise PushError(
            f"channel '{ch.name}' sends to a host that is not in [push] allowed_hosts of "
            ".streamlit/secrets.toml; nothing was sent"
        )


# --- checking a channel ------------------------------------------------------------------------


def _url_problems(ch: Channel) -> list[str]:
    url = ch.url.strip()
    if not url:
        return ["URL: write the address to post to (the robot's or webhook's URL)"]
    if is_reference(url):
        return []  # the whole address is a secret kept elsewhere
    env, key = _EXAMPLE[ch.kind]
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return [f"URL: '{mask(url)}' is not a web address — write it like https://…"]
    out = []
    allowed = allowed_hosts()
    host = parts.hostname
    if allowed is not None and not has_reference(parts.netloc) and not host_allowed(host, allowed):
        out.append(
            f"URL: the host {host} is not in [push] allowed_hosts of .streamlit/secrets.toml "
            f"({_allowed_list()}) — send to one of them, or ask whoever runs the server to add it"
        )
    if parts.password and not has_reference(parts.password):
        out.append(
            "URL: the address holds a password — put it in an environment variable or in "
            f".streamlit/secrets.toml and write ${{{env}}} or ${{{key}}} in its place"
        )
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if (_SECRET_NAME.search(name) or name == _TOKEN_PARAM.get(ch.kind)) and not (
            has_reference(value)
        ):
            out.append(
                f"URL: '{name}=' holds a secret in plain text — put its value in an "
                f"environment variable or in .streamlit/secrets.toml and write "
                f"{name}=${{{env}}} or {name}=${{{key}}} in its place"
            )
    if ch.kind == "slack" and not has_reference(url):
        out.append(
            "URL: a Slack webhook's address is its secret — put the whole address in an "
            f"environment variable or in .streamlit/secrets.toml and write ${{{env}}} or "
            f"${{{key}}} here"
        )
    secret = str(ch.options.get("secret") or "")
    if ch.kind == "dingtalk" and secret and not is_reference(secret):
        out.append(
            "secret: the signing secret (SEC…) would be stored in plain text — put it in an "
            "environment variable or in .streamlit/secrets.toml and write "
            "${KPI_PUSH_SECRET_DINGTALK} or ${secrets.push.dingtalk_secret} here"
        )
    headers = ch.options.get("headers") or {}
    if not isinstance(headers, dict):
        out.append("headers: write one 'Name: value' per line")
    else:
        for name, value in headers.items():
            if _SECRET_NAME.search(str(name)) and not has_reference(str(value)):
                out.append(
                    f"headers: '{name}' holds a secret in plain text — put it in an environment "
                    "variable or in .streamlit/secrets.toml and write e.g. Bearer "
                    "${KPI_PUSH_SECRET_TOKEN} "
                    "or ${secrets.push.token} in its place"
                )
    return out


def _email_problems(ch: Channel) -> list[str]:
    out = []
    try:
        host, port = smtp_address(ch.url)
    except PushError as exc:
        out.append(str(exc))
    else:
        if not host:
            out.append("host: write the SMTP server's name, e.g. smtp.example.com")
        elif not host_allowed(host, allowed := allowed_hosts()):
            out.append(
                f"host: the SMTP server {host} is not in [push] allowed_hosts of "
                f".streamlit/secrets.toml ({', '.join(allowed or ())}) — send to one of them, or "
                "ask whoever runs the server to add it"
            )
        if not 0 < port < 65536:
            out.append("port: write the SMTP port, usually 587 (STARTTLS), 465 (SSL) or 25")
    o = ch.options
    if (o.get("security") or "starttls") not in SECURITY:
        out.append(f"security: '{o.get('security')}' is not known — use starttls, ssl or none")
    password = str(o.get("password") or "")
    if password and not is_reference(password):
        out.append(
            "password: the mail password would be stored in plain text — put it in an "
            "environment variable or in .streamlit/secrets.toml and write "
            "${KPI_PUSH_SECRET_SMTP} or "
            "${secrets.push.smtp_password} here"
        )
    if password and not o.get("user"):
        out.append("user: give the user name the password belongs to")
    sender = str(o.get("from") or "")
    if not _ADDRESS.fullmatch(sender):
        out.append(
            f"from: '{sender}' is not an email address — write the sender, e.g. kpi@example.com"
            if sender
            else "from: write the sender's address, e.g. kpi@example.com"
        )
    to = recipients(o.get("to"))
    if not to:
        out.append("to: write at least one recipient's address")
    for bad in [a for a in to if not _ADDRESS.fullmatch(a)]:
        out.append(f"to: '{bad}' is not an email address")
    return out


def recipients(value: object) -> list[str]:
    """A list of addresses from a list or from text separated by commas, semicolons or lines."""
    if value is None:
        return []
    items = value if isinstance(value, list | tuple) else re.split(r"[,;，；\s]+", str(value))
    return [str(a).strip() for a in items if str(a).strip()]


def smtp_url(host: str, port: int) -> str:
    """How an email channel's server is stored in `url`."""
    return f"smtp://{host.strip()}:{int(port)}"


def smtp_address(url: str) -> tuple[str, int]:
    """(host, port) of an email channel's `smtp://host:port`."""
    m = re.fullmatch(r"smtps?://([^:/]*)(?::(\d+))?/?", (url or "").strip())
    if not m:
        raise PushError(
            f"server: '{mask(url)}' is not an SMTP server — write it like smtp://smtp.example.com:587"
        )
    return m[1], int(m[2] or 587)


def mask(url: str) -> str:
    """An address as it may be shown: a literal password or token hidden (references are kept:
    they name where the secret is, not what it is)."""
    url = _mask_password(url or "")

    def hide(m: re.Match) -> str:
        name, value = m[1], m[2]
        if (_SECRET_NAME.search(name) or name in _TOKEN_PARAM.values()) and not has_reference(
            value
        ):
            return f"{name}=***"
        return m[0]

    return re.sub(r"(?<=[?&])([^=&#]+)=([^&#]*)", hide, url)


def _normal_options(kind: str, options: dict) -> dict:
    """Options as stored: text stripped, empty ones dropped, recipients a list."""
    out: dict = {}
    for key, value in (options or {}).items():
        if isinstance(value, str):
            value = value.strip()
        if key == "to" and kind == "email":
            value = recipients(value)
        if key == "headers" and isinstance(value, dict):
            value = {str(k).strip(): str(v).strip() for k, v in value.items() if str(k).strip()}
        if value in (None, "", [], {}):
            continue
        out[key] = value
    return out


# --- configuration ---------------------------------------------------------------------------


def _admin(who: Actor) -> None:
    if not can(who, "configure_push"):
        raise ScopeError("Only admins configure push channels.")


def save_channel(
    wh: Warehouse,
    who: Actor,
    name: str,
    kind: str,
    url: str,
    options: dict | None = None,
    min_severity: str = "medium",
    enabled: bool = True,
) -> Channel:
    """Add or replace the channel `name`; refused (PushError, every problem listed) when it is
    incomplete or would store a secret."""
    _admin(who)
    ch = Channel(
        (name or "").strip(), kind, (url or "").strip(), _normal_options(kind, options or {}),
        min_severity, bool(enabled), who.name, datetime.now(),
    )  # fmt: skip
    if problems := ch.problems():
        raise PushError(f"Channel '{ch.name}' cannot be saved: " + "; ".join(problems))
    text = json.dumps(ch.options, ensure_ascii=False, sort_keys=True)
    with wh.transaction() as cur:
        old = cur.execute(
            "SELECT url, options, min_severity, enabled FROM push_channel WHERE name = ?",
            [ch.name],
        ).fetchall()
        cur.execute(
            "INSERT OR REPLACE INTO push_channel VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [ch.name, ch.kind, ch.url, text, ch.min_severity, ch.enabled, who.name,
             ch.updated_at],
        )  # fmt: skip
        audit.record(
            cur, changed_at=ch.updated_at, changed_by=who.name, entity="push_channel",
            key=ch.name, field="definition", old=_described(*old[0]) if old else None,
            new=_described(ch.url, text, ch.min_severity, ch.enabled), reason="",
        )  # fmt: skip
    return ch


def _described(url: str, options: str, min_severity: str, enabled: bool) -> str:
    return f"{mask(url)}\n{options}\nmin_severity={min_severity} enabled={bool(enabled)}"


def set_enabled(wh: Warehouse, who: Actor, name: str, enabled: bool) -> None:
    _admin(who)
    channel(wh, name)
    now = datetime.now()
    with wh.transaction() as cur:
        cur.execute(
            "UPDATE push_channel SET enabled = ?, updated_by = ?, updated_at = ? WHERE name = ?",
            [bool(enabled), who.name, now, name],
        )
        audit.record(
            cur, changed_at=now, changed_by=who.name, entity="push_channel", key=name,
            field="enabled", old=str(not enabled).lower(), new=str(bool(enabled)).lower(),
            reason="",
        )  # fmt: skip


def delete_channel(wh: Warehouse, who: Actor, name: str) -> None:
    _admin(who)
    with wh.transaction() as cur:
        cur.execute("DELETE FROM push_channel WHERE name = ?", [name])
        audit.record(
            cur, changed_at=datetime.now(), changed_by=who.name, entity="push_channel",
            key=name, field="definition", old="defined", reason="",
        )  # fmt: skip


def _row(r: tuple) -> Channel:
    name, kind, url, options, min_severity, enabled, by, at = r
    try:
        opts = json.loads(options or "{}")
    except ValueError:
        opts = {}
    return Channel(name, kind, url, opts if isinstance(opts, dict) else {}, min_severity,
                   bool(enabled), by, at)  # fmt: skip


def channels(wh: Warehouse) -> list[Channel]:
    return [_row(r) for r in wh.rows("SELECT * FROM push_channel ORDER BY name")]


def channel(wh: Warehouse, name: str) -> Channel:
    rows = wh.rows("SELECT * FROM push_channel WHERE name = ?", [name])
    if not rows:
        raise NotFoundError(f"There is no push channel '{name}'.")
    return _row(rows[0])


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


# --- sending ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Outcome:
    ok: bool
    status: str | None = None
    error: str | None = None
    retry: bool = False


def _address(ch: Channel) -> str:
    """The address with its references resolved (and DingTalk's signature added)."""
    url = ch.url.strip()
    real = (
        expand(url, vault=PUSH, quote=False, error=PushError)
        if is_reference(url)
        else expand(url, vault=PUSH, error=PushError)
    )
    parts = urlsplit(real)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise PushError(
            f"the address of channel '{ch.name}' is not a web address once its references are "
            "filled in — check the value in the environment or secrets.toml"
        )
    _refuse_unlisted(ch, _connects_to(real))
    if ch.kind == "dingtalk" and (ref := str(ch.options.get("secret") or "")):
        secret = expand(ref, vault=PUSH, quote=False, error=PushError)
        ts = int(time.time() * 1000)
        real += ("&" if parts.query else "?") + f"timestamp={ts}&sign={dingtalk_sign(secret, ts)}"
    return real


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse every redirect: urllib would send the message on (as a GET, its headers and
    their token kept) to wherever the receiver points, on the list or not."""

    def redirect_request(
        self, req: urllib.request.Request, fp: object, code: int, msg: str, headers: object,
        newurl: str,
    ) -> None:  # fmt: skip
        return None  # urllib then raises the 3xx as an HTTPError


_OPENER = urllib.request.build_opener(_NoRedirect)


def _post(ch: Channel, payload: dict, timeout: float) -> _Outcome:
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "KPI-Monitor"}
    for name, value in (ch.options.get("headers") or {}).items():
        text = expand(str(value), vault=PUSH, quote=False, error=PushError)
        if "\r" in text or "\n" in text:
            # A secret pasted with its line break: a header can't hold one (it would start a new
            # header), so say which header and where to look rather than fail deep in http.client.
            raise PushError(
                f"the header '{name}' holds a line break — remove it from the value (or from the "
                "secret it refers to)"
            )
        headers[str(name)] = text
    request = urllib.request.Request(
        _address(ch),
        data=json.dumps(payload, ensure_ascii=False).encode(),
        headers=headers,
        method="POST",
    )
    try:
        with _OPENER.open(request, timeout=timeout) as resp:
            code, text = resp.status, resp.read(65536).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        if 300 <= exc.code < 400:
            return _Outcome(
                False, str(exc.code),
                f"the receiver redirects to another address (HTTP {exc.code}); pushes do not "
                "follow redirects — write the final address",
            )  # fmt: skip
        snippet = exc.read(300).decode("utf-8", "replace").strip().replace("\n", " ")
        return _Outcome(
            False, str(exc.code),
            f"HTTP {exc.code} from the receiver" + (f": {snippet}" if snippet else ""),
            retry=exc.code >= 500 or exc.code in (408, 429),
        )  # fmt: skip
    except (TimeoutError, urllib.error.URLError, OSError) as exc:
        return _network_error(exc, timeout)
    if ch.kind in ("dingtalk", "wecom"):
        return _robot_answer(ch.kind, code, text)
    return _Outcome(True, str(code))


def _network_error(exc: BaseException, timeout: float) -> _Outcome:
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, TimeoutError) or "timed out" in str(reason):
        return _Outcome(
            False, "timeout",
            f"no answer within {timeout:g} s — check that the address is right and reachable "
            "from this server",
            retry=True,
        )  # fmt: skip
    return _Outcome(
        False, "unreachable",
        f"cannot connect ({reason}) — check the host and port of the address",
        retry=True,
    )  # fmt: skip


def _robot_answer(kind: str, code: int, text: str) -> _Outcome:
    """DingTalk and WeCom answer 200 even when they refuse: the verdict is `errcode`."""
    try:
        answer = json.loads(text)
        errcode = int(answer.get("errcode", 0))
        errmsg = str(answer.get("errmsg", ""))
    except (ValueError, TypeError, AttributeError):
        return _Outcome(True, str(code))  # not a robot's JSON: a relay that said 2xx
    if errcode == 0:
        return _Outcome(True, str(code))
    who = "DingTalk" if kind == "dingtalk" else "WeCom"
    hint = ""
    if kind == "dingtalk" and errcode == 310000:
        hint = " — check the signing secret, the keyword and the robot's IP allow-list"
    elif errcode in (300001, 93000, 40058):
        hint = " — the robot's token or key is wrong; copy the address from the robot again"
    return _Outcome(
        False, f"{code} errcode {errcode}",
        f"{who} refused the message: errcode {errcode} ({errmsg}){hint}",
        retry=errcode in _RATE_LIMITED,
    )  # fmt: skip


def _mail(ch: Channel, payload: dict, timeout: float) -> _Outcome:
    host, port = smtp_address(ch.url)
    _refuse_unlisted(ch, host)
    o = ch.options
    security = o.get("security") or "starttls"
    password = (
        expand(o["password"], vault=PUSH, quote=False, error=PushError)
        if o.get("password")
        else None
    )
    to = recipients(o.get("to"))
    msg = EmailMessage()
    msg["Subject"] = payload["subject"]
    msg["From"] = o.get("from")
    msg["To"] = ", ".join(to)
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain="kpi-monitor")
    msg.set_content(payload["body"])
    try:
        if security == "ssl":
            server = smtplib.SMTP_SSL(
                host, port, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            server = smtplib.SMTP(host, port, timeout=timeout)
        with server:
            if security == "starttls":
                server.starttls(context=ssl.create_default_context())
            if o.get("user"):
                server.login(o["user"], password or "")
            refused = server.send_message(msg, from_addr=o.get("from"), to_addrs=to)
    except smtplib.SMTPAuthenticationError as exc:
        return _Outcome(
            False, str(exc.smtp_code),
            "the SMTP server refused the login — check the user and the password",
        )  # fmt: skip
    except smtplib.SMTPRecipientsRefused as exc:
        return _Outcome(
            False, "refused", "the SMTP server refused the recipients: " + ", ".join(exc.recipients)
        )
    except smtplib.SMTPNotSupportedError as exc:
        return _Outcome(
            False, "unsupported",
            f"the SMTP server does not support this ({exc}) — check the security setting",
        )  # fmt: skip
    except smtplib.SMTPResponseException as exc:
        said = (
            exc.smtp_error.decode("utf-8", "replace")
            if isinstance(exc.smtp_error, bytes)
            else exc.smtp_error
        )
        return _Outcome(
            False, str(exc.smtp_code), f"the SMTP server answered {exc.smtp_code}: {said}",
            retry=400 <= exc.smtp_code < 500,
        )  # fmt: skip
    except (TimeoutError, smtplib.SMTPException, ssl.SSLError, OSError) as exc:
        return _network_error(exc, timeout)
    if refused:
        return _Outcome(True, "250", "some recipients were refused: " + ", ".join(sorted(refused)))
    return _Outcome(True, "250")


def _send_once(ch: Channel, ms: Sequence[PushMessage], timeout: float, test: bool) -> _Outcome:
    """One attempt; a value its references stand for never reaches the log or push_log, even
    when a receiver repeats it in its answer."""
    secrets = [v for _, text in ch._referring() for v in _values(text, PUSH)]
    outcome = _attempt_once(ch, ms, timeout, test, secrets)
    if outcome.error and secrets:
        return _Outcome(outcome.ok, outcome.status, _redact(outcome.error, secrets), outcome.retry)
    return outcome


def _attempt_once(
    ch: Channel, ms: Sequence[PushMessage], timeout: float, test: bool, secrets: list[str]
) -> _Outcome:
    try:
        payload = render(ch, ms, test=test)
        if ch.kind == "email":
            return _mail(ch, payload, timeout)
        return _post(ch, payload, timeout)
    except PushError as exc:  # a reference without a value: the same on every attempt
        return _Outcome(False, "config", str(exc))
    except Exception as exc:
        # A fault of ours must not stop the alert run; it is logged and kept in push_log. The
        # traceback goes through the same redaction as the message: an exception's text may
        # repeat a header or an address that a secret was expanded into.
        log.error("pushing to channel %s\n%s", ch.name, _redact(traceback.format_exc(), secrets))
        return _Outcome(False, "error", f"{type(exc).__name__}: {exc}")


def _record(wh: Warehouse, ch: Channel, ms: Sequence[PushMessage | None], attempt: int,
            outcome: _Outcome) -> None:  # fmt: skip
    try:
        now = datetime.now()
        with wh.transaction() as cur:
            cur.executemany(
                "INSERT INTO push_log VALUES (?, ?, ?, ?, ?, ?, ?)",
                [[now, ch.name, m.alert_id if m else None, attempt, outcome.ok, outcome.status,
                  outcome.error] for m in ms],
            )  # fmt: skip
    except Exception:
        # The log is where failures are seen; losing a row must still not stop the run.
        log.exception("writing push_log for channel %s", ch.name)


def _send(
    wh: Warehouse,
    ch: Channel,
    ms: Sequence[PushMessage],
    *,
    retries: int,
    backoff: float,
    timeout: float,
    sleep: Callable[[float], None],
    test: bool = False,
) -> Delivery:
    attempts = max(int(retries), 0) + 1
    outcome = _Outcome(False)
    attempt = 0
    for attempt in range(1, attempts + 1):
        outcome = _send_once(ch, ms, timeout, test)
        _record(wh, ch, [None] if test else ms, attempt, outcome)
        if outcome.ok or not outcome.retry or attempt == attempts:
            break
        log.warning(
            "push to %s failed (attempt %d of %d): %s", ch.name, attempt, attempts, outcome.error
        )
        sleep(min(backoff * 2 ** (attempt - 1), MAX_PAUSE))
    if not outcome.ok:
        log.error("push to %s failed after %d attempt(s): %s", ch.name, attempt, outcome.error)
    ids = () if test else tuple(m.alert_id for m in ms)
    return Delivery(ch.name, ch.kind, ids, outcome.ok, attempt, outcome.status, outcome.error)


def deliver(
    wh: Warehouse,
    messages: Sequence[PushMessage],
    *,
    channels: Sequence[str | Channel] | None = None,
    retries: int = 3,
    backoff: float = 0.5,
    timeout: float = TIMEOUT,
    digest_over: int | None = DIGEST_OVER,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Delivery]:
    """Send each message to every enabled channel whose minimum severity admits it (or to the
    `channels` named). More than `digest_over` messages for one channel go as one digest (robots
    limit how often they may post). Never raises: failures come back as `Delivery(ok=False)`,
    are logged, and every attempt is in push_log."""
    if not messages:
        return []
    try:
        chosen = _chosen(wh, channels)
    except Exception:
        log.exception("reading push channels")
        return []
    out = []
    for ch in chosen:
        if not ch.enabled:
            continue
        wanted = [m for m in messages if ch.admits(m.severity)]
        if not wanted:
            continue
        batches = (
            [wanted]
            if digest_over is not None and len(wanted) > digest_over
            else [[m] for m in wanted]
        )
        for batch in batches:
            out.append(
                _send(wh, ch, batch, retries=retries, backoff=backoff, timeout=timeout,
                      sleep=sleep)
            )  # fmt: skip
    return out


def _chosen(wh: Warehouse, wanted: Sequence[str | Channel] | None) -> list[Channel]:
    if wanted is None:
        return channels(wh)
    saved = {c.name: c for c in channels(wh)}
    out = []
    for c in wanted:
        if isinstance(c, Channel):
            out.append(c)
        elif c in saved:
            out.append(saved[c])
        else:
            log.error("there is no push channel %r", c)
    return out


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


def send_test(
    wh: Warehouse,
    channel_name: str,
    *,
    retries: int = 1,
    backoff: float = 0.5,
    timeout: float = TIMEOUT,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """Send a test message to a saved channel, enabled or not, whatever its minimum severity.
    NotFoundError for an unknown name; any other failure comes back in the Delivery."""
    ch = channel(wh, channel_name)
    return _send(wh, ch, [_test_message(ch.name)], retries=retries, backoff=backoff,
                 timeout=timeout, sleep=sleep, test=True)  # fmt: skip


# What a receiver said, inside the messages above: its body, a robot's errmsg, a mail server's
# reply. Kept in push_log for admins; cut out for everyone else.
_REPLIES = (
    re.compile(r"^(HTTP \d+ from the receiver): .*$", re.S),
    re.compile(
        r"^((?:DingTalk|WeCom) refused the message: errcode -?\d+) \(.*\)"
        r"( — (?:check the signing secret|the robot's token or key is wrong)[^()]*)?$",
        re.S,
    ),
    re.compile(r"^(the SMTP server answered \d+): .*$", re.S),
)


def shown_error(error: str | None, who: Actor) -> str | None:
    """A delivery's error as `who` may read it: whole for admins; for everyone else without
    what the receiver answered (it can hold anything: internals, addresses, a token echoed)."""
    if error is None or can(who, "read_push_errors"):
        return error
    for pattern in _REPLIES:
        if m := pattern.match(error):
            return "".join(part for part in m.groups() if part)
    return error


def recent_log(wh: Warehouse, who: Actor, limit: int = 200) -> pd.DataFrame:
    """The latest attempts, newest first: sent_at, channel, alert_id, attempt, ok, status, error
    (the receivers' answers in `error` for admins only)."""
    df = wh.df(
        "SELECT sent_at, channel, alert_id, attempt, ok, status, error FROM push_log "
        "ORDER BY sent_at DESC, attempt DESC LIMIT ?",
        [int(limit)],
    )
    if not can(who, "read_push_errors"):
        df["error"] = [None if pd.isna(e) else shown_error(str(e), who) for e in df["error"]]
    return df


def last_results(wh: Warehouse, who: Actor) -> dict[str, tuple[datetime, bool, str | None]]:
    """Each channel's latest attempt: (when, ok, error), the error as `who` may read it."""
    rows = wh.rows(
        "SELECT channel, sent_at, ok, error FROM push_log QUALIFY row_number() OVER "
        "(PARTITION BY channel ORDER BY sent_at DESC, attempt DESC) = 1"
    )
    return {r[0]: (r[1], bool(r[2]), shown_error(r[3], who)) for r in rows}
