"""The KPI tree as drawn: visible nodes, depth and collapse, the DOT text (read back with a small
DOT reader, so a hostile name cannot hide), contributions worked out by hand, and veto marks."""

import re
from datetime import date

import pandas as pd
import pytest

from kpi_core import access, workbook
from kpi_core.access import Scope
from kpi_core.catalog import SCORECARD, load_catalog
from kpi_core.periods import Period
from kpi_core.scorecard import evaluate
from kpi_core.system_import import import_system
from kpi_core.tree_view import (
    FILL,
    VETO_COLOR,
    VETOED_COLOR,
    contributions,
    default_depth,
    find,
    label_lines,
    layout,
    node_trend,
    tree_dot,
    trend_chart,
    visible_nodes,
)
from tests.conftest import sales_system

# The file only, for the suite's time: tests/test_pages_pg.py runs these pages on PostgreSQL, and
# KPI_TEST_ENGINES=both runs this module on both engines (tests/conftest.py).

HOSTILE = 'Evil" ]; x -> y [label="pwn" \\N \\l <b>{a|b}</b>\n&amp;'

_TOKEN = re.compile(r'\s*(?:("(?:\\.|[^"\\])*")|(->|[{}\[\];,=])|([A-Za-z_][\w]*|-?[\d.]+))', re.S)
_ATTRS = {
    "rankdir", "nodesep", "ranksep", "ordering", "bgcolor", "fontname", "fontsize", "fontcolor",
    "margin", "color", "arrowsize", "label", "tooltip", "shape", "style", "fillcolor", "penwidth",
    "width", "peripheries",
}  # fmt: skip


def read_dot(text: str) -> tuple[dict[str, dict[str, str]], list[tuple[str, str]]]:
    """Nodes (id → attributes, strings unquoted and unescaped) and edges of the DOT we write.
    Raises on anything else — a stray quote or an injected statement breaks the token stream."""
    tokens, pos = [], 0
    while pos < len(text.rstrip()):
        m = _TOKEN.match(text, pos)
        assert m, f"cannot read DOT at {text[pos : pos + 40]!r}"
        tokens.append(m.group(1) or m.group(2) or m.group(3))
        pos = m.end()

    def unquote(tok: str) -> str:
        if not tok.startswith('"'):
            return tok
        return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), tok[1:-1])

    def attrs(i: int) -> tuple[dict[str, str], int]:
        assert tokens[i] == "["
        out, i = {}, i + 1
        while tokens[i] != "]":
            key, eq, value = tokens[i : i + 3]
            assert eq == "=" and key in _ATTRS, (key, eq)
            out[key] = unquote(value)
            i += 3
            if tokens[i] == ",":
                i += 1
        return out, i + 1

    assert tokens[:3] == ["digraph", "kpi_tree", "{"] and tokens[-1] == "}"
    nodes: dict[str, dict[str, str]] = {}
    edges: list[tuple[str, str]] = []
    i = 3
    while i < len(tokens) - 1:
        if tokens[i] in ("graph", "node", "edge"):
            _, i = attrs(i + 1)
        elif tokens[i + 1] == "->":
            edges.append((tokens[i], tokens[i + 2]))
            i += 3
        else:
            assert re.fullmatch(r"n\d+_\d+", tokens[i]), tokens[i]
            nodes[tokens[i]], i = attrs(i + 1)
        assert tokens[i] == ";", tokens[i]
        i += 1
    return nodes, edges


def load(system, tmp_path):
    from kpi_core.warehouse import Warehouse

    path = tmp_path / "system.xlsx"
    workbook.write(system, path)
    wh = Warehouse(tmp_path / "tree.duckdb", linger=0)
    import_system(wh, path, by="test", scope=Scope.all())
    return wh


@pytest.fixture
def sales(sales_wh):
    cat = load_catalog(sales_wh)
    co = cat.unit("CO").id
    root = evaluate(sales_wh, cat, Scope.all(), [co], Period("Y", date(2024, 1, 1)))[co]
    return sales_wh, cat, root


def key(cat, unit, kpi=None):
    return (cat.unit(unit).id, cat.kpi(kpi).id if kpi else SCORECARD)


