"""The demo company: a complete, bilingual KPI system as a KPI-system workbook in memory.

华创精密制造有限公司 (Huachuang Precision Manufacturing Co., Ltd.) — seven departments, sales
regions, production lines and service teams; about fifty KPIs with calibers, sources and owners;
a KPI tree with weights; targets for every year shown; and 34 months of actuals with seasonality,
growth, noise and deliberate misses, so that every board shows a believable mix of green, amber
and red.

The demo is always current: `build_demo(end)` makes the 34 months that end with `end`, and the
app and `init --demo` pass `demo_end(today)`, the last complete month. Everything else is
deterministic: a fixed random seed, and the same numbers for the same `end`. The shipped
`data/demo_company.xlsx` is `build_demo(REFERENCE_END)`, the format's worked example.
`build_demo()` returns one DataFrame per workbook sheet (DESIGN.md §5).

The stories are told in years counted back from the last month's year (the "running year"; in
the reference demo 2026) and in months counted back from the last month:
- 华南大区 (South region) lags badly in the running year: revenue below baseline, visits on plan
  but the visit-to-order conversion collapses, collections slip, satisfaction drops.
- Customer complaint rate worsens steadily through the running year (amber YTD, red lately).
- Line 2 (precision assembly) struggles with a new product: availability, performance, output and
  lead time slip; line 2 had the one lost-time safety incident, 14 months before the last month
  (August 2025 in the reference demo; veto).
- Inventory days drift above the band in the running year as South-region orders dry up.
- R&D milestone on-time rate is red; HR turnover and key-talent retention are amber; headcount
  runs above the approved establishment in 2026; budget utilisation overshoots.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from kpi_core.periods import add_months, month_of

SPAN = 34  # months with actuals
REFERENCE_END = date(2026, 10, 1)  # the last month of the shipped workbook
REFERENCE_TODAY = date(2026, 11, 20)  # a day whose demo is the shipped workbook's
SAFETY_INCIDENT_BACK = 14  # months before the last month: line 2's one lost-time incident
SEED = 20260

SHEETS = ("kpis", "org_units", "tree", "targets", "actuals", "phasing")
KPI_COLUMNS = [
    "code", "name_zh", "name_en", "unit", "direction", "aggregation", "numerator", "denominator",
    "formula", "perspective", "kind", "veto", "decimals", "caliber", "source", "owner", "min",
    "max",
]  # fmt: skip
ORG_COLUMNS = ["code", "name_zh", "name_en", "parent", "kind"]
TREE_COLUMNS = ["parent", "child", "weight"]
TARGET_COLUMNS = [
    "unit", "kpi", "period", "baseline", "target", "challenge", "phasing", "low", "high",
    "tolerance",
]  # fmt: skip
ACTUAL_COLUMNS = ["unit", "kpi", "period", "value"]

# ---------------------------------------------------------------------------------------------
# Phasing profiles: monthly shares of an annual total (the engine normalises them).

PHASING: dict[str, list[float]] = {
    # Chinese New Year dip in February, half-year push in June, year-end peak in December.
    "sales_season": [7.5, 4.5, 8.0, 8.2, 8.4, 9.0, 7.8, 7.8, 8.8, 8.0, 9.0, 13.0],
    # Working days: Spring Festival in February, National Day golden week in October.
    "workdays": [21, 16, 21, 21, 19, 20, 23, 21, 22, 17, 20, 23],
}

# ---------------------------------------------------------------------------------------------
# Org units: code, name_zh, name_en, parent, kind.

ORG_UNITS: list[tuple[str, str, str, str | None, str]] = [
    (
        "GROUP",
        "华创精密制造有限公司",
        "Huachuang Precision Manufacturing Co., Ltd.",
        None,
        "company",
    ),
    ("SALES", "销售部", "Sales Department", "GROUP", "department"),
    ("SALES_E", "华东大区", "East China Region", "SALES", "team"),
    ("SALES_N", "华北大区", "North China Region", "SALES", "team"),
    ("SALES_S", "华南大区", "South China Region", "SALES", "team"),
    ("PROD", "生产部", "Production Department", "GROUP", "department"),
    ("PROD_L1", "一号线（数控加工）", "Line 1 – CNC Machining", "PROD", "team"),
    ("PROD_L2", "二号线（精密装配）", "Line 2 – Precision Assembly", "PROD", "team"),
    ("QA", "质量部", "Quality Department", "GROUP", "department"),
    ("CS", "客户服务部", "Customer Service Department", "GROUP", "department"),
    ("CS_HOTLINE", "热线服务组", "Hotline Support Team", "CS", "team"),
    ("CS_FIELD", "现场服务组", "Field Service Team", "CS", "team"),
    ("RD", "研发中心", "R&D Center", "GROUP", "department"),
    ("HR", "人力资源部", "Human Resources Department", "GROUP", "department"),
    ("FIN", "财务部", "Finance Department", "GROUP", "department"),
]

# ---------------------------------------------------------------------------------------------
# KPI library. `ref` is "NUM/DEN" for ratio KPIs and the formula for formula KPIs.


@dataclass(frozen=True)
class _Kpi:
    code: str
    name_zh: str
    name_en: str
    unit: str
    direction: str
    aggregation: str
    perspective: str
    kind: str
    veto: bool = False


_F, _C, _P, _L = "financial", "customer", "process", "learning"
_R, _X = "result", "process"

KPIS: list[_Kpi] = [
    # financial
    _Kpi("REV", "营业收入", "Revenue", "元", "up", "sum", _F, _R),
    _Kpi("GROSS_PROFIT", "毛利额", "Gross profit", "元", "up", "sum", _F, _R),
    _Kpi("GROSS_MARGIN", "毛利率", "Gross margin", "%", "up", "ratio", _F, _R),
    _Kpi("NET_PROFIT", "净利润", "Net profit", "元", "up", "sum", _F, _R),
    _Kpi("COLLECTED", "回款金额", "Cash collected", "元", "up", "sum", _F, _X),
    _Kpi("RECEIVABLE", "到期应收账款", "Receivables due", "元", "up", "sum", _F, _X),
    _Kpi("COLLECT_RATE", "回款率", "Collection rate", "%", "up", "ratio", _F, _X),
    _Kpi("EXPENSE", "期间费用", "Operating expenses", "元", "down", "sum", _F, _R),
    _Kpi("BUDGET_UTIL", "预算执行率", "Budget utilisation", "%", "range", "avg", _F, _X),
    _Kpi("DSO", "应收账款周转天数", "Days sales outstanding", "天", "down", "avg", _F, _X),
    _Kpi("CLOSE_DAYS", "月结完成天数", "Month-end close days", "天", "down", "avg", _P, _X),
    # customer
    _Kpi("NEW_CUST", "新增客户数", "New customers", "个", "up", "sum", _C, _R),
    _Kpi("CSAT", "客户满意度", "Customer satisfaction", "分", "up", "avg", _C, _R),
    _Kpi("VISITS", "客户拜访次数", "Customer visits", "次", "up", "sum", _C, _X),
    _Kpi("ORDERS", "新签订单数", "New orders signed", "个", "up", "sum", _C, _R),
    _Kpi("CONVERSION", "拜访成单率", "Visit-to-order conversion", "%", "up", "ratio", _C, _X),
    _Kpi("DELIVERIES", "交付订单数", "Orders delivered", "个", "up", "sum", _C, _R),
    _Kpi("COMPLAINTS", "有效客诉数", "Valid complaints", "件", "down", "sum", _C, _R),
    _Kpi("COMPLAINT_RATE", "客户投诉率", "Complaint rate", "%", "down", "ratio", _C, _R),
    _Kpi("TICKETS", "服务工单数", "Service tickets", "件", "down", "sum", _C, _X),
    _Kpi("FIRST_FIX", "一次解决工单数", "Tickets fixed first time", "件", "up", "sum", _C, _X),
    _Kpi("FCR", "一次解决率", "First-contact resolution", "%", "up", "ratio", _C, _X),
    _Kpi("ONSITE_HOURS", "现场服务到场时长", "On-site response", "小时", "down", "avg", _C, _X),
    _Kpi("SVC_SAT", "服务满意度", "Service satisfaction", "分", "up", "avg", _C, _R),
    _Kpi("ONTIME_DELIV", "订单准时交付率", "On-time delivery", "%", "up", "avg", _C, _R),
    # internal process
    _Kpi("DELIV_DAYS", "订单交付周期", "Order lead time", "天", "down", "avg", _P, _R),
    _Kpi("AVAIL", "设备时间开动率", "Availability", "%", "up", "avg", _P, _X),
    _Kpi("PERF", "设备性能开动率", "Performance rate", "%", "up", "avg", _P, _X),
    _Kpi("QUAL", "合格品率", "Quality rate", "%", "up", "avg", _P, _X),
    _Kpi("OEE", "设备综合效率", "Overall equipment effectiveness", "%", "up", "formula", _P, _R),
    _Kpi("OUTPUT", "产量", "Output", "件", "up", "sum", _P, _R),
    _Kpi("UNIT_COST", "单件制造成本", "Unit manufacturing cost", "元", "down", "avg", _F, _R),
    _Kpi("SAFETY", "安全事故次数", "Safety incidents", "次", "down", "sum", _P, _R, veto=True),
    _Kpi("INV_DAYS", "存货周转天数", "Inventory days", "天", "range", "avg", _F, _X),
    _Kpi("FPY", "一次交验合格率", "First-pass yield", "%", "up", "avg", _P, _R),
    _Kpi("CUST_REJECT", "客户退货次数", "Customer returns", "次", "down", "sum", _C, _R),
    _Kpi("QUALITY_COST", "质量损失成本", "Cost of poor quality", "元", "down", "sum", _F, _R),
    _Kpi("CAPA_DUE", "到期CAPA数", "CAPAs due", "个", "down", "sum", _P, _X),
    _Kpi("CAPA_CLOSED", "按期关闭CAPA数", "CAPAs closed on time", "个", "up", "sum", _P, _X),
    _Kpi("CAPA_RATE", "CAPA按期关闭率", "CAPA on-time closure rate", "%", "up", "ratio", _P, _X),
    _Kpi("AUDIT_SCORE", "体系审核得分", "Quality-system audit score", "分", "up", "last", _P, _R),
    # learning & growth
    _Kpi("PROJ_ONTIME", "研发里程碑按期达成率", "R&D milestones on time", "%", "up", "avg", _L, _X),
    _Kpi("NPI_LAUNCH", "新产品上市数", "New products launched", "个", "up", "sum", _L, _R),
    _Kpi("PATENTS", "专利申请数", "Patent applications", "件", "up", "sum", _L, _R),
    _Kpi("RD_EXP", "研发投入", "R&D spend", "元", "up", "sum", _L, _X),
    _Kpi("HEADCOUNT", "在岗人数", "Headcount", "人", "range", "last", _L, _R),
    _Kpi("TURNOVER", "月度员工流失率", "Monthly staff turnover", "%", "down", "avg", _L, _R),
    _Kpi("KEY_RETENTION", "核心人才保留率", "Key-talent retention", "%", "up", "last", _L, _R),
    _Kpi("RECRUIT_DAYS", "平均招聘周期", "Average time to hire", "天", "down", "avg", _L, _X),
    _Kpi("TRAIN_HOURS", "人均培训时长", "Training hours per employee", "小时", "up", "sum", _L, _X),
]

# Components of ratio KPIs ("NUMERATOR/DENOMINATOR") and the formulas of formula KPIs.
REFS = {
    "GROSS_MARGIN": "GROSS_PROFIT/REV",
    "COLLECT_RATE": "COLLECTED/RECEIVABLE",
    "CONVERSION": "ORDERS/VISITS",
    "COMPLAINT_RATE": "COMPLAINTS/DELIVERIES",
    "FCR": "FIRST_FIX/TICKETS",
    "CAPA_RATE": "CAPA_CLOSED/CAPA_DUE",
    "OEE": "AVAIL * PERF * QUAL",
}

_GM = "陈志远（总经理）"
_SALES = "王磊（销售总监）"
_FIN = "李静（财务总监）"
_PROD = "张建国（生产总监）"
_EQUIP = "孙伟（设备工程经理）"
_PLAN = "何军（计划物流经理）"
_QA = "周丽（质量总监）"
_EHS = "吴涛（EHS经理）"
_CS = "郑芳（客户服务经理）"
_RD = "林晓东（研发总监）"
_HR = "徐婷（人力资源总监）"

# code -> (caliber 口径, source, owner)
KPI_META: dict[str, tuple[str, str, str]] = {
    "REV": (
        "按当月已开具增值税发票的不含税销售收入确认，扣除当月退货及销售折让；按客户所属大区归集",
        "ERP-金蝶K3 销售发票",
        _SALES,
    ),
    "GROSS_PROFIT": (
        "不含税销售收入减去对应销售出库的标准成本及成本差异分摊，按客户所属大区归集",
        "ERP-金蝶K3 存货核算",
        _FIN,
    ),
    "GROSS_MARGIN": (
        "毛利额除以营业收入；季度、年度及公司口径均为毛利额合计除以收入合计，不取月度平均",
        "ERP-金蝶K3 利润表",
        _GM,
    ),
    "NET_PROFIT": (
        "合并利润表口径的归母净利润，按月结账后数据统计，含所得税费用的月度预提",
        "ERP-金蝶K3 总账 利润表",
        _GM,
    ),
    "COLLECTED": (
        "当月实际到账的销售回款（银行到账及承兑汇票按到票日计），不含预收款",
        "ERP-金蝶K3 收款单",
        _FIN,
    ),
    "RECEIVABLE": (
        "按合同账期计算的当月到期应收账款金额，含以前月份逾期未收部分的当月到期额",
        "ERP-金蝶K3 应收款管理",
        _FIN,
    ),
    "COLLECT_RATE": (
        "回款金额合计除以到期应收账款合计；跨月、跨大区汇总时分子分母分别求和后相除",
        "ERP-金蝶K3 应收款管理",
        _SALES,
    ),
    "EXPENSE": (
        "销售费用、管理费用与财务费用之和，按权责发生制于月结后统计，不含研发费用",
        "ERP-金蝶K3 总账 利润表",
        _FIN,
    ),
    "BUDGET_UTIL": (
        "各部门当月实际发生费用除以当月费用预算，95%至105%为合理区间",
        "费控系统-易快报",
        _FIN,
    ),
    "DSO": (
        "月末应收账款余额除以近三个月日均含税销售收入，单位为天",
        "ERP-金蝶K3 应收款管理",
        _FIN,
    ),
    "CLOSE_DAYS": (
        "自月末次日起至总账关账、出具管理报表之日的工作日天数",
        "ERP-金蝶K3 总账 结账日志",
        _FIN,
    ),
    "NEW_CUST": (
        "当月首次签订合同且首单已发货的客户数，同一集团下属公司按一个客户计",
        "CRM-纷享销客 客户档案",
        _SALES,
    ),
    "CSAT": (
        "季度客户满意度问卷的月度滚动得分（百分制），按大区统计有效问卷的平均分",
        "CRM-纷享销客 满意度调查",
        _SALES,
    ),
    "VISITS": (
        "销售人员在CRM中登记且有定位签到的客户面访及技术交流次数，电话拜访不计",
        "CRM-纷享销客 拜访记录",
        _SALES,
    ),
    "ORDERS": (
        "当月新签且已在ERP审核的销售合同数，框架协议下的追加订单不重复计数",
        "ERP-金蝶K3 销售订单",
        _SALES,
    ),
    "CONVERSION": (
        "新签订单数除以客户拜访次数；汇总时分子分母分别求和后相除",
        "CRM-纷享销客",
        _SALES,
    ),
    "DELIVERIES": (
        "当月已发货并经客户签收的销售订单行数，以ERP销售出库单签收日期为准",
        "ERP-金蝶K3 销售出库单",
        _PLAN,
    ),
    "COMPLAINTS": (
        "经客服与质量部联合确认责任在我方的客户投诉件数，重复投诉同一问题计一件",
        "呼叫中心系统 客诉工单",
        _CS,
    ),
    "COMPLAINT_RATE": (
        "有效客诉数除以交付订单数；季度与年度按分子分母合计计算",
        "呼叫中心系统 / ERP-金蝶K3",
        _CS,
    ),
    "TICKETS": (
        "当月新建的售后服务工单数（含热线咨询、报修及现场服务），撤销工单不计",
        "呼叫中心系统 服务工单",
        _CS,
    ),
    "FIRST_FIX": (
        "首次响应即解决、七天内未再次报修的服务工单数",
        "呼叫中心系统 服务工单",
        _CS,
    ),
    "FCR": (
        "一次解决工单数除以服务工单数；跨组、跨月汇总时分子分母分别求和后相除",
        "呼叫中心系统 服务工单",
        _CS,
    ),
    "ONSITE_HOURS": (
        "现场服务工单自客户报修至工程师到达现场签到的平均小时数，按自然时间计",
        "呼叫中心系统 现场服务APP",
        _CS,
    ),
    "SVC_SAT": (
        "服务工单关闭后短信回访的满意度评分（百分制）平均值，未回复不计入",
        "呼叫中心系统 回访记录",
        _CS,
    ),
    "ONTIME_DELIV": (
        "按客户确认交期（允许提前三天）完成发货的订单行数除以应交付订单行数",
        "ERP-金蝶K3 销售出库单",
        _PROD,
    ),
    "DELIV_DAYS": (
        "订单审核至发货签收的平均自然日天数，按当月发货的订单行计算",
        "ERP-金蝶K3 销售订单 / 出库单",
        _PROD,
    ),
    "AVAIL": (
        "负荷时间扣除故障、换型及调整停机后的开动时间除以负荷时间",
        "MES 设备状态采集",
        _EQUIP,
    ),
    "PERF": (
        "理论节拍乘以加工数量除以开动时间，反映速度损失与小停机",
        "MES 设备状态采集",
        _EQUIP,
    ),
    "QUAL": (
        "一次加工合格数量除以加工总数量，返工品不计为合格",
        "MES 质量检验记录",
        _QA,
    ),
    "OEE": (
        "时间开动率乘以性能开动率乘以合格品率，各因子取同一期间同一单位的值",
        "MES",
        _PROD,
    ),
    "OUTPUT": (
        "当月完工入库的合格成品数量，以生产入库单审核日期为准",
        "ERP-金蝶K3 生产入库单",
        _PROD,
    ),
    "UNIT_COST": (
        "当月直接材料、直接人工与制造费用合计除以完工入库数量",
        "ERP-金蝶K3 成本核算",
        _PROD,
    ),
    "SAFETY": (
        "当月发生的损失工时及以上等级的安全生产事故次数，一票否决",
        "EHS安全台账",
        _EHS,
    ),
    "INV_DAYS": (
        "月末存货余额（原材料、在制品与产成品）除以近三个月日均销售成本",
        "ERP-金蝶K3 存货核算",
        _PLAN,
    ),
    "FPY": (
        "成品终检一次送检合格的批次数除以送检总批次数，返检批次不计为合格",
        "QMS质量管理系统 检验记录",
        _QA,
    ),
    "CUST_REJECT": (
        "客户因质量问题整批或部分退回的次数，以退货通知单日期为准",
        "QMS质量管理系统 客户退货单",
        _QA,
    ),
    "QUALITY_COST": (
        "内部损失（报废、返工）与外部损失（退货、索赔、三包）之和，不含预防与鉴定成本",
        "ERP-金蝶K3 成本核算 / QMS",
        _QA,
    ),
    "CAPA_DUE": (
        "计划完成日期落在当月的纠正与预防措施项数",
        "QMS质量管理系统 CAPA",
        _QA,
    ),
    "CAPA_CLOSED": (
        "当月到期且在计划日期前经验证关闭的纠正与预防措施项数",
        "QMS质量管理系统 CAPA",
        _QA,
    ),
    "CAPA_RATE": (
        "按期关闭的纠正预防措施数除以到期数；汇总时分子分母分别求和后相除",
        "QMS质量管理系统 CAPA",
        _QA,
    ),
    "AUDIT_SCORE": (
        "最近一次IATF 16949内部体系审核得分（百分制），取期末最新一次结果",
        "QMS质量管理系统 审核报告",
        _QA,
    ),
    "PROJ_ONTIME": (
        "当月计划节点中按期通过评审的里程碑数除以计划节点数",
        "PLM-项目管理模块",
        _RD,
    ),
    "NPI_LAUNCH": (
        "完成小批量验证并取得首个客户量产订单的新产品数，以量产订单日期为准",
        "PLM-项目管理模块",
        _RD,
    ),
    "PATENTS": (
        "以公司为申请人向国家知识产权局提交并获受理的发明与实用新型专利件数",
        "知识产权台账",
        _RD,
    ),
    "RD_EXP": (
        "按高新技术企业研发费用归集口径统计的研发人员薪酬、材料、折旧及外委费用",
        "ERP-金蝶K3 研发辅助账",
        _RD,
    ),
    "HEADCOUNT": (
        "月末在岗正式员工人数，不含实习生与劳务派遣人员，按所属部门统计",
        "HR系统-北森 人事档案",
        _HR,
    ),
    "TURNOVER": (
        "当月主动与被动离职人数除以月初与月末在岗人数的平均值",
        "HR系统-北森 异动记录",
        _HR,
    ),
    "KEY_RETENTION": (
        "期初核心人才名单中滚动十二个月仍在职的人数占比，取期末最新一期",
        "HR系统-北森 人才盘点",
        _HR,
    ),
    "RECRUIT_DAYS": (
        "招聘需求审批通过至候选人入职的平均自然日天数，按当月入职人员计算",
        "HR系统-北森 招聘模块",
        _HR,
    ),
    "TRAIN_HOURS": (
        "当月完成签到并通过考核的培训学时总数除以月末在岗人数",
        "HR系统-北森 培训模块",
        _HR,
    ),
}

_DECIMALS = {"元": 0, "%": 1, "个": 0, "人": 0, "天": 1, "分": 1, "次": 0, "小时": 1, "件": 0}
_DECIMALS_OVERRIDE = {"COMPLAINT_RATE": 2, "TURNOVER": 2, "UNIT_COST": 2}
_RANGE_OVERRIDE: dict[str, tuple[float | None, float | None]] = {
    "NET_PROFIT": (None, None),  # a loss is possible
    "BUDGET_UTIL": (0.0, 2.0),
}

# ---------------------------------------------------------------------------------------------
# The KPI tree: (parent, child, weight). `UNIT` is a scorecard node, `UNIT/KPI` a KPI node.

TREE: list[tuple[str, str, int]] = [
    # company scorecard: 60% company KPIs + 40% departments
    ("GROUP", "GROUP/REV", 18),
    ("GROUP", "GROUP/NET_PROFIT", 14),
    ("GROUP", "GROUP/GROSS_MARGIN", 8),
    ("GROUP", "GROUP/ONTIME_DELIV", 8),
    ("GROUP", "GROUP/COMPLAINT_RATE", 7),
    ("GROUP", "GROUP/HEADCOUNT", 5),
    ("GROUP", "SALES", 10),
    ("GROUP", "PROD", 8),
    ("GROUP", "QA", 6),
    ("GROUP", "CS", 5),
    ("GROUP", "RD", 5),
    ("GROUP", "HR", 3),
    ("GROUP", "FIN", 3),
    # sales: exactly the worked example of DESIGN.md §4
    ("SALES", "SALES/REV", 40),
    ("SALES", "SALES/NEW_CUST", 25),
    ("SALES", "SALES/CSAT", 20),
    ("SALES", "SALES/COLLECT_RATE", 15),
    ("SALES/REV", "SALES_E/REV", 45),
    ("SALES/REV", "SALES_N/REV", 30),
    ("SALES/REV", "SALES_S/REV", 25),
    ("SALES_E/REV", "SALES_E/VISITS", 40),
    ("SALES_E/REV", "SALES_E/CONVERSION", 60),
    ("SALES_N/REV", "SALES_N/VISITS", 40),
    ("SALES_N/REV", "SALES_N/CONVERSION", 60),
    ("SALES_S/REV", "SALES_S/VISITS", 40),
    ("SALES_S/REV", "SALES_S/CONVERSION", 60),
    # production
    ("PROD", "PROD/OEE", 25),
    ("PROD", "PROD/OUTPUT", 20),
    ("PROD", "PROD/ONTIME_DELIV", 15),
    ("PROD", "PROD/UNIT_COST", 15),
    ("PROD", "PROD/DELIV_DAYS", 10),
    ("PROD", "PROD/INV_DAYS", 10),
    # veto KPI: a small weight, not 0 — the engine leaves zero-weight edges out of the tree
    ("PROD", "PROD/SAFETY", 5),
    ("PROD/OEE", "PROD_L1/OEE", 50),
    ("PROD/OEE", "PROD_L2/OEE", 50),
    ("PROD_L1/OEE", "PROD_L1/AVAIL", 34),
    ("PROD_L1/OEE", "PROD_L1/PERF", 33),
    ("PROD_L1/OEE", "PROD_L1/QUAL", 33),
    ("PROD_L2/OEE", "PROD_L2/AVAIL", 34),
    ("PROD_L2/OEE", "PROD_L2/PERF", 33),
    ("PROD_L2/OEE", "PROD_L2/QUAL", 33),
    ("PROD/OUTPUT", "PROD_L1/OUTPUT", 55),
    ("PROD/OUTPUT", "PROD_L2/OUTPUT", 45),
    # quality
    ("QA", "QA/FPY", 30),
    ("QA", "QA/CUST_REJECT", 20),
    ("QA", "QA/QUALITY_COST", 20),
    ("QA", "QA/CAPA_RATE", 15),
    ("QA", "QA/AUDIT_SCORE", 15),
    # customer service
    ("CS", "CS/COMPLAINT_RATE", 30),
    ("CS", "CS/FCR", 25),
    ("CS", "CS/ONSITE_HOURS", 20),
    ("CS", "CS/SVC_SAT", 25),
    ("CS/FCR", "CS_HOTLINE/FCR", 60),
    ("CS/FCR", "CS_FIELD/FCR", 40),
    # R&D
    ("RD", "RD/PROJ_ONTIME", 30),
    ("RD", "RD/NPI_LAUNCH", 25),
    ("RD", "RD/PATENTS", 20),
    ("RD", "RD/RD_EXP", 25),
    # HR
    ("HR", "HR/TURNOVER", 30),
    ("HR", "HR/KEY_RETENTION", 20),
    ("HR", "HR/RECRUIT_DAYS", 20),
    ("HR", "HR/TRAIN_HOURS", 30),
    # finance
    ("FIN", "FIN/EXPENSE", 30),
    ("FIN", "FIN/BUDGET_UTIL", 25),
    ("FIN", "FIN/DSO", 25),
    ("FIN", "FIN/CLOSE_DAYS", 20),
]

# ---------------------------------------------------------------------------------------------
# Targets: node -> levels for the years before last, last year and the running year (2024, 2025
# and 2026 in the reference demo); earlier years take the first. (baseline, target, challenge) for up/down KPIs,
# ("range", low, high, tolerance) for range KPIs. `sum` levels are annual totals.

_Lv = tuple[float | str, ...]  # (baseline, target, challenge) or ("range", low, high, tolerance)
_Years = tuple[_Lv, _Lv, _Lv]
_M = 1_000_000

_SALES_REV: _Years = (
    (42 * _M, 50 * _M, 58 * _M),
    (46 * _M, 55 * _M, 64 * _M),
    (50 * _M, 60 * _M, 70 * _M),
)
_PROD_OUTPUT: _Years = (
    (700_000, 740_000, 800_000),
    (760_000, 800_000, 860_000),
    (820_000, 870_000, 930_000),
)


def _same(*lv: float | str) -> _Years:
    """The same levels in all three years."""
    return (lv, lv, lv)


REGION_SHARE = {"SALES_E": 45, "SALES_N": 30, "SALES_S": 25}
LINE_SHARE = {"PROD_L1": 55, "PROD_L2": 45}


def _share(levels: _Years, pct: int) -> _Years:
    """A region's or line's part of a department's levels."""
    b, t, c = (tuple(round(float(x) * pct / 100, 2) for x in lv) for lv in levels)
    return b, t, c


