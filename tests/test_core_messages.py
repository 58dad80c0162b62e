"""The core's refusals outside the intake are coded messages: the English (`str`, which the
command line prints) reads exactly as before, and the pages render the same refusal in Chinese
from the catalogs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from kpi_core import access
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

    viewer = access.Actor("li", "viewer", Scope.all())
    admin = access.SYSTEM
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


def test_lookups_scope_and_sessions(demo_wh):
    from datetime import date, datetime

    from kpi_core import catalog, completeness, sessions

    cat = catalog.load_catalog(demo_wh)
    viewer = access.Actor("li", "viewer", Scope.all())
    check(lambda: cat.unit("NOPE"), "There is no org unit 'NOPE'.", "组织“NOPE”不存在。")
    check(lambda: cat.kpi("NOPE"), "There is no KPI 'NOPE'.", "指标“NOPE”不存在。")
    check(
        lambda: catalog.load_user(demo_wh, "ghost"),
        "There is no user 'ghost'.",
        "用户“ghost”不存在。",
    )
    group = cat.unit("GROUP")
    other = next(u for u in cat.units.values() if u.id != group.id)
    check(
        lambda: (
            Scope(frozenset({group.id})).check(other.id, other.code)
            if not Scope(frozenset({group.id})).allows(other.id)
            else Scope(frozenset({other.id})).check(group.id, group.code)
        ),
        f"Org unit {group.code if Scope(frozenset({group.id})).allows(other.id) else other.code} "
        "is outside your scope.",
        f"组织 {group.code if Scope(frozenset({group.id})).allows(other.id) else other.code} "
        "超出您的权限范围。",
    )
    now = datetime(2026, 11, 3, 9, 0)
    check(
        lambda: sessions.end_sessions(demo_wh, viewer, "ghost", now=now),
        "Only admins end other users' sessions.",
        "只有管理员可以结束其他用户的会话。",
    )
    check(
        lambda: sessions.end_sessions(demo_wh, access.SYSTEM, "ghost", now=now),
        "There is no user 'ghost'.",
        "用户“ghost”不存在。",
    )
    check(
        lambda: completeness.publish(demo_wh, cat, viewer, group.id, date(2026, 10, 1)),
        "User 'li' (viewer) cannot publish months — analysts and admins do.",
        "用户“li”（查看者）不能发布月份——这由数据分析员和管理员完成。",
    )
    check(
        lambda: completeness.publish(demo_wh, cat, access.SYSTEM, 987654, date(2026, 10, 1)),
        "There is no org unit 987654.",
        "没有编号为 987654 的组织。",
    )


def test_trends_detail_planning_definitions(demo_wh):
    from datetime import date

    from kpi_core import (
        catalog,
        detail,
        grid_edits,
        library_edits,
        screen,
        target_history,
        trends,
    )

    cat = catalog.load_catalog(demo_wh)
    viewer = access.Actor("li", "viewer", Scope.all())
    check(
        lambda: trends.month_range(date(2026, 5, 1), date(2026, 3, 1)),
        "The range ends (2026-03) before it starts (2026-05).",
        "时间范围的结束月份（2026-03）早于开始月份（2026-05）。",
    )
    check(
        lambda: trends.month_range(date(2000, 1, 1), date(2026, 3, 1)),
        f"315 months is too long a range; pick {trends.MAX_MONTHS} or fewer.",
        f"315 个月的范围太长；请选择不超过 {trends.MAX_MONTHS} 个月。",
    )
    group = cat.unit("GROUP")
    kpi = next(iter(cat.kpis.values()))  # a scope that holds nothing finds it nowhere
    check(
        lambda: detail.locate(
            demo_wh, cat, Scope(frozenset()), kpi.id, group.id, [date(2026, 10, 1)]
        ),
        f"KPI {kpi.code} is not on the scorecard of org unit GROUP in 2026-10.",
        f"2026-10 组织 GROUP 的计分卡上没有指标 {kpi.code}。",
    )
    check(
        lambda: grid_edits.require_editor(viewer),
        "Only department heads and admins change targets and weights.",
        "只有部门负责人和管理员可以修改目标和权重。",
    )
    row = demo_wh.one("SELECT kpi_id, unit_id, grain, period_start FROM target LIMIT 1")
    check(
        lambda: target_history.revert_edit(demo_wh, cat, *row, 999),
        "There is no version 999 of that target.",
        "该目标没有版本 999。",
    )
    check(
        lambda: library_edits.save_kpi(demo_wh, {"code": "X"}, viewer),
        "Only admins change the KPI library and scorecards.",
        "只有管理员可以修改指标库和考核表。",
    )
    check(
        lambda: screen.kiosk_units(cat, ["NOPE", "NADA"]),
        "None of the kiosk's units (NOPE, NADA) exist in the warehouse",
        "该屏幕配置的组织（NOPE、NADA）在数据仓库中都不存在",
    )


def test_settings_clock_workbook_and_warehouse(tmp_path, monkeypatch):
    from datetime import datetime

    import pandas as pd

    from kpi_core import auth, clock, sessions, workbook
    from kpi_core.warehouse import Warehouse

    monkeypatch.setenv("KPI_TODAY", "tomorrow")
    check(
        clock.today,
        "KPI_TODAY='tomorrow' is not a day — write it like 2026-11-15",
        "KPI_TODAY='tomorrow' 不是日期——请写作 2026-11-15",
    )
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('[sign_in]\nmax_failures = 0\ncookie_secret = "short"\n', encoding="utf-8")
    monkeypatch.setenv("KPI_SECRETS", str(secrets))
    check(
        auth.policy,
        "[sign_in] max_failures = 0 in secrets.toml must be a whole number ≥ 1.",
        "secrets.toml 中 [sign_in] 的 max_failures = 0 必须是不小于 1 的整数。",
    )
    wh = Warehouse(str(tmp_path / "wh.duckdb"))
    check(
        lambda: sessions.key(wh, now=datetime(2026, 11, 3)),
        f"[sign_in] cookie_secret in secrets.toml must be a string of at least "
        f"{sessions._MIN_SECRET} characters — e.g. the output of "
        '`python -c "import secrets; print(secrets.token_urlsafe(48))"`.',
        f"secrets.toml 中 [sign_in] 的 cookie_secret 必须是至少 {sessions._MIN_SECRET} 个字符的"
        '字符串——例如以下命令的输出：`python -c "import secrets; '
        'print(secrets.token_urlsafe(48))"`。',
    )
    missing = tmp_path / "gone.xlsx"
    check(
        lambda: workbook.read(missing),
        f"File not found: {missing}",
        f"找不到文件：{missing}",
    )
    both = tmp_path / "both.xlsx"
    with pd.ExcelWriter(both) as xl:
        pd.DataFrame({"code": ["A"]}).to_excel(xl, sheet_name="kpis", index=False)
        pd.DataFrame({"code": ["B"]}).to_excel(xl, sheet_name="指标库", index=False)
    check(
        lambda: workbook.read(both),
        "Sheets 'kpis' and '指标库' are both 'kpis'; keep one.",
        "工作表“kpis”和“指标库”都是“kpis”；请只保留一个。",
    )
    wal = tmp_path / "new.duckdb"
    Path(f"{wal}.wal").write_bytes(b"")
    check(
        lambda: wh.replace_file(wal, tmp_path / "old.duckdb"),
        f"{wal} has an unfinished write-ahead log; close it cleanly first.",
        f"{wal} 有未完成的预写日志（.wal）；请先正常关闭它。",
    )
    check(
        lambda: Warehouse(":memory:").replace_file(wal, tmp_path / "old.duckdb"),
        "An in-memory warehouse has no file to replace.",
        "内存中的数据仓库没有可替换的文件。",
    )


def cli(*args: object) -> str:
    """The command line's error output (it prints the English rendering, `str(error)`)."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "kpi_core", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0, proc.stdout
    return proc.stderr


