"""Commit and roll-back re-check, inside their transaction, what may have changed since the preview."""

import threading
from datetime import date

import numpy as np
import pytest

from kpi_core import access, audit, month_locks, push, scoring, service, targets
from kpi_core.access import Scope
from kpi_core.catalog import load_catalog
from kpi_core.ingest import batches, intake
from kpi_core.ingest.intake import IntakeError

BOTH_ENGINES = True  # the file and PostgreSQL (tests/conftest.py)

TODAY = date(2026, 11, 21)
CSV = b"period,unit,kpi,value\n2026-09,SALES_E,VISITS,123\n"


def visits(demo_wh) -> float:
    return demo_wh.one(
        """SELECT a.value FROM actual a JOIN kpi k ON k.id = a.kpi_id
           JOIN org_unit u ON u.id = a.unit_id
           WHERE k.code = 'VISITS' AND u.code = 'SALES_E' AND a.period = DATE '2026-09-01'"""
    )[0]


def test_month_closed_after_the_preview_takes_nothing(demo_wh):
    before = visits(demo_wh)
    prepared = intake.prepare(demo_wh, [("v.csv", CSV)], access.SYSTEM, today=TODAY)
    assert prepared.errors == [] and prepared.counts["changed"] == 1
    month_locks.lock_month(demo_wh, date(2026, 9, 1), access.SYSTEM)
    assert month_locks.closed_months(demo_wh) == [date(2026, 9, 1)]
    with pytest.raises(IntakeError, match="2026-09 is closed; nothing was written"):
        service.commit_actuals(demo_wh, prepared, access.SYSTEM)
    assert visits(demo_wh) == before
    assert demo_wh.one("SELECT count(*) FROM batch WHERE kind = 'upload'") == (0,)


def yearly_summary(wh) -> tuple[list, list]:
    """`actual_year` as stored, and as computed afresh from `actual`."""
    stored = wh.rows("SELECT * FROM actual_year")
    fresh = wh.rows(
        """SELECT kpi_id, unit_id, year(period), sum(value), avg(value),
                  arg_max(value, period), count(*), max(period)
           FROM actual GROUP BY kpi_id, unit_id, year(period)"""
    )
    return sorted(stored), sorted(fresh)


def same_rows(a: list, b: list) -> bool:
    """Equal row for row, sums equal but for the order they were added in (the last bits)."""
    return len(a) == len(b) and all(
        x == pytest.approx(y, rel=1e-12) if isinstance(x, float) else x == y
        for ra, rb in zip(a, b, strict=True)
        for x, y in zip(ra, rb, strict=True)
    )


def test_the_yearly_summary_follows_a_commit_and_its_roll_back(demo_wh):
    """Values changed in two years, a year's last month among them: the summary rows of those
    pairs and years are recomputed in the same transaction, and again by the roll-back."""
    two_years = (
        b"period,unit,kpi,value\n2026-09,SALES_E,VISITS,123\n2025-12,SALES_E,VISITS,45\n"
        b"2025-01,SALES_N,VISITS,7\n"
    )
    before = yearly_summary(demo_wh)
    assert same_rows(*before) and len(before[0]) > 100
    prepared = intake.prepare(demo_wh, [("y.csv", two_years)], access.SYSTEM, today=TODAY)
    assert prepared.errors == [] and prepared.counts["changed"] == 3
    batch = service.commit_actuals(demo_wh, prepared, access.SYSTEM).batch_id
    stored, fresh = yearly_summary(demo_wh)
    assert same_rows(stored, fresh) and not same_rows(stored, before[0])
    service.rollback_actuals(demo_wh, batch, access.SYSTEM)
    assert same_rows(yearly_summary(demo_wh)[0], before[0])


def test_roll_back_into_a_closed_month_is_refused(demo_wh):
    before = visits(demo_wh)
    prepared = intake.prepare(demo_wh, [("v.csv", CSV)], access.SYSTEM, today=TODAY)
    batch = service.commit_actuals(demo_wh, prepared, access.SYSTEM).batch_id
    month_locks.lock_month(demo_wh, date(2026, 9, 1), access.SYSTEM)
    with pytest.raises(IntakeError, match="2026-09 is closed"):
        service.rollback_actuals(demo_wh, batch, access.SYSTEM)
    assert visits(demo_wh) == 123
    month_locks.lock_month(demo_wh, date(2026, 9, 1), access.SYSTEM, locked=False)
    assert service.rollback_actuals(demo_wh, batch, access.SYSTEM) == {"restored": 1, "removed": 0}
    assert visits(demo_wh) == before
    # The restored value belongs to the batch that first loaded it, not to the undone one.
    assert demo_wh.one("SELECT status FROM batch WHERE id = ?", [batch]) == ("rolled_back",)
    assert demo_wh.one("SELECT count(*) FROM actual WHERE batch_id = ?", [batch]) == (0,)


