"""The KPI tree of an evaluated scorecard as something to look at (DESIGN.md §4, §6).

`visible_nodes` flattens a `NodeResult` tree into the nodes to draw (depth limit, collapsed and
expanded nodes); `tree_dot` turns them into a Graphviz DOT string, which the browser lays out.
`contributions` reads a node's roll-up back as weight × score per child, and `node_trend` gives
a node's last months for a chart. Nothing here recomputes scores: every number comes from the
evaluation the Board uses too.
"""

from __future__ import annotations

import functools
import html
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date

import altair as alt
import pandas as pd

from kpi_core import charts, i18n, targets, trends
from kpi_core.access import Scope
from kpi_core.catalog import Catalog, Node
from kpi_core.i18n import STATUS_COLOR, STATUS_ICON
from kpi_core.library import Kpi
from kpi_core.memo import by_data_version
from kpi_core.periods import Period, add_months
from kpi_core.scorecard import NodeResult, evaluate
from kpi_core.scoring import DEFAULT_LADDER, Ladder
from kpi_core.warehouse import Warehouse

# Light fills keep dark text readable; the strong status colour goes on the border instead.
FILL = {"green": "#c8e6c9", "amber": "#ffe0a3", "red": "#f8c4bf", "grey": "#e4e4e4"}
VETO_COLOR = "#6a3d9a"
VETOED_COLOR = "#b71c1c"
SELECTED_COLOR = "#1f5fa8"
FONT = "Helvetica,Arial,sans-serif"
FONT_SIZE = 12
# Beyond this many nodes on one level a top-down drawing gets too wide for a page: lay it out
# left to right, where a level grows downwards and the page scrolls.
WIDE_LEVEL = 6
_WRAP = 26  # label width in Latin characters; a Chinese character counts as two


@dataclass(frozen=True)
class TreeNode:
    """One node as drawn: where it sits, its numbers, and what is hidden below it."""

    key: Node
    parent: Node | None
    depth: int
    name: str
    unit_name: str | None  # a KPI node's unit, when it differs from its parent's
    weight: float | None  # inside its parent; None for the root
    score: float | None
    status: str
    is_scorecard: bool
    veto: bool  # a veto KPI (否决指标)
    vetoed_by: tuple[str, ...]  # names of the red veto KPIs that zeroed this node
    coverage: float | None
    children: int
    hidden: int  # nodes below it not drawn (collapsed, or past the depth limit)
    result: NodeResult


@dataclass(frozen=True)
class Contribution:
    """One child's part in its parent's rolled-up score."""

    key: Node
    name: str
    weight: float
    score: float | None
    status: str
    contribution: float | None  # weight × score / Σ weight of children with data
    share: float | None  # of the children's weighted score


def node_key(res: NodeResult) -> Node:
    return (res.unit_id, res.kpi_id)


def node_name(res: NodeResult, cat: Catalog, lang: str, with_unit: bool = False) -> str:
    """A scorecard node is its unit; a KPI node its KPI, with the unit when asked."""
    unit = cat.units[res.unit_id].name(lang)
    if res.is_scorecard:
        return unit
    kpi = cat.kpis[res.kpi_id].name(lang)
    return f"{unit} · {kpi}" if with_unit else kpi


def find(root: NodeResult, key: Node) -> NodeResult | None:
    """The node with `key` below (or at) `root`."""
    stack = [root]
    while stack:
        n = stack.pop()
        if node_key(n) == key:
            return n
        stack.extend(c for _, c in n.children)
    return None


# Roots come from the cached evaluations (kpi_core/memo.py), the same object for the same data:
# a company's tree of thousands of nodes is walked once, not several times at every run.
@functools.lru_cache(maxsize=32)
def all_nodes(root: NodeResult) -> list[tuple[int, NodeResult]]:
    """Every node once with its depth, parents before children in the tree's order (shared:
    read it, never change it)."""
    out: list[tuple[int, NodeResult]] = []
    seen: set[Node] = set()
    stack = [(0, root)]
    while stack:
        depth, n = stack.pop()
        if node_key(n) in seen:
            continue
        seen.add(node_key(n))
        out.append((depth, n))
        stack.extend((depth + 1, c) for _, c in reversed(n.children))
    return out


