"""Waiting with a time limit, made of short sleeps, and the sleep itself.

Why not `Event.wait(timeout)`, `Condition.wait(timeout)`, `Thread.join(timeout)` or
`Future.result(timeout)`: they all end in a timed lock wait, and under libfaketime (which the
suite runs under, to prove it passes on any date) a timed lock wait that is not woken never
returns — the time limit is lost, so a watcher never looks again and a retry never comes. And
why not `time.sleep`: with the monotonic clock left alone (`faketime --exclude-monotonic`) it
fails with EINVAL. The timeout of `select` works under both, so `sleep` here is made of it.
Every wait that must end by its limit goes through here; a wait that is always woken (an
untimed `wait()`) needs nothing.
"""

from __future__ import annotations

import select
import threading
import time
from collections.abc import Callable

# Short enough that nobody notices the extra delay, long enough to cost nothing while idle.
_SLICE = 0.005


def sleep(seconds: float) -> None:
    """`time.sleep`, also under faketime in either mode (see the module's doc)."""
    if seconds > 0:
        select.select([], [], [], seconds)


def until(done: Callable[[], bool], seconds: float) -> bool:
    """Wait until `done()` or for `seconds`, whichever comes first; whether `done()` came."""
    deadline = time.monotonic() + seconds
    while not done():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        sleep(min(_SLICE, left))
    return True


def nap(state: threading.Condition, seconds: float) -> None:
    """Like `state.wait(seconds)` by the thread holding `state`: let go of its lock (however
    often this thread took it), sleep, take it back. The caller looks again at what it waits
    for, as after any `wait`; a notify does not shorten the nap."""
    # Condition.wait lets go the same way; these two belong to the lock it wraps.
    saved = state._release_save()  # type: ignore[attr-defined]
    try:
        sleep(min(seconds, _SLICE))
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
