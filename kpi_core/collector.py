"""Python's cyclic garbage collector, paused while an upload is turned into rows.

Reading a sheet makes a list per row, and checking it makes a few more objects per value. The
collector runs after every ~700 new containers and, as the heap grows, walks all of them: on a
100,000-row sheet it took two thirds of the time spent building the grid (bench/bench_intake.py).
That work makes no reference cycles worth reclaiming midway, so the collector waits until it is
done; reference counting still frees everything else as usual.

Pauses nest and may overlap between threads (two sessions uploading): the collector runs again
when the last one ends, unless it was off before the first began.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_was_enabled = False


@contextmanager
def paused() -> Iterator[None]:
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()
