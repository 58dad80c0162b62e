"""The Sources page through Streamlit's AppTest, on a real DuckDB warehouse and a real SQLite
database made here: define a source through the widgets, pull it, load it, roll it back — and the
warehouse then holds what a GROUP BY over the same rows in sqlite3 gives."""

import re
import sqlite3
from datetime import date
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from kpi_core import service, users, workbook
from kpi_core.access import SYSTEM, Scope
from kpi_core.errors import KpiError, NotFoundError
from kpi_core.ingest import places, profile, sources
from kpi_core.messages import Items, Message
from kpi_core.system_import import import_system
from kpi_core.ui.source_frames import identifier, mapped_columns, month_choices, query_table
from kpi_core.warehouse import Warehouse
from tests import apptest
from tests.apptest import ok
from tests.conftest import sales_system
from tests.said import untranslated

ROOT = Path(__file__).resolve().parent.parent

PAGE = "pages/3_Sources.py"
CJK = re.compile(r"[\u3400-\u9fff]")

ORDERS = [
    # order, date, region, amount, status, customer
    ("S1", "2024-11-05", "华东", 1_200_000.0, "shipped", "c1"),
    ("S2", "2024-11-20", "华北", 800_000.0, "shipped", "c2"),
    ("S3", "2024-12-03", "华东", 1_000_000.0, "shipped", "c1"),
    ("S4", "2024-12-15", "华东", 2_000_000.0, "shipped", "c3"),
    ("S5", "2024-12-20", "华北", 1_500_000.0, "shipped", "c4"),
    ("S6", "2024-12-21", "华北", 9_999_999.0, "cancelled", "c5"),
    ("S7", "2025-01-08", "华东", 700_000.5, "shipped", "c6"),
]
REGIONS = {"华东": "EAST", "华北": "NORTH"}


@pytest.fixture
def wh_path(tmp_path):
    """A fresh warehouse per test: these tests write."""
    book = tmp_path / "sales.xlsx"
    workbook.write(sales_system(), book)
    wh = Warehouse(tmp_path / "wh.duckdb", linger=0)
    import_system(wh, book, by="test", scope=Scope.all())
    wh.close()
    return tmp_path / "wh.duckdb"


@pytest.fixture(autouse=True)
def exports(tmp_path, monkeypatch) -> Path:
    """The folder sources may read here (the warehouse lies beside it)."""
    folder = tmp_path / "exports"
    folder.mkdir()
    monkeypatch.setenv("KPI_SOURCE_DIRS", str(folder))
    return folder


@pytest.fixture
def erp(exports) -> Path:
    return make_erp(exports / "erp.db")


def make_erp(path: Path) -> Path:
    """An ERP's order lines in a real SQLite file."""
    con = sqlite3.connect(path)
    con.execute(
        "CREATE TABLE orders (order_no TEXT, order_date TEXT, region TEXT, amount REAL, "
        "status TEXT, customer TEXT)"
    )
    con.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?)", ORDERS)
    con.commit()
    con.close()
    return path


def url_of(path: Path) -> str:
    return f"sqlite:///{path}"


def erp_source(path: Path, name: str = "ERP orders", query: str = "SELECT * FROM orders"):
    mapping = profile.Profile(
        name="",
        date_column="order_date",
        unit_column="region",
        unit_map=dict(REGIONS),
        measures=[
            profile.Measure("REV", "sum", "amount", [profile.Filter("status", "!=", "cancelled")])
        ],
    )
    return sources.Source(name, url_of(path), query, mapping, row_limit=1000, timeout_s=30)


def save_source(warehouse: Path, source: sources.Source) -> None:
    wh = Warehouse(warehouse, linger=0)
    try:
        sources.save(wh, source, SYSTEM)
    finally:
        wh.close()


def expected_revenue(path: Path) -> dict[tuple[str, str], float]:
    """Independently of the app: shipped revenue by unit and month, summed by SQLite itself."""
    con = sqlite3.connect(path)
    try:
        rows = con.execute(
            "SELECT region, substr(order_date, 1, 7), sum(amount) FROM orders "
            "WHERE status <> 'cancelled' GROUP BY 1, 2"
        ).fetchall()
    finally:
        con.close()
    return {(REGIONS[r], m): v for r, m, v in rows if r in REGIONS}


def revenue(warehouse: Path) -> dict[tuple[str, str], float]:
    """REV of EAST and NORTH by month, as the warehouse holds it."""
    wh = Warehouse(warehouse, linger=0)
    try:
        rows = wh.rows(
            """SELECT u.code, strftime(a.period, '%Y-%m'), a.value FROM actual a
               JOIN kpi k ON k.id = a.kpi_id JOIN org_unit u ON u.id = a.unit_id
               WHERE k.code = 'REV' AND u.code IN ('EAST', 'NORTH')"""
        )
    finally:
        wh.close()
    return {(u, m): v for u, m, v in rows}


