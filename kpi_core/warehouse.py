"""The warehouse: where it is (`resolve_path`, `open_warehouse`), and the DuckDB file's public
face (`Warehouse`): queries, writes in transactions, the data version, schema migrations.

How several app processes (and the command line) share one file, read-only together and one
writer at a time, is `kpi_core/shared_file.py`: `Warehouse` is a `SharedFile`.

Every commit also changes the warehouse's data version (`data_version()`, a random token in the
one row of `data_version`, set in the same transaction as the data), which the pages' caches are
keyed by. While this process has the file open, read-only or read-write, no other process can
write to it; the token is therefore read once per opening of the file (any other process may
have written while it was closed: every opening forgets it, read-only after a write too) and
then kept up to date by this process's own commits: asking for it costs no query.
"""

from __future__ import annotations

import atexit
import itertools
import os
import secrets
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import numpy as np
import pandas as pd

from kpi_core import pauses, settings
from kpi_core.migrations import MIGRATIONS
from kpi_core.shared_file import SharedFile

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "data" / "warehouse.duckdb"

# Where migrations record what they applied; made before the first of them (see migrate).
SCHEMA_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version "
    "(version INTEGER PRIMARY KEY, description VARCHAR, applied_at TIMESTAMP)"
)


def resolve_path(explicit: str | os.PathLike | None = None) -> str:
    """`--warehouse` beats `KPI_WAREHOUSE`, which beats `[warehouse] path` in secrets.toml.
    Each is a file's path or a PostgreSQL URL (`open_warehouse`)."""
    if explicit:
        return str(explicit)
    if env := settings.env("KPI_WAREHOUSE"):
        return env
    if path := settings.section("warehouse").get("path"):
        return str(path)
    return str(DEFAULT_PATH)


def open_warehouse(target: str | os.PathLike, **options: Any) -> Warehouse:
    """The warehouse at `target` (what `resolve_path` gives): a DuckDB file, or a PostgreSQL
    database named by a `postgresql+psycopg://` URL (kpi_core/pg_warehouse.py), which has the
    same public face. `options` are the file's (`linger`, `wait`)."""
    if str(target).startswith(("postgresql+psycopg://", "postgresql://", "postgres://")):
        from kpi_core.pg_warehouse import PgWarehouse  # psycopg only where it is used

        return PgWarehouse(str(target), **options)  # type: ignore[return-value]
    return Warehouse(target, **options)


def shown(target: str | os.PathLike) -> str:
    """`target` as logs, messages and pages may show it: a URL without its password."""
    if str(target).startswith(("postgresql+psycopg://", "postgresql://", "postgres://")):
        from kpi_core.pg_warehouse import redacted

        return redacted(str(target))
    return str(target)


_OPEN: weakref.WeakSet[Warehouse] = weakref.WeakSet()


def open_files() -> list[Path]:
    """The files of the warehouses this process has open (a source may never read them)."""
    return [Path(wh.path) for wh in list(_OPEN) if not wh.in_memory]


@atexit.register
def _close_all() -> None:
    # Close before the interpreter tears down daemon threads: a linger timer killed inside
    # DuckDB's close would abort the process.
    for wh in list(_OPEN):
        wh.close()


def _plain(col: np.ndarray) -> np.ndarray:
    """fetchnumpy() gives masked arrays where a column has NULLs."""
    if not isinstance(col, np.ma.MaskedArray):
        return np.asarray(col)
    kind = col.dtype.kind
    if kind == "f":
        return col.filled(np.nan)
    if kind == "M":
        return col.filled(np.datetime64("NaT"))
    if kind in "iub":
        return col.astype(float).filled(np.nan) if col.mask.any() else col.data
    return np.where(col.mask, None, col.data)


T = TypeVar("T")


