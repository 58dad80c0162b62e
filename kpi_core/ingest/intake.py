"""The month's actuals from files or a pull: prepare (read, check, diff, preview) and commit.

`prepare` writes nothing; it returns everything the analyst needs to decide: problems with their
places, the rows that can be loaded, how they differ from the warehouse and which lights change.
`commit` applies a prepared intake as one batch in one transaction, diffing again inside it (the
warehouse may have moved since the preview). Values a batch overwrites or removes are kept in
`actual_replaced`, so `batches.rollback` can put them back (batches: the list and roll-back of
committed batches; month_locks: which months are closed to them).

A batch has a source — the mapping profile's name, or the file names. Uploading for the same
months from the same source again replaces what that source gave before: values it no longer
lists are removed, identical values are left alone, so the same file twice changes nothing.

What a commit starts afterwards (alert rules, pushes) is the caller's hook,
run once the transaction is over: the service layer supplies kpi_core/after_commit.py, so the
intake never imports alerts or push. The intake said in words and data (`describe`, `report`,
handed on from here) is in `intake_report`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Protocol

import numpy as np
import pandas as pd

from kpi_core import actuals, clock, collector, month_locks, scoring, targets
from kpi_core.access import ROLE_NAMES, Actor, can
from kpi_core.catalog import Catalog, load_catalog
from kpi_core.errors import KpiError, ScopeError
from kpi_core.ingest import files, layout, profile, validate
from kpi_core.ingest.intake_report import BINDING_PROBLEMS as BINDING_PROBLEMS
from kpi_core.ingest.intake_report import describe as describe
from kpi_core.ingest.intake_report import describe_binding as describe_binding
from kpi_core.ingest.intake_report import report as report
from kpi_core.ingest.layout import Finding
from kpi_core.ingest.names import Names
from kpi_core.ingest.template import is_instructions
from kpi_core.library import AGGREGATIONS
from kpi_core.messages import Items, Message
from kpi_core.texts import N_
from kpi_core.warehouse import Warehouse

KEY = ["kpi_id", "unit_id", "period"]


log = logging.getLogger(__name__)


class IntakeError(KpiError):
    """A prepared intake that cannot be committed; the message says what to do."""


def role_word(who: Actor) -> Message | str:
    """The role as a refusal names it inside a sentence (access.ROLE_NAMES: "viewer")."""
    return Message(ROLE_NAMES[who.role]) if who.role in ROLE_NAMES else who.role


@dataclass
class Intake:
    source: str
    files: list[str]
    sha256: str
    findings: list[Finding]
    rows: pd.DataFrame  # loadable rows: kpi_id, unit_id, period, value, file, sheet, row, at
    diff: pd.DataFrame  # kpi_id, unit_id, period, old, new, change (new/changed/unchanged/removed)
    effects: pd.DataFrame  # kpi_id, unit_id, period, before, after: lights that change
    invalid: int  # values left out because of errors
    fingerprint: tuple  # the warehouse's actuals as of the diff (see _fingerprint)
    prepared_by: Actor  # whose scope the diff was filtered by
    blank_sheets: list[str] = field(default_factory=list)
    kind: str = "upload"  # "upload" (files) or "pull" (a database source)
    # Which KPI each column (or KPI text) was bound to and how: shown before commit.
    bindings: list[validate.Binding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def counts(self) -> dict[str, int]:
        c = self.diff["change"].value_counts() if len(self.diff) else {}
        return {
            "new": int(c.get("new", 0)),
            "changed": int(c.get("changed", 0)),
            "unchanged": int(c.get("unchanged", 0)),
            "removed": int(c.get("removed", 0)),
            "invalid": self.invalid,
        }

    @property
    def months(self) -> list[date]:
        return sorted({pd.Timestamp(m).date() for m in self.rows["period"].unique()})

    def turns(self) -> dict[str, int]:
        """How many KPI values turn to each light ("3 turn red")."""
        return self.effects["after"].value_counts().to_dict() if len(self.effects) else {}


class Started(Protocol):
    """What an after-commit hook started (kpi_core/after_commit.AfterCommit)."""

    def wait_for_alerts(self) -> None: ...

    def finish(self, timeout: float) -> bool: ...


# Called once a batch is committed, outside its transaction, with the writer, the batch id and
# its months; what it does can no longer undo the batch.
AfterCommitHook = Callable[[Warehouse, Actor, int, list[date]], Started]


def _nothing() -> None:
    return None


def _all_done(timeout: float) -> bool:
    return True


@dataclass(frozen=True)
class Committed:
    batch_id: int | None  # None: nothing changed, nothing written
    counts: dict[str, int]
    # The alert rules run on the loaded months after the commit, on a thread of their own, so
    # the analyst does not wait for them; `wait_for_alerts` waits for the rules.
    wait_for_alerts: Callable[[], None] = _nothing
    # The rules and then the pushes of what they raised (AfterCommit.finish): a process about
    # to close the warehouse and exit (the command line) waits here, bounded.
    finish: Callable[[float], bool] = _all_done


@collector.paused()
def prepare(
    wh: Warehouse,
    uploads: list[tuple[str, bytes]],
    who: Actor,
    *,
    mapping: profile.Profile | str | None = None,
    source: str | None = None,
    today: date | None = None,
    limits: files.Limits | None = None,
    progress=None,
    choices: dict[tuple[str, str, str, str], str] | None = None,
) -> Intake:
    """Read, check and diff uploads without writing anything. `progress(fraction, step)` is
    called between steps, `step` a coded message. Raises FileError for a file that cannot be read at all."""
    step = progress or (lambda fraction, text: None)
    if not uploads:
        raise IntakeError(Message("in_no_file"))
    cat = load_catalog(wh)
    if not cat.kpis or not cat.units:
        raise IntakeError(Message("in_no_library"))
    names = Names(cat)
    if isinstance(mapping, str):
        mapping = profile.load(wh, mapping)
    records = layout.Records()
    findings: list[Finding] = []
    blank_sheets = []
    sheets = 0
    for i, (name, data) in enumerate(uploads):
        step(0.05 + 0.5 * i / len(uploads), Message("up_step_reading", name=name))
        # The template's instructions are for people; the intake has nothing to say about them.
        tables = [t for t in files.read_file(name, data, limits) if not is_instructions(t.rows)]
        sheets += len(tables)
        if mapping is not None:
            got, found = profile.apply(mapping, tables)
            records.extend(got)
            findings += found
            continue
        for table in tables:
            got, found = layout.read_table(table, names)
            records.extend(got)
            findings += found
            if any(f.says("ly_empty") for f in found):
                blank_sheets.append(f"{name} / {table.label}")
    del tables  # the grids are the biggest thing in memory; the records hold what is needed
    if len(records):
        # Beside a sheet of actuals, a sheet without a header is notes or instructions.
        findings = [
            replace(f, severity="info", message=Message("ly_skipped", said=f.message))
            if f.says("ly_no_header")
            else f
            for f in findings
        ]
    digest = hashlib.sha256()
    for name, data in sorted(uploads):
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    file_names = [n for n, _ in uploads]
    src = (source or (mapping.name if mapping else ", ".join(sorted(file_names)))).strip()
    if not len(records) and not any(f.severity == "error" for f in findings):
        what = N_("in_sheets_empty") if len(blank_sheets) == sheets else N_("in_no_actuals")
        findings.append(
            Finding(
                "error", uploads[0][0], "", None, None,
                Message("in_nothing_to_load", what=Message(what)), Message("in_nothing_to_load_hint"),
            )
        )  # fmt: skip
    return check_and_diff(
        wh, cat, names, records, findings, who, source=src, kind="upload", file_names=file_names,
        sha256=digest.hexdigest(), today=today, blank_sheets=blank_sheets, step=step,
        where=uploads[0][0], choices=choices,
    )  # fmt: skip


@collector.paused()
def check_and_diff(
    wh: Warehouse,
    cat: Catalog,
    names: Names,
    records: layout.Records,
    findings: list[Finding],
    who: Actor,
    *,
    source: str,
    kind: str,
    file_names: list[str],
    sha256: str,
    today: date | None,
    blank_sheets: list[str] | None = None,
    step=None,
    where: str = "",
    choices: dict[tuple[str, str, str, str], str] | None = None,
) -> Intake:
    """Records from any origin (files, a database pull) checked and compared: an Intake.
    `choices`: the analyst's answers, a KPI code per binding (see `validate.check`)."""
    step = step or (lambda fraction, text: None)
    step(0.6, Message("up_step_checking"))
    locked = set(month_locks.closed_months(wh))
    checked = validate.check(
        records,
        cat,
        who.scope,
        today=today or clock.today(),
        locked=locked,
        names=names,
        choices=choices,
    )
    findings = findings + checked.findings
    if len(records) and not len(checked.rows) and not any(f.severity == "error" for f in findings):
        findings.append(
            Finding(
                "error",
                where,
                "",
                None,
                None,
                Message("in_all_blank"),
                Message("in_all_blank_hint"),
            )
        )
    step(0.8, Message("up_step_comparing"))
    with wh.cursor() as cur:
        fingerprint = _fingerprint(cur)
        diff = _diff(cur, checked.rows, source, kind, who)
    effects = _effects(wh, cat, diff)
    step(1.0, Message("up_step_ready"))
    return Intake(
        source, file_names, sha256, findings, checked.rows, diff, effects, checked.invalid,
        fingerprint, who, blank_sheets or [], kind, checked.bindings,
    )  # fmt: skip