def open_page(warehouse, monkeypatch, lang="en", user="admin") -> AppTest:
    return apptest.open_page(PAGE, warehouse, monkeypatch, lang, user)


def widget(widgets, suffix: str):
    """The widget whose key ends with `suffix` (the page keys its widgets by source)."""
    found = [w for w in widgets if (w.key or "").endswith(suffix)]
    assert len(found) == 1, [w.key for w in widgets]
    return found[0]


def editor_key(at: AppTest, part: str) -> str:
    """The key of the data editor whose key holds `part`."""
    found = [d.key for d in at.dataframe if d.editing_mode != "read_only" and part in d.key]
    assert len(found) == 1, found
    return found[0]


def frame_with(at, column: str):
    return next(d.value for d in at.dataframe if column in d.value.columns)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_page_runs_in_both_languages(wh_path, monkeypatch, lang):
    at = open_page(wh_path, monkeypatch, lang)
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value == ("Database sources" if lang == "en" else "数据库数据源")
    assert [t.label for t in at.tabs] == (
        ["Sources", "Define a source", "Pull", "History"]
        if lang == "en"
        else ["数据源列表", "定义数据源", "提取数据", "提取记录"]
    )
    assert at.info[0].value == (
        "No source is defined yet: define one under Define a source."
        if lang == "en"
        else "还没有数据源。请在“定义数据源”页定义一个。"
    )
    # The limits are visible before anything is run.
    assert widget(at.number_input, "_rows").value == sources.DEFAULT_ROW_LIMIT
    assert widget(at.number_input, "_secs").value == sources.DEFAULT_TIMEOUT_S
    links = [link.label for link in at.sidebar.get("page_link")]
    assert ("Sources" if lang == "en" else "数据源") in links


def test_viewers_and_heads_get_a_message(wh_path, monkeypatch):
    wh = Warehouse(wh_path, linger=0)
    users.save_user(
        wh, SYSTEM, "viewer_sales", display_name="", role="viewer", scope=["SALES"],
        password="a long password", create=True,
    )  # fmt: skip
    wh.close()
    at = open_page(wh_path, monkeypatch, user="viewer_sales")
    assert [i.value for i in at.info] == [
        "Only analysts and admins manage and pull sources; ask one of them if you need a pull."
    ]
    assert not at.tabs and not at.text_input
    # Nor does the navigation offer the page.
    assert "Sources" not in [link.label for link in at.sidebar.get("page_link")]