def test_contributions_of_the_worked_example(sales):
    _, cat, root = sales
    sales_node = find(root, key(cat, "SALES"))
    rows = {cat.kpis[r.key[1]].code: r for r in contributions(sales_node, cat, "en")}
    # Scores by hand (2024): revenue 58M of 50/60/70M → 92; new customers 66 of 50/60/70 → 112;
    # satisfaction 88 of 85/90/95 → 84; collection 1740/1800 = 96.67% of 90/95/98% → 111.11.
    # Every child has data, so each contributes weight × score / 100.
    assert rows["REV"].contribution == pytest.approx(40 * 92 / 100)
    assert rows["NEW_CUST"].contribution == pytest.approx(25 * 112 / 100)
    assert rows["CSAT"].contribution == pytest.approx(20 * 84 / 100)
    assert rows["COLLECT_RATE"].contribution == pytest.approx(15 * (100 + 20 * 5 / 9) / 100)
    total = sum(r.contribution for r in rows.values())
    assert total == pytest.approx(98.2667, abs=1e-4)
    assert total == pytest.approx(sales_node.children_score)
    assert rows["REV"].share == pytest.approx(36.8 / total)
    assert rows["REV"].name == "Revenue" and rows["REV"].weight == 40


def test_contributions_leave_out_children_without_data(sales):
    sales_wh, cat, _ = sales
    # In 2023 there are no actuals at all: nothing contributes, nothing is divided by zero.
    co = cat.unit("CO").id
    old = evaluate(sales_wh, cat, Scope.all(), [co], Period("Y", date(2023, 1, 1)))[co]
    rows = contributions(find(old, key(cat, "SALES")), cat, "en")
    assert [r.contribution for r in rows] == [None] * 4
    assert [r.status for r in rows] == ["grey"] * 4


def test_depth_collapse_and_expand(sales):
    _, cat, root = sales
    full = visible_nodes(root, cat, "en")
    assert len(full) == 13  # CO, SALES, 4 + 2 under it, PROD and 4 under it
    assert full[0].key == key(cat, "CO") and full[0].parent is None and full[0].weight is None

    top = visible_nodes(root, cat, "en", max_depth=1)
    assert [n.name for n in top] == ["Example Co", "Sales", "Production"]
    assert [n.hidden for n in top] == [0, 6, 4]
    assert "+6 below" in label_lines(top[1], "en")

    shut = visible_nodes(root, cat, "en", collapsed={key(cat, "SALES")})
    assert len(shut) == 13 - 6
    assert next(n for n in shut if n.key == key(cat, "SALES")).hidden == 6

    opened = visible_nodes(root, cat, "en", max_depth=1, expanded={key(cat, "SALES")})
    names = [n.name for n in opened]
    assert names[:3] == ["Example Co", "Sales", "Revenue"]
    rev = next(n for n in opened if n.key == key(cat, "SALES", "REV"))
    assert rev.depth == 2 and rev.hidden == 2  # East and North revenue stay folded
    # Collapsing wins over expanding.
    both = visible_nodes(
        root, cat, "en", expanded={key(cat, "SALES")}, collapsed={key(cat, "SALES")}
    )
    assert key(cat, "SALES", "REV") not in {n.key for n in both}
    assert default_depth(root) == 3 and default_depth(root, limit=3) == 1


def test_dot_marks_status_kind_weight_and_score(sales):
    _, cat, root = sales
    nodes = visible_nodes(root, cat, "en")
    dot = tree_dot(nodes, "en", selected=key(cat, "SALES", "CSAT"))
    drawn, edges = read_dot(dot)
    assert len(drawn) == len(nodes) and len(edges) == len(nodes) - 1
    sales_id = f"n{cat.unit('SALES').id}_0"
    csat_id = f"n{cat.unit('SALES').id}_{cat.kpi('CSAT').id}"
    east_id = f"n{cat.unit('EAST').id}_{cat.kpi('REV').id}"
    assert (sales_id, csat_id) in edges
    assert drawn[sales_id]["style"] == "filled,bold"  # a scorecard: squared box
    assert drawn[csat_id]["style"] == "rounded,filled"  # a KPI: rounded
    # 88 against 85/90/95 scores 84: amber, by fill and by shape and word in the label.
    assert drawn[csat_id]["label"].split("\n") == ["Customer satisfaction", "20% · 84.0 · ▲ Amber"]
    assert drawn[csat_id]["fillcolor"] == FILL["amber"]
    assert drawn[csat_id]["penwidth"] == "4"  # the selected node
    # A KPI node of another unit names its unit.
    assert drawn[east_id]["label"].split("\n")[:2] == ["Revenue", "(East region)"]
    # Eight KPIs on the second level are too wide to draw top-down; the top levels are not.
    assert layout(nodes) == "LR"
    assert layout(visible_nodes(root, cat, "en", max_depth=1)) == "TB"

    zh = read_dot(tree_dot(visible_nodes(root, cat, "zh"), "zh"))[0]
    assert zh[csat_id]["label"].split("\n") == ["客户满意度", "20% · 84.0 · ▲ 黄灯"]


