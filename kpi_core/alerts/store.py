"""Alerts in the warehouse: raising what is news, closing what no longer holds or was superseded,
reading them back, and the state changes people make (acknowledge, close), each audited."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

import pandas as pd

from kpi_core import audit, people
from kpi_core.access import ROLE_NAMES, Actor, can
from kpi_core.alerts.detect import (
    Candidate,
    Coverage,
    _identity,
)
from kpi_core.alerts.messages import render
from kpi_core.alerts.rules import (
    ACKNOWLEDGED,
    CLEARED,
    CLOSED,
    OPEN,
    AlertError,
)
from kpi_core.catalog import Catalog, load_catalog
from kpi_core.errors import NotFoundError, ScopeError
from kpi_core.memo import by_data_version
from kpi_core.messages import Message
from kpi_core.texts import N_
from kpi_core.warehouse import Warehouse


@dataclass(frozen=True)
class Alert:
    id: int
    kind: str
    kpi_id: int | None
    unit_id: int
    kpi: str | None  # code
    unit: str  # code
    period: date
    severity: str
    state_key: str
    owner: str | None
    message_zh: str  # rendered from the key and parameters when read (or as stored before)
    message_en: str
    details: dict
    state: str
    raised_at: datetime
    message_key: str | None = None  # None: an alert stored with finished texts (before v13)
    message_params: str | None = None  # JSON (kpi_core.alerts.messages)

    @property
    def period_label(self) -> str:
        return _period_label(self.kind, self.period)

    def message(self, lang: str) -> str:
        return self.message_zh if lang == "zh" else self.message_en


def _period_label(kind: str, period: date) -> str:
    return f"{period.year}" if kind == "at_risk" else f"{period:%Y-%m}"


# Raising, closing, reading.


_LATEST_SQL = """
SELECT id, kind, kpi_id, unit_id, period, state_key, state, resolution
FROM alert_event
QUALIFY row_number() OVER (
    PARTITION BY kind, kpi_id, unit_id, period,
                 CASE WHEN kind = 'overdue' THEN state_key END
    ORDER BY id DESC) = 1
