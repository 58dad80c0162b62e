"""What pages compute, kept per warehouse data version: a page run that asks again for the same
board, scorecard or trend of the same data gets the result computed the first time.

`@by_data_version` keys a function's result by the warehouse's file, its data version
(`Warehouse.data_version`, a token every commit changes, from any process), the function and
its other arguments — the caller's scope among them, so one user's result is never another's.
The version is read before the function runs: a commit while it runs leaves its result under
the old token, which no later run asks for. A commit is therefore seen by the next run, and no
entry ever needs to be dropped; the oldest are evicted when there are more than `MAX_ENTRIES`.

Results are shared between sessions and threads: callers must treat them as read-only
(DataFrames are handed out as copies, see `by_data_version`). Arguments that cannot be hashed
(a frame, an array) make the call uncached rather than wrong. Objects hash by identity unless
they define equality (a Catalog by identity: the cached `load_catalog` gives the same one for
the same data, and the key keeps it alive, so an identity is never reused within the cache).
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import pandas as pd

from kpi_core.warehouse import Warehouse

# Results of a few hundred page runs; a large company's Targets grid is tens of MB, so not more.
MAX_ENTRIES = 256

P = ParamSpec("P")
R = TypeVar("R")

# Off for benches that time the engine itself (bench/bench_engine.py and the like): a cached
# result would time the cache.
ENABLED = True

_lock = threading.Lock()
_entries: OrderedDict[tuple, Any] = OrderedDict()
_running: dict[tuple, threading.Event] = {}
stats = {"hits": 0, "misses": 0}


def _freeze(value: Any) -> Any:
    """A hashable stand-in for an argument (lists as tuples, ...); TypeError if there is none."""
    if isinstance(value, list | tuple):
        return (type(value).__name__, *(_freeze(v) for v in value))
    if isinstance(value, dict):
        return ("dict", *sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, set):
        return frozenset(value)
    hash(value)  # raises TypeError for frames, arrays and other unhashable things
    return value


def _handed_out(value: Any) -> Any:
    # Frames are the one result callers are used to changing in place (a column added for
    # display); each caller gets its own.
    return value.copy() if isinstance(value, pd.DataFrame) else value


def clear() -> None:
    with _lock:
        _entries.clear()


def by_data_version(fn: Callable[P, R]) -> Callable[P, R]:
    """Cache `fn(wh, ...)` per data version of `wh` and the other arguments."""
    name = f"{fn.__module__}.{fn.__qualname__}"

    @functools.wraps(fn)
    def cached(wh: Warehouse, *args: Any, **kwargs: Any) -> Any:
        if not ENABLED:
            return fn(wh, *args, **kwargs)
        try:
            key = (wh.version_key, wh.data_version(), name, _freeze(args), _freeze(kwargs))
        except TypeError:
            return fn(wh, *args, **kwargs)
        while True:
            with _lock:
                if key in _entries:
                    _entries.move_to_end(key)
                    stats["hits"] += 1
                    return _handed_out(_entries[key])
                waiting = _running.get(key)
                if waiting is None:
                    # This thread computes it; others asking meanwhile wait for it rather than
                    # computing the same thing (twenty boards at nine o'clock).
                    mine = _running[key] = threading.Event()
                    stats["misses"] += 1
                    break
            waiting.wait()
            with _lock:
                if key not in _entries and key not in _running:
                    # It failed for the thread that computed it: compute it here (and fail here).
                    mine = _running[key] = threading.Event()
                    stats["misses"] += 1
                    break
        try:
            value = fn(wh, *args, **kwargs)
            with _lock:
                _entries[key] = value
                while len(_entries) > MAX_ENTRIES:
                    _entries.popitem(last=False)
            return _handed_out(value)
        finally:
            with _lock:
                _running.pop(key, None)
            mine.set()

    return cached  # type: ignore[return-value]
