"""The intake's problems in the page's language.

The core speaks English: the command line prints its messages, logs keep them, and scripts read
`import --json`. The Upload page translates at the edge, from the text alone: a finding's message
and hint, a refused file's `FileError` ("FILE: message"), an `IntakeError`, a `ProfileError` or a
profile's `problems()`. Each row of `RULES` below is an English message written the way the core's
f-string writes it; `{name}` marks a variable part. The rows are compiled once into regular
expressions with a named group per variable part, and the Chinese template puts those parts back
exactly as they were (file and sheet names, quoted values, codes, numbers, cell references,
months). Regexes rather than message keys, so the core keeps its plain English f-strings and
needs no catalogue of its own.

Text no row matches comes back in English, unchanged; `translate` never raises. The intake tests
(tests/test_intake_files.py, tests/test_intake_layouts.py) check that every message they meet has
a row here, so a new English message without one fails a test.

To add a message: copy the core's f-string into `RULES` with each `{expression}` renamed to a
group name, and write the Chinese beside it. The group's name decides what it may match
(`GROUPS`) and how its text is carried over (`_convert`): most are copied as they are; `sub` (and
`there`) hold a nested message that is itself translated; `at` a value's place ("header B
(Sales)"), translated when a row knows it and kept as the file wrote it otherwise; `problems` is a "; "-separated list of
them; `choices` a " or "-separated list; words such as `what` are looked up in `WORDS`.
Two groups of one kind in a row take a digit: `{num}` and `{num2}`. Rows are tried in order and
the first that matches the whole text wins, so a specific row goes before a general one.
"""

from __future__ import annotations

import functools
import re

# What a group may match, by its name without trailing digits; any other name matches any text
# (as little as needed). A message with a leading group — "{n} rows; …", "{month} is closed" —
# needs a narrow one, or it would also swallow the file name in front of a FileError.
GROUPS: dict[str, str] = {
    "n": r"[\d,]+",
    "row": r"\d+",
    "line": r"\d+",
    "i": r"\d+",
    "batch": r"\d+",
    "batches": r"\d+(?:, \d+)*",
    "seconds": r"\d+",
    "size": r"[\d,.]+ [KM]B",
    "month": r"\d{4}-\d{2}",
    "months": r"\d{4}-\d{2}(?:, \d{4}-\d{2})*",
    "ref": r"\$?[A-Z]{1,3}\$?\d+",
    "range": r"[A-Z]{1,3}\d+:[A-Z]{1,3}\d+",
    "letters": r"[A-Z]{1,3}",
    "num": r"-?(?:\d+(?:\.\d*)?(?:e[+-]\d+)?|inf)|nan",  # a number written with :g
}

# Words the core puts into a message, in Chinese.
WORDS: dict[str, str] = {
    # what a value lacks (layout) or a profile's column is for (profile.apply)
    "period": "期间",
    "unit": "组织",
    "KPI": "指标",
    "date": "日期",
    "measure": "计算",
    "filter": "筛选",
    # x20b: kinds of a measure expression's values, and orders of numeric dates
    "number": "数字",
    "text": "文本",
    "true/false": "真/假值",
    "day first": "日在前",
    "month first": "月在前",
    "year first": "年在前",
    # aggregations of a profile's measure
    "sum": "求和",
    "avg": "求平均",
    "count": "计数",
    "count_distinct": "去重计数",
    # target levels (system_import's order check)
    "baseline": "基准值",
    "target": "目标值",
    "challenge": "挑战值",
    # a batch's status (one that can no longer be rolled back)
    "rolled back": "已撤销",
    # a user's role (a refusal names it), as the Admin page shows it
    "viewer": "查看者",
    "head": "部门负责人",
    "analyst": "数据分析",
    "admin": "管理员",
    # what a definition file describes (ingest/definition_file.py)
    "profile": "映射方案",
    "source": "数据源",
    "fill-down": "向下填充",
    "month": "月",
    "quarter": "季度",
    "year": "年",
}

