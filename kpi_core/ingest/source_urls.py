"""A source's URL and query, judged before anything connects: no password in the URL, references
only to the sources' vault, no option that reaches past the database, file paths confined;
the query one SELECT in the database's dialect (`source_query`)."""

from __future__ import annotations

import re
from pathlib import Path

from kpi_core.ingest import source_files
from kpi_core.ingest.source_files import SourceError
from kpi_core.ingest.source_query import check_query as _check_query
from kpi_core.messages import Items, Message
from kpi_core.references import SOURCES, expand, is_reference, mask, not_in_vault, outside
from kpi_core.references import redact as _redact
from kpi_core.references import values as _values

# --- URLs -----------------------------------------------------------------------------------

_FILE_SCHEMES = ("csv", "parquet")
# URL options a source may set; any other could read a file (sslkey, passfile, service), load a
# library (an ODBC driver path) or change the session (options=-c …).
_SAFE_OPTIONS = ("sslmode", "application_name", "target_session_attrs", "charset", "driver",
                 "encrypt", "trustservercertificate", "service_name")  # fmt: skip
_PASSWORD_OPTIONS = ("password", "passwd", "pwd", "pass")


def _parts(url: str):
    """The URL's parts, without SQLAlchemy's parsing mangling placeholders."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url)
    except (ArgumentError, ValueError):
        raise SourceError(
            Message("su_not_a_url", url=mask(url), example=_EXAMPLE, sqlite=_SQLITE_EXAMPLE)
        ) from None


# Examples a message shows, put in as values: their braces are not placeholders.
_EXAMPLE = "postgresql+psycopg://user:${secrets.source_secrets.erp}@host:5432/db"
_SQLITE_EXAMPLE = "sqlite:////path/to/file.db"
_REFERENCE = "${…}"
_PASSWORD_HINT = Message(
    "su_password",
    secret="user:${secrets.source_secrets.erp}@host",
    env="user:${KPI_SOURCE_SECRET_ERP}@host",
)
_HOST = Message("su_no_host", example="…@host:5432/db")


def check_url(url: str) -> None:
    """Refuse a URL that would store a password, read a secret or a file it may not, or set
    options that reach past the database."""
    if not (url or "").strip():
        raise SourceError(Message("su_no_url"))
    if _scheme(url) in _FILE_SCHEMES:
        if "${" in url:
            raise SourceError(Message("su_file_reference", ref=_REFERENCE))
        source_files.confine(str(_file_path(url)), must_exist=False)
        return
    parts = _parts(url)
    for key, value in parts.query.items():
        values = value if isinstance(value, tuple) else (value,)
        if key.lower() in _PASSWORD_OPTIONS:
            raise SourceError(_PASSWORD_HINT)
        if key.lower() not in _SAFE_OPTIONS or any(
            "/" in v or "\\" in v or "${" in v for v in values
        ):
            raise SourceError(
                Message("su_option", option=key, options=Items(_SAFE_OPTIONS, commas=True))
            )
    password = str(parts.password) if parts.password is not None else ""
    if password and not is_reference(password):
        raise SourceError(_PASSWORD_HINT)
    rest = [parts.drivername, parts.username, parts.host, parts.database]
    if any("${" in str(p or "") for p in rest):
        raise SourceError(
            Message(
                "su_reference_password_only",
                ref=_REFERENCE,
                example="user:${secrets.source_secrets.erp}@host",
            )
        )
    if bad := outside(password, SOURCES):
        raise SourceError(not_in_vault(bad[0], SOURCES))
    if _scheme(url) == "sqlite":
        path = parts.database or ""
        if not path or path == ":memory:":
            raise SourceError(Message("su_sqlite_file", example=_SQLITE_EXAMPLE))
        source_files.confine(path, must_exist=False)
    elif not parts.host or "/" in parts.host:
        raise SourceError(_HOST)


def resolve(url: str) -> str:
    """References replaced by their values, to connect (never stored or shown)."""
    return expand(url, vault=SOURCES, error=SourceError)


def redact(text: str, url: str) -> str:
    """`text` with the values of `url`'s references cut out."""
    return _redact(text, _values(url, SOURCES))


def _scheme(url: str) -> str:
    return url.split(":", 1)[0].split("+", 1)[0].lower()


def check_query(sql: str, url: str | None = None) -> str:
    """The query without a trailing semicolon, if it is one SELECT in the dialect of `url`'s
    database (DuckDB's when no URL: an export); else SourceError."""
    dialect = "duckdb" if not url or _scheme(url) in _FILE_SCHEMES else _scheme(url)
    return _check_query(sql, dialect)


def _file_path(url: str) -> Path:
    return Path(re.sub(r"^\w+:(//)?", "", url))
