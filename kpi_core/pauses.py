"""Waiting with a time limit, made of short sleeps.

Why not `Event.wait(timeout)`, `Condition.wait(timeout)`, `Thread.join(timeout)` or
`Future.result(timeout)`: they all end in a timed lock wait, and under libfaketime (which the
suite runs under, to prove it passes on any date) a timed lock wait that is not woken never
returns — the time limit is lost, so a watcher never looks again and a retry never comes. A
`time.sleep` keeps working there. Every wait that must end by its limit goes through here; a
wait that is always woken (an untimed `wait()`) needs nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# Short enough that nobody notices the extra delay, long enough to cost nothing while idle.
_SLICE = 0.005


def until(done: Callable[[], bool], seconds: float) -> bool:
    """Wait until `done()` or for `seconds`, whichever comes first; whether `done()` came."""
    deadline = time.monotonic() + seconds
    while not done():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(_SLICE, left))
    return True


def nap(state: threading.Condition, seconds: float) -> None:
    """Like `state.wait(seconds)` by the thread holding `state`: let go of its lock (however
    often this thread took it), sleep, take it back. The caller looks again at what it waits
    for, as after any `wait`; a notify does not shorten the nap."""
    # Condition.wait lets go the same way; these two belong to the lock it wraps.
    saved = state._release_save()  # type: ignore[attr-defined]
    try:
        time.sleep(max(min(seconds, _SLICE), 0.0))
    finally:
        state._acquire_restore(saved)  # type: ignore[attr-defined]


class Timer(threading.Thread):
    """Calls `action` after `seconds` on a daemon thread of its own, unless cancelled first."""

    def __init__(self, seconds: float, action: Callable[[], object]):
        super().__init__(name="kpi-timer", daemon=True)
        self._seconds, self._action = seconds, action
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        self._cancelled.set()

    def run(self) -> None:
        if not until(self._cancelled.is_set, self._seconds):
            self._action()
