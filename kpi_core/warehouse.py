"""The DuckDB warehouse: where the file is, schema migrations, and how processes share it.

DuckDB lets one process open a file for writing, and while it does no other process may open it
at all. The app and the command line must still work on one warehouse side by side, so a
`Warehouse` holds the file only while it is being used: one connection per process, opened on
demand, shared by all threads through a cursor per query, and closed once nobody has used it for
`linger` seconds. A process that finds the file held by another waits for it (up to `wait`
seconds, retrying) instead of failing. So that a busy process cannot starve the others, one that
has held the file for `max_hold` seconds while another process waits for it (the waiter leaves a
marker file beside the warehouse) lets go at its next idle moment and waits `pause` seconds
before opening it again — longer than a waiting process's retry interval. Writes are serialized inside the process and run in a
transaction, so another process only ever sees whole imports.

Every commit also changes the warehouse's data version (`data_version()`, a random token in the
one row of `data_version`, set in the same transaction as the data), which the pages' caches are
keyed by. While this process holds the file no other process can write to it, so the token is
read once per opening of the file and then kept up to date by this process's own commits: asking
for it costs no query. (Should connections ever be shared between processes, read-only beside a
writer, this reasoning must change with them.)
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import itertools
import os
import secrets
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


# The data version of each warehouse file this process has open (see `data_version`); an entry
# is dropped whenever a Warehouse opens the file, since another process may have written then.
# Plain dict operations are atomic under the GIL, which is all these need.
_VERSIONS: dict[str, int] = {}
_MEMORY_KEYS = itertools.count()  # each in-memory warehouse is a database of its own


def _forget_version(key: str) -> None:
    _VERSIONS.pop(key, None)


# A process waiting for the file says so with a file named <warehouse>.waiting-<pid>.
_WAITING = ".waiting-"
_MAX_RETRY_DELAY = 0.25


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
        self._idle_since = 0.0
        self._waiters_seen = (-1.0, False)  # when others' waiting was last looked at, and it
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

    def _open(self) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.wait
        delay = 0.02
        if (rest := self._reopen_after - time.monotonic()) > 0:
            time.sleep(rest)  # our turn to let another process in
        marker = Path(f"{self.path}{_WAITING}{os.getpid()}")
        try:
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
                    # Tells the holder that somebody waits (see `_others_wait`); touched at
                    # every try, so one left by a killed process soon counts for nothing.
                    with contextlib.suppress(OSError):  # a read-only folder: wait unseen
                        marker.touch()
                    time.sleep(delay)
                    delay = min(delay * 2, _MAX_RETRY_DELAY)
        finally:
            marker.unlink(missing_ok=True)

    def _others_wait(self) -> bool:
        """Whether another process has tried to open the file lately. Only then does a process
        that has held it for `max_hold` seconds let go: a busy app alone on its warehouse would
        otherwise close, pause and reopen it every few seconds, and every click in that pause
        would wait for it."""
        if self.in_memory:
            return False
        # Looked at most once per retry interval, not at every query's release.
        now = time.monotonic()
        if now - self._waiters_seen[0] < _MAX_RETRY_DELAY:
            return self._waiters_seen[1]
        self._waiters_seen = (now, self._waiting_markers())
        return self._waiters_seen[1]

    def _waiting_markers(self) -> bool:
        folder, name = Path(self.path).parent, Path(self.path).name
        fresh = time.time() - 2 * _MAX_RETRY_DELAY - 1
        try:
            return any(
                m.stat().st_mtime >= fresh for m in folder.glob(f"{glob.escape(name)}{_WAITING}*")
            )
        except OSError:  # the marker went away as we looked: its process got in
            return True

    @contextmanager
    def hold(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Keep the file open for a block of work (a page run, a CLI command)."""
        with self._state:
            if self._con is None:
                self._con = self._open()
                self._opened_at = time.monotonic()
                _forget_version(self.version_key)  # another process may have committed
            self._users += 1
            con = self._con
        try:
            yield con
        finally:
            with self._state:
                self._users -= 1
                if self._users == 0 and self.linger != float("inf"):
                    if time.monotonic() - self._opened_at > self.max_hold and self._others_wait():
                        self._close_now()
                        self._reopen_after = time.monotonic() + self.pause
                    elif self.linger <= 0:
                        self._close_now()
                    else:
                        self._idle_since = time.monotonic()
                        if self._timer is None:
                            # One timer at a time, not one per query: starting a thread for
                            # each cursor cost a page run a millisecond per query.
                            self._start_timer(self.linger)

    def _start_timer(self, delay: float) -> None:
        self._timer = threading.Timer(delay, self._close_if_idle)
        self._timer.daemon = True
        self._timer.start()

    def _close_if_idle(self) -> None:
        with self._state:
            if self._timer is not threading.current_thread():
                return  # cancelled (closed, replaced) since it fired
            self._timer = None
            if self._users or self._con is None:
                return  # in use: its last user's release starts the next timer
            idle = time.monotonic() - self._idle_since
            if idle >= self.linger:
                self._close_now()
            else:
                self._start_timer(self.linger - idle)

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
    def transaction(self, *, data: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
        """A write: serialized within the process, all or nothing.

        It changes the data version, so that every cache keyed by it misses on the next run;
        `data=False` only for bookkeeping no cached computation reads (a sign-in session's
        last-seen time, written as users click), which would otherwise empty the caches every
        minute."""
        with self._writer, self.cursor() as cur:
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
        with self.hold() as con:
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
            if migrated and self._versioned:  # migrations may change data (a restored backup's)
                cur.execute("UPDATE data_version SET token = ?", [secrets.randbits(63)])
            _forget_version(self.version_key)
        return self.schema_version()

    def is_empty(self) -> bool:
        """True until a KPI system has been loaded."""
        return self.one("SELECT count(*) FROM kpi")[0] == 0
