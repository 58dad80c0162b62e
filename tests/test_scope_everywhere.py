"""Issue 8: a user scoped to one department gets nothing of another — on every page (found by
glob, so a new page cannot escape), every download, every CLI command and the big screen.

The "foreign" strings are computed from the catalog: codes and names of the units outside the
user's scope, names of KPIs that sit only on those units' trees, and owners who own only such
KPIs. Whatever a page renders (every string and every Arrow table in every element's proto) is
searched for them, once plainly and once with query parameters naming units outside the scope.
"""

from __future__ import annotations

import ast
import io
import json
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from html import escape
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from openpyxl import load_workbook
from streamlit.proto.WidgetStates_pb2 import WidgetState
from streamlit.testing.v1 import AppTest

from kpi_core import access, audit, charts, export, formula, i18n, screen, service, trends, workbook
from kpi_core.actuals import data_range
from kpi_core.catalog import SCORECARD, Catalog, load_catalog, load_user
from kpi_core.errors import ScopeError
from kpi_core.ingest import sources, template
from kpi_core.ingest.profile import Measure, Profile
from kpi_core.ui import PAGES
from kpi_core.ui.library import export_bytes
from kpi_core.warehouse import Warehouse, open_warehouse
from tests import apptest
from tests.apptest import ROOT, ok

VIEWER, HEAD = "viewer_prod", "head_sales"
USERS = (VIEWER, HEAD)
# Query strings naming units, KPI nodes and periods outside the users' scopes.
QUERIES = {
    "plain": {},
    "sales": {"unit": "SALES", "kpi": "SALES/REV", "period": "2025-Q3", "units": "SALES"},
    "group": {"unit": "GROUP", "kpi": "REV", "period": "2025", "from": "2024-01", "to": "2026-10"},
}
CODE_EDGE = r"(?<![A-Za-z0-9_]){}(?![A-Za-z0-9_])"


# --- what a user may not see -----------------------------------------------------------------


@dataclass(frozen=True)
class Foreign:
    user: str
    patterns: tuple[tuple[str, re.Pattern], ...]  # (what it is, pattern)
    # Definition texts of the user's own KPIs (a data source named "HR系统" is not HR's data).
    own_texts: frozenset[str] = frozenset()

    def found(self, texts: list[str]) -> list[str]:
        hits = []
        for text in texts:
            if text in self.own_texts:
                continue
            for what, pattern in self.patterns:
                if pattern.search(text):
                    hits.append(f"{what} in {text[:300]!r}")
        return hits


def foreign_for(cat: Catalog, wh: Warehouse, user: str) -> Foreign:
    scope = cat.scope_for(load_user(wh, user))
    inside = {u for u in cat.units if scope.allows(u)}
    used: dict[int, set[int]] = defaultdict(set)
    for e in cat.edges:
        if e.child_kpi:
            used[e.child_kpi].add(e.child_unit)
        if e.parent_kpi:
            used[e.parent_kpi].add(e.parent_unit)
    own_kpis = {k for k, units in used.items() if units & inside}
    # A KPI the user's units have values of (every department reports its headcount) is theirs.
    own_kpis |= {
        r[0]
        for r in wh.rows(
            "SELECT DISTINCT kpi_id FROM actual WHERE list_contains(?, unit_id) UNION "
            "SELECT DISTINCT kpi_id FROM target WHERE list_contains(?, unit_id)",
            [sorted(inside), sorted(inside)],
        )
    }
    foreign_kpis = {k for k, units in used.items() if units and not units & inside}
    # Formula inputs of KPIs inside (OEE's AVAIL, a ratio's numerator), and theirs, are inside
    # too: the user's own KPIs are computed from them.
    todo = list(own_kpis)
    while todo:
        kpi = cat.kpis[todo.pop()]
        inputs = {kpi.numerator, kpi.denominator}
        if kpi.formula:
            inputs |= formula.references(formula.parse(kpi.formula))
        for code in inputs:
            if code in cat.kpi_by_code and cat.kpi_by_code[code].id not in own_kpis:
                own_kpis.add(cat.kpi_by_code[code].id)
                todo.append(cat.kpi_by_code[code].id)
    foreign_kpis -= own_kpis
    owners_inside = {cat.kpis[k].owner for k in own_kpis}
    owners_foreign = {cat.kpis[k].owner for k in foreign_kpis if cat.kpis[k].owner}
    inside_strings = [s for u in inside for s in (cat.units[u].name_zh, cat.units[u].name_en)]
    inside_strings += [s for k in own_kpis for s in (cat.kpis[k].name_zh, cat.kpis[k].name_en)]
    inside_strings += [o for o in owners_inside if o]

    def plain(what: str, text: str) -> tuple[str, re.Pattern] | None:
        if not text or any(text in s for s in inside_strings):
            return None
        return (f"{what} {text!r}", re.compile(re.escape(text)))

    found: list[tuple[str, re.Pattern] | None] = []
    for u in sorted(set(cat.units) - inside):
        unit = cat.units[u]
        found.append((f"unit code {unit.code!r}", re.compile(CODE_EDGE.format(unit.code))))
        found += [plain("unit name", unit.name_zh), plain("unit name", unit.name_en)]
    for k in sorted(foreign_kpis):
        kpi = cat.kpis[k]
        found += [plain("KPI name", kpi.name_zh), plain("KPI name", kpi.name_en)]
    found += [plain("owner", o) for o in sorted(owners_foreign - owners_inside)]
    patterns = tuple(p for p in found if p is not None)
    assert len(patterns) > 20, patterns  # the check must have teeth
    own_texts = frozenset(
        t for k in own_kpis for t in (cat.kpis[k].source, cat.kpis[k].caliber) if t
    )
    return Foreign(user, patterns, own_texts)


