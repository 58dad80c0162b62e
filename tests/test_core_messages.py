"""The core's refusals outside the intake are coded messages: the English (`str`, which the
command line prints) reads exactly as before, and the pages render the same refusal in Chinese
from the catalogs."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kpi_core import service
from kpi_core.access import Scope
from kpi_core.errors import KpiError


def refused(attempt: Callable[[], object]) -> KpiError:
    with pytest.raises(KpiError) as caught:
        attempt()
    return caught.value


def check(attempt: Callable[[], object], english: str, chinese: str) -> None:
    """`attempt` is refused with a coded message that reads `english` and `chinese`."""
    error = refused(attempt)
    assert error.coded is not None, str(error)
    assert str(error) == english
    assert error.text("en") == english
    assert error.text("zh") == chinese


def test_alert_refusals(demo_wh):
    from kpi_core import alerts

    viewer = service.Actor("li", "viewer", Scope.all())
    admin = service.SYSTEM
    alert_id = demo_wh.one("SELECT min(id) FROM alert_event WHERE state = 'open'")[0]
    check(
        lambda: alerts.acknowledge(demo_wh, viewer, alert_id),
        "User 'li' (viewer) can read alerts but not act on them — ask a department head, an "
        "analyst or an admin.",
        "用户“li”（查看者）可以查看预警，但不能处理——请部门负责人、数据分析员或管理员处理。",
    )
    check(
        lambda: alerts.acknowledge(demo_wh, admin, 987654),
        "There is no alert 987654.",
        "预警 987654 不存在。",
    )
    check(
        lambda: alerts.close(demo_wh, admin, alert_id, "  "),
        "Say how the alert was resolved before closing it.",
        "关闭预警前，请说明是如何解决的。",
    )
    alerts.acknowledge(demo_wh, admin, alert_id)
    check(
        lambda: alerts.acknowledge(demo_wh, admin, alert_id),
        f"Alert {alert_id} is acknowledged already.",
        f"预警 {alert_id} 已经是“已确认”状态。",
    )
    alerts.close(demo_wh, admin, alert_id, "fixed the feed")
    check(
        lambda: alerts.acknowledge(demo_wh, admin, alert_id),
        f"Alert {alert_id} is closed already.",
        f"预警 {alert_id} 已经关闭。",
    )
    check(
        lambda: alerts.save_rule(demo_wh, viewer, "stale", enabled=True, params={}),
        "Only admins change alert rules.",
        "只有管理员可以修改预警规则。",
    )
    check(
        lambda: alerts.save_rule(demo_wh, admin, "weather", enabled=True, params={}),
        "There is no alert rule 'weather' — use one of status, at_risk, anomaly, stale, overdue.",
        "没有预警规则“weather”——请使用以下之一：status、at_risk、anomaly、stale、overdue。",
    )
    check(
        lambda: alerts.save_rule(demo_wh, admin, "stale", enabled=True, params={"wind": 1}),
        "Alert rule 'stale' has no setting 'wind' — use one of "
        + ", ".join(n for n in vars(alerts.StaleRule()) if n != "enabled")
        + ".",
        "预警规则“stale”没有设置项“wind”——请使用以下之一："
        + "、".join(n for n in vars(alerts.StaleRule()) if n != "enabled")
        + "。",
    )
    check(
        lambda: alerts.save_rule(demo_wh, admin, "stale", enabled=True, params={"grace_days": "5"}),
        "Alert rule 'stale', setting 'grace_days': '5' is not a int.",
        "预警规则“stale”的设置项“grace_days”：'5' 不是 int 类型。",
    )
    check(
        lambda: alerts.save_rule(demo_wh, admin, "stale", enabled=True, params={"severity": "x"}),
        "Alert rule 'stale': severity must be one of ('high', 'medium', 'low').",
        "预警规则“stale”：严重程度必须是 ('high', 'medium', 'low') 之一。",
    )
