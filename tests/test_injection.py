"""Injection attempts in every text a user can fill (issue 8): no SQL is executed, no HTML or
script is rendered, Excel exports neutralise cells beginning with = + - @, and password hashes
never appear in logs, exports or the command line's output.

Real parts throughout: copies of the demo warehouse, workbooks written by openpyxl and read back,
pages through AppTest, and one real Chromium for what a browser actually does with the text.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import zipfile
from datetime import date, datetime

import openpyxl
import pandas as pd
import pytest

from kpi_core import (
    audit,
    auth,
    export,
    formula,
    library_edits,
    push,
    review,
    service,
    users,
    workbook,
)
from kpi_core.access import SYSTEM, Actor, Scope
from kpi_core.catalog import load_catalog
from kpi_core.errors import KpiError
from kpi_core.ingest import intake, profile, sources, template
from kpi_core.ingest.profile import Filter, Measure, Profile
from kpi_core.system_import import import_system
from kpi_core.tree_view import dot_string
from kpi_core.warehouse import Warehouse
from tests.apptest import ROOT, ok
from tests.test_pages import run

DROP = "'); DROP TABLE actual; --"
OR_TRUE = "' OR '1'='1"
SCRIPT = "<script>window.__x=1</script>"
IMG = "<img src=x onerror=alert(1)>"
TEMPLATE = "{{7*7}}"
HYPERLINK = '=HYPERLINK("http://evil","x")'
DDE = "+cmd|' /C calc'!A0"
MINUS = "-2+3"
AT = "@SUM(1)"
NUL = "a\x00b"
LONG = "长" * 3000 + DROP
# What a page or an export must keep literal (the NUL is dropped where a file cannot hold it).
PAYLOADS = [DROP, OR_TRUE, SCRIPT, IMG, TEMPLATE, HYPERLINK, DDE, MINUS, AT, LONG]
FORMULA_LIKE = [HYPERLINK, DDE, MINUS, AT, "=1+1", "\t=1+1", "\r=1+1", " =1+1"]
BROWSER_XSS = '<img src=x onerror="window.__xss=1">'
TODAY = date(2026, 11, 21)  # the demo's actuals end 2026-10


# --- helpers ---------------------------------------------------------------------------------


def tables(wh: Warehouse) -> dict[str, int]:
    names = [
        r[0]
        for r in wh.rows(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' ORDER BY 1"
        )
    ]
    return {n: wh.one(f'SELECT count(*) FROM "{n}"')[0] for n in names}


def intact(wh: Warehouse, before: dict[str, int], changed: set[str] = frozenset()) -> None:
    """Every table is still there; the ones not expected to change kept their row counts."""
    after = tables(wh)
    assert set(after) == set(before)
    assert {t: after[t] for t in before if t not in changed} == {
        t: before[t] for t in before if t not in changed
    }


def no_formula_cells(data: bytes) -> list[str]:
    """Every text cell of every sheet; fails on any formula cell."""
    book = openpyxl.load_workbook(io.BytesIO(data))
    texts = []
    for ws in book.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (ws.title, cell.coordinate, cell.value)
                if isinstance(cell.value, str):
                    texts.append(cell.value)
    return texts


def shown(text: str, cells: list[str]) -> bool:
    """`text` is in a cell as written, or behind the apostrophe that neutralises it (a file
    keeps a carriage return as a line feed)."""
    text = text.replace("\r", "\n")
    return text in cells or "'" + text in cells


def payload_kpi(wh: Warehouse, name: str, code: str = "REV") -> None:
    """Rename a demo KPI (both languages) and give it a hostile caliber, owner and source."""
    cat = load_catalog(wh)
    fields = library_edits.fields_of(cat.kpi(code))
    fields.update(name_zh=name, name_en=name, caliber=SCRIPT, owner=OR_TRUE, source=HYPERLINK)
    library_edits.save_kpi(wh, fields, SYSTEM)


def payload_unit(wh: Warehouse, code: str, name: str, tmp_path) -> None:
    cat = load_catalog(wh)
    unit = cat.unit(code)
    parent = cat.units[unit.parent_id].code if unit.parent_id else None
    frame = pd.DataFrame(
        [[code, name, name, parent, unit.kind]],
        columns=["code", "name_zh", "name_en", "parent", "kind"],
    )
    import_system(wh, workbook.to_bytes({"org_units": frame}), by="test", scope=Scope.all())


def poison(wh: Warehouse, text: str, tmp_path) -> None:
    """The demo with `text` as the revenue KPI's name, the sales department's name, a comment
    with an action on sales revenue, and an owner of that action."""
    payload_kpi(wh, text)
    payload_unit(wh, "SALES", text, tmp_path)
    cat = load_catalog(wh)
    review.add_comment(
        wh, SYSTEM, cat.kpi("REV").id, cat.unit("SALES").id, date(2026, 10, 1), text,
        action=text, owner=text[:100], due=date(2026, 12, 31),
    )  # fmt: skip


# --- 1. SQL: stored and shown literally, nothing executed -------------------------------------


def test_kpi_names_and_definitions_are_stored_literally(demo_wh):
    before = tables(demo_wh)
    cat = load_catalog(demo_wh)
    base = library_edits.fields_of(cat.kpi("REV"))
    for i, text in enumerate([*PAYLOADS, NUL]):
        code = f"INJ{i}"
        fields = dict(base, code=code, name_zh=text, name_en=text, caliber=text, owner=text[:200])
        library_edits.save_kpi(demo_wh, fields, SYSTEM)
        kpi = load_catalog(demo_wh).kpi(code)
        expected = "ab" if text == NUL else text  # a control character cannot be in a workbook
        assert (kpi.name_zh, kpi.name_en, kpi.caliber) == (expected, expected, expected)
    intact(demo_wh, before, {"kpi", "audit", "batch"})
    assert tables(demo_wh)["kpi"] == before["kpi"] + len(PAYLOADS) + 1

    # A hostile code is refused with the cell named; nothing is written.
    before = tables(demo_wh)
    for code in (DROP, OR_TRUE, SCRIPT, HYPERLINK):
        with pytest.raises(KpiError, match=r"Sheet 'kpis', row 2, column 'code'"):
            library_edits.save_kpi(demo_wh, dict(base, code=code), SYSTEM)
    intact(demo_wh, before)


def test_system_workbook_import_keeps_names_and_refuses_bad_codes(demo_wh, tmp_path):
    before = tables(demo_wh)
    kpis = pd.DataFrame(
        [[f"X{i}", text, text, "元", "up", "sum"] for i, text in enumerate(PAYLOADS)],
        columns=["code", "name_zh", "name_en", "unit", "direction", "aggregation"],
    )
    units = pd.DataFrame(
        [["INJ_UNIT", DROP, IMG, "GROUP", "department"]],
        columns=["code", "name_zh", "name_en", "parent", "kind"],
    )
    path = tmp_path / "system.xlsx"
    workbook.write({"kpis": kpis, "org_units": units}, path)
    import_system(demo_wh, path, by="test", scope=Scope.all())
    cat = load_catalog(demo_wh)
    for i, text in enumerate(PAYLOADS):
        assert cat.kpi(f"X{i}").name_en == text and cat.kpi(f"X{i}").name_zh == text
    assert (cat.unit("INJ_UNIT").name_zh, cat.unit("INJ_UNIT").name_en) == (DROP, IMG)
    intact(demo_wh, before, {"kpi", "org_unit", "audit", "batch"})

    # Hostile text where a code or period belongs: refused, the cell named, nothing written.
    before = tables(demo_wh)
    actuals = pd.DataFrame(
        [
            [DROP, "REV", "2026-10", 1],
            ["SALES", OR_TRUE, "2026-10", 1],
            ["SALES", "REV", SCRIPT, 1],
        ],
        columns=["unit", "kpi", "period", "value"],
    )
    with pytest.raises(KpiError) as refused:
        import_system(
            demo_wh, workbook.to_bytes({"actuals": actuals}), by="test", scope=Scope.all()
        )
    said = str(refused.value)
    assert "row 2, column 'unit'" in said and "row 3, column 'kpi'" in said
    assert "row 4, column 'period'" in said
    intact(demo_wh, before)


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('x')",
        "AVAIL; DROP TABLE kpi",
        "AVAIL' OR '1'='1",
        "AVAIL /* x */",
        "AVAIL # x",
        "exec('x')",
        "lambda: 1",
        "AVAIL ** 2",
        SCRIPT,
        TEMPLATE,
        "AVAIL * PERF\x00",
    ],
)
def test_formula_parser_rejects_anything_but_arithmetic(text):
    with pytest.raises(formula.FormulaError):
        formula.parse(text)


@pytest.mark.parametrize("text", ["AVAIL.__class__", "[AVAIL for _ in ()]", "AVAIL -- x"])
def test_formula_parser_reads_odd_names_only_as_references(text, demo_wh):
    """Codes may hold dots, and profile columns are written [like this]: such text parses to
    references (data, never code), and the library refuses them as unknown KPIs."""

    def kinds(node):
        yield type(node)
        for child in (getattr(node, "left", None), getattr(node, "right", None),
                      getattr(node, "operand", None)):  # fmt: skip
            if child is not None:
                yield from kinds(child)

    node = formula.parse(text)
    assert set(kinds(node)) <= {formula.Num, formula.Ref, formula.BinOp, formula.Neg}
    assert "unknown" in str(library_edits.formula_problem(text, load_catalog(demo_wh), "X") or "")


def test_hostile_formula_kpi_is_refused(demo_wh):
    before = tables(demo_wh)
    cat = load_catalog(demo_wh)
    base = library_edits.fields_of(cat.kpi("OEE"))
    for text in ("__import__('os').system('x')", "AVAIL; DROP TABLE kpi", "AVAIL' OR '1'='1"):
        with pytest.raises(KpiError, match="column 'formula'"):
            library_edits.save_kpi(demo_wh, dict(base, code="EVIL", formula=text), SYSTEM)
        assert library_edits.formula_problem(text, cat, "EVIL")
    intact(demo_wh, before)
    assert demo_wh.one("SELECT formula FROM kpi WHERE code = 'OEE'")[0] == base["formula"]


def test_comments_actions_and_resolutions_are_stored_literally(demo_wh):
    cat = load_catalog(demo_wh)
    kpi, unit = cat.kpi("REV").id, cat.unit("SALES").id
    before = tables(demo_wh)
    texts = [t[: review.MAX_TEXT] for t in [*PAYLOADS, NUL]]
    made = {}
    for i, text in enumerate(texts):
        made[review.add_comment(
            demo_wh, SYSTEM, kpi, unit, date(2026, 10, 1), text,
            action=text[: review.MAX_SHORT], owner=text[: review.MAX_OWNER], due=date(2027, 1, i + 1),
        )] = text  # fmt: skip
    for cid, text in made.items():
        review.close_action(demo_wh, SYSTEM, cid, text[: review.MAX_SHORT])
    rows = review.comments(demo_wh, cat, SYSTEM, kpi_id=kpi, unit_id=unit)
    stored = rows.set_index("id")
    for cid, text in made.items():
        assert stored.loc[cid, "text"] == text
        assert stored.loc[cid, "action"] == text[: review.MAX_SHORT]
        assert stored.loc[cid, "owner"] == text[: review.MAX_OWNER]
        assert stored.loc[cid, "resolution"] == text[: review.MAX_SHORT]
    intact(demo_wh, before, {"comment", "audit"})
    assert tables(demo_wh)["comment"] == before["comment"] + len(texts)


def test_mapping_profiles_store_names_filters_and_value_maps_literally(demo_wh):
    analyst = Actor("analyst", "analyst", Scope.all())
    before = tables(demo_wh)
    for i, text in enumerate([DROP, OR_TRUE, SCRIPT, HYPERLINK, TEMPLATE, LONG]):
        p = Profile(
            name=f"{text}#{i}",
            date_column=text,
            unit_column=DROP,
            unit_map={text: "SALES", OR_TRUE: "PROD"},
            # A column starting with '=' is an expression: the parser refuses that one.
            measures=[Measure("REV", "sum", "Amount" if text[0] == "=" else text, [Filter(OR_TRUE, "=", text),
                                                   Filter(DROP, "in", f"{text},{SCRIPT}"),
                                                   Filter("Status", "contains", DROP)])],
        )  # fmt: skip
        profile.save(demo_wh, p, analyst)
        assert profile.load(demo_wh, p.name) == p
    intact(demo_wh, before, {"import_profile", "audit"})

    # A filter operator outside the list never reaches SQL: the profile is refused.
    bad = Profile("bad", "Date", [Measure("REV", "sum", "Amount", [Filter("A", "= 1 OR 1", "x")])],
                  unit="SALES")  # fmt: skip
    with pytest.raises(profile.ProfileError, match="filter operator"):
        profile.save(demo_wh, bad, analyst)


def upload_bytes(rows: list[list[object]]) -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "actuals"
    ws.append(["period", "unit", "kpi", "value"])
    for r, row in enumerate(rows, start=2):
        for c, value in enumerate(row, start=1):
            cell = ws.cell(r, c, value)
            if isinstance(value, str):
                cell.data_type = "s"  # the text itself, not a formula openpyxl would write
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def test_upload_cells_with_payloads_are_refused_naming_the_cell(demo_wh):
    rows = [
        ["2026-10", DROP, "REV", 1],  # row 2: unit
        ["2026-10", "SALES", SCRIPT, 1],  # row 3: KPI
        ["2026-10", "SALES", "REV", HYPERLINK],  # row 4: value
        [OR_TRUE, "SALES", "REV", 1],  # row 5: period
        ["2026-10", "SALES", "REV", DDE],  # row 6
        ["2026-10", "SALES", "REV", AT],  # row 7
        ["2026-10", "SALES", "REV", MINUS],  # row 8
        ["2026-10", IMG, TEMPLATE, LONG],  # row 9
    ]
    before = tables(demo_wh)
    got = intake.prepare(demo_wh, [("evil.xlsx", upload_bytes(rows))], SYSTEM, today=TODAY)
    errors = {(f.row, f.column): str(f.message) for f in got.errors}
    assert errors, "payloads must be refused"
    for row, column in [(2, "unit"), (3, "kpi"), (4, "value"), (5, "period"), (6, "value"),
                        (7, "value"), (8, "value")]:  # fmt: skip
        hits = [m for (r, c), m in errors.items() if r == row and c and column in c.lower()]
        assert hits, (row, column, errors)
    assert any(r == 9 for r, _ in errors)
    with pytest.raises(KpiError):
        service.commit_actuals(demo_wh, got, SYSTEM)
    intact(demo_wh, before)

    # A CSV: a formula-looking value is refused by its cell; one with a NUL byte as a whole.
    csv = 'period,unit,kpi,value\n2026-10,SALES,REV,"=1+1"\n2026-10,SALES,REV,@SUM(1)\n'
    got = intake.prepare(demo_wh, [("evil.csv", csv.encode())], SYSTEM, today=TODAY)
    assert {(f.row, f.column) for f in got.errors} >= {(2, "D (value)"), (3, "D (value)")}, (
        got.errors
    )
    with pytest.raises(KpiError, match="binary file"):
        intake.prepare(demo_wh, [("nul.csv", csv.replace("SALES", "SA\x00LES").encode())],
                       SYSTEM, today=TODAY)  # fmt: skip
    intact(demo_wh, before)


def test_user_display_names_are_stored_literally(demo_wh):
    before = tables(demo_wh)
    for i, text in enumerate([DROP, OR_TRUE, SCRIPT, IMG, HYPERLINK, TEMPLATE]):
        users.save_user(
            demo_wh, SYSTEM, f"inj{i}", display_name=text, role="viewer", scope=["SALES"],
            password="a-long-password", create=True,
        )  # fmt: skip
        assert (
            demo_wh.one("SELECT display_name FROM app_user WHERE name = ?", [f"inj{i}"])[0] == text
        )
    intact(demo_wh, before, {"app_user", "audit"})
    before = tables(demo_wh)
    for name in (DROP, OR_TRUE, SCRIPT):
        with pytest.raises(KpiError):
            users.save_user(demo_wh, SYSTEM, name, display_name="x", role="viewer",
                            scope=["SALES"], password="a-long-password", create=True)  # fmt: skip
    intact(demo_wh, before)


def test_push_channel_and_source_names_are_stored_literally(demo_wh, tmp_path, monkeypatch):
    before = tables(demo_wh)
    for i, text in enumerate([DROP, OR_TRUE, SCRIPT, HYPERLINK]):
        name = f"{text} {i}"
        push.save_channel(demo_wh, SYSTEM, name, "webhook", "http://127.0.0.1:9/hook")
        assert push.channel(demo_wh, name).name == name
    intact(demo_wh, before, {"push_channel", "audit"})

    (tmp_path / "exports").mkdir()
    monkeypatch.setenv("KPI_SOURCE_DIRS", str(tmp_path / "exports"))
    csv = tmp_path / "exports" / "orders.csv"
    csv.write_text("day,region,amount\n2026-10-03,East,10\n")
    before = tables(demo_wh)
    for i, text in enumerate([DROP, OR_TRUE, SCRIPT, HYPERLINK]):
        name = f"{text} {i}"
        mapping = Profile(name, "day", [Measure("REV", "sum", "amount",
                                                [Filter("region", "=", text)])],
                          unit_column="region", unit_map={text: "SALES"})  # fmt: skip
        sources.save(demo_wh, sources.Source(name, f"csv://{csv}", "SELECT * FROM orders",
                                             mapping), SYSTEM)  # fmt: skip
        assert sources.load(demo_wh, name).name == name
    intact(demo_wh, before, {"source", "audit"})
    # Pulled with the hostile filter value bound as a parameter: no row matches, nothing runs.
    pulled = sources.prepare_pull(demo_wh, sources.load(demo_wh, f"{DROP} 0"), SYSTEM,
                                  today=TODAY)  # fmt: skip
    assert pulled is not None
    intact(demo_wh, before, {"source", "audit"})


@pytest.mark.parametrize(
    ("page", "query"),
    [
        ("app.py", {"period": DROP}),
        ("pages/1_Board.py", {"unit": DROP, "period": OR_TRUE}),
        ("pages/1_Board.py", {"unit": SCRIPT, "period": IMG}),
        ("pages/5_Tree.py", {"unit": OR_TRUE, "period": DROP, "node": SCRIPT}),
        ("pages/7_Trends.py", {"unit": DROP, "kpi": OR_TRUE, "from": SCRIPT, "to": TEMPLATE}),
        ("pages/6_Targets.py", {"unit": DROP}),
        ("pages/8_Alerts.py", {"unit": OR_TRUE}),
    ],
)
def test_query_parameters_are_not_sql(page, query, own_file, monkeypatch):
    wh = Warehouse(own_file, linger=0)
    before = tables(wh)
    wh.close()
    at = run(page, own_file, monkeypatch, query)
    no_live_html(at)
    wh = Warehouse(own_file, linger=0)
    try:
        # Signing the test's browser in writes its session (and the cookie's key on first use).
        intact(wh, before, {"audit", "app_session", "app_secret"})
    finally:
        wh.close()


# --- 2. HTML and script: shown as text -------------------------------------------------------

RAW_TAG = re.compile(r"(?<!\\)<\s*(script|img|iframe|svg)\b", re.I)
# Markdown that would fetch an image or make a link from a name (a tracking pixel on the wall).
MD_IMAGE = "![seen](http://127.0.0.1:9/pixel.png)"
LIVE_LINK = re.compile(r"(?<!\\)\]\(http://127\.0\.0\.1:9")


def no_live_html(at) -> list[str]:
    """Every Markdown body (markdown, captions) that may render HTML holds no raw tag; st.html
    bodies hold no raw payload tag. Returns the bodies, to look for the payload's text."""
    bodies = []
    for m in [*at.markdown, *at.caption]:
        body = m.proto.body
        bodies.append(body)
        if m.proto.allow_html:
            assert not RAW_TAG.search(body), body
        assert not LIVE_LINK.search(body), body
    for h in at.get("html"):
        body = h.proto.body
        bodies.append(body)
        assert "<img src=x" not in body and "<script>window" not in body, body
    for a in [*at.info, *at.warning, *at.error, *at.success, *at.title, *at.header,
              *at.subheader, *at.text]:  # fmt: skip
        bodies.append(a.value)  # headings and alerts never render HTML; st.text is plain
    return bodies