def default_depth(root: NodeResult, limit: int = 60) -> int:
    """The deepest level that keeps the drawing within `limit` nodes (at least one level)."""
    depths = [d for d, _ in all_nodes(root)]
    best = 1
    for d in range(1, max(depths) + 1):
        if sum(x <= d for x in depths) <= limit:
            best = d
    return min(best, max(max(depths), 1))


@functools.lru_cache(maxsize=32)
def _sizes(root: NodeResult) -> dict[Node, int]:
    """Nodes below each node (children first, so each subtree is counted once)."""
    sizes: dict[Node, int] = {}
    for _, n in reversed(all_nodes(root)):
        sizes[node_key(n)] = sum(1 + sizes.get(node_key(c), 0) for _, c in n.children)
    return sizes


def visible_nodes(
    root: NodeResult,
    cat: Catalog,
    lang: str,
    max_depth: int | None = None,
    collapsed: Collection[Node] = (),
    expanded: Collection[Node] = (),
) -> list[TreeNode]:
    """The nodes to draw, parents before children. A node's children show while its depth is
    below `max_depth` or it is `expanded`, unless it is `collapsed` (collapsing wins)."""
    sizes = _sizes(root)
    out: list[TreeNode] = []
    seen: set[Node] = set()
    stack: list[tuple[int, float | None, NodeResult | None, NodeResult]] = [(0, None, None, root)]
    while stack:
        depth, weight, parent, n = stack.pop()
        key = node_key(n)
        if key in seen:
            continue
        seen.add(key)
        opened = (max_depth is None or depth < max_depth or key in expanded) and (
            key not in collapsed
        )
        if opened:
            stack.extend((depth + 1, w, n, c) for w, c in reversed(n.children))
        veto = not n.is_scorecard and cat.kpis[n.kpi_id].veto
        other_unit = parent is not None and parent.unit_id != n.unit_id
        out.append(
            TreeNode(
                key=key,
                parent=None if parent is None else node_key(parent),
                depth=depth,
                name=node_name(n, cat, lang),
                unit_name=cat.units[n.unit_id].name(lang)
                if other_unit and not n.is_scorecard
                else None,
                weight=weight,
                score=n.score,
                status=n.status,
                is_scorecard=n.is_scorecard,
                veto=veto,
                vetoed_by=tuple(cat.kpi(code).name(lang) for code in n.vetoed_by),
                coverage=n.coverage,
                children=len(n.children),
                hidden=0 if opened else sizes[key],
                result=n,
            )
        )
    return out


def dot_string(text: str) -> str:
    """`text` as a quoted DOT string. Names come from users' workbooks: a quote or backslash
    must not end the string or start an escape (`\\N`, `\\l`), and a line break would split
    the statement, so it becomes a space. `<>{}|` are plain text inside quotes for the shapes
    used here (they are special only in record shapes and `<...>` HTML labels, never used)."""
    clean = "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in text)
    return '"' + clean.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _wrap(text: str, width: int = _WRAP) -> list[str]:
    """Lines of at most `width` columns: Latin text breaks between words, Chinese anywhere."""
    tokens: list[str] = []
    for ch in text:
        in_word = ch != " " and _width(ch) == 1
        if in_word and tokens and tokens[-1][-1] != " " and _width(tokens[-1][-1]) == 1:
            tokens[-1] += ch
        else:
            tokens.append(ch)
    lines, line = [], ""
    for tok in tokens:
        if line and _width(line) + _width(tok) > width:
            lines.append(line.rstrip())
            line = tok.lstrip()
        else:
            line += tok
    if line.strip():
        lines.append(line.rstrip())
    return lines or [""]


def _score_text(score: float | None) -> str:
    return "—" if score is None else f"{score:.1f}"