_COMPLAINT_RATE = ((0.012, 0.008, 0.005), (0.012, 0.008, 0.005), (0.012, 0.0075, 0.005))

TARGETS: dict[str, _Years] = {
    "GROUP/REV": _SALES_REV,
    "GROUP/NET_PROFIT": ((4.0 * _M, 5.0 * _M, 6.0 * _M), (4.4 * _M, 5.5 * _M, 6.6 * _M),
                         (4.8 * _M, 6.0 * _M, 7.2 * _M)),
    "GROUP/GROSS_MARGIN": ((0.25, 0.28, 0.30), (0.25, 0.28, 0.30), (0.26, 0.29, 0.31)),
    "GROUP/ONTIME_DELIV": _same(0.92, 0.95, 0.98),
    "GROUP/COMPLAINT_RATE": _COMPLAINT_RATE,
    "GROUP/HEADCOUNT": (("range", 500, 540, 20), ("range", 510, 550, 20), ("range", 520, 560, 20)),
    "SALES/REV": _SALES_REV,
    **{f"{r}/REV": _share(_SALES_REV, pct) for r, pct in REGION_SHARE.items()},
    "SALES/NEW_CUST": ((40, 50, 60), (45, 55, 65), (50, 60, 70)),
    "SALES/CSAT": _same(85, 90, 95),
    "SALES/COLLECT_RATE": _same(0.90, 0.95, 0.98),
    "SALES_E/VISITS": ((1100, 1250, 1400), (1150, 1300, 1450), (1200, 1350, 1500)),
    "SALES_N/VISITS": ((850, 950, 1050), (900, 1000, 1100), (950, 1050, 1150)),
    "SALES_S/VISITS": ((850, 950, 1050), (900, 1000, 1100), (950, 1050, 1150)),
    **{f"{r}/CONVERSION": _same(0.08, 0.10, 0.12) for r in REGION_SHARE},
    "PROD/OEE": _same(0.70, 0.78, 0.85),
    "PROD_L1/OEE": _same(0.72, 0.80, 0.86),
    "PROD_L2/OEE": _same(0.68, 0.76, 0.83),
    "PROD_L1/AVAIL": _same(0.85, 0.90, 0.93),
    "PROD_L1/PERF": _same(0.88, 0.92, 0.95),
    "PROD_L1/QUAL": _same(0.975, 0.985, 0.992),
    "PROD_L2/AVAIL": _same(0.82, 0.87, 0.90),
    "PROD_L2/PERF": _same(0.84, 0.88, 0.92),
    "PROD_L2/QUAL": _same(0.965, 0.975, 0.985),
    "PROD/OUTPUT": _PROD_OUTPUT,
    **{f"{line}/OUTPUT": _share(_PROD_OUTPUT, pct) for line, pct in LINE_SHARE.items()},
    "PROD/ONTIME_DELIV": _same(0.92, 0.95, 0.98),
    "PROD/UNIT_COST": _same(48.0, 45.0, 43.0),
    "PROD/DELIV_DAYS": _same(18, 14, 11),
    "PROD/INV_DAYS": _same("range", 25, 35, 5),
    "PROD/SAFETY": _same(0, 0, 0),
    "QA/FPY": _same(0.95, 0.97, 0.985),
    "QA/CUST_REJECT": ((24, 18, 12), (22, 16, 10), (20, 14, 9)),
    "QA/QUALITY_COST": ((1.5 * _M, 1.2 * _M, 1.0 * _M), (1.45 * _M, 1.15 * _M, 0.95 * _M),
                        (1.4 * _M, 1.1 * _M, 0.9 * _M)),
    "QA/CAPA_RATE": _same(0.80, 0.90, 0.95),
    "QA/AUDIT_SCORE": _same(80, 88, 95),
    "CS/COMPLAINT_RATE": _COMPLAINT_RATE,
    "CS/FCR": _same(0.70, 0.78, 0.85),
    "CS_HOTLINE/FCR": _same(0.75, 0.82, 0.88),
    "CS_FIELD/FCR": _same(0.62, 0.70, 0.78),
    "CS/ONSITE_HOURS": _same(24, 16, 12),
    "CS/SVC_SAT": _same(85, 90, 95),
    "RD/PROJ_ONTIME": _same(0.75, 0.85, 0.95),
    "RD/NPI_LAUNCH": ((6, 8, 10), (7, 9, 11), (8, 10, 12)),
    "RD/PATENTS": ((15, 20, 25), (18, 24, 30), (20, 26, 32)),
    "RD/RD_EXP": ((1.6 * _M, 1.8 * _M, 2.0 * _M), (1.8 * _M, 2.0 * _M, 2.2 * _M),
                  (2.0 * _M, 2.3 * _M, 2.6 * _M)),
    "HR/TURNOVER": _same(0.025, 0.015, 0.010),
    "HR/KEY_RETENTION": _same(0.85, 0.92, 0.96),
    "HR/RECRUIT_DAYS": _same(45, 35, 28),
    "HR/TRAIN_HOURS": ((24, 32, 40), (26, 36, 44), (28, 40, 48)),
    "FIN/EXPENSE": ((9.5 * _M, 9.0 * _M, 8.5 * _M), (9.8 * _M, 9.3 * _M, 8.8 * _M),
                    (10.2 * _M, 9.6 * _M, 9.0 * _M)),
    "FIN/BUDGET_UTIL": _same("range", 0.95, 1.05, 0.05),
    "FIN/DSO": _same(75, 60, 50),
    "FIN/CLOSE_DAYS": _same(8, 5, 3),
}  # fmt: skip

