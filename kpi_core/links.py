"""Links into the app from outside it: a pushed alert opens the KPI's detail page (or, for data
that is late, the unit's Board) at the address users reach the app by.

That address is the server's operator's to say, since the app cannot know the name a reverse
proxy gives it: `KPI_APP_URL`, else `[push] app_url` in .streamlit/secrets.toml (the environment
beats the file, as for the other settings read there), e.g. `https://kpi.example.com` or
`https://intranet.example.com/kpi`. Without it no link is sent: a link to `localhost` would lead
nowhere on a phone.

A message holds its link as a *target* relative to the app (`Detail?unit=…&kpi=…&period=…`),
its codes and period URL-encoded; the address is put in front only when the message is rendered.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlencode, urlsplit

from kpi_core import settings

ENV = "KPI_APP_URL"
DETAIL = "Detail"  # pages/11_Detail.py
BOARD = "Board"  # pages/1_Board.py
EXAMPLE = "https://kpi.example.com"
# Characters that would end a link early in a message's markdown (`[label](url)`, Slack's
# `<url|label>`) or in plain text; the app's own parameters are percent-encoded, so only the
# configured address could bring them in.
_UNSAFE = re.compile(r"[\s<>()\[\]|\"'`\\{}^]")


def target(page: str, **params: str | None) -> str:
    """`page?name=value&…` relative to the app, the values percent-encoded (a space as %20)."""
    query = urlencode({k: v for k, v in params.items() if v}, quote_via=quote)
    return f"{page}?{query}" if query else page


def setting() -> tuple[str | None, str | None]:
    """(the app's address without its final slash, None) when it is set and usable;
    (None, why not) when it is set wrong; (None, None) when it is not set."""
    value = (settings.env(ENV) or "").strip()
    where = ENV
    if not value:
        conf = settings.section("push")
        value = conf.get("app_url") if isinstance(conf, dict) else None
        where = "[push] app_url in .streamlit/secrets.toml"
        if value is None or (isinstance(value, str) and not value.strip()):
            return None, None
        if not isinstance(value, str):
            return None, f'{where} must be a web address in quotes, e.g. "{EXAMPLE}"'
        value = value.strip()
    parts = urlsplit(value)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or parts.username
        or _UNSAFE.search(value)
    ):
        return None, (
            f"{where} is not the address of the app — write it like {EXAMPLE} or "
            f"{EXAMPLE}/kpi (http or https, no query)"
        )
    return value.rstrip("/"), None


def app_url() -> str | None:
    """The app's address, or None when links are off (not set, or set wrong)."""
    return setting()[0]


def absolute(base: str | None, where: str | None, lang: str | None = None) -> str | None:
    """The link a message carries: `base/where`, with the reader's language when it is known;
    None when links are off or the message has nowhere to lead."""
    if not base or not where:
        return None
    if lang in ("zh", "en"):
        where += ("&" if "?" in where else "?") + f"lang={lang}"
    return f"{base}/{where}"