# English as the core writes it → Chinese. `{name}` is a variable part (see the module's doc).
RULES: list[tuple[str, str]] = [
    # --- periods.py's refusal, which target_mapping.py still puts into its own English ---------
    (
        "'{text}' is not a period — write 2024 (year), 2024-Q1 (quarter) or 2024-03 (month)",
        "“{text}”不是有效的期间——请写作 2024（年）、2024-Q1（季度）或 2024-03（月）",
    ),
    # --- profile.py (and formula.py): mapping profiles ----------------------------------------
    ("write the connection URL", "请填写连接 URL"),
    ("give the profile a name", "请为方案命名"),
    ("choose the date column", "请选择日期列"),
    (
        "choose the unit column, or one unit for all rows",
        "请选择组织列，或为所有行指定一个组织",
    ),
    (
        "add at least one measure (a KPI and how to compute it)",
        "请至少添加一项指标计算（指标及其计算方式）",
    ),
    ("measure {i}: {sub}", "第 {i} 项指标计算：{sub}"),
    ("aggregation must be one of {list}", "汇总方式必须是以下之一：{list}"),
    ("choose the column to {agg}", "请选择{agg}所用的列"),
    ("an expression can only be summed or averaged", "表达式只能求和或求平均"),
    ("filter operator must be one of {list}", "筛选条件必须是以下之一：{list}"),
    ("the header row is counted from 1", "标题行从 1 开始计数"),
    (
        "'{text}' is not allowed in a formula — use + - × ÷ ( )",
        "公式中不能使用“{text}”——请使用 + - × ÷ ( )",
    ),
    ("the formula is empty", "公式为空"),
    ("the formula ends too early — an operand is missing", "公式不完整——缺少运算数"),
    ("a '(' is not closed", "有“(”没有闭合"),
    ("unexpected '{text}'", "公式中出现了多余的“{text}”"),
    (
        "Only analysts, department heads and admins save mapping profiles.",
        "只有数据分析、部门负责人和管理员可以保存映射方案。",
    ),
    ("The profile is not complete: {problems}.", "方案还不完整：{problems}。"),
    ("Profile '{name}' is not complete: {problems}", "方案“{name}”还不完整：{problems}"),
    (
        "There is no mapping profile '{name}'. Saved profiles: {list}.",
        "没有名为“{name}”的映射方案。已保存的方案：{list}。",
    ),
    (
        "There is no mapping profile '{name}'. None is saved yet.",
        "没有名为“{name}”的映射方案。目前还没有保存任何方案。",
    ),
    (
        "Profile '{name}' reads sheet '{sheet}', which this file does not have (it has {list}). "
        "Choose the sheet in the profile, or upload the right file.",
        "方案“{name}”读取工作表“{sheet}”，但该文件中没有这个工作表（文件中有：{list}）。"
        "请在方案中选择工作表，或上传正确的文件。",
    ),
    (
        "Sheet '{sheet}' has {n} rows; the header row {row} is below them.",
        "工作表“{sheet}”只有 {n} 行，标题行（第 {row} 行）超出了范围。",
    ),
    (
        "the {what} column '{column}' is not in header row {row}",
        "第 {row} 行的标题中没有{what}列“{column}”",
    ),
    ("the header has: {list}", "标题行中有：{list}"),
    ("'{text}' is not a date", "“{text}”不是日期"),
    ("write a date such as 2024-03-15", "请填写日期，例如 2024-03-15"),
    (
        "fix the cell, or add a filter that leaves the row out",
        "请修正该单元格，或添加筛选条件排除该行",
    ),
    # --- profile.py still puts these into its own English problems (a date format, a measure's
    # expression); they go once it hands on the coded messages (dates, expression: dd_*, ex_*) ---
    ("measure {i} ({kpi}): {sub}", "第 {i} 项指标计算（{kpi}）：{sub}"),
    ("the filter on '{column}': {sub}", "“{column}”的筛选条件：{sub}"),
    ("the column '{column}' is not in the file", "文件中没有“{column}”列"),
    ("the column '{column}' is not in the query's result", "查询结果中没有“{column}”列"),
    (
        "an expression can be summed, averaged or counted, not counted distinct",
        "表达式可以求和、求平均或计数，不能去重计数",
    ),
    (
        "'{text}' is a date; subtract another date to count days",
        "“{text}”是日期；减去另一个日期可得天数",
    ),
    (
        "the date format '{text}' is neither dmy, mdy nor ymd nor a pattern such as %d/%m/%y",
        "日期格式“{text}”既不是 dmy、mdy、ymd，也不是 %d/%m/%y 这样的格式",
    ),
    ("the date format '{text}' cannot be used ({why})", "日期格式“{text}”无法使用（{why}）"),
    (
        "the date format '{text}' needs a day (%d) and a month (%m, %b or %B)",
        "日期格式“{text}”需要包含日（%d）和月（%m、%b 或 %B）",
    ),
    (
        "write a date such as 2024-03-15, or set the profile's date format",
        "请填写日期，例如 2024-03-15，或设置方案的日期格式",
    ),
    (
        "set the date format of the source's mapping, or fix the query so the column holds "
        "dates (the row is the query result's)",
        "请设置数据源映射的日期格式，或修改查询使该列为日期（行号为查询结果中的行）",
    ),
    (
        "cast the column to a number in the query, or filter those rows out (the row is the "
        "query result's)",
        "请在查询中把该列转换为数字，或筛除这些行（行号为查询结果中的行）",
    ),
    ("a text in quotes is not closed: {text}", "引号中的文本没有闭合：{text}"),
    ("a '[' is not closed: {text}", "有“[”没有闭合：{text}"),
    ("'[]' names no column", "“[]”中没有列名"),
    ("the expression is empty", "表达式为空"),
    (
        "the expression '{text}' cannot be read — it ends too early, or a value, an operator or "
        "a ')' is missing or extra",
        "无法读取表达式“{text}”——表达式不完整，或缺少/多出值、运算符或“)”",
    ),
    ("'{text}' is not allowed — write [column name]", "不能使用“{text}”——请写作 [列名]"),
    (
        "'{text}' is not allowed in a measure — use columns in [ ], numbers, 'text', + - * /, "
        "comparisons (= <> < <= > >=), AND, OR, NOT, IF(condition, a, b), ABS(x), IS NULL",
        "指标计算中不能使用“{text}”——请使用 [ ] 中的列、数字、'文本'、+ - * /、比较（= <> < <= > >=）、"
        "AND、OR、NOT、IF(条件, a, b)、ABS(x)、IS NULL",
    ),
    (
        "in '{expr}': '{text}' needs a {what} where it has a {what2}",
        "在“{expr}”中：“{text}”此处需要{what}，但得到的是{what2}",
    ),
    (
        "in '{expr}': '{text}' mixes a {what} and a {what2}",
        "在“{expr}”中：“{text}”混用了{what}和{what2}",
    ),
    (
        "in '{expr}': '{text}' cannot add two dates; subtract them to count the days",
        "在“{expr}”中：“{text}”不能把两个日期相加；相减可得天数",
    ),
    (
        "in '{expr}': '{text}' compares a date with '{value}', which is not a date",
        "在“{expr}”中：“{text}”把日期与“{value}”比较，但它不是日期",
    ),
    ("in '{expr}': '{text}' orders true/false values", "在“{expr}”中：“{text}”对真/假值排序"),
    (
        "in '{expr}': '{text}' is not allowed in a measure",
        "在“{expr}”中：指标计算中不能使用“{text}”",
    ),
    # --- sources.py: database sources and exports (the Sources page) --------------------------
    # A `${PG_PASSWORD}` in the English is a group of that name that matches itself; the Chinese
    # writes it the same way, and `${{…}}` for a literal that holds dots.
    ("give the source a name", "请为数据源命名"),
    ("the row limit and the time limit must be positive", "行数上限和时间上限必须大于 0"),
    (
        "'{url}' is not a database URL — write it like "
        "postgresql+psycopg://user:${secrets.source_secrets.erp}@host:5432/db or "
        "sqlite:////path/to/file.db",
        "“{url}”不是数据库连接地址——请写成 "
        "postgresql+psycopg://user:${{secrets.source_secrets.erp}}@host:5432/db "
        "或 sqlite:////path/to/file.db 这样的形式",
    ),
    (
        "the URL holds a password — it would be stored in plain text. Put it in the "
        "[source_secrets] section of .streamlit/secrets.toml or in an environment variable named "
        "KPI_SOURCE_SECRET_…, and write user:${secrets.source_secrets.erp}@host or "
        "user:${KPI_SOURCE_SECRET_ERP}@host in its place",
        "连接地址中含有密码——它会以明文保存。请把密码放在 .streamlit/secrets.toml 的 "
        "[source_secrets] 段，或名为 KPI_SOURCE_SECRET_… 的环境变量中，并在地址中改写为 "
        "user:${{secrets.source_secrets.erp}}@host 或 user:${KPI_SOURCE_SECRET_ERP}@host",
    ),
    (
        "a file source's path cannot hold a reference (${…}) — write the path itself",
        "文件数据源的路径中不能写引用（${{…}}）——请直接写出路径",
    ),
    (
        "the URL's option '{key}' is not allowed for a source (it could read files or change "
        "the session) — the options a source may set are {list}",
        "数据源不允许使用连接地址选项“{key}”（它可能读取文件或改变会话）——数据源可以设置的选项有 "
        "{list}",
    ),
    (
        "a reference (${…}) may stand only for the password "
        "(user:${secrets.source_secrets.erp}@host) — write the rest of the URL as it is",
        "引用（${{…}}）只能用于密码（user:${{secrets.source_secrets.erp}}@host）——"
        "连接地址的其余部分请直接写出",
    ),
    (
        "{reference} cannot be used by a source: it may read only keys of the [source_secrets] "
        "section of .streamlit/secrets.toml (${secrets.source_secrets.NAME}) or environment "
        "variables named KPI_SOURCE_SECRET_…",
        "数据源不能使用 {reference}：它只能读取 .streamlit/secrets.toml 中 [source_secrets] 段的键"
        "（${{secrets.source_secrets.NAME}}）或名为 KPI_SOURCE_SECRET_… 的环境变量",
    ),
    (
        "{reference} cannot be used by a push channel: it may read only keys of the [push] section "
        "of .streamlit/secrets.toml (${secrets.push.NAME}) or environment variables named "
        "KPI_PUSH_SECRET_…",
        "推送渠道不能使用 {reference}：它只能读取 .streamlit/secrets.toml 中 [push] 段的键"
        "（${{secrets.push.NAME}}）或名为 KPI_PUSH_SECRET_… 的环境变量",
    ),
    (
        "write the database server's host name in the URL (…@host:5432/db)",
        "请在连接地址中写出数据库服务器的主机名（…@host:5432/db）",
    ),
    ("write the file's full path (e.g. {path})", "请写出文件的完整路径（例如 {path}）"),
    (
        "the folder of {path} also holds the warehouse or the secrets file, so sources may not "
        "read it — give exports a folder of their own (e.g. data/exports) in [sources] "
        "file_dirs of .streamlit/secrets.toml or in KPI_SOURCE_DIRS",
        "{path} 所在的文件夹中还有数据仓库或密钥文件，数据源不能读取它——请在 "
        ".streamlit/secrets.toml 的 [sources] file_dirs 或 KPI_SOURCE_DIRS 中为导出文件设一个"
        "单独的文件夹（例如 data/exports）",
    ),
    (
        "the file {path} is outside the folders sources may read ({dirs}) — put the export "
        "there, or ask an admin to add its folder to [sources] file_dirs in "
        ".streamlit/secrets.toml (or KPI_SOURCE_DIRS)",
        "文件 {path} 不在数据源可以读取的文件夹中（{dirs}）——请把导出文件放到那里，或请管理员"
        "把它所在的文件夹加入 .streamlit/secrets.toml 的 [sources] file_dirs（或 "
        "KPI_SOURCE_DIRS）",
    ),
    (
        "the file {path} is a DuckDB database, not an export",
        "文件 {path} 是 DuckDB 数据库，不是导出文件",
    ),
    ("the query cannot be read as one SELECT: {error}", "无法把查询读作一条 SELECT：{error}"),
    ("{key} is not set in .streamlit/secrets.toml", "{key} 未在 .streamlit/secrets.toml 中设置"),
    ("the environment variable {key} is not set", "环境变量 {key} 未设置"),
    ("the query is empty — write one SELECT statement", "查询为空——请写一条 SELECT 语句"),
    (
        "write one statement only: the query holds a ';' between statements",
        "只能写一条语句：查询中有“;”分隔了多条语句",
    ),
    (
        "only a SELECT (or WITH … SELECT) query can be used as a source",
        "只有 SELECT（或 WITH … SELECT）查询可以作为数据源",
    ),
    (
        "the query uses '{word}', which could change data; a source query may only read",
        "查询使用了“{word}”，可能会修改数据；数据源查询只能读取数据",
    ),
    # its two halves, when it is one of a source's problems (joined with "; ")
    ("the query uses '{word}', which could change data", "查询使用了“{word}”，可能会修改数据"),
    ("a source query may only read", "数据源查询只能读取数据"),
    (
        "a SQLite source needs a database file: sqlite:////path/to/file.db",
        "SQLite 数据源需要一个数据库文件：sqlite:////path/to/file.db",
    ),
    ("the SQLite file {path} does not exist", "SQLite 文件 {path} 不存在"),
    ("the file {path} does not exist", "文件 {path} 不存在"),
    ("Source '{name}' is not complete: {problems}", "数据源“{name}”还不完整：{problems}"),
    ("the query returned no rows", "查询没有返回任何行"),
    ("check the query and its months", "请检查查询及其月份范围"),
    (
        "the {what} column '{name}' is not in the query's result",
        "查询结果中没有{what}列“{name}”",
    ),
    ("the query returns: {list}", "查询返回的列有：{list}"),
    (
        "{n} rows have no readable date (e.g. '{text}')",
        "{n} 行没有可读取的日期（例如“{text}”）",
    ),
    (
        "fix the query so the column holds dates, or filter those rows out",
        "请修改查询使该列为日期，或筛除这些行",
    ),
    ("{n} rows are not numbers (e.g. '{text}')", "{n} 行不是数字（例如“{text}”）"),
    (
        "cast the column to a number in the query, or filter those rows out",
        "请在查询中把该列转换为数字，或筛除这些行",
    ),
    # where a pulled value came from (a finding's file and column)
    ("source '{name}' measure {i}", "数据源“{name}”第 {i} 项指标计算"),
    ("source '{name}'", "数据源“{name}”"),
    # what Test connection says of an export
    ("{name}: {kind} file, {n} bytes", "{name}：{kind} 文件，{n} 字节"),
    # --- system_import.py and library_edits.py: the KPI library page and KPI-system workbooks ---
    ("{sub} — did you mean '{code}'?", "{sub}——是否想写“{code}”？"),
    ("only an admin may change definitions", "只有管理员可以修改定义"),
    (
        "no known sheet — name sheets kpis/指标库, org_units/组织, tree/指标树, targets/目标, "
        "actuals/实际",
        "没有可识别的工作表——请将工作表命名为 kpis/指标库、org_units/组织、tree/指标树、"
        "targets/目标、actuals/实际",
    ),
    ("column '{names}' is missing — add it to the header row", "缺少“{names}”列——请在标题行中添加"),
    ("is empty — fill it in", "为空——请填写"),
    ("is empty — fill in a number", "为空——请填写数字"),
    ("is empty — use one of {list}", "为空——请使用以下之一：{list}"),
    ("'{value}' is not one of {list}", "“{value}”不是以下之一：{list}"),
    (
        "'{code}' — use letters, digits, '_', '-' or '.' only",
        "“{code}”——只能使用字母、数字、“_”、“-”或“.”",
    ),
    (
        "'{code}' is a duplicated code (first at row {row})",
        "“{code}”是重复的编码（首次出现在第 {row} 行）",
    ),
    ("a KPI needs a name (Chinese or English)", "指标需要名称（中文或英文）"),
    ("'{value}' — write true/false (是/否)", "“{value}”——请填写 是/否（true/false）"),
    (
        "a ratio KPI needs the codes of its numerator and denominator",
        "比率指标需要填写分子和分母的指标编码",
    ),
    (
        "a formula KPI needs a formula, e.g. AVAIL * PERF * QUAL",
        "公式指标需要填写公式，例如 AVAIL * PERF * QUAL",
    ),
    ("names a missing KPI '{kpi}'", "引用了不存在的指标“{kpi}”"),
    ("KPIs depend on each other in a cycle: {path}", "指标之间循环引用：{path}"),
    (
        "unknown KPI {list} — use the codes of the KPI library",
        "未知指标 {list}——请使用指标库中的指标编码",
    ),
    ("the formula goes round in a circle: {path}", "公式循环引用：{path}"),
    (
        "weights under '{node}' (rows {rows}) sum to {num} — they must sum to 100",
        "“{node}”下的权重（第 {rows} 行）合计为 {num}——合计必须为 100",
    ),
    ("{num} — a weight cannot be negative", "{num}——权重不能为负数"),
    ("'{node}' is not in unit '{unit}' or below it", "“{node}”不在组织“{unit}”或其下级中"),
    (
        "'{node}' is listed twice under '{parent}' (row {row})",
        "“{node}”在“{parent}”下重复出现（第 {row} 行）",
    ),
    (
        "the tree has a cycle: {path} — a node cannot be its own ancestor",
        "指标树中有循环：{path}——节点不能是自己的上级",
    ),
    ("'{value}' is not a date — write 2025-07-01", "“{value}”不是日期——请写作 2025-07-01"),
    (
        "{unit}/{kpi} {period} is listed twice (row {row})",
        "{unit}/{kpi} {period} 重复出现（第 {row} 行）",
    ),
    (
        "a range KPI needs low and/or high (the green band)",
        "区间指标需要填写下限和/或上限（绿灯区间）",
    ),
    (
        "{what} {value} is below {what2} {value2} for a KPI where higher is better — the {what3} "
        "must be at or above the {what4}",
        "{what} {value} 低于{what2} {value2}：越高越好的指标，{what3}不能低于{what4}",
    ),
    (
        "{what} {value} is above {what2} {value2} for a KPI where lower is better — the {what3} "
        "must be at or below the {what4}",
        "{what} {value} 高于{what2} {value2}：越低越好的指标，{what3}不能高于{what4}",
    ),
    ("high {num} is below low {num2}", "上限 {num} 低于下限 {num2}"),
    ("tolerance cannot be negative", "容差不能为负数"),
    ("is empty — every target row needs a target value", "为空——每一行目标都需要填写目标值"),
    (
        "unknown phasing '{name}' — use 'even' or a profile of the phasing sheet",
        "未知的分解方案“{name}”——请使用“even”或 phasing 工作表中的方案",
    ),
    (
        "'{kpi}' is computed by its formula — load the KPIs it is made of",
        "“{kpi}”由公式计算得出——请导入构成它的各项指标",
    ),
    ("'{value}' — actuals are monthly: write 2024-03", "“{value}”——实际值按月填写：请写作 2024-03"),
    # Targets & weights edited in place (planning raises coded messages; a conflict still says)
    (
        "{where} was changed by {user} at {when} — reload to see it; your edits are kept",
        "{where} 已被 {user} 于 {when} 修改——请重新加载查看；您的改动会被保留",
    ),
    # --- push/: what a delivery's failure says (kept in push_log as English text); push/config
    # raises coded messages.
    (
        "the address of channel '{name}' is not a web address once its references are filled "
        "in — check the value in the environment or secrets.toml",
        "渠道“{name}”的地址在填入引用的值后不是网址——请检查环境变量或 secrets.toml 中的值",
    ),
    (
        "channel '{name}' sends to a host that is not in [push] allowed_hosts of "
        ".streamlit/secrets.toml; nothing was sent",
        "渠道“{name}”要发送到的主机不在 .streamlit/secrets.toml 的 [push] allowed_hosts 中，未发送",
    ),
    (
        "the receiver redirects to another address (HTTP {code}); pushes do not follow "
        "redirects — write the final address",
        "接收方要求跳转到另一个地址（HTTP {code}）；推送不跟随跳转——请填写最终的地址",
    ),
    (
        "the header '{name}' holds a line break — remove it from the value (or from the secret "
        "it refers to)",
        "请求头“{name}”的值含有换行——请从该值（或它引用的密钥）中删除换行",
    ),
    ("HTTP {code} from the receiver: {text}", "接收方返回 HTTP {code}：{text}"),
    ("HTTP {code} from the receiver", "接收方返回 HTTP {code}"),
    (
        "no answer within {num} s — check that the address is right and reachable from this server",
        "{num} 秒内没有响应——请检查地址是否正确，以及本服务器能否访问它",
    ),
    (
        "cannot connect ({error}) — check the host and port of the address",
        "无法连接（{error}）——请检查地址中的主机和端口",
    ),
    (
        "DingTalk refused the message: errcode {code} ({error}) — check the signing secret, the "
        "keyword and the robot's IP allow-list",
        "钉钉拒收了消息：errcode {code}（{error}）——请检查加签密钥、自定义关键词和机器人的 IP 白名单",
    ),
    (
        "DingTalk refused the message: errcode {code} ({error}) — the robot's token or key is "
        "wrong; copy the address from the robot again",
        "钉钉拒收了消息：errcode {code}（{error}）——机器人的 token 或 key 不正确，请重新复制机器人的地址",
    ),
    (
        "DingTalk refused the message: errcode {code} ({error})",
        "钉钉拒收了消息：errcode {code}（{error}）",
    ),
    (
        "WeCom refused the message: errcode {code} ({error}) — the robot's token or key is "
        "wrong; copy the address from the robot again",
        "企业微信拒收了消息：errcode {code}（{error}）——机器人的 key 不正确，请重新复制机器人的地址",
    ),
    (
        "WeCom refused the message: errcode {code} ({error})",
        "企业微信拒收了消息：errcode {code}（{error}）",
    ),
    # the same without what the robot answered (the delivery log as non-admins read it)
    (
        "DingTalk refused the message: errcode {code} — check the signing secret, the keyword "
        "and the robot's IP allow-list",
        "钉钉拒收了消息：errcode {code}——请检查加签密钥、自定义关键词和机器人的 IP 白名单",
    ),
    (
        "DingTalk refused the message: errcode {code} — the robot's token or key is wrong; copy "
        "the address from the robot again",
        "钉钉拒收了消息：errcode {code}——机器人的 token 或 key 不正确，请重新复制机器人的地址",
    ),
    ("DingTalk refused the message: errcode {code}", "钉钉拒收了消息：errcode {code}"),
    (
        "WeCom refused the message: errcode {code} — the robot's token or key is wrong; copy "
        "the address from the robot again",
        "企业微信拒收了消息：errcode {code}——机器人的 key 不正确，请重新复制机器人的地址",
    ),
    ("WeCom refused the message: errcode {code}", "企业微信拒收了消息：errcode {code}"),
    (
        "the SMTP server refused the login — check the user and the password",
        "SMTP 服务器拒绝登录——请检查用户名和密码",
    ),
    ("the SMTP server refused the recipients: {list}", "SMTP 服务器拒绝了收件人：{list}"),
    (
        "the SMTP server does not support this ({error}) — check the security setting",
        "SMTP 服务器不支持该操作（{error}）——请检查加密方式",
    ),
    ("the SMTP server answered {code}: {error}", "SMTP 服务器返回 {code}：{error}"),
    ("the SMTP server answered {code}", "SMTP 服务器返回 {code}"),
    ("some recipients were refused: {list}", "部分收件人被拒绝：{list}"),
    # --- x20c: profiles and sources as TOML files (ingest/definition_file.py) ---------------
    ("choose the KPI", "请选择指标"),
    ("{file} line {line}: {sub}", "{file} 第 {line} 行：{sub}"),
    ("{file} is not valid TOML: {detail}", "{file} 不是有效的 TOML 文件：{detail}"),
    ("{file} is not a UTF-8 text file", "{file} 不是 UTF-8 编码的文本文件"),
    (
        "unknown key '{key}' in the file's top level — the keys there are {list}",
        "文件顶层有未知的键“{key}”——此处可用的键为：{list}",
    ),
    (
        "unknown key '{key}' in {place} — the keys there are {list}",
        "{place} 中有未知的键“{key}”——此处可用的键为：{list}",
    ),
    ("'{key}' is missing in the file's top level", "文件顶层缺少“{key}”"),
    ("'{key}' is missing in {place}", "{place} 中缺少“{key}”"),
    ("{place} must be a whole number", "{place} 必须是整数"),
    ("{place} must be a number", "{place} 必须是数字"),
    ("{place} must be text in quotes", "{place} 必须是带引号的文本"),
    ("{place} must be true or false", "{place} 必须是 true 或 false"),
    ("{place} must be a list", "{place} 必须是列表"),
    ("{place} must be a table", "{place} 必须是表（[…]）"),
    ("{place} must be a day (2026-03-15)", "{place} 必须是日期（2026-03-15）"),
    ("{place} must be one of {list}", "{place} 必须是以下之一：{list}"),
    (
        '\'type\' must be "profile", "source" or "targets" — the first line of the file says which it '
        "describes",
        '“type”必须是 "profile"、"source" 或 "targets"——文件开头要说明它描述的是映射方案、数据源还是目标映射',
    ),
    (
        "the file describes a {kind}, not a {want} — use the {command} command or page for it",
        "该文件描述的是 {kind}，而不是 {want}——请用 {command} 命令或对应页面处理",
    ),
    ("there is no KPI '{code}'", "没有指标“{code}”"),
    (
        "KPI '{code}' is computed ({agg}), not loaded — give the KPIs it is computed from",
        "指标“{code}”由计算得出（{agg}），不直接导入——请改为导入计算它所用的指标",
    ),
    ("there is no org unit '{code}'", "没有组织“{code}”"),
    (
        "'{value}' is mapped to '{code}', which is not an org unit",
        "“{value}”被映射到“{code}”，但它不是组织",
    ),
    # target mappings (ingest/target_mapping.py): a sheet's place, then what is wrong there
    (
        "{file} sheet '{sheet}' row {row} column '{column}': {sub}",
        "{file} 工作表“{sheet}”第 {row} 行“{column}”列：{sub}",
    ),
    ("{file} sheet '{sheet}' row {row}: {sub}", "{file} 工作表“{sheet}”第 {row} 行：{sub}"),
    ("{file} sheet '{sheet}': {sub}", "{file} 工作表“{sheet}”：{sub}"),
    ("Target mapping '{name}' is not complete: {problems}", "目标映射“{name}”还不完整：{problems}"),
    ("give the mapping a name", "请为目标映射命名"),
    ("choose the period column", "请选择期间列"),
    ("choose the target column", "请选择目标值列"),
    (
        "give one KPI for the sheet (kpi) or the column of KPI codes (kpi_column)",
        "请为整张表指定一个指标（kpi），或指定指标编码所在的列（kpi_column）",
    ),
    (
        "give one unit for the sheet (unit) or the unit column (unit_column)",
        "请为整张表指定一个组织（unit），或指定组织列（unit_column）",
    ),
    (
        "levels_for must be month, quarter or year (or left out)",
        "levels_for 必须是 month、quarter 或 year（或不填）",
    ),
    (
        "the {what} column '{column}' is not in the header (it has: {list})",
        "标题行中没有{what}列“{column}”（标题行中有：{list}）",
    ),
    ("no period", "缺少期间"),
    (
        "there is no KPI '{code}' — write KPI codes in the column",
        "没有指标“{code}”——请在该列填写指标编码",
    ),
    (
        "'{code}' is not an org unit — map the file's value to a unit code in unit_map",
        "“{code}”不是组织——请在 unit_map 中把文件中的值对应到组织编码",
    ),
    (
        "no target — fill it in, or list the column in fill_down if a blank means the value above",
        "缺少目标值——请填写；如果空白表示与上方相同，请把该列加入 fill_down",
    ),
    (
        "{period} is longer than a {grain} — levels_for cannot split it",
        "{period} 比 {grain} 长——levels_for 无法拆分它",
    ),
    (
        "{levels} for {node} {period}, but row {row} says {levels2} — the rows of one {grain} "
        "must agree",
        "{node} {period} 为 {levels}，但第 {row} 行为 {levels2}——同一{grain}的各行必须一致",
    ),
    (
        "{node} {period} is also given in row {row} — give each period once",
        "{node} {period} 在第 {row} 行也有填写——每个期间只填一次",
    ),
    (
        "{node} is not a sum ({agg}), so its weekly values cannot be added up to a month — give "
        "monthly values, or set levels_for",
        "{node} 不是求和型指标（{agg}），周数值不能相加为月——请填写月度数值，或设置 levels_for",
    ),
    (
        "{node} week {week} is also given in row {row} — give each week once",
        "{node} 第 {week} 周在第 {row} 行也有填写——每周只填一次",
    ),
    (
        "{node} {month} lacks week {weeks} — a month's target is the sum of all its weeks (a "
        "week belongs to the month of its Thursday)",
        "{node} {month} 缺少 {weeks} 周——月度目标是该月所有周之和（一周归入其星期四所在的月份）",
    ),
    (
        "no {what} for week {week} while other weeks of {month} have one",
        "第 {week} 周缺少{what}，而 {month} 的其他周都有",
    ),
    (
        "'{text}' is not a week — {year} has weeks W01 to W{last}",
        "“{text}”不是有效的周——{year} 年只有 W01 到 W{last} 周",
    ),
    (
        "User '{user}' ({role}) cannot read {kind} definitions — analysts, department heads and "
        "admins do.",
        "用户“{user}”（{role}）不能读取{kind}定义——这由数据分析、部门负责人和管理员完成。",
    ),
    (
        "User '{user}' ({role}) cannot read {kind} definitions — analysts and admins do.",
        "用户“{user}”（{role}）不能读取{kind}定义——这由数据分析和管理员完成。",
    ),
]


