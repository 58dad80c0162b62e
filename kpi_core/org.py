"""Org units: company → department → team/position."""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("company", "department", "team", "position")
KIND_ALIASES = {
    "company": "company", "公司": "company", "集团": "company",
    "department": "department", "dept": "department", "部门": "department", "中心": "department",
    "team": "team", "region": "team", "line": "team", "团队": "team", "小组": "team",
    "区域": "team", "大区": "team", "产线": "team", "班组": "team",
    "position": "position", "岗位": "position", "职位": "position",
}  # fmt: skip


@dataclass(frozen=True)
class Unit:
    id: int
    code: str
    name_zh: str
    name_en: str
    parent_id: int | None
    kind: str
    sort_order: int = 0

    def name(self, lang: str) -> str:
        return self.name_zh if lang == "zh" else self.name_en
