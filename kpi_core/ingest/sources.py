"""Database sources: a saved SQLAlchemy URL and query, mapped to KPIs by a mapping profile, pulled
into the same check, preview, batch and roll-back as an Excel upload.

Everything a source holds is typed by an analyst and treated as hostile:
- the query must be exactly one SELECT (or WITH … SELECT), judged by a real parser
  (`source_query`), and every reader puts it inside a derived table, read-only and time-limited:
  PostgreSQL in `BEGIN READ ONLY` with `SET LOCAL statement_timeout`, never a simple-protocol
  query (`source_pg`); SQLite opened read-only with an authorizer and a deadline; CSV and Parquet
  exports in a DuckDB that can read that one file and nothing else (`source_files`);
- file paths (exports, SQLite) are confined to the folders an admin allowed;
- a URL holds no password: the password field alone may hold a reference to the
  `[source_secrets]` section of `.streamlit/secrets.toml` or to an environment variable named
  `KPI_SOURCE_SECRET_…` (`${secrets.source_secrets.erp}`, `${KPI_SOURCE_SECRET_ERP}`), resolved
  only to connect; URLs shown anywhere are masked, and a resolved value is cut out of any message.

The rows stream from the source in chunks into an in-memory DuckDB table, and the profile's
month/unit aggregation runs there as SQL (memory stays bounded, and 1M order lines aggregate in
DuckDB instead of in Python). A date range is pushed down to the source as a filter around the
user's query, so an incremental pull reads only the new months.

CSV and Parquet exports are sources too: `csv:///path/orders.csv` or `parquet:///path/x.parquet`
is read by DuckDB as a table named after the file, and the query runs in DuckDB.
"""

from __future__ import annotations

import csv
import json
import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import duckdb
import pandas as pd

from kpi_core import audit
from kpi_core.access import can
from kpi_core.catalog import load_catalog
from kpi_core.errors import NotFoundError, ScopeError
from kpi_core.ingest import aggregation, intake, profile, source_files, source_pg
from kpi_core.ingest.layout import Finding, Records
from kpi_core.ingest.names import Names, norm
from kpi_core.ingest.source_files import SourceError, TimeLimit, source_dirs
from kpi_core.ingest.source_pg import Caution
from kpi_core.ingest.source_query import check_query as _check_query
from kpi_core.periods import add_months
from kpi_core.references import SOURCES, expand, is_reference, mask, not_in_vault, outside
from kpi_core.references import redact as _redact
from kpi_core.references import values as _values
from kpi_core.service import Actor
from kpi_core.warehouse import Warehouse

__all__ = ["Caution", "Probe", "Source", "SourceError", "TimeLimit", "source_dirs"]

DEFAULT_ROW_LIMIT = 5_000_000
DEFAULT_TIMEOUT_S = 120
CHUNK_ROWS = 100_000


@dataclass
class Source:
    name: str
    url: str  # the password, if any, is a reference (${secrets.source_secrets.x}), never literal
    query: str
    mapping: profile.Profile
    row_limit: int = DEFAULT_ROW_LIMIT
    timeout_s: int = DEFAULT_TIMEOUT_S

    def problems(self, columns: list[str] | None = None) -> list[str]:
        """What keeps the source from being saved or pulled, in words. With the `columns` its
        query returns (a sample), every column the mapping names must be one of them."""
        out = []
        if not self.name.strip():
            out.append("give the source a name")
        try:
            check_url(self.url)
        except SourceError as exc:
            out.append(str(exc))
        try:
            check_query(self.query, self.url)
        except SourceError as exc:
            out.append(str(exc))
        # A source's mapping is named after the source.
        if columns is not None:
            have = {norm(c) for c in columns}
            for name, what in ((self.mapping.date_column, "date"),
                               (self.mapping.unit_column, "unit")):  # fmt: skip
                if name and norm(name) not in have:
                    out.append(f"the {what} column '{name}' is not in the query's result")
        out += [
            p
            for p in self.mapping.problems(columns, within="the query's result")
            if p != "give the profile a name"
        ]
        if self.row_limit < 1 or self.timeout_s < 1:
            out.append("the row limit and the time limit must be positive")
        return out


@dataclass(frozen=True)
class Probe:
    """What Test connection found: the server's own words, and what a read-only account would
    not be able to do (PostgreSQL)."""

    said: str
    cautions: list[Caution] = field(default_factory=list)


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
            f"'{mask(url)}' is not a database URL — write it like "
            "postgresql+psycopg://user:${secrets.source_secrets.erp}@host:5432/db or "
            "sqlite:////path/to/file.db"
        ) from None