@pytest.fixture(scope="module")
def wh_file(tmp_path_factory, demo_file) -> Path:
    """One copy of the demo for every page of this module (pages only read here)."""
    path = tmp_path_factory.mktemp("scope") / "wh.duckdb"
    shutil.copy(demo_file, path)
    return path


@pytest.fixture(scope="module")
def catalog(demo_file) -> Catalog:
    wh = Warehouse(demo_file, linger=0)
    try:
        return load_catalog(wh)
    finally:
        wh.close()


@pytest.fixture(scope="module")
def foreign(demo_file, catalog) -> dict[str, Foreign]:
    wh = Warehouse(demo_file, linger=0)
    try:
        return {u: foreign_for(catalog, wh, u) for u in USERS}
    finally:
        wh.close()


def test_the_foreign_strings_are_the_other_departments(foreign):
    viewer = " ".join(w for w, _ in foreign[VIEWER].patterns)
    assert "'SALES'" in viewer and "销售部" in viewer and "'GROUP'" in viewer
    assert "'PROD'" not in viewer and "生产部" not in viewer and "Production" not in viewer
    assert "Revenue" in viewer and "王磊（销售总监）" in viewer
    head = " ".join(w for w, _ in foreign[HEAD].patterns)
    assert "'PROD_L1'" in head and "生产部" in head and "'SALES'" not in head


# --- everything a page renders -----------------------------------------------------------------


def _arrow_strings(data: bytes) -> list[str] | None:
    try:
        df = pa.ipc.open_stream(io.BytesIO(data)).read_all().to_pandas()
    except Exception:  # not an Arrow stream
        return None
    return [*map(str, df.columns), *map(str, df.index), *map(str, df.to_numpy().ravel())]


def proto_strings(msg, out: list[str]) -> list[str]:
    """Every string in a proto, recursively; bytes decoded as Arrow tables (dataframes, chart
    data) or text. Placeholders (static examples such as 'SALES/REV') are not data."""
    for f, value in msg.ListFields():
        if f.name == "placeholder":
            continue
        repeated = f.is_repeated if hasattr(f, "is_repeated") else f.label == f.LABEL_REPEATED
        values = value if repeated else [value]
        if f.type == f.TYPE_MESSAGE:
            if f.message_type.GetOptions().map_entry:
                for k, v in value.items():
                    out.append(str(k))
                    proto_strings(v, out) if hasattr(v, "ListFields") else out.append(str(v))
            else:
                for v in values:
                    proto_strings(v, out)
        elif f.type == f.TYPE_STRING:
            out.extend(values)
        elif f.type == f.TYPE_BYTES:
            for v in values:
                table = _arrow_strings(v)
                out.extend(table if table is not None else [v.decode("utf-8", "replace")])
    return out


def _nodes(node):
    yield node
    for child in getattr(node, "children", {}).values():
        yield from _nodes(child)


def rendered(at: AppTest) -> list[str]:
    out: list[str] = []
    for node in _nodes(at._tree):
        if getattr(node, "proto", None) is not None:
            proto_strings(node.proto, out)
    return out


def echoes(lang: str, query: dict) -> list[re.Pattern]:
    """Messages that only repeat what the URL asked for ("There is no unit 'SALES' in your
    scope; showing …"): they say no, they show nothing of SALES."""
    text = i18n.CATALOGS[lang]["unknown_unit"]
    out = []
    for asked in query.values():
        pattern = re.escape(text).replace(re.escape("{code}"), re.escape(asked))
        out.append(re.compile(pattern.replace(re.escape("{shown}"), ".*?")))
    return out


def scrub(texts: list[str], patterns: list[re.Pattern]) -> list[str]:
    for p in patterns:
        texts = [p.sub("", t) for t in texts]
    return texts


def open_as(
    monkeypatch, path: Path, page: str, user: str, query: dict, lang: str = "en"
) -> AppTest:
    apptest.sign_in(monkeypatch, path, user)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["lang"] = lang
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    at.switch_page(page).run()
    ok(at)
    return at