def test_command_line_prints_the_same_english(own_file, tmp_path):
    """What the command line says on a refusal is byte for byte what it said before coded
    messages (these strings are the old f-strings, rendered)."""
    w = ("--warehouse", own_file)
    assert cli(*w, "score", "--unit", "GROUP", "--period", "2026-10") == (
        "error: Say who runs this command: --user NAME (or KPI_USER) acts within that user's "
        "role and scope; --admin acts with full access.\n"
    )
    assert cli(*w, "--admin", "alerts", "--today", "tomorrow") == (
        "error: 'tomorrow' is not a day — write it like 2026-11-21\n"
    )
    assert cli(*w, "--admin", "publish", "2026-Q1") == (
        "error: '2026-Q1' is not a month — write it like 2026-03\n"
    )
    gone = tmp_path / "gone.toml"
    assert cli(*w, "--admin", "profile", "save", gone) == f"error: File not found: {gone}\n"
    latin = tmp_path / "latin.toml"
    latin.write_bytes("name = 'caf\xe9'".encode("latin-1"))
    assert (
        cli(*w, "--admin", "profile", "save", latin)
        == "error: latin.toml is not a UTF-8 text file\n"
    )


def test_command_line_refusals_are_coded(own_file):
    import argparse

    from kpi_core.cli import arguments, months
    from kpi_core.warehouse import Warehouse

    wh = Warehouse(str(own_file))
    nobody = argparse.Namespace(admin=False, user=None)
    check(
        lambda: arguments._who(wh, nobody),
        "Say who runs this command: --user NAME (or KPI_USER) acts within that user's role and "
        "scope; --admin acts with full access.",
        "请说明由谁运行此命令：--user NAME（或 KPI_USER）按该用户的角色和权限范围执行；"
        "--admin 以完全权限执行。",
    )
    check(
        lambda: arguments._who(wh, argparse.Namespace(admin=True, user="li")),
        "Give --user NAME or --admin, not both.",
        "请给出 --user NAME 或 --admin，不要同时给出。",
    )
    check(
        lambda: arguments._month("2026-Q1"),
        "'2026-Q1' is not a month — write it like 2026-03",
        "“2026-Q1”不是月份——请写作 2026-03",
    )
    check(
        lambda: months._publish(
            wh, access.SYSTEM, argparse.Namespace(month="2027-01", unit=None, command="publish")
        ),
        "nothing is loaded for 2027-01 (latest month with data: 2026-10) — load its actuals "
        "before publishing it",
        "2027-01 还没有导入任何数据（有数据的最近月份：2026-10）——请先导入该月的实际值再发布",
    )