def test_same_file_name_from_another_department_removes_nothing(demo_wh):
    sales = "period,unit,kpi,value\n2026-09,SALES_E,VISITS,123\n2026-09,SALES_N,VISITS,77\n"
    service.commit_actuals(
        demo_wh,
        intake.prepare(demo_wh, [("月报.csv", sales.encode())], access.SYSTEM, today=TODAY),
        access.SYSTEM,
    )
    prod = b"period,unit,kpi,value\n2026-09,PROD_L1,OUTPUT,5000\n"
    prepared = intake.prepare(demo_wh, [("月报.csv", prod)], access.SYSTEM, today=TODAY)
    assert prepared.counts["removed"] == 0
    # The same department's corrected file does remove what it no longer lists.
    again = b"period,unit,kpi,value\n2026-09,SALES_E,VISITS,123\n"
    prepared = intake.prepare(demo_wh, [("月报.csv", again)], access.SYSTEM, today=TODAY)
    assert prepared.counts["removed"] == 0  # SALES_N is not in this file: not touched
    fixed = "period,unit,kpi,value\n2026-09,SALES_E,ORDERS,40\n2026-09,SALES_N,ORDERS,30\n"
    prepared = intake.prepare(demo_wh, [("月报.csv", fixed.encode())], access.SYSTEM, today=TODAY)
    assert prepared.counts == {
        "new": 0, "changed": 2, "unchanged": 0, "removed": 2, "invalid": 0
    }  # fmt: skip


def test_every_value_a_batch_and_its_roll_back_change_is_in_the_change_log(demo_wh):
    cat = load_catalog(demo_wh)
    admin = access.Actor("admin", "admin", Scope.all())

    def logged() -> list[tuple]:
        log = audit.entries(demo_wh, cat, admin, entities=["actual"]).astype(object)
        log = log.where(log.notna(), None)
        return sorted(log[["changed_by", "key", "old", "new", "reason"]].itertuples(index=False))

    before = visits(demo_wh)
    first = "period,unit,kpi,value\n2026-09,SALES_E,VISITS,123\n2026-09,SALES_N,VISITS,77\n"
    service.commit_actuals(
        demo_wh,
        intake.prepare(demo_wh, [("月报.csv", first.encode())], access.SYSTEM, today=TODAY),
        access.SYSTEM,
    )
    start = logged()
    # The corrected file: one value changes, one is new, and SALES_N's visits go.
    fixed = b"period,unit,kpi,value\n2026-09,SALES_E,VISITS,124.5\n2026-09,SALES_N,ORDERS,30\n"
    prepared = intake.prepare(demo_wh, [("月报.csv", fixed)], access.SYSTEM, today=TODAY)
    done = service.commit_actuals(demo_wh, prepared, access.SYSTEM)
    orders = demo_wh.one(
        """SELECT a.value FROM actual a JOIN kpi k ON k.id = a.kpi_id JOIN org_unit u
           ON u.id = a.unit_id WHERE k.code = 'ORDERS' AND u.code = 'SALES_N'
           AND a.period = DATE '2026-09-01'"""
    )[0]
    assert orders == 30 and prepared.counts["changed"] == 2 and prepared.counts["removed"] == 1
    why = f"batch {done.batch_id}: 月报.csv"
    old_orders = str(float(prepared.diff.query("change == 'changed' and new == 30")["old"].iloc[0]))
    assert sorted(set(logged()) - set(start)) == [
        ("system", "SALES_E/VISITS/2026-09", "123.0", "124.5", why),
        ("system", "SALES_N/ORDERS/2026-09", old_orders, "30.0", why),
        ("system", "SALES_N/VISITS/2026-09", "77.0", None, why),
    ]
    service.rollback_actuals(demo_wh, done.batch_id, admin, "wrong file")
    assert sorted(set(logged()) - set(start))[:3] == [
        ("admin", "SALES_E/VISITS/2026-09", "124.5", "123.0", "wrong file"),
        ("admin", "SALES_N/ORDERS/2026-09", "30.0", old_orders, "wrong file"),
        ("admin", "SALES_N/VISITS/2026-09", None, "77.0", "wrong file"),
    ]
    assert visits(demo_wh) == 123 != before
    # The filters see them: by user, and by a key's start.
    mine = audit.entries(demo_wh, cat, admin, users=["admin"], key_prefix="SALES_N/")
    assert set(mine["entity"]) == {"actual"} and len(mine) == 2
    entities, users = audit.facets(demo_wh)
    assert "actual" in entities and {"admin", "system"} <= set(users)