"""


def raise_alerts(
    wh: Warehouse,
    cat: Catalog,
    who: Actor,
    candidates: list[Candidate],
    *,
    now: datetime | None = None,
) -> list[Alert]:
    """Record the candidates that are news (see the module's docstring) in one transaction;
    close what they supersede and, for a `Candidates` from `evaluate`, what no longer holds.
    Returns the new alerts."""
    return _apply(wh, cat, who, candidates, now or datetime.now())[0]


def _apply(wh, cat, who, candidates, now: datetime) -> tuple[list[Alert], list[int]]:
    coverage: Coverage | None = getattr(candidates, "coverage", None)
    with wh.transaction() as cur:
        latest = {
            _identity(kind, k, u, p, sk): (aid, sk, state, res)
            for aid, kind, k, u, p, sk, state, res in cur.execute(_LATEST_SQL).fetchall()
        }
        fresh: list[Candidate] = []
        superseded: list[tuple[int, str]] = []
        seen: set[tuple] = set()
        for c in candidates:
            if not who.scope.allows(c.unit_id) or c.identity in seen:
                continue
            seen.add(c.identity)
            prev = latest.get(c.identity)
            if prev is not None and prev[1] == c.state_key and prev[3] != CLEARED:
                continue  # raised before in this state (and still so, or closed by a person)
            fresh.append(c)
            if prev is not None and prev[2] != CLOSED:
                superseded.append((prev[0], c.state_key))
        cleared = []
        if coverage is not None:
            cleared = [
                aid
                for ident, (aid, _sk, state, _res) in latest.items()
                if state != CLOSED
                and ident not in seen
                and coverage.covers(ident[0], ident[2], ident[3])
            ]
        if not fresh and not superseded and not cleared:
            return [], []
        if fresh:
            # Owners are stored as users where they are users (people.py); where nothing names
            # anybody (a stale-data alert), the unit's head or else its scope's analysts.
            known = people.load(cur)
            answering = (
                known.answering_for(cat) if any(not _kpi_owner(cat, c) for c in fresh) else {}
            )
        ids = [
            r[0]
            for r in cur.execute(
                "SELECT nextval('alert_id') FROM range(?)", [len(fresh)]
            ).fetchall()
        ]
        alerts = [
            Alert(
                aid,
                c.kind,
                c.kpi_id,
                c.unit_id,
                cat.kpis[c.kpi_id].code if c.kpi_id is not None else None,
                cat.units[c.unit_id].code,
                c.period,
                c.severity,
                c.state_key,
                known.canonical(c.owner or _kpi_owner(cat, c)) or answering.get(c.unit_id),
                c.message_zh,
                c.message_en,
                c.details,
                OPEN,
                now,
                c.text.key,
                c.text.stored(),
            )  # fmt: skip
            for aid, c in zip(ids, fresh, strict=True)
        ]
        if alerts:
            _insert(cur, alerts)
        closing = [(aid, f"superseded: now {state}") for aid, state in superseded]
        closing += [(aid, CLEARED) for aid in cleared]
        if closing:
            cur.executemany(
                """UPDATE alert_event SET state = 'closed', closed_by = 'system', closed_at = ?,
                          resolution = ? WHERE id = ?""",
                [[now, res, aid] for aid, res in closing],
            )
        changes = [(a.id, _key(a.unit, a.kpi, a.period, a.kind), None, OPEN, None) for a in alerts]
        if closing:
            keys = dict(((aid, key) for aid, key in _keys(cur, [aid for aid, _ in closing])))
            changes += [(aid, keys[aid], "open", CLOSED, res) for aid, res in closing]
        _audit_many(cur, now, "system", changes)
    return alerts, [aid for aid, _ in closing]


def _kpi_owner(cat: Catalog, c: Candidate) -> str | None:
    if c.kpi_id is None or c.kpi_id not in cat.kpis:
        return None
    return cat.kpis[c.kpi_id].owner or None


def _key(unit: str, kpi: str | None, period: date, kind: str) -> str:
    # Unit first, as other audit keys, so the log's key-prefix filter finds a unit's alerts.
    return f"{unit}/{kpi or '-'}/{period:%Y-%m}/{kind}"


def _keys(cur, ids: list[int]) -> list[tuple[int, str]]:
    rows = cur.execute(
        """SELECT a.id, u.code, k.code, a.period, a.kind FROM alert_event a
           JOIN org_unit u ON u.id = a.unit_id LEFT JOIN kpi k ON k.id = a.kpi_id
           WHERE list_contains(?, a.id)""",
        [ids],
    ).fetchall()
    return [(aid, _key(u, k, p, kind)) for aid, u, k, p, kind in rows]


def _insert(cur, alerts: list[Alert]) -> None:
    frame = pd.DataFrame(
        {
            "id": [a.id for a in alerts],
            "kpi_id": pd.array([a.kpi_id for a in alerts], dtype="Int32"),
            "unit_id": [a.unit_id for a in alerts],
            "period": pd.to_datetime([a.period for a in alerts]),
            "kind": [a.kind for a in alerts],
            "severity": [a.severity for a in alerts],
            "state_key": [a.state_key for a in alerts],
            "owner": pd.array([a.owner for a in alerts], dtype=object),
            "message_key": [a.message_key for a in alerts],
            "message_params": [a.message_params for a in alerts],
            "details": [json.dumps(a.details, ensure_ascii=False, default=str) for a in alerts],
            "raised_at": pd.to_datetime([a.raised_at for a in alerts]),
        }
    )
    cur.register("new_alerts", frame)
    try:
        cur.execute(
            """INSERT INTO alert_event (id, kpi_id, unit_id, period, kind, severity, state_key,
                                        owner, message_key, message_params, details, state,
                                        raised_at)
               SELECT id, kpi_id, unit_id, period::DATE, kind, severity, state_key,
                      owner::VARCHAR, message_key, message_params, details, 'open', raised_at
               FROM new_alerts"""
        )
    finally:
        cur.unregister("new_alerts")


def _audit_many(cur, now: datetime, by: str, rows: list[tuple]) -> None:
    """Audit rows (alert id, key, old state, new state, reason) for state changes."""
    if not rows:
        return
    frame = pd.DataFrame(
        {
            "key": [f"{key}#{aid}" for aid, key, *_ in rows],
            "old": pd.array([r[2] for r in rows], dtype=object),
            "new": [r[3] for r in rows],
            "reason": pd.array([r[4] for r in rows], dtype=object),
        }
    )
    audit.record_many(cur, frame, changed_at=now, changed_by=by, entity="alert", field="state")


_SELECT = """
SELECT a.id, a.kind, a.kpi_id, a.unit_id, k.code AS kpi, u.code AS unit, a.period, a.severity,
       a.state_key, a.owner, a.message_zh, a.message_en, a.details, a.state, a.raised_at,
       a.acknowledged_by, a.acknowledged_at, a.closed_by, a.closed_at, a.resolution,
       a.message_key, a.message_params
FROM alert_event a
JOIN org_unit u ON u.id = a.unit_id
LEFT JOIN kpi k ON k.id = a.kpi_id
"""


def _alert(row, cat: Catalog) -> Alert:
    (aid, kind, kpi_id, unit_id, kpi, unit, period, severity, state_key, owner, zh, en,
     details, state, raised_at) = row[:15]  # fmt: skip
    key, params = row[-2:]
    if key is not None:
        zh, en = (render(key, params, lang, cat) for lang in ("zh", "en"))
    return Alert(
        int(aid), kind, None if kpi_id is None else int(kpi_id), int(unit_id), kpi, unit, period,
        severity, state_key, owner, zh, en, json.loads(details or "{}"), state, raised_at, key,
        params,
    )  # fmt: skip


def unpushed(wh: Warehouse, cat: Catalog, who: Actor) -> list[Alert]:
    """Open alerts inside the scope that no push was ever attempted for."""
    rows = wh.rows(
        _SELECT  # noqa: S608 - fixed SQL fragments
        + """WHERE a.state = 'open' AND list_contains(?, a.unit_id)
               AND NOT EXISTS (SELECT 1 FROM push_log p WHERE p.alert_id = a.id)
             ORDER BY a.id""",
        [_scope_ids(cat, who)],
    )
    return [_alert(r, cat) for r in rows]


def _scope_ids(cat: Catalog, who: Actor) -> list[int]:
    return [u for u in cat.units if who.scope.allows(u)]


def owners(wh: Warehouse, cat: Catalog, who: Actor) -> list[str]:
    """The stored owners of alerts inside the caller's scope (not other departments' people),
    sorted: the Alerts page's owner filter."""
    rows = wh.rows(
        "SELECT DISTINCT owner FROM alert_event WHERE owner IS NOT NULL "
        "AND list_contains(?, unit_id) ORDER BY owner",
        [_scope_ids(cat, who)],
    )
    return [r[0] for r in rows]


