"""Every setting the product reads — environment variables and `.streamlit/secrets.toml` — in one
registry. Modules ask `env(name)` and `section(name)` here instead of reading `os.environ` or the
file themselves, so `KPI_SECRETS` holds for all of them, and README.md's settings table is checked
against `SETTINGS` (tests/test_settings.py).

Nothing is cached: the file is small and read when a setting is used, so an admin's edit counts
at the next use without a restart (and each test may point `KPI_SECRETS` elsewhere).
Streamlit itself reads `[auth]` (single sign-on) from the project's `.streamlit/secrets.toml`.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent  # where relative folders in settings start
SECRETS_PATH = PROJECT / ".streamlit" / "secrets.toml"


@dataclass(frozen=True)
class Setting:
    name: str  # an environment variable (a prefix ends in "…"), or "[section] key" of secrets.toml
    default: str
    meaning: str


SETTINGS: tuple[Setting, ...] = (
    Setting("KPI_SECRETS", ".streamlit/secrets.toml", "another secrets file (a second site, the tests); every setting below from secrets.toml is read from it"),
    Setting("KPI_WAREHOUSE", "—", "the warehouse: a DuckDB file, or PostgreSQL's `postgresql+psycopg://user:password@host:port/db` (without the password, libpq reads `PGPASSWORD` or `~/.pgpass`); beats `[warehouse] path` (`--warehouse` beats both)"),
    Setting("[warehouse] path", "data/warehouse.duckdb", "the warehouse: a DuckDB file or a PostgreSQL URL"),
    Setting("KPI_USER", "—", "the user a command acts as when `--user` is not given"),
    Setting("KPI_TODAY", "the system's date", "fixes the day (YYYY-MM-DD) for a process and those it starts"),
    Setting("KPI_VALIDATE_CHARTS", "0", "1: check every chart against Vega-Lite's schema each time it is built, not only the first (the tests set it)"),
    Setting("KPI_MAX_UPLOAD_MB", "20", "the largest file the intake reads"),
    Setting("KPI_SOURCE_DIRS", "—", "folders file sources may read, separated by the system's path separator; beats `[sources] file_dirs`"),
    Setting("[sources] file_dirs", "data/exports", "folders file sources may read (a string or a list)"),
    Setting("KPI_SOURCE_SECRET_…", "—", "values a source's `${KPI_SOURCE_SECRET_NAME}` reference may read"),
    Setting("[source_secrets] NAME", "—", "values a source's `${secrets.source_secrets.NAME}` reference may read"),
    Setting("KPI_PUSH_SECRET_…", "—", "values a push channel's `${KPI_PUSH_SECRET_NAME}` reference may read"),
    Setting("[push] NAME", "—", "values a push channel's `${secrets.push.NAME}` reference may read"),
    Setting("KPI_COOKIE_SECRET", "a random one per start", "`python -m kpi_core.serving`: Streamlit's `server.cookieSecret` shared by its processes (its XSRF cookie must be accepted by any of them)"),
    Setting("KPI_APP_URL", "—", "the app's address as its users reach it, for the links in pushed alerts; beats `[push] app_url`"),
    Setting("[push] app_url", "— (no links in pushes)", "the app's address as its users reach it, for the links in pushed alerts"),
    Setting("[push] allowed_hosts", "any host", "the hosts push channels may send to (`*.example.com` for the names below one)"),
    Setting("[sign_in] max_failures", "5", "failed sign-ins in a row before the user is locked"),
    Setting("[sign_in] lock_minutes", "15", "how long a lock lasts"),
    Setting("[sign_in] idle_minutes", "60", "a session without a script run this long ends"),
    Setting("[sign_in] session_hours", "12", "a session ends this long after signing in"),
    Setting("[sign_in] cookie_secret", "a key kept in the warehouse", "signs the session cookie (≥ 32 characters)"),
    Setting("[sso] groups_claim", "groups", "the identity's claim that lists its groups"),
    Setting("[sso.groups] GROUP", "—", "`{ role = …, scope = [...] }`: creates a user on first single sign-on"),
    Setting("[backup] dir", "backups/ next to the warehouse", "where backups are written"),
    Setting("[backup] keep", "all", "how many backups are kept"),
    Setting("[backup] max_mb", "1024", "the largest database a backup may unpack to"),
)  # fmt: skip

_ENV = {s.name.removesuffix("…") for s in SETTINGS if not s.name.startswith("[")}
_SECTIONS = {s.name[1:].split("]")[0].split(".")[0] for s in SETTINGS if s.name.startswith("[")}


def env(name: str) -> str | None:
    """An environment variable the registry lists (a name under a listed prefix too)."""
    if name not in _ENV and not any(p.endswith("_") and name.startswith(p) for p in _ENV):
        raise ValueError(f"Unknown setting '{name}' — add it to settings.SETTINGS.")
    return os.environ.get(name)


def environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a process this one starts (an app server, a command): this process's
    own, so that every setting above reaches it, with `extra` on top."""
    return {**os.environ, **(extra or {})}


def secrets_path() -> Path:
    """`KPI_SECRETS` (another secrets file: a second site, the tests) beats the project's own."""
    return Path(env("KPI_SECRETS") or SECRETS_PATH)


def read_secrets() -> dict:
    path = secrets_path()
    if not path.exists():
        return {}
    with path.open("rb") as fh:
        return tomllib.load(fh)


def secrets_files() -> list[Path]:
    """The secrets file in use and the project's own (no file source may read either)."""
    return [secrets_path(), SECRETS_PATH]


def reference(name: str) -> str | None:
    """The environment variable a `${NAME}` placeholder names; references.py confines which
    names typed text may use (its vaults), text from the secrets file may name any."""
    return os.environ.get(name)


def references_under(prefix: str) -> list[str]:
    """The values of the environment variables named `prefix`… (a vault's): what a fault's text
    is cleaned of before it is logged (kpi_core/references.py `held`)."""
    return [value for name, value in os.environ.items() if name.startswith(prefix) and value]


def section(name: str) -> dict:
    """One `[section]` of the secrets file, empty when it is not there."""
    if name not in _SECTIONS:
        raise ValueError(f"Unknown settings section '[{name}]' — add it to settings.SETTINGS.")
    return read_secrets().get(name, {})