def test_veto_kpi_and_vetoed_parent_are_marked(tmp_path):
    system = sales_system()
    a = system["actuals"]
    a.loc[(a["kpi"] == "SAFETY") & (a["period"] == "2024-03"), "value"] = 1
    wh = load(system, tmp_path)
    try:
        cat = load_catalog(wh)
        prod = cat.unit("PROD").id
        res = evaluate(wh, cat, Scope.all(), [prod], Period("M", date(2024, 3, 1)))[prod]
        assert res.vetoed_by == ("SAFETY",) and res.score == 0
        nodes = visible_nodes(res, cat, "en")
        drawn, _ = read_dot(tree_dot(nodes, "en"))
        safety = drawn[f"n{prod}_{cat.kpi('SAFETY').id}"]
        assert "[VETO]" in safety["label"].split("\n")
        assert safety["peripheries"] == "2" and safety["color"] == VETO_COLOR
        assert "■ Red" in safety["label"]
        parent = drawn[f"n{prod}_0"]
        assert "[VETOED] Safety incidents missed" in parent["label"].replace("\n", " ")
        assert parent["color"] == VETOED_COLOR and "0.0 · ■ Red" in parent["label"]
        oee = drawn[f"n{prod}_{cat.kpi('OEE').id}"]
        assert "peripheries" not in oee and "[VETO]" not in oee["label"]
        zh = read_dot(tree_dot(visible_nodes(res, cat, "zh"), "zh"))[0]
        assert "【被否决】安全事故未达标" in zh[f"n{prod}_0"]["label"].replace("\n", "")
        # Contributions still read the children's terms; the veto, not they, zeroes the score.
        rows = contributions(res, cat, "en")
        assert sum(r.share for r in rows if r.share is not None) == pytest.approx(1)
    finally:
        wh.close()


def test_a_hostile_name_stays_text(tmp_path):
    system = sales_system()
    system["kpis"].loc[system["kpis"]["code"] == "CSAT", "name_en"] = HOSTILE
    system["org_units"].loc[system["org_units"]["code"] == "SALES", "name_en"] = 'Sales\\" {x}|<y>'
    wh = load(system, tmp_path)
    try:
        cat = load_catalog(wh)
        co = cat.unit("CO").id
        root = evaluate(wh, cat, Scope.all(), [co], Period("Y", date(2024, 1, 1)))[co]
        nodes = visible_nodes(root, cat, "en")
        drawn, edges = read_dot(tree_dot(nodes, "en"))
        assert len(drawn) == len(nodes) and len(edges) == len(nodes) - 1
        csat = drawn[f"n{cat.unit('SALES').id}_{cat.kpi('CSAT').id}"]
        shown = csat["label"].rsplit("\n", 1)[0].replace("\n", " ")
        # The line break in the name became a space; everything else is there, as text.
        assert shown == HOSTILE.replace("\n", " ")
        assert csat["style"] == "rounded,filled"  # no attribute was overwritten
        assert drawn[f"n{cat.unit('SALES').id}_0"]["label"].startswith('Sales\\" {x}|<y>')
    finally:
        wh.close()


def big_system(departments: int = 10, kpis: int = 19) -> dict[str, pd.DataFrame]:
    """A company of `departments` units with `kpis` KPIs each: 1 + 10 + 190 = 201 nodes."""
    codes = [f"K{i:02d}" for i in range(kpis)]
    depts = [f"D{i:02d}" for i in range(departments)]
    kpi_rows = [
        [c, f"指标{c}", f"Measure {c} of the long name kind", "个", "up", "sum", None, None,
         None, "process", i == 0]
        for i, c in enumerate(codes)
    ]  # fmt: skip
    units = [["C", "公司", "Company", None, "company"]]
    units += [[d, f"部门{d}", f"Department {d}", "C", "department"] for d in depts]
    tree = [["C", d, 100 / departments] for d in depts]
    tree += [[d, f"{d}/{c}", 0 if i == 0 else 100 / (kpis - 1)] for d in depts for i, c in enumerate(codes)]  # fmt: skip
    target_rows, actual_rows = [], []
    for j, d in enumerate(depts):
        for i, c in enumerate(codes):
            target_rows.append([d, c, "2024-03", 80, 100, 120, None, None, None, None])
            actual_rows.append([d, c, "2024-03", 0 if i == 0 else 70 + (i * 7 + j * 3) % 60])
    return {
        "kpis": pd.DataFrame(kpi_rows, columns=["code", "name_zh", "name_en", "unit", "direction",
                             "aggregation", "numerator", "denominator", "formula", "perspective",
                             "veto"]),
        "org_units": pd.DataFrame(units, columns=["code", "name_zh", "name_en", "parent", "kind"]),
        "tree": pd.DataFrame(tree, columns=["parent", "child", "weight"]),
        "targets": pd.DataFrame(target_rows, columns=["unit", "kpi", "period", "baseline", "target",
                                "challenge", "phasing", "low", "high", "tolerance"]),
        "actuals": pd.DataFrame(actual_rows, columns=["unit", "kpi", "period", "value"]),
    }  # fmt: skip


