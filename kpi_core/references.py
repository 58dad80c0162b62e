"""Secrets by reference: `${ENV_VAR}` or `${secrets.section.key}` written where a password or
token would go, resolved from the environment or `.streamlit/secrets.toml` only when used.

What the warehouse stores (database source URLs, push channel settings) holds references, never
the secrets themselves; this module tells them apart and fills them in.

A reference typed into the product may read only its own *vault*: one section of secrets.toml
and the environment variables with one prefix (`SOURCES`: `[source_secrets]` and
`KPI_SOURCE_SECRET_…`; `PUSH`: `[push]` and `KPI_PUSH_SECRET_…`). Without that, whoever may
write a reference could send any secret of the server (the sign-in cookie secret, the single
sign-on client secret, a cloud key in the environment) to a host of their choosing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote as url_quote

from kpi_core.errors import KpiError
from kpi_core.messages import Message
from kpi_core.settings import read_secrets, reference, references_under
from kpi_core.texts import N_

PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")


@dataclass(frozen=True)
class Vault:
    """Where the references of one kind of field may read."""

    section: str  # of secrets.toml: ${secrets.<section>.<key>}
    env_prefix: str  # environment variables: ${<env_prefix>NAME}
    owner: str  # who reads it, the catalog key of the word messages use: "a source"

    def example(self, name: str) -> str:
        return f"${{secrets.{self.section}.{name}}} or ${{{self.env_prefix}{name.upper()}}}"


SOURCES = Vault("source_secrets", "KPI_SOURCE_SECRET_", N_("ref_w_source"))
PUSH = Vault("push", "KPI_PUSH_SECRET_", N_("ref_w_push"))


def is_reference(text: str) -> bool:
    """True when `text` is one placeholder and nothing else: `${X}` or `${secrets.a.b}`."""
    return bool(PLACEHOLDER.fullmatch((text or "").strip()))


def has_reference(text: str) -> bool:
    """True when `text` holds a placeholder anywhere (`Bearer ${TOKEN}`)."""
    return bool(PLACEHOLDER.search(text or ""))


def outside(text: str, vault: Vault) -> list[str]:
    """The references in `text` that `vault` does not hold, as written (`${secrets.auth.x}`)."""
    return [m[0] for m in PLACEHOLDER.finditer(text or "") if not _inside(m[1].strip(), vault)]


def _inside(key: str, vault: Vault) -> bool:
    if key.startswith("secrets."):
        parts = key.split(".")
        return len(parts) == 3 and parts[1] == vault.section and bool(parts[2])
    return key.startswith(vault.env_prefix) and len(key) > len(vault.env_prefix)


def not_in_vault(reference: str, vault: Vault) -> Message:
    """The message refusing a reference outside `vault` (names the reference, never a value)."""
    return Message(
        "ref_err_not_in_vault",
        reference=reference,
        owner=Message(vault.owner),
        section=vault.section,
        prefix=vault.env_prefix,
    )


def expand(
    text: str,
    *,
    vault: Vault | None = None,
    quote: bool = True,
    error: type[KpiError] = KpiError,
) -> str:
    """`text` with each placeholder replaced by its value, to use it (never to store or show).
    Values are percent-encoded when `quote` (a part of a URL); `error` is what a missing value
    raises, so each caller reports it in its own kind of error. Text a user typed is expanded
    from its `vault` only; `vault=None` is for text that secrets.toml itself holds (a kiosk's
    token), written by whoever runs the server."""

    def value(m: re.Match) -> str:
        key = m[1].strip()
        if vault is not None and not _inside(key, vault):
            raise error(not_in_vault(m[0], vault))
        if key.startswith("secrets."):
            got: object = read_secrets()
            for part in key.split(".")[1:]:
                got = got.get(part) if isinstance(got, dict) else None
            if got is None:
                raise error(Message("ref_err_secret_unset", key=key))
            text = str(got)
        elif (found := reference(key)) is not None:
            text = found
        else:
            raise error(Message("ref_err_env_unset", key=key))
        return url_quote(text, safe="") if quote else text

    return PLACEHOLDER.sub(value, text)


def values(text: str, vault: Vault) -> list[str]:
    """The values `text`'s references stand for (those that are set), as they are and as a URL
    carries them: what `redact` must hide from any message built after they were used."""
    out: list[str] = []
    for m in PLACEHOLDER.finditer(text or ""):
        try:
            got = expand(m[0], vault=vault, quote=False)
        except KpiError:
            continue
        # As it is, as a URL carries it, and as an exception's repr shows it (a line break or a
        # non-ASCII letter in a secret is escaped there, so the plain value would not match).
        out += [got, url_quote(got, safe=""), repr(got)[1:-1], repr(got.encode())[2:-1]]
    return [v for v in dict.fromkeys(out) if v]


def held(vaults: tuple[Vault, ...] = (SOURCES, PUSH)) -> list[str]:
    """Every value the vaults hold, in the forms `values` lists: what a fault's text is cleaned
    of when no one knows which reference led to it (a page's error boundary)."""
    secrets = read_secrets()
    out: list[str] = []
    for vault in vaults:
        kept = secrets.get(vault.section)
        found = [str(v) for v in kept.values()] if isinstance(kept, dict) else []
        for got in [*found, *references_under(vault.env_prefix)]:
            out += [got, url_quote(got, safe=""), repr(got)[1:-1], repr(got.encode())[2:-1]]
    return [v for v in dict.fromkeys(out) if v]


def redact(text: str, secrets: list[str]) -> str:
    """`text` with every secret value in it replaced by ***, longest first (one may hold another)."""
    for value in sorted(secrets, key=len, reverse=True):
        text = text.replace(value, "***")
    return text


def mask(url: str) -> str:
    """The URL as it may be shown: password hidden, even a placeholder's value."""
    return re.sub(r"(//[^:/@]+:)[^@]*@", r"\1***@", url)
