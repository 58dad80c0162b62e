"""Chinese and English: UI strings, status names, units and KPI values formatted the local way."""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING

from kpi_core.library import Kpi
from kpi_core.numbers import format_number
from kpi_core.scoring import Levels

if TYPE_CHECKING:  # completeness builds on modules that format with this one
    from kpi_core.completeness import Freshness

LANGS = ("zh", "en")

STRINGS: dict[str, tuple[str, str]] = {
    "app_title": ("KPI 监控", "KPI Monitor"),
    "nav_overview": ("总览", "Overview"),
    "nav_board": ("部门看板", "Board"),
    # KPI tree page
    "nav_tree": ("指标树", "KPI tree"),
    "tree_depth": ("显示层级", "Levels shown"),
    "tree_depth_help": (
        "从顶层往下显示几层；更深的节点折叠为“+N 个下级”。",
        "How many levels below the top to draw; deeper nodes fold into '+N below'.",
    ),
    "tree_collapse": ("折叠节点", "Collapse nodes"),
    "tree_expand": ("展开节点（超出层级）", "Expand nodes (past the levels shown)"),
    "tree_choose": ("选择节点", "Choose nodes"),
    "tree_node": ("查看节点", "Node"),
    "tree_node_help": (
        "图中的节点不能点击：在此选择节点，查看其趋势、目标和下级贡献。",
        "Nodes in the drawing cannot be clicked: pick one here to see its trend, targets and "
        "children's contributions.",
    ),
    "tree_legend": (
        "● 绿灯 ▲ 黄灯 ■ 红灯 ○ 无数据 · 方框 = 考核表，圆角框 = 指标 · 紫色双框 = 否决项 · "
        "深红粗框 = 被否决 · 蓝色粗框 = 当前节点",
        "● green ▲ amber ■ red ○ no data · square box = scorecard, rounded box = KPI · "
        "violet double border = veto KPI · dark red border = vetoed · blue border = selected",
    ),
    "tree_count": ("显示 {shown} / {total} 个节点", "Showing {shown} of {total} nodes"),
    "tree_hidden": ("+{n} 个下级", "+{n} below"),
    "tree_veto_tag": ("【否决项】", "[VETO]"),
    "tree_vetoed_by": ("【被否决】{kpis}未达标", "[VETOED] {kpis} missed"),
    "tree_coverage": ("覆盖 {pct}%", "coverage {pct}%"),
    "tree_scorecard": ("考核表", "Scorecard"),
    "tree_trend": ("近 24 个月趋势", "Last 24 months"),
    "tree_no_trend": ("近 24 个月没有数据。", "No data in the last 24 months."),
    "tree_targets": ("目标", "Targets"),
    "tree_level": ("项目", "Level"),
    "tree_low": ("下限", "Low"),
    "tree_high": ("上限", "High"),
    "tree_tolerance": ("容差", "Tolerance"),
    "tree_scorecard_levels": (
        "考核表没有自己的目标：得分由下级加权汇总，≥ {target:g} 为绿灯，≥ {baseline:g} 为黄灯。",
        "A scorecard has no targets of its own: its score is its children's weighted score, "
        "green at ≥ {target:g}, amber at ≥ {baseline:g}.",
    ),
    "tree_contributions": (
        "下级贡献（权重 × 得分 ÷ 有数据下级的权重合计）",
        "Children's contributions (weight × score ÷ weight of children with data)",
    ),
    "tree_contribution": ("贡献分", "Contribution"),
    "tree_share": ("占比", "Share"),
    "tree_child": ("下级", "Child"),
    "tree_no_data_child": ("无数据，不计入", "no data, not counted"),
    "tree_no_children": ("该节点没有下级。", "This node has no children."),
    "tree_own_vs_children": (
        "本节点得分取自自身实际值；下级加权得分 {score} 仅供参考。",
        "This node is scored from its own actual; its children's weighted score {score} is "
        "shown for reference.",
    ),
    "tree_open_board": ("打开{unit}的看板", "Open {unit}'s board"),
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
    "units_below_ranked": ("下级组织得分排名", "Scores of the units below, ranked"),
    "ranked_none": (
        "{unit} 下没有自己有考核表的组织，无可排名。",
        "No unit below {unit} has a scorecard of its own: nothing to rank.",
    ),
    "counts": ("指标状态", "KPI status"),
    "red": ("红灯", "Red"),
    "amber": ("黄灯", "Amber"),
    "green": ("绿灯", "Green"),
    "grey": ("无数据", "No data"),
    "at_risk": ("预计未达标", "At risk"),
    "at_risk_help": (
        "当前为绿灯或黄灯，但按至今的进度预测到年末将达不到目标（累计类指标按分解目标的进度，其他指标按近6个月的趋势）。",
        "Green or amber now, but forecast to miss the year's target at the year's end (sum KPIs "
        "at their pace against the phased target, others by the trend of the last six months).",
    ),
    "at_risk_year_help": (
        "按年查看时，灯色已是年初至今的进度，不另计“预计未达标”；请按月或季度查看。",
        "In a year view the lights already are the year-to-date pace, so nothing is counted as "
        "at risk apart from them; look at a month or a quarter.",
    ),
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
    # Upload page
    "nav_upload": ("数据上传", "Upload"),
    "up_title": ("上传月度实际数据", "Upload monthly actuals"),
    "up_viewer": (
        "上传和回滚数据由数据分析员和管理员完成。需要上传请联系他们。",
        "Analysts and admins load and roll back data; ask one of them if you need an upload.",
    ),
    "up_tab_load": ("上传与检查", "Upload & check"),
    "up_tab_history": ("上传记录", "History"),
    "up_tab_template": ("下载模板", "Template"),
    "up_tab_profiles": ("映射方案", "Mapping profiles"),
    "up_tab_months": ("关账与发布", "Close & publish months"),
    "up_files": ("数据文件", "Files"),
    "up_files_help": (
        "可一次上传多个文件：Excel（.xlsx/.xlsm/.xls）、CSV 或 Parquet。",
        "Drop one or more files: Excel (.xlsx/.xlsm/.xls), CSV or Parquet.",
    ),
    "up_profile": ("映射方案", "Mapping profile"),
    "up_profile_auto": ("无（自动识别版式）", "None (detect the layout)"),
    "up_profile_help": (
        "按指标格式整理的文件（如下载的模板）无需方案；ERP 导出的明细请先在“映射方案”页建立方案。",
        "Files in KPI shape (such as the template) need none; for an ERP export of detail lines, "
        "set up a profile under Mapping profiles first.",
    ),
    "up_source": ("数据来源名称", "Source name"),
    "up_source_placeholder": ("默认：{default}", "Default: {default}"),
    "up_source_help": (
        "同一来源对同一月份再次上传时，将替换该来源上次上传的数值（新文件中没有的数值会被删除）。"
        "留空则使用映射方案名称或文件名。",
        "Uploading the same source for the same month again replaces the values it gave before "
        "(values the new file no longer has are removed). Leave empty to use the profile name or "
        "the file names.",
    ),
    "up_source_is": (
        "来源：**{source}**。同一来源再次上传同一月份时，会替换其上次上传的数值。",
        "Source: **{source}**. Uploading this source for the same month again replaces its values.",
    ),
    "up_drop_hint": (
        "请上传本月的实际数据文件。先检查，确认无误后再写入——在点击“写入”之前不会修改任何数据。",
        "Upload the month's actuals. They are checked first; nothing is written until you click "
        "Load.",
    ),
    "up_checking": ("正在检查 {n} 个文件…", "Checking {n} file(s)…"),
    "up_checked": (
        "已检查 {n} 个文件（{seconds:.1f} 秒）",
        "Checked {n} file(s) in {seconds:.1f} s",
    ),
    "up_check_failed": ("文件无法读取", "The file could not be read"),
    "up_step_reading": ("正在读取 {name}", "Reading {name}"),
    "up_step_checking": ("正在对照指标库检查", "Checking against the KPI library"),
    "up_step_comparing": ("正在与数据仓库比较", "Comparing with the warehouse"),
    "up_step_ready": ("完成", "Ready"),
    "up_unexpected": (
        "处理时出现意外错误（{error}）。未写入任何数据。请将文件和此消息发给管理员。",
        "Something unexpected went wrong ({error}). Nothing was written. Please send the file "
        "and this message to your administrator.",
    ),
    "up_report": ("检查结果", "Validation report"),
    "up_count_new": ("新增", "New"),
    "up_count_changed": ("修改", "Changed"),
    "up_count_unchanged": ("未变", "Unchanged"),
    "up_count_removed": ("删除", "Removed"),
    "up_count_invalid": ("无效（不导入）", "Invalid (left out)"),
    "up_no_problems": ("未发现问题。", "No problems found."),
    "up_has_errors": (
        "发现 {errors} 个错误、{warnings} 个警告。有错误的数值不会导入；请修正文件后重新上传，"
        "或确认只导入有效数值。",
        "{errors} error(s) and {warnings} warning(s) found. Values with errors are left out: fix "
        "the file and upload it again, or confirm below that only the valid values are loaded.",
    ),
    "up_has_warnings": (
        "发现 {warnings} 个警告，数值仍可导入，请核对。",
        "{warnings} warning(s) found; the values can still be loaded, but please check them.",
    ),
    "up_nothing_found_hint": (
        "如果这是 ERP 导出的明细（非指标格式），请在“映射方案”页为它建立一次方案，然后在上方选择该方案。",
        "If this is an ERP export of detail lines rather than KPI values, map it once under "
        "Mapping profiles, then choose the profile above.",
    ),
    "up_severity_filter": ("显示", "Show"),
    "up_sev_error": ("错误", "Errors"),
    "up_sev_warning": ("警告", "Warnings"),
    "up_sev_info": ("提示", "Notes"),
    "up_col_severity": ("级别", "Severity"),
    "up_col_file": ("文件", "File"),
    "up_col_sheet": ("工作表", "Sheet"),
    "up_col_row": ("行", "Row"),
    "up_col_column": ("列", "Column"),
    "up_col_message": ("问题", "Problem"),
    "up_col_hint": ("如何处理", "What to do"),
    "up_level_error": ("错误", "Error"),
    "up_level_warning": ("警告", "Warning"),
    "up_level_info": ("提示", "Note"),
    "up_preview": ("变更预览", "Preview of the changes"),
    "up_change_filter": ("变更类型", "Change"),
    "up_change_new": ("新增", "New"),
    "up_change_changed": ("修改", "Changed"),
    "up_change_unchanged": ("未变", "Unchanged"),
    "up_change_removed": ("删除", "Removed"),
    "up_col_kpi": ("指标", "KPI"),
    "up_col_unit": ("组织", "Unit"),
    "up_col_period": ("月份", "Month"),
    "up_col_old": ("原值", "Before"),
    "up_col_new": ("新值", "After"),
    "up_col_change": ("变更", "Change"),
    "up_col_light_before": ("原状态", "Light before"),
    "up_col_light_after": ("新状态", "Light after"),
    "up_no_changes": (
        "与数据仓库相比没有任何变化。",
        "Nothing differs from what the warehouse holds.",
    ),
    "up_lights": ("状态灯变化", "Status lights that change"),
    "up_turns": ("{n} 个指标值变为{light}", "{n} turn {light}"),
    "up_light_red": ("红灯", "red"),
    "up_light_amber": ("黄灯", "amber"),
    "up_light_green": ("绿灯", "green"),
    "up_light_grey": ("无数据", "grey (no data)"),
    "up_turns_none": (
        "本次上传不会改变任何指标的状态灯。",
        "No KPI's status light changes with this upload.",
    ),
    "up_commit": ("写入", "Load"),
    "up_commit_button": ("写入数据仓库", "Load into the warehouse"),
    "up_accept_invalid": (
        "只导入 {valid} 个有效数值，不导入 {invalid} 个无效数值",
        "Load only the {valid} valid values and leave the {invalid} invalid ones out",
    ),
    "up_commit_blocked": (
        "文件有错误：请修正后重新上传，或勾选上面的确认框。",
        "The file has errors: fix it and upload it again, or tick the box above.",
    ),
    "up_nothing_valid": (
        "没有可导入的有效数值。",
        "There is no valid value to load.",
    ),
    "up_committed": (
        "已写入，批次号 {batch}：新增 {new}、修改 {changed}、删除 {removed}、未变 {unchanged}、"
        "未导入 {invalid}。",
        "Loaded as batch {batch}: {new} new, {changed} changed, {removed} removed, {unchanged} "
        "unchanged, {invalid} left out.",
    ),
    "up_already_loaded": (
        "没有任何变化——这个文件已经导入过了。",
        "Nothing changed — this file was already loaded.",
    ),
    "up_no_history": ("还没有上传记录。", "Nothing has been loaded yet."),
    "up_col_batch": ("批次", "Batch"),
    "up_col_when": ("时间", "When"),
    "up_col_who": ("操作人", "By"),
    "up_col_kind": ("类型", "Kind"),
    "up_col_source": ("来源", "Source"),
    "up_col_files": ("文件", "Files"),
    "up_col_months": ("月份", "Months"),
    "up_col_rows": ("数值个数", "Values"),
    "up_col_status": ("状态", "Status"),
    "up_col_summary": ("变更", "Changes"),
    "up_kind_upload": ("上传", "Upload"),
    "up_kind_workbook": ("体系工作簿", "Workbook"),
    "up_status_committed": ("已写入", "Loaded"),
    "up_status_rolled_back": ("已撤销", "Rolled back"),
    "up_summary": (
        "新增 {new}、修改 {changed}、删除 {removed}",
        "{new} new, {changed} changed, {removed} removed",
    ),
    "up_rollback": ("撤销批次", "Roll back a batch"),
    "up_rollback_help": (
        "撤销后，该批次写入的数值被删除，被它替换或删除的数值恢复原样。",
        "Rolling back removes the values the batch wrote and restores the values it replaced "
        "or removed.",
    ),
    "up_rollback_batch": ("批次", "Batch"),
    "up_rollback_reason": ("原因", "Reason"),
    "up_rollback_reason_placeholder": ("例如：上传了错误月份的文件", "e.g. the wrong month's file"),
    "up_rollback_button": ("撤销批次 {batch}…", "Roll back batch {batch}…"),
    "up_rollback_pick": ("选择要撤销的批次", "Pick a batch to roll back"),
    "up_rollback_none": ("撤销…", "Roll back…"),
    "up_rollback_confirm": (
        "确定撤销批次 {batch}（{source}）吗？其写入的 {rows} 个数值将被删除或恢复为原值。",
        "Roll back batch {batch} ({source})? The {rows} values it wrote are removed or set back "
        "to what they were.",
    ),
    "up_rollback_yes": ("确定撤销", "Yes, roll it back"),
    "up_cancel": ("取消", "Cancel"),
    "up_rolled_back": (
        "批次 {batch} 已撤销：恢复 {restored} 个数值，删除 {removed} 个数值。",
        "Batch {batch} rolled back: {restored} value(s) restored, {removed} removed.",
    ),
    "up_no_rollback": ("没有可撤销的批次。", "There is no batch to roll back."),
    "up_template_help": (
        "模板列出所选组织及其下级组织本月需要填报的指标，填写“实际值”列后在“上传与检查”页上传。",
        "The template lists the KPIs the unit and the units below it enter for the month. Fill "
        "in the value column and upload it under Upload & check.",
    ),
    "up_template_month": ("月份", "Month"),
    "up_template_rows": (
        "{n} 行：{unit}及其下级组织在{month}需要填报的指标。",
        "{n} rows: the KPIs {unit} and the units below it enter for {month}.",
    ),
    "up_template_download": ("下载模板（.xlsx）", "Download template (.xlsx)"),
    "up_template_empty": (
        "{unit}在{month}没有需要填报的指标。",
        "{unit} has no KPIs to enter for {month}.",
    ),
    "up_pf_intro": (
        "不是指标格式的文件（如 ERP 导出的订单明细）：在这里说明一次如何把明细行汇总成每月的指标值，"
        "保存为方案后，在“上传与检查”页选择该方案即可导入。",
        "For files that are not in KPI shape (an ERP export of order lines, say): describe once "
        "how its rows add up to monthly KPI values and save that as a profile. Then choose the "
        "profile under Upload & check to load the file.",
    ),
    "up_pf_start": ("编辑", "Edit"),
    "up_pf_new": ("新方案", "A new profile"),
    "up_pf_sample": ("示例文件", "Sample file"),
    "up_pf_need_file": (
        "请先在“上传与检查”页上传一个示例文件。",
        "Upload a sample file under Upload & check first.",
    ),
    "up_pf_sheet": ("工作表", "Sheet"),
    "up_pf_header_row": ("标题行（Excel 行号）", "Header row (Excel row number)"),
    "up_pf_first_rows": ("前几行（行号为 Excel 行号）", "First rows (numbered as in Excel)"),
    "up_pf_date_column": ("日期列（取其月份作为期间）", "Date column (its month is the period)"),
    "up_pf_unit_mode": ("组织", "Unit"),
    "up_pf_unit_by_column": ("从某一列读取", "From a column"),
    "up_pf_unit_fixed": ("整个文件属于一个组织", "One unit for the whole file"),
    "up_pf_unit_fixed_rows": ("所有行属于一个组织", "One unit for all rows"),
    "up_pf_unit_column": ("组织列", "Unit column"),
    "up_pf_unit": ("组织", "Unit"),
    "up_pf_unit_map": (
        "组织对照：文件中的值 → 组织编码（留空表示该值本身就是组织编码或名称）",
        "Unit map: value in the file → unit code (leave empty where the value already is a unit "
        "code or name)",
    ),
    "up_pf_value_in_file": ("文件中的值", "Value in the file"),
    "up_pf_unit_code": ("组织编码", "Unit code"),
    "up_pf_measures": ("指标计算", "Measures"),
    "up_pf_measures_help": (
        "每行一个指标：对日期所在月份、组织相同的行做汇总（求和、计数、去重计数或平均），可加一个筛选条件。",
        "One row per KPI: the rows of a month and unit are summed, counted, counted distinct or "
        "averaged, optionally only those passing one filter.",
    ),
    "up_pf_more_filters": (
        "该方案有的指标带多个筛选条件，这里只能编辑第一个；在这里保存会去掉其余条件。",
        "Some measures of this profile have more than one filter; only the first can be edited "
        "here, and saving it here drops the others.",
    ),
    "up_pf_kpi": ("指标", "KPI"),
    "up_pf_agg": ("汇总方式", "Aggregation"),
    "up_pf_column": ("列", "Column"),
    "up_pf_filter_column": ("筛选列", "Filter column"),
    "up_pf_filter_op": ("条件", "Operator"),
    "up_pf_filter_value": ("筛选值", "Filter value"),
    "up_agg_sum": ("求和", "sum"),
    "up_agg_count": ("计数", "count"),
    "up_agg_count_distinct": ("去重计数", "count distinct"),
    "up_agg_avg": ("平均", "average"),
    "up_pf_name": ("方案名称", "Profile name"),
    "up_pf_save": ("保存方案", "Save profile"),
    "up_pf_try": ("用示例文件试算的结果", "What the sample file gives"),
    "up_pf_try_empty": (
        "按当前设置，示例文件没有得到任何数值。",
        "With these settings the sample file gives no values.",
    ),
    "up_pf_problems": ("方案还不完整：", "The profile is not complete yet:"),
    "up_pf_saved": (
        "方案“{name}”已保存，已在“上传与检查”页选中，可直接导入。",
        "Profile '{name}' saved and chosen under Upload & check; you can load the file now.",
    ),
    "up_months_help": (
        "已关账的月份不再接受实际数据上传，直到重新开账。",
        "A closed month takes no more actuals until it is reopened.",
    ),
    "up_months_closed": ("已关账：{months}", "Closed: {months}"),
    "up_months_none": ("目前没有关账的月份。", "No month is closed."),
    "up_month_pick": ("月份", "Month"),
    "up_month_close": ("关账", "Close month"),
    "up_month_reopen": ("重新开账", "Reopen month"),
    "up_month_closed": ("{month}已关账。", "{month} is closed."),
    "up_month_reopened": ("{month}已重新开账。", "{month} is open again."),
    "up_said_in_english": ("原文如下（英文）：{text}", "{text}"),
    "up_step_querying": ("正在查询 {url}", "Querying {url}"),
    "up_step_rows": ("已读取 {n} 行", "{n} rows read"),
    "up_step_aggregating": ("正在按月份和组织汇总", "Aggregating by month and unit"),
    "up_kind_pull": ("数据库提取", "Database pull"),
    "up_pf_expression": ("或：表达式", "Or: expression"),
    "up_pf_expression_help": (
        "用列计算，填写后代替“列”：[单价] * [数量] * (1 - [折扣])；日期相减得天数 [发货日期] - [下单日期]；"
        "比较 [发货日期] <= [要求日期] 求和得行数、平均得占比、计数得成立的行数；"
        "IF([退货] = '是', 1, 0)。筛选值也可写 [下单日期] + 4。",
        "Computed from columns, used instead of the column: [price] * [qty] * (1 - [discount]); "
        "dates subtract to days, [Ship Date] - [Order Date]; a comparison such as [Shipped] <= "
        "[Required] summed counts its rows, averaged is their share, counted counts them; "
        "IF([Returned] = 'Yes', 1, 0). A filter value may be [Order Date] + 4 too.",
    ),
    "up_pf_unit_map_rows": (
        "组织对照：数据源中的值 → 组织编码（留空表示该值本身就是组织编码或名称）。"
        "样本中没有出现的值可在末行添加。",
        "Unit map: value in the source → unit code (leave empty where the value already is a "
        "unit code or name). Add a row for a value the sample did not show.",
    ),
    "up_pf_value_in_source": ("数据源中的值", "Value in the source"),
    # ... the same report for a database pull (KEY_pull: see kpi_core.ui.upload.say)
    "up_source_is_pull": (
        "来源：**{source}**。再次提取同一月份时，会替换该来源上次提取的数值。",
        "Source: **{source}**. Pulling it again for the same months replaces what it gave before.",
    ),
    "up_has_errors_pull": (
        "发现 {errors} 个错误、{warnings} 个警告。有错误的数值不会导入；请修改查询或映射后重新提取，"
        "或确认只导入有效数值。",
        "{errors} error(s) and {warnings} warning(s) found. Values with errors are left out: fix "
        "the query or the mapping and pull again, or confirm below that only the valid values are "
        "loaded.",
    ),
    "up_commit_blocked_pull": (
        "提取结果有错误：请修改查询或映射后重新提取，或勾选上面的确认框。",
        "The pull has errors: fix the query or the mapping and pull again, or tick the box above.",
    ),
    "up_already_loaded_pull": (
        "没有任何变化——数据仓库中已是这些数值。",
        "Nothing changed — the warehouse already holds these values.",
    ),
    "up_turns_none_pull": (
        "本次提取不会改变任何指标的状态灯。",
        "No KPI's status light changes with this pull.",
    ),
    # Sources page
    "nav_sources": ("数据源", "Sources"),
    "src_title": ("数据库数据源", "Database sources"),
    "src_not_allowed": (
        "只有数据分析和管理员可以管理和提取数据源。需要时请联系他们。",
        "Only analysts and admins manage and pull sources; ask one of them if you need a pull.",
    ),
    "src_intro": (
        "从数据库（PostgreSQL、MySQL、SQL Server、Oracle、SQLite）或 CSV/Parquet 导出文件读取明细，"
        "按映射汇总为每月的指标值，检查、预览后再写入——与上传文件相同。查询只读，并受行数和时间限制。",
        "Read detail rows from a database (PostgreSQL, MySQL, SQL Server, Oracle, SQLite) or a "
        "CSV/Parquet export, add them up to monthly KPI values by a mapping, then check, preview "
        "and load them — as with an uploaded file. Queries only read, within a row and a time "
        "limit.",
    ),
    "src_unexpected": (
        "处理时出现意外错误（{error}）。未写入任何数据。请将此消息发给管理员。",
        "Something unexpected went wrong ({error}). Nothing was written. Please send this "
        "message to your administrator.",
    ),
    "src_tab_list": ("数据源列表", "Sources"),
    "src_tab_define": ("定义数据源", "Define a source"),
    "src_tab_pull": ("提取数据", "Pull"),
    "src_tab_history": ("提取记录", "History"),
    "src_pick": ("数据源", "Source"),
    "src_pick_new": ("（新建数据源）", "(a new source)"),
    "src_pick_help": (
        "选择一个已保存的数据源进行编辑或提取，或新建一个。",
        "Pick a saved source to edit or pull it, or start a new one.",
    ),
    "src_none": (
        "还没有数据源。请在“定义数据源”页定义一个。",
        "No source is defined yet: define one under Define a source.",
    ),
    "src_list_help": (
        "在上方选择一个数据源进行编辑或提取。连接地址中的密码不会显示，也不会保存。",
        "Pick a source above to edit or pull it. Passwords are never shown, nor stored.",
    ),
    "src_col_name": ("名称", "Name"),
    "src_col_url": ("连接地址", "URL"),
    "src_col_rows": ("行数上限", "Row limit"),
    "src_col_seconds": ("时间上限", "Time limit"),
    "src_seconds": ("{n} 秒", "{n} s"),
    "src_col_by": ("修改人", "Changed by"),
    "src_col_changed": ("修改时间", "Changed"),
    "src_col_last_pull": ("上次提取", "Last pull"),
    "src_name": ("名称", "Name"),
    "src_need_url": ("请填写连接地址", "write the connection URL"),
    "src_name_placeholder": ("例如：ERP 订单", "e.g. ERP orders"),
    "src_url": ("连接地址（SQLAlchemy URL）", "Connection URL (SQLAlchemy)"),
    "src_url_help": (
        "例如 `postgresql+psycopg://reader:${secrets.source_secrets.erp}@db.example.com:5432/erp`、"
        "`sqlite:////srv/exports/erp.db`、`csv:///srv/exports/orders.csv` 或 "
        "`parquet:///srv/exports/orders.parquet`（导出文件按文件名作为表名查询）。"
        "文件只能位于管理员允许的文件夹中（`.streamlit/secrets.toml` 的 `[sources] file_dirs`，"
        "或环境变量 `KPI_SOURCE_DIRS`；默认 `data/exports`）。\n\n"
        "密码不能直接写在地址中——会以明文保存，因此会被拒绝。只有密码处可以写引用："
        "`${secrets.source_secrets.名称}`（`.streamlit/secrets.toml` 中 `[source_secrets]` 段的键）"
        "或 `${KPI_SOURCE_SECRET_名称}`（环境变量），只在连接时读取，不会显示在任何地方。",
        "For example `postgresql+psycopg://reader:${secrets.source_secrets.erp}@db.example.com:"
        "5432/erp`, `sqlite:////srv/exports/erp.db`, `csv:///srv/exports/orders.csv` or "
        "`parquet:///srv/exports/orders.parquet` (an export is queried as a table named after the "
        "file). Files must lie in a folder an admin allowed (`[sources] file_dirs` in "
        "`.streamlit/secrets.toml`, or `KPI_SOURCE_DIRS`; by default `data/exports`).\n\n"
        "A password written in the URL is refused: it would be stored in plain text. Only the "
        "password may be a reference: `${secrets.source_secrets.NAME}` (a key of the "
        "`[source_secrets]` section of `.streamlit/secrets.toml`) or `${KPI_SOURCE_SECRET_NAME}` "
        "(an environment variable); it is read only to connect and never shown.",
    ),
    "src_test": ("测试连接", "Test connection"),
    "src_testing": ("正在连接…", "Connecting…"),
    "src_connected": ("连接成功：{version}", "Connected: {version}"),
    "src_caution_superuser": (
        "该账号是超级用户：可以读写服务器上的一切，还能读写服务器的文件。数据源请使用只能读取的账号。",
        "This account is a superuser: it can read and write anything on the server, and its "
        "files. Use an account that can only read for a source.",
    ),
    "src_caution_server_files": (
        "该账号可以读写服务器的文件或运行程序（{names}）。数据源请使用只能读取的账号。",
        "This account may read or write the server's files or run programs ({names}). Use an "
        "account that can only read for a source.",
    ),
    "src_caution_writes": (
        "该账号可以修改数据表（{names}）。数据源请使用只能读取的账号。",
        "This account may change tables ({names}). Use an account that can only read for a source.",
    ),
    "src_caution_creates": (
        "该账号可以创建对象（{names}）。数据源请使用只能读取的账号。",
        "This account may create objects ({names}). Use an account that can only read for a "
        "source.",
    ),
    "src_no_tables": (
        "数据库中没有可读取的表或视图。",
        "The database has no table or view to read.",
    ),
    "src_table": ("表", "Table"),
    "src_table_placeholder": ("选择一个表（共 {n} 个）", "Pick a table ({n})"),
    "src_table_columns": ("**{table}** 的列：{columns}", "Columns of **{table}**: {columns}"),
    "src_use_table": ("改为查询 {table} 全表", "Query all of {table} instead"),
    "src_all_tables": ("全部表和列（{n} 个表）", "All tables and their columns ({n})"),
    "src_col_table": ("表", "Table"),
    "src_col_columns": ("列", "Columns"),
    "src_query": ("查询（SQL）", "Query (SQL)"),
    "src_query_help": (
        "只能是一条 SELECT（或 WITH … SELECT）语句，在只读事务中执行。月份筛选由提取时自动加上，"
        "查询中无需写日期条件；在查询中先汇总可减少读取的行数。",
        "One SELECT (or WITH … SELECT) statement, run in a read-only transaction. The months of a "
        "pull are filtered for you; aggregating in the query reads fewer rows.",
    ),
    "src_row_limit": ("行数上限", "Row limit"),
    "src_row_limit_help": (
        "查询返回的行数超过上限时，提取会停止并提示，不写入任何数据。",
        "A pull whose query returns more rows stops with a message; nothing is written.",
    ),
    "src_time_limit": ("时间上限（秒）", "Time limit (seconds)"),
    "src_time_limit_help": (
        "查询运行超过这个时间会被数据库终止。",
        "The database stops a query that runs longer.",
    ),
    "src_sample": ("试运行（前 {n} 行）", "Run a sample (first {n} rows)"),
    "src_sampling": ("正在读取样本…", "Reading a sample…"),
    "src_sample_rows": ("查询结果的前 {n} 行：", "The query's first {n} rows:"),
    "src_sample_empty": ("查询没有返回任何行。", "The query returned no rows."),
    "src_mapping": ("映射：明细行如何汇总为指标值", "Mapping: how the rows add up to KPI values"),
    "src_mapping_help": (
        "与上传页的映射方案相同：日期列的月份作为期间；组织来自某一列（及其对照）或固定为一个组织；"
        "每行一个指标计算。",
        "As in the Upload page's mapping profiles: the date column's month is the period; the "
        "unit comes from a column (with a map of its values) or is one unit; one row per KPI.",
    ),
    "src_mapping_needs_columns": (
        "请先测试连接并选择一个表，或试运行查询，以便选择列。",
        "Test the connection and pick a table, or run a sample, to choose from the query's "
        "columns.",
    ),
    "src_problems": ("数据源还不完整：", "The source is not complete yet:"),
    "src_save_as": (
        "将另存为新数据源“{name}”（“{old}”保持不变）。",
        "Saves a new source '{name}' ('{old}' stays as it is).",
    ),
    "src_save": ("保存数据源", "Save source"),
    "src_saved": (
        "数据源“{name}”已保存，可在“提取数据”页提取。",
        "Source '{name}' saved; pull it under Pull.",
    ),
    "src_delete": ("删除数据源…", "Delete source…"),
    "src_delete_confirm": (
        "确定删除数据源“{name}”吗？已提取的数据和提取记录会保留。",
        "Delete source '{name}'? The values it loaded and its batches stay.",
    ),
    "src_delete_yes": ("确定删除", "Yes, delete it"),
    "src_deleted": ("数据源“{name}”已删除。", "Source '{name}' deleted."),
    "src_pull_pick": (
        "请在上方选择一个已保存的数据源（新数据源请先保存）。",
        "Pick a saved source above (save a new one first).",
    ),
    "src_limits": ("最多 {rows} 行，{seconds} 秒", "Up to {rows} rows, {seconds} s"),
    "src_the_query": ("查询", "Query"),
    "src_months": ("提取哪些月份", "Months to pull"),
    "src_months_help": (
        "月份条件会加在查询外层，数据源只读取所选月份的行。",
        "The months are filtered around the query, so the source reads only their rows.",
    ),
    "src_months_new": ("只提取新月份（{month}之后）", "Only new months (after {month})"),
    "src_months_new_first": (
        "只提取新月份（尚未提取过：全部月份）",
        "Only new months (never pulled: all of them)",
    ),
    "src_months_all": ("全部月份", "All months"),
    "src_months_range": ("指定月份范围", "A range of months"),
    "src_from": ("从", "From"),
    "src_to": ("到", "To"),
    "src_range_backwards": ("开始月份晚于结束月份。", "The first month is after the last one."),
    "src_pull_button": ("提取并检查", "Pull and check"),
    "src_pulling": ("正在提取 {name}…", "Pulling {name}…"),
    "src_pulled": (
        "已从 {name} 读取 {rows} 行（{seconds:.1f} 秒）",
        "Read {rows} rows from {name} in {seconds:.1f} s",
    ),
    "src_pull_failed": ("提取失败", "The pull failed"),
    "src_pull_hint": (
        "提取会只读地查询数据源并检查数值；在点击“写入”之前不会修改任何数据。",
        "A pull reads the source (read-only) and checks the values; nothing is written until "
        "you click Load.",
    ),
    "src_nothing_new": (
        "{month}之后没有新的数据。",
        "There is nothing new after {month}.",
    ),
    "src_nothing_found_hint": (
        "请在“定义数据源”页检查查询和映射（日期列、组织和指标计算），可先试运行查询看看返回了什么。",
        "Check the query and the mapping (date column, unit, measures) under Define a source; "
        "run a sample to see what the query returns.",
    ),
    "src_history_help": (
        "数据库提取的批次。文件上传的批次见“数据上传”页。",
        "Batches pulled from sources. Uploaded files' batches are on the Upload page.",
    ),
    "src_no_history": ("还没有提取记录。", "Nothing has been pulled yet."),
    # --- KPI library page ---
    "nav_targets": ("目标与权重", "Targets & weights"),
    "tw_intro": (
        "直接在表格中修改基准值、目标值、挑战值和权重：每个改动都会当场校验；保存时需填写原因和生效日期，"
        "生效日期之前的期间仍按原目标和权重考核。",
        "Change baselines, targets, challenges and weights right in the grids: every edit is "
        "checked as you make it; saving asks for a reason and an effective date, and periods "
        "before that date keep the targets and weights they were judged by.",
    ),
    "tw_intro_readonly": (
        "只读：目标和权重由部门负责人和管理员修改。",
        "Read-only: department heads and admins change targets and weights.",
    ),
    "tw_year": ("年度", "Year"),
    "tw_grain": ("目标期间", "Target period"),
    "tw_tab_targets": ("目标值", "Targets"),
    "tw_tab_weights": ("权重", "Weights"),
    "tw_tab_history": ("历史与撤回", "History & revert"),
    "tw_tab_audit": ("变更日志", "Change log"),
    "tw_measure": ("单位", "Measure"),
    "tw_from_start": ("初始", "from the start"),
    "tw_revert_button": ("撤回", "Revert"),
    "tw_data_through": (
        "已有数据至 {month}：生效日期晚于它时，这些月份仍按原目标考核。",
        "Data runs through {month}: with a later effective date those months keep their targets.",
    ),
    "tw_low": ("下限", "Low"),
    "tw_high": ("上限", "High"),
    "tw_tolerance": ("容差", "Tolerance"),
    "tw_phasing": ("分解方式", "Phasing"),
    "tw_phasing_even": ("均匀分解", "even"),
    "tw_phasing_help": (
        "累计型（sum）指标的年度/季度目标按此分解到各月：even 为平均，其余为季节性分解方案。",
        "How a sum KPI's yearly or quarterly target is spread over months: even, or a seasonal "
        "profile.",
    ),
    "tw_level_help": (
        "可写 6000、5,000万、1.2亿 或 95%（百分比指标）；留空表示不设该档。",
        "Write 6000, 50,000,000, 5,000万 or 95% (percent KPIs); leave blank for no level.",
    ),
    "tw_applies": ("当前适用目标", "Target in use"),
    "tw_applies_help": (
        "本期间没有单独目标时，按年度或季度目标分解后实际使用的目标值。",
        "Where this period has no target of its own: the target it is judged by, phased from "
        "the year or quarter.",
    ),
    "tw_valid_from": ("生效自", "Valid from"),
    "tw_changed_by": ("修改人", "Changed by"),
    "tw_changed_at": ("修改时间", "Changed at"),
    "tw_effective": ("生效日期", "Effective date"),
    "tw_effective_help": (
        "改动从该日期所在月份起生效；之前的月份仍按原来的目标和权重考核。已关账的月份不能被改动影响。",
        "The change holds from the month of this date on; earlier months keep what they were "
        "judged by. A closed month cannot be affected.",
    ),
    "tw_reason": ("原因", "Reason"),
    "tw_reason_hint": ("例如：年中预算调整", "e.g. mid-year budget revision"),
    "tw_save": ("保存", "Save"),
    "tw_where": ("位置", "Where"),
    "tw_field": ("字段", "Field"),
    "tw_old": ("原值", "Old"),
    "tw_new": ("新值", "New"),
    "tw_check": ("校验", "Check"),
    "tw_changes": ("待保存的改动（{n} 处）", "Changes to save ({n})"),
    "tw_no_changes": ("尚无改动。", "No changes yet."),
    "tw_fix_first": (
        "{n} 处有问题，请先按提示修改（问题单元格不会被忽略，也不会被部分保存）。",
        "{n} change(s) have a problem: fix them first (nothing is dropped or saved in part).",
    ),
    "tw_saved_targets": (
        "已保存 {rows} 行（{cells} 个单元格），自 {month} 起生效。",
        "Saved {rows} row(s) ({cells} cell(s)), valid from {month}.",
    ),
    "tw_saved_weights": (
        "已保存 {rows} 组权重（{cells} 个单元格），自 {month} 起生效。",
        "Saved {rows} weight group(s) ({cells} cell(s)), valid from {month}.",
    ),
    "tw_conflict": (
        "未保存：{text}",
        "Not saved: {text}",
    ),
    "tw_reload_keep": ("重新加载并保留我的改动", "Reload, keeping my edits"),
    "tw_read_only": (
        "以下为只读（不在您的修改范围内）：",
        "Read-only (outside what you may change):",
    ),
    "tw_no_kpis": ("该组织下没有指标。", "There are no KPIs under this unit."),
    "tw_no_tree": ("该组织下没有指标树。", "There is no tree under this unit."),
    "tw_parent": ("上级节点", "Parent"),
    "tw_child": ("下级节点", "Child"),
    "tw_weight_pct": ("权重 %", "Weight %"),
    "tw_weight_help": (
        "同一上级下的权重之和必须为 100。",
        "The weights under one parent must sum to 100.",
    ),
    "tw_sums": ("各组权重合计", "Weights per parent"),
    "tw_sum": ("合计", "Sum"),
    "tw_not_100": ("不等于 100", "not 100"),
    "tw_weights_in_force": (
        "以下为 {month} 生效的权重（所选年份中的本月；往年为 12 月，来年为 1 月）。",
        "The weights in force in {month} (this month of the selected year; December of a past "
        "year, January of one to come).",
    ),
    "tw_weights_scheduled_title": ("已排定的权重（只读）", "Scheduled weights (read-only)"),
    "tw_weights_scheduled": (
        "自 {date} 起：{parent}——{weights}",
        "From {date}: {parent} — {weights}",
    ),
    "tw_weights_overrides": (
        "这次改动也适用于 {date} 之后：{parent} 自 {date} 起已排定的权重将被取代（以最新的决定为准）。",
        "This change also holds after {date}: it replaces the weights of {parent} scheduled "
        "from {date} (the latest decision wins).",
    ),
    "tw_history_of": ("查看历史", "History of"),
    "tw_target_versions": ("目标版本", "Target versions"),
    "tw_weight_versions": ("权重版本", "Weight versions"),
    "tw_no_versions": ("暂无记录。", "Nothing recorded yet."),
    "tw_version": ("版本", "Version"),
    "tw_change": ("改动", "Change"),
    "tw_revert": ("撤回到早先版本", "Revert to an earlier version"),
    "tw_revert_to": ("恢复为", "Bring back"),
    "tw_reverted": (
        "已恢复版本 v{version} 的目标（作为新版本保存）。",
        "Brought back version v{version}'s levels (saved as a new version).",
    ),
    "tw_entity": ("对象", "Entity"),
    "tw_entity_target": ("目标", "Targets"),
    "tw_entity_tree": ("指标树与权重", "Tree and weights"),
    "tw_entity_kpi": ("指标定义", "KPI definitions"),
    "tw_entity_phasing": ("分解方案", "Phasing profiles"),
    "tw_entity_batch": ("数据批次", "Data batches"),
    "tw_entity_org_unit": ("组织", "Org units"),
    "tw_entity_period_lock": ("关账", "Closed months"),
    "tw_entity_user": ("用户", "Users"),
    "tw_entity_session": ("登录与退出", "Sign-ins and sign-outs"),
    "tw_entity_backup": ("备份与恢复", "Backup and restore"),
    "tw_entity_alert": ("预警", "Alerts"),
    "tw_entity_comment": ("点评与行动", "Comments and actions"),
    "tw_entity_push_channel": ("推送渠道", "Push channels"),
    "tw_entity_alert_rule": ("预警规则", "Alert rules"),
    "tw_entity_source": ("数据源", "Database sources"),
    "tw_entity_import_profile": ("映射方案", "Mapping profiles"),
    "tw_entity_actual": ("实际值", "Actuals"),
    "tw_entity_kiosk": ("大屏", "Kiosk screens"),
    # What changed, in the change log's "field" column (the library's own fields come from
    # lib_field_*, the target levels from the grid's labels).
    "tw_field_value": ("数值", "value"),
    "tw_field_state": ("状态", "state"),
    "tw_field_status": ("状态", "status"),
    "tw_field_settings": ("设置", "settings"),
    "tw_field_backup": ("备份", "backup"),
    "tw_field_restore": ("恢复", "restore"),
    "tw_field_rotated": ("轮换删除", "rotated out"),
    "tw_field_mapping": ("映射", "mapping"),
    "tw_field_locked": ("锁定", "locked"),
    "tw_field_definition": ("定义", "definition"),
    "tw_field_enabled": ("启用", "enabled"),
    "tw_field_deleted": ("删除", "deleted"),
    "tw_field_unlocked": ("解除锁定", "unlocked"),
    "tw_field_created": ("新建", "created"),
    "tw_field_children": ("下级与权重", "children and weights"),
    "tw_field_shares": ("分解比例", "shares"),
    "tw_field_parent": ("上级", "parent"),
    "tw_field_signed_in": ("登录", "signed in"),
    "tw_field_failed": ("登录失败", "sign-in failed"),
    "tw_field_signed_out": ("退出登录", "signed out"),
    "tw_field_timed_out": ("超时退出", "timed out"),
    "tw_field_role": ("角色", "role"),
    "tw_field_scope": ("范围", "scope"),
    "tw_field_display_name": ("显示名称", "display name"),
    "tw_field_email": ("电子邮箱", "e-mail"),
    "tw_field_password": ("密码", "password"),
    "tw_field_text": ("点评", "comment"),
    "tw_field_action": ("行动", "action"),
    "tw_field_weight": ("权重", "weight"),
    "tw_field_revoked": ("撤销", "revoked"),
    "tw_field_wrong_token": ("错误令牌", "wrong token"),
    "tw_field_throttled": ("令牌限流", "tokens throttled"),
    "tw_field_revoked_token_used": ("已撤销的令牌被使用", "revoked token used"),
    # Whole old/new values the core writes as words.
    "tw_word_password": ("密码", "password"),
    "tw_word_sso": ("单点登录", "single sign-on"),
    "tw_word_set": ("已设置", "set"),
    "tw_word_changed": ("已修改", "changed"),
    "tw_word_created": ("新建", "created"),
    "tw_word_committed": ("已写入", "committed"),
    "tw_word_rolled_back": ("已撤销", "rolled back"),
    "tw_word_open": ("未处理", "open"),
    "tw_word_acknowledged": ("已确认", "acknowledged"),
    "tw_word_closed": ("已关闭", "closed"),
    # why a kiosk token was wrong, and who a throttle stopped
    "tw_word_unknown": ("未知令牌", "unknown token"),
    "tw_word_malformed": ("格式不符的令牌", "malformed token"),
    "tw_word_client": ("该地址", "this address"),
    "tw_word_everyone": ("所有地址", "every address"),
    "tw_user": ("用户", "User"),
    "tw_all": ("全部", "All"),
    "tw_dates": ("日期范围", "Dates"),
    "tw_key": ("键（前缀）", "Key (prefix)"),
    "tw_key_column": ("键", "Key"),
    "tw_audit_count": ("{n} 条记录", "{n} entries"),
    "tw_audit_download": ("下载 Excel", "Download Excel"),
    # Trends page
    "tr_nav": ("趋势分析", "Trends"),
    "tr_range": ("月份范围", "Months"),
    "tr_range_help": (
        "拖动两端选择起止月份；默认显示最近 24 个月。",
        "Drag either end to choose the first and last month; the last 24 months by default.",
    ),
    "tr_no_kpis": ("该组织的指标树中没有指标。", "There are no KPIs in this unit's tree."),
    "tr_no_data": ("所选月份没有该指标的数据。", "This KPI has no data in the months picked."),
    "tr_of_unit": ("{kpi}（{unit}）", "{kpi} ({unit})"),
    "tr_last_year": ("去年同期", "Same month last year"),
    "tr_band_base": ("基准–目标", "Baseline → target"),
    "tr_band_stretch": ("目标–挑战", "Target → challenge"),
    "tr_band_range": ("合理区间（下限–上限）", "Green band (low – high)"),
    "tr_from": ("从", "From"),
    "tr_to": ("至", "To"),
    "tr_exact": ("精确值", "Exact value"),
    "tr_rank": ("排名", "Rank"),
    "tr_ytd_prefix": ("累计", "YTD "),
    "tr_ytd_actual": ("年累计实际", "YTD actual"),
    "tr_monthly": (
        "月度实际与基准 / 目标 / 挑战区间",
        "Monthly actual against baseline / target / challenge",
    ),
    "tr_ytd": ("年初至今 vs 分解目标（进度）", "Year to date against the phased target (pace)"),
    "tr_ytd_sum": (
        "累计实际与截至当月各月分解目标之和比较（每年 1 月重新累计）。",
        "Cumulative actual against the sum of the months' phased targets so far (restarting each January).",
    ),
    "tr_ytd_other": (
        "年初至今的值按指标的汇总方式（{agg}）计算，与年度目标比较。",
        "The year-to-date value follows the KPI's aggregation ({agg}) and is compared with the annual levels.",
    ),
    "tr_agg_avg": ("月度平均", "mean of the months"),
    "tr_agg_last": ("期末值", "latest month"),
    "tr_agg_ratio": ("分子合计 ÷ 分母合计", "Σ numerator ÷ Σ denominator"),
    "tr_agg_formula": ("按公式计算", "its formula"),
    "tr_agg_sum": ("合计", "sum"),
    "tr_compare": ("组织对比", "Across units"),
    "tr_compare_with": ("对比对象", "Compare"),
    "tr_compare_siblings": ("同级组织", "Sibling units"),
    "tr_compare_children": ("下级组织", "Units below"),
    "tr_compare_over": ("对比期间", "Over"),
    "tr_compare_last": ("最后一个月（{month}）", "Last month ({month})"),
    "tr_compare_ytd": ("{year} 年初至今", "{year} year to date"),
    "tr_compare_none": (
        "同级组织和下级组织中，该期间有此指标数值的不足两个，无可对比。",
        "Fewer than two of the sibling units or of the units below have a value for this KPI in "
        "the period: nothing to compare.",
    ),
    "tr_latest": ("最新月份 {month}", "Latest month {month}"),
    "tr_pace": ("年累计达成率", "YTD achievement"),
    "tr_markers_note": (
        "◆ 为点评标记，悬停查看内容；虚线为去年同期。",
        "◆ marks a month with comments (hover for the text); the dashed line is last year.",
    ),
    "tr_download_svg": ("图表 SVG", "Chart (SVG)"),
    "tr_download_png": ("图表 PNG", "Chart (PNG)"),
    "tr_download_xlsx": ("数据 Excel", "Data (Excel)"),
    # Review comments and actions (复盘)
    "rv_comments": ("点评", "Comments"),
    "rv_count": ("条数", "Count"),
    "rv_n": ("{n} 条点评", "{n} comments"),
    "rv_panel": ("点评与行动（{n}）", "Comments and actions ({n})"),
    "rv_panel_open": (
        "点评与行动（{n}，{open} 项待办）",
        "Comments and actions ({n}, {open} open)",
    ),
    "rv_badge_open": ("{n} 项待办", "{n} open"),
    "rv_for": ("{kpi} · {unit} · {period}", "{kpi} · {unit} · {period}"),
    "rv_add": ("添加点评", "Add a comment"),
    "rv_text": ("点评内容", "Comment"),
    "rv_month": ("所属月份", "Month"),
    "rv_action": ("跟进行动（可选）", "Follow-up action (optional)"),
    "rv_action_help": (
        "填写后即成为待办行动，需指定责任人和完成期限，关闭时填写处理结果。",
        "Filling this in makes it an action with an owner and a due date, closed later with a resolution.",
    ),
    "rv_owner": ("责任人", "Owner"),
    "rv_due": ("完成期限", "Due"),
    "rv_submit": ("提交点评", "Post comment"),
    "rv_added": ("已添加点评。", "Comment added."),
    "rv_none": ("该期间还没有点评。", "No comments for this period yet."),
    "rv_read_only": (
        "查看者只能阅读点评；部门负责人、数据分析和管理员可以发表点评。",
        "Viewers read comments; department heads, analysts and admins write them.",
    ),
    "rv_action_line": (
        "行动：{action} · 责任人 {owner} · 期限 {due}",
        "Action: {action} · owner {owner} · due {due}",
    ),
    "rv_open": ("待办", "Open"),
    "rv_closed": ("已关闭", "Closed"),
    "rv_overdue": ("已逾期", "Overdue"),
    "rv_resolution": ("处理结果", "Resolution"),
    "rv_close": ("关闭行动", "Close action"),
    "rv_closed_ok": ("行动已关闭。", "Action closed."),
    "rv_closed_by": ("{who} 于 {at} 关闭", "Closed by {who} on {at}"),
    "rv_alert": ("回应预警 #{id}", "On alert #{id}"),
    "rv_board_kpi": ("点评的指标", "KPI to review"),
    # Push settings (kpi_core.ui.push), a section of the Alerts page
    "push_title": ("推送渠道", "Push channels"),
    "push_intro": (
        "预警会推送到这里设置的渠道：通用 Webhook（JSON）、钉钉机器人、企业微信机器人、Slack 兼容 "
        "Webhook 和 SMTP 邮件。密钥不保存在数据仓库中：地址和密码处写引用，发送时才读取。",
        "Alerts are pushed to the channels set here: a generic webhook (JSON), a DingTalk robot, a "
        "WeCom robot, a Slack-compatible webhook, or email over SMTP. Secrets are not kept in the "
        "warehouse: addresses and passwords are written as references, read only to send.",
    ),
    "push_unexpected": (
        "推送设置出现意外错误（{error}）。请将此消息发给管理员。",
        "Something unexpected went wrong in the push settings ({error}). Please send this "
        "message to your administrator.",
    ),
    "push_admins_only": (
        "只有管理员可以设置推送渠道。",
        "Only admins configure push channels.",
    ),
    "push_none": (
        "还没有推送渠道。预警只会显示在本页。",
        "No push channel yet: alerts are shown on this page only.",
    ),
    "push_pick": ("编辑渠道", "Edit channel"),
    "push_pick_new": ("＋ 新建渠道", "+ New channel"),
    "push_col_name": ("名称", "Name"),
    "push_col_kind": ("类型", "Kind"),
    "push_col_address": ("地址（已隐藏密钥）", "Address (secrets hidden)"),
    "push_col_min": ("最低级别", "Minimum severity"),
    "push_col_lang": ("语言", "Language"),
    "push_col_enabled": ("状态", "State"),
    "push_col_last": ("最近一次推送", "Last delivery"),
    "push_on": ("启用", "on"),
    "push_off": ("停用", "off"),
    "push_kind_webhook": ("通用 Webhook（JSON）", "Webhook (JSON)"),
    "push_kind_dingtalk": ("钉钉机器人", "DingTalk robot"),
    "push_kind_wecom": ("企业微信机器人", "WeCom robot"),
    "push_kind_slack": ("Slack 兼容 Webhook", "Slack-compatible webhook"),
    "push_kind_email": ("邮件（SMTP）", "Email (SMTP)"),
    "push_sev_high": ("高", "High"),
    "push_sev_medium": ("中及以上", "Medium and up"),
    "push_sev_low": ("全部（低及以上）", "All (low and up)"),
    "push_lang_zh": ("中文", "Chinese"),
    "push_lang_en": ("英文", "English"),
    "push_lang_both": ("中英双语", "Chinese and English"),
    "push_name": ("渠道名称", "Channel name"),
    "push_kind": ("渠道类型", "Kind"),
    "push_url": ("Webhook 地址", "Webhook address"),
    "push_url_help_webhook": (
        "接收 JSON 的地址（POST）。地址中的令牌、密钥等参数须写成引用，如 "
        "`?token=${secrets.push.token}`。",
        "The address that receives the JSON (POST). A token or key in it must be a reference, "
        "e.g. `?token=${secrets.push.token}`.",
    ),
    "push_url_help_dingtalk": (
        "机器人设置中的 Webhook 地址。其中的 access_token 就是机器人的密码，须写成引用："
        "`...?access_token=${secrets.push.dingtalk_token}`，或把整个地址写成 "
        "`${secrets.push.dingtalk_url}`。",
        "The Webhook address from the robot's settings. Its access_token is the robot's "
        "password and must be a reference: `...?access_token=${secrets.push.dingtalk_token}`, "
        "or the whole address as `${secrets.push.dingtalk_url}`.",
    ),
    "push_url_help_wecom": (
        "群机器人的 Webhook 地址。其中的 key 须写成引用："
        "`...?key=${secrets.push.wecom_key}`，或把整个地址写成 `${secrets.push.wecom_url}`。",
        "The group robot's Webhook address. Its key must be a reference: "
        "`...?key=${secrets.push.wecom_key}`, or the whole address as "
        "`${secrets.push.wecom_url}`.",
    ),
    "push_url_help_slack": (
        "Slack（或 Mattermost、Rocket.Chat 等兼容服务）的 Incoming Webhook 地址本身就是密钥："
        "请写成引用，如 `${secrets.push.slack_url}`。",
        "A Slack (or Mattermost, Rocket.Chat …) incoming-webhook address is itself the secret: "
        "write it as a reference, e.g. `${secrets.push.slack_url}`.",
    ),
    "push_secret": ("加签密钥（可选）", "Signing secret (optional)"),
    "push_secret_help": (
        "只能写引用，如 `${KPI_PUSH_SECRET_DINGTALK}`（环境变量）或 `${secrets.push.dingtalk_secret}`"
        "（.streamlit/secrets.toml 中的键）。",
        "A reference only, e.g. `${KPI_PUSH_SECRET_DINGTALK}` (an environment variable) or "
        "`${secrets.push.dingtalk_secret}` (a key of .streamlit/secrets.toml).",
    ),
    "push_keyword": ("自定义关键词（可选）", "Custom keyword (optional)"),
    "push_keyword_help": (
        "机器人安全设置为“自定义关键词”时填写：消息标题会带上它，否则钉钉会拒收。",
        "Fill in when the robot's security setting is a custom keyword: the title then carries "
        "it, otherwise DingTalk drops the message.",
    ),
    "push_headers": ("请求头（可选）", "Headers (optional)"),
    "push_headers_help": (
        "每行一个“名称: 值”。Authorization、令牌等的值须写成引用，如 "
        "`Authorization: Bearer ${secrets.push.token}`。",
        "One 'Name: value' per line. Authorization, tokens and keys must be references, e.g. "
        "`Authorization: Bearer ${secrets.push.token}`.",
    ),
    "push_host": ("SMTP 服务器", "SMTP server"),
    "push_port": ("端口", "Port"),
    "push_security": ("加密方式", "Security"),
    "push_security_starttls": ("STARTTLS（常用 587）", "STARTTLS (usually 587)"),
    "push_security_ssl": ("SSL（常用 465）", "SSL (usually 465)"),
    "push_security_none": ("不加密（仅限内网中继）", "None (internal relay only)"),
    "push_user": ("用户名（可选）", "User (optional)"),
    "push_password": ("密码（引用）", "Password (reference)"),
    "push_from": ("发件人", "From"),
    "push_to": ("收件人", "To"),
    "push_to_help": ("多个地址用逗号分隔。", "Separate several addresses with commas."),
    "push_lang": ("消息语言", "Message language"),
    "push_min_severity": ("推送级别", "Severities pushed"),
    "push_min_severity_help": (
        "只推送达到此级别的预警；测试消息总会发送。",
        "Only alerts at least this severe are pushed; a test message is always sent.",
    ),
    "push_enabled": ("启用", "Enabled"),
    "push_secrets_howto_title": ("如何保存密钥", "How to keep secrets"),
    "push_secrets_howto": (
        "把密钥写进服务器上的 `.streamlit/secrets.toml`（不要提交到代码库），例如：\n\n"
        '```toml\n[push]\ndingtalk_token = "…机器人地址中 access_token 的值…"\n'
        'dingtalk_secret = "SEC…"\nwecom_key = "…"\n'
        'slack_url = "https://hooks.slack.com/services/…"\nsmtp_password = "…"\n```\n\n'
        "然后在表单中写 `${secrets.push.dingtalk_token}` 这样的引用；也可以用名称以 "
        "`KPI_PUSH_SECRET_` 开头的环境变量，写作 `${KPI_PUSH_SECRET_DINGTALK_TOKEN}`。"
        "推送渠道只能读取 `[push]` 段和这些环境变量，不能读取其他密钥。"
        "发送时才读取这些值，它们不会保存在数据仓库、审计日志或页面上。",
        "Put the secrets in `.streamlit/secrets.toml` on the server (never in the repository), "
        "for example:\n\n"
        '```toml\n[push]\ndingtalk_token = "…the access_token of the robot\'s address…"\n'
        'dingtalk_secret = "SEC…"\nwecom_key = "…"\n'
        'slack_url = "https://hooks.slack.com/services/…"\nsmtp_password = "…"\n```\n\n'
        "Then write a reference such as `${secrets.push.dingtalk_token}` in the form, or use an "
        "environment variable whose name starts with `KPI_PUSH_SECRET_`, as "
        "`${KPI_PUSH_SECRET_DINGTALK_TOKEN}`. A channel reads only the `[push]` section and those "
        "variables, no other secret. The values are read only to send; they are never stored in "
        "the warehouse, the audit log or the page.",
    ),
    "push_problems": ("保存前还需处理：", "Before it can be saved:"),
    "push_save": ("保存渠道", "Save channel"),
    "push_save_as": (
        "将另存为新渠道“{name}”；“{old}”保持不变。",
        "Saves a new channel '{name}'; '{old}' stays as it is.",
    ),
    "push_saved": ("已保存渠道“{name}”。", "Channel '{name}' saved."),
    "push_delete": ("删除", "Delete"),
    "push_delete_confirm": (
        "确定删除渠道“{name}”吗？推送记录会保留。",
        "Delete the channel '{name}'? Its delivery log is kept.",
    ),
    "push_delete_yes": ("删除", "Delete"),
    "push_cancel": ("取消", "Cancel"),
    "push_deleted": ("已删除渠道“{name}”。", "Channel '{name}' deleted."),
    "push_test": ("发送测试消息", "Send test"),
    "push_test_help": (
        "用已保存的设置发送一条测试消息（停用的渠道也会发送）。",
        "Sends a test message with the saved settings (even when the channel is off).",
    ),
    "push_test_unsaved": (
        "表单有未保存的改动：测试使用的是已保存的设置。",
        "The form has unsaved changes: the test uses the saved settings.",
    ),
    "push_testing": ("正在向“{name}”发送测试消息…", "Sending a test message to '{name}'…"),
    "push_test_ok": (
        "测试消息已送达“{name}”（第 {attempts} 次尝试）。",
        "Test message delivered to '{name}' (attempt {attempts}).",
    ),
    "push_test_failed": (
        "测试消息未能送达“{name}”（尝试 {attempts} 次）：{error}",
        "The test message to '{name}' failed ({attempts} attempt(s)): {error}",
    ),
    "push_last_failed": (
        "渠道“{name}”最近一次推送失败（{when}）：{error}",
        "The last push to '{name}' failed ({when}): {error}",
    ),
    "push_log_title": ("推送记录", "Delivery log"),
    "push_log_none": ("还没有推送记录。", "Nothing has been pushed yet."),
    "push_log_help": (
        "最近 {n} 次尝试，其中 {failed} 次失败（红色）。失败会按退避间隔自动重试。",
        "The latest {n} attempts, {failed} failed (in red). A failure is retried with back-off.",
    ),
    "push_col_time": ("时间", "Time"),
    "push_col_channel": ("渠道", "Channel"),
    "push_col_alert": ("预警", "Alert"),
    "push_col_attempt": ("第几次", "Attempt"),
    "push_col_result": ("结果", "Result"),
    "push_col_status": ("状态码", "Status"),
    "push_col_error": ("错误", "Error"),
    "push_test_row": ("测试", "test"),
    "push_sent": ("✔ 已送达", "✔ sent"),
    "push_failed": ("✖ 失败", "✖ failed"),
    # Alerts (kpi_core.alerts): kinds, severities and the messages alerts carry
    "al_kind_status": ("状态", "Status"),
    "al_kind_at_risk": ("预计未达标", "At risk"),
    "al_kind_anomaly": ("异常波动", "Anomaly"),
    "al_kind_stale": ("数据未更新", "Stale data"),
    "al_kind_overdue": ("行动逾期", "Overdue action"),
    "al_sev_high": ("高", "high"),
    "al_sev_medium": ("中", "medium"),
    "al_sev_low": ("低", "low"),
    "al_status": (
        "{unit}「{kpi}」{period}实际 {actual}，目标 {target}，基准 {baseline}：{light}。",
        "{kpi} at {unit}, {period}: {actual} against target {target} (baseline {baseline}) "
        "— {light}.",
    ),
    "al_status_range": (
        "{unit}「{kpi}」{period}实际 {actual}，合理区间 {band}：{light}。",
        "{kpi} at {unit}, {period}: {actual}, green band {band} — {light}.",
    ),
    "al_status_rolled": (
        "{unit}「{kpi}」{period}下级加权得分 {score}：{light}。",
        "{kpi} at {unit}, {period}: its children's weighted score is {score} — {light}.",
    ),
    "al_at_risk_run_rate": (
        "{unit}「{kpi}」按年初至今进度（{months} 个月累计 {ytd}），预计{year}全年 {forecast}，"
        "{miss}目标 {target}。",
        "{kpi} at {unit}: at the year-to-date pace ({ytd} in {months} months), {year} is "
        "forecast to end at {forecast}, {miss} the target {target}.",
    ),
    "al_at_risk_trend": (
        "{unit}「{kpi}」按近 {months} 个月趋势（每月 {slope}），预计{end}为 {forecast}，"
        "{miss}目标 {target}。",
        "{kpi} at {unit}: on the trend of the last {months} months ({slope} a month), {end} is "
        "forecast at {forecast}, {miss} the target {target}.",
    ),
    "al_miss_up": ("低于", "short of"),
    "al_miss_down": ("高于", "above"),
    "al_miss_range": ("超出", "outside"),
    "al_anomaly": (
        "{unit}「{kpi}」{period}实际 {actual}，{way}{basis}中位数 {median}（稳健 z 值 {z}）。",
        "{kpi} at {unit}, {period}: {actual}, far {way} the median {median} {basis} "
        "(robust z {z}).",
    ),
    "al_basis_same_month": ("往年同月（{n} 年）", "of the same month in {n} earlier years"),
    "al_basis_recent": ("近 {n} 个月", "of the last {n} months"),
    "al_way_high": ("远高于", "above"),
    "al_way_low": ("远低于", "below"),
    "al_stale": (
        "{unit}尚未导入{period}的实际数据（月末后已 {days} 天）。",
        "{unit} has no actuals for {period} yet, {days} days after the month ended.",
    ),
    "al_overdue": (
        "{unit}「{kpi}」{period}的行动项“{action}”已逾期 {days} 天（到期 {due}，责任人 {owner}）。",
        "Action '{action}' on {kpi} at {unit}, {period}, is {days} days past due ({due}; "
        "owner {owner}).",
    ),
    "al_nobody": ("未指定", "unassigned"),
    "nav_alerts": ("预警", "Alerts"),
    "al_intro": (
        "红灯、黄灯、预计未达标、异常波动、数据未更新和逾期行动，都有责任人。每次导入或拉取数据后自动评估；"
        "可确认、评论、创建复盘行动并填写处理结果后关闭。",
        "Red and amber lights, at-risk forecasts, anomalies, stale data and overdue actions, "
        "each with its owner. Evaluated after every import or pull; acknowledge, comment, "
        "create a review action and close with a resolution.",
    ),
    "al_tab_alerts": ("预警列表", "Alerts"),
    "al_tab_actions": ("复盘行动", "Actions"),
    "al_tab_push": ("推送设置", "Push channels"),
    "al_tab_rules": ("预警规则", "Rules"),
    "al_kind": ("类型", "Kind"),
    "al_severity": ("级别", "Severity"),
    "al_state": ("状态", "State"),
    "al_state_open": ("未处理", "open"),
    "al_state_acknowledged": ("已确认", "acknowledged"),
    "al_state_closed": ("已关闭", "closed"),
    "al_run": ("立即评估", "Evaluate now"),
    "al_ran": (
        "评估完成：新增 {new} 条，自动关闭 {closed} 条。",
        "Evaluated: {new} new, {closed} closed.",
    ),
    "al_count": ("预警数", "Alerts"),
    "al_none": ("没有符合条件的预警。", "No alerts match."),
    "al_message": ("说明", "Message"),
    "al_raised": ("产生时间", "Raised at"),
    "al_pick": ("查看预警", "Alert"),
    "al_ack_note": ("确认备注（可选）", "Note (optional)"),
    "al_ack": ("确认", "Acknowledge"),
    "al_acked": ("已确认。", "Acknowledged."),
    "al_resolution": ("处理结果", "Resolution"),
    "al_close": ("关闭", "Close"),
    "al_closed": ("已关闭。", "Closed."),
    "al_review": ("评论与复盘行动", "Comments and actions"),
    "al_no_actions": ("没有未关闭的复盘行动。", "No open actions."),
    "al_overdue_n": ("{n} 项行动已逾期。", "{n} action(s) past due."),
    "al_action": ("行动", "Action"),
    "al_due": ("截止日期", "Due"),
    "al_comment": ("评论", "Comment"),
    "al_pick_action": ("关闭行动", "Close an action"),
    "al_close_action": ("关闭行动", "Close action"),
    "al_action_closed": ("行动已关闭。", "Action closed."),
    "al_enabled": ("启用", "Enabled"),
    "al_settings": ("参数", "Settings"),
    "al_yes": ("是", "yes"),
    "al_no": ("否", "no"),
    "al_param_red": ("红灯的级别", "Severity of a red light"),
    "al_param_red_help": (
        "指标亮红灯时预警的级别。",
        "The severity of the alert when a KPI is red.",
    ),
    "al_param_amber": ("黄灯的级别", "Severity of an amber light"),
    "al_param_amber_help": (
        "指标亮黄灯时预警的级别。",
        "The severity of the alert when a KPI is amber.",
    ),
    "al_param_severity": ("级别", "Severity"),
    "al_param_severity_help": ("此类预警的级别。", "The severity of alerts of this kind."),
    "al_param_trend_months": ("趋势月数", "Months for the trend"),
    "al_param_trend_months_help": (
        "非求和指标按最近多少个月拟合趋势来预测年末。",
        "How many recent months the trend of a non-sum KPI is fitted on to forecast the year end.",
    ),
    "al_param_min_points": ("最少数据月数", "Fewest months with data"),
    "al_param_min_points_help": (
        "有数据的月份少于此数时不做预测。",
        "With fewer months of data, no forecast is made.",
    ),
    "al_param_phased": ("按分解方案折算", "Follow the phasing"),
    "al_param_phased_help": (
        "求和指标的年化按已过月份的分解占比折算，淡季不被误判为未达标；关闭则按 年累计 ÷ 月数 × 12。",
        "A sum KPI's run-rate divides by the phased share of the months gone, so quiet seasons "
        "do not look like a miss; off: year to date ÷ months × 12.",
    ),
    "al_param_threshold": ("异常阈值（稳健 z）", "Anomaly threshold (robust z)"),
    "al_param_threshold_help": (
        "数值偏离自身历史的稳健 z 值达到此数即为异常（低级别）。",
        "A value whose robust z against its own history reaches this is an anomaly (low).",
    ),
    "al_param_medium_z": ("中级别阈值（稳健 z）", "Medium severity from (robust z)"),
    "al_param_medium_z_help": (
        "稳健 z 值达到此数时异常的级别为中。",
        "At or above this robust z an anomaly is medium.",
    ),
    "al_param_years": ("参照年数", "Years looked back"),
    "al_param_years_help": (
        "与往年同月比较时看多少年。",
        "How many earlier years of the same month are compared.",
    ),
    "al_param_min_years": ("最少参照年数", "Fewest years"),
    "al_param_min_years_help": (
        "往年同月少于此数时，改以最近 12 个月为参照。",
        "With fewer earlier years, the last 12 months are the reference instead.",
    ),
    "al_param_min_history": ("最少参照月数", "Fewest months of history"),
    "al_param_min_history_help": (
        "参照月份少于此数时不做判断。",
        "With fewer months in the reference, no judgement.",
    ),
    "al_param_mad_floor": ("MAD 下限（占中位数）", "MAD floor (share of the median)"),
    "al_param_mad_floor_help": (
        "历史值完全相同时 MAD 为 0，任何变化都会显得无限异常；MAD 至少取中位数绝对值的这一比例。",
        "A history of identical values has a MAD of 0, making any change infinitely anomalous: "
        "the MAD is at least this share of the median's size.",
    ),
    "al_param_grace_days": ("宽限天数", "Days of grace"),
    "al_param_grace_days_help": (
        "月末后过多少天仍无数据才提示未更新。",
        "Days after a month's end before its missing actuals are flagged.",
    ),
    "al_rule_saved": ("规则已保存。", "Rule saved."),
    "al_badge": ("{n} 条预警", "{n} alerts"),
    "al_badge_one": ("1 条预警", "1 alert"),
    "bs_title": ("经营大屏", "KPI wall"),
    "bs_not_set_up": ("此屏幕尚未设置", "This screen is not set up"),
    "bs_setup_hint": (
        "请管理员在“系统管理 → 大屏”中新建屏幕，再在此浏览器中打开它给出的地址。",
        "Ask an admin to create a screen on Admin → Kiosk screens, then open the address it "
        "gives in this browser.",
    ),
    "bs_no_token": ("此地址中没有大屏令牌。", "This address holds no kiosk token."),
    "bs_unknown_token": (
        "此地址中的令牌不能打开任何大屏。",
        "The token in this address does not open any screen.",
    ),
    "bs_revoked": ("此屏幕的访问权限已被撤销", "This screen's access was revoked"),
    "bs_revoked_hint": (
        "不再显示数据。如需继续使用，请管理员新建屏幕，并在此浏览器中打开新地址。",
        "It shows no more data. To use it again, ask an admin to create a new screen and open "
        "its address in this browser.",
    ),
    "bs_throttled": ("错误令牌过多", "Too many wrong tokens"),
    "bs_throttled_hint": (
        "暂时不再检查令牌；几分钟后会自动重试。",
        "Tokens are not checked for a few minutes; this screen tries again by itself.",
    ),
    "bs_busy_hint": (
        "数据仓库正忙，暂时无法检查令牌；稍后会自动重试。",
        "The warehouse is busy and the token cannot be checked yet; this screen tries again by "
        "itself.",
    ),
    "bs_waiting": ("正在等待数据…", "Waiting for data…"),
    "bs_no_data": ("所选组织暂无数据。", "No data for these units yet."),
    "bs_stale_since": ("数据暂未刷新（自 {time} 起）", "stale since {time}"),
    "bs_updated": ("更新于 {time}", "updated {time}"),
    "bs_vs_prev": ("较上月 {delta}", "{delta} vs last month"),
    "bs_trend": ("近 {n} 个月得分", "Score, last {n} months"),
    "bs_coverage": ("数据覆盖 {pct}", "coverage {pct}"),
    "bs_forecast": ("预测 {value}", "Forecast {value}"),
    "bs_year_target": ("全年 {value}", "Year {value}"),
    "bs_company": ("综合得分", "Company score"),
    "bs_departments": ("部门得分排名", "Departments ranked"),
    "bs_risks": ("红灯与预测未达标指标", "Red KPIs and forecast misses"),
    "bs_no_risks": ("没有红灯或预警指标。", "No red or at-risk KPIs."),
    "bs_matrix": ("状态矩阵", "Status matrix"),
    "bs_freshness": ("数据更新情况", "Data freshness"),
    "bs_col_status": ("状态", "Status"),
    "bs_col_kpi": ("指标 · 组织", "KPI · unit"),
    "bs_col_value": ("实际 / 目标", "Actual / target"),
    "bs_col_owner": ("责任人", "Owner"),
    "bs_col_action": ("行动", "Open action"),
    "bs_col_unit": ("组织", "Unit"),
    "bs_col_latest": ("最新月份", "Latest month"),
    "bs_no_action": ("暂无行动", "none yet"),
    "bs_due": ("{date} 截止", "due {date}"),
    "bs_overdue": ("已逾期", "overdue"),
    "bs_more_actions": ("另 {n} 项", "+{n} more"),
    "bs_page": ("（{i}/{n}）", " ({i}/{n})"),
    # Admin page: users, audit log, backup and restore
    "ad_nav": ("系统管理", "Admin"),
    "ad_title": ("系统管理", "Admin"),
    "ad_not_allowed": (
        "只有管理员可以管理用户和大屏、查看完整变更日志和备份恢复；如有需要，请联系管理员。",
        "Only admins manage users and kiosk screens, read the whole change log and back up or "
        "restore; ask one if you need a change.",
    ),
    "ad_tab_users": ("用户", "Users"),
    "ad_tab_kiosk": ("大屏", "Kiosk screens"),
    "ks_intro": (
        "每块大屏用自己的地址打开，地址中带有随机令牌。令牌只在新建时显示一次，系统只保存其哈希值；"
        "撤销后，已打开的屏幕会在下一次刷新时停止显示数据。错误令牌会被记录并限流。",
        "Each wall screen opens with its own address, holding a random token. The token is shown "
        "once, when the screen is created, and only its hash is kept. A revoked screen stops "
        "showing data at its next tick. Wrong tokens are logged and throttled.",
    ),
    "ks_name": ("屏幕名称", "Screen name"),
    "ks_units": ("显示的组织", "Units shown"),
    "ks_units_help": (
        "屏幕显示这些组织及其全部下级，不会更多。",
        "The screen shows these units with everything below them, and nothing else.",
    ),
    "ks_slides": ("轮播页面", "Slides"),
    "ks_rotate": ("每页停留（秒）", "Seconds per slide"),
    "ks_refresh": ("数据刷新间隔（秒）", "Seconds between data reads"),
    "ks_lang": ("语言", "Language"),
    "ks_create": ("新建大屏", "Create screen"),
    "ks_created": ("已新建大屏“{name}”。", "Screen '{name}' created."),
    "ks_copy_now": (
        "请立即复制下面的地址并在大屏的浏览器中打开：它只显示这一次，之后无法再次查看。",
        "Copy this address now and open it in the screen's browser: it is shown only this once "
        "and cannot be seen again.",
    ),
    "ks_screens": ("大屏列表", "Screens"),
    "ks_none": ("还没有大屏。", "No screens yet."),
    "ks_col_name": ("名称", "Name"),
    "ks_col_units": ("组织", "Units"),
    "ks_col_slides": ("页面", "Slides"),
    "ks_col_timing": ("轮播 / 刷新", "Rotate / refresh"),
    "ks_timing": ("{rotate} 秒 / {refresh} 秒", "{rotate} s / {refresh} s"),
    "ks_col_created": ("新建", "Created"),
    "ks_col_seen": ("最近访问", "Last seen"),
    "ks_never_seen": ("尚未访问", "not yet"),
    "ks_col_state": ("状态", "State"),
    "ks_active": ("使用中", "active"),
    "ks_revoked_at": ("已撤销 {when} · {by}", "revoked {when} · {by}"),
    "ks_revoke_title": ("撤销大屏", "Revoke a screen"),
    "ks_pick": ("大屏", "Screen"),
    "ks_pick_placeholder": ("选择要撤销的大屏", "Choose a screen to revoke"),
    "ks_revoke_confirm": (
        "确认撤销“{name}”：它的地址将无法再打开，已打开的屏幕会停止显示数据。",
        "Yes, revoke '{name}': its address opens nothing any more and the open screen stops "
        "showing data.",
    ),
    "ks_revoke": ("撤销", "Revoke"),
    "ks_revoked": ("已撤销大屏“{name}”。", "Screen '{name}' revoked."),
    "ad_tab_audit": ("变更日志", "Change log"),
    "ad_tab_backup": ("备份与恢复", "Backup & restore"),
    "ad_user_pick": ("选择用户", "User"),
    "ad_new_user": ("＋ 新用户", "+ New user"),
    "ad_choose_units": ("选择组织", "Choose units"),
    "ad_name": ("用户名", "User name"),
    "ad_display_name": ("显示名称", "Display name"),
    "ad_role": ("角色", "Role"),
    "ad_scope": ("范围（组织）", "Scope (org units)"),
    "ad_scope_help": (
        "用户可见的组织及其下级；管理员可见全部。",
        "The units this user sees, with everything below them; admins see all.",
    ),
    "ad_password": ("密码", "Password"),
    "ad_password_help": (
        "至少 8 个字符；只保存加盐哈希，不会显示。修改用户时留空则保持原密码。",
        "At least 8 characters; only a salted hash is stored, never shown. Leave empty when "
        "editing to keep the current password.",
    ),
    "ad_save_user": ("保存用户", "Save user"),
    "ad_user_saved": ("已保存用户 {name}。", "User {name} saved."),
    "ad_delete_confirm": ("确认删除用户 {name}", "Yes, delete user {name}"),
    "ad_delete": ("删除用户", "Delete user"),
    "ad_user_deleted": ("已删除用户 {name}。", "User {name} deleted."),
    "ad_col_password": ("已设密码", "Password set"),
    "ad_backup_intro": (
        "备份是整个数据仓库的一致副本（应用运行时也可进行），附带清单：结构版本、每张表的行数和校验和。"
        "恢复前会完整校验备份，被替换的仓库保留为 .before-restore 文件。",
        "A backup is a consistent copy of the whole warehouse (safe while the app runs) with a "
        "manifest: schema version, each table's rows and checksum. A restore checks the backup "
        "completely first and keeps the replaced warehouse as a .before-restore file.",
    ),
    "ad_backup_dir": (
        "备份目录：{dir}（保留最近 {keep} 份）",
        "Backup directory: {dir} (keeping the latest {keep})",
    ),
    "ad_backup_dir_all": (
        "备份目录：{dir}（全部保留）",
        "Backup directory: {dir} (keeping all)",
    ),
    "ad_backup_now": ("立即备份", "Make a backup now"),
    "ad_backup_done": (
        "已写入 {file}：{tables} 张表，{rows} 行。",
        "Wrote {file}: {tables} tables, {rows} rows.",
    ),
    "ad_backup_download": ("下载备份文件", "Download the backup"),
    "ad_backups": ("已有备份", "Backups"),
    "ad_no_backups": ("目录中还没有备份。", "No backups in the directory yet."),
    "ad_col_file": ("文件", "File"),
    "ad_col_created": ("时间", "Created"),
    "ad_col_by": ("操作人", "By"),
    "ad_col_schema": ("结构版本", "Schema"),
    "ad_col_rows": ("行数", "Rows"),
    "ad_col_size": ("大小 (KB)", "Size (KB)"),
    "ad_unreadable": ("（无法读取）", "(unreadable)"),
    "ad_restore": ("恢复", "Restore"),
    "ad_restore_from": ("恢复来源", "Restore from"),
    "ad_from_list": ("目录中的备份", "A listed backup"),
    "ad_from_upload": ("上传备份文件", "An uploaded file"),
    "ad_pick_backup": ("选择备份", "Backup"),
    "ad_upload": ("备份文件（.zip）", "Backup file (.zip)"),
    "ad_manifest": (
        "备份时间 {created}，操作人 {by}，结构版本 {schema}，{tables} 张表，共 {rows} 行。",
        "Backup of {created} by {by}, schema {schema}, {tables} tables, {rows} rows.",
    ),
    "ad_restore_confirm": (
        "我明白：恢复会用此备份替换整个数据仓库（当前仓库另存为 .before-restore）。",
        "I understand: restoring replaces the whole warehouse by this backup (the current one is "
        "kept as .before-restore).",
    ),
    "ad_restore_button": ("恢复此备份", "Restore this backup"),
    "ad_restored": (
        "已从 {file} 恢复；被替换的仓库保存在 {kept}。",
        "Restored from {file}; the replaced warehouse is kept as {kept}.",
    ),
    "si_title": ("登录", "Sign in"),
    "si_name": ("用户名", "User name"),
    "si_password": ("密码", "Password"),
    "si_submit": ("登录", "Sign in"),
    # One answer for a wrong name, a wrong password and a locked user: which names exist, and
    # which are locked, is nothing an outsider may learn from the form.
    "si_wrong": (
        "用户名或密码不正确，或该用户因连续 {max} 次登录失败已被锁定。锁定 {minutes} 分钟后自动解除，"
        "管理员也可以提前解锁。",
        "The user name or password is not right, or the user is locked after {max} failed "
        "attempts in a row. A lock runs out after {minutes} minutes; an admin can lift it sooner.",
    ),
    "si_timed_out": (
        "超过 {minutes} 分钟无操作，已自动退出。请重新登录。",
        "You were signed out after {minutes} minutes without activity. Sign in again.",
    ),
    "si_signed_out": ("已退出。", "You are signed out."),
    "si_sign_out": ("退出登录", "Sign out"),
    "si_sign_out_everywhere": ("在所有设备上退出", "Sign out everywhere"),
    "si_ended": (
        "您的登录已结束（在其他标签页或设备上退出，或被管理员结束）。请重新登录。",
        "Your session was ended (signed out elsewhere, or by an admin). Sign in again.",
    ),
    "si_expired": (
        "登录已满 {hours} 小时，请重新登录。",
        "You signed in more than {hours} hours ago. Sign in again.",
    ),
    "si_setup": (
        "登录设置有误：请管理员检查 secrets.toml 中的 [sign_in] 一节。",
        "Sign-in is not set up right: an admin must check [sign_in] in secrets.toml.",
    ),
    "si_sso": ("使用单点登录（SSO）", "Sign in with single sign-on"),
    "si_sso_refused": ("单点登录未能完成：{reason}", "Single sign-on did not complete: {reason}"),
    "si_demo_title": ("演示用户", "Demo users"),
    "si_demo_hint": (
        "这是演示数据仓库，以下用户仍使用公开的初始密码。正式使用前请在“系统管理”中修改密码。",
        "This is the demo warehouse and these users still have their published passwords. "
        "Change them on the Admin page before real use.",
    ),
    "si_no_users": (
        "此数据仓库没有用户：任何人都有全部权限。请在“系统管理”中添加管理员。",
        "This warehouse has no users, so anyone has full access. Add an admin on the Admin page.",
    ),
    "ad_email": ("电子邮箱", "E-mail"),
    "ad_email_help": (
        "单点登录时用此邮箱识别该用户。",
        "Single sign-on recognises this user by this e-mail.",
    ),
    "ad_col_locked": ("锁定至", "Locked until"),
    "ad_scope_all": ("全部（管理员）", "everything (admin)"),
    "ad_col_last_sign_in": ("最近登录", "Last sign-in"),
    "ad_locked": (
        "{name} 因多次登录失败被锁定至 {until}。",
        "{name} is locked out after failed sign-ins until {until}.",
    ),
    "ad_unlock": ("解除锁定", "Unlock"),
    "ad_unlocked": ("已解除 {name} 的锁定。", "{name} is unlocked."),
    "ad_sessions": (
        "{name} 有 {n} 个有效登录，最近活动于 {last}。",
        "{name} has {n} active session(s), last active at {last}.",
    ),
    "ad_no_sessions": ("{name} 当前没有有效登录。", "{name} has no active session."),
    "ad_end_sessions": ("结束其全部登录", "Sign out everywhere"),
    "ad_sessions_ended": ("已结束 {name} 的 {n} 个登录。", "Ended {n} session(s) of {name}."),
    "nav_library": ("指标库", "KPI library"),
    "lib_title": ("指标库", "KPI library"),
    "lib_not_allowed": (
        "只有管理员可以维护指标库和考核表；如需修改，请联系管理员。",
        "Only admins edit the KPI library and scorecards; ask one if a definition needs a change.",
    ),
    "lib_intro": (
        "指标定义（指标库的全部字段）、公式检查和 SMART 提示；把指标放到组织的考核表上；"
        "导出或导入整个指标体系工作簿。",
        "KPI definitions (every column of the kpis sheet) with the formula checked and SMART "
        "warnings; place a KPI on a unit's scorecard; export or import the whole KPI system.",
    ),
    "lib_unexpected": ("出现意外错误：{error}", "Something unexpected went wrong: {error}"),
    "lib_pick": ("指标", "KPI"),
    "lib_pick_new": ("＋ 新建指标", "＋ New KPI"),
    "lib_tab_list": ("指标列表", "Library"),
    "lib_tab_edit": ("编辑指标", "Edit KPI"),
    "lib_tab_place": ("放入考核表", "Place on a scorecard"),
    "lib_tab_transfer": ("导出 / 导入", "Export / import"),
    "lib_filter": ("筛选", "Filter"),
    "lib_count": ("显示 {n} / {total} 个指标", "{n} of {total} KPIs"),
    "lib_col_code": ("编码", "Code"),
    "lib_col_name": ("名称", "Name"),
    "lib_col_name_other": ("英文名称", "Chinese name"),
    "lib_col_unit": ("单位", "Unit"),
    "lib_col_direction": ("方向", "Direction"),
    "lib_col_aggregation": ("汇总方式", "Aggregation"),
    "lib_col_formula": ("公式 / 比率", "Formula / ratio"),
    "lib_col_owner": ("责任人", "Owner"),
    "lib_col_warnings": ("SMART 提示", "SMART warnings"),
    "lib_warnings_help": (
        "缺少当年目标、数据来源、责任人、单位或口径，或名称含糊时的提示数量",
        "How many SMART warnings: no target this year, no data source, owner, unit or caliber, "
        "or a vague name",
    ),
    "lib_dir_up": ("越高越好", "Higher is better"),
    "lib_dir_down": ("越低越好", "Lower is better"),
    "lib_dir_range": ("区间内为好", "Within a range"),
    "lib_agg_sum": ("求和", "Sum"),
    "lib_agg_avg": ("平均", "Average"),
    "lib_agg_last": ("期末值", "Last value"),
    "lib_agg_ratio": ("比率", "Ratio"),
    "lib_agg_formula": ("公式", "Formula"),
    "lib_persp_financial": ("财务", "Financial"),
    "lib_persp_customer": ("客户", "Customer"),
    "lib_persp_process": ("内部流程", "Internal process"),
    "lib_persp_learning": ("学习与成长", "Learning & growth"),
    "lib_kind_result": ("结果指标", "Result"),
    "lib_kind_process": ("过程指标", "Process"),
    "lib_field_code": ("编码", "Code"),
    "lib_field_name_zh": ("中文名称", "Chinese name"),
    "lib_field_name_en": ("英文名称", "English name"),
    "lib_field_unit": ("单位", "Unit"),
    "lib_field_direction": ("方向", "Direction"),
    "lib_field_aggregation": ("汇总方式", "Aggregation"),
    "lib_field_numerator": ("分子指标", "Numerator KPI"),
    "lib_field_denominator": ("分母指标", "Denominator KPI"),
    "lib_field_formula": ("公式", "Formula"),
    "lib_field_perspective": ("平衡计分卡维度", "Perspective"),
    "lib_field_kind": ("指标类型", "Kind"),
    "lib_field_veto": ("否决指标", "Veto KPI"),
    "lib_field_decimals": ("小数位数", "Decimals"),
    "lib_field_caliber": ("口径", "Caliber"),
    "lib_field_source": ("数据来源", "Data source"),
    "lib_field_owner": ("责任人", "Owner"),
    "lib_field_min": ("允许最小值", "Allowed minimum"),
    "lib_field_max": ("允许最大值", "Allowed maximum"),
    "lib_new_help": (
        "填写新指标的定义，先点“检查”，再点“保存”。",
        "Fill in the new KPI's definition, Check it, then Save.",
    ),
    "lib_code_help": (
        "字母、数字、_、- 或 .，保存后不能修改",
        "Letters, digits, '_', '-' or '.'; it cannot change once saved",
    ),
    "lib_unit_help": ("例如 元、%、个、天", "e.g. 元, %, 个, 天 (days)"),
    "lib_formula_help": (
        "用指标编码和 + - × ÷ ( ) 组合同一期间的其他指标，例如 AVAIL * PERF * QUAL",
        "Combine other KPIs of the same period by their codes with + - × ÷ ( ), e.g. "
        "AVAIL * PERF * QUAL",
    ),
    "lib_formula_ok": ("公式正确。", "The formula is fine."),
    "lib_veto_help": (
        "否决指标为红灯时，上级得分为 0",
        "When a veto KPI is red, its parent's score is 0",
    ),
    "lib_caliber_help": (
        "说明统计什么、怎么统计（口径）",
        "Say exactly what is counted and how (口径)",
    ),
    "lib_check": ("检查", "Check"),
    "lib_save": ("保存", "Save"),
    "lib_refused": (
        "有 {n} 个问题，未保存：",
        "{n} problem(s); nothing was saved:",
    ),
    "lib_check_ok": (
        "检查通过，可以保存（{changes}）。",
        "No problems; ready to save ({changes}).",
    ),
    "lib_saved": ("指标 {code} 已保存（{changes}）。", "KPI {code} saved ({changes})."),
    "lib_no_change": ("没有变化", "no change"),
    "lib_sum_kpis_new": ("新增指标", "new KPIs"),
    "lib_sum_kpis_changed": ("修改指标", "changed KPIs"),
    "lib_sum_units_new": ("新增组织", "new units"),
    "lib_sum_units_changed": ("修改组织", "changed units"),
    "lib_sum_tree_parents_changed": ("调整的考核表/分解", "scorecards changed"),
    "lib_sum_targets_new": ("新增目标", "new targets"),
    "lib_sum_targets_changed": ("修改目标", "changed targets"),
    "lib_sum_phasing_changed": ("修改分解方案", "changed phasing profiles"),
    "lib_sum_actuals_new": ("新增实际值", "new actuals"),
    "lib_sum_actuals_changed": ("修改实际值", "changed actuals"),
    "lib_sum_actuals_unchanged": ("未变的实际值", "unchanged actuals"),
    "lib_smart": ("{code} 的 SMART 提示：", "SMART warnings for {code}:"),
    "lib_smart_ok": ("{code} 没有 SMART 提示。", "{code} has no SMART warnings."),
    "lib_place_pick_first": (
        "请先在上方选择一个已保存的指标（新指标请先保存）。",
        "Pick a saved KPI above first (save a new one first).",
    ),
    "lib_place_unit": ("组织", "Unit"),
    "lib_place_help": (
        "{unit} 考核表的指标和权重（权重合计须为 100）。保存后作为新版本自 {month} 起生效。",
        "The KPIs and weights on {unit}'s scorecard (weights must sum to 100). Saving makes a "
        "new version valid from {month}.",
    ),
    "lib_place_add": ("把 {code} 加入 {unit} 的考核表", "Add {code} to {unit}'s scorecard"),
    "lib_place_already": ("{code} 已在 {unit} 的考核表上。", "{code} is on {unit}'s scorecard."),
    "lib_col_node": ("节点", "Node"),
    "lib_node_help": (
        "写作 组织/指标（指标节点，如 SALES/REV）或 组织（下级组织的考核表）",
        "Written UNIT/KPI (a KPI node, e.g. SALES/REV) or UNIT (a unit's scorecard)",
    ),
    "lib_sum_ok": ("权重合计 {total}。", "Weights sum to {total}."),
    "lib_sum_bad": (
        "权重合计 {total}，须为 100。",
        "Weights sum to {total} — they must sum to 100.",
    ),
    "lib_place_save": ("保存考核表", "Save scorecard"),
    "lib_place_refused": ("考核表未保存：", "The scorecard was not saved:"),
    "lib_place_saved": ("{unit} 的考核表已保存。", "{unit}'s scorecard saved."),
    "lib_export": ("导出指标体系", "Export the KPI system"),
    "lib_export_help": (
        "整个指标体系（指标库、组织、指标树、目标、实际值）导出为一个工作簿，可以再导入。",
        "The whole KPI system (KPIs, units, tree, targets, actuals) as one workbook that can "
        "be imported again.",
    ),
    "lib_export_lang": ("工作表名称", "Sheet names"),
    "lib_export_button": ("下载指标体系工作簿", "Download the KPI-system workbook"),
    "lib_import": ("导入指标体系", "Import a KPI system"),
    "lib_import_help": (
        "上传指标体系工作簿：先检查，列出所有问题；没有问题时再导入。",
        "Upload a KPI-system workbook: it is checked first and every problem listed; import "
        "it when there are none.",
    ),
    "lib_import_file": ("指标体系工作簿", "KPI-system workbook"),
    "lib_import_refused": (
        "有 {n} 个问题，不能导入（未写入任何内容）：",
        "{n} problem(s); the workbook cannot be imported (nothing was written):",
    ),
    "lib_import_check": (
        "{name} 检查通过。导入将带来以下变化：",
        "{name} has no problems. Importing it changes:",
    ),
    "lib_import_button": ("导入", "Import"),
    "lib_imported": ("{name} 已导入（{changes}）。", "{name} imported ({changes})."),
    "lib_col_sheet": ("工作表", "Sheet"),
    "lib_col_row": ("行", "Row"),
    "lib_col_column": ("列", "Column"),
    "lib_col_problem": ("问题", "Problem"),
    "lib_col_change": ("变化", "Change"),
    "lib_col_count": ("数量", "Count"),
    "lib_row": ("第 {row} 行", "row {row}"),
    # complete, partial and published months (kpi_core.completeness)
    "cm_complete": ("已完整", "complete"),
    "cm_published": ("已发布", "published"),
    "cm_partial": ("未完整 · 已到 {n}/{total} 项", "partial · {n} of {total} values"),
    "cm_missing": ("缺：{units}", "missing: {units}"),
    "cm_more": ("等 {n} 个", "and {n} more"),
    "cm_shown_partial": (
        "{month}{state}，汇总未含缺失的数据。{missing}",
        "{month} is {state}; its roll-ups leave out what is missing. {missing}",
    ),
    "cm_newer_partial": (
        "{month}尚未完整（{state}），默认显示最近完整或已发布的 {shown}；可在“期间”中选择 {month}。",
        "{month} is not complete yet ({state}); showing {shown}, the latest complete or "
        "published month. Pick {month} under Period to see it.",
    ),
    "cm_period_partial": (
        "本期间含未完整的月份：{months}。",
        "This period includes months not complete yet: {months}.",
    ),
    "cm_card_missing": ("未完整：缺 {units}", "partial: nothing yet from {units}"),
    "cm_option_partial": ("含未完整月份", "includes a partial month"),
    "fr_up_to_date": ("● 已更新 · {month}", "● Up to date · {month}"),
    "fr_due": ("○ 待报 · {month}（{date} 前）", "○ Due · {month} (by {date})"),
    "fr_partial": (
        "◐ 未完整 · {month} 已到 {n}/{total} 项",
        "◐ Partial · {month}: {n} of {total} values",
    ),
    "fr_overdue": (
        "■ 逾期 · {month}未导入（月末后 {days} 天）",
        "■ Overdue · {month} not loaded ({days} d)",
    ),
    "fr_own": ("{unit}（本级）", "{unit} (own KPIs)"),
    "fr_help": (
        "应到的是上个月的数据，月末后宽限 {days} 天（预警规则“数据未更新”的设置）。已更新：应到月份已完整或已发布；"
        "待报：上个月仍在宽限期内、尚未完整；未完整：已过宽限期，只到了部分数据；逾期：已过宽限期，一项都没有。",
        "Expected is last month's data, {days} days of grace after the month ends (the stale-data "
        "rule's setting). Up to date: the expected month is complete or published; due: last "
        "month is within its grace days and not complete; partial: past the grace days with some "
        "values in; overdue: past the grace days with none.",
    ),
    "bs_vs_month": ("较{month} {delta}", "{delta} vs {month}"),
    "bs_fr_own": ("本级：{unit}", "Own KPIs: {unit}"),
    "bs_newer": ("{month} 未完整 {n}/{total}", "{month} partial {n}/{total}"),
    "bs_fr_up_to_date": ("● 已更新", "● Up to date"),
    "bs_fr_due": ("○ 待报 · {date}前", "○ Due by {date}"),
    "bs_fr_partial": ("◐ 未完整 {n}/{total}", "◐ Partial {n}/{total}"),
    "bs_fr_overdue": ("■ 逾期 {days} 天", "■ Overdue {days} d"),
    "al_stale_partial": (
        "{unit}{period}的实际数据只到了 {n}/{total} 项（月末后已 {days} 天），缺：{units}。",
        "{unit} has only {n} of {total} values for {period}, {days} days after the month ended; "
        "missing: {units}.",
    ),
    "up_publish_help": (
        "发布表示某组织（含下级）这个月的数据已定稿：即使仍有缺失也视为最终数据。看板、总览和大屏默认显示最近已完整或已发布的月份；关账的月份同样视为已发布。",
        "Publishing says a unit's month (with everything below it) is final, even where values "
        "are missing. Boards, the Overview and the wall show the latest complete or published "
        "month by default; a closed month counts as published too.",
    ),
    "up_publish_title": ("发布月份", "Publish a month"),
    "up_close_title": ("关账", "Close a month"),
    "up_publish_unit": ("组织", "Unit"),
    "up_publish_state": ("{unit} {month}：{state}", "{month} of {unit}: {state}"),
    "up_publish": ("发布", "Publish"),
    "up_unpublish": ("撤销发布", "Withdraw publication"),
    "up_published_done": ("{unit} {month}已发布。", "{month} of {unit} is published."),
    "up_unpublished_done": (
        "{unit} {month}已撤销发布。",
        "{month} of {unit} is no longer published.",
    ),
    "up_published_list": ("已发布：{items}", "Published: {items}"),
    "up_published_none": ("目前没有已发布的月份。", "No month is published."),
    "tw_entity_month_publish": ("发布月份", "Published months"),
    # --- r21a ---
    "na_title": ("需要关注", "Needs attention"),
    "na_red": (
        "{kpi} 红灯 — {unit} {score}（基准 {baseline}）",
        "{kpi} red — {unit} {score} (baseline {baseline})",
    ),
    "na_at_risk": (
        "{kpi} 预计全年未达标 — {unit} 预测 {forecast}，{goal}",
        "{kpi} at risk — {unit} forecast {forecast}, {goal}",
    ),
    "na_goal": ("目标 {target}", "target {target}"),
    "na_band": ("区间 {low}–{high}", "band {low}–{high}"),
    "na_cause": (" · 主因：{child} {status} {score}", " · cause: {child} {status} {score}"),
    "na_green": (
        "全部正常：本组织及下级没有红灯，也没有预计全年未达标的指标。",
        "All clear: no red and no at-risk KPI in this unit or below it.",
    ),
    "na_more": ("另有 {n} 项", "{n} more"),
    "na_summary": ("{red} 个红灯 · {risk} 个预计未达标", "{red} red · {risk} at risk"),
    "na_summary_red": ("{red} 个红灯", "{red} red"),
    "na_summary_risk": ("{risk} 个预计未达标", "{risk} at risk"),
    "dt_nav": ("指标详情", "KPI detail"),
    "dt_title": ("指标详情", "KPI detail"),
    "dt_pick": ("选择一个指标", "Choose a KPI"),
    "dt_pick_help": (
        "看板、总览和指标树上的红灯、预警与矩阵格子都会直接打开这里。",
        "Red items, alerts and matrix cells on the Board, Overview and tree open this page.",
    ),
    "dt_up": ("上级：{node}", "Up: {node}"),
    "dt_trend": ("趋势与目标线", "Trend and levels"),
    "dt_contributors": ("构成：下级 权重 × 得分", "Contributors: weight × score"),
    "dt_no_children": (
        "该指标没有下级构成，得分来自自身数据。",
        "No contributors: the score is the KPI's own.",
    ),
    "dt_alerts": ("预警（{n}）", "Alerts ({n})"),
    "dt_no_alerts": ("没有未关闭的预警。", "No alert is open."),
    "dt_to_alerts": ("到预警页处理", "Handle on the Alerts page"),
    "dt_batches": ("数据来源批次", "Source batches"),
    "dt_no_batches": ("本期没有导入的数据。", "No values were loaded for this period."),
    "dt_batch": ("批次", "Batch"),
    "dt_source": ("来源", "Source"),
    "dt_loaded_by": ("导入人", "Loaded by"),
    "dt_loaded_at": ("导入时间", "Loaded at"),
    "dt_values": ("数值个数", "Values"),
    "dt_open": ("详情", "Details"),
    "dt_children_notes": ("下级的点评与行动：", "Comments and actions below:"),
    "tr_open_detail": ("打开该指标的详情", "Open this KPI's detail"),
    "ov_click_row": ("点击行首的方框，打开该指标的详情。", "Tick a row to open that KPI's detail."),
    "dt_refused": (
        "无法打开此链接：它指向的组织不存在，或不在您的权限范围内。",
        "This link cannot be opened: its unit does not exist or is outside your scope.",
    ),
    "rv_by_unit": ("按组织：{units}", "By unit: {units}"),
    "rv_unit_count": ("{unit} {n} 条", "{unit} {n}"),
    "rv_unit_open": ("（{open} 项行动未完成）", " ({open} open)"),
    "dt_card_alerts": ("{n} 条预警 · 详情", "{n} alerts · details"),
    "dt_card_alert": ("1 条预警 · 详情", "1 alert · details"),
    # --- t19 ---
    "card_change": ("{vs} · {word}", "{vs} · {word}"),
    "card_better": ("改善", "better"),
    "card_worse": ("变差", "worse"),
    "lib_owner_help": (
        "写用户名、显示名或姓名（可带职务，如“王磊（销售总监）”）即关联到该用户，各处显示其显示名；没有账号的人照写即可。",
        "A user id, display name or name (a role in brackets may follow, as in "
        '"Wang Lei (Sales)") links the user, shown everywhere by display name; somebody '
        "without an account is kept as typed.",
    ),
    "lib_owner_user": ("关联用户：{name}（{user}）", "Linked to the user {name} ({user})"),
    "lib_owner_text": ("没有对应账号：按输入显示", "No account matches: shown as typed"),
    "tr_partial_month": ("未完整月份", "Partial month"),
    "tr_partial_lacks": (
        "{state}（本指标缺：{units}）",
        "{state} (this KPI: nothing yet from {units})",
    ),
    "tr_partial_note": (
        "所选范围内有未完整的月份：{months}。已有的数值是真实数据，但汇总未含缺失部分；图中以圆圈标出。",
        "Months not complete yet in this range: {months}. The values in are real data; roll-ups "
        "leave out what is missing. The chart rings them.",
    ),
    "rv_owner_help": (
        "选择一位用户，或输入没有账号的人的姓名。",
        "Pick a user, or type the name of somebody without an account.",
    ),
    # --- x20a ---
    "up_bindings": ("指标对应关系", "KPI bindings"),
    "up_bindings_caption": (
        "文件中每一列（或每个指标名称）对应到哪个指标，以及是如何对应的。导入前请逐项核对：有问题的对应不会导入。",
        "Which KPI each column (or KPI text) of the file feeds, and how that was decided. Check "
        "them before loading: a binding with a problem loads nothing.",
    ),
    "up_bindings_problems": (
        "{n} 项对应关系有问题，请看下表和检查结果。",
        "{n} binding(s) have a problem: see the table and the report.",
    ),
    "up_bind_col_place": ("位置", "Place"),
    "up_bind_col_text": ("文件中的写法", "In the file"),
    "up_bind_col_kpi": ("对应指标", "KPI"),
    "up_bind_col_how": ("对应方式", "Matched by"),
    "up_bind_col_units": ("组织", "Units"),
    "up_bind_col_values": ("数值个数", "Values"),
    "up_bind_col_status": ("状态", "Status"),
    "up_bind_how_code": ("指标编码", "code"),
    "up_bind_how_name": ("指标名称", "name"),
    "up_bind_how_profile": ("映射方案", "profile"),
    "up_bind_how_source": ("数据源", "source"),
    "up_bind_how_": ("—", "—"),
    "up_bind_ok": ("✔ 正常", "✔ OK"),
    "up_bind_unknown": ("✖ 没有此编码或名称的指标", "✖ no KPI has this code or name"),
    "up_bind_ambiguous": ("? 多个指标同名，请指明", "? several KPIs have this name: say which"),
    "up_bind_not on tree": ("✖ 不在该组织的指标树上", "✖ not on the unit's tree"),
    "up_bind_formula": ("✖ 由公式计算，不能导入", "✖ computed by its formula, not loaded"),
    "up_bind_ask": (
        "请回答：以下各列对应哪个指标？选择后文件会重新检查。",
        "Your answer: which KPI does each of these columns hold? The files are checked again "
        "once you choose.",
    ),
    "up_bind_choose": ("{place}：“{text}”", "{place}: '{text}'"),
    "up_bind_placeholder": ("请选择指标", "Choose the KPI"),
    "up_bind_how_analyst": ("您的选择", "your choice"),
    "up_bind_no unit": ("✖ 数值没有可识别的组织", "✖ no known unit for its values"),
    # --- x20b ---
    "up_pf_date_format": ("日期格式", "Date format"),
    "up_pf_date_format_help": (
        "文本日期如何读取。ISO 日期（2019-01-20）总是按 ISO 读取。“自动识别”只在每个值只适合一种读法时"
        "使用该读法，两种读法都成立时会请您选择；也可输入格式，例如 %d/%m/%y。",
        "How text dates read. ISO dates (2019-01-20) always read as ISO. 'Detect' uses a reading "
        "only when it is the one every value fits, and asks when both fit; or type a pattern "
        "such as %d/%m/%y.",
    ),
    "up_pf_date_": ("自动识别（有歧义时询问）", "Detect (ask when ambiguous)"),
    "up_pf_date_dmy": ("日/月/年（dmy）", "day/month/year (dmy)"),
    "up_pf_date_mdy": ("月/日/年（mdy）", "month/day/year (mdy)"),
    "up_pf_date_ymd": ("年/月/日（ymd）", "year/month/day (ymd)"),
    # --- r21b ---
    "up_pick_finding": (
        "点选一行，在表格下方查看该问题的完整说明和处理方法。",
        "Pick a row to read the problem and what to do in full below the table.",
    ),
    "up_detail_row": ("第 {row} 行", "row {row}"),
    "up_detail_column": ("{column} 列", "column {column}"),
    "tree_outline_legend": (
        "● 绿灯 ▲ 黄灯 ■ 红灯 ○ 无数据 · 粗体 = 考核表 · 左边框：状态颜色，深红 = 被否决，蓝色 = 当前节点",
        "● green ▲ amber ■ red ○ no data · bold = scorecard · left edge: the light's colour, dark "
        "red = vetoed, blue = selected",
    ),
    "tw_row_form": ("逐行修改（窄屏）", "Edit one row (narrow screens)"),
    "tw_row_pick": ("行", "Row"),
    "tw_row_apply": ("写入表格", "Put into the grid"),
    "tw_row_not_a_number": ("“{text}”不是数字", "“{text}” is not a number"),
    "bs_matrix_none": ("不考核此指标", "not this unit's KPI"),
    "bs_matrix_own": ("本级", "Own KPIs"),
    "bs_forecast_miss": ("预测未达标", "Forecast miss"),
    "up_files_zone": (
        "拖放区里的英文是 Streamlit 自带的文字：把文件拖到框里，或点 “Upload” 选择文件；"
        "每个文件不超过 {mb} MB。",
        "The drop zone's words are Streamlit's own: drop files on it or press “Upload”; "
        "up to {mb} MB per file.",
    ),
    # --- x20c ---
    "def_open": ("打开 TOML 文件", "Open a TOML file"),
    "def_open_help_profile": (
        "用 python -m kpi_core profile export 导出、或在此页下载的方案文件。检查无误后，"
        "下面的编辑器从文件中的设置开始；保存后才生效。",
        "A profile file exported with python -m kpi_core profile export, or downloaded here. "
        "Once checked, the editor below starts from the file's settings; nothing is saved "
        "until you save.",
    ),
    "def_open_help_source": (
        "用 python -m kpi_core source export 导出、或在此页下载的数据源文件。文件中的密码只是"
        "引用（${secrets.source_secrets.NAME}），不含密码本身。保存后才生效。",
        "A source file exported with python -m kpi_core source export, or downloaded here. Its "
        "password is only a reference (${secrets.source_secrets.NAME}), never the secret. "
        "Nothing is saved until you save.",
    ),
    "def_refused": ("{file} 不能使用：", "{file} cannot be used:"),
    "def_opened_profile": (
        "已读取 {file}：方案“{name}”完整无误。可以直接保存，或用示例文件在下面修改后保存。",
        "Read {file}: profile '{name}' is complete. Save it as it is, or edit it below with a "
        "sample file.",
    ),
    "def_opened_source": (
        "已读取 {file}：数据源“{name}”完整无误。下面的设置来自该文件，检查后保存。",
        "Read {file}: source '{name}' is complete. The settings below come from the file; "
        "check them, then save.",
    ),
    "def_download_saved": ("下载已保存的（TOML）", "Download as saved (TOML)"),
    "def_download_edited": ("下载当前设置（TOML）", "Download these settings (TOML)"),
    "def_save_file": ("直接保存文件中的方案", "Save the file's profile as it is"),
    "tw_tab_sheet": ("从表格导入", "From a sheet"),
    "tg_readonly": (
        "只有部门负责人和管理员可以导入目标。",
        "Only department heads and admins load targets.",
    ),
    "tg_intro": (
        '用目标映射文件（TOML，type = "targets"）读取自己的目标表：期间可以是年、季度、月或 ISO 周'
        "（2019-W15，归入其星期四所在的月份），空白可按上方填充，多个渠道编号可对应一个组织。"
        "保存为新的目标版本，与在表格中修改相同。",
        'Read your own target sheet with a target mapping file (TOML, type = "targets"): '
        "periods may be years, quarters, months or ISO weeks (2019-W15, in the month of its "
        "Thursday), blanks may mean the value above, many channel ids may be one unit. Saved "
        "as new target versions, like an edit in the grid.",
    ),
    "tg_sheet": ("目标表格", "Target sheet"),
    "tg_mapping": ("目标映射文件（TOML）", "Target mapping (TOML)"),
    "tg_mapping_help": (
        "格式见 README“Targets from an analyst's own sheet”；也可用命令 python -m kpi_core targets。",
        "The format is in the README (Targets from an analyst's own sheet); the command "
        "python -m kpi_core targets does the same.",
    ),
    "tg_nothing": (
        "表格中的目标与已保存的一致，没有需要保存的改动。",
        "The sheet's targets are those already saved: nothing to change.",
    ),
    "tg_preview": ("将保存 {n} 个新的目标版本：", "{n} new target versions would be saved:"),
    "tg_period": ("期间", "Period"),
    "tg_reason_hint": ("例如：2027 年渠道目标", "e.g. 2027 channel targets"),
    "tg_not_saved": ("未保存任何内容：", "Nothing was saved:"),
    "tg_saved": ("已从 {file} 保存 {n} 个目标版本。", "Saved {n} target versions from {file}."),
    # --- w21 ---
    "push_link_detail": ("查看详情", "Open the details"),
    "push_link_board": ("查看看板", "Open the board"),
    "push_links_on": (
        "预警消息附带打开应用的链接：{url}",
        "Alerts carry links that open the app at {url}.",
    ),
    "push_links_off": (
        # The address last: a markdown autolink would take a full-width bracket after it along.
        "预警消息暂不附带链接：在环境变量 {env} 或 .streamlit/secrets.toml 的 [push] app_url "
        "中写入用户打开应用的地址即可启用，例如 {example}",
        "Links in alerts are off: to turn them on, set the address users open the app at (e.g. "
        "{example}) in the environment variable {env} or as [push] app_url in "
        ".streamlit/secrets.toml.",
    ),
    "push_links_wrong": (
        "预警消息暂不附带链接：应用地址设置有误（{problem}）。请修改环境变量 {env} 或 "
        "[push] app_url。",
        "Links in alerts are off: the app's address is set wrong ({problem}). Fix {env} or "
        "[push] app_url.",
    ),
    # --- cap ---
    "na_not_listed": (
        "另有 {n} 项影响较小，未在此列出。",
        "{n} more that cost fewer points are not listed here.",
    ),
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


def month_state(state: str, loaded: int, expected: int, lang: str) -> str:
    """A month's state as a page or the wall shows it: "partial · 7 of 52 values"."""
    if state in ("complete", "published"):
        return t(f"cm_{state}", lang)
    return t("cm_partial", lang, n=loaded, total=expected)


def freshness_text(f: Freshness, grace_days: int, lang: str, wall: bool = False) -> str:
    """A freshness row's state in words, led by a shape so it reads without colour; `wall`:
    the short form the big screen has room for (the month is in its own column there)."""
    month = period_label(f"{f.month:%Y-%m}", lang)
    prefix = "bs_fr_" if wall else "fr_"
    if f.state == "up_to_date":
        return t(prefix + "up_to_date", lang, month=month)
    if f.state == "due":
        end = date(f.month.year + f.month.month // 12, f.month.month % 12 + 1, 1)
        by = end + timedelta(days=grace_days - 1)  # the last day of grace
        return t(prefix + "due", lang, month=month, date=f"{by:%m-%d}" if wall else f"{by}")
    if f.state == "partial":
        return t(prefix + "partial", lang, month=month, n=f.status.loaded, total=f.status.expected)
    return t(prefix + "overdue", lang, month=month, days=f.days)


def join(items: list[str], lang: str, limit: int = 6) -> str:
    """Names in a sentence, the local way (、 or ,); past `limit`, "and N more"."""
    shown = list(items[:limit])
    if len(items) > limit:
        shown.append(t("cm_more", lang, n=len(items) - limit))
    return ("、" if lang == "zh" else ", ").join(shown)


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