@by_data_version
def open_alerts(
    wh: Warehouse,
    cat: Catalog,
    who: Actor,
    *,
    units: Iterable[int] | None = None,
    kinds: Iterable[str] | None = None,
    severities: Iterable[str] | None = None,
    owners: Iterable[str] | None = None,
    states: Iterable[str] | None = (OPEN, ACKNOWLEDGED),
) -> pd.DataFrame:
    """Alerts inside the caller's scope, most severe and newest first; filters are inclusive
    lists (`states=None`: every state). `period_label` reads '2026' for a yearly forecast."""
    sql = [_SELECT, "WHERE list_contains(?, a.unit_id)"]
    params: list[object] = [_scope_ids(cat, who)]
    for column, values in (
        ("a.unit_id", units),
        ("a.kind", kinds),
        ("a.severity", severities),
        ("a.owner", owners),
        ("a.state", states),
    ):
        if values is not None:
            sql.append(f"AND list_contains(?, {column})")
            params.append(list(values))
    sql.append(
        "ORDER BY CASE a.severity WHEN 'high' THEN 0 WHEN 'medium' THEN 1 ELSE 2 END, "
        "a.raised_at DESC, a.id DESC"
    )
    df = wh.df(" ".join(sql), params)
    keyed = df["message_key"].notna()
    for col, lang in (("message_zh", "zh"), ("message_en", "en")):
        df[col] = df[col].astype(object)
        df.loc[keyed, col] = [
            render(k, p, lang, cat)
            for k, p in zip(df["message_key"][keyed], df["message_params"][keyed], strict=True)
        ]
    df = df.drop(columns=["message_key", "message_params"])
    df["period_label"] = [
        _period_label(k, pd.Timestamp(p).date())
        for k, p in zip(df["kind"], df["period"], strict=True)
    ]
    return df


