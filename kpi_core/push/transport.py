"""Sending: HTTP posts (redirects never followed) and SMTP mail, retries with back-off, every
attempt in `push_log`; `deliver` never raises. The delivery log as each reader may see it."""

from __future__ import annotations

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
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import urlsplit

import pandas as pd

from kpi_core import pauses
from kpi_core.access import Actor, can
from kpi_core.messages import Items, Message, dump_values, load
from kpi_core.push.config import (
    Channel,
    Delivery,
    PushError,
    PushMessage,
    _connects_to,
    _refuse_unlisted,
    channel,
    channels,
    recipients,
    smtp_address,
)
from kpi_core.push.rendering import (
    _test_message,
    dingtalk_sign,
    render,
)
from kpi_core.references import (
    PUSH,
    expand,
    is_reference,
)
from kpi_core.references import redact as _redact
from kpi_core.references import values as _values
from kpi_core.texts import N_
from kpi_core.warehouse import Warehouse

log = logging.getLogger(__name__)


MAX_PAUSE = 30.0  # seconds: the longest back-off between two attempts
TIMEOUT = 5.0  # seconds: the default bound of one attempt
DIGEST_OVER = 5  # more messages than this to one channel in one run go as one digest


_RATE_LIMITED = {130101, 45009}  # DingTalk "send too fast", WeCom "api freq out of limit"


# --- sending ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Outcome:
    ok: bool
    status: str | None = None
    error: Message | None = None
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
        raise PushError(Message("ps_not_web", name=ch.name))
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
            raise PushError(Message("ps_header_break", name=name))
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
            return _Outcome(False, str(exc.code), Message("ps_redirect", code=exc.code))
        snippet = exc.read(300).decode("utf-8", "replace").strip().replace("\n", " ")
        return _Outcome(
            False, str(exc.code),
            Message("ps_http_said", code=exc.code, said=snippet)
            if snippet else Message("ps_http", code=exc.code),
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
        return _Outcome(False, "timeout", Message("ps_timeout", seconds=f"{timeout:g}"), retry=True)
    return _Outcome(False, "unreachable", Message("ps_unreachable", error=str(reason)), retry=True)


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
    who = Message("ps_w_dingtalk" if kind == "dingtalk" else "ps_w_wecom")
    hint: Message | str = ""
    if kind == "dingtalk" and errcode == 310000:
        hint = Message("ps_hint_signing")
    elif errcode in (300001, 93000, 40058):
        hint = Message("ps_hint_token")
    return _Outcome(
        False, f"{code} errcode {errcode}",
        Message("ps_robot_said", who=who, code=errcode, said=errmsg, hint=hint),
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
        return _Outcome(False, str(exc.smtp_code), Message("ps_smtp_login"))
    except smtplib.SMTPRecipientsRefused as exc:
        said = Message("ps_smtp_recipients", recipients=Items(exc.recipients, commas=True))
        return _Outcome(False, "refused", said)
    except smtplib.SMTPNotSupportedError as exc:
        return _Outcome(False, "unsupported", Message("ps_smtp_unsupported", error=str(exc)))
    except smtplib.SMTPResponseException as exc:
        said = (
            exc.smtp_error.decode("utf-8", "replace")
            if isinstance(exc.smtp_error, bytes)
            else exc.smtp_error
        )
        return _Outcome(
            False, str(exc.smtp_code), Message("ps_smtp_said", code=exc.smtp_code, said=said),
            retry=400 <= exc.smtp_code < 500,
        )  # fmt: skip
    except (TimeoutError, smtplib.SMTPException, ssl.SSLError, OSError) as exc:
        return _network_error(exc, timeout)
    if refused:
        said = Message("ps_some_refused", recipients=Items(sorted(refused), commas=True))
        return _Outcome(True, "250", said)
    return _Outcome(True, "250")


def _send_once(ch: Channel, ms: Sequence[PushMessage], timeout: float, test: bool) -> _Outcome:
    """One attempt; a value its references stand for never reaches the log or push_log, even
    when a receiver repeats it in its answer."""
    secrets = [v for _, text in ch._referring() for v in _values(text, PUSH)]
    outcome = _attempt_once(ch, ms, timeout, test, secrets)
    if outcome.error and secrets:
        said = _redacted(outcome.error, secrets)
        return _Outcome(outcome.ok, outcome.status, said, outcome.retry)
    return outcome


def _redacted(value: object, secrets: list[str]) -> object:
    """A message with every text among its values redacted (a receiver may echo a secret)."""
    if isinstance(value, Message):
        return Message(value.key, **{k: _redacted(v, secrets) for k, v in value.values.items()})
    if isinstance(value, Items):
        return Items([_redacted(v, secrets) for v in value.items], value.commas)
    return _redact(value, secrets) if isinstance(value, str) else value


def _attempt_once(
    ch: Channel, ms: Sequence[PushMessage], timeout: float, test: bool, secrets: list[str]
) -> _Outcome:
    try:
        payload = render(ch, ms, test=test)
        if ch.kind == "email":
            return _mail(ch, payload, timeout)
        return _post(ch, payload, timeout)
    except PushError as exc:  # a reference without a value: the same on every attempt
        said = exc.coded or Message("ps_fault", kind=type(exc).__name__, error=str(exc))
        return _Outcome(False, "config", said)
    except Exception as exc:
        # A fault of ours must not stop the alert run; it is logged and kept in push_log. The
        # traceback goes through the same redaction as the message: an exception's text may
        # repeat a header or an address that a secret was expanded into.
        log.error("pushing to channel %s\n%s", ch.name, _redact(traceback.format_exc(), secrets))
        return _Outcome(
            False, "error", Message("ps_fault", kind=type(exc).__name__, error=str(exc))
        )


def _record(wh: Warehouse, ch: Channel, ms: Sequence[PushMessage | None], attempt: int,
            outcome: _Outcome) -> None:  # fmt: skip
    try:
        now = datetime.now()
        said = outcome.error
        # The English text as before (logs, and readers of an older version); the key and
        # values, which the pages render in their reader's language.
        error = None if said is None else str(said)
        key, values = (None, None) if said is None else (said.key, dump_values(said))
        with wh.transaction() as cur:
            cur.executemany(
                "INSERT INTO push_log (sent_at, channel, alert_id, attempt, ok, status, error, "
                "error_key, error_values) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [[now, ch.name, m.alert_id if m else None, attempt, outcome.ok, outcome.status,
                  error, key, values] for m in ms],
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
            "push to %s failed (attempt %d of %d): %s",
            ch.name,
            attempt,
            attempts,
            str(outcome.error),
        )
        sleep(min(backoff * 2 ** (attempt - 1), MAX_PAUSE))
    if not outcome.ok:
        log.error("push to %s failed after %d attempt(s): %s", ch.name, attempt, str(outcome.error))
    ids = () if test else tuple(m.alert_id for m in ms)
    said = outcome.error
    return Delivery(ch.name, ch.kind, ids, outcome.ok, attempt, outcome.status,
                    None if said is None else str(said), said)  # fmt: skip


