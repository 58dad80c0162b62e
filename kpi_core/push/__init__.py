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

What lives where (config ← rendering ← transport; none imports kpi_core.alerts):

- `config`: `Channel`, `PushMessage`, `Delivery`, `PushError`; allowed hosts; a channel's
  problems; saving, enabling, deleting and reading channels (`push_channel`);
- `rendering`: `render` — the payload per kind of channel, digests, links; `dingtalk_sign`;
- `transport`: `deliver`, `send_test`, HTTP and SMTP with retries, `push_log` and its readers.

Callers write `from kpi_core import push` and use the names below; anything else is imported
from its submodule (a test that replaces a function replaces it there).
"""

from kpi_core.push.config import (
    KINDS,
    LANGS,
    SECURITY,
    SEVERITIES,
    Channel,
    Delivery,
    PushError,
    PushMessage,
    allowed_hosts,
    channel,
    channels,
    delete_channel,
    mask,
    recipients,
    save_channel,
    set_enabled,
    smtp_address,
    smtp_url,
)
from kpi_core.push.rendering import WECOM_LIMIT, dingtalk_sign, links_note, render
from kpi_core.push.transport import (
    TIMEOUT,
    deliver,
    last_results,
    recent_log,
    send_test,
    shown_error,
    shown_said,
)

__all__ = [
    "KINDS", "LANGS", "SECURITY", "SEVERITIES", "TIMEOUT", "WECOM_LIMIT", "Channel", "Delivery",
    "PushError", "PushMessage", "allowed_hosts", "channel", "channels", "delete_channel",
    "deliver", "dingtalk_sign", "last_results", "links_note", "mask", "recent_log",
    "recipients", "render", "save_channel", "send_test", "set_enabled", "shown_error", "shown_said",
    "smtp_address", "smtp_url",
]  # fmt: skip