_PASSWORD_HINT = (
    "the URL holds a password — it would be stored in plain text. Put it in the "
    "[source_secrets] section of .streamlit/secrets.toml or in an environment variable named "
    "KPI_SOURCE_SECRET_…, and write user:${secrets.source_secrets.erp}@host or "
    "user:${KPI_SOURCE_SECRET_ERP}@host in its place"
)


def check_url(url: str) -> None:
    """Refuse a URL that would store a password, read a secret or a file it may not, or set
    options that reach past the database."""
    if not (url or "").strip():
        raise SourceError("write the connection URL")
    if _scheme(url) in _FILE_SCHEMES:
        if "${" in url:
            raise SourceError(
                "a file source's path cannot hold a reference (${…}) — write the path itself"
            )
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
                f"the URL's option '{key}' is not allowed for a source (it could read files or "
                "change the session) — the options a source may set are " + ", ".join(_SAFE_OPTIONS)
            )
    password = str(parts.password) if parts.password is not None else ""
    if password and not is_reference(password):
        raise SourceError(_PASSWORD_HINT)
    rest = [parts.drivername, parts.username, parts.host, parts.database]
    if any("${" in str(p or "") for p in rest):
        raise SourceError(
            "a reference (${…}) may stand only for the password (user:${secrets.source_secrets."
            "erp}@host) — write the rest of the URL as it is"
        )
    if bad := outside(password, SOURCES):
        raise SourceError(not_in_vault(bad[0], SOURCES))
    if _scheme(url) == "sqlite":
        path = parts.database or ""
        if not path or path == ":memory:":
            raise SourceError("a SQLite source needs a database file: sqlite:////path/to/file.db")
        source_files.confine(path, must_exist=False)
    elif not parts.host or "/" in parts.host:
        raise SourceError("write the database server's host name in the URL (…@host:5432/db)")


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


def _subquery(sql: str, alias: str = "kpi_src") -> str:
    """The checked query as a derived table: a database reads one query expression, whatever the
    text holds; the newline ends a trailing `-- comment` before the parenthesis."""
    return f"SELECT * FROM ({sql}\n) AS {alias}"  # noqa: S608 - checked by a parser


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
        raise SourceError(
            f"'{scheme}' is not a database KPI Monitor knows — check the start of the URL"
        ) from None
    except ModuleNotFoundError as exc:
        raise SourceError(
            f"the driver for {scheme} is not installed ({exc.name}): install "
            f"{_DRIVERS.get(scheme, exc.name)}"
        ) from None
    except ArgumentError as exc:
        raise SourceError(f"the URL cannot be used: {exc}") from None
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
    text = redact(str(said), url)
    if text == str(said):
        return said
    return type(said)(text) if type(said) is SourceError else SourceError(text)


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
        return SourceError(f"{where}: the user name or password is wrong ({first})")
    if "timeout expired" in low or "timed out" in low and "statement" not in low:
        return SourceError(f"{where}: the server did not answer in time — check host and port")
    if any(s in low for s in ("connection refused", "could not translate host", "name or service",
                              "no route to host", "could not connect", "can't connect")):  # fmt: skip
        return SourceError(
            f"{where}: cannot reach the server ({first}) — check the host, the port and that "
            "the database is running"
        )
    if "does not exist" in low and "database" in low:
        return SourceError(f"{where}: {first} — check the database name in the URL")
    if (
        "canceling statement due to statement timeout" in low
        or "max_execution_time" in low
        or low == "interrupted"
    ):
        return TimeLimit()
    if "authentication method requirement" in low:
        return SourceError(
            f"{where}: the server asked for the password in clear text, which a source never "
            "sends — have it use scram-sha-256 authentication"
        )
    if "read-only" in low or "readonly" in low or "attempt to write" in low:
        return SourceError(f"the source refused to write: a source query may only read ({first})")
    if "not authorized" in low or "one statement at a time" in low:
        return SourceError(f"the source refused the query: a source query may only read ({first})")
    if (
        "syntax error" in low
        or "no such column" in low
        or "no such table" in low
        or ("does not exist" in low)
    ):
        return SourceError(f"the database rejected the query: {first}")
    if isinstance(exc, ModuleNotFoundError):
        return SourceError(f"a driver is not installed ({exc.name})")
    return SourceError(f"{where}: {first}")


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
            return Probe(f"{path.name}: {scheme.upper()} file, {path.stat().st_size:,} bytes")
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