def deliver(
    wh: Warehouse,
    messages: Sequence[PushMessage],
    *,
    channels: Sequence[str | Channel] | None = None,
    retries: int = 3,
    backoff: float = 0.5,
    timeout: float = TIMEOUT,
    digest_over: int | None = DIGEST_OVER,
    sleep: Callable[[float], None] = pauses.sleep,
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


def send_test(
    wh: Warehouse,
    channel_name: str,
    *,
    retries: int = 1,
    backoff: float = 0.5,
    timeout: float = TIMEOUT,
    sleep: Callable[[float], None] = pauses.sleep,
) -> Delivery:
    """Send a test message to a saved channel, enabled or not, whatever its minimum severity.
    NotFoundError for an unknown name; any other failure comes back in the Delivery."""
    ch = channel(wh, channel_name)
    return _send(wh, ch, [_test_message(ch.name)], retries=retries, backoff=backoff,
                 timeout=timeout, sleep=sleep, test=True)  # fmt: skip


# What a receiver said, inside the messages above: its body, a robot's errmsg, a mail server's
# reply. Kept in push_log for admins; cut out for everyone else: the message without `said`.
_WITHOUT_REPLY = {
    "ps_http_said": N_("ps_http"),
    "ps_robot_said": N_("ps_robot"),
    "ps_smtp_said": N_("ps_smtp"),
}

# The same in the English text of a row written before failures were kept as messages.
_REPLIES = (
    re.compile(r"^(HTTP \d+ from the receiver): .*$", re.S),
    re.compile(
        r"^((?:DingTalk|WeCom) refused the message: errcode -?\d+) \(.*\)"
        r"( — (?:check the signing secret|the robot's token or key is wrong)[^()]*)?$",
        re.S,
    ),
    re.compile(r"^(the SMTP server answered \d+): .*$", re.S),
)


def shown_said(said: Message, who: Actor) -> Message:
    """A delivery's failure as `who` may read it: whole for admins; for everyone else without
    what the receiver answered (it can hold anything: internals, addresses, a token echoed)."""
    if can(who, "read_push_errors") or said.key not in _WITHOUT_REPLY:
        return said
    values = {k: v for k, v in said.values.items() if k != "said"}
    return Message(_WITHOUT_REPLY[said.key], **values)


def shown_error(error: str | None, who: Actor) -> str | None:
    """`shown_said` for the English text of an older row (kept and shown as it was written)."""
    if error is None or can(who, "read_push_errors"):
        return error
    for pattern in _REPLIES:
        if m := pattern.match(error):
            return "".join(part for part in m.groups() if part)
    return error


def _failure(error: object, key: object, values: object, who: Actor) -> Message | str | None:
    """A push_log row's failure: its coded message, or the English of a row from before."""
    if isinstance(key, str) and key:
        return shown_said(load(key, values if isinstance(values, str) else None), who)
    if error is None or (isinstance(error, float) and pd.isna(error)):
        return None
    return shown_error(str(error), who)


def recent_log(wh: Warehouse, who: Actor, limit: int = 200) -> pd.DataFrame:
    """The latest attempts, newest first: sent_at, channel, alert_id, attempt, ok, status, error
    (a `Message` to render in the reader's language, or the English text of a row written before
    failures were coded; the receivers' answers for admins only)."""
    df = wh.df(
        "SELECT sent_at, channel, alert_id, attempt, ok, status, error, error_key, error_values "
        "FROM push_log ORDER BY sent_at DESC, attempt DESC LIMIT ?",
        [int(limit)],
    )
    df["error"] = [
        _failure(e, k, v, who)
        for e, k, v in zip(df["error"], df["error_key"], df["error_values"], strict=True)
    ]
    return df.drop(columns=["error_key", "error_values"])


def last_results(
    wh: Warehouse, who: Actor
) -> dict[str, tuple[datetime, bool, Message | str | None]]:
    """Each channel's latest attempt: (when, ok, failure), the failure as `who` may read it."""
    rows = wh.rows(
        "SELECT channel, sent_at, ok, error, error_key, error_values FROM push_log QUALIFY "
        "row_number() OVER (PARTITION BY channel ORDER BY sent_at DESC, attempt DESC) = 1"
    )
    return {r[0]: (r[1], bool(r[2]), _failure(r[3], r[4], r[5], who)) for r in rows}