def translate(text: str, lang: str) -> str:
    """`text` from the intake in `lang`: unchanged for English, or when no rule knows it."""
    if lang != "zh" or not isinstance(text, str) or not text:
        return text
    try:
        return _zh(text) or text
    except Exception:  # a wrong rule must not take the page down: English is still an answer
        return text


def _compile(english: str) -> re.Pattern:
    parts = re.split(r"\{(\w+)\}", english)
    out = []
    for k, part in enumerate(parts):
        if k % 2 == 0:
            out.append(re.escape(part))
        else:
            out.append(f"(?P<{part}>{GROUPS.get(part.rstrip('0123456789'), '.*?')})")
    return re.compile("".join(out), re.S)


_RULES = [(_compile(english), chinese) for english, chinese in RULES]


def _match(text: str) -> str | None:
    """The Chinese of one message, or None when no rule gives all of it."""
    for pattern, chinese in _RULES:
        m = pattern.fullmatch(text)
        if m is None:
            continue
        parts = {name: _convert(name, value) for name, value in m.groupdict().items()}
        if None not in parts.values():
            return chinese.format_map(parts)
    return None


def _convert(name: str, value: str) -> str | None:
    """A variable part as it goes into the Chinese; None when a nested message is unknown."""
    kind = name.rstrip("0123456789")
    if kind in ("sub", "there"):
        return _match(value)
    if kind == "at":  # where a KPI came from ("header B (Sales)"), or the file's own column name
        return _match(value) or value
    if kind == "problems":  # profile problems, joined with "; "
        parts = [_match(p) for p in value.split("; ")]
        return None if None in parts else "；".join(parts)
    if kind == "choices":  # names.py's "A (…) or B (…)"
        return re.sub(r"\) or (?=\S)", ") 或 ", value)
    if kind == "names":  # names listed with ", " (the children of a parent in the tree)
        return value.replace(", ", "、")
    if kind == "codes":  # KPI codes to choose from, "A or B"
        return value.replace(" or ", " 或 ")
    if kind == "columns":  # layout's "KPI/指标 or value/实际值"
        return value.replace(" or ", " 或 ")
    if kind in ("what", "agg", "status", "role", "kind", "want", "grain"):
        return WORDS.get(value, value)
    return value


@functools.lru_cache(maxsize=8192)
def _zh(text: str) -> str | None:
    got = _match(text)
    if got is not None:
        return got
    # A FileError reads "FILE: message". The file's name may itself hold ": ", so each place
    # is tried in turn until the rest is a message the table knows.
    at = text.find(": ")
    while at > 0:
        rest = _match(text[at + 2 :])
        if rest is not None:
            return f"{text[:at]}：{rest}"
        at = text.find(": ", at + 1)
    return None