@pytest.fixture
def poisoned(own_file, tmp_path):
    wh = Warehouse(own_file, linger=0)
    poison(wh, IMG + MD_IMAGE, tmp_path)
    cat = load_catalog(wh)
    ids = (cat.kpi("REV").id, cat.unit("SALES").id)
    wh.close()
    return own_file, ids


@pytest.mark.parametrize(
    ("page", "query"),
    [
        ("app.py", {}),
        ("pages/1_Board.py", {"unit": "SALES", "period": "2026-10"}),
        ("pages/5_Tree.py", {"unit": "SALES", "period": "2026-10"}),
        ("pages/7_Trends.py", {"unit": "SALES", "kpi": "SALES/REV"}),
        ("pages/8_Alerts.py", {}),
        ("pages/4_Library.py", {}),
        ("pages/6_Targets.py", {"unit": "SALES"}),
        ("pages/10_Admin.py", {}),
    ],
)
def test_pages_show_names_and_comments_as_text(page, query, poisoned, monkeypatch):
    path, _ = poisoned
    at = run(page, path, monkeypatch, query)
    if page == "pages/8_Alerts.py":  # the detail of an alert on the poisoned unit
        pick = at.selectbox(key="al_pick")
        pick.select_index(next(i for i, o in enumerate(pick.options) if "pixel" in o)).run()
        ok(at)
    bodies = no_live_html(at)
    if page in ("pages/1_Board.py", "pages/7_Trends.py", "pages/8_Alerts.py"):
        # The payload reached the page: escaped for Markdown, so shown as the text it is.
        assert any("onerror" in body for body in bodies)
    for chart in at.get("graphviz_chart"):
        spec = chart.proto.spec
        # The name is inside a quoted DOT string (text), never an HTML-like <...> label.
        assert "label=<" not in spec.replace(" ", "")
        assert 'label="<img src=x' in spec  # the name, as text in a quoted label


