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
