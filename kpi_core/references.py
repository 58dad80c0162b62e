"""Secrets by reference: `${ENV_VAR}` or `${secrets.section.key}` written where a password or
token would go, resolved from the environment or `.streamlit/secrets.toml` only when used.

What the warehouse stores (database source URLs, push channel settings) holds references, never
the secrets themselves; this module tells them apart and fills them in.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from urllib.parse import quote as url_quote

from kpi_core.errors import KpiError
from kpi_core.warehouse import SECRETS_PATH

PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")


def is_reference(text: str) -> bool:
    """True when `text` is one placeholder and nothing else: `${X}` or `${secrets.a.b}`."""
    return bool(PLACEHOLDER.fullmatch((text or "").strip()))


def has_reference(text: str) -> bool:
    """True when `text` holds a placeholder anywhere (`Bearer ${TOKEN}`)."""
    return bool(PLACEHOLDER.search(text or ""))


def expand(text: str, *, quote: bool = True, error: type[KpiError] = KpiError) -> str:
    """`text` with each placeholder replaced by its value, to use it (never to store or show).
    Values are percent-encoded when `quote` (a part of a URL); `error` is what a missing value
    raises, so each caller reports it in its own kind of error."""

    def value(m: re.Match) -> str:
        key = m[1].strip()
        if key.startswith("secrets."):
            got: object = read_secrets()
            for part in key.split(".")[1:]:
                got = got.get(part) if isinstance(got, dict) else None
            if got is None:
                raise error(f"{key} is not set in .streamlit/secrets.toml")
            text = str(got)
        elif key in os.environ:
            text = os.environ[key]
        else:
            raise error(f"the environment variable {key} is not set")
        return url_quote(text, safe="") if quote else text

    return PLACEHOLDER.sub(value, text)


def mask(url: str) -> str:
    """The URL as it may be shown: password hidden, even a placeholder's value."""
    return re.sub(r"(//[^:/@]+:)[^@]*@", r"\1***@", url)


def secrets_path() -> Path:
    """`KPI_SECRETS` (another secrets file: a second site, the tests) beats the project's own."""
    return Path(os.environ.get("KPI_SECRETS") or SECRETS_PATH)


def read_secrets() -> dict:
    path = secrets_path()
    if not path.exists():
        return {}
    with path.open("rb") as fh:
        return tomllib.load(fh)