def test_dot_labels_quote_hostile_names():
    text = 'x" ] ; a -> b [label=<b>hi</b>] ; "\n\\N'
    quoted = dot_string(text)
    inner = quoted[1:-1]
    # No unescaped quote inside: the label cannot end early and start DOT statements.
    assert not re.search(r'(?<!\\)"', inner.replace("\\\\", "")), quoted
    assert "\n" not in quoted


def test_big_screen_escapes_names_and_actions(own_file, tmp_path):
    from kpi_core import screen
    from kpi_core.ui.slides import Params, pages, render

    wh = Warehouse(own_file, linger=0)
    try:
        payload_kpi(wh, IMG, "REV")
        payload_unit(wh, "SALES", SCRIPT, tmp_path)
        cat = load_catalog(wh)
        review.add_comment(wh, SYSTEM, cat.kpi("REV").id, cat.unit("SALES").id, date(2026, 10, 1),
                           "x", action=IMG, owner=SCRIPT, due=date(2027, 1, 1))  # fmt: skip
        data = screen.screen_data(wh, cat, ["GROUP"], "en")
    finally:
        wh.close()
    snap = screen.Snapshot(data, datetime.now(), None)
    html = ""
    for i, (slide, _, _) in enumerate(pages(data)):
        html += render(snap, Params("t", 5, 60, (), "en", (slide,)), datetime.now(), 5 * i)
    assert "<img src=x" not in html and "<script>window" not in html
    assert "&lt;script&gt;" in html or "&lt;img" in html


