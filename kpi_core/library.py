"""The KPI library (指标库): one definition per KPI, with its formula and caliber (口径)."""

from __future__ import annotations

from dataclasses import dataclass, field

from kpi_core import formula

DIRECTIONS = ("up", "down", "range")
AGGREGATIONS = ("sum", "avg", "last", "ratio", "formula")
PERSPECTIVES = ("financial", "customer", "process", "learning")

# What users write in Excel, in either language, mapped to the stored value.
DIRECTION_ALIASES = {
    "up": "up", "higher": "up", "↑": "up", "越高越好": "up", "正向": "up", "高": "up",
    "down": "down", "lower": "down", "↓": "down", "越低越好": "down", "反向": "down", "低": "down",
    "range": "range", "区间": "range", "范围": "range", "适中": "range",
}  # fmt: skip
AGGREGATION_ALIASES = {
    "sum": "sum", "求和": "sum", "合计": "sum", "累计": "sum",
    "avg": "avg", "average": "avg", "mean": "avg", "平均": "avg", "均值": "avg",
    "last": "last", "期末": "last", "最新": "last", "时点": "last",
    "ratio": "ratio", "比率": "ratio", "比例": "ratio",
    "formula": "formula", "公式": "formula", "计算": "formula",
}  # fmt: skip
PERSPECTIVE_ALIASES = {
    "financial": "financial", "财务": "financial",
    "customer": "customer", "客户": "customer",
    "process": "process", "internal process": "process", "内部流程": "process", "流程": "process",
    "learning": "learning", "learning & growth": "learning", "学习与成长": "learning",
    "学习成长": "learning",
}  # fmt: skip
KIND_ALIASES = {"result": "result", "结果": "result", "process": "process", "过程": "process"}

PERCENT_UNITS = {"%", "％", "percent", "百分比"}


@dataclass(frozen=True)
class Kpi:
    id: int
    code: str
    name_zh: str
    name_en: str
    unit: str
    direction: str
    aggregation: str
    numerator: str | None = None
    denominator: str | None = None
    formula: str | None = None
    perspective: str | None = None
    kind: str | None = None
    veto: bool = False
    decimals: int | None = None
    caliber: str | None = None
    source: str | None = None
    owner: str | None = None
    min_value: float | None = None
    max_value: float | None = None
    sort_order: int = 0
    parsed: formula.Node | None = field(default=None, compare=False, repr=False)

    @property
    def is_percent(self) -> bool:
        return self.unit.strip().lower() in PERCENT_UNITS

    def name(self, lang: str) -> str:
        return self.name_zh if lang == "zh" else self.name_en

    def dependencies(self) -> set[str]:
        """Codes of the KPIs this one is computed from."""
        if self.aggregation == "ratio":
            return {c for c in (self.numerator, self.denominator) if c}
        if self.aggregation == "formula" and self.parsed is not None:
            return formula.references(self.parsed)
        return set()