# Phasing of `sum` KPIs' annual targets (others: "even").
SUM_PHASING = {
    "REV": "sales_season",
    "NET_PROFIT": "sales_season",
    "OUTPUT": "workdays",
    "VISITS": "workdays",
}


# ---------------------------------------------------------------------------------------------
# Actuals


def demo_end(today: date) -> date:
    """The last complete month before `today`: the demo's last month with actuals."""
    return add_months(month_of(today), -1)


def demo_months(end: date = REFERENCE_END) -> list[date]:
    """The SPAN months with actuals that end with `end`."""
    last = month_of(end)
    return [add_months(last, i) for i in range(-(SPAN - 1), 1)]


def demo_years(end: date = REFERENCE_END) -> list[int]:
    """The calendar years the demo's months touch: each gets targets."""
    return sorted({m.year for m in demo_months(end)})


def story_year(year: int, end: date) -> int:
    """Which of a story's three yearly figures a year takes: 2 for the running year (the last
    month's), 1 for the year before, 0 for any earlier year."""
    return max(0, 2 - (end.year - year))


def _round_keep_total(values: np.ndarray) -> np.ndarray:
    """Whole numbers with the same (rounded) total: largest remainders get the spare units."""
    total = int(round(float(values.sum())))
    floor = np.floor(values)
    spare = total - int(floor.sum())
    order = np.argsort(-(values - floor), kind="stable")
    floor[order[: max(spare, 0)]] += 1
    return floor