def test_push_channel_refusals(demo_wh):
    """Every problem of a channel is a coded message; the refusal lists them the local way."""
    from kpi_core import push

    admin = access.SYSTEM
    check(
        lambda: push.save_channel(
            demo_wh, admin, "", "slack", "https://hooks.slack.com/services/T/B/C", {"extra": 1}
        ),
        "Channel '' cannot be saved: name: give the channel a name; option 'extra' is not used by "
        "slack channels — use lang; URL: a Slack webhook's address is its secret — put the whole "
        "address in an environment variable or in .streamlit/secrets.toml and write "
        "${KPI_PUSH_SECRET_SLACK_URL} or ${secrets.push.slack_url} here",
        "推送渠道“”无法保存：名称：请为渠道命名；slack 渠道不使用选项“extra”——可用的选项：lang；"
        "地址：Slack Webhook 的地址本身就是密钥——请把整个地址放在环境变量或 .streamlit/secrets.toml "
        "中，并在此处写 ${KPI_PUSH_SECRET_SLACK_URL} 或 ${secrets.push.slack_url}",
    )
    check(
        lambda: push.save_channel(
            demo_wh,
            admin,
            "hook",
            "webhook",
            "https://hooks.example.com/x",
            {"headers": {"X": "${HOME}"}},
        ),
        "Channel 'hook' cannot be saved: headers: ${HOME} cannot be used by a push channel: it may "
        "read only keys of the [push] section of .streamlit/secrets.toml (${secrets.push.NAME}) or "
        "environment variables named KPI_PUSH_SECRET_…",
        "推送渠道“hook”无法保存：请求头：推送渠道不能使用 ${HOME}：它只能读取 .streamlit/secrets.toml "
        "中 [push] 段的键（${secrets.push.NAME}）或名为 KPI_PUSH_SECRET_… 的环境变量",
    )
    check(
        lambda: push.save_channel(
            demo_wh, admin, "m2", "email", "imap://x", {"from": "nobody", "to": ["a@b.co", "bad"]}
        ),
        "Channel 'm2' cannot be saved: server: 'imap://x' is not an SMTP server — write it like "
        "smtp://smtp.example.com:587; from: 'nobody' is not an email address — write the sender, "
        "e.g. kpi@example.com; to: 'bad' is not an email address",
        "推送渠道“m2”无法保存：服务器：“imap://x”不是 SMTP 服务器——请写成 smtp://smtp.example.com:587 "
        "的形式；发件人：“nobody”不是邮箱地址——请填写发件地址，例如 kpi@example.com；"
        "收件人：“bad”不是邮箱地址",
    )
    check(
        lambda: push.save_channel(
            demo_wh,
            access.Actor("li", "viewer", Scope.all()),
            "x",
            "webhook",
            "https://x.example.com",
        ),
        "Only admins configure push channels.",
        "只有管理员可以设置推送渠道。",
    )
    check(
        lambda: push.channel(demo_wh, "nope"),
        "There is no push channel 'nope'.",
        "没有名为“nope”的推送渠道。",
    )