def test_define_test_connection_sample_map_and_save(wh_path, erp, monkeypatch):
    at = open_page(wh_path, monkeypatch)
    at.text_input(key="src_new_name").input("ERP orders").run()
    at.text_input(key="src_new_url").input(url_of(erp)).run()
    at.button(key="src_new_test").click().run()
    ok(at)
    assert [s.value for s in at.success] == [f"Connected: SQLite {sqlite3.sqlite_version}"]
    # Tables and their columns; picking one writes the query.
    assert at.selectbox(key="src_new_table").options == ["orders"]
    at.selectbox(key="src_new_table").set_value("orders").run()
    assert at.text_area(key="src_new_query").value == "SELECT * FROM orders"
    assert any(
        "Columns of **orders**: order\\_no, order\\_date, region" in m.value for m in at.markdown
    ), [m.value for m in at.markdown]
    at.button(key="src_new_sample").click().run()
    ok(at)
    sample = frame_with(at, "order_no")
    assert len(sample) == len(ORDERS) and sample.iloc[0]["region"] == "华东"

    # The mapping, with the Upload page's editor pieces.
    widget(at.selectbox, "_date").set_value("order_date")
    widget(at.selectbox, "_ucol").set_value("region").run()
    umap = next(d.value for d in at.dataframe if d.key == editor_key(at, "_umap_"))
    assert list(umap["value"]) == ["华东", "华北"]  # the sample's values, to map
    at.session_state[editor_key(at, "_umap_")] = {
        "edited_rows": {0: {"code": "EAST"}, 1: {"code": "NORTH"}},
        "added_rows": [],
        "deleted_rows": [],
    }
    at.session_state[editor_key(at, "_measures")] = {
        "edited_rows": {
            0: {"kpi": "REV", "column": "amount", "filter_column": "status",
                "filter_op": "!=", "filter_value": "cancelled"}
        },
        "added_rows": [],
        "deleted_rows": [],
    }  # fmt: skip
    widget(at.number_input, "_rows").set_value(1000)
    widget(at.number_input, "_secs").set_value(30).run()
    ok(at)
    assert not [i.value for i in at.info if "not complete" in i.value]
    save = at.button(key="src_new_save")
    assert not save.disabled
    save.click().run()
    ok(at)
    assert at.success[0].value == "Source 'ERP orders' saved; pull it under Pull."
    assert at.selectbox(key="src_pick").value == "ERP orders"

    wh = Warehouse(wh_path, linger=0)
    try:
        saved = sources.load(wh, "ERP orders")
        listed = sources.listing(wh)
    finally:
        wh.close()
    assert saved == erp_source(erp)
    assert list(listed["name"]) == ["ERP orders"]
    shown = frame_with(at, "Row limit")
    assert (shown.iloc[0]["Name"], shown.iloc[0]["URL"], shown.iloc[0]["Row limit"]) == (
        "ERP orders", url_of(erp), "1,000"
    )  # fmt: skip


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_literal_password_is_refused(wh_path, monkeypatch, lang):
    at = open_page(wh_path, monkeypatch, lang)
    at.text_input(key="src_new_name").input("ERP").run()
    at.text_input(key="src_new_url").input("postgresql+psycopg://kpi:s3cret@db.example.com/erp")
    at.text_area(key="src_new_query").input("SELECT * FROM orders").run()
    ok(at)
    said = (
        "the URL holds a password — it would be stored in plain text. Put it in the "
        "[source_secrets] section of .streamlit/secrets.toml or in an environment variable named "
        "KPI_SOURCE_SECRET_…, and write user:${secrets.source_secrets.erp}@host or "
        "user:${KPI_SOURCE_SECRET_ERP}@host in its place"
    )
    if lang == "zh":
        said = (
            "连接地址中含有密码——它会以明文保存。请把密码放在 .streamlit/secrets.toml 的 "
            "[source_secrets] 段，或名为 KPI_SOURCE_SECRET_… 的环境变量中，并在地址中改写为 "
            "user:${secrets.source_secrets.erp}@host 或 user:${KPI_SOURCE_SECRET_ERP}@host"
        )
    # Shown with its `$` escaped, so Markdown does not typeset the references as a formula.
    assert [e.value for e in at.error] == [said.replace("$", "\\$")]
    # Neither tried nor stored.
    assert at.button(key="src_new_test").disabled
    assert at.button(key="src_new_save").disabled
    # Written the way the help says, the same URL is taken.
    at.text_input(key="src_new_url").input(
        "postgresql+psycopg://kpi:${secrets.source_secrets.erp}@db.example.com/erp"
    ).run()
    assert not at.error and not at.button(key="src_new_test").disabled


def test_a_query_that_writes_is_refused(wh_path, erp, monkeypatch):
    at = open_page(wh_path, monkeypatch, "zh")
    at.text_input(key="src_new_url").input(url_of(erp))
    at.text_area(key="src_new_query").input("DELETE FROM orders").run()
    assert [e.value for e in at.error] == ["只有 SELECT（或 WITH … SELECT）查询可以作为数据源"]
    assert at.button(key="src_new_sample").disabled


def test_a_connection_that_fails_says_why(wh_path, exports, monkeypatch):
    at = open_page(wh_path, monkeypatch, "zh")
    missing = exports / "nowhere.db"
    at.text_input(key="src_new_url").input(url_of(missing)).run()
    at.button(key="src_new_test").click().run()
    ok(at)
    assert [e.value for e in at.error] == [f"文件 {missing} 不存在"]
    assert not at.success