def label_lines(node: TreeNode, lang: str) -> list[str]:
    """The label as lines: name, unit, weight · score · status, then marks."""
    lines = _wrap(node.name)
    if node.unit_name:
        lines += _wrap(f"({node.unit_name})" if lang == "en" else f"（{node.unit_name}）")
    numbers = [_score_text(node.score), i18n.status_label(node.status, lang)]
    if node.weight is not None:
        numbers.insert(0, f"{node.weight:g}%")
    lines.append(" · ".join(numbers))
    if node.veto:
        lines.append(i18n.t("tree_veto_tag", lang))
    if node.vetoed_by:
        lines += _wrap(i18n.t("tree_vetoed_by", lang, kpis="、".join(node.vetoed_by)))
    if node.coverage is not None and node.coverage < 1 - 1e-9 and node.children:
        lines.append(i18n.t("tree_coverage", lang, pct=f"{node.coverage * 100:.0f}"))
    if node.hidden:
        lines.append(i18n.t("tree_hidden", lang, n=node.hidden))
    return lines


def outline_html(nodes: list[TreeNode], lang: str, selected: Node | None = None) -> str:
    """The visible nodes as an indented list, for a screen too narrow for the drawing: each
    node's name (and unit where it differs), then weight · score · light and its marks, as in
    the drawing's labels, in wrapping text of 15 px — nothing to zoom."""
    items = []
    for n in nodes:
        name = n.name
        if n.unit_name:
            name += f" ({n.unit_name})" if lang == "en" else f"（{n.unit_name}）"
        head = len(_wrap(n.name)) + (len(_wrap(f"({n.unit_name})")) if n.unit_name else 0)
        details = " · ".join(label_lines(n, lang)[head:])
        edge = SELECTED_COLOR if n.key == selected else STATUS_COLOR[n.status]
        if n.vetoed_by and n.key != selected:
            edge = VETOED_COLOR
        style = (
            f"margin:0 0 4px {min(n.depth, 8) * 14}px;padding:6px 10px;border-radius:4px;"
            f"border-left:5px solid {edge};background:{FILL[n.status]}"
        )
        bold = "font-weight:700" if n.is_scorecard or n.key == selected else ""
        items.append(
            f'<li class="kpi-outline-node" data-depth="{n.depth}" style="{style}">'
            f'<div style="{bold}">{html.escape(name)}</div><div>{html.escape(details)}</div></li>'
        )
    return (
        '<ul class="kpi-outline" style="list-style:none;padding:0;margin:0;font-size:15px;'
        f'line-height:1.45;color:#1a1a1a">{"".join(items)}</ul>'
    )


def _dot_id(key: Node) -> str:
    return f"n{key[0]}_{key[1]}"


def layout(nodes: list[TreeNode]) -> str:
    """`LR` when some level is too wide to draw top-down, else `TB`."""
    per_level: dict[int, int] = {}
    for n in nodes:
        per_level[n.depth] = per_level.get(n.depth, 0) + 1
    return "LR" if max(per_level.values(), default=0) > WIDE_LEVEL else "TB"