def test_numbers_periods_and_formulas():
    from kpi_core import formula
    from kpi_core.numbers import parse_number
    from kpi_core.periods import parse_period

    check(
        lambda: parse_period("2024-Q9"),
        "'2024-Q9' is not a period — write 2024 (year), 2024-Q1 (quarter) or 2024-03 (month)",
        "“2024-Q9”不是有效的期间——请写作 2024（年）、2024-Q1（季度）或 2024-03（月）",
    )
    check(
        lambda: parse_number("1,5"),
        "'1,5' is not a number: write 1.5 for a decimal, 1,234 for thousands",
        "“1,5”不是数字：小数请写作 1.5，千位分隔请写作 1,234",
    )
    check(lambda: parse_number("abc"), "'abc' is not a number", "“abc”不是数字")
    check(lambda: formula.parse("A + (B"), "a '(' is not closed", "有“(”没有闭合")
    check(
        lambda: formula.parse("A % B"),
        "'%' is not allowed in a formula — use + - × ÷ ( )",
        "公式中不能使用“%”——请使用 + - × ÷ ( )",
    )
    check(lambda: formula.parse(""), "the formula is empty", "公式为空")
    check(
        lambda: formula.parse("A +"),
        "the formula ends too early — an operand is missing",
        "公式不完整——缺少运算数",
    )
    check(lambda: formula.parse("A B"), "unexpected 'B'", "公式中出现了多余的“B”")


def test_grid_problems_are_coded(sales_wh):
    """The Targets page's cell problems render in the page's language from the catalogs."""
    from datetime import date

    from kpi_core import planning
    from kpi_core.catalog import load_catalog

    cat = load_catalog(sales_wh)
    admin = access.SYSTEM
    form = planning.check_targets(sales_wh, cat, admin, [], None, " ", need_reason=True)
    assert [(p.column, str(p.message), p.message.render("zh")) for p in form] == [
        ("effective", "give the date the change takes effect", "请填写改动的生效日期"),
        ("reason", "give a reason — it is kept with the change", "请填写原因——它会与改动一起保存"),
    ]
    base = planning.weight_grid(cat, admin, cat.unit("SALES").id, "zh", date(2024, 12, 1))
    edited = base.copy()
    rows = base.index[base["parent"] == "SALES"]
    edited.loc[rows, "weight"] = [50.0, 35.0, 20.0, -5.0]
    _, problems = planning.weight_edits(base, edited)
    assert [(str(p.message), p.message.render("zh")) for p in problems] == [
        ("-5 — a weight cannot be negative", "-5——权重不能为负数")
    ]
    problem = planning.as_problem("weights", problems[0])
    assert str(problem.message) == f"{problems[0].where}: -5 — a weight cannot be negative"
    assert problem.message.render("zh") == f"{problems[0].where}：-5——权重不能为负数"