def _pick(widget, state: WidgetState) -> None:
    """Send the frontend's answer for a widget (its formatted option), as a browser would."""
    widget.__class__ = type("Picked", (type(widget),), {"_widget_state": property(lambda s: state)})


# Pickers whose options are not about scope (or that write): not worth a run per option.
SKIP_KEYS = re.compile(r"^(lang_choice|grain_pick|period_pick_.*|tw_audit_dates|tr_range)$")
MAX_OPTIONS = 6


def explore(at: AppTest, seen: list[str]) -> None:
    """Pick every option of every selectbox (up to MAX_OPTIONS) and all options of every
    multiselect, one widget at a time, collecting what each choice renders."""
    widgets = [
        (w.type, w.key, w.id, list(w.options))
        for w in _nodes(at._tree)
        if getattr(w, "type", None) in ("selectbox", "multiselect")
        and w.key
        and not SKIP_KEYS.match(w.key)
    ]
    for kind, _key, wid, options in widgets:
        if kind == "multiselect":
            choices = [options] if options else []
        else:
            choices = [[o] for o in options[:MAX_OPTIONS]]
        for choice in choices:
            found = [w for w in _nodes(at._tree) if getattr(w, "id", None) == wid]
            if not found:
                break
            state = WidgetState(id=wid)
            if kind == "multiselect":
                state.string_array_value.data.extend(choice)
            else:
                state.string_value = choice[0]
            _pick(found[0], state)
            at.run()
            ok(at)
            seen += rendered(at)


def lazy_tabs(at: AppTest) -> list[tuple[str, list[str]]]:
    """Tabs that run only the open tab (`st.tabs(key=..., on_change=...)`): their key and labels.
    Their widget id ends with the key."""
    return [
        (n.proto.tab_container.id.split("-", 2)[2], [t.label for t in n.children.values()])
        for n in _nodes(at._tree)
        if getattr(n, "type", None) == "tab_container" and n.proto.tab_container.id
    ]


def visit_tabs(at: AppTest, seen: list[str], *, pick: bool) -> None:
    """Open every tab of every lazy tab container, collecting what each renders (and, with
    `pick`, what each of its pickers' choices renders)."""
    for key, labels in lazy_tabs(at):
        for label in labels[1:]:
            at.session_state[key] = label
            at.run()
            ok(at)
            seen += rendered(at)
            if pick:
                explore(at, seen)
        at.session_state[key] = labels[0]


PAGE_FILES = sorted(
    str(p.relative_to(ROOT)) for p in [ROOT / "app.py", *(ROOT / "pages").glob("*.py")]
)


def test_every_page_file_is_registered():
    assert sorted(path for path, *_ in PAGES) == PAGE_FILES


def _roles(page: str):
    return next(roles for path, _, _, roles in PAGES if path == page)


MEANINGFUL = {"dataframe", "metric", "table", "graphviz_chart", "vega_lite_chart"}
MEANINGFUL |= {"arrow_vega_lite_chart", "download_button", "selectbox", "multiselect"}
MEANINGFUL |= {"text_input", "number_input", "data_editor", "file_uploader", "plotly_chart"}


@pytest.mark.parametrize("query", list(QUERIES))
@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("page", PAGE_FILES)
def test_no_page_shows_another_department(page, user, query, wh_file, foreign, monkeypatch):
    check_page(page, user, query, wh_file, foreign, monkeypatch, wh_file.parent)


def check_page(page, user, query, warehouse, foreign, monkeypatch, tmp: Path) -> None:
    """`page` as `user` with `query` in the URL: every element, every picker's choice and every
    tab searched for `foreign`'s strings; a page the role may not see shows only a notice."""
    monkeypatch.setenv("KPI_WAREHOUSE", str(warehouse))
    monkeypatch.setenv("KPI_SECRETS", str(tmp / "no-secrets.toml"))
    asked = QUERIES[query]
    at = open_as(monkeypatch, warehouse, page, user, asked)
    seen = rendered(at)
    assert seen, "nothing rendered"
    if page == "pages/9_Big_Screen.py":
        # Without a kiosk token, a signed-in user previews the wall over their own scope (and
        # units asked for in the URL never widen it): the check below finds no other department.
        html = "".join(h.proto.body for h in at.get("html"))
        assert "bs-slide" in html and escape(i18n.t("bs_not_set_up", "en")) not in html
    elif (roles := _roles(page)) is not None and load_role(warehouse, user) not in roles:
        main = [n.type for n in _nodes(at.main) if hasattr(n, "type")]
        assert any(t in ("info", "warning", "error") for t in main), main
        assert not MEANINGFUL & set(main), main
    else:
        if query == "plain":
            explore(at, seen)
        if page == "pages/6_Targets.py":  # its tabs run when opened: each is opened here
            assert lazy_tabs(at)
        visit_tabs(at, seen, pick=query == "plain")
    hits = foreign[user].found(scrub(seen, echoes("en", asked)))
    assert not hits, "\n".join(dict.fromkeys(hits))