SECRETS = '[source_secrets]\nerp = "ERP-SECRET-4711"\n[push]\nsmtp_password = "SMTP-SECRET-4711"\n'


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_new_refusals_are_clear_messages_in_both_languages(
    wh_path, tmp_path, exports, monkeypatch, lang
):
    """Secret references outside the password or the sources' vault, files outside the allowed
    folders, URL options that reach past the database, queries that are not one SELECT: a
    message in the page's language, never a traceback, never a secret's value."""
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(SECRETS, encoding="utf-8")
    monkeypatch.setenv("KPI_SECRETS", str(secrets))
    export = exports / "orders.csv"
    export.write_text("order_date,region,amount\n2024-11-05,华东,1\n", encoding="utf-8")
    at = open_page(wh_path, monkeypatch, lang)
    at.text_input(key="src_new_name").input("x").run()
    urls = [
        "sqlite:////srv/${secrets.push.smtp_password}.db",
        "postgresql+psycopg://kpi:${secrets.push.smtp_password}@db.example.com/erp",
        "postgresql+psycopg://kpi@db.example.com/erp?password=x",
        "postgresql+psycopg://kpi@db.example.com/erp?sslkey=/etc/shadow",
        f"csv://{tmp_path / 'elsewhere.csv'}",
        f"csv://{wh_path}",
    ]
    for url in urls:
        at.text_input(key="src_new_url").input(url).run()
        ok(at)
        said = [e.value for e in at.error]
        assert len(said) == 1 and "4711" not in said[0], (url, said)
        assert (lang == "zh") == bool(CJK.search(said[0])), said
        assert at.button(key="src_new_test").disabled and at.button(key="src_new_save").disabled
    at.text_input(key="src_new_url").input(f"csv://{export}").run()
    for query in (
        f"SELECT content FROM read_text('{secrets}')",
        "SELECT '--' AS a) x; COPY (SELECT 42) TO '/tmp/pwned.csv'; SELECT * FROM (SELECT 1 AS b",
        "ATTACH 'x.duckdb' AS w",
    ):
        at.text_area(key="src_new_query").input(query).run()
        ok(at)
        if at.button(key="src_new_sample").disabled:  # refused before it runs
            said = [e.value for e in at.error]
        else:  # refused by the DuckDB that reads the export
            at.button(key="src_new_sample").click().run()
            ok(at)
            said = [e.value for e in at.error]
        assert len(said) == 1 and "4711" not in said[0], (query, said)
        assert (lang == "zh") == bool(CJK.search(said[0])), said
        assert not [d for d in at.dataframe if "4711" in d.value.to_csv()]


def pull(at: AppTest, months: str = "all") -> None:
    at.radio(key="src_months").set_value(months).run()
    at.button(key="src_pull").click().run()
    ok(at)


def test_pull_report_load_and_values_equal_sqlite(wh_path, erp, monkeypatch):
    save_source(wh_path, erp_source(erp))
    before = revenue(wh_path)
    expected = expected_revenue(erp)
    at = open_page(wh_path, monkeypatch)
    at.selectbox(key="src_pick").set_value("ERP orders").run()
    # Nothing pulled yet: "only new months" reads them all.
    labels = dict(zip(at.radio(key="src_months").options, ["new", "all", "range"], strict=True))
    assert "Only new months (never pulled: all of them)" in labels
    at.button(key="src_pull").click().run()
    ok(at)

    counts = {m.label: m.value for m in at.metric}
    new = sum(1 for k in expected if k not in before)
    changed = sum(1 for k, v in expected.items() if k in before and before[k] != v)
    assert (counts["New"], counts["Changed"], counts["Invalid (left out)"]) == (
        str(new), str(changed), "0"
    )  # fmt: skip
    assert (new, changed) == (1, 4)
    assert any("Source: **ERP orders**" in m.value for m in at.markdown)
    assert at.success[0].value == "No problems found."
    # The measure's KPI is shown as the source's binding before anything is loaded.
    bound = frame_with(at, "Matched by").to_dict("records")
    assert [(b["KPI"], b["Matched by"], b["Status"]) for b in bound] == [
        ("REV · Revenue", "source", "✔ OK")
    ]
    preview = frame_with(at, "Before")
    east = preview[(preview["Unit"] == "EAST · East region") & (preview["Month"] == "2024-12")]
    assert (east.iloc[0]["Before"], east.iloc[0]["After"]) == ("2,900,000.0 CNY", "3,000,000.0 CNY")
    # Read, not written, until Load is clicked.
    assert revenue(wh_path) == before

    at.button(key="src_commit").click().run()
    ok(at)
    assert [s.value for s in at.success] == [
        "Loaded as batch 2: 1 new, 4 changed, 0 removed, 0 unchanged, 0 left out."
    ]
    after = revenue(wh_path)
    assert {k: after[k] for k in expected} == pytest.approx(expected)
    assert all(after[k] == v for k, v in before.items() if k not in expected)
    history = frame_with(at, "Batch")
    assert history.iloc[0][["Batch", "Kind", "Source", "Months", "Status"]].tolist() == [
        2, "Database pull", "ERP orders", "2024-11, 2024-12, 2025-01", "Loaded"
    ]  # fmt: skip

    # Pulled again, unchanged: nothing to write.
    pull(at, "all")
    assert {m.label: m.value for m in at.metric}["Unchanged"] == "5"
    at.button(key="src_commit").click().run()
    assert [i.value for i in at.info][0] == (
        "Nothing changed — the warehouse already holds these values."
    )
    # Only new months: nothing after January.
    pull(at, "new")
    assert "There is nothing new after 2025-01." in [i.value for i in at.info]
    assert at.button(key="src_commit").disabled


