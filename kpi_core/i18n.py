"""Chinese and English: UI strings, status names, units and KPI values formatted the local way."""

from __future__ import annotations

from kpi_core.library import Kpi
from kpi_core.numbers import format_number
from kpi_core.scoring import Levels

LANGS = ("zh", "en")

STRINGS: dict[str, tuple[str, str]] = {
    "app_title": ("KPI 监控", "KPI Monitor"),
    "nav_overview": ("总览", "Overview"),
    "nav_board": ("部门看板", "Board"),
    "language": ("语言", "Language"),
    "unit": ("组织", "Unit"),
    "period": ("期间", "Period"),
    "grain": ("期间类型", "Period type"),
    "grain_M": ("月", "Month"),
    "grain_Q": ("季度", "Quarter"),
    "grain_Y": ("年度", "Year"),
    "signed_in_as": ("当前用户", "Signed in as"),
    "company_score": ("综合得分", "Overall score"),
    "score": ("得分", "Score"),
    "coverage": ("数据覆盖", "Coverage"),
    "child_units": ("下级组织得分", "Units below"),
    "unknown_unit": (
        "找不到您可查看的组织“{code}”，已显示 {shown}。",
        "There is no unit '{code}' in your scope; showing {shown}.",
    ),
    "unit_without_scorecard": (
        "{unit} 没有自己的考核表，已显示其上级 {shown}（{unit} 的指标在状态矩阵中）。",
        "{unit} has no scorecard of its own; showing {shown} above it "
        "({unit}'s KPIs are in the status matrix).",
    ),
    "bad_period": (
        "“{period}”不是有效期间（写作 2026、2026-Q1 或 2026-03），已显示 {shown}。",
        "'{period}' is not a period (write 2026, 2026-Q1 or 2026-03); showing {shown}.",
    ),
    "period_without_data": (
        "{period} 没有数据（数据范围 {first} 至 {latest}），已显示 {shown}。",
        "There is no data for {period} (data runs {first} to {latest}); showing {shown}.",
    ),
    "partial_period": (
        "期间未结束：截至 {month}（{n}/{total} 个月），环比、同比均按相同月份比较。",
        "Period still running: through {month} ({n} of {total} months); changes compare "
        "the same months of the previous period and of last year.",
    ),
    "score_mix": (
        "综合得分 = 本级指标 {own:g}% + 下级组织 {units:g}%",
        "Score = own KPIs {own:g}% + units below {units:g}%",
    ),
    "departments_ranked": ("部门得分排名", "Department scores, ranked"),
    "counts": ("指标状态", "KPI status"),
    "red": ("红灯", "Red"),
    "amber": ("黄灯", "Amber"),
    "green": ("绿灯", "Green"),
    "grey": ("无数据", "No data"),
    "at_risk": ("预警（预计未达标）", "At risk"),
    "top_alerts": ("重点关注", "Top alerts"),
    "owner": ("责任人", "Owner"),
    "freshness": ("数据更新情况", "Data freshness"),
    "latest_month": ("最新数据月份", "Latest month loaded"),
    "missing_for": ("缺 {month} 数据", "{month} not loaded"),
    "up_to_date": ("已更新", "Up to date"),
    "no_alerts": ("当前没有红灯或预警指标。", "No red or at-risk KPIs right now."),
    "actual": ("实际", "Actual"),
    "target": ("目标", "Target"),
    "baseline": ("基准", "Baseline"),
    "challenge": ("挑战", "Challenge"),
    "vs_prev": ("环比", "vs prev."),
    "flat": ("持平", "flat"),
    "vs_last_year": ("同比", "vs last year"),
    "weight": ("权重", "Weight"),
    "achievement": ("达成率", "Achievement"),
    "kpi": ("指标", "KPI"),
    "status": ("状态", "Status"),
    "kpi_cards": ("指标卡片", "KPI cards"),
    "bullets": ("实际 vs 目标区间", "Actual against target bands"),
    "matrix": ("状态矩阵（组织 × 指标）", "Status matrix (unit × KPI)"),
    "rank_among": ("在 {n} 个同级组织中排名第 {rank}", "Rank {rank} of {n} peer units"),
    "vetoed": ("否决：{kpis}未达标，得分归零", "Vetoed: {kpis} missed — score set to 0"),
    "veto_mark": ("否决项", "Veto"),
    "no_scorecard": (
        "该组织还没有考核表（指标树中没有它的指标）。",
        "This unit has no scorecard yet (no KPIs under it in the tree).",
    ),
    "no_data_yet": ("该期间还没有数据。", "No data for this period yet."),
    "from_children": ("由下级指标汇总", "rolled up from its children"),
    "children_score": ("下级加权得分", "Children's weighted score"),
    "data_as_of": ("数据截至 {month}", "Data as of {month}"),
    "warehouse_busy": (
        "数据仓库正忙（可能正在导入），请稍后刷新。",
        "The warehouse is busy (an import may be running). Refresh in a moment.",
    ),
    "empty_warehouse": (
        "数据仓库为空。请运行 `python -m kpi_core init --demo` 或导入 KPI 体系工作簿。",
        "The warehouse is empty. Run `python -m kpi_core init --demo` or import a KPI-system workbook.",
    ),
    "trend_12": ("近 12 个月", "Last 12 months"),
    "score_trend": ("得分趋势", "Score trend"),
    "month": ("月份", "Month"),
    "value": ("数值", "Value"),
    "units_in_scope": ("您可查看的组织", "Units in your scope"),
    "role_admin": ("管理员", "Admin"),
    "role_head": ("部门负责人", "Department head"),
    "role_analyst": ("数据分析", "Analyst"),
    "role_viewer": ("查看者", "Viewer"),
    "open_board": ("打开看板", "Open board"),
    "caliber": ("口径", "Caliber"),
    "source": ("数据来源", "Source"),
}