@pytest.mark.browser
def test_a_real_browser_runs_no_script_from_names_or_comments(browser, own_file, tmp_path):
    from tests.browsing import settle
    from tests.test_browser import start_app, visit

    wh = Warehouse(own_file, linger=0)
    poison(wh, BROWSER_XSS, tmp_path)
    wh.close()
    proc, url = start_app(own_file)
    try:
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        paths = [
            "/?lang=en",
            "/Board?unit=SALES&period=2026-10&lang=en",
            "/Tree?unit=SALES&period=2026-10&lang=en",
            "/Trends?unit=SALES&kpi=SALES/REV&lang=en",
            "/Alerts?lang=en",
        ]
        seen = 0
        for i, path in enumerate(paths):
            if i == 0:
                visit(page, url + path)
            else:
                page.goto(url + path)
            settle(page)  # drawn: a payload that could run has run
            assert page.locator("[data-testid='stException']").count() == 0, path
            assert page.evaluate("typeof window.__xss") == "undefined", path
            assert page.locator("img[src='x']").count() == 0, path
            seen += page.get_by_text("onerror", exact=False).count()
        assert seen, "the payload should be on the pages, as text"
        page.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)


# --- 3. Excel: formula-looking text neutralised ----------------------------------------------


def test_workbook_writers_never_write_a_formula():
    frame = pd.DataFrame({"text": FORMULA_LIKE + [NUL, LONG], "n": range(len(FORMULA_LIKE) + 2)})
    for data in (
        workbook.sheet_bytes("s", frame),
        workbook.to_bytes({"kpis": frame.rename(columns={"text": "name_en"})}),
        workbook.to_bytes({"kpis": frame.rename(columns={"text": "name_en"})}, lang="zh"),
    ):
        cells = no_formula_cells(data)
        for text in FORMULA_LIKE:
            assert shown(text, cells), text
        assert "ab" in cells  # the NUL dropped, the rest kept
    buf = io.BytesIO()
    workbook.write({"org_units": frame.rename(columns={"text": "name_zh"})}, buf)
    no_formula_cells(buf.getvalue())