def test_pull_a_range_of_months(wh_path, erp, monkeypatch):
    save_source(wh_path, erp_source(erp))
    at = open_page(wh_path, monkeypatch)
    at.selectbox(key="src_pick").set_value("ERP orders").run()
    at.radio(key="src_months").set_value("range").run()
    at.selectbox(key="src_from").set_value(date(2024, 12, 1))
    at.selectbox(key="src_to").set_value(date(2024, 12, 1)).run()
    at.button(key="src_pull").click().run()
    ok(at)
    assert {m.label: m.value for m in at.metric}["Changed"] == "2"
    at.button(key="src_commit").click().run()
    expected = expected_revenue(erp)
    after = revenue(wh_path)
    assert after[("EAST", "2024-12")] == expected[("EAST", "2024-12")]
    assert after[("EAST", "2024-11")] == 2_900_000  # outside the range: untouched
    # A range that runs backwards is refused before anything is read.
    at.selectbox(key="src_from").set_value(date(2025, 1, 1)).run()
    assert at.button(key="src_pull").disabled
    assert [e.value for e in at.error] == ["The first month is after the last one."]


def test_roll_back_a_pull_through_the_page(wh_path, erp, monkeypatch):
    before = revenue(wh_path)
    wh = Warehouse(wh_path, linger=0)
    try:
        source = erp_source(erp)
        sources.save(wh, source, SYSTEM)
        batch = service.commit_actuals(
            wh, sources.prepare_pull(wh, source, SYSTEM), SYSTEM
        ).batch_id
    finally:
        wh.close()
    assert revenue(wh_path) != before

    at = open_page(wh_path, monkeypatch)
    history = frame_with(at, "Batch")
    assert list(history["Batch"]) == [batch]  # pulls only: the workbook's batch is not here
    assert at.selectbox(key="src_rb_batch").value == batch
    at.text_input(key="src_rb_reason").input("wrong ERP").run()
    at.button(key="src_rb_ask").click().run()
    assert any(f"Roll back batch {batch} (ERP orders)?" in w.value for w in at.warning)
    assert revenue(wh_path) != before  # asked first: nothing undone yet
    at.button(key="src_rb_yes").click().run()
    ok(at)
    assert at.success[0].value == f"Batch {batch} rolled back: 4 value(s) restored, 1 removed."
    assert revenue(wh_path) == before
    history = frame_with(at, "Batch")
    assert history.iloc[0]["Status"] == "Rolled back"


def test_a_pull_with_problems_in_chinese(wh_path, erp, monkeypatch):
    con = sqlite3.connect(erp)
    con.execute("INSERT INTO orders VALUES ('S8', '2024-12-28', '西南', 5.0, 'shipped', 'c7')")
    con.commit()
    con.close()
    save_source(wh_path, erp_source(erp))
    at = open_page(wh_path, monkeypatch, "zh")
    at.selectbox(key="src_pick").set_value("ERP orders").run()
    pull(at, "all")
    problems = frame_with(at, "问题")
    bad = problems.iloc[0]
    assert (bad["文件"], bad["列"], bad["问题"]) == (
        "数据源“ERP orders”",
        "region",
        "未知组织“西南”",
    )
    assert bad["级别"].endswith("错误")
    assert at.error[0].value.startswith(
        "发现 1 个错误、0 个警告。有错误的数值不会导入；请修改查询或映射"
    )
    # Loading the valid values takes a confirmation.
    assert at.button(key="src_commit").disabled
    at.checkbox[0].check().run()
    at.button(key="src_commit").click().run()
    ok(at)
    assert at.success[0].value.startswith("已写入，批次号 2")
    after = revenue(wh_path)
    assert after[("EAST", "2024-12")] == expected_revenue(erp)[("EAST", "2024-12")]


