"""The lock files beside a warehouse file that processes take turns by (kpi_core/shared_file.py's
docstring tells the whole hand-off; this is only its two locks)."""

from __future__ import annotations

import os

try:
    import fcntl
except ImportError:  # not POSIX: no gate (see Gate)
    fcntl = None  # type: ignore[assignment]


class Gate:
    """The lock files beside a warehouse that processes take turns by (see the module
    docstring): `<warehouse>.gate`, held exclusively by the process that has the file open
    read-write (and while it waits for the readers to let go), and shared for the moment a
    reader opens it; `<warehouse>.want`, held shared by every process waiting for its turn, which
    is how the one holding the file read-write learns that it should let go.

    `flock` locks belong to an open file, so two Warehouse objects of one file in one process
    exclude each other as two processes do. A folder where the files cannot be made (read-only)
    has no gate: readers then let a writer in only when they linger out."""

    def __init__(self, warehouse: str):
        self.path = f"{warehouse}.gate"
        self._paths = {"gate": self.path, "want": f"{warehouse}.want"}
        self._fds: dict[str, int] = {}
        self.exclusive = False

    def _fileno(self, name: str = "gate") -> int | None:
        if fcntl is None:
            return None
        if name not in self._fds:
            try:
                self._fds[name] = os.open(self._paths[name], os.O_RDWR | os.O_CREAT, 0o666)
            except OSError:
                return None
        return self._fds[name]

    def _try(self, name: str, flags: int) -> bool | None:
        """True when taken, False when held elsewhere, None when there is no such file."""
        fd = self._fileno(name)
        if fd is None:
            return None
        try:
            fcntl.flock(fd, flags | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def take(self, *, exclusive: bool) -> bool:
        """Without waiting: True when taken (or when there is no gate)."""
        got = self._try("gate", fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        if got:
            self.exclusive = exclusive
        return got is not False

    def release(self) -> None:
        if "gate" in self._fds:
            fcntl.flock(self._fds["gate"], fcntl.LOCK_UN)
        self.exclusive = False

    def writer_waits(self) -> bool:
        """Whether a writer holds the gate. Never asked while this object holds it exclusively
        (taking it shared would turn that lock into a shared one)."""
        if self.exclusive:
            return False
        if self._try("gate", fcntl.LOCK_SH) is False:
            return True
        self.release()
        return False

    def queue(self, waiting: bool) -> None:
        """Say that this process waits for its turn (or no longer does)."""
        fd = self._fileno("want")
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_SH if waiting else fcntl.LOCK_UN)

    def others_wait(self) -> bool:
        """Whether another process waits for its turn (asked by the one holding the gate)."""
        got = self._try("want", fcntl.LOCK_EX)
        if got:
            fcntl.flock(self._fds["want"], fcntl.LOCK_UN)
        return got is False

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)  # lets go of any lock on it
        self._fds.clear()
        self.exclusive = False