def test_kpi_system_export_is_neutralised_and_round_trips(demo_wh, tmp_path):
    names = [HYPERLINK, DDE, MINUS, AT, "'" + HYPERLINK, IMG, DROP]
    cat = load_catalog(demo_wh)
    base = library_edits.fields_of(cat.kpi("REV"))
    for i, text in enumerate(names):
        library_edits.save_kpi(
            demo_wh, dict(base, code=f"F{i}", name_zh=text, name_en=text, caliber=text), SYSTEM
        )
    payload_unit(demo_wh, "SALES", HYPERLINK, tmp_path)
    for lang in ("en", "zh"):
        data = workbook.to_bytes(export.system_frames(demo_wh, Scope.all()), lang)
        cells = no_formula_cells(data)
        for text in names:
            assert shown(text, cells), text
        # Read back: the apostrophe that neutralised the cell is gone, the names are unchanged.
        sheets = workbook.read(data)
        read_names = {c["code"]: c["name_en"] for _, c in sheets["kpis"].rows}
        for i, text in enumerate(names):
            assert read_names[f"F{i}"] == text
    # And imported again into a fresh copy of its own export: nothing changes.
    other = Warehouse(tmp_path / "again.duckdb", linger=0)
    try:
        import_system(other, workbook.to_bytes(export.system_frames(demo_wh, Scope.all())),
                      by="test", scope=Scope.all())  # fmt: skip
        again = load_catalog(other)
        for i, text in enumerate(names):
            assert again.kpi(f"F{i}").name_zh == text and again.kpi(f"F{i}").caliber == text
        assert again.unit("SALES").name_en == HYPERLINK
    finally:
        other.close()


