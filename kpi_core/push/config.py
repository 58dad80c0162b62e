"""Push channels: what a channel is, where it may send (`[push] allowed_hosts`), what is wrong
with one (each problem naming its field), and their configuration in `push_channel` (admins)."""

from __future__ import annotations

import http.client
import json
import re
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import parse_qsl, urlsplit

from kpi_core import audit
from kpi_core.access import Actor, can
from kpi_core.errors import KpiError, NotFoundError, ScopeError
from kpi_core.messages import Items, Message
from kpi_core.references import (
    PUSH,
    has_reference,
    is_reference,
    not_in_vault,
    outside,
    read_secrets,
)
from kpi_core.references import mask as _mask_password
from kpi_core.texts import N_
from kpi_core.warehouse import Warehouse

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

    def problems(self) -> list[Message]:
        """What stops the channel from being saved, each naming its field; [] when none."""
        out = []
        if not self.name.strip():
            out.append(Message("pc_no_name"))
        if self.kind not in KINDS:
            return [*out, Message("pc_bad_kind", kind=self.kind)]
        if self.min_severity not in SEVERITIES:
            out.append(Message("pc_bad_severity", value=self.min_severity))
        known = OPTIONS[self.kind]
        for key in self.options:
            if key not in known:
                options = Items(known, commas=True)
                out.append(Message("pc_bad_option", option=key, kind=self.kind, options=options))
        if self.lang not in LANGS:
            out.append(Message("pc_bad_lang", value=self.lang))
        out += _email_problems(self) if self.kind == "email" else _url_problems(self)
        for where, text in self._referring():
            out += [
                Message(
                    "pc_field", field=Message(_FIELD_WORDS[where]), problem=not_in_vault(ref, PUSH)
                )
                for ref in outside(text, PUSH)
            ]
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
    error: str | None = None  # English, as the command line and the log say it
    # The failure as a coded message, which a page renders in its reader's language.
    said: Message | None = field(default=None, repr=False, compare=False)


# --- where a channel may send ------------------------------------------------------------------

_ALLOWED_EXAMPLE = '["oapi.dingtalk.com", "*.example.com"]'
# A field a reference may stand in, as a problem names it ("URL: …" / "地址：…").
_FIELD_WORDS = {
    "URL": N_("pc_w_url"),
    "secret": N_("pc_w_secret"),
    "password": N_("pc_w_password"),
    "headers": N_("pc_w_headers"),
}


def allowed_hosts() -> tuple[str, ...] | None:
    """`[push] allowed_hosts` in secrets.toml, normalized; None when it is not set (any host).
    An entry `*.example.com` allows the names below example.com, not example.com itself."""
    conf = read_secrets().get("push", {})
    if not isinstance(conf, dict) or "allowed_hosts" not in conf:
        return None
    value = conf["allowed_hosts"]
    if not isinstance(value, list) or not all(isinstance(h, str) and h.strip() for h in value):
        raise PushError(Message("pc_err_allowed_hosts", example=_ALLOWED_EXAMPLE))
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
        raise PushError(Message("pc_err_unlisted", name=ch.name))


# --- checking a channel ------------------------------------------------------------------------


def _url_problems(ch: Channel) -> list[Message]:
    url = ch.url.strip()
    if not url:
        return [Message("pc_no_url")]
    if is_reference(url):
        return []  # the whole address is a secret kept elsewhere
    env, key = _EXAMPLE[ch.kind]
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return [Message("pc_bad_url", url=mask(url))]
    out = []
    allowed = allowed_hosts()
    host = parts.hostname
    if allowed is not None and not has_reference(parts.netloc) and not host_allowed(host, allowed):
        hosts = Items(allowed, commas=True)
        out.append(Message("pc_host_not_allowed", host=host, hosts=hosts))
    if parts.password and not has_reference(parts.password):
        out.append(Message("pc_url_password", env=env, key=key))
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if (_SECRET_NAME.search(name) or name == _TOKEN_PARAM.get(ch.kind)) and not (
            has_reference(value)
        ):
            out.append(Message("pc_url_secret", name=name, env=env, key=key))
    if ch.kind == "slack" and not has_reference(url):
        out.append(Message("pc_slack_url", env=env, key=key))
    secret = str(ch.options.get("secret") or "")
    if ch.kind == "dingtalk" and secret and not is_reference(secret):
        out.append(
            Message(
                "pc_plain_secret",
                env="KPI_PUSH_SECRET_DINGTALK",
                key="secrets.push.dingtalk_secret",
            )
        )
    headers = ch.options.get("headers") or {}
    if not isinstance(headers, dict):
        out.append(Message("pc_headers_form"))
    else:
        for name, value in headers.items():
            if _SECRET_NAME.search(str(name)) and not has_reference(str(value)):
                out.append(
                    Message(
                        "pc_header_secret",
                        name=name,
                        env="KPI_PUSH_SECRET_TOKEN",
                        key="secrets.push.token",
                    )
                )
    return out


def _email_problems(ch: Channel) -> list[Message]:
    out = []
    try:
        host, port = smtp_address(ch.url)
    except PushError as exc:
        out.append(exc.coded)
    else:
        if not host:
            out.append(Message("pc_no_smtp_host"))
        elif not host_allowed(host, allowed := allowed_hosts()):
            hosts = Items(allowed or (), commas=True)
            out.append(Message("pc_smtp_not_allowed", host=host, hosts=hosts))
        if not 0 < port < 65536:
            out.append(Message("pc_bad_port"))
    o = ch.options
    if (o.get("security") or "starttls") not in SECURITY:
        out.append(Message("pc_bad_security", value=str(o.get("security"))))
    password = str(o.get("password") or "")
    if password and not is_reference(password):
        out.append(
            Message(
                "pc_plain_password", env="KPI_PUSH_SECRET_SMTP", key="secrets.push.smtp_password"
            )
        )
    if password and not o.get("user"):
        out.append(Message("pc_no_user"))
    sender = str(o.get("from") or "")
    if not _ADDRESS.fullmatch(sender):
        out.append(Message("pc_bad_from", value=sender) if sender else Message("pc_no_from"))
    to = recipients(o.get("to"))
    if not to:
        out.append(Message("pc_no_to"))
    for bad in [a for a in to if not _ADDRESS.fullmatch(a)]:
        out.append(Message("pc_bad_to", value=bad))
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
        raise PushError(Message("pc_bad_server", url=mask(url)))
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
        raise ScopeError(Message("push_admins_only"))


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
        raise PushError(Message("pc_err_cannot_save", name=ch.name, problems=Items(problems)))
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
        raise NotFoundError(Message("pc_err_no_channel", name=name))
    return _row(rows[0])
