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

What lives where (each imports only those above it):

- `source_query`, `source_urls`: the query one SELECT; the URL safe (`check_url`, `resolve`);
- `source_sql`: the SQL built around a checked query (derived table, date window);
- `source_files`, `source_pg`, `source_connections`: reading exports, SQLite and PostgreSQL
  safely; connecting (`test_connection`, `tables`, `explain`);
- `source_store`: `Source` and the saved sources (`save`, `load`, `listing`, `delete`);
- this module: pulling (`sample`, `prepare_pull`), and the names above that callers use as
  `sources.<name>`, listed in `__all__`.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from datetime import date

import duckdb
import pandas as pd

from kpi_core.access import Actor
from kpi_core.catalog import load_catalog
from kpi_core.ingest import aggregation, intake, places, profile, source_files, source_pg
from kpi_core.ingest.layout import Finding, Records
from kpi_core.ingest.names import Names, norm
from kpi_core.ingest.source_connections import (
    Probe,
    _engine,
    _file_db,
    _pg_target,
    _reading,
    _sqlite,
    explain,
    tables,
    test_connection,
)
from kpi_core.ingest.source_files import SourceError, TimeLimit, source_dirs
from kpi_core.ingest.source_pg import Caution
from kpi_core.ingest.source_sql import _quote, _subquery, _windowed
from kpi_core.ingest.source_store import (
    DEFAULT_ROW_LIMIT,
    DEFAULT_TIMEOUT_S,
    NO_NAME,
    Source,
    delete,
    last_pulled_month,
    listing,
    load,
    save,
)
from kpi_core.ingest.source_urls import (
    _FILE_SCHEMES,
    _scheme,
    check_query,
    check_url,
    redact,
    resolve,
)
from kpi_core.messages import Items, Message
from kpi_core.periods import add_months
from kpi_core.references import mask
from kpi_core.warehouse import Warehouse

__all__ = [
    "DEFAULT_ROW_LIMIT", "DEFAULT_TIMEOUT_S", "NO_NAME", "Caution", "Probe", "Source", "SourceError",
    "TimeLimit", "check_query", "check_url", "delete", "explain", "last_pulled_month", "listing",
    "load", "mask", "prepare_pull", "redact", "resolve", "sample", "save", "source_dirs",
    "source_files", "tables", "test_connection",
]  # fmt: skip


CHUNK_ROWS = 100_000


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
            raise SourceError(Message("sf_row_limit", n=row_limit))
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
                        said = str(exc).splitlines()[0]
                        raise SourceError(Message("sf_file_query", error=said)) from None
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
        raise SourceError(Message("so_not_complete", name=source.name, problems=Items(problems)))
    cat = load_catalog(wh)
    if not cat.kpis or not cat.units:
        raise intake.IntakeError(Message("in_no_library_pull"))
    if new_only and first is None:
        done = last_pulled_month(wh, source.name)
        first = add_months(done, 1) if done else None
    sql = check_query(source.query, source.url)
    after = add_months(last, 1) if last is not None else None
    step(0.05, Message("up_step_querying", url=mask(source.url)))
    mem = duckdb.connect()
    try:
        if _scheme(source.url) == "postgresql":
            columns = _copy_postgres(mem, source, sql, first, after, step)
        else:
            windowed, params = _windowed(source.url, sql, source.mapping.date_column, first, after)
            columns = _load_chunks(mem, source, windowed, params, step)
        where = places.source(source.name)  # the findings' "file"
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
                    Message("so_no_rows"),
                    Message("so_check_query"),
                )  # fmt: skip
            )
        else:
            missing = _missing_columns(source.mapping, columns)
            returned = Items(columns[:30], commas=True)
            for name, what in missing:
                findings.append(
                    Finding(
                        "error", where, "", None, name,
                        Message("so_not_in_result", what=profile.COLUMN_WORDS[what], column=name),
                        Message("so_returns", columns=returned),
                    )
                )  # fmt: skip
            if not missing:
                step(0.55, Message("up_step_aggregating"))
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
        step(min(0.05 + rows / max(source.row_limit, 1), 0.5), Message("up_step_rows", n=rows))
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
                raise SourceError(Message("sf_row_limit", n=source.row_limit))
            if rows % 100_000 < 2000:
                step(
                    min(0.05 + rows / max(source.row_limit, 1), 0.5),
                    Message("up_step_rows", n=rows),
                )

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
        where, "", places.source(source.name),
        Message("so_fix_number"), Message("so_fix_date"),
    )  # fmt: skip
    return aggregation.aggregate(mem, source.mapping, columns, place, first=first, after=after)