def test_upload_template_is_neutralised(demo_wh, tmp_path):
    payload_kpi(demo_wh, HYPERLINK, "REV")
    payload_kpi(demo_wh, DDE, "NEW_CUST")
    payload_unit(demo_wh, "SALES", AT, tmp_path)
    cat = load_catalog(demo_wh)
    for lang in ("en", "zh"):
        data = template.build_template(demo_wh, cat, Scope.all(), "SALES", date(2026, 11, 1), lang)
        cells = no_formula_cells(data)
        assert shown(HYPERLINK, cells) and shown(DDE, cells), cells[:40]


def test_audit_and_comment_downloads_are_neutralised(demo_wh):
    cat = load_catalog(demo_wh)
    kpi, unit = cat.kpi("REV").id, cat.unit("SALES").id
    for text in FORMULA_LIKE + [NUL]:
        review.add_comment(demo_wh, SYSTEM, kpi, unit, date(2026, 10, 1), text)
    payload_kpi(demo_wh, HYPERLINK)
    log = audit.entries(demo_wh, load_catalog(demo_wh), SYSTEM)
    cells = no_formula_cells(workbook.sheet_bytes("audit", log))
    for text in FORMULA_LIKE:
        assert shown(text, cells), text
    rows = review.comments(demo_wh, cat, SYSTEM, kpi_id=kpi, unit_id=unit)
    cells = no_formula_cells(workbook.sheet_bytes("comments", rows))
    for text in FORMULA_LIKE:
        assert shown(text, cells), text