def _fingerprint(cur) -> tuple:
    """Changes with every write to `actual`: each goes through a new batch or undoes one."""
    return tuple(
        cur.execute(
            "SELECT max(id), count(*) FILTER (status <> 'committed') FROM batch"
        ).fetchall()[0]
    )


def _diff(cur, rows: pd.DataFrame, source: str, kind: str, who: Actor) -> pd.DataFrame:
    """Each incoming value against the warehouse, plus the values this source gave before for
    the same units and months that the upload no longer has. (By unit: a file of one department
    that happens to share a name with another's does not wipe the other's values.)"""
    incoming = pd.DataFrame(
        {
            "kpi_id": rows["kpi_id"].astype("int32"),
            "unit_id": rows["unit_id"].astype("int32"),
            "period": pd.to_datetime(rows["period"]),  # cast to DATE in the query
            "value": rows["value"].astype(float),
        }
    )
    cur.register("incoming", incoming)
    try:
        got = cur.execute(
            """
            WITH covered AS (SELECT DISTINCT unit_id, period::DATE AS period FROM incoming),
            matched AS (
                SELECT i.kpi_id, i.unit_id, i.period::DATE AS period, a.value AS old,
                       i.value AS new
                FROM incoming i
                LEFT JOIN actual a ON a.kpi_id = i.kpi_id AND a.unit_id = i.unit_id
                                   AND a.period = i.period::DATE
            ),
            removed AS (
                SELECT a.kpi_id, a.unit_id, a.period, a.value AS old, NULL::DOUBLE AS new
                FROM actual a
                JOIN batch b ON b.id = a.batch_id AND b.kind = ? AND b.source_name = ?
                JOIN covered c ON c.unit_id = a.unit_id AND c.period = a.period
                ANTI JOIN incoming i ON i.kpi_id = a.kpi_id AND i.unit_id = a.unit_id
                                     AND i.period::DATE = a.period
            )
            SELECT * FROM matched UNION ALL SELECT * FROM removed
            """,
            [kind, source],
        ).df()
    finally:
        cur.unregister("incoming")
    # Removal never reaches outside the uploader's scope.
    if len(got) and not who.scope.everything:
        allowed = {u: who.scope.allows(int(u)) for u in got["unit_id"].unique()}
        got = got[got["unit_id"].map(allowed).astype(bool)]
    # Equal at the KPI's precision: a reload through another route (its floats off in the last
    # bits) is unchanged, so it writes no batch and no change-log rows.
    old, new = (got[c].to_numpy(dtype=float, na_value=np.nan) for c in ("old", "new"))
    same = actuals.same_values(actuals.comparison_places(cur), got["kpi_id"], old, new)
    change = np.select(
        [got["old"].isna(), got["new"].isna(), same], ["new", "removed", "unchanged"], "changed"
    )
    got["change"] = change
    return got.reset_index(drop=True)


