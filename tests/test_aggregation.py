"""One aggregation path for profiles and sources: the same rows as an Excel sheet read by a
profile, a CSV file source and a SQLite source give the same values; blanks are missing, never 0;
dates are read by the given format and never guessed; measures compute dates and conditions."""

import io
import sqlite3
from datetime import date, datetime

import openpyxl
import pandas as pd
import pytest

from kpi_core import access, service, workbook
from kpi_core.access import Scope
from kpi_core.catalog import load_catalog
from kpi_core.ingest import dates, expression, intake, profile, sources
from kpi_core.ingest.profile import Filter, Measure, Profile, ProfileError
from kpi_core.ingest.sources import Source
from kpi_core.system_import import import_system
from kpi_core.warehouse import Warehouse
from tests.said import chinese as said_zh
from tests.said import untranslated

TODAY = date(2026, 11, 21)
ANALYST = access.Actor("analyst", "analyst", Scope.all())

KPIS = pd.DataFrame(
    [
        ["REV", "营业收入", "Revenue", "元", "up", "sum", None, None, None],
        ["ORDERS", "订单数", "Orders", "个", "up", "sum", None, None, None],
        ["SHIPPED", "发货单数", "Orders shipped", "个", "up", "sum", None, None, None],
        ["ONTIME", "准时发货单数", "Shipped on time", "个", "up", "sum", None, None, None],
        ["ONTIME_RATE", "准时发货率", "On-time shipping", "%", "up", "ratio", "ONTIME",
         "SHIPPED", None],
        ["RETURNED", "退货单数", "Orders returned", "个", "down", "sum", None, None, None],
        ["LEAD", "发货天数", "Lead time", "天", "down", "avg", None, None, None],
    ],
    columns=["code", "name_zh", "name_en", "unit", "direction", "aggregation", "numerator",
             "denominator", "formula"],
)  # fmt: skip
UNITS = pd.DataFrame(
    [["CO", "公司", "Company", None, "company"], ["EAST", "华东", "East", "CO", "team"],
     ["WEST", "华西", "West", "CO", "team"]],
    columns=["code", "name_zh", "name_en", "parent", "kind"],
)  # fmt: skip
TREE = pd.DataFrame(
    [["CO", "CO/REV", 50], ["CO", "CO/ONTIME_RATE", 50], ["CO/REV", "EAST/REV", 50],
     ["CO/REV", "WEST/REV", 50]],
    columns=["parent", "child", "weight"],
)  # fmt: skip

HEADER = ["Order Date", "Region", "Amount"]
# A tracker: West's May amounts are all blank (a blank cell, a cell of spaces) — May has no
# revenue there, not 0; East's May has one blank among numbers.
LINES = [
    ("2025-04-03", "east", "100"),
    ("2025-04-20", "east", "50.5"),
    ("2025-04-09", "west", "7"),
    ("2025-05-02", "east", ""),
    ("2025-05-10", "east", "30"),
    ("2025-05-11", "west", ""),
    ("2025-05-12", "west", "  "),
]
EXPECTED = {
    ("REV", "EAST", "2025-04"): 150.5,
    ("REV", "WEST", "2025-04"): 7.0,
    ("REV", "EAST", "2025-05"): 30.0,
    ("ORDERS", "EAST", "2025-04"): 2.0,
    ("ORDERS", "WEST", "2025-04"): 1.0,
    ("ORDERS", "EAST", "2025-05"): 2.0,
    ("ORDERS", "WEST", "2025-05"): 2.0,  # two rows: a count, with or without amounts
}


@pytest.fixture
def wh(tmp_path):
    book = tmp_path / "system.xlsx"
    workbook.write({"kpis": KPIS, "org_units": UNITS, "tree": TREE}, book)
    w = Warehouse(tmp_path / "w.duckdb", linger=0)
    import_system(w, book, by="test", scope=Scope.all())
    yield w
    w.close()


