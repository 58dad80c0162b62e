"""Files a source may read (CSV and Parquet exports, SQLite databases), and the least power to
read them with.

A file source's path is typed by an analyst, so it is confined: the path, with its symlinks and
`..` resolved, must lie inside a folder an admin allowed — `KPI_SOURCE_DIRS` (folders separated
by the system's path separator), else `[sources] file_dirs` in `.streamlit/secrets.toml`, else
`data/exports`; relative folders are taken from the project's root. A folder that holds the
warehouse or the secrets file is never used, and a DuckDB database (the warehouse, a copy of it,
its write-ahead log) is never a source.

An export is read by an in-memory DuckDB that can touch nothing else: the file's view is made,
then the one file is allowed and external access, extension loading and the configuration are
locked, so the query cannot read another file (`read_text`), write one (`COPY … TO`), attach a
database or install anything. A SQLite file is opened read-only with an authorizer that lets
only reads through. Both stop at the source's time limit: DuckDB is interrupted by a timer,
SQLite by a progress handler that checks the deadline.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from kpi_core import pauses, settings, warehouse
from kpi_core.errors import KpiError
from kpi_core.messages import Items, Message

DEFAULT_DIRS = ("data/exports",)
ROOT = settings.PROJECT  # where relative folders start


class SourceError(KpiError):
    """A source that cannot be reached or read; the message says what to do. Nothing written."""


def source_dirs() -> list[Path]:
    """The folders file sources may read, resolved (symlinks and `..` followed)."""
    env = settings.env("KPI_SOURCE_DIRS") or ""
    if env.strip():
        raw: list[str] = [p for p in env.split(os.pathsep) if p.strip()]
    else:
        conf = settings.section("sources").get("file_dirs")
        raw = [conf] if isinstance(conf, str) else [str(p) for p in conf or DEFAULT_DIRS]
    out = []
    for p in raw:
        path = Path(p.strip())
        out.append((path if path.is_absolute() else ROOT / path).resolve())
    return out


def _guarded() -> list[Path]:
    """Files no source may read, nor a source folder hold: the warehouses this process knows
    (with their write-ahead logs) and the secrets files."""
    paths = [Path(warehouse.resolve_path()), *warehouse.open_files()]
    paths = [p for p in paths if str(p) != ":memory:"]
    paths += [Path(str(p) + ".wal") for p in paths]
    paths += settings.secrets_files()
    return [p.resolve() for p in paths]


def _is_duckdb(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            head = fh.read(12)
    except OSError:
        return False
    return head[8:12] == b"DUCK"


def _dirs_text(dirs: list[Path]) -> Items | Message:
    return Items([str(d) for d in dirs], commas=True) if dirs else Message("sf_no_dirs")


def confine(raw: str, *, must_exist: bool = True) -> Path:
    """The file a source names, resolved, if it lies in an allowed folder; else SourceError.
    Which files exist outside the folders is never said."""
    path = Path(raw)
    dirs = source_dirs()
    if not raw or not path.is_absolute():
        example = f"{dirs[0] if dirs else '/srv/exports'}/orders.csv"
        raise SourceError(Message("sf_full_path", path=example))
    real = path.resolve()
    guarded = _guarded()
    usable = [d for d in dirs if not any(g.is_relative_to(d) for g in guarded)]
    if not any(real.is_relative_to(d) for d in usable):
        if any(real.is_relative_to(d) for d in dirs):
            raise SourceError(Message("sf_guarded_folder", path=raw))
        raise SourceError(Message("sf_outside", path=raw, dirs=_dirs_text(usable)))
    if real in guarded or real.suffix.lower() == ".wal" or _is_duckdb(real):
        raise SourceError(Message("sf_duckdb", path=raw))
    if must_exist and not real.is_file():
        raise SourceError(Message("sf_missing", path=raw))
    return real


class TimeLimit(SourceError):
    """The query ran past the source's time limit and was stopped."""

    def __init__(self) -> None:
        super().__init__(Message("sf_time_limit"))


@contextmanager
def watchdog(seconds: float, stop: Callable[[], object]) -> Iterator[Callable[[], bool]]:
    """Call `stop` once `seconds` have passed, unless the block ended first. Yields whether it
    has fired, so a caller can tell a stop from another error."""
    fired = threading.Event()

    def fire() -> None:
        fired.set()
        stop()

    timer = pauses.Timer(seconds, fire)
    timer.start()
    try:
        yield fired.is_set
    finally:
        timer.cancel()


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def table_name(path: Path) -> str:
    return re.sub(r"\W", "_", path.stem) or "data"


_CSV_TYPES = "['BOOLEAN', 'BIGINT', 'DOUBLE', 'VARCHAR']"


def export_db(path: Path, kind: str) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the export `path` (confined already) as a view named after the
    file, that can read that one file and nothing else."""
    con = duckdb.connect(
        config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            # A query naming a Python variable would otherwise read it (a replacement scan).
            "python_enable_replacements": False,
        }
    )
    # A CSV's dates stay text: DuckDB's sniffer would read 03/01/19 as 2003-01-19. The
    # aggregation reads them with the mapping's date format (`dates`), and so may a query.
    options = "" if kind == "parquet" else f", auto_type_candidates = {_CSV_TYPES}"
    reader = "read_parquet" if kind == "parquet" else "read_csv"
    try:
        # A view cannot take a bound parameter: the path goes in as a quoted string literal.
        con.execute(
            f'CREATE VIEW "{table_name(path)}" AS SELECT * FROM '  # noqa: S608
            f"{reader}({_literal(str(path))}{options})"
        )
        # DuckDB 2.0 checks access when the view is read, not when it is made: the one file
        # stays allowed, everything else is shut, and the lock keeps it so.
        con.execute(f"SET allowed_paths = [{_literal(str(path))}]")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


# SQLite asks before each step it compiles; a source's query may only read.
_SQLITE_READS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                 sqlite3.SQLITE_RECURSIVE}  # fmt: skip


def _reads_only(action: int, *_args: object) -> int:
    return sqlite3.SQLITE_OK if action in _SQLITE_READS else sqlite3.SQLITE_DENY


def sqlite_db(path: Path, timeout_s: float, *, user_sql: bool = True) -> sqlite3.Connection:
    """The SQLite file `path` (confined already), read-only, stopped at `timeout_s` seconds;
    with `user_sql`, only reading statements compile (no ATTACH, PRAGMA or write)."""
    con = sqlite3.connect(path.as_uri() + "?mode=ro", uri=True, check_same_thread=False)
    deadline = time.monotonic() + timeout_s
    # A non-zero answer interrupts the statement ("interrupted").
    con.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    if user_sql:
        con.set_authorizer(_reads_only)
    return con