def test_lights_before_and_after_of_new_changed_and_removed_values(demo_wh):
    # A month's first load has no light before; a removed value has none after. Each light is
    # the one of its own value against its month's levels, whichever values are missing.
    first = (
        b"period,unit,kpi,value\n2026-11,SALES_E,REV,1\n2026-11,SALES_E,VISITS,999\n"
        b"2026-09,SALES_E,VISITS,0\n2026-11,SALES_E,ORDERS,20\n"  # ORDERS: no target, no light
    )
    prepared = intake.prepare(demo_wh, [("m.csv", first)], access.SYSTEM, today=TODAY)
    assert prepared.counts == {"new": 3, "changed": 1, "unchanged": 0, "removed": 0, "invalid": 0}
    lights = light_pairs(demo_wh, prepared)
    assert lights["REV", "2026-11"] == ("grey", "red")  # new, far below its target
    assert lights["VISITS", "2026-11"] == ("grey", "green")
    assert lights["VISITS", "2026-09"] == ("amber", "red")
    assert len(lights) == 3
    assert lights == reference_lights(demo_wh, prepared)
    # Whatever the order of the rows, each light stays with its own value.
    cat = load_catalog(demo_wh)
    for diff in (prepared.diff.iloc[::-1], prepared.diff.sort_values("old", na_position="last")):
        got = intake._effects(demo_wh, cat, diff.reset_index(drop=True))
        assert sorted(map(tuple, got[["before", "after"]].to_numpy())) == sorted(lights.values())
    service.commit_actuals(demo_wh, prepared, access.SYSTEM)

    again = b"period,unit,kpi,value\n2026-11,SALES_E,REV,1\n2026-09,SALES_E,VISITS,0\n"
    prepared = intake.prepare(demo_wh, [("m.csv", again)], access.SYSTEM, today=TODAY)
    assert prepared.counts["removed"] == 2 and prepared.counts["unchanged"] == 2
    assert light_pairs(demo_wh, prepared) == {("VISITS", "2026-11"): ("green", "grey")}
    assert light_pairs(demo_wh, prepared) == reference_lights(demo_wh, prepared)


def light_pairs(demo_wh, prepared) -> dict[tuple[str, str], tuple[str, str]]:
    cat = load_catalog(demo_wh)
    return {
        (cat.kpis[r.kpi_id].code, f"{r.period:%Y-%m}"): (r.before, r.after)
        for r in prepared.effects.itertuples()
    }


def reference_lights(demo_wh, prepared) -> dict[tuple[str, str], tuple[str, str]]:
    """Each moving value's lights one at a time, with the single-value functions."""
    cat = load_catalog(demo_wh)
    out = {}
    for r in prepared.diff[prepared.diff["change"] != "unchanged"].itertuples():
        kpi = cat.kpis[r.kpi_id]
        month = np.array([np.datetime64(r.period, "D")])
        lv = targets.levels_by_month(demo_wh, cat, np.array([r.kpi_id]), np.array([r.unit_id]),
                                     month)  # fmt: skip
        levels = [lv[f][0] for f in ("baseline", "target", "low", "high", "tolerance")]
        before, after = (str(scoring.statuses(v, *levels, kpi.direction)) for v in (r.old, r.new))
        if before != after:
            out[kpi.code, f"{r.period:%Y-%m}"] = (before, after)
    return out


def test_finish_waits_for_the_pushes_and_stops_their_retries_at_its_bound(demo_wh, receiver):
    """A process about to exit waits for the commit's pushes, up to a bound: a receiver that
    keeps failing then gets no further retry, and the push thread has ended when finish
    returns (its attempts all logged)."""
    down = receiver((500, {"error": "down"}))
    push.save_channel(
        demo_wh, access.SYSTEM, "ops", "webhook", f"{down.base}/kpi", min_severity="low"
    )
    data = b"period,unit,kpi,value\n2026-10,SALES_E,VISITS,1\n"
    prepared = intake.prepare(demo_wh, [("v.csv", data)], access.SYSTEM, today=TODAY)
    committed = service.commit_actuals(demo_wh, prepared, access.SYSTEM)
    assert committed.finish(0.2) is False  # the first back-off alone is longer
    assert not [t for t in threading.enumerate() if t.name.startswith("push-batch-")]
    logged = demo_wh.one("SELECT count(*), max(attempt) FROM push_log WHERE channel = 'ops'")
    assert logged[0] == len(down.requests) and 1 <= logged[1] < 4
    assert intake.Committed(None, {}).finish(0.0) is True  # nothing was started