@pytest.fixture(autouse=True)
def exports(tmp_path, monkeypatch):
    folder = tmp_path / "exports"
    folder.mkdir()
    monkeypatch.setenv("KPI_SOURCE_DIRS", str(folder))
    return folder


def mapping(**kw) -> Profile:
    return Profile(
        name="tracker",
        date_column="Order Date",
        unit_column="Region",
        unit_map={"east": "EAST", "west": "WEST"},
        measures=[Measure("REV", "sum", "Amount"), Measure("ORDERS", "count", None)],
        **kw,
    )


def xlsx(header, lines, *, typed=True) -> bytes:
    """The lines as a sheet; with `typed`, ISO dates are Excel dates and amounts numbers,
    as a person's workbook holds them (blanks stay blank cells, spaces stay spaces)."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Data"
    ws.append(header)
    for line in lines:
        cells = []
        for v in line:
            if typed and isinstance(v, str) and len(v) == 10 and v[4] == "-":
                v = datetime.fromisoformat(v)
            elif typed and isinstance(v, str) and v.replace(".", "", 1).isdigit():
                v = float(v)
            cells.append(None if v == "" else v)
        ws.append(cells)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def write_csv(path, header, lines):
    pd.DataFrame(lines, columns=header).to_csv(path, index=False)
    return f"csv://{path}"


def write_sqlite(path, header, lines):
    con = sqlite3.connect(path)
    cols = ", ".join(f'"{h}" TEXT' for h in header)
    con.execute(f"CREATE TABLE t ({cols})")
    con.executemany(f"INSERT INTO t VALUES ({', '.join('?' for _ in header)})",
                    [[None if v == "" else v for v in line] for line in lines])  # fmt: skip
    con.commit()
    con.close()
    return f"sqlite:///{path}"


def in_chinese(findings) -> None:
    """Every message and hint the Upload and Sources pages show has its Chinese."""
    for f in findings:
        for text in (f.message, f.hint):
            assert said_zh(text) != str(text), text
    """Every message and hint the Upload and Sources pages show has its Chinese (a coded
    message from both catalogs, tests/said.py)."""
    assert untranslated(t for f in findings for t in (f.message, f.hint)) == []


def values(prepared, cat) -> dict:
    return {
        (cat.kpis[r.kpi_id].code, cat.units[r.unit_id].code, f"{r.period:%Y-%m}"): r.value
        for r in prepared.rows.itertuples()
    }


def by_profile(wh, data: bytes, p: Profile):
    return intake.prepare(wh, [("data.xlsx", data)], access.SYSTEM, mapping=p, today=TODAY)


def by_source(wh, url: str, query: str, p: Profile):
    return sources.prepare_pull(wh, Source("s", url, query, p), access.SYSTEM, today=TODAY)


def write_postgres(postgres, monkeypatch, header, lines, db="x20b_blanks") -> str:
    """The lines in a real PostgreSQL table, amounts typed NUMERIC (blanks are NULL there,
    spaces can't be numbers), read by the read-only account."""
    postgres.create_database(db, drop=True)
    cols = '"Order Date" DATE, "Region" TEXT, "Amount" NUMERIC'
    postgres.execute(f"CREATE TABLE t ({cols})", db=db)
    for day, region, amount in lines:
        postgres.execute("INSERT INTO t VALUES (%s, %s, %s)",
                         [day, region, amount.strip() or None], db=db)  # fmt: skip
    postgres.grant_read(db)
    monkeypatch.setenv("KPI_SOURCE_SECRET_READER", postgres.reader_password)
    return postgres.url(user=postgres.reader, password="${KPI_SOURCE_SECRET_READER}", db=db)


def test_blanks_are_missing_on_every_path(wh, exports, postgres, monkeypatch):
    cat = load_catalog(wh)
    runs = {
        "postgresql": by_source(
            wh, write_postgres(postgres, monkeypatch, HEADER, LINES), "SELECT * FROM t", mapping()
        ),  # fmt: skip
        "xlsx": by_profile(wh, xlsx(HEADER, LINES), mapping()),
        "csv": by_source(
            wh, write_csv(exports / "t.csv", HEADER, LINES), "SELECT * FROM t", mapping()
        ),  # fmt: skip
        "sqlite": by_source(
            wh, write_sqlite(exports / "t.db", HEADER, LINES), "SELECT * FROM t", mapping()
        ),  # fmt: skip
    }
    for path, prepared in runs.items():
        assert prepared.errors == [], path
        # West's May: only blanks — no revenue value at all, not 0.
        assert values(prepared, cat) == pytest.approx(EXPECTED), path


def test_dd_mm_yy_text_is_read_with_the_format_and_never_guessed(wh, exports):
    cat = load_catalog(wh)
    lines = [("03/01/19", "east", "10"), ("04/02/19", "east", "20"), ("05/02/19", "west", "5")]
    url = write_csv(exports / "d.csv", HEADER, lines)
    # Every value reads both ways: a question naming the column and both readings.
    asked = by_source(wh, url, "SELECT * FROM d", mapping())
    [err] = asked.errors
    assert err.column == "Order Date" and "day first and month first" in str(err.message)
    assert "'03/01/19' is 2019-01-03 day first (dmy) or 2019-03-01 month first" in str(err.message)
    # A coded question: the English as it always read, the Chinese from the catalogs.
    assert (err.message.key, err.hint.key) == ("ag_ambiguous_dates", "ag_ambiguous_dates_hint")
    assert err.message.render("zh") == (
        "“Order Date”列的每个日期既可按日在前读，也可按月在前读：“03/01/19”日在前（dmy）是 "
        "2019-01-03，月在前（mdy）是 2019-03-01"
    )
    assert asked.rows.empty
    in_chinese(asked.findings)
    want = {("REV", "EAST", "2019-01"): 10.0, ("REV", "EAST", "2019-02"): 20.0,
            ("REV", "WEST", "2019-02"): 5.0}  # fmt: skip
    for fmt in ("dmy", "%d/%m/%y"):
        got = by_source(wh, url, "SELECT * FROM d", mapping(date_format=fmt))
        assert got.errors == []
        assert {k: v for k, v in values(got, cat).items() if k[0] == "REV"} == want
        # The same text in a workbook, read by a profile with the same format.
        sheet = by_profile(wh, xlsx(HEADER, lines), mapping(date_format=fmt))
        assert sheet.errors == [] and values(sheet, cat) == values(got, cat)
    # A value only one reading fits (20/01/19) settles the column, and it is said.
    told = by_source(wh, write_csv(exports / "e.csv", HEADER, [*lines, ("20/01/19", "east", "1")]),
                     "SELECT * FROM e", mapping())  # fmt: skip
    assert told.errors == []
    assert values(told, cat)[("REV", "EAST", "2019-01")] == 11.0
    [said] = [f for f in told.findings if f.says("ag_dates_read")]
    example, day = said.message.values["example"], said.message.values["day"]  # any one value
    assert str(said.message) == (
        "dates in column 'Order Date' read day first (dmy), the only reading that fits every "
        f"value: '{example}' is {day}"
    )
    assert said.message.render("zh") == (
        f"“Order Date”列的日期按日在前（dmy）读，这是唯一适合所有值的读法：“{example}”是 {day}"
    )
    in_chinese(told.findings)


def test_year_indexes_and_implausible_dates_are_named(wh, exports):
    lines = [("2019-01-05", "east", "1"), ("1-01", "east", "2"), ("05/01/1819", "west", "3")]
    prepared = by_profile(wh, xlsx(HEADER, lines, typed=False), mapping(date_format="dmy"))
    where = {(e.row, e.column): str(e.message) for e in prepared.errors}
    assert "year index" in where[(3, "Order Date")]
    assert where[(4, "Order Date")] == "'05/01/1819' is outside the plausible years 1900–2099"
    why = {e.row: (e.message.key, e.message.values["why"].key) for e in prepared.errors}
    assert why == {3: ("ag_bad_date", "dd_year_index"), 4: ("ag_bad_date", "dd_implausible")}
    assert [e.message.render("zh") for e in prepared.errors if e.row == 4] == [
        "“05/01/1819”超出了合理的年份范围 1900–2099"
    ]
    assert prepared.rows.empty
    in_chinese(prepared.errors)
    with pytest.raises(ProfileError, match="date format 'dd/mm'"):
        profile.save(wh, mapping(date_format="dd/mm"), ANALYST)


ORDER_HEADER = ["Order Date", "Required", "Shipped", "Region", "Returned", "Amount"]
ORDERS = [
    ("2025-03-02", "2025-03-06", "2025-03-05", "east", "", "100"),  # 3 days, on time
    ("2025-03-10", "2025-03-12", "2025-03-15", "east", "Yes", "50"),  # 5 days, late, returned
    ("2025-03-20", "2025-03-25", "", "east", "", "70"),  # not shipped yet
    ("2025-03-21", "2025-03-31", "2025-03-22", "west", "yes ", "20"),  # 1 day, on time, returned
]


def order_profile(**kw) -> Profile:
    return Profile(
        name="orders",
        date_column="Order Date",
        unit_column="Region",
        unit_map={"east": "EAST", "west": "WEST"},
        measures=[
            Measure("LEAD", "avg", "=[Shipped] - [Order Date]"),
            Measure("ONTIME", "count", "=[Shipped] <= [Required]"),
            Measure("SHIPPED", "count", "Shipped"),
            Measure("RETURNED", "sum", "=IF([Returned] = 'yes', 1, 0)"),
            # Orders whose amount arrived within four days of the order: a filter computed per row.
            Measure("REV", "sum", "Amount", [Filter("Shipped", "<=", "[Order Date] + 4")]),
        ],
        **kw,
    )


def test_measures_compute_dates_and_conditions(wh, exports):
    cat = load_catalog(wh)
    want = {
        ("LEAD", "EAST", "2025-03"): 4.0,  # (3 + 5) / 2; the unshipped order has no lead time
        ("LEAD", "WEST", "2025-03"): 1.0,
        ("ONTIME", "EAST", "2025-03"): 1.0,
        ("ONTIME", "WEST", "2025-03"): 1.0,
        ("SHIPPED", "EAST", "2025-03"): 2.0,
        ("SHIPPED", "WEST", "2025-03"): 1.0,
        ("RETURNED", "EAST", "2025-03"): 1.0,
        ("RETURNED", "WEST", "2025-03"): 1.0,
        ("REV", "EAST", "2025-03"): 100.0,
        ("REV", "WEST", "2025-03"): 20.0,
    }
    sheet = by_profile(wh, xlsx(ORDER_HEADER, ORDERS), order_profile())
    assert sheet.errors == []
    assert values(sheet, cat) == pytest.approx(want)
    url = write_csv(exports / "o.csv", ORDER_HEADER, ORDERS)
    pulled = by_source(wh, url, "SELECT * FROM o", order_profile())
    assert pulled.errors == [] and values(pulled, cat) == pytest.approx(want)
    # The ratio KPI from its two measures of the same file: Σ on time / Σ shipped.
    service.commit_actuals(wh, sheet, access.SYSTEM)
    from kpi_core.periods import parse_period

    card = service.score_unit(wh, access.SYSTEM, "CO", parse_period("2025-03"))
    rate = next(k for k in card["kpis"] if k["kpi"] == "ONTIME_RATE")
    assert rate["actual"] == pytest.approx(2 / 3)


def test_expressions_are_checked_when_the_profile_is_saved(wh):
    bad = order_profile()
    bad.measures[0].column = "=[Shipped] * [Order Date]"
    with pytest.raises(
        ProfileError, match=r"measure 1 \(LEAD\).*needs a number where it has a date"
    ):
        profile.save(wh, bad, ANALYST)
    bad = order_profile()
    bad.measures[1].column = "=upper([Returned])"
    with pytest.raises(ProfileError, match="UPPER.*is not allowed"):
        profile.save(wh, bad, ANALYST)
    bad = order_profile()
    bad.measures[4].filters[0].value = "[Order Date] +"
    with pytest.raises(ProfileError, match="filter on 'Shipped'.*cannot be read"):
        profile.save(wh, bad, ANALYST)
    # Against the file's header, a misspelt column is named.
    problems = order_profile().problems(columns=[h for h in ORDER_HEADER if h != "Required"])
    assert [str(q) for q in problems] == [
        "measure 2 (ONTIME): the column 'Required' is not in the file"
    ]
    # A type mistake the header cannot show is found at import, named, and nothing is loaded.
    wrong = order_profile()
    wrong.measures[3].column = "=[Returned] + 1"
    prepared = by_profile(wh, xlsx(ORDER_HEADER, ORDERS), wrong)
    assert prepared.rows.empty
    [e] = [e for e in prepared.errors if e.says("ag_measure")]
    assert str(e.message) == (
        "measure 4 (RETURNED): in '=[Returned] + 1': '[Returned] + 1' needs a number where it "
        "has a text"
    )
    assert e.message.render("zh") == (
        "第 4 项指标计算（RETURNED）：在“=[Returned] + 1”中：“[Returned] + 1”此处需要数字，"
        "但得到的是文本"
    )
    assert (str(e.hint), e.hint.render("zh")) == ("correct the expression", "请修改表达式")
    in_chinese(prepared.errors)
    profile.save(wh, order_profile(), ANALYST)
    assert profile.load(wh, "orders") == order_profile()


# Weekly rows: each ISO week counts in the month of its Thursday, whichever month its Monday is
# in (2019-W18 runs Mon 29 April – Sun 5 May: May; 2020-W01 starts on 30 December 2019: 2020-01).
WEEKS = [
    ("2019-W13", "east", "1"),  # Thu 28 March
    ("2019-W14", "east", "10"),  # Mon 1 April
    ("2019-W15", "east", "20"),
    ("2019-W18", "east", "300"),  # Mon 29 April, Thu 2 May
    ("2019-W18", "west", "4"),
    ("2020-W01", "west", "5000"),  # Mon 30 December 2019, Thu 2 January 2020
]
WEEKS_EXPECTED = {
    ("REV", "EAST", "2019-03"): 1.0,
    ("REV", "EAST", "2019-04"): 30.0,
    ("REV", "EAST", "2019-05"): 300.0,
    ("REV", "WEST", "2019-05"): 4.0,
    ("REV", "WEST", "2020-01"): 5000.0,
}


def test_iso_weeks_count_in_their_thursdays_month_on_every_path(wh, exports):
    cat = load_catalog(wh)
    weekly = Profile(
        name="weekly", date_column="Order Date", unit_column="Region",
        unit_map={"east": "EAST", "west": "WEST"}, measures=[Measure("REV", "sum", "Amount")],
    )  # fmt: skip
    runs = {
        "xlsx": by_profile(wh, xlsx(HEADER, WEEKS, typed=False), weekly),
        "csv": by_source(
            wh, write_csv(exports / "w.csv", HEADER, WEEKS), "SELECT * FROM w", weekly
        ),  # fmt: skip
        "sqlite": by_source(
            wh, write_sqlite(exports / "w.db", HEADER, WEEKS), "SELECT * FROM t", weekly
        ),  # fmt: skip
    }
    for path, prepared in runs.items():
        assert prepared.errors == [], (path, prepared.errors)
        assert values(prepared, cat) == pytest.approx(WEEKS_EXPECTED), path
    # A range asked of a pull keeps the weeks of its months, by their Thursday.
    for url, query in ((f"csv://{exports / 'w.csv'}", "SELECT * FROM w"),
                       (f"sqlite:///{exports / 'w.db'}", "SELECT * FROM t")):  # fmt: skip
        may = sources.prepare_pull(
            wh, Source("s", url, query, weekly), access.SYSTEM, first=date(2019, 5, 1),
            last=date(2019, 5, 1), today=TODAY,
        )  # fmt: skip
        assert may.errors == [] and may.months == [date(2019, 5, 1)], url
        assert values(may, cat) == {("REV", "EAST", "2019-05"): 300.0,
                                    ("REV", "WEST", "2019-05"): 4.0}  # fmt: skip


# --- what an expression or a date format says: coded messages, the English as before ----------

_CANNOT_BE_READ = (
    "the expression '=[a] *' cannot be read — it ends too early, or a value, an operator or a ')' "
    "is missing or extra"
)


@pytest.mark.parametrize(
    ("text", "kinds", "key", "english", "chinese"),
    [
        ("='abc", None, "ex_quote_open", "a text in quotes is not closed: 'abc",
         "引号中的文本没有闭合：'abc"),
        ("=[a", None, "ex_bracket_open", "a '[' is not closed: [a", "有“[”没有闭合：[a"),
        ("=[]", None, "ex_no_column", "'[]' names no column", "“[]”中没有列名"),
        ("= ", None, "ex_empty", "the expression is empty", "表达式为空"),
        ("=[a] *", None, "ex_unreadable", _CANNOT_BE_READ,
         "无法读取表达式“=[a] *”——表达式不完整，或缺少/多出值、运算符或“)”"),
        ("=t.a + 1", None, "ex_qualified", "'t.a' is not allowed — write [column name]",
         "不能使用“t.a”——请写作 [列名]"),
        ("=[a] + [b]", {"a": "date", "b": "date"}, "ex_in",
         "in '=[a] + [b]': '[a] + [b]' cannot add two dates; subtract them to count the days",
         "在“=[a] + [b]”中：“[a] + [b]”不能把两个日期相加；相减可得天数"),
        ("=[a] + [b]", {"a": "number", "b": "text"}, "ex_in",
         "in '=[a] + [b]': '[a] + [b]' needs a number where it has a text",
         "在“=[a] + [b]”中：“[a] + [b]”此处需要数字，但得到的是文本"),
    ],
)  # fmt: skip
def test_an_expression_that_does_not_fit_says_so_in_either_language(
    text, kinds, key, english, chinese
):
    with pytest.raises(expression.ExpressionError) as refused:
        expression.check(expression.parse(text), kinds) if kinds else expression.parse(text)
    assert refused.value.coded.key == key
    assert (str(refused.value), refused.value.text("zh")) == (english, chinese)


@pytest.mark.parametrize(
    ("fmt", "key", "english", "chinese"),
    [
        ("dd/mm", "dd_format_unknown",
         "the date format 'dd/mm' is neither dmy, mdy nor ymd nor a pattern such as %d/%m/%y",
         "日期格式“dd/mm”既不是 dmy、mdy、ymd，也不是 %d/%m/%y 这样的格式"),
        ("%Y-%m", "dd_format_day_month",
         "the date format '%Y-%m' needs a day (%d) and a month (%m, %b or %B)",
         "日期格式“%Y-%m”需要包含日（%d）和月（%m、%b 或 %B）"),
    ],
)  # fmt: skip
def test_a_date_format_that_cannot_be_used_says_so_in_either_language(fmt, key, english, chinese):
    said = dates.check_format(fmt)
    assert said.key == key
    assert (str(said), said.render("zh")) == (english, chinese)
