"""Alerts as push messages (kpi_core.push): the glue between raised alerts and the channels.

kpi_core.push never imports this package back."""

from __future__ import annotations

from kpi_core import i18n, links, people
from kpi_core.alerts.store import (
    Alert,
)
from kpi_core.texts import N_
from kpi_core.warehouse import Warehouse


def push_alerts(wh: Warehouse, raised: list[Alert]) -> list:
    """Deliver alerts to the enabled push channels (kpi_core.push: retries, log, never raises).
    Only those still open when the push starts: an alert closed meanwhile (its batch rolled
    back, say) speaks of values that no longer exist."""
    from kpi_core import push  # loaded only when pushing

    if raised:
        still = {
            r[0]
            for r in wh.rows(
                "SELECT id FROM alert_event WHERE list_contains(?, id) AND state <> 'closed'",
                [[a.id for a in raised]],
            )
        }
        raised = [a for a in raised if a.id in still]
    messages = push_messages(wh, raised)
    return push.deliver(wh, messages) if messages else []


def push_messages(wh: Warehouse, raised: list[Alert]) -> list:
    """The push messages of alerts, their owners by display name."""
    from kpi_core import push  # loaded only when pushing

    known = people.load(wh) if raised else None
    return [push.PushMessage(**to_message(a, known)) for a in raised]


# Keys built below as "al_kind_…" / "al_sev_…", written out so that extraction finds them.
_AL_KIND_KEYS = (
    N_("al_kind_anomaly"),
    N_("al_kind_at_risk"),
    N_("al_kind_stale"),
    N_("al_kind_status"),
    N_("al_sev_high"),
    N_("al_sev_low"),
    N_("al_sev_medium"),
)


def to_message(alert: Alert, known: people.People | None = None) -> dict:
    """The fields of kpi_core.push.PushMessage for an alert; the owner as `known` shows it."""
    kind = {lang: i18n.t(f"al_kind_{alert.kind}", lang) for lang in ("zh", "en")}
    sev = {lang: i18n.t(f"al_sev_{alert.severity}", lang) for lang in ("zh", "en")}
    what = alert.kpi or ""
    return {
        "alert_id": alert.id,
        "severity": alert.severity,
        "kind": alert.kind,
        "title_zh": f"【{sev['zh']}·{kind['zh']}】{alert.unit}{' / ' + what if what else ''}",
        "title_en": f"[{sev['en']}, {kind['en']}] {alert.unit}{' / ' + what if what else ''}",
        "text_zh": alert.message_zh,
        "text_en": alert.message_en,
        "kpi": alert.kpi,
        "unit": alert.unit,
        "period": alert.period_label,
        "owner": known.name(alert.owner) if known is not None else alert.owner,
        "target": link_target(alert),
    }


def link_target(alert: Alert) -> str | None:
    """Where a pushed alert leads in the app (kpi_core.links): a KPI's alert, an overdue action
    included, to the KPI's detail for its unit and period; late data to the unit's Board."""
    if alert.kpi:
        return links.target(links.DETAIL, unit=alert.unit, kpi=alert.kpi, period=alert.period_label)
    if alert.kind == "stale":
        return links.target(links.BOARD, unit=alert.unit, period=alert.period_label)
    return None