def _effects(wh: Warehouse, cat: Catalog, diff: pd.DataFrame) -> pd.DataFrame:
    """Lights of the month's own value before and after, where they differ (stored KPIs)."""
    cols = ["kpi_id", "unit_id", "period", "before", "after"]
    moving = diff[diff["change"] != "unchanged"]
    agg = cat.kpi_columns.aggregation[moving["kpi_id"].to_numpy()] if len(moving) else []
    moving = moving[np.asarray(agg) <= AGGREGATIONS.index("last")] if len(moving) else moving
    if not len(moving):
        return pd.DataFrame(columns=cols)
    k = moving["kpi_id"].to_numpy(np.int32)
    u = moving["unit_id"].to_numpy(np.int32)
    months = pd.to_datetime(moving["period"]).to_numpy("datetime64[D]")
    lv = targets.levels_by_month(wh, cat, k, u, months)
    levels = [lv[f] for f in ("baseline", "target", "low", "high", "tolerance")]
    direction = cat.kpi_columns.direction[k].astype(str)
    before = _lights(moving["old"].to_numpy(float), levels, direction)
    after = _lights(moving["new"].to_numpy(float), levels, direction)
    changed = before != after
    return pd.DataFrame(
        {
            "kpi_id": k[changed],
            "unit_id": u[changed],
            "period": pd.to_datetime(months[changed]).date,
            "before": before[changed],
            "after": after[changed],
        }
    )


