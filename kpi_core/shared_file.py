"""A DuckDB file shared by the threads of this process and by other processes: read-only
together, one writer at a time. `kpi_core.warehouse.Warehouse` is one; this module holds how
it takes its turns, the warehouse module what it does with them (queries, the data version,
migrations).

DuckDB lets many processes open a file read-only at once, or one process open it read-write,
and then no other process may open it at all; within one process the file can be open in one of
the two modes only. So several app processes (and the command line) share one warehouse like
this:

- **Reads** go through one read-only connection per process (`cursor()`, shared by all threads,
  a cursor per query): readers of every process read at the same time.
- **Writes** (`transaction()`) are funnelled through one writer at a time. Within the process,
  writers queue on a lock; across processes, on the gate: a lock file beside the warehouse
  (`<warehouse>.gate`, `flock`), which a process holds exclusively from before it opens the file
  read-write until it has closed it again. The writing process lets its own queries finish,
  closes its read-only connection, takes the gate, opens the file read-write once the other
  processes have let go of it, and writes in a transaction; another process only ever sees whole
  transactions. It keeps the file read-write after the write (its reads use that connection)
  until another process waits for its turn, reader or writer: a waiting process holds a second
  lock file, `<warehouse>.want`, shared, for as long as it waits. So a process alone on its file
  writes without reopening it, as it did when one process held the file at a time.
- **Letting others in**: a reader takes the gate (shared) only for the moment it opens the file,
  so while a writer holds it no process opens the file, and a writer never starves behind new
  readers. A process holding the file looks, as a query starts or ends and every 20 ms while
  idle, at the gate (when read-only: a writer waits) or at the want file (when read-write:
  anyone waits); then new queries wait too, the connection closes as soon as the queries under
  way end, and they open the file again once it is their turn.
- An idle connection closes after `linger` seconds (`hold()` keeps it open over a block of work:
  a command of the command line); a process that cannot get in within `wait` seconds gets
  `WarehouseBusyError`. A write started inside an open read of the same thread would wait for
  itself; it is refused (RuntimeError), and no code path does it.

"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import duckdb

from kpi_core import pauses
from kpi_core.errors import KpiError, WarehouseBusyError
from kpi_core.gate import Gate
from kpi_core.messages import Message

# Extensions cannot be downloaded here; never let DuckDB try (it would hang on the network).
_CONFIG = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}

T = TypeVar("T")

# Readers wait for a write in another process by polling the gate: writes are short, so the
# polls start often and slow down to this.
_MAX_RETRY_DELAY = 0.05
# How often an idle read-only connection looks whether a writer waits for it.
_IDLE_LOOK = 0.02
READ, WRITE = "read", "write"


def _is_lock_error(exc: Exception) -> bool:
    """The file is held by another process, or in another mode by another Warehouse object of
    this process (DuckDB shares one database per file within a process)."""
    text = str(exc).lower()
    return "lock" in text or "different configuration" in text


class SharedFile:
    """A DuckDB file and its one connection in this process, opened read-only or read-write in
    turn with the other processes (see the module docstring). Subclasses add what runs on it."""

    def __init__(self, path: str | os.PathLike, *, linger: float = 1.0, wait: float = 30.0):
        self.path = str(path)
        self.in_memory = self.path == ":memory:"
        # An in-memory warehouse would vanish when closed, so it stays open.
        self.linger = float("inf") if self.in_memory else linger
        self.wait = wait
        self._con: duckdb.DuckDBPyConnection | None = None
        self._mode: str | None = None  # READ or WRITE while open
        self._users = 0  # queries under way (cursor blocks)
        self._pins = 0  # hold() blocks: keep the file open between queries
        self._draining = False  # no new query may start: the connection is about to close
        self._writing_now = False  # a write's turn is under way (see _writing)
        self._state = threading.Condition(threading.RLock())
        self._writer = threading.RLock()
        self._mine = threading.local()  # this thread's queries under way and writes
        self._gate = None if self.in_memory else Gate(self.path)
        self._watcher: threading.Thread | None = None
        self._idle_since = 0.0

    def _reopened(self) -> None:
        """The file was opened anew: another process may have written while it was closed."""

    # -- this thread's share -------------------------------------------------------------

    def _my_uses(self) -> int:
        return getattr(self._mine, "uses", 0)

    def _i_write(self) -> bool:
        return getattr(self._mine, "writes", 0) > 0

    # -- opening and closing (all under self._state) -------------------------------------

    def _retry(self, attempt: Callable[[], T | None], deadline: float, *, queue: bool = False) -> T:
        """`attempt` until it gives something; with `queue`, this process says it waits (so
        that one holding the file read-write lets go) while it does."""
        delay = 0.002
        queued = False
        try:
            while True:
                got = attempt()
                if got is not None:
                    return got
                if time.monotonic() >= deadline:
                    raise WarehouseBusyError(
                        Message("wh_err_in_use", path=str(self.path), seconds=f"{self.wait:.0f}")
                    )
                if queue and not queued:
                    self._gate.queue(True)
                    queued = True
                pauses.sleep(delay)
                delay = min(delay * 2, _MAX_RETRY_DELAY)
        finally:
            if queued:
                self._gate.queue(False)

    def _connect(self, *, read_only: bool) -> duckdb.DuckDBPyConnection | None:
        try:
            return duckdb.connect(self.path, read_only=read_only, config=_CONFIG)
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            if _is_lock_error(exc):
                return None
            raise

    def _open_read(self) -> None:
        if self.in_memory:
            self._con, self._mode = duckdb.connect(self.path, config=_CONFIG), WRITE
            return
        deadline = time.monotonic() + self.wait
        # The gate only for the moment of opening: not while a writer holds it.
        self._retry(lambda: self._gate.take(exclusive=False) or None, deadline, queue=True)
        try:
            self._con = self._retry(lambda: self._connect(read_only=True), deadline)
        finally:
            self._gate.release()
        self._mode = READ
        self._reopened()  # another process may have committed

    def _close_now(self) -> None:
        if self._con is not None:
            self._con.close()
            if self._mode == WRITE and self._gate is not None:
                self._gate.release()  # after the close: the next writer finds the file free
            self._con, self._mode = None, None

    def _should_let_go(self) -> bool:
        """Whether another process waits for the file this process holds: a writer (the gate
        taken) while it is open read-only, anyone (the want file) while it is open read-write."""
        if self._gate is None or self._con is None or self._writing_now:
            return False
        if self._mode == READ:
            return self._gate.writer_waits()
        return self._gate.others_wait()

    def _drain(self, deadline: float) -> None:
        """Stop new queries and wait for those under way (the caller holds self._state and
        resets `_draining` when done)."""
        self._draining = True
        while self._users:
            left = deadline - time.monotonic()
            if left <= 0:
                self._draining = False
                self._state.notify_all()
                raise WarehouseBusyError(
                    Message("wh_err_stayed_in_use", path=str(self.path), seconds=f"{self.wait:.0f}")
                )
            pauses.nap(self._state, left)

    def _admit(self) -> None:
        """Before this thread's first query under way: the file open, read-only unless this
        process writes, and not while it is about to close."""
        deadline = time.monotonic() + self.wait
        while True:
            if self._draining:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WarehouseBusyError(
                        Message(
                            "wh_err_stayed_in_use", path=str(self.path), seconds=f"{self.wait:.0f}"
                        )
                    )
                pauses.nap(self._state, left)
                continue
            if self._con is None:
                self._open_read()
                return
            if self._should_let_go():
                # Another process waits: the queries under way end, then it gets in.
                self._drain(deadline)
                self._close_now()
                self._draining = False
                self._state.notify_all()
                continue
            return

    def _idle(self) -> None:
        """The last query under way ended (under self._state)."""
        self._state.notify_all()  # a drain may wait for this
        if self._draining or self._con is None or self.in_memory or self._writing_now:
            return  # closing anyway, or a write under way (it looks when done)
        if (self._pins == 0 and self.linger <= 0) or self._should_let_go():
            self._close_now()
        else:
            self._idle_since = time.monotonic()
            if self._watcher is None:
                # One watcher per opening, not a thread per query: starting a thread for each
                # cursor cost a page run a millisecond per query.
                self._watcher = threading.Thread(
                    target=self._watch, name="kpi-warehouse-idle", daemon=True
                )
                self._watcher.start()

    def _watch(self) -> None:
        """While the file is open: close it once idle for `linger` seconds, or as soon as it is
        idle while another process waits for it."""
        me = threading.current_thread()
        while True:
            # A sleep without the lock, not a timed wait (see kpi_core/pauses.py).
            pauses.sleep(_IDLE_LOOK)
            with self._state:
                if self._watcher is not me:
                    return  # closed, or another opening has a watcher of its own
                if self._con is not None and (self._users or self._draining or self._writing_now):
                    continue
                if self._con is not None:
                    idle = time.monotonic() - self._idle_since
                    if not (self._pins == 0 and idle >= self.linger) and not self._should_let_go():
                        continue
                    self._close_now()
                self._watcher = None
                return

    # -- writing -------------------------------------------------------------------------

    @contextmanager
    def _writing(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """This process's turn to write: the file open read-write, other processes out."""
        if self._my_uses() and not self._i_write():
            raise RuntimeError(
                "A write to the warehouse was started inside an open read of the same thread; "
                "finish the read first."
            )
        with self._writer:
            self._mine.writes = getattr(self._mine, "writes", 0) + 1
            try:
                if self.in_memory or self._mine.writes > 1:
                    with self.hold() as con:
                        yield con
                    return
                with self._state:
                    self._writing_now = True  # no idle moment closes it meanwhile
                    try:
                        if self._mode != WRITE:
                            self._turn()
                    except BaseException:
                        self._writing_now = False
                        raise
                    con = self._con
                try:
                    yield con
                finally:
                    with self._state:
                        # The file stays open read-write (reads use it too) until another
                        # process waits for it: alone on its file, a process keeps it.
                        self._writing_now = False
                        if self._users == 0:
                            self._idle()
            finally:
                self._mine.writes -= 1

    def _turn(self) -> None:
        """Open the file read-write (under self._state): this process's queries end, its
        read-only connection closes, it takes the gate and waits for the others to let go."""
        deadline = time.monotonic() + self.wait
        self._drain(deadline)
        try:
            self._close_now()
            self._retry(lambda: self._gate.take(exclusive=True) or None, deadline, queue=True)
            try:
                self._con = self._retry(lambda: self._connect(read_only=False), deadline)
            except BaseException:
                self._gate.release()
                raise
            self._mode = WRITE
            self._reopened()
        finally:
            self._draining = False
            self._state.notify_all()

    # -- queries' share, holding, closing, replacing the file ------------------------------

    @contextmanager
    def _use(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._state:
            if not self._my_uses():
                self._admit()
            self._users += 1
            self._mine.uses = self._my_uses() + 1
            con = self._con
        try:
            yield con
        finally:
            with self._state:
                self._users -= 1
                self._mine.uses -= 1
                if self._users == 0:
                    self._idle()

    @contextmanager
    def hold(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Keep the file open over a block of work (a command of the command line), also between
        its queries. A writer still gets in at its idle moments, and this process's own writes
        reopen the file: the connection given is for reading, until the block's next write."""
        with self._state:
            if not self._my_uses():
                self._admit()
            self._pins += 1
            con = self._con
        try:
            yield con
        finally:
            with self._state:
                self._pins -= 1
                if self._users == 0:
                    self._idle()

    def close(self) -> None:
        with self._state:
            self._watcher = None
            self._state.notify_all()
            self._close_now()
            if self._gate is not None:
                self._gate.close()

    def replace_file(self, new: str | os.PathLike, keep_as: str | os.PathLike) -> None:
        """Put the DuckDB file `new` in this warehouse's place in one step (a restore).

        Work under way in this process finishes first and new work waits; the file is held
        against other processes while it is renamed (it is this process's turn to write), so
        none of them writes to the old one after. The old file is kept as `keep_as`.
        Connections opened afterwards, here or in another process, see the new file.
        """
        if self.in_memory:
            raise KpiError(Message("wh_err_in_memory"))
        if Path(f"{new}.wal").exists():
            raise KpiError(Message("wh_err_wal", path=str(new)))
        with self._writing() as con, self._state:
            self._drain(time.monotonic() + self.wait)  # reads on the old file end first
            try:
                # Everything in the file itself, no log left that would replay onto the new one.
                con.execute("CHECKPOINT")
                Path(keep_as).unlink(missing_ok=True)
                try:
                    os.link(self.path, keep_as)
                except OSError:
                    shutil.copyfile(self.path, keep_as)
                os.replace(new, self.path)
                self._close_now()  # the connection is to the old file
            finally:
                self._draining = False
                self._state.notify_all()