def tree_dot(nodes: list[TreeNode], lang: str, selected: Node | None = None) -> str:
    """A Graphviz digraph of the visible nodes: fill by status, the status word and shape in
    the label (colour-blind safe), squared boxes for scorecards and rounded ones for KPIs, a
    double violet border on veto KPIs and a dark red one on vetoed nodes."""
    # ordering=out keeps siblings in the scorecard's order, which also keeps subtrees apart.
    out = [
        "digraph kpi_tree {",
        f'  graph [rankdir={layout(nodes)}, nodesep=0.18, ranksep=0.45, ordering=out, bgcolor="transparent"];',
        f'  node [fontname="{FONT}", fontsize={FONT_SIZE}, fontcolor="#1a1a1a", margin="0.12,0.06"];',
        '  edge [color="#8a99a6", arrowsize=0.6];',
    ]
    shown = {n.key for n in nodes}
    for n in nodes:
        lines = label_lines(n, lang)
        label = "\\n".join(dot_string(line)[1:-1] for line in lines)
        # Graphviz measures text with Latin metrics; a Chinese character is about one em wide,
        # so give the box the width its widest line needs (it is a minimum, never a clip).
        inches = max(_width(line) for line in lines) * FONT_SIZE * 0.55 / 72 + 0.3
        attrs = {
            "label": f'"{label}"',
            "tooltip": dot_string(" · ".join(lines)),
            "shape": "box",
            "style": '"filled,bold"' if n.is_scorecard else '"rounded,filled"',
            "fillcolor": f'"{FILL[n.status]}"',
            "color": f'"{STATUS_COLOR[n.status]}"',
            "penwidth": "2" if n.is_scorecard else "1.2",
            "width": f"{inches:.2f}",
        }
        if n.veto:
            attrs |= {"peripheries": "2", "color": f'"{VETO_COLOR}"', "penwidth": "1.6"}
        if n.vetoed_by:
            attrs |= {"color": f'"{VETOED_COLOR}"', "penwidth": "3"}
        if n.key == selected:
            attrs |= {"color": f'"{SELECTED_COLOR}"', "penwidth": "4"}
        body = ", ".join(f"{k}={v}" for k, v in attrs.items())
        out.append(f"  {_dot_id(n.key)} [{body}];")
    for n in nodes:
        if n.parent is not None and n.parent in shown:
            out.append(f"  {_dot_id(n.parent)} -> {_dot_id(n.key)};")
    out.append("}")
    return "\n".join(out)


def contributions(node: NodeResult, cat: Catalog, lang: str) -> list[Contribution]:
    """Each child's weight × score over the weight of the children with data — the terms of
    the scorecard's roll-up, so they add up to the node's children's score (before a veto)."""
    with_data = sum(w for w, c in node.children if c.score is not None)
    rows = []
    for w, c in node.children:
        part = None if c.score is None or with_data == 0 else w * c.score / with_data
        rows.append((w, c, part))
    total = sum(p for _, _, p in rows if p is not None)
    return [
        Contribution(
            key=node_key(c),
            name=node_name(c, cat, lang, with_unit=c.unit_id != node.unit_id),
            weight=w,
            score=c.score,
            status=c.status,
            contribution=part,
            share=None if part is None or total == 0 else part / total,
        )
        for w, c, part in rows
    ]


def trend_months(end: date, months: int = 24) -> list[date]:
    return [add_months(end, -i) for i in range(months - 1, -1, -1)]


@by_data_version
def node_trend(
    wh: Warehouse,
    cat: Catalog,
    scope: Scope,
    node: NodeResult,
    end: date,
    months: int = 24,
    ladder: Ladder = DEFAULT_LADDER,
) -> pd.DataFrame:
    """A node's months up to `end`: a KPI node's actual and that month's levels; a scorecard
    node's monthly score (its levels are the ladder's points)."""
    scope.check(node.unit_id, cat.units[node.unit_id].code)
    run = trend_months(end, months)
    if node.is_scorecard:
        scores = [
            evaluate(wh, cat, scope, [node.unit_id], Period("M", m), ladder)[node.unit_id].score
            for m in run
        ]
        return pd.DataFrame({"month": pd.to_datetime(run), "score": scores})
    return trends.kpi_months(wh, cat, node.kpi_id, node.unit_id, run)


_SERIES = charts.SERIES_COLORS