def _lights(values: np.ndarray, levels: list[np.ndarray], direction: np.ndarray) -> np.ndarray:
    """`scoring.statuses` of the values there are; grey where there is none. A month's first
    load has no old values, and most of a large upload is that."""
    out = np.full(len(values), scoring.GREY, dtype=object)
    has = ~np.isnan(values)
    if has.any():
        out[has] = scoring.statuses(values[has], *(v[has] for v in levels), direction[has])
    return out


def commit(
    wh: Warehouse,
    intake: Intake,
    who: Actor,
    *,
    accept_invalid: bool = False,
    after: AfterCommitHook | None = None,
) -> Committed:
    """Write the intake as one batch. With errors, only after the analyst accepts leaving the
    invalid values out. `after` is started once the batch is committed (service.commit_actuals
    gives the alert rules and pushes); without it the commit starts nothing."""
    if not can(who, "load_actuals"):
        raise ScopeError(Message("in_cannot_load", user=who.name, role=role_word(who)))
    if intake.errors and not accept_invalid:
        raise IntakeError(Message("in_has_errors", n=len(intake.errors)))
    if not len(intake.rows):
        raise IntakeError(Message("in_nothing_valid"))
    now = datetime.now()
    try:
        return _commit(wh, intake, who, now, after)
    except _NothingToWrite as nothing:
        return Committed(None, nothing.counts)


class _NothingToWrite(Exception):
    """Every value is already stored: the transaction is rolled back rather than committed, so
    the file and its data version stay as they were (no page cache is emptied for nothing)."""

    def __init__(self, counts: dict[str, int]):
        super().__init__("nothing to write")
        self.counts = counts