@by_data_version
def open_counts(
    wh: Warehouse, who: Actor, pairs: Iterable[tuple[int, int]]
) -> dict[tuple[int, int], int]:
    """Alerts not closed per (KPI, unit) pair inside the caller's scope, from one query (the
    Board's card badges)."""
    wanted = {(k, u) for k, u in pairs if who.scope.allows(u)}
    if not wanted:
        return {}
    rows = wh.rows(
        """SELECT kpi_id, unit_id, count(*) FROM alert_event
           WHERE state <> 'closed' AND kpi_id IS NOT NULL AND list_contains(?, unit_id)
           GROUP BY ALL""",
        [sorted({u for _, u in wanted})],
    )
    return {(k, u): n for k, u, n in rows if (k, u) in wanted}


def alerts_for(wh: Warehouse, who: Actor, kpi_id: int, unit_id: int) -> list[Alert]:
    """A KPI node's alerts that are not closed (the Board shows them on the KPI's card)."""
    who.scope.check(unit_id)
    cat = load_catalog(wh)
    rows = wh.rows(
        _SELECT + "WHERE a.kpi_id = ? AND a.unit_id = ? AND a.state <> 'closed' ORDER BY a.id",
        [kpi_id, unit_id],
    )
    return [_alert(r, cat) for r in rows]


# Keys built below as "al_state_…", written out so that extraction finds them.
_AL_STATE_KEYS = (N_("al_state_acknowledged"), N_("al_state_closed"))


def _change_state(wh, who, alert_id: int, new: str, reason: str | None, sets: str) -> None:
    if not can(who, "act_on_alerts"):
        role = Message(ROLE_NAMES[who.role])
        raise ScopeError(Message("al_err_cannot_act", user=who.name, role=role))
    now = datetime.now()
    with wh.transaction() as cur:
        row = cur.execute(
            "SELECT unit_id, state FROM alert_event WHERE id = ?", [alert_id]
        ).fetchone()
        if row is None:
            raise NotFoundError(Message("al_err_no_alert", id=alert_id))
        unit_id, state = row
        code = cur.execute("SELECT code FROM org_unit WHERE id = ?", [unit_id]).fetchone()[0]
        who.scope.check(unit_id, code)
        if state == CLOSED:
            raise AlertError(Message("al_err_closed_already", id=alert_id))
        if state == new:
            raise AlertError(
                Message("al_err_state_already", id=alert_id, state=Message(f"al_state_{new}"))
            )
        cur.execute(sets, [who.name, now, *([reason] if new == CLOSED else []), alert_id])
        (key,) = [k for _, k in _keys(cur, [alert_id])]
        _audit_many(cur, now, who.name, [(alert_id, key, state, new, reason)])


def acknowledge(wh: Warehouse, who: Actor, alert_id: int, note: str | None = None) -> None:
    """Somebody has seen it and is on it; it stays on the list until closed."""
    _change_state(
        wh, who, alert_id, ACKNOWLEDGED, (note or "").strip() or None,
        "UPDATE alert_event SET state = 'acknowledged', acknowledged_by = ?, acknowledged_at = ? "
        "WHERE id = ?",
    )  # fmt: skip


def close(wh: Warehouse, who: Actor, alert_id: int, resolution: str) -> None:
    """Close with what was done about it (required)."""
    resolution = (resolution or "").strip()
    if not resolution:
        raise AlertError(Message("al_err_resolution"))
    _change_state(
        wh, who, alert_id, CLOSED, resolution,
        "UPDATE alert_event SET state = 'closed', closed_by = ?, closed_at = ?, resolution = ? "
        "WHERE id = ?",
    )  # fmt: skip