class _Gen:
    """Builds monthly series; one random generator, used in a fixed order."""

    def __init__(self, end: date, seed: int = SEED) -> None:
        self.rng = np.random.default_rng(seed)
        self.rows: list[tuple[str, str, str, float]] = []
        self.months = demo_months(end)
        self.periods = [f"{d.year}-{d.month:02d}" for d in self.months]
        self.years = demo_years(end)
        self.end = end
        # Per month: which of a story's three yearly figures applies.
        self.story = np.array([story_year(d.year, end) for d in self.months])

    def months_of(self, year: int) -> list[int]:
        """The months (0 = January) of `year` that have actuals."""
        return [d.month - 1 for d in self.months if d.year == year]

    def add(self, unit: str, kpi: str, values: Sequence[float]) -> None:
        for period, v in zip(self.periods, values, strict=True):
            self.rows.append((unit, kpi, period, float(v)))

    def spread(
        self,
        annual: Sequence[float],
        profile: str = "even",
        noise: float = 0.05,
        *,
        integer: bool = False,
        decimals: int = 2,
    ) -> np.ndarray:
        """A `sum` KPI: each year's total spread by a profile, with noise that nets out.

        For the running year the months present add up to their share of the annual rate, so
        year-to-date totals land where the story wants them (within a fraction of a percent).
        """
        raw = np.asarray(PHASING.get(profile, [1.0] * 12), dtype=float)
        shares = raw / raw.sum()
        out: list[np.ndarray] = []
        for year in self.years:
            months = self.months_of(year)
            n = len(months)
            expected = annual[story_year(year, self.end)] * shares[months]
            noisy = expected * np.clip(1 + self.rng.normal(0, noise, n), 0.2, None)
            noisy *= expected.sum() / noisy.sum()
            if integer:
                out.append(_round_keep_total(noisy))
            else:  # a hair of jitter, so year totals don't come out as suspiciously round numbers
                out.append(np.round(noisy * (1 + self.rng.normal(0, 0.003)), decimals))
        return np.concatenate(out)

    def level(
        self,
        levels: Sequence[float],
        noise: float,
        *,
        ramp: Sequence[float] = (0, 0, 0),
        lo: float | None = None,
        hi: float | None = None,
        decimals: int = 4,
    ) -> np.ndarray:
        """An `avg`/`last` KPI: each year's mean level, a linear drift of `ramp` across the
        year's months, and noise centred within the year."""
        out: list[np.ndarray] = []
        for year in self.years:
            lv, r = levels[story_year(year, self.end)], ramp[story_year(year, self.end)]
            n = len(self.months_of(year))
            eps = self.rng.normal(0, noise, n)
            eps -= eps.mean()
            vals = lv + r * np.linspace(-0.5, 0.5, n) + eps
            out.append(np.clip(vals, lo, hi) if lo is not None or hi is not None else vals)
        return np.round(np.concatenate(out), decimals)

    def noise(self, n: int, sd: float) -> np.ndarray:
        return self.rng.normal(0, sd, n)


