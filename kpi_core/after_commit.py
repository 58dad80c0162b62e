"""What the service layer runs once actuals are written, outside the writer's transaction: after a
commit the alert rules on the loaded months, then the new alerts pushed, each on a thread of its
own (`AfterCommit`, the hook of kpi_core/ingest/intake.py `commit`); after a roll-back
(kpi_core/ingest/batches.py `rollback`) the rules judged again (`rejudge`). Neither the intake
nor its batches import alerts or push.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import date

from kpi_core import alerts, pauses, push
from kpi_core.access import Actor
from kpi_core.warehouse import Warehouse, in_background

# The intake's logger, as before these hooks had a module of their own: log filters name it.
log = logging.getLogger("kpi_core.ingest.intake")


class _Stopped(Exception):
    """Raised in the pushes' pause between retries once the process has stopped waiting."""


class AfterCommit:
    """What a commit starts once it is written: the alert rules on the loaded months (beside
    the page, on a thread of their own), then the new alerts pushed on another thread (a slow or
    failing receiver must not hold up anything). The batch is committed whatever they do: a
    problem is logged, never reported as a failed import.

    Both threads use the warehouse through a cursor per query, so the warehouse must stay open
    while they run: a process that closes it and exits (the command line) first calls `finish`.
    """

    def __init__(self, wh: Warehouse, who: Actor, batch_id: int, months: list[date]):
        self._wh, self._who, self._batch_id, self._months = wh, who, batch_id, months
        self._stop = threading.Event()
        self._pushing: threading.Thread | None = None
        self._rules = in_background(self._alert)

    def wait_for_alerts(self) -> None:
        self._rules()

    def finish(self, timeout: float) -> bool:
        """Wait for the rules and the pushes, up to `timeout` seconds. Pushes still retrying
        then are stopped: no further retry, only the attempt under way ends (each is bounded by
        push.TIMEOUT) and is logged. True when everything finished in time."""
        deadline = time.monotonic() + timeout
        try:
            self._rules(max(deadline - time.monotonic(), 0.0))
        except TimeoutError:
            self._stop.set()  # pushes it starts yet stop at their first pause
            return False
        pushing = self._pushing
        if pushing is None:
            return True
        if pauses.until(lambda: not pushing.is_alive(), max(deadline - time.monotonic(), 0.0)):
            return True
        self._stop.set()
        # The attempt under way, and at most one more (the next message's first), each bounded.
        pauses.until(lambda: not pushing.is_alive(), 2 * push.TIMEOUT + 5)
        return False

    def _alert(self) -> None:
        try:
            raised = alerts.run(self._wh, self._who, months=self._months).new
            if raised and any(c.enabled for c in push.channels(self._wh)):
                self._pushing = threading.Thread(
                    target=self._push, args=(raised,), daemon=True,
                    name=f"push-batch-{self._batch_id}",
                )  # fmt: skip
                self._pushing.start()
        except Exception:  # any failure of the rules: logged with its traceback, never raised
            log.exception(
                "Alert evaluation after batch %s failed; the batch is loaded.", self._batch_id
            )

    def _pause(self, seconds: float) -> None:
        if pauses.until(self._stop.is_set, seconds):
            raise _Stopped

    def _push(self, raised: list[alerts.Alert]) -> None:
        messages = alerts.push_messages(self._wh, raised)
        try:
            push.deliver(self._wh, messages, sleep=self._pause)
        except _Stopped:
            log.warning(
                "Pushing the alerts of batch %s was stopped before its retries were done; the "
                "push log has the attempts made.",
                self._batch_id,
            )
        except Exception:
            log.exception("Pushing the alerts of batch %s failed.", self._batch_id)


def rejudge(wh: Warehouse, who: Actor, batch_id: int, months: list[date]) -> None:
    """The alert rules judge again the months a roll-back touched, and the latest month (a
    forecast made from a month that is gone no longer holds): alerts whose condition went with
    the values are closed by the system. Before returning, so the page and the command line
    show the alerts as they now are. The roll-back stands whatever the rules do."""
    try:
        alerts.run(wh, who, months=months)
        alerts.run(wh, who)
    except Exception:  # any failure of the rules: logged with its traceback, never raised
        log.exception("Alert evaluation after rolling back batch %s failed.", batch_id)
