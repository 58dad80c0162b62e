"""The DuckDB warehouse: where the file is, schema migrations, and how processes share it.

DuckDB lets one process open a file for writing, and while it does no other process may open it
at all. The app and the command line must still work on one warehouse side by side, so a
`Warehouse` holds the file only while it is being used: one connection per process, opened on
demand, shared by all threads through a cursor per query, and closed once nobody has used it for
`linger` seconds. A process that finds the file held by another waits for it (up to `wait`
seconds, retrying) instead of failing. So that a busy process cannot starve the others, one that
has held the file for `max_hold` seconds lets go at its next idle moment and waits `pause` seconds
before opening it again — longer than a waiting process's retry interval. Writes are serialized inside the process and run in a
transaction, so another process only ever sees whole imports.
"""

from __future__ import annotations

import atexit
import os
import shutil
import threading
import time
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

from kpi_core import settings
from kpi_core.errors import KpiError, WarehouseBusyError
from kpi_core.migrations import MIGRATIONS

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "data" / "warehouse.duckdb"

# Where migrations record what they applied; made before the first of them (see migrate).
SCHEMA_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version "
    "(version INTEGER PRIMARY KEY, description VARCHAR, applied_at TIMESTAMP)"
)

# Extensions cannot be downloaded here; never let DuckDB try (it would hang on the network).
_CONFIG = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


def resolve_path(explicit: str | os.PathLike | None = None) -> str:
    """`--warehouse` beats `KPI_WAREHOUSE`, which beats `[warehouse] path` in secrets.toml."""
    if explicit:
        return str(explicit)
    if env := settings.env("KPI_WAREHOUSE"):
        return env
    if path := settings.section("warehouse").get("path"):
        return str(path)
    return str(DEFAULT_PATH)


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


def in_background(fn: Callable[..., T], *args: Any) -> Callable[[], T]:
    """Start `fn(*args)` on a thread of its own; calling the result waits for its value (and
    raises its exception). DuckDB lets go of the GIL while a query runs, so a query started
    here overlaps the caller's own queries and Python on the second core."""
    future: Future = Future()

    def run() -> None:
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # handed to the caller, who decides
            future.set_exception(exc)

    threading.Thread(target=run, name="kpi-query", daemon=True).start()
    return future.result


def _is_lock_error(exc: Exception) -> bool:
    return "lock" in str(exc).lower()


class Warehouse:
    """A DuckDB file shared by threads of this process and, in turns, by other processes."""

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        linger: float = 1.0,
        wait: float = 30.0,
        max_hold: float = 2.0,
        pause: float = 0.5,
    ):
        self.path = str(path)
        self.in_memory = self.path == ":memory:"
        # An in-memory warehouse would vanish when closed, so it stays open.
        self.linger = float("inf") if self.in_memory else linger
        self.wait = wait
        self.max_hold = max_hold
        self.pause = pause
        self._opened_at = 0.0
        self._reopen_after = 0.0
        self._con: duckdb.DuckDBPyConnection | None = None
        self._users = 0
        self._state = threading.RLock()
        self._writer = threading.RLock()
        self._timer: threading.Timer | None = None
        if not self.in_memory:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        _OPEN.add(self)
        self.migrate()

    def _open(self) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.wait
        delay = 0.02
        if (rest := self._reopen_after - time.monotonic()) > 0:
            time.sleep(rest)  # our turn to let another process in
        while True:
            try:
                return duckdb.connect(self.path, config=_CONFIG)
            except duckdb.IOException as exc:
                if not _is_lock_error(exc) or time.monotonic() >= deadline:
                    if _is_lock_error(exc):
                        raise WarehouseBusyError(
                            f"The warehouse {self.path} is in use by another process "
                            f"(waited {self.wait:.0f} s). Try again in a moment."
                        ) from exc
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.25)

    @contextmanager
    def hold(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Keep the file open for a block of work (a page run, a CLI command)."""
        with self._state:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._con is None:
                self._con = self._open()
                self._opened_at = time.monotonic()
            self._users += 1
            con = self._con
        try:
            yield con
        finally:
            with self._state:
                self._users -= 1
                if self._users == 0 and self.linger != float("inf"):
                    if time.monotonic() - self._opened_at > self.max_hold:
                        self._close_now()
                        self._reopen_after = time.monotonic() + self.pause
                    elif self.linger <= 0:
                        self._close_now()
                    else:
                        self._timer = threading.Timer(self.linger, self._close_if_idle)
                        self._timer.daemon = True
                        self._timer.start()

    def _close_if_idle(self) -> None:
        with self._state:
            if self._users == 0:
                self._close_now()

    def _close_now(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def close(self) -> None:
        with self._state:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._close_now()

    def replace_file(self, new: str | os.PathLike, keep_as: str | os.PathLike) -> None:
        """Put the DuckDB file `new` in this warehouse's place in one step (a restore).

        Work under way in this process finishes first and new work waits; the file is held
        against other processes while it is renamed, so none of them writes to the old one
        after. The old file is kept as `keep_as`. Connections opened afterwards, here or in
        another process, see the new file.
        """
        if self.in_memory:
            raise KpiError("An in-memory warehouse has no file to replace.")
        if Path(f"{new}.wal").exists():
            raise KpiError(f"{new} has an unfinished write-ahead log; close it cleanly first.")
        deadline = time.monotonic() + self.wait
        with self._writer:
            while True:
                self._state.acquire()
                if self._users == 0:
                    break
                self._state.release()
                if time.monotonic() >= deadline:
                    raise WarehouseBusyError(
                        f"The warehouse {self.path} stayed in use for {self.wait:.0f} s. "
                        "Try again in a moment."
                    )
                time.sleep(0.02)
            try:
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
                self._close_now()
                con = self._open()  # the lock keeps other processes out during the swap
                try:
                    # Everything in the file itself, no log left that would replay onto the
                    # new one.
                    con.execute("CHECKPOINT")
                    Path(keep_as).unlink(missing_ok=True)
                    try:
                        os.link(self.path, keep_as)
                    except OSError:
                        shutil.copyfile(self.path, keep_as)
                    os.replace(new, self.path)
                finally:
                    con.close()
            finally:
                self._state.release()

    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of its own for one query or a few: connections are not thread-safe."""
        with self.hold() as con:
            cur = con.cursor()
            try:
                yield cur
            finally:
                cur.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A write: serialized within the process, all or nothing."""
        with self._writer, self.cursor() as cur:
            cur.execute("BEGIN TRANSACTION")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

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

    def migrate(self) -> int:
        """Apply the migrations this file has not seen yet; returns the schema version.

        Each one not recorded is applied, not only those above the highest recorded: changes
        developed side by side take numbers in advance and may land in any order."""
        with self._writer, self.cursor() as cur:
            cur.execute(SCHEMA_VERSION_TABLE)
            # Every number not applied yet, in order, rather than those above the highest: two
            # branches may each add one (9 and 10), and a file that got 10 first must still get
            # 9 when it arrives.
            applied = {r[0] for r in cur.execute("SELECT version FROM schema_version").fetchall()}
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
        return self.schema_version()

    def is_empty(self) -> bool:
        """True until a KPI system has been loaded."""
        return self.one("SELECT count(*) FROM kpi")[0] == 0
