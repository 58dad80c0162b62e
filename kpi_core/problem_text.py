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
}

# English as the core writes it → Chinese. `{name}` is a variable part (see the module's doc).
RULES: list[tuple[str, str]] = [
    # --- validate.py and names.py: values checked against the library, org and calendar -------
    # validate.py: which KPI a column is bound to
    (
        "column '{text}' is KPI {kpi} by its name, but {code} is not on unit {unit}'s tree: "
        "{n} value(s) left out",
        "列“{text}”按名称对应到指标 {kpi}，但 {code} 不在组织 {unit} 的指标树上：{n} 个数值未导入",
    ),
    (
        "column '{text}' is KPI {kpi} by its code, but {code} is not on unit {unit}'s tree: "
        "{n} value(s) left out",
        "列“{text}”按编码对应到指标 {kpi}，但 {code} 不在组织 {unit} 的指标树上：{n} 个数值未导入",
    ),
    (
        "KPI {kpi} is not on unit {unit}'s tree: {n} value(s) left out",
        "指标 {kpi} 不在组织 {unit} 的指标树上：{n} 个数值未导入",
    ),
    (
        "write the code of one of {unit}'s KPIs in the header instead ({names}), or add {code} "
        "to {unit2}'s tree first",
        "请在表头改写为 {unit} 的某个指标编码（{names}），或先把 {code} 加到 {unit2} 的指标树上",
    ),
    (
        "use one of {unit}'s KPIs instead ({names}), or add {code} to {unit2}'s tree first",
        "请改用 {unit} 的指标（{names}），或先把 {code} 加到 {unit2} 的指标树上",
    ),
    (
        "add {code} to {unit}'s tree first, or check the unit",
        "请先把 {code} 加到 {unit} 的指标树上，或检查组织是否正确",
    ),
    (
        "'{text}' could be KPI {choices}: {n} value(s) left out",
        "“{text}”可能是指标 {choices}，需要您指明是哪一个：{n} 个数值未导入",
    ),
    (
        "write the code of the KPI you mean in place of the name ({codes}), or load the sheet "
        "with a mapping profile",
        "请把名称改写为您所指指标的编码（{codes}），或用映射方案导入该工作表",
    ),
    (
        "'{code}' is not a KPI code of the library — choose the KPI for column {at} of "
        "sheet '{sheet}' again",
        "“{code}”不是指标库中的指标编码——请重新为工作表“{sheet}”的 {at} 选择指标",
    ),
    ("unknown KPI '{kpi}'", "未知指标“{kpi}”"),
    ("no KPI given", "未填写指标"),
    ("check the KPI library for its code", "请在指标库中核对指标编码"),
    ("fill in the KPI code or name", "请填写指标编码或名称"),
    ("did you mean {choices}?", "是否想写 {choices}？"),
    (
        "'{kpi}' is computed by its formula ({formula})",
        "指标“{kpi}”由公式计算得出（{formula}），不能直接导入",
    ),
    ("load the KPIs it is made of instead", "请改为导入构成它的各项指标"),
    ("unknown unit '{unit}'", "未知组织“{unit}”"),
    ("no unit given", "未填写组织"),
    ("check the org units for its code", "请在组织架构中核对组织编码"),
    ("fill in the unit code or name", "请填写组织编码或名称"),
    ("unit '{unit}' is outside your scope", "组织“{unit}”超出您的权限范围"),
    (
        "upload only the units you are responsible for, or ask an admin",
        "请只上传您负责的组织，或联系管理员",
    ),
    ("no period given", "未填写期间"),
    (
        "'{text}' is not a period — write 2024 (year), 2024-Q1 (quarter) or 2024-03 (month)",
        "“{text}”不是有效的期间——请写作 2024（年）、2024-Q1（季度）或 2024-03（月）",
    ),
    ("'{text}' is a year — actuals are monthly", "“{text}”是年度——实际数据按月填报"),
    ("'{text}' is a quarter — actuals are monthly", "“{text}”是季度——实际数据按月填报"),
    (
        "write the month as 2024-03, 2024年3月 or an Excel date",
        "月份请写作 2024-03、2024年3月 或 Excel 日期",
    ),
    ("{month} is in the future", "{month} 是未来的月份"),
    (
        "check the period; actuals are loaded once the month has begun",
        "请核对期间；月份开始后才能导入实际数据",
    ),
    ("{month} is closed", "{month} 已关账"),
    ("ask an admin to reopen the month", "请联系管理员重新开账"),
    ("'{text}' is an Excel error, not a number", "“{text}”是 Excel 错误值，不是数字"),
    (
        "fix the cell's formula in Excel (or type the value) and save again",
        "请在 Excel 中修正该单元格的公式（或直接填写数值）后重新保存",
    ),
    ("'{text}' is not a number", "“{text}”不是数字"),
    (
        "write a number such as 1250000, 12.5万, 1,234.5 or 96%",
        "请填写数字，例如 1250000、12.5万、1,234.5 或 96%",
    ),
    (
        "{num} in percent KPI {kpi} — did you mean {num2}%?",
        "百分比指标 {kpi} 填的是 {num}——是否想写 {num2}%？",
    ),
    ("write {num}% or {num2}", "请写作 {num}% 或 {num2}"),
    (
        "{num} in a percent KPI — did you mean {num2}%? Write {num3}% or {num4}",
        "百分比指标填的是 {num}——是否想写 {num2}%？请写作 {num3}% 或 {num4}",
    ),
    ("{num} is below the KPI's allowed minimum {num2}", "{num} 低于该指标允许的最小值 {num2}"),
    ("{num} is above the KPI's allowed maximum {num2}", "{num} 高于该指标允许的最大值 {num2}"),
    (
        "{num} is below {kpi}'s allowed minimum {num2}",
        "{num} 低于指标 {kpi} 允许的最小值 {num2}",
    ),
    ("check the sign and the unit of the number", "请核对数值的正负号和单位"),
    (
        "{num} is above {kpi}'s allowed maximum {num2}",
        "{num} 高于指标 {kpi} 允许的最大值 {num2}",
    ),
    ("check the number and its unit (万, %, …)", "请核对数值及其单位（万、% 等）"),
    ("… and {n} more like these ({sub})", "……另有 {n} 处同类问题（{sub}）"),
    (
        "{what} {month} repeats {there} with the same value",
        "{what} {month} 与{there}重复，数值相同",
    ),
    (
        "{what} {month} is also given in {there}: {num} there, {num2} here — neither is loaded",
        "{what} {month} 在{there}中也有填写：那里是 {num}，这里是 {num2}——两者都不导入",
    ),
    ("delete the repeated row", "请删除重复的行"),
    ("keep the right one", "请只保留正确的一行"),
    # where a duplicate was first seen ({there} above); a profile's values have no row
    ("sheet '{sheet}' row {row}", "工作表“{sheet}”第 {row} 行"),
    ("sheet '{sheet}'", "工作表“{sheet}”"),
    ("file '{file}' row {row}", "文件“{file}”第 {row} 行"),
    ("file '{file}'", "文件“{file}”"),
    # --- intake.py: the upload as a whole, loading it and rolling it back ---------------------
    ("nothing to load: {sub}", "没有可导入的数据：{sub}"),
    ("the sheets are empty", "工作表都是空的"),
    ("no actuals were found", "未找到实际数据"),
    (
        "use columns period/期间, unit/部门, KPI/指标 and value/实际值, download the template, or "
        "map the sheet with a profile",
        "请使用 period/期间、unit/部门、KPI/指标 和 value/实际值 这几列，或下载模板填写，"
        "或用映射方案对应该工作表",
    ),
    ("every value is blank", "所有数值都是空的"),
    ("fill them in", "请填写数值"),
    # --- profile.py: converted (pf_*); aggregation.py still says this one ---------------------
    ("'{text}' is not a date", "“{text}”不是日期"),
    # --- x20b: dates, expressions and the one aggregation (dates.py, expression.py,
    # aggregation.py, profile.py) ------------------------------------------------------------
    ("measure {i} ({kpi}): {sub}", "第 {i} 项指标计算（{kpi}）：{sub}"),
    (
        "'{text}' is a date; subtract another date to count days",
        "“{text}”是日期；减去另一个日期可得天数",
    ),
    ("'{text}' is a text, which cannot be added up", "“{text}”是文本，不能相加"),
    (
        "the date format '{text}' is neither dmy, mdy nor ymd nor a pattern such as %d/%m/%y",
        "日期格式“{text}”既不是 dmy、mdy、ymd，也不是 %d/%m/%y 这样的格式",
    ),
    ("the date format '{text}' cannot be used ({why})", "日期格式“{text}”无法使用（{why}）"),
    (
        "the date format '{text}' needs a day (%d) and a month (%m, %b or %B)",
        "日期格式“{text}”需要包含日（%d）和月（%m、%b 或 %B）",
    ),
    ("'{text}' does not match the date format '{fmt}'", "“{text}”不符合日期格式“{fmt}”"),
    (
        "'{text}' reads as a year index and a month (year 1, 2, … of a plan), not a calendar "
        "date; write the real month (2019-01) in the file or the query",
        "“{text}”读作年序号和月份（计划的第 1、2…年），不是日历日期；请在文件或查询中写实际月份（2019-01）",
    ),
    ("'{text}' is outside the plausible years 1900–2099", "“{text}”超出了合理的年份范围 1900–2099"),
    ("'{text}' is not a date of one month", "“{text}”不是某一个月内的日期"),
    (
        "'{text}' fits neither day-first nor month-first for every value",
        "“{text}”：该列的日期既不能全部按日在前读，也不能全部按月在前读",
    ),
    ("'{text}' is not a date read {what} ({code})", "“{text}”按{what}（{code}）读不是日期"),
    (
        "'{text}' does not read year first (the date format is ymd)",
        "“{text}”不是年在前的日期（日期格式为 ymd）",
    ),
    (
        "every date in column '{column}' reads both day first and month first: '{text}' is "
        "{day} day first (dmy) or {day2} month first (mdy)",
        "“{column}”列的每个日期既可按日在前读，也可按月在前读：“{text}”日在前（dmy）是 {day}，"
        "月在前（mdy）是 {day2}",
    ),
    (
        "set the date format of the profile: dmy (day first), mdy (month first) or a pattern "
        "such as %d/%m/%y",
        "请设置方案的日期格式：dmy（日在前）、mdy（月在前）或 %d/%m/%y 这样的格式",
    ),
    (
        "dates in column '{column}' read {what} ({code}), the only reading that fits every "
        "value: '{text}' is {day}",
        "“{column}”列的日期按{what}（{code}）读，这是唯一适合所有值的读法：“{text}”是 {day}",
    ),
    ("set the date format in the profile to be sure", "请在方案中设置日期格式以确保无误"),
    ("correct the expression in the profile", "请修改方案中的表达式"),
    ("correct the expression", "请修改表达式"),
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
    (
        "the filter on the date column '{column}' compares with '{value}', which is not a date",
        "日期列“{column}”的筛选条件与“{value}”比较，但它不是日期",
    ),
    (
        "the filter compares column '{column}' ({what}) with a {what2}",
        "筛选条件把“{column}”列（{what}）与{what2}比较",
    ),
    # --- the template and scope checks the page may meet ------------------------------------
    (
        "{unit} has no KPIs to enter for {month}: none of its units has a KPI in the KPI tree for "
        "that month.",
        "{unit} 在 {month} 没有需要填报的指标：其下各组织在该月的指标树中都没有指标。",
    ),
    # --- where a value came from (a finding's column, when not a plain column) --------------
    ("sheet name '{sheet}'", "工作表名“{sheet}”"),
    ("section title {ref}", "分节标题 {ref}"),
    ("title {ref}", "标题 {ref}"),
    ("header {column}", "表头 {column}"),
    ("profile '{name}' measure {i}", "方案“{name}”第 {i} 项指标计算"),
    ("profile '{name}'", "方案“{name}”"),
    ("count(rows)", "计数（行数）"),
    ("sum({column})", "求和（{column}）"),
    ("avg({column})", "求平均（{column}）"),
    ("count({column})", "计数（{column}）"),
    ("count_distinct({column})", "去重计数（{column}）"),
    # --- sources: converted (su_*, sq_*, sf_*, sc_*, so_*); where a pulled value came from (a
    # finding's file and column, a record's place) is still English --------------------------
    ("source '{name}' measure {i}", "数据源“{name}”第 {i} 项指标计算"),
    ("source '{name}'", "数据源“{name}”"),
    # what Test connection says of an export
    # --- x20c: profiles and sources as TOML files (ingest/definition_file.py) ---------------
    # target mappings (ingest/target_mapping.py): a sheet's place, then what is wrong there
    # --- system_import.py and library_edits.py: the KPI library page and KPI-system workbooks ---
    # Targets & weights edited in place (planning raises coded messages; a conflict still says)
    # --- push/: what a delivery's failure says (kept in push_log as English text); push/config
    # raises coded messages.
    # the same without what the robot answered (the delivery log as non-admins read it)
    # --- x20c: definition_file.py (df_*) and target_mapping.py (tm_*) are converted ----------
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