# --- 4. Password hashes: never in logs, exports or output ------------------------------------


def hash_fragments(wh: Warehouse) -> list[str]:
    out = []
    for (h,) in wh.rows("SELECT password_hash FROM app_user WHERE password_hash IS NOT NULL"):
        out.append(h)
        out += [part for part in re.split(r"[$:]", h) if len(part) >= 12]
    return out


def leaks(text: str, fragments: list[str]) -> list[str]:
    found = [f for f in fragments if f in text]
    if "scrypt$" in text:
        found.append("scrypt$")
    return found


def xlsx_text(data: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return "".join(z.read(n).decode("utf-8", "replace") for n in z.namelist())


def test_password_hashes_never_leave_the_user_table(own_file, tmp_path):
    wh = Warehouse(own_file, linger=0)
    try:
        users.save_user(wh, SYSTEM, "inj.user", display_name=SCRIPT, role="analyst",
                        scope=["SALES"], password="first-password", create=True)  # fmt: skip
        users.save_user(wh, SYSTEM, "inj.user", display_name=DROP, role="analyst",
                        scope=["SALES"], password="second-password")  # fmt: skip
        users.save_user(wh, SYSTEM, "admin", display_name="Admin", role="admin", scope=[],
                        password="admin-password")  # fmt: skip
        for name, password in [("inj.user", "wrong"), ("inj.user", "second-password"),
                               ("nobody", "x"), (DROP, OR_TRUE), ("admin", "admin-password"),
                               ("inj.user", "scrypt$1$2$3")]:  # fmt: skip
            auth.sign_in(wh, name, password)
        fragments = hash_fragments(wh)
        assert fragments and all("scrypt" in h or len(h) >= 12 for h in fragments)
        log_rows = wh.rows("SELECT * FROM audit")
        everything = "\n".join(map(str, log_rows))
        # The one password typed as text above is not a hash of anything stored.
        assert leaks(everything.replace("scrypt$1$2$3", ""), fragments) == []
        assert "first-password" not in everything and "second-password" not in everything
        entries = audit.entries(wh, load_catalog(wh), SYSTEM, limit=100_000)
        download = xlsx_text(workbook.sheet_bytes("audit", entries))
        assert leaks(download.replace("scrypt$1$2$3", ""), fragments) == []
        system = xlsx_text(workbook.to_bytes(export.system_frames(wh, Scope.all())))
        assert leaks(system, fragments) == []
        assert (
            users.users_frame(wh, SYSTEM)
            .map(str)
            .apply(lambda col: col.str.contains("scrypt", regex=False))
            .sum()
            .sum()
            == 0
        )
    finally:
        wh.close()

    out_file = tmp_path / "export.xlsx"
    said = ""
    for args in (
        ["export", str(out_file)],
        ["export", str(tmp_path / "export-zh.xlsx"), "--lang", "zh"],
        ["score", "--unit", "SALES", "--period", "2026-10", "--json"],
        ["alerts", "--json"],
        ["import", str(out_file), "--dry-run", "--json"],
        ["backup", str(tmp_path / "backups")],
    ):
        run = subprocess.run(
            [sys.executable, "-m", "kpi_core", "--warehouse", str(own_file), "--admin", *args],
            capture_output=True, text=True, timeout=120, cwd=ROOT,
        )  # fmt: skip
        said += run.stdout + run.stderr
    assert out_file.exists()
    assert leaks(said, fragments) == []
    for f in (out_file, tmp_path / "export-zh.xlsx"):
        assert leaks(xlsx_text(f.read_bytes()), fragments) == []


# --- secret references: only where a secret goes, only from the field's own vault (issue 18) ---

SERVER_SECRETS = """
[auth]
cookie_secret = "COOKIE-SECRET-4711"
[source_secrets]
erp = "ERP-SECRET-4711"
[push]
token = "PUSH-TOKEN-4711"
"""


@pytest.mark.parametrize(
    "reference",
    ["${secrets.auth.cookie_secret}", "${secrets.source_secrets.erp}", "${AWS_SECRET_KEY}",
     "${KPI_SOURCE_SECRET_ERP}", "${secrets.push}", "${HOME}"],
)  # fmt: skip
def test_a_push_channel_reads_only_the_push_vault(
    demo_wh, receiver, tmp_path, monkeypatch, reference
):
    path = tmp_path / "secrets.toml"
    path.write_text(SERVER_SECRETS, encoding="utf-8")
    monkeypatch.setenv("KPI_SECRETS", str(path))
    monkeypatch.setenv("AWS_SECRET_KEY", "AWS-SECRET-4711")
    monkeypatch.setenv("KPI_SOURCE_SECRET_ERP", "ENV-SECRET-4711")
    r = receiver((200, "ok"))
    hostile = [
        ("webhook", f"{r.base}/hook", {"headers": {"X-Leak": reference}}),
        ("webhook", f"{r.base}/hook?token={reference}", {}),
        ("webhook", f"{r.base}/{reference}", {}),
        ("dingtalk", f"{r.base}/send?access_token=${{secrets.push.token}}", {"secret": reference}),
    ]
    alert = push.PushMessage(None, "high", "status", "红灯", "red", "文", "text", None, "U",
                             "2026-10", None)  # fmt: skip
    for kind, url, options in hostile:
        with pytest.raises(push.PushError, match="cannot be used by a push channel"):
            push.save_channel(demo_wh, SYSTEM, "leak", kind, url, options)
        # A channel stored before this check is refused when it sends, and says why.
        ch = push.Channel("leak", kind, url, options, "low")
        [d] = push.deliver(demo_wh, [alert], channels=[ch], retries=0)
        assert not d.ok and "cannot be used by a push channel" in d.error
    assert not [q for q in r.requests if "4711" in json.dumps(q)]
    assert "4711" not in json.dumps(demo_wh.rows("SELECT * FROM push_log"), default=str)
    # The push section itself is read as before.
    push.save_channel(demo_wh, SYSTEM, "ok", "webhook", f"{r.base}/hook",
                      {"headers": {"Authorization": "Bearer ${secrets.push.token}"}})  # fmt: skip


def test_a_receiver_repeating_a_secret_leaves_only_stars_in_the_log(
    demo_wh, receiver, tmp_path, monkeypatch
):
    path = tmp_path / "secrets.toml"
    path.write_text(SERVER_SECRETS, encoding="utf-8")
    monkeypatch.setenv("KPI_SECRETS", str(path))
    r = receiver((500, "bad token PUSH-TOKEN-4711"))
    push.save_channel(demo_wh, SYSTEM, "echo", "webhook", f"{r.base}/hook",
                      {"headers": {"Authorization": "Bearer ${secrets.push.token}"}})  # fmt: skip
    d = push.send_test(demo_wh, "echo", retries=0)
    assert r.requests[0]["headers"]["Authorization"] == "Bearer PUSH-TOKEN-4711"  # it was sent
    assert not d.ok and "bad token ***" in d.error
    assert "4711" not in json.dumps(demo_wh.rows("SELECT * FROM push_log"), default=str)