def _actuals(end: date) -> pd.DataFrame:
    g = _Gen(end)
    n = len(g.periods)

    # --- sales regions -----------------------------------------------------------------------
    # yearly figures: the year before last, last year and the running year (the last as a
    # full-year rate; only the months up to the last month are present)
    regions = {
        #          revenue (M)        margin              collection rate     new customers
        "SALES_E": ((23.2, 25.6, 27.8), (0.30, 0.30, 0.29), (0.97, 0.97, 0.965), (22, 24, 24)),
        "SALES_N": ((15.3, 16.9, 17.3), (0.28, 0.28, 0.27), (0.95, 0.95, 0.94), (17, 18, 19)),
        "SALES_S": ((12.6, 13.2, 12.0), (0.25, 0.25, 0.22), (0.93, 0.92, 0.88), (13, 14, 11)),
    }
    visits = {"SALES_E": (1380, 1420, 1410), "SALES_N": (1010, 1080, 1100),
              "SALES_S": (1000, 1060, 1120)}  # fmt: skip
    conversion = {"SALES_E": (0.12, 0.12, 0.12), "SALES_N": (0.11, 0.11, 0.105),
                  "SALES_S": (0.10, 0.09, 0.07)}  # fmt: skip
    csat = {"SALES_E": ((91.0, 91.5, 91.5), (0, 0, 0)), "SALES_N": ((89.0, 90.0, 89.5), (0, 0, 0)),
            "SALES_S": ((88.0, 89.5, 84.5), (0, 0, -3.0))}  # fmt: skip
    year_idx = g.story
    for unit, (rev, margin, collect, new_cust) in regions.items():
        revenue = g.spread([r * _M for r in rev], "sales_season", 0.06)
        g.add(unit, "REV", revenue)
        m = np.asarray(margin)[year_idx] * (1 + g.noise(n, 0.03))
        g.add(unit, "GROSS_PROFIT", np.round(revenue * m, 2))
        # receivables due this month come from last month's invoices (30-day terms)
        due = np.concatenate([[revenue[0] * 0.95], revenue[:-1]]) * (1 + g.noise(n, 0.04))
        g.add(unit, "RECEIVABLE", np.round(due, 2))
        rate = np.clip(np.asarray(collect)[year_idx] + g.noise(n, 0.02), 0.7, 1.08)
        g.add(unit, "COLLECTED", np.round(due * rate, 2))
        g.add(unit, "NEW_CUST", g.spread(new_cust, "even", 0.35, integer=True))
        v = g.spread(visits[unit], "workdays", 0.08, integer=True)
        g.add(unit, "VISITS", v)
        conv = np.asarray(conversion[unit])[year_idx] * (1 + g.noise(n, 0.08))
        g.add(unit, "ORDERS", np.round(v * conv))
        lv, ramp = csat[unit]
        g.add(unit, "CSAT", g.level(lv, 1.0, ramp=ramp, lo=0, hi=100, decimals=1))

    # --- company -----------------------------------------------------------------------------
    g.add("GROUP", "NET_PROFIT", g.spread([5.3 * _M, 5.6 * _M, 4.9 * _M], "sales_season", 0.12))

    # --- finance -----------------------------------------------------------------------------
    g.add("FIN", "EXPENSE", g.spread([8.9 * _M, 9.4 * _M, 9.5 * _M], "even", 0.06))
    g.add("FIN", "BUDGET_UTIL", g.level((1.01, 0.98, 1.07), 0.025, ramp=(0, 0, 0.04), lo=0))
    g.add("FIN", "DSO", g.level((62, 58, 66), 2.5, ramp=(0, 0, 6), lo=0, decimals=1))
    g.add("FIN", "CLOSE_DAYS", g.level((6, 4.5, 4), 0.7, lo=2, decimals=0))

    # --- customer service --------------------------------------------------------------------
    deliveries = g.spread([14_000, 15_500, 16_800], "workdays", 0.05, integer=True)
    g.add("CS", "DELIVERIES", deliveries)
    complaint_rate = g.level((0.0075, 0.0078, 0.0112), 0.0, ramp=(0, 0, 0.007))
    g.add("CS", "COMPLAINTS", np.round(deliveries * complaint_rate * (1 + g.noise(n, 0.08))))
    teams = {"CS_HOTLINE": ((5400, 5600, 5800), (0.82, 0.83, 0.83), (91.5, 92.5, 91.5)),
             "CS_FIELD": ((1400, 1450, 1500), (0.71, 0.72, 0.66), (88.0, 89.0, 87.5))}  # fmt: skip
    for unit, (tickets, fcr, sat) in teams.items():
        t = g.spread(tickets, "workdays", 0.06, integer=True)
        g.add(unit, "TICKETS", t)
        rate = np.clip(np.asarray(fcr)[year_idx] + g.noise(n, 0.015), 0, 1)
        g.add(unit, "FIRST_FIX", np.minimum(np.round(t * rate), t))
        g.add(unit, "SVC_SAT", g.level(sat, 1.0, lo=0, hi=100, decimals=1))
    g.add("CS_FIELD", "ONSITE_HOURS", g.level((17.5, 15.2, 14.6), 1.4, lo=2, decimals=1))

    # --- production lines --------------------------------------------------------------------
    lines = {
        "PROD_L1": {
            "AVAIL": (0.89, 0.91, 0.91), "PERF": (0.91, 0.93, 0.93),
            "QUAL": (0.982, 0.986, 0.986), "ONTIME_DELIV": (0.962, 0.968, 0.965),
            "DELIV_DAYS": (12.5, 12.0, 12.0), "UNIT_COST": (39.5, 38.6, 38.2),
            "OUTPUT": (410_000, 445_000, 480_000),
        },
        "PROD_L2": {
            "AVAIL": (0.85, 0.87, 0.84), "PERF": (0.87, 0.89, 0.86),
            "QUAL": (0.972, 0.976, 0.970), "ONTIME_DELIV": (0.935, 0.945, 0.92),
            "DELIV_DAYS": (15.0, 14.5, 16.5), "UNIT_COST": (53.0, 51.2, 51.5),
            "OUTPUT": (330_000, 360_000, 355_000),
        },
    }  # fmt: skip
    for unit, p in lines.items():
        g.add(unit, "AVAIL", g.level(p["AVAIL"], 0.012, lo=0, hi=1))
        g.add(unit, "PERF", g.level(p["PERF"], 0.012, lo=0, hi=1))
        g.add(unit, "QUAL", g.level(p["QUAL"], 0.003, lo=0, hi=1))
        g.add(unit, "OUTPUT", g.spread(p["OUTPUT"], "workdays", 0.04, integer=True))
        g.add(unit, "ONTIME_DELIV", g.level(p["ONTIME_DELIV"], 0.01, lo=0, hi=1))
        g.add(unit, "DELIV_DAYS", g.level(p["DELIV_DAYS"], 0.8, lo=3, decimals=1))
        g.add(unit, "UNIT_COST", g.level(p["UNIT_COST"], 0.9, lo=10, decimals=2))
        incidents = np.zeros(n)
        if unit == "PROD_L2":  # the one lost-time incident: a hand injury at the press
            incidents[n - 1 - SAFETY_INCIDENT_BACK] = 1
        g.add(unit, "SAFETY", incidents)
    g.add("PROD", "INV_DAYS", g.level((32, 30, 37.5), 1.5, ramp=(0, 0, 8), lo=5, decimals=1))

    # --- quality -----------------------------------------------------------------------------
    g.add("QA", "FPY", g.level((0.968, 0.973, 0.971), 0.005, lo=0, hi=1))
    g.add("QA", "CUST_REJECT", g.spread((17, 15, 18), "even", 0.5, integer=True))
    g.add("QA", "QUALITY_COST", g.spread([1.18 * _M, 1.10 * _M, 1.25 * _M], "even", 0.12))
    capa_due = g.spread((118, 126, 130), "even", 0.25, integer=True)
    g.add("QA", "CAPA_DUE", capa_due)
    capa_rate = np.asarray((0.86, 0.91, 0.915))[year_idx]
    g.add("QA", "CAPA_CLOSED", g.rng.binomial(capa_due.astype(int), capa_rate))
    # audits each calendar quarter; SPAN months always touch twelve quarters
    quarterly = [84, 85, 86, 86.5, 87, 88.5, 89, 89.5, 90, 90.5, 91, 91]
    first_q = g.months[0].year * 4 + (g.months[0].month - 1) // 3
    quarter = [d.year * 4 + (d.month - 1) // 3 - first_q for d in g.months]
    g.add("QA", "AUDIT_SCORE", [quarterly[min(q, len(quarterly) - 1)] for q in quarter])

    # --- R&D ---------------------------------------------------------------------------------
    g.add("RD", "PROJ_ONTIME", g.level((0.82, 0.80, 0.68), 0.04, lo=0, hi=1, decimals=3))
    g.add("RD", "NPI_LAUNCH", g.spread((9, 9, 8.4), "even", 0.6, integer=True))
    g.add("RD", "PATENTS", g.spread((22, 25, 28.8), "even", 0.5, integer=True))
    g.add("RD", "RD_EXP", g.spread([1.85 * _M, 2.05 * _M, 2.25 * _M], "even", 0.10))

    # --- HR ----------------------------------------------------------------------------------
    g.add("HR", "TURNOVER", g.level((0.014, 0.016, 0.019), 0.003, lo=0.002, hi=1))
    g.add("HR", "KEY_RETENTION", g.level((0.93, 0.94, 0.905), 0.004, ramp=(0, 0, -0.03), hi=1))
    g.add("HR", "RECRUIT_DAYS", g.level((38, 33, 31), 3.0, lo=5, decimals=1))
    g.add("HR", "TRAIN_HOURS", g.spread((35, 38, 41), "even", 0.3, decimals=1))
    # headcount at month end: first month, 11 and 23 months later, last month; straight lines
    # and noise
    anchors = {"SALES": (80, 82, 86, 90), "PROD": (250, 255, 262, 275), "QA": (35, 36, 38, 40),
               "CS": (39, 40, 42, 46), "RD": (62, 66, 72, 80), "HR": (13, 13, 14, 15),
               "FIN": (17, 17, 18, 19)}  # fmt: skip
    at = [0, 11, 23, n - 1]
    for unit, a in anchors.items():
        path = np.interp(np.arange(n), at, a)
        wiggle = g.noise(n, 0.006 * a[-1])
        wiggle[at] = 0
        g.add(unit, "HEADCOUNT", np.round(path + wiggle))

    return pd.DataFrame(g.rows, columns=ACTUAL_COLUMNS)


# ---------------------------------------------------------------------------------------------
# Sheets


def _kpis_frame() -> pd.DataFrame:
    rows = []
    for k in KPIS:
        caliber, source, owner = KPI_META[k.code]
        num = den = fml = None
        if k.aggregation == "ratio":
            num, den = REFS[k.code].split("/")
        elif k.aggregation == "formula":
            fml = REFS[k.code]
        if k.code in _RANGE_OVERRIDE:
            lo, hi = _RANGE_OVERRIDE[k.code]
        elif k.unit == "%":
            lo, hi = 0.0, 1.0
        elif k.unit == "分":
            lo, hi = 0.0, 100.0
        else:
            lo, hi = 0.0, None
        decimals = _DECIMALS_OVERRIDE.get(k.code, _DECIMALS[k.unit])
        rows.append(
            (k.code, k.name_zh, k.name_en, k.unit, k.direction, k.aggregation, num, den, fml,
             k.perspective, k.kind, k.veto, decimals, caliber, source, owner, lo, hi)
        )  # fmt: skip
    df = pd.DataFrame(rows, columns=KPI_COLUMNS)
    df["veto"] = df["veto"].astype(bool)
    df["decimals"] = df["decimals"].astype(int)
    df["min"] = df["min"].astype(float)
    df["max"] = df["max"].astype(float)
    return df


def _targets_frame(end: date) -> pd.DataFrame:
    aggregation = {k.code: k.aggregation for k in KPIS}
    rows = []
    for node, per_year in TARGETS.items():
        unit, kpi = node.split("/")
        for year in demo_years(end):
            lv = per_year[story_year(year, end)]
            if lv[0] == "range":
                b = t = c = None
                low, high, tol = lv[1:]
            else:
                b, t, c = lv
                low = high = tol = None
            phasing = SUM_PHASING.get(kpi, "even") if aggregation[kpi] == "sum" else None
            rows.append((unit, kpi, str(year), b, t, c, phasing, low, high, tol))
    df = pd.DataFrame(rows, columns=TARGET_COLUMNS)
    for col in ("baseline", "target", "challenge", "low", "high", "tolerance"):
        df[col] = df[col].astype(float)
    return df


def build_demo(end: date = REFERENCE_END) -> dict[str, pd.DataFrame]:
    """The demo company as a KPI-system workbook, its actuals ending with the month of `end`:
    one DataFrame per sheet."""
    org = pd.DataFrame(ORG_UNITS, columns=ORG_COLUMNS)
    tree = pd.DataFrame(TREE, columns=TREE_COLUMNS)
    tree["weight"] = tree["weight"].astype(int)
    phasing = pd.DataFrame(
        [(name, *shares) for name, shares in PHASING.items()],
        columns=["name", *[f"m{i}" for i in range(1, 13)]],
    )
    return {
        "kpis": _kpis_frame(),
        "org_units": org,
        "tree": tree,
        "targets": _targets_frame(end),
        "actuals": _actuals(end),
        "phasing": phasing,
    }