def _commit(
    wh: Warehouse, intake: Intake, who: Actor, now: datetime, after: AfterCommitHook | None
) -> Committed:
    with wh.transaction() as cur:
        # The preview's diff still holds unless a batch was written or undone since.
        same = _fingerprint(cur) == intake.fingerprint and intake.prepared_by == who
        diff = intake.diff if same else _diff(cur, intake.rows, intake.source, intake.kind, who)
        moving = diff[diff["change"] != "unchanged"]
        counts = {
            c: int((diff["change"] == c).sum()) for c in ("new", "changed", "unchanged", "removed")
        }
        counts["invalid"] = intake.invalid
        if not len(moving):
            raise _NothingToWrite(counts)
        refuse_closed(cur, moving)
        batch_id = cur.execute("SELECT nextval('batch_id')").fetchall()[0][0]
        months = sorted(pd.DatetimeIndex(pd.unique(intake.rows["period"])).strftime("%Y-%m"))
        cur.execute(
            "INSERT INTO batch (id, kind, source_name, sha256, created_by, created_at, rows,"
            " status, files, months, summary) VALUES (?, ?, ?, ?, ?, ?, ?, 'committed',"
            " ?, ?, ?)",
            [
                batch_id, intake.kind, intake.source, intake.sha256, who.name, now, len(moving),
                "\n".join(intake.files), ", ".join(months), json.dumps(counts),
            ],
        )  # fmt: skip
        _write(cur, moving, batch_id, who.name, now, f"batch {batch_id}: {intake.source}")
    if after is None:
        return Committed(batch_id, counts)
    started = after(wh, who, batch_id, intake.months)
    return Committed(batch_id, counts, started.wait_for_alerts, started.finish)


def _write(cur, moving: pd.DataFrame, batch_id: int, by: str, now: datetime, reason: str) -> None:
    """Apply new/changed/removed values (`actual`), keeping what they replace (`actual_replaced`)
    and recording each old → new in `value_change` (the change log's values)."""
    frame = moving[["kpi_id", "unit_id", "period", "old", "new"]].copy()
    frame["period"] = pd.to_datetime(frame["period"])  # cast to DATE in the query
    cur.register("moving", frame)
    try:
        cur.execute(
            """CREATE OR REPLACE TEMP TABLE changed AS
               SELECT m.kpi_id::INTEGER AS kpi_id, m.unit_id::INTEGER AS unit_id,
                      m.period::DATE AS period, m.old, m.new, a.batch_id AS old_batch_id
               FROM moving m
               LEFT JOIN actual a ON a.kpi_id = m.kpi_id AND a.unit_id = m.unit_id
                                  AND a.period = m.period::DATE"""
        )
    finally:
        cur.unregister("moving")
    cur.execute(
        """INSERT INTO actual_replaced
           SELECT ?, kpi_id, unit_id, period, old, old_batch_id FROM changed
           WHERE old IS NOT NULL""",
        [batch_id],
    )
    cur.execute(
        """DELETE FROM actual USING changed c
           WHERE actual.kpi_id = c.kpi_id AND actual.unit_id = c.unit_id
             AND actual.period = c.period"""
    )
    cur.execute(
        "INSERT INTO actual SELECT kpi_id, unit_id, period, new, ? FROM changed "
        "WHERE new IS NOT NULL",
        [batch_id],
    )
    # The audit: one change set, and each value as numbers (the change log spells them out).
    set_id = cur.execute("SELECT nextval('value_change_set_id')").fetchall()[0][0]
    cur.execute("INSERT INTO value_change_set VALUES (?, ?, ?, ?)", [set_id, now, by, reason])
    cur.execute(
        "INSERT INTO value_change SELECT ?, kpi_id, unit_id, period, old, new FROM changed",
        [set_id],
    )
    actuals.refresh_summary(cur, "changed")
    cur.execute("DROP TABLE changed")


def refuse_closed(cur, moving: pd.DataFrame) -> None:
    """Inside the write's transaction: a month closed since the preview takes nothing."""
    hit = month_locks.closed_among(cur, {pd.Timestamp(m).date() for m in moving["period"].unique()})
    if hit:
        months = Items([f"{m:%Y-%m}" for m in hit], commas=True)
        key = N_("in_closed_one") if len(hit) == 1 else N_("in_closed_many")
        raise IntakeError(Message(key, months=months))
