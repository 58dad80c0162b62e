"""Connecting to a source: SQLAlchemy engines (read-only, time-limited), PostgreSQL through
`source_pg`, SQLite and CSV/Parquet exports through `source_files`; Test connection, the
table list, and a driver's error in words a user can act on (masked, secrets cut out)."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import duckdb

from kpi_core.ingest import source_files, source_pg
from kpi_core.ingest.source_files import SourceError, TimeLimit
from kpi_core.ingest.source_pg import Caution
from kpi_core.ingest.source_urls import (
    _FILE_SCHEMES,
    _file_path,
    _parts,
    _scheme,
    check_url,
    redact,
    resolve,
)
from kpi_core.messages import Message
from kpi_core.references import mask


@dataclass(frozen=True)
class Probe:
    """What Test connection found: the server's own words, and what a read-only account would
    not be able to do (PostgreSQL)."""

    said: Message | str  # an export's size is a message; a server's version its own words
    cautions: list[Caution] = field(default_factory=list)


# --- connecting -----------------------------------------------------------------------------

_DRIVERS = {
    "postgresql": "psycopg[binary] (pip install 'psycopg[binary]')",
    "mysql": "PyMySQL (pip install pymysql), and write mysql+pymysql://…",
    "mariadb": "PyMySQL (pip install pymysql), and write mariadb+pymysql://…",
    "mssql": "pyodbc and Microsoft's ODBC driver (pip install pyodbc), or pymssql",
    "oracle": "oracledb (pip install oracledb)",
}


def _engine(url: str, timeout_s: int):
    """A SQLAlchemy engine for the databases read through SQLAlchemy (and PostgreSQL's table
    list, which runs only our own queries)."""
    from sqlalchemy import create_engine, event
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError
    from sqlalchemy.pool import NullPool

    real = resolve(url)
    scheme = _scheme(real)
    args: dict = {}
    if scheme == "postgresql":
        ms = int(timeout_s * 1000)
        args = {
            "connect_timeout": 10,
            "options": f"-c default_transaction_read_only=on -c statement_timeout={ms}",
            "require_auth": "!password",
        }
    elif scheme in ("mysql", "mariadb"):
        args = {"connect_timeout": 10, "read_timeout": timeout_s, "local_infile": False}
    try:
        engine = create_engine(real, poolclass=NullPool, connect_args=args)
    except NoSuchModuleError:
        raise SourceError(Message("sc_unknown_scheme", scheme=scheme)) from None
    except ModuleNotFoundError as exc:
        raise SourceError(
            Message(
                "sc_driver_missing",
                scheme=scheme,
                module=exc.name,
                install=_DRIVERS.get(scheme, exc.name),
            )
        ) from None
    except ArgumentError as exc:
        raise SourceError(Message("sc_bad_url", error=str(exc))) from None
    if scheme in ("mysql", "mariadb"):

        @event.listens_for(engine, "connect")
        def _read_only(dbapi_con, _record):  # pragma: no cover - needs a MySQL server
            cur = dbapi_con.cursor()
            cur.execute("SET SESSION TRANSACTION READ ONLY")
            cur.execute(f"SET SESSION max_execution_time = {int(timeout_s * 1000)}")
            cur.close()

    return engine


def _pg_target(url: str) -> source_pg.Target:
    return source_pg.target(_parts(resolve(url)))


def explain(exc: BaseException, url: str) -> SourceError:
    """A driver's error in words a user can act on; the URL masked, and the values of its
    references cut out wherever the driver or the server repeated them."""
    said = _explain(exc, url)
    if redact(str(said), url) == str(said):
        return said
    if said.coded is not None:  # the driver's words are a value of the message: cut there
        values = {
            k: redact(v, url) if isinstance(v, str) else v for k, v in said.coded.values.items()
        }
        return SourceError(Message(said.coded.key, **values))
    return SourceError(redact(str(said), url))


def _explain(exc: BaseException, url: str) -> SourceError:
    if isinstance(exc, SourceError):
        return exc
    text = str(getattr(exc, "orig", None) or exc).strip()
    # pandas and SQLAlchemy wrap the driver's words: keep only those.
    text = re.sub(r"^Execution failed on sql .*?': ", "", text, flags=re.S)
    text = re.sub(r"^\([\w.]+\)\s*", "", text)
    first = text.splitlines()[0] if text else type(exc).__name__
    low = text.lower()
    where = mask(url)
    if "password authentication failed" in low or "access denied" in low:
        return SourceError(Message("sc_login_wrong", url=where, error=first))
    if "timeout expired" in low or "timed out" in low and "statement" not in low:
        return SourceError(Message("sc_no_answer", url=where))
    if any(s in low for s in ("connection refused", "could not translate host", "name or service",
                              "no route to host", "could not connect", "can't connect")):  # fmt: skip
        return SourceError(Message("sc_unreachable", url=where, error=first))
    if "does not exist" in low and "database" in low:
        return SourceError(Message("sc_no_database", url=where, error=first))
    if (
        "canceling statement due to statement timeout" in low
        or "max_execution_time" in low
        or low == "interrupted"
    ):
        return TimeLimit()
    if "authentication method requirement" in low:
        return SourceError(Message("sc_clear_text", url=where))
    if "read-only" in low or "readonly" in low or "attempt to write" in low:
        return SourceError(Message("sc_refused_write", error=first))
    if "not authorized" in low or "one statement at a time" in low:
        return SourceError(Message("sc_refused_query", error=first))
    if (
        "syntax error" in low
        or "no such column" in low
        or "no such table" in low
        or ("does not exist" in low)
    ):
        return SourceError(Message("sc_rejected", error=first))
    if isinstance(exc, ModuleNotFoundError):
        return SourceError(Message("sc_no_driver", module=exc.name))
    return SourceError(Message("sc_said", url=where, error=first))


@contextmanager
def _reading(url: str) -> Iterator[None]:
    """Any failure while a source is read becomes a SourceError a user can act on (masked)."""
    try:
        yield
    except Exception as exc:
        raise explain(exc, url) from None


def test_connection(url: str, timeout_s: int = 15) -> Probe:
    """What the server says it is, and what the account could do beyond reading; or
    SourceError."""
    check_url(url)
    scheme = _scheme(url)
    with _reading(url):
        if scheme in _FILE_SCHEMES:
            path = source_files.confine(str(_file_path(url)))
            size = path.stat().st_size
            return Probe(Message("so_file_probe", name=path.name, kind=scheme.upper(), size=size))
        if scheme == "sqlite":
            with _sqlite(url, timeout_s, user_sql=False) as con:
                return Probe("SQLite " + con.execute("SELECT sqlite_version()").fetchone()[0])
        if scheme == "postgresql":
            with source_pg.read_only(_pg_target(url), timeout_s) as con:
                version, cautions = source_pg.probe(con)
                return Probe(version, cautions)
        engine = _engine(url, timeout_s)
        try:
            with engine.connect():
                return Probe(f"{engine.dialect.name} {engine.dialect.server_version_info}")
        finally:
            engine.dispose()


def tables(url: str, timeout_s: int = 30) -> dict[str, list[str]]:
    """Tables and views (schema-qualified outside the default schema) → column names."""
    check_url(url)
    scheme = _scheme(url)
    with _reading(url):
        if scheme in _FILE_SCHEMES:
            con = _file_db(url)
            try:
                name = _file_table(url)
                return {name: [r[0] for r in con.execute(f'DESCRIBE "{name}"').fetchall()]}
            finally:
                con.close()
        if scheme == "sqlite":
            with _sqlite(url, timeout_s, user_sql=False) as con:
                names = [r[0] for r in con.execute(
                    "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
                    "AND name NOT LIKE 'sqlite_%' ORDER BY name"
                )]  # fmt: skip
                return {
                    n: [r[1] for r in con.execute("SELECT * FROM pragma_table_info(?)", [n])]
                    for n in names
                }
        from sqlalchemy import inspect

        engine = _engine(url, timeout_s)
        try:
            insp = inspect(engine)
            out = {}
            default = insp.default_schema_name
            for schema in insp.get_schema_names():
                if schema in ("information_schema", "pg_catalog") or schema.startswith("pg_"):
                    continue
                prefix = "" if schema == default else f"{schema}."
                for t in [*insp.get_table_names(schema), *insp.get_view_names(schema)]:
                    out[prefix + t] = [c["name"] for c in insp.get_columns(t, schema)]
            return out
        finally:
            engine.dispose()


def _file_table(url: str) -> str:
    return source_files.table_name(_file_path(url))


def _file_db(url: str) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the export as a view named after the file, shut off from every
    other file (`source_files.export_db`)."""
    path = source_files.confine(str(_file_path(url)))
    return source_files.export_db(path, _scheme(url))


@contextmanager
def _sqlite(url: str, timeout_s: float, *, user_sql: bool = True) -> Iterator[sqlite3.Connection]:
    path = source_files.confine(_parts(url).database or "")
    con = source_files.sqlite_db(path, timeout_s, user_sql=user_sql)
    try:
        yield con
    finally:
        con.close()
