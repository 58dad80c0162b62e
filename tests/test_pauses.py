"""Waits with a time limit that end by it, also where timed lock waits do not (see
kpi_core/pauses.py)."""

import threading
import time

from kpi_core import pauses


def test_until_ends_when_done_or_at_its_limit():
    start = time.monotonic()
    assert pauses.until(lambda: False, 0.05) is False
    assert time.monotonic() - start >= 0.05
    flag = threading.Event()
    threading.Thread(target=lambda: (time.sleep(0.02), flag.set())).start()
    assert pauses.until(flag.is_set, 30) is True


def test_a_timer_fires_unless_cancelled():
    fired, kept = threading.Event(), threading.Event()
    timer = pauses.Timer(0.01, fired.set)
    timer.start()
    assert pauses.until(fired.is_set, 30)
    late = pauses.Timer(0.2, kept.set)
    late.start()
    late.cancel()
    late.join()
    assert not kept.is_set()


def test_a_nap_lets_go_of_the_lock_however_often_it_was_taken():
    state = threading.Condition(threading.RLock())
    got_in = threading.Event()

    def other() -> None:
        with state:
            got_in.set()

    with state, state:  # taken twice, as a nested call of the warehouse does
        threading.Thread(target=other).start()
        for _ in range(2000):  # bounded: a nap that kept the lock would fail, not hang
            if got_in.is_set():
                break
            pauses.nap(state, 0.01)
    assert got_in.is_set()