@charts.for_pages
def trend_chart(
    trend: pd.DataFrame, kpi: Kpi | None, lang: str, ladder: Ladder = DEFAULT_LADDER
) -> alt.Chart:
    """The actual as a solid line over dashed level lines (a KPI node), or the monthly score
    over rules at the ladder's baseline and target points (a scorecard node)."""
    if kpi is None:
        df = trend.dropna(subset=["score"])
        line = (
            alt.Chart(df)
            .mark_line(point=True, color=_SERIES["actual"])
            .encode(
                x=alt.X("month:T", title=None, axis=alt.Axis(format="%Y-%m")),
                y=alt.Y("score:Q", title=i18n.t("score", lang), scale=alt.Scale(domain=[0, 125])),
                tooltip=[
                    alt.Tooltip("month:T", title=i18n.t("month", lang), format="%Y-%m"),
                    alt.Tooltip("score:Q", title=i18n.t("score", lang), format=".1f"),
                ],
            )
        )
        rules = (
            alt.Chart(pd.DataFrame({"y": [ladder.baseline, ladder.target]}))
            .mark_rule(strokeDash=[4, 3], color="#666")
            .encode(y="y:Q")
        )
        return (line + rules).properties(height=260)
    fields = ["actual", *(f for f in targets.LEVEL_FIELDS if f != "tolerance")]
    long = trend.melt("month", value_vars=fields, var_name="series", value_name="value").dropna()
    long["shown"] = [i18n.format_value(v, kpi, lang) for v in long["value"]]
    names = {f: i18n.t(f"tree_{f}" if f in ("low", "high") else f, lang) for f in fields}
    long["series"] = long["series"].map(names)
    present = [f for f in fields if names[f] in set(long["series"])]
    color = alt.Color(
        "series:N",
        title=None,
        scale=alt.Scale(domain=[names[f] for f in present], range=[_SERIES[f] for f in present]),
        legend=alt.Legend(orient="bottom"),
    )
    axis = charts.value_axis(kpi, lang=lang)
    base = alt.Chart(long).encode(
        x=alt.X("month:T", title=None, axis=alt.Axis(format="%Y-%m")),
        y=alt.Y("value:Q", title=i18n.unit_label(kpi.unit, lang) or None, axis=axis),
        color=color,
        tooltip=[
            alt.Tooltip("month:T", title=i18n.t("month", lang), format="%Y-%m"),
            alt.Tooltip("series:N", title=" "),
            alt.Tooltip("shown:N", title=i18n.t("value", lang)),
        ],
    )
    levels = base.transform_filter(alt.datum.series != names["actual"]).mark_line(
        strokeDash=[5, 4], strokeWidth=1.5
    )
    actual = base.transform_filter(alt.datum.series == names["actual"]).mark_line(
        point=True, strokeWidth=2.5
    )
    return (levels + actual).properties(height=260)


@charts.for_pages
def contribution_chart(rows: list[Contribution], lang: str) -> alt.Chart:
    """Children's contributions as bars coloured by status, the score and icon beside each."""
    df = pd.DataFrame(
        [
            {
                "child": r.name,
                "contribution": None if r.contribution is None else round(r.contribution, 2),
                "status": i18n.t(r.status, lang),
                "label": "—"
                if r.contribution is None
                else f"{r.contribution:.1f} ({r.weight:g}% × {_score_text(r.score)}) "
                f"{STATUS_ICON[r.status]}",
            }
            for r in rows
        ],
        columns=["child", "contribution", "status", "label"],
    )
    statuses = ["green", "amber", "red", "grey"]
    top = df["contribution"].max()
    y = alt.Y("child:N", sort=df["child"].tolist(), title=None, axis=alt.Axis(labelLimit=260))
    bars = (
        alt.Chart(df)
        .mark_bar(size=20)
        .encode(
            # Room right of the longest bar for its label.
            x=alt.X(
                "contribution:Q",
                title=i18n.t("tree_contribution", lang),
                scale=alt.Scale(domain=[0, 1.4 * top if pd.notna(top) and top > 0 else 1]),
            ),
            y=y,
            color=alt.Color(
                "status:N",
                scale=alt.Scale(
                    domain=[i18n.t(s, lang) for s in statuses],
                    range=[STATUS_COLOR[s] for s in statuses],
                ),
                legend=None,
            ),
            tooltip=[alt.Tooltip("child:N"), alt.Tooltip("label:N"), alt.Tooltip("status:N")],
        )
    )
    labels = bars.mark_text(align="left", dx=4, fontSize=12).encode(
        text="label:N", color=alt.value("#333")
    )
    return (bars + labels).properties(height={"step": 32})