_ROLES: dict[str, str] = {}


def load_role(warehouse, user: str) -> str:
    if user not in _ROLES:  # the same demo users on either engine
        wh = open_warehouse(str(warehouse), linger=0)
        try:
            _ROLES[user] = load_user(wh, user).role
        finally:
            wh.close()
    return _ROLES[user]


@pytest.mark.parametrize("lang", ["zh"])
def test_tree_and_trends_in_chinese_and_every_node(lang, wh_file, foreign, monkeypatch):
    """The viewer's tree: every node picked, everything expanded; the Trends page for every KPI
    of the viewer's tree and both comparisons — in both languages."""
    monkeypatch.setenv("KPI_WAREHOUSE", str(wh_file))
    for page in ("pages/5_Tree.py", "pages/7_Trends.py"):
        at = open_as(monkeypatch, wh_file, page, VIEWER, QUERIES["sales"], lang)
        seen = rendered(at)
        explore(at, seen)
        for group in at.get("button_group"):
            if group.proto.id and "tr_compare" in group.proto.id:
                seen += [o.content for o in group.proto.options]
        hits = foreign[VIEWER].found(scrub(seen, echoes(lang, QUERIES["sales"])))
        assert not hits, (page, "\n".join(dict.fromkeys(hits)))


def test_the_tree_page_draws_only_the_viewers_tree(wh_file, catalog, monkeypatch):
    monkeypatch.setenv("KPI_WAREHOUSE", str(wh_file))
    at = open_as(monkeypatch, wh_file, "pages/5_Tree.py", VIEWER, QUERIES["sales"])
    spec = at.get("graphviz_chart")[0].proto.spec
    assert catalog.unit("PROD").name("en") in spec
    assert catalog.unit("SALES").name("en") not in spec
    # The URL asked for SALES: the page says it is not in the scope and shows Production.
    assert any("SALES" in w.value and "scope" in w.value for w in at.warning)


# --- downloads and exports ---------------------------------------------------------------------


def download_sites() -> set[tuple[str, str]]:
    """(file, key) of every st.download_button call in the app's source."""
    found = set()
    files = [ROOT / "app.py", *(ROOT / "pages").glob("*.py"), *(ROOT / "kpi_core/ui").glob("*.py")]
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "download_button"
            ):
                key = next((k.value for k in node.keywords if k.arg == "key"), None)
                where = str(path.relative_to(ROOT))
                found.add((where, ast.unparse(key) if key is not None else f"line {node.lineno}"))
    return found


def words_of_workbook(data: bytes) -> list[str]:
    out = []
    for name, frame in pd.read_excel(io.BytesIO(data), sheet_name=None, engine="calamine").items():
        out += [str(name), *map(str, frame.columns), *map(str, frame.to_numpy().ravel())]
    wb = load_workbook(io.BytesIO(data))  # data validations (lists of unit codes), comments
    for ws in wb.worksheets:
        out += [str(dv.formula1) for dv in ws.data_validations.dataValidation]
        out += [str(c.comment.text) for row in ws.iter_rows() for c in row if c.comment]
    out += [str(n.attr_text) for n in wb.defined_names.values()]
    return out


@pytest.fixture(scope="module")
def viewer_ctx(wh_file):
    wh = Warehouse(wh_file, linger=0)
    cat = load_catalog(wh)
    try:
        yield wh, cat, service.actor(wh, VIEWER)
    finally:
        wh.close()


def check_trends(viewer_ctx, foreign, lang="en"):
    """kpi_core/ui/trends.py: chart SVG/PNG and data Excel of the trend, year-to-date and
    comparison charts, for every KPI node of the viewer's tree."""
    wh, cat, actor = viewer_ctx
    scope = actor.scope
    first, latest = data_range(wh, scope, cat)
    unit = cat.unit("PROD").id
    months = trends.month_range(max(first, date(latest.year, 1, 1)), latest)
    texts = []
    pairs = trends.tree_kpis(cat, scope, unit, latest)
    assert pairs
    # The unit's own KPIs first, then one of each unit below (the slow part is the trend).
    for kpi_id, node_unit in [*pairs[:3], *dict((u, (k, u)) for k, u in pairs).values()]:
        t = trends.trend(wh, cat, scope, kpi_id, node_unit, months)
        kpi = cat.kpis[kpi_id]
        texts += words_of_workbook(workbook.sheet_bytes("trend", trends.table(t, kpi, lang)))
        for units in (
            trends.siblings(cat, scope, node_unit),
            trends.children(cat, scope, node_unit),
        ):
            assert all(scope.allows(u) for u in units)
            rows = trends.compare_units(wh, cat, scope, kpi_id, units, [months[-1]])
            assert all(scope.allows(int(u)) for u in rows["unit_id"])
            names = pd.DataFrame({"unit": [cat.units[int(u)].name(lang) for u in rows["unit_id"]]})
            texts += words_of_workbook(workbook.sheet_bytes("units", names))
    # One chart drawn as SVG: the comparison among the units the viewer may see.
    kpi_id = cat.kpi("OEE").id
    rows = trends.compare_units(wh, cat, scope, kpi_id, trends.children(cat, scope, unit), months)
    svg = charts.to_svg(charts.unit_comparison(rows, cat.kpis[kpi_id], cat, lang, selected=unit))
    texts.append(svg if isinstance(svg, str) else svg.decode())
    return texts