def in_background(fn: Callable[..., T], *args: Any) -> Callable[..., T]:
    """Start `fn(*args)` on a thread of its own; calling the result waits for its value (and
    raises its exception). DuckDB lets go of the GIL while a query runs, so a query started
    here overlaps the caller's own queries and Python on the second core."""
    future: Future = Future()

    def run() -> None:
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # handed to the caller, who decides
            future.set_exception(exc)

    def result(timeout: float | None = None) -> T:
        # A time limit through pauses.until: see kpi_core/pauses.py.
        if timeout is not None and not pauses.until(future.done, timeout):
            raise TimeoutError
        return future.result()

    threading.Thread(target=run, name="kpi-query", daemon=True).start()
    return result


# The data version of each warehouse file this process has open (see `data_version`); an entry
# is dropped whenever a Warehouse opens the file, since another process may have written then.
# Plain dict operations are atomic under the GIL, which is all these need.
_VERSIONS: dict[str, int] = {}
_MEMORY_KEYS = itertools.count()  # each in-memory warehouse is a database of its own


def _forget_version(key: str) -> None:
    _VERSIONS.pop(key, None)


class Warehouse(SharedFile):
    """A DuckDB file shared by the threads of this process and, as described in
    kpi_core/shared_file.py, by other processes: read-only together, one writer at a time."""

    engine = "duckdb"  # kpi_core/pg_warehouse.py's is "postgresql"

    def __init__(self, path: str | os.PathLike, *, linger: float = 1.0, wait: float = 30.0):
        if str(path).startswith(("postgresql+psycopg:", "postgresql:", "postgres:")):
            # A URL (or the shown form of one) would become a file of that name.
            raise ValueError("a PostgreSQL warehouse is opened with open_warehouse(url)")
        super().__init__(path, linger=linger, wait=wait)
        self._versioned = False  # whether the schema has `data_version` (known after migrate)
        # Names the database in this process: where its data version is kept (shared by every
        # Warehouse object of the file, as DuckDB shares one database and its lock between
        # their connections) and what caches key its results by (kpi_core/memo.py).
        self.version_key = (
            f":memory:{next(_MEMORY_KEYS)}" if self.in_memory else os.path.realpath(path)
        )
        if not self.in_memory:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        _OPEN.add(self)
        self.migrate()

    def _reopened(self) -> None:
        _forget_version(self.version_key)

    # -- the public face -----------------------------------------------------------------

    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of its own for one query or a few: connections are not thread-safe."""
        with self._use() as con:
            cur = con.cursor()
            try:
                yield cur
            finally:
                cur.close()

    @contextmanager
    def transaction(self, *, data: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
        """A write: this process's turn (kpi_core/shared_file.py), all or nothing.

        It changes the data version, so that every cache keyed by it misses on the next run;
        `data=False` only for bookkeeping no cached computation reads (a sign-in session's
        last-seen time, written as users click), which would otherwise empty the caches every
        minute."""
        with self._writing(), self.cursor() as cur:
            cur.execute("BEGIN TRANSACTION")
            token = secrets.randbits(63) if data and self._versioned else None
            try:
                yield cur
                if token is not None:
                    cur.execute("UPDATE data_version SET token = ?", [token])
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")
            if token is not None:
                # Only after the commit: a run that saw the new token before the data is
                # visible would cache the old data under it.
                _VERSIONS[self.version_key] = token

    def data_version(self) -> int:
        """A token that changes with every commit to this warehouse, from any process (a
        commit made with `data=False` aside). Read it before the data a cache keeps under it:
        then a commit in between makes the cached value one that is never asked for again,
        never a stale one under the new token."""
        if not self._versioned:
            return secrets.randbits(63)  # a schema without versions: nothing may be cached
        with self._use() as con:
            known = _VERSIONS.get(self.version_key)
            if known is not None:
                return known
            cur = con.cursor()
            try:
                token = cur.execute("SELECT token FROM data_version").fetchone()[0]
            finally:
                cur.close()
            # setdefault: a commit that set a newer token meanwhile wins.
            return _VERSIONS.setdefault(self.version_key, token)

    def rows(self, sql: str, params: Sequence[Any] | dict | None = None) -> list[tuple]:
        with self.cursor() as cur:
            return cur.execute(sql, params or []).fetchall()

    def one(self, sql: str, params: Sequence[Any] | dict | None = None) -> tuple | None:
        with self.cursor() as cur:
            return cur.execute(sql, params or []).fetchone()

    def df(self, sql: str, params: Sequence[Any] | dict | None = None) -> pd.DataFrame:
        with self.cursor() as cur:
            return cur.execute(sql, params or []).df()

    def arrays(
        self, sql: str, params: Sequence[Any] | None = None, tables: dict[str, Any] | None = None
    ) -> dict[str, np.ndarray]:
        """Columns as numpy arrays, NULL as NaN / NaT / None. `tables` (Arrow tables, frames)
        are visible to the query by name, on its own cursor only."""
        with self.cursor() as cur:
            for name, table in (tables or {}).items():
                cur.register(name, table)
            columns = cur.execute(sql, params or []).fetchnumpy()
        return {name: _plain(col) for name, col in columns.items()}

    def schema_version(self) -> int:
        with self.cursor() as cur:
            exists = cur.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'"
            ).fetchone()[0]
            if not exists:
                return 0
            return cur.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]

    def _pending(self) -> tuple[set[int], bool] | None:
        """The migrations recorded in the file and whether it has `data_version`, read
        read-only; None for a file that does not exist yet (or in memory)."""
        if self.in_memory or not Path(self.path).exists() or Path(self.path).stat().st_size == 0:
            return None
        with self.cursor() as cur:
            found = {
                r[0]
                for r in cur.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_name IN ('schema_version', 'data_version')"
                ).fetchall()
            }
            if "schema_version" not in found:
                return None
            applied = {r[0] for r in cur.execute("SELECT version FROM schema_version").fetchall()}
        return applied, "data_version" in found

    def migrate(self) -> int:
        """Apply the migrations this file has not seen yet; returns the schema version.

        Each one not recorded is applied, not only those above the highest recorded: changes
        developed side by side take numbers in advance and may land in any order. A file that
        has them all is only read (no turn to write is taken when a process starts)."""
        with self._writer:
            seen = self._pending()
            if seen is not None and {m[0] for m in MIGRATIONS} <= seen[0]:
                self._versioned = seen[1]
                _forget_version(self.version_key)
                return self.schema_version()
            with self._writing(), self.cursor() as cur:
                cur.execute(SCHEMA_VERSION_TABLE)
                # Every number not applied yet, in order, rather than those above the highest:
                # two branches may each add one (9 and 10), and a file that got 10 first must
                # still get 9 when it arrives.
                applied = {
                    r[0] for r in cur.execute("SELECT version FROM schema_version").fetchall()
                }
                migrated = False
                for version, description, sql in sorted(MIGRATIONS):
                    if version in applied:
                        continue
                    cur.execute("BEGIN TRANSACTION")
                    try:
                        cur.execute(sql)
                        cur.execute(
                            "INSERT INTO schema_version VALUES (?, ?, ?)",
                            [version, description, datetime.now()],
                        )
                    except BaseException:
                        cur.execute("ROLLBACK")
                        raise
                    cur.execute("COMMIT")
                    migrated = True
                self._versioned = bool(
                    cur.execute(
                        "SELECT count(*) FROM information_schema.tables "
                        "WHERE table_name = 'data_version'"
                    ).fetchone()[0]
                )
                if migrated and self._versioned:  # migrations may change data (a backup's)
                    cur.execute("UPDATE data_version SET token = ?", [secrets.randbits(63)])
                _forget_version(self.version_key)
        return self.schema_version()

    def is_empty(self) -> bool:
        """True until a KPI system has been loaded."""
        return self.one("SELECT count(*) FROM kpi")[0] == 0