STATUS_ICON = {"green": "●", "amber": "▲", "red": "■", "grey": "○"}
STATUS_COLOR = {"green": "#1a9850", "amber": "#f0a202", "red": "#d73027", "grey": "#9e9e9e"}

_UNIT_EN = {
    "元": "CNY",
    "个": "",
    "人": "people",
    "天": "days",
    "分": "pts",
    "次": "",
    "小时": "h",
    "件": "pcs",
    "项": "items",
    "家": "",
    "台": "units",
}


def t(key: str, lang: str, **values: object) -> str:
    zh, en = STRINGS[key]
    text = zh if lang == "zh" else en
    return text.format(**values) if values else text


def status_label(status: str, lang: str) -> str:
    """Colour-blind safe: a shape and a word, never colour alone."""
    return f"{STATUS_ICON[status]} {t(status, lang)}"


def unit_label(unit: str, lang: str) -> str:
    return unit if lang == "zh" else _UNIT_EN.get(unit, unit)


def format_value(value: float | None, kpi: Kpi, lang: str, compact: bool = True) -> str:
    """A KPI value with its unit: 96.3% · 6,000万元 · 60.0M CNY · 4.2 天."""
    if value is None:
        return "—"
    decimals = 1 if kpi.decimals is None else kpi.decimals
    if kpi.is_percent:
        return f"{value * 100:.{max(decimals, 1)}f}%"
    text = format_number(value, lang, decimals) if compact else f"{value:,.{decimals}f}"
    suffix = unit_label(kpi.unit, lang)
    if not suffix:
        return text
    return f"{text}{suffix}" if lang == "zh" else f"{text} {suffix}"


def format_target(levels: Levels | None, kpi: Kpi, lang: str) -> str:
    """The target as people read it: the target value, or the green band of a `range` KPI."""
    if levels is None:
        return "—"
    if kpi.direction == "range":
        return f"{format_value(levels.low, kpi, lang)} – {format_value(levels.high, kpi, lang)}"
    return format_value(levels.target, kpi, lang)


def format_delta(current: float | None, previous: float | None, kpi: Kpi, lang: str) -> str | None:
    """Change against a previous value: percentage points for percent KPIs, a % change for
    others, and the plain difference where the previous value was 0 (an incident count)."""
    if current is None or previous is None:
        return None
    if kpi.is_percent:
        return f"{(current - previous) * 100:+.1f}pp"
    if previous == 0:
        diff = current - previous
        text = f"{diff:+,.{0 if float(diff).is_integer() else 1}f}"
        suffix = unit_label(kpi.unit, lang)
        return text + (suffix if lang == "zh" else f" {suffix}" if suffix else "")
    return f"{(current - previous) / abs(previous) * 100:+.1f}%"


def is_flat(delta: str) -> bool:
    """A formatted change that rounds to nothing (+0.0%, -0.0pp, +0)."""
    digits = "".join(ch for ch in delta if ch.isdigit())
    return digits != "" and set(digits) == {"0"}


def period_label(label: str, lang: str) -> str:
    """'2026-03' → '2026年3月' in Chinese; '2026-Q1' → '2026年第1季度'."""
    if lang != "zh":
        return label
    if "-Q" in label:
        y, q = label.split("-Q")
        return f"{y}年第{q}季度"
    if "-" in label:
        y, m = label.split("-")
        return f"{y}年{int(m)}月"
    return f"{label}年"