def test_a_tree_of_two_hundred_nodes_is_drawn_left_to_right(tmp_path):
    wh = load(big_system(), tmp_path)
    try:
        cat = load_catalog(wh)
        c = cat.unit("C").id
        root = evaluate(wh, cat, Scope.all(), [c], Period("M", date(2024, 3, 1)))[c]
        nodes = visible_nodes(root, cat, "zh")
        assert len(nodes) == 201
        dot = tree_dot(nodes, "zh")
        assert "rankdir=LR" in dot
        drawn, edges = read_dot(dot)
        assert len(drawn) == 201 and len(edges) == 200
        # Depth 1 keeps it small: the departments, each saying what it folds.
        top = visible_nodes(root, cat, "zh", max_depth=1)
        assert len(top) == 11 and all(n.hidden == 19 for n in top[1:])
        assert "+19 个下级" in read_dot(tree_dot(top, "zh"))[0][f"n{cat.unit('D00').id}_0"]["label"]
        assert default_depth(root) == 1
    finally:
        wh.close()


def test_trends_of_a_kpi_node_and_a_scorecard(sales):
    sales_wh, cat, root = sales
    rev = find(root, key(cat, "SALES", "REV"))
    trend = node_trend(sales_wh, cat, Scope.all(), rev, date(2024, 12, 1))
    assert len(trend) == 24 and trend["actual"].iloc[:12].isna().all()
    # No revenue of its own: East 2.9M + North 1.93M a month, against a twelfth of 60M.
    assert trend["actual"].iloc[-1] == pytest.approx(2_900_000 + 1_933_333.3333333333)
    assert trend["target"].iloc[-1] == pytest.approx(5_000_000)
    spec = trend_chart(trend, cat.kpis[rev.kpi_id], "en").to_dict()
    assert {"Actual", "Target", "Baseline", "Challenge"} <= {
        v["series"] for v in next(iter(spec["datasets"].values()))
    }

    sales_card = find(root, key(cat, "SALES"))
    scores = node_trend(sales_wh, cat, Scope.all(), sales_card, date(2024, 12, 1), months=3)
    assert list(scores.columns) == ["month", "score"] and scores["score"].notna().all()
    assert trend_chart(scores, None, "zh").to_dict()["layer"][1]["mark"]["type"] == "rule"


def test_a_trend_outside_the_scope_is_refused(sales):
    from kpi_core.errors import KpiError

    sales_wh, cat, root = sales
    only_prod = Scope(frozenset({cat.unit("PROD").id}))
    with pytest.raises(KpiError):
        node_trend(sales_wh, cat, only_prod, find(root, key(cat, "SALES")), date(2024, 12, 1))


def test_months_under_the_same_weights_share_one_tree_and_shape(demo_wh):
    """Issue 22: a 24-month company trend evaluates 24 months; the tree (and the evaluation's
    shape) is derived once per set of weight versions, not once per month — and a month under
    newer weights still gets its own."""
    from kpi_core import planning
    from kpi_core.scorecard import _shape

    cat = load_catalog(demo_wh)
    sales = cat.unit("SALES").id
    base = planning.weight_grid(cat, access.SYSTEM, sales, "en", date(2027, 1, 1))
    edited = base.copy()
    edited.loc[base.index[base["parent"] == "SALES"][:2], "weight"] = [45.0, 20.0]
    edits, _ = planning.weight_edits(base, edited)
    planning.save_weights(
        demo_wh, cat, access.SYSTEM, edits, reason="plan", effective=date(2027, 1, 1)
    )
    cat = load_catalog(demo_wh)
    may, nov, jan = date(2026, 5, 1), date(2026, 11, 1), date(2027, 1, 1)
    assert cat.tree(may) is cat.tree(nov)
    assert _shape(cat, (sales,), may, Scope.all()) is _shape(cat, (sales,), nov, Scope.all())
    assert _shape(cat, (sales,), jan, Scope.all()) is not _shape(cat, (sales,), nov, Scope.all())
    own = [w for (u, k), w in cat.tree(jan)[(sales, SCORECARD)] if u == sales and k]
    assert own[:2] == [45.0, 20.0]
    assert [w for (u, k), w in cat.tree(nov)[(sales, SCORECARD)] if u == sales and k][:2] == [
        40.0,
        25.0,
    ]
    jan_score = evaluate(demo_wh, cat, Scope.all(), [sales], Period("M", jan))[sales]
    weights = [w for w, c in jan_score.kpi_children()]
    assert weights[:2] == [45.0, 20.0]