def check_audit(viewer_ctx, foreign):
    """kpi_core/ui/change_log.py: the change log as the viewer downloads it (audit.entries)."""
    wh, cat, actor = viewer_ctx
    log = audit.entries(wh, cat, actor)
    assert len(log)
    return words_of_workbook(workbook.sheet_bytes("audit", log))


def check_template(viewer_ctx, foreign):
    """kpi_core/ui/upload.py: the entry template, for the viewer's unit and for SALES."""
    wh, cat, actor = viewer_ctx
    month = data_range(wh, actor.scope, cat)[1]
    texts = []
    for lang in ("zh", "en"):
        texts += words_of_workbook(
            template.build_template(wh, cat, actor.scope, "PROD", month, lang)
        )
    with pytest.raises(ScopeError):
        template.build_template(wh, cat, actor.scope, "SALES", month, "en")
    assert not template.template_rows(wh, cat, actor.scope, "PROD", month) or texts
    return texts


def check_system_export(viewer_ctx, foreign):
    """kpi_core/ui/library.py: the KPI-system workbook (the same bytes as `export`)."""
    wh, cat, actor = viewer_ctx
    texts = []
    for lang in ("zh", "en"):
        texts += words_of_workbook(export_bytes(wh, actor.scope, lang))
    frames = export.system_frames(wh, actor.scope)
    assert len(frames["actuals"]) and set(frames["actuals"]["unit"]) <= {
        "PROD",
        "PROD_L1",
        "PROD_L2",
    }
    return texts


def check_backup(viewer_ctx, foreign, tmp_path=None):
    """kpi_core/ui/admin.py: a backup is the whole warehouse — refused for a viewer."""
    from kpi_core import backup

    wh, _, actor = viewer_ctx
    with pytest.raises(ScopeError):
        backup.backup(wh, Path(wh.path).parent / "backups", actor)
    return []


def check_definitions(viewer_ctx, foreign):
    """kpi_core/ui/definition_files.py: a profile or source as TOML — shown only to those who
    may read definitions (a viewer is not one of them)."""
    from kpi_core.ingest import definition_file

    wh, cat, actor = viewer_ctx
    for kind in ("profile", "source"):
        with pytest.raises(ScopeError):
            definition_file.may_read(actor, kind)
    return []


DOWNLOADS = {
    ("kpi_core/ui/trends.py", "f'tr_svg_{name}'"): check_trends,
    ("kpi_core/ui/trends.py", "f'tr_png_{name}'"): check_trends,
    ("kpi_core/ui/trends.py", "f'tr_xlsx_{name}'"): check_trends,
    ("kpi_core/ui/change_log.py", "'tw_audit_download'"): check_audit,
    ("kpi_core/ui/upload.py", "'up_tpl_download'"): check_template,
    ("kpi_core/ui/library.py", "'lib_export_button'"): check_system_export,
    ("kpi_core/ui/admin.py", "'ad_backup_download'"): check_backup,
    ("kpi_core/ui/definition_files.py", "key"): check_definitions,
}


def test_every_download_has_a_scope_check():
    sites = download_sites()
    assert sites, "no download_button found: the search is broken"
    missing = sites - set(DOWNLOADS)
    assert not missing, f"download buttons without a scope check in DOWNLOADS: {missing}"
    stale = set(DOWNLOADS) - sites
    assert not stale, f"DOWNLOADS names call sites that are gone: {stale}"


each_download = pytest.mark.parametrize(
    "check", sorted(set(DOWNLOADS.values()), key=lambda f: f.__name__), ids=lambda f: f.__name__
)


@each_download
def test_no_download_holds_another_department(check, viewer_ctx, foreign):
    check_download(check, viewer_ctx, foreign)


def check_download(check, ctx, foreign) -> None:
    hits = foreign[VIEWER].found(check(ctx, foreign))
    assert not hits, "\n".join(dict.fromkeys(hits))


# --- the command line --------------------------------------------------------------------------