def _file_path(url: str) -> Path:
    return Path(re.sub(r"^\w+:(//)?", "", url))


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


# --- pulling ---------------------------------------------------------------------------------


def _chunks(
    url: str, sql: str, params: list | dict, timeout_s: int, row_limit: int
) -> Iterator[pd.DataFrame]:
    """The rows of `sql` (built around a checked query) in chunks, read-only, within the time
    limit, counted against the row limit. Not PostgreSQL (`_copy_postgres`, `sample`)."""
    seen = 0

    def count(df: pd.DataFrame) -> pd.DataFrame:
        nonlocal seen
        seen += len(df)
        if seen > row_limit:
            raise SourceError(
                f"the query returns more than {row_limit:,} rows (the source's row limit) — "
                "aggregate in the query, narrow its months, or raise the limit"
            )
        return df

    scheme = _scheme(url)
    if scheme in _FILE_SCHEMES:
        with _reading(url):
            con = _file_db(url)
        try:
            with source_files.watchdog(timeout_s, con.interrupt) as stopped:
                try:
                    result = con.execute(sql, params)
                    while not stopped():
                        part = result.fetch_df_chunk(max(CHUNK_ROWS // 2048, 1))
                        if not len(part):
                            return
                        yield count(part)
                except duckdb.Error as exc:
                    if not stopped():
                        raise SourceError(
                            f"the query cannot run on the file: {str(exc).splitlines()[0]}"
                        ) from None
                raise TimeLimit()
        finally:
            con.close()
    if scheme == "sqlite":
        with _reading(url), _sqlite(url, timeout_s) as con:
            for part in pd.read_sql(sql, con, params=params or None, chunksize=CHUNK_ROWS,
                                    coerce_float=True):  # fmt: skip
                yield count(part)
        return
    from sqlalchemy import text

    with _reading(url):
        engine = _engine(url, timeout_s)
        try:
            with engine.connect() as con:
                con = con.execution_options(stream_results=True, max_row_buffer=CHUNK_ROWS)
                for part in pd.read_sql(text(sql), con, params=params or None,
                                        chunksize=CHUNK_ROWS, coerce_float=True):  # fmt: skip
                    yield count(part)
        finally:
            engine.dispose()


def sample(url: str, query: str, n: int = 50, timeout_s: int = 30) -> pd.DataFrame:
    """The first `n` rows of the query, to see its columns and values before mapping them."""
    check_url(url)
    sql = check_query(query, url)
    if _scheme(url) == "postgresql":
        with _reading(url), source_pg.read_only(_pg_target(url), timeout_s) as con:
            return source_pg.sample(con, sql, n)
    limited = f"{_subquery(sql, 'kpi_sample')} LIMIT {int(n)}"
    for part in _chunks(url, limited, [], timeout_s, row_limit=10**12):
        return part.head(n)
    return pd.DataFrame()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _windowed(url: str, sql: str, date_column: str, first: date | None, after: date | None):
    """The user's query as a derived table inside a date filter, so the source reads only the
    months asked for: (SQL, parameters) — `?` and a list for DuckDB and SQLite, `:name` and a
    dict for SQLAlchemy."""
    scheme = _scheme(url)
    if scheme == "sqlite" or scheme in _FILE_SCHEMES:
        # Their dates are often text (20/01/19), which no string comparison orders: the rows
        # are read whole and the aggregation keeps the months after reading the dates.
        return _subquery(sql), []
    conds: list[str] = []
    params: dict = {}
    col = _quote(date_column)
    if scheme in ("mysql", "mariadb"):
        col = "`" + date_column.replace("`", "``") + "`"
    for name, op, day in (("kpi_first", ">=", first), ("kpi_after", "<", after)):
        if day is not None:
            conds.append(f"kpi_src.{col} {op} :{name}")
            params[name] = day
    where = f" WHERE {' AND '.join(conds)}" if conds else ""
    return _subquery(sql) + where, params


def prepare_pull(
    wh: Warehouse,
    source: Source,
    who: Actor,
    *,
    first: date | None = None,
    last: date | None = None,
    new_only: bool = False,
    today: date | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> intake.Intake:
    """Run the source's query (read-only, limited), aggregate by the mapping, check and diff.
    Writes nothing to the warehouse and nothing to the source."""
    step = progress or (lambda fraction, text: None)
    if problems := source.problems():
        raise SourceError(f"Source '{source.name}' is not complete: " + "; ".join(problems))
    cat = load_catalog(wh)
    if not cat.kpis or not cat.units:
        raise intake.IntakeError(
            "The warehouse has no KPI library or org units yet: import a KPI-system workbook "
            "first, or start from the demo (init --demo)."
        )
    if new_only and first is None:
        done = last_pulled_month(wh, source.name)
        first = add_months(done, 1) if done else None
    sql = check_query(source.query, source.url)
    after = add_months(last, 1) if last is not None else None
    step(0.05, f"Querying {mask(source.url)}")
    mem = duckdb.connect()
    try:
        if _scheme(source.url) == "postgresql":
            columns = _copy_postgres(mem, source, sql, first, after, step)
        else:
            windowed, params = _windowed(source.url, sql, source.mapping.date_column, first, after)
            columns = _load_chunks(mem, source, windowed, params, step)
        where = f"source '{source.name}'"
        findings: list[Finding] = []
        records = Records()
        empty = not columns or mem.execute("SELECT count(*) FROM pulled").fetchall()[0][0] == 0
        if empty:
            findings.append(
                Finding(
                    # Nothing in the months asked for is news, not a fault (cron pulls --new).
                    "info" if first is not None or last is not None else "error",
                    where,
                    "",
                    None,
                    None,
                    "the query returned no rows",
                    "check the query and its months",
                )  # fmt: skip
            )
        else:
            missing = _missing_columns(source.mapping, columns)
            for name, what in missing:
                findings.append(
                    Finding(
                        "error", where, "", None, name,
                        f"the {what} column '{name}' is not in the query's result",
                        f"the query returns: {', '.join(columns[:30])}",
                    )
                )  # fmt: skip
            if not missing:
                step(0.55, "Aggregating by month and unit")
                records, found = _records(mem, source, columns, where, first, after)
                findings += found
    finally:
        mem.close()
    names = Names(cat)
    return intake.check_and_diff(
        wh, cat, names, records, findings, who, source=source.name, kind="pull",
        file_names=[mask(source.url)], sha256="", today=today, step=step, where=where,
    )  # fmt: skip


def _load_chunks(mem, source: Source, sql: str, params: list | dict, step) -> list[str]:
    """Any dialect: the rows in chunks through pandas into the DuckDB table `pulled`."""
    columns: list[str] = []
    rows = 0
    for part in _chunks(source.url, sql, params, source.timeout_s, source.row_limit):
        mem.register("part", part)
        if not columns:
            columns = [str(c) for c in part.columns]
            mem.execute("CREATE TABLE pulled AS SELECT * FROM part")
        else:
            mem.execute("INSERT INTO pulled SELECT * FROM part")
        mem.unregister("part")
        rows += len(part)
        step(min(0.05 + rows / max(source.row_limit, 1), 0.5), f"{rows:,} rows read")
    return columns


def _copy_postgres(
    mem, source: Source, sql: str, first: date | None, after: date | None, step
) -> list[str]:
    """PostgreSQL: the rows as CSV through COPY … TO STDOUT into a temp file that DuckDB reads.
    Several times faster than a cursor (no Python object per value), memory bounded by the
    file. Every column arrives as text; the aggregation casts what it needs (as it does for
    any source). Read-only, time-limited, one statement (`source_pg`)."""
    import tempfile

    rows = 0
    with tempfile.NamedTemporaryFile(suffix=".csv") as tmp:

        def write(block: bytes) -> None:
            nonlocal rows
            tmp.write(block)
            rows += block.count(b"\n")
            if rows > source.row_limit + 1:
                raise SourceError(
                    f"the query returns more than {source.row_limit:,} rows (the source's row "
                    "limit) — aggregate in the query, narrow its months, or raise the limit"
                )
            if rows % 100_000 < 2000:
                step(min(0.05 + rows / max(source.row_limit, 1), 0.5), f"{rows:,} rows read")

        with _reading(source.url):
            target = _pg_target(source.url)
            with source_pg.read_only(target, source.timeout_s) as con:
                statement = source_pg.copy_text(con, sql, source.mapping.date_column, first, after)
                source_pg.copy_out(con, statement, write)
        tmp.flush()
        if rows <= 1:  # the header only: an empty table with its columns
            with open(tmp.name, newline="", encoding="utf-8") as fh:
                header = next(csv.reader(fh), [])
            if header:
                mem.execute(
                    "CREATE TABLE pulled ("  # identifiers quoted by _quote
                    + ", ".join(f"{_quote(h)} VARCHAR" for h in header)
                    + ")"
                )
            return header
        mem.execute(
            "CREATE TABLE pulled AS SELECT * FROM read_csv(?, header = true, all_varchar = true)",
            [tmp.name],
        )
    return [r[0] for r in mem.execute("DESCRIBE pulled").fetchall()]


def _missing_columns(mapping: profile.Profile, columns: list[str]) -> list[tuple[str, str]]:
    have = {norm(c) for c in columns}
    needed = [(mapping.date_column, "date"), (mapping.unit_column, "unit")]
    for m in mapping.measures:
        needed += [(c, "measure") for c in m.columns()]
        needed += [(c, "filter") for f in m.filters for c in f.columns()]
    return [(n, what) for n, what in needed if n and norm(n) not in have]


def _records(
    mem, source: Source, columns: list[str], where: str, first: date | None, after: date | None
) -> tuple[Records, list[Finding]]:
    """The same aggregation as a profile's on an uploaded sheet (`aggregation`); a row is the
    query result's, in the order it came."""
    place = aggregation.Place(
        where, "", f"source '{source.name}'",
        "cast the column to a number in the query, or filter those rows out "
        "(the row is the query result's)",
        "set the date format of the source's mapping, or fix the query so the column holds "
        "dates (the row is the query result's)",
    )  # fmt: skip
    return aggregation.aggregate(mem, source.mapping, columns, place, first=first, after=after)


def last_pulled_month(wh: Warehouse, name: str) -> date | None:
    got = wh.one(
        """SELECT max(a.period) FROM actual a JOIN batch b ON b.id = a.batch_id
           WHERE b.kind = 'pull' AND b.source_name = ? AND b.status = 'committed'""",
        [name],
    )
    return got[0] if got else None


# --- saved sources ----------------------------------------------------------------------------


def save(wh: Warehouse, source: Source, who: Actor) -> None:
    if not can(who, "define_sources"):
        raise ScopeError("Only analysts and admins define database sources.")
    if problems := source.problems():
        raise SourceError(f"Source '{source.name}' is not complete: " + "; ".join(problems))
    mapping = json.loads(source.mapping.to_json())
    now = datetime.now()
    with wh.transaction() as cur:
        old = cur.execute("SELECT url, query FROM source WHERE name = ?", [source.name]).fetchall()
        cur.execute(
            "INSERT OR REPLACE INTO source VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [source.name, source.url, source.query, json.dumps(mapping, ensure_ascii=False),
             source.row_limit, source.timeout_s, who.name, now],
        )  # fmt: skip
        audit.record(
            cur, changed_at=now, changed_by=who.name, entity="source", key=source.name,
            field="definition", old=f"{mask(old[0][0])}\n{old[0][1]}" if old else None,
            new=f"{mask(source.url)}\n{source.query}", reason="",
        )  # fmt: skip


def load(wh: Warehouse, name: str) -> Source:
    rows = wh.rows(
        "SELECT name, url, query, mapping, row_limit, timeout_s FROM source WHERE name = ?", [name]
    )
    if not rows:
        known = [r[0] for r in wh.rows("SELECT name FROM source ORDER BY name")]
        raise NotFoundError(
            f"There is no source '{name}'."
            + (f" Sources: {', '.join(known)}." if known else " None is defined yet.")
        )
    n, url, query, mapping, row_limit, timeout_s = rows[0]
    return Source(n, url, query, profile.Profile.from_json(mapping), row_limit, timeout_s)


def listing(wh: Warehouse) -> pd.DataFrame:
    """Sources with masked URLs and their last pull."""
    df = wh.df(
        """SELECT s.name, s.url, s.row_limit, s.timeout_s, s.updated_by, s.updated_at,
                  max(b.created_at) AS last_pull
           FROM source s LEFT JOIN batch b ON b.kind = 'pull' AND b.source_name = s.name
                AND b.status = 'committed'
           GROUP BY ALL ORDER BY s.name"""
    )
    df["url"] = df["url"].map(mask)
    return df


def delete(wh: Warehouse, name: str, who: Actor) -> None:
    if not can(who, "define_sources"):
        raise ScopeError("Only analysts and admins define database sources.")
    with wh.transaction() as cur:
        cur.execute("DELETE FROM source WHERE name = ?", [name])
        audit.record(
            cur, changed_at=datetime.now(), changed_by=who.name, entity="source", key=name,
            field="definition", old="defined", reason="",
        )  # fmt: skip