def test_finish_returns_once_every_retry_is_made(demo_wh, receiver):
    down = receiver((500, {"error": "down"}), (500, {"error": "down"}), (200, {"ok": True}))
    push.save_channel(
        demo_wh, access.SYSTEM, "ops", "webhook", f"{down.base}/kpi", min_severity="low"
    )
    data = b"period,unit,kpi,value\n2026-10,SALES_E,VISITS,1\n"
    prepared = intake.prepare(demo_wh, [("v.csv", data)], access.SYSTEM, today=TODAY)
    assert service.commit_actuals(demo_wh, prepared, access.SYSTEM).finish(60) is True
    assert demo_wh.one("SELECT bool_or(ok) FROM push_log WHERE channel = 'ops'") == (True,)


def test_a_commit_without_a_hook_starts_nothing(demo_wh):
    """The intake's commit knows nothing of alerts: only the hook the service layer supplies
    runs the rules (service.commit_actuals)."""
    data = b"period,unit,kpi,value\n2026-10,SALES_E,VISITS,1\n"
    events = "SELECT count(*) FROM alert_event"
    before = demo_wh.one(events)
    prepared = intake.prepare(demo_wh, [("v.csv", data)], access.SYSTEM, today=TODAY)
    assert intake.commit(demo_wh, prepared, access.SYSTEM).batch_id is not None
    assert demo_wh.one(events) == before
    again = data.replace(b",1\n", b",2\n")
    prepared = intake.prepare(demo_wh, [("w.csv", again)], access.SYSTEM, today=TODAY)
    service.commit_actuals(demo_wh, prepared, access.SYSTEM)
    assert demo_wh.one(events) != before  # the load's red VISITS raised something


def test_the_hooks_run_once_the_transaction_is_committed(demo_wh):
    """What the hook sees through its own cursor is the committed batch, and for a roll-back the
    rolled-back status: the hooks run outside the writer's transaction."""
    seen = []

    class Nothing:
        def wait_for_alerts(self) -> None:
            return None

        def finish(self, timeout: float) -> bool:
            return True

    def after(wh, who, batch_id, months):
        seen.append((wh.one("SELECT status FROM batch WHERE id = ?", [batch_id])[0], months))
        return Nothing()

    prepared = intake.prepare(demo_wh, [("v.csv", CSV)], access.SYSTEM, today=TODAY)
    batch = intake.commit(demo_wh, prepared, access.SYSTEM, after=after).batch_id
    batches.rollback(demo_wh, batch, access.SYSTEM, after=after)
    assert seen == [("committed", [date(2026, 9, 1)]), ("rolled_back", [date(2026, 9, 1)])]


def test_a_failing_push_never_undoes_the_commit(demo_wh, receiver):
    """A receiver answering 500 to every attempt: the batch stands, its alerts are stored, and
    every attempt is in the push log as failed."""
    down = receiver((500, {"error": "down"}))
    push.save_channel(
        demo_wh, access.SYSTEM, "ops", "webhook", f"{down.base}/kpi", min_severity="low"
    )
    data = b"period,unit,kpi,value\n2026-10,SALES_E,VISITS,1\n"
    prepared = intake.prepare(demo_wh, [("v.csv", data)], access.SYSTEM, today=TODAY)
    committed = service.commit_actuals(demo_wh, prepared, access.SYSTEM)
    assert committed.finish(60) is True  # every retry made, all refused
    assert down.requests
    assert demo_wh.one("SELECT bool_or(ok), count(*) FROM push_log WHERE channel = 'ops'") == (
        False,
        len(down.requests),
    )
    status = demo_wh.one("SELECT status FROM batch WHERE id = ?", [committed.batch_id])
    assert status == ("committed",)
    value = demo_wh.one(
        """SELECT a.value FROM actual a JOIN kpi k ON k.id = a.kpi_id
           JOIN org_unit u ON u.id = a.unit_id
           WHERE k.code = 'VISITS' AND u.code = 'SALES_E' AND a.period = DATE '2026-10-01'"""
    )
    assert value == (1.0,)
    assert demo_wh.one("SELECT count(*) FROM alert_event WHERE period = DATE '2026-10-01'")[0]