def test_a_saved_source_is_edited_and_deleted(wh_path, erp, monkeypatch):
    save_source(wh_path, erp_source(erp))
    at = open_page(wh_path, monkeypatch)
    at.selectbox(key="src_pick").set_value("ERP orders").run()
    # The saved mapping is editable before the database is reached: its own columns.
    assert widget(at.selectbox, "_date").value == "order_date"
    assert widget(at.selectbox, "_ucol").value == "region"
    widget(at.number_input, "_secs").set_value(45).run()
    widget(at.button, "_save").click().run()
    ok(at)
    wh = Warehouse(wh_path, linger=0)
    try:
        assert sources.load(wh, "ERP orders").timeout_s == 45
        assert sources.load(wh, "ERP orders").mapping == erp_source(erp).mapping
    finally:
        wh.close()
    widget(at.button, "_delete").click().run()
    assert at.warning[0].value.startswith("Delete source 'ERP orders'?")
    widget(at.button, "_delete_yes").click().run()
    ok(at)
    assert at.success[0].value == "Source 'ERP orders' deleted."
    assert at.selectbox(key="src_pick").value is None


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_mapping_is_checked_against_the_sample(wh_path, erp, monkeypatch, lang):
    # A measure's expression and filter name columns the query does not return ("qty", "state"),
    # as the Upload profile editor checks a profile against its sheet: said before saving, by
    # the measure, and Save is off until they are fixed.
    source = erp_source(erp)
    source.mapping.measures = [
        profile.Measure("REV", "sum", "=[amount] * [qty]", [profile.Filter("state", "!=", "x")])
    ]
    save_source(wh_path, source)
    at = open_page(wh_path, monkeypatch, lang)
    at.selectbox(key="src_pick").set_value("ERP orders").run()
    widget(at.button, "_sample").click().run()
    ok(at)
    assert len(frame_with(at, "order_no")) == len(ORDERS)
    said = "\n".join(i.value for i in at.info).replace("\\", "")
    wanted = [
        Message("pf_measure_kpi", i=1, kpi="REV", problem=Message("pf_not_in_result", column=c))
        for c in ("qty", "state")
    ]
    for message in wanted:
        assert message.render(lang) in said, said
    assert "measure 1 (REV): the column 'qty' is not in the query's result" in str(wanted[0])
    if lang == "zh":
        assert "not in the query" not in said and "查询结果中没有“qty”列" in said, said
    assert widget(at.button, "_save").disabled

    # Fixed in the editor, the mapping is complete and saves.
    at.session_state[editor_key(at, "_measures")] = {
        "edited_rows": {0: {"expression": "[amount] * 2", "filter_column": "status"}},
        "added_rows": [],
        "deleted_rows": [],
    }
    at.run()
    ok(at)
    said = "\n".join(i.value for i in at.info)
    assert "qty" not in said and "state" not in said, said
    save = widget(at.button, "_save")
    assert not save.disabled
    save.click().run()
    ok(at)
    wh = Warehouse(wh_path, linger=0)
    try:
        measure = sources.load(wh, "ERP orders").mapping.measures[0]
    finally:
        wh.close()
    assert (measure.column, measure.filters[0].column) == ("=[amount] * 2", "status")


# --- the page's helpers, and the core's words in Chinese --------------------------------------


def test_a_picked_table_is_quoted_where_the_database_needs_it():
    pg = "postgresql+psycopg://u:${PG_PASSWORD}@h/db"
    assert identifier("orders", pg) == "orders"
    assert identifier("sales.Orders", pg) == 'sales."Orders"'
    assert identifier("订单 明细", "sqlite:////x.db") == '"订单 明细"'
    assert identifier("Orders", "mysql+pymysql://u@h/db") == "`Orders`"
    tables = {"sales.Orders": ["a"], "orders": ["b"]}
    assert query_table('select * from sales."Orders";', tables, pg) == "sales.Orders"
    assert query_table("SELECT a FROM orders", tables, pg) is None


def test_helpers():
    assert month_choices(date(2026, 1, 15), 3) == [
        date(2026, 1, 1), date(2025, 12, 1), date(2025, 11, 1)
    ]  # fmt: skip
    m = erp_source(Path("/x.db")).mapping
    assert mapped_columns(m) == ["order_date", "region", "amount", "status"]