def cli(path: Path, *args: str, user: str = VIEWER, stdin: str | None = None):
    return subprocess.run(
        [sys.executable, "-m", "kpi_core", "--warehouse", str(path), "--user", user, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        input=stdin,
        timeout=120,
    )


def fingerprint(path: Path) -> tuple:
    wh = Warehouse(path, linger=0)
    try:
        return (
            wh.one("SELECT count(*), sum(hash(unit_id, kpi_id, period, value)) FROM actual"),
            wh.one("SELECT count(*) FROM batch"),
        )
    finally:
        wh.close()


@pytest.fixture
def cli_file(demo_file, tmp_path) -> Path:
    path = tmp_path / "cli.duckdb"
    shutil.copy(demo_file, path)
    return path


def _refused(done, codes=(1, 3)) -> None:
    assert done.returncode in codes, (done.returncode, done.stdout, done.stderr)


def cli_init(path, tmp_path, foreign):
    done = cli(path, "init")
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def cli_score(path, tmp_path, foreign):
    out = ""
    for code in ("SALES", "GROUP", "SALES_E", "QA"):
        done = cli(path, "score", "--unit", code, "--period", "2026-03", "--json")
        assert done.returncode == 3, (code, done.stdout, done.stderr)
        # With --json the refusal is a document too: it names only the unit asked for.
        refusal = {"ok": False, "error": f"Org unit {code} is outside your scope.", "exit": 3}
        assert json.loads(done.stdout) == refusal
    done = cli(path, "score", "--unit", "PROD", "--period", "2026-03", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["unit"] in ("PROD", "生产部", "Production Department")
    return out + done.stdout + done.stderr


def cli_alerts(path, tmp_path, foreign):
    done = cli(path, "alerts", "--json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert rows and {r["unit"] for r in rows} <= {"PROD", "PROD_L1", "PROD_L2"}, rows
    text = cli(path, "alerts", "--lang", "zh")
    assert text.returncode == 0, text.stderr
    return done.stdout + text.stdout + text.stderr


def cli_export(path, tmp_path, foreign):
    out = tmp_path / "viewer.xlsx"
    done = cli(path, "export", str(out))
    assert done.returncode == 0, done.stderr
    actuals = pd.read_excel(out, sheet_name="actuals", engine="calamine")
    assert set(actuals["unit"]) <= {"PROD", "PROD_L1", "PROD_L2"}
    zh = tmp_path / "viewer_zh.xlsx"
    assert cli(path, "export", str(zh), "--lang", "zh").returncode == 0
    return [done.stdout, *words_of_workbook(out.read_bytes()), *words_of_workbook(zh.read_bytes())]


def cli_import(path, tmp_path, foreign):
    before = fingerprint(path)
    csv = tmp_path / "sales.csv"
    csv.write_text("period,unit,kpi,value\n2026-10,SALES,NEW_CUST,99\n", encoding="utf-8")
    done = cli(path, "import", str(csv))
    _refused(done)
    # A KPI-system workbook touching SALES: refused as a whole.
    system = tmp_path / "system.xlsx"
    workbook.write({"targets": pd.DataFrame([["SALES", "REV", "2026", 1, 2, 3]],
                    columns=["unit", "kpi", "period", "baseline", "target", "challenge"]),
                    "org_units": pd.DataFrame([["SALES", "销售部", "Sales Department", "GROUP",
                                                "department"]],
                                              columns=["code", "name_zh", "name_en", "parent",
                                                       "kind"])}, system)  # fmt: skip
    done2 = cli(path, "import", str(system))
    _refused(done2)
    assert fingerprint(path) == before
    return []  # the refusals echo the file's own unit codes: nothing of the warehouse


def cli_rollback(path, tmp_path, foreign):
    # An analyst loads a batch touching SALES; the viewer may not undo it.
    csv = tmp_path / "sales.csv"
    csv.write_text("period,unit,kpi,value\n2026-10,SALES,NEW_CUST,99\n", encoding="utf-8")
    loaded = cli(path, "import", str(csv), "--json", user="analyst")
    assert loaded.returncode == 0, loaded.stderr
    batch = (
        json.loads(loaded.stdout)["batch"]["id"]
        if isinstance(json.loads(loaded.stdout).get("batch"), dict)
        else json.loads(loaded.stdout)["batch"]
    )
    before = fingerprint(path)
    done = cli(path, "rollback", str(batch), "--reason", "test")
    _refused(done)
    assert fingerprint(path) == before
    return [done.stdout, done.stderr]


def cli_pull(path, tmp_path, foreign):
    exports = tmp_path / "exports"  # the folder sources may read (KPI_SOURCE_DIRS)
    exports.mkdir(exist_ok=True)
    export_csv = exports / "erp.csv"
    export_csv.write_text(
        "month,dept,customers\n2026-10-01,sales,42\n2026-10-01,prod,1\n", encoding="utf-8"
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KPI_SOURCE_DIRS", str(exports))
        return _cli_pull(path, export_csv)


def _cli_pull(path, export_csv):
    source = sources.Source(
        "erp",
        f"csv://{export_csv}",
        "SELECT * FROM erp",
        Profile(name="erp", date_column="month", unit_column="dept",
                unit_map={"sales": "SALES", "prod": "PROD"},
                measures=[Measure("NEW_CUST", "sum", "customers")]),
    )  # fmt: skip
    wh = Warehouse(path, linger=0)
    try:
        sources.save(wh, source, access.SYSTEM)
    finally:
        wh.close()
    before = fingerprint(path)
    done = cli(path, "pull", "erp", "--json")
    _refused(done)
    assert fingerprint(path) == before
    return []  # what the source itself holds is echoed in the refusal, not warehouse data


def cli_backup(path, tmp_path, foreign):
    done = cli(path, "backup", str(tmp_path / "b.zip"))
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert not (tmp_path / "b.zip").exists()
    return [done.stdout, done.stderr]


def cli_restore(path, tmp_path, foreign):
    made = subprocess.run(
        [sys.executable, "-m", "kpi_core", "--warehouse", str(path), "--admin", "backup",
         str(tmp_path / "b.zip")],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    before = fingerprint(path)
    done = cli(path, "restore", str(tmp_path / "b.zip"), "--yes")
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert fingerprint(path) == before
    return [done.stderr]


def cli_publish(path, tmp_path, foreign, command="publish"):
    # A viewer publishes nothing, of their own department or of another.
    before = fingerprint(path)
    outs = []
    for unit in ("PROD", "SALES"):
        done = cli(path, command, "2026-10", "--unit", unit)
        assert done.returncode == 3, (unit, done.stdout, done.stderr)
        outs += [done.stdout, done.stderr]
    assert fingerprint(path) == before
    return outs


def cli_unpublish(path, tmp_path, foreign):
    return cli_publish(path, tmp_path, foreign, "unpublish")


def _cli_definitions(path, tmp_path, kind: str, item) -> list[str]:
    """An analyst saved a definition naming SALES units; the viewer may not read or save one."""
    from kpi_core.ingest import definition_file
    from kpi_core.ingest import profile as profile_store

    text = (definition_file.profile_text if kind == "profile" else definition_file.source_text)(
        item
    )
    wh = Warehouse(path, linger=0)
    try:
        (profile_store.save if kind == "profile" else sources.save)(wh, item, access.SYSTEM)
    finally:
        wh.close()
    file = tmp_path / f"{kind}.toml"
    file.write_text(text.replace(f'name = "{item.name}"', 'name = "mine"'), encoding="utf-8")
    out = []
    for args in (("list",), ("show", item.name), ("export", item.name), ("save", str(file))):
        done = cli(path, kind, *args)
        assert done.returncode == 3, (args, done.stdout, done.stderr)
        out += [done.stdout, done.stderr]
    return out


def cli_profile(path, tmp_path, foreign):
    item = Profile(name="erp", date_column="month", unit_column="dept",
                   unit_map={"sales": "SALES", "east": "SALES_E"},
                   measures=[Measure("NEW_CUST", "sum", "customers")])  # fmt: skip
    return _cli_definitions(path, tmp_path, "profile", item)


def cli_source(path, tmp_path, foreign):
    exports = tmp_path / "exports"
    exports.mkdir(exist_ok=True)
    mapping = Profile(name="", date_column="month", unit="SALES",
                      measures=[Measure("NEW_CUST", "sum", "customers")])  # fmt: skip
    item = sources.Source("erp", f"csv://{exports / 'erp.csv'}", "SELECT * FROM erp", mapping)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KPI_SOURCE_DIRS", str(exports))
        return _cli_definitions(path, tmp_path, "source", item)


def cli_targets(path, tmp_path, foreign):
    from kpi_core.ingest import definition_file
    from kpi_core.ingest.target_mapping import TargetMapping

    mapping = tmp_path / "t.toml"
    mapping.write_text(
        definition_file.target_mapping_text(
            TargetMapping("t", "period", "target", kpi="REV", unit="SALES")
        ),
        encoding="utf-8",
    )
    sheet = tmp_path / "t.csv"
    sheet.write_text("period,target\n2027-01,100\n", encoding="utf-8")
    before = fingerprint(path)
    done = cli(path, "targets", str(sheet), "--mapping", str(mapping), "--reason", "r")
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert fingerprint(path) == before
    return [done.stdout, done.stderr]


CLI = {
    "profile": cli_profile,
    "source": cli_source,
    "targets": cli_targets,
    "init": cli_init,
    "score": cli_score,
    "alerts": cli_alerts,
    "export": cli_export,
    "import": cli_import,
    "rollback": cli_rollback,
    "pull": cli_pull,
    "backup": cli_backup,
    "restore": cli_restore,
    "publish": cli_publish,
    "unpublish": cli_unpublish,
}


def test_every_cli_command_has_a_scope_check():
    from kpi_core.cli import _parser

    sub = next(a for a in _parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    commands = set(sub.choices)
    assert commands, "no subcommands found"
    assert commands == set(CLI), f"CLI commands without a scope check: {commands - set(CLI)}"


@pytest.mark.parametrize("command", sorted(CLI))
def test_no_cli_command_gives_another_department(command, cli_file, tmp_path, foreign):
    out = CLI[command](cli_file, tmp_path, foreign)
    texts = [out] if isinstance(out, str) else list(out)
    hits = foreign[VIEWER].found(texts)
    assert not hits, "\n".join(dict.fromkeys(hits))


# --- the big screen ----------------------------------------------------------------------------


def test_a_prod_kiosk_asking_for_sales_shows_nothing_of_sales(
    own_file, catalog, foreign, tmp_path, monkeypatch
):
    from kpi_core import kiosk
    from kpi_core.ui.slides import Params, Snapshot, pages, render

    wh_file = own_file  # a screen is written: not the module's shared copy
    wh = Warehouse(wh_file, linger=0)
    made = kiosk.create(wh, access.SYSTEM, name="prod", units=["PROD"], now=datetime(2026, 11, 3))
    got = kiosk.verify(wh, made.token, datetime(2026, 11, 3, 9), "10.0.0.7")
    wh.close()
    monkeypatch.setenv("KPI_SECRETS", str(tmp_path / "no-secrets.toml"))
    monkeypatch.setenv("KPI_WAREHOUSE", str(wh_file))
    name, codes = got.name, got.units
    assert list(codes) == ["PROD"]
    for asked in (["SALES"], ["GROUP"], ["SALES", "QA"]):
        units = screen.kiosk_units(catalog, codes, asked)
        assert units == ["PROD"]
    wh = Warehouse(wh_file, linger=0)
    try:
        texts = []
        for lang in ("zh", "en"):
            data = screen.screen_data(wh, catalog, screen.kiosk_units(catalog, codes, ["SALES"]),
                                      lang, title=name)  # fmt: skip
            params = Params(token=made.token, rotate=10, refresh=60, units=("SALES",), lang=lang,
                            slides=())  # fmt: skip
            snap = Snapshot(data=data, fetched_at=datetime.now(), stale_since=None)
            # Every slide, as the clock would turn them.
            for n in range(len(pages(data))):
                texts.append(render(snap, params, datetime.now(), n * params.rotate))
    finally:
        wh.close()
    hits = foreign[VIEWER].found(texts)
    assert not hits, "\n".join(dict.fromkeys(hits))
    # The page itself, reached by URL with the token and ?units=SALES.
    at = AppTest.from_file(str(ROOT / "pages/9_Big_Screen.py"), default_timeout=60)
    for k, v in {"token": made.token, "units": "SALES,GROUP", "lang": "en"}.items():
        at.query_params[k] = v
    at.run()
    ok(at)
    html = "".join(h.proto.body for h in at.get("html"))
    assert "bs-slide" in html and i18n.t("bs_not_set_up", "en") not in html
    hits = foreign[VIEWER].found([html])
    assert not hits, "\n".join(dict.fromkeys(hits))


def test_the_scorecard_tree_of_the_viewer_is_inside_the_scope(catalog, viewer_ctx):
    """Sanity of the premise: the viewer's own scorecard exists, so pages have data to show."""
    _, cat, actor = viewer_ctx
    prod = cat.unit("PROD").id
    month = max(e.valid_from for e in cat.edges)
    assert cat.tree(month).get((prod, SCORECARD))
    assert not actor.scope.allows(cat.unit("SALES").id)


# --- the same on PostgreSQL (issue 24: access checked on both engines) -------------------------
# The pages with the plainest URL (every picker's choice and every tab explored), the downloads
# and the reading commands, on a copy of the demo in PostgreSQL. The users, units and KPIs are
# the file's, so the foreign strings are the same.


@pytest.fixture(scope="module")
def pg_url(postgres, pg_demo):
    from tests.conftest import _drop_pg_database, fresh_pg_database

    url = fresh_pg_database(postgres, template=pg_demo)
    yield url
    _drop_pg_database(postgres, url)


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("page", PAGE_FILES)
def test_no_page_shows_another_department_on_postgresql(
    page, user, pg_url, foreign, monkeypatch, tmp_path
):
    check_page(page, user, "plain", pg_url, foreign, monkeypatch, tmp_path)


@pytest.fixture(scope="module")
def pg_viewer_ctx(pg_url):
    wh = open_warehouse(pg_url, linger=0)
    try:
        yield wh, load_catalog(wh), service.actor(wh, VIEWER)
    finally:
        wh.close()


@each_download
def test_no_download_holds_another_department_on_postgresql(check, pg_viewer_ctx, foreign):
    check_download(check, pg_viewer_ctx, foreign)


@pytest.mark.parametrize("command", ["alerts", "export", "score"])
def test_no_reading_command_gives_another_department_on_postgresql(
    command, pg_url, tmp_path, foreign
):
    out = CLI[command](pg_url, tmp_path, foreign)
    hits = foreign[VIEWER].found([out] if isinstance(out, str) else list(out))
    assert not hits, "\n".join(dict.fromkeys(hits))