def messages_of_the_core(tmp_path) -> list[KpiError | Message | str]:
    """Refusals and problems the core says about sources, made by the core itself."""
    said = []

    def refused(work) -> None:
        with pytest.raises(sources.SourceError) as exc:
            work()
        said.append(exc.value)

    refused(lambda: sources.check_url("postgresql+psycopg://u:secret@h/db"))
    refused(lambda: sources.check_url("not a url"))
    refused(lambda: sources.check_query(""))
    refused(lambda: sources.check_query("SELECT 1; SELECT 2"))
    refused(lambda: sources.check_query("UPDATE orders SET amount = 0"))
    refused(lambda: sources.check_query("SELECT * FROM orders FOR UPDATE"))
    refused(lambda: sources.check_query("WITH d AS (DELETE FROM t RETURNING *) SELECT 1"))
    refused(lambda: sources.check_query("SELECT TOP 1 a FROM t; DROP TABLE t", "mssql://u@h/d"))
    exports = tmp_path / "exports"
    refused(lambda: sources.test_connection(url_of(exports / "none.db")))
    refused(lambda: sources.test_connection("sqlite://"))
    refused(lambda: sources.test_connection(f"csv://{exports}/none.csv"))
    refused(lambda: sources.test_connection(f"csv://{tmp_path}/elsewhere.csv"))
    refused(lambda: sources.test_connection("csv://relative.csv"))
    refused(lambda: sources.test_connection(f"csv://{exports}/${{KPI_SOURCE_SECRET_X}}.csv"))
    (tmp_path / "db.csv").write_bytes((tmp_path / "wh.duckdb").read_bytes())
    (exports / "db.csv").symlink_to(tmp_path / "db.csv")
    refused(lambda: sources.test_connection(f"csv://{exports}/db.csv"))  # outside, once resolved
    (exports / "copy.csv").write_bytes((tmp_path / "wh.duckdb").read_bytes())
    refused(lambda: sources.test_connection(f"csv://{exports}/copy.csv"))
    refused(lambda: sources.test_connection("nosuchdb://h/db"))
    refused(lambda: sources.test_connection("postgresql+psycopg://u@/db"))
    refused(lambda: sources.test_connection("postgresql+psycopg://u@h/db?passfile=/x"))
    refused(lambda: sources.test_connection("postgresql+psycopg://${KPI_SOURCE_SECRET_X}@h/db"))
    refused(lambda: sources.test_connection("postgresql+psycopg://u:${secrets.push.x}@h/db"))
    refused(lambda: sources.test_connection("postgresql+psycopg://u:${KPI_SOURCE_SECRET_NO}@h/db"))
    refused(
        lambda: sources.test_connection("postgresql+psycopg://u:${secrets.source_secrets.no}@h/db")
    )
    said.append(sources.TimeLimit())
    said.append(
        sources.explain(RuntimeError("the server requested authentication method requirement"
                                          " failed"), "postgresql+psycopg://u@h/d")
    )  # fmt: skip
    said.append(sources.explain(RuntimeError("not authorized"), "sqlite:////x.db"))
    broken = sources.Source(
        "", "postgresql://u:pw@h/db", "SELECT 1 FROM x WHERE a IN (DELETE)",
        profile.Profile(name="", date_column="d", measures=[profile.Measure("REV", "sum")]),
        row_limit=0,
    )  # fmt: skip
    said += broken.problems()
    refused(lambda: sources.prepare_pull(None, broken, SYSTEM))
    return said


def test_every_source_message_is_said_in_chinese(tmp_path, wh_path, erp):
    said = messages_of_the_core(tmp_path)
    # Findings of a pull, and where its values came from.
    wh = Warehouse(wh_path, linger=0)
    try:
        for query in (
            "SELECT * FROM orders WHERE 1 = 0",  # no rows
            "SELECT order_date AS d, region, amount, status FROM orders",  # a missing column
            "SELECT 'soon' AS order_date, region, 'lots' AS amount, status FROM orders",
        ):
            it = sources.prepare_pull(wh, erp_source(erp, query=query), SYSTEM)
            said += [t for f in it.findings for t in (f.message, f.hint, f.file, f.column or "")]
        with pytest.raises(NotFoundError) as exc:
            sources.load(wh, "nothing")
        said.append(exc.value)
    finally:
        wh.close()
    said += [
        places.measure(places.source("ERP orders"), 2),
        Message("so_returns", columns=Items(["a", "b"], commas=True)),
    ]
    said = [s for s in said if str(s) not in ("region", "d", "amount", "order_date")]
    assert untranslated(said) == []


# --- a real PostgreSQL server (tests/pgserver.py) ---------------------------------------------


@pytest.fixture
def pg_erp(postgres) -> str:
    """The same order lines in PostgreSQL, readable by the login role that only reads."""
    db = "kpi_sources_page"
    postgres.create_database(db, drop=True)
    postgres.execute(
        "CREATE TABLE orders (order_no text, order_date date, region text, amount numeric, "
        "status text, customer text)",
        db=db,
    )
    for row in ORDERS:
        postgres.execute("INSERT INTO orders VALUES (%s, %s, %s, %s, %s, %s)", row, db=db)
    postgres.grant_read(db)
    return db


def test_a_postgres_source_through_the_page(wh_path, erp, postgres, pg_erp, monkeypatch):
    """The password comes from the environment, named in the URL; the connection test, the
    tables, a wrong password in Chinese, and a pull through COPY equal SQLite's own sums."""
    monkeypatch.setenv("KPI_SOURCE_SECRET_PAGE", postgres.reader_password)
    monkeypatch.setenv("KPI_SOURCE_SECRET_WRONG", "not-the-password")
    url = postgres.url(user=postgres.reader, password="${KPI_SOURCE_SECRET_PAGE}", db=pg_erp)
    wrong = postgres.url(user=postgres.reader, password="${KPI_SOURCE_SECRET_WRONG}", db=pg_erp)

    at = open_page(wh_path, monkeypatch, "zh")
    at.text_input(key="src_new_url").input(wrong).run()
    at.button(key="src_new_test").click().run()
    ok(at)
    refused = [e.value for e in at.error]
    assert len(refused) == 1 and "用户名或密码错误" in refused[0], refused
    assert "not-the-password" not in refused[0] and sources.mask(wrong) in refused[0]

    at.text_input(key="src_new_url").input(url).run()
    at.button(key="src_new_test").click().run()
    ok(at)
    assert at.success[0].value.startswith("连接成功：PostgreSQL ")
    before = [w.value for w in at.warning]  # the page's own (a warehouse without users)
    assert not [w for w in before if "账号" in w]  # the reader only reads
    assert "orders" in at.selectbox(key="src_new_table").options
    # A superuser's account is taken, with a clear warning.
    monkeypatch.setenv("KPI_SOURCE_SECRET_ADMIN", postgres.password)
    at.text_input(key="src_new_url").input(
        postgres.url(password="${KPI_SOURCE_SECRET_ADMIN}", db=pg_erp)
    ).run()
    at.button(key="src_new_test").click().run()
    ok(at)
    assert sorted(w.value for w in at.warning) == sorted([
        *before,
        "该账号是超级用户：可以读写服务器上的一切，还能读写服务器的文件。数据源请使用只能读取的账号。",
    ])  # fmt: skip
    assert postgres.password not in " ".join(m.value for m in [*at.success, *at.warning])
    at.text_input(key="src_new_url").input(url).run()

    source = erp_source(erp)
    source.url = url
    save_source(wh_path, source)
    at.run()  # the picker offers the source saved meanwhile
    at.selectbox(key="src_pick").set_value("ERP orders").run()
    at.button(key="src_pull").click().run()
    ok(at)
    assert {m.label: m.value for m in at.metric}["新增"] == "1"
    at.button(key="src_commit").click().run()
    ok(at)
    assert any(s.value.startswith("已写入，批次号 2") for s in at.success)
    after = revenue(wh_path)
    expected = expected_revenue(erp)
    assert {k: after[k] for k in expected} == pytest.approx(expected)


def test_a_csv_export_is_a_source(wh_path, erp, exports, monkeypatch):
    """An export read by DuckDB as a table named after the file, mapped and pulled the same way."""
    export = exports / "orders.csv"
    con = sqlite3.connect(erp)
    rows = con.execute("SELECT * FROM orders").fetchall()
    con.close()
    export.write_text(
        "order_no,order_date,region,amount,status,customer\n"
        + "".join(",".join(str(v) for v in r) + "\n" for r in rows),
        encoding="utf-8",
    )
    at = open_page(wh_path, monkeypatch)
    at.text_input(key="src_new_url").input(f"csv://{export}").run()
    at.button(key="src_new_test").click().run()
    ok(at)
    shown = at.success[0].value.replace("\\", "")  # Markdown escapes
    assert shown.startswith("Connected: orders.csv: CSV file, ")
    at.selectbox(key="src_new_table").set_value("orders").run()
    assert at.text_area(key="src_new_query").value == "SELECT * FROM orders"

    source = erp_source(erp)
    source.url = f"csv://{export}"
    save_source(wh_path, source)
    at.run()
    at.selectbox(key="src_pick").set_value("ERP orders").run()
    pull(at, "all")
    assert {m.label: m.value for m in at.metric}["Changed"] == "4"
    at.button(key="src_commit").click().run()
    ok(at)
    after = revenue(wh_path)
    expected = expected_revenue(erp)
    assert {k: after[k] for k in expected} == pytest.approx(expected)


def test_a_measure_of_an_expression_round_trips_through_the_editor_rows():
    from kpi_core.ui.intake_frames import measures_frame, measures_from

    p = profile.Profile(
        name="x",
        date_column="d",
        unit="EAST",
        measures=[
            profile.Measure("REV", "sum", "=[单价] * [数量] * (1 - [折扣])"),
            profile.Measure("REV", "avg", "amount", [profile.Filter("status", "=", "shipped")]),
        ],
    )
    rows = measures_frame(p)
    assert list(rows["column"]) == [None, "amount"]
    assert rows.iloc[0]["expression"] == "[单价] * [数量] * (1 - [折扣])"
    assert measures_from(rows) == p.measures
    # An expression typed with its '=' (or with a column picked as well) still reads as one.
    rows.loc[0, ["column", "expression"]] = ["amount", "=[a] * 2"]
    assert measures_from(rows)[0].column == "=[a] * 2"
