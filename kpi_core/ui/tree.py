"""The KPI tree page: the drawing with its depth and collapse controls, and one node's details."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import streamlit as st

from kpi_core import completeness, i18n, review
from kpi_core.actuals import data_range
from kpi_core.catalog import Catalog, Node
from kpi_core.periods import Period
from kpi_core.scorecard import NodeResult, evaluate
from kpi_core.scoring import DEFAULT_LADDER
from kpi_core.tree_view import (
    all_nodes,
    contribution_chart,
    contributions,
    default_depth,
    find,
    node_key,
    node_name,
    node_trend,
    outline_html,
    tree_dot,
    trend_chart,
    visible_nodes,
)
from kpi_core.ui import PageContext, period_picker, unit_picker
from kpi_core.ui.detail import link as detail_link
from kpi_core.ui.review import comments_panel, panel_title
from kpi_core.ui.widgets import badge, month_notes, partial_period_note

NARROW = 640  # px: below this the tree is an outline
NARROW_CSS = f"""<style>
@media (max-width: {NARROW - 0.02}px) {{ .st-key-tree_drawing {{ display: none !important; }} }}
@media (min-width: {NARROW}px) {{ .st-key-tree_outline {{ display: none !important; }} }}
</style>"""


def _key_text(key: Node) -> str:
    return f"{key[0]}:{key[1]}"


def _labels(root: NodeResult, cat: Catalog, lang: str) -> dict[str, str]:
    """Option labels for every node, indented by depth; a repeated name gets its codes."""
    nodes = all_nodes(root)
    names = [
        node_name(n, cat, lang, with_unit=n.unit_id != root.unit_id and not n.is_scorecard)
        for _, n in nodes
    ]
    seen = Counter(names)
    out = {}
    for (depth, n), name in zip(nodes, names, strict=True):
        if seen[name] > 1:
            code = cat.units[n.unit_id].code
            name += f" [{code}]" if n.is_scorecard else f" [{code}/{cat.kpis[n.kpi_id].code}]"
        out[_key_text(node_key(n))] = "\u2003" * depth + name
    return out


def _remembered(key: str, options: list, default):
    """A widget's remembered value, dropped where the options moved on (another period's tree)."""
    value = st.session_state.get(key, default)
    if isinstance(value, list):
        value = [v for v in value if v in options]
    elif value not in options:
        value = default
    st.session_state[key] = value


def tree_page(ctx: PageContext) -> None:
    span = data_range(ctx.wh, ctx.actor.scope, ctx.cat)
    if span is None:
        st.info(ctx.t("no_data_yet"))
        st.stop()
    first, latest = span
    unit_id = unit_picker(ctx, latest)
    view = completeness.in_view(ctx.wh, ctx.cat, [unit_id], latest, first)
    period = period_picker(ctx, first, latest, view)
    lang, cat = ctx.lang, ctx.cat
    # A running quarter or year is judged on its months so far, as on the Board.
    months = [m for m in period.months if m <= latest] or period.months
    root = evaluate(ctx.wh, cat, ctx.actor.scope, [unit_id], period, months=months)[unit_id]

    st.title(
        f"{ctx.t('nav_tree')} · {cat.units[unit_id].name(lang)} · "
        f"{i18n.period_label(period.label(), lang)}"
    )
    partial_period_note(ctx, period, latest)
    month_notes(ctx, period, view, completeness.statuses(ctx.wh, cat, [unit_id], months))

    labels = _labels(root, cat, lang)
    everything = all_nodes(root)
    keys = {_key_text(node_key(n)): node_key(n) for _, n in everything}
    deepest = max(d for d, _ in everything)
    with_children = [_key_text(node_key(n)) for _, n in everything if n.children]

    depth_key, collapse_key = f"tree_depth_{unit_id}", f"tree_collapse_{unit_id}"
    expand_key, node_key_ = f"tree_expand_{unit_id}", f"tree_node_{unit_id}"
    left, mid, right = st.columns([1, 2, 2])
    if deepest > 1:
        _remembered(depth_key, list(range(1, deepest + 1)), default_depth(root))
        depth = left.slider(
            ctx.t("tree_depth"), 1, deepest, key=depth_key, help=ctx.t("tree_depth_help")
        )
    else:
        depth = deepest
    _remembered(collapse_key, with_children, [])
    collapsed = mid.multiselect(
        ctx.t("tree_collapse"),
        with_children,
        format_func=labels.get,
        key=collapse_key,
        placeholder=ctx.t("tree_choose"),
    )
    _remembered(expand_key, with_children, [])
    expanded = right.multiselect(
        ctx.t("tree_expand"),
        with_children,
        format_func=labels.get,
        key=expand_key,
        placeholder=ctx.t("tree_choose"),
    )
    _remembered(node_key_, list(keys), _key_text(node_key(root)))
    chosen = st.selectbox(
        ctx.t("tree_node"),
        list(keys),
        format_func=labels.get,
        key=node_key_,
        help=ctx.t("tree_node_help"),
    )
    selected = keys[chosen]

    shown = visible_nodes(
        root,
        cat,
        lang,
        max_depth=depth,
        collapsed={keys[k] for k in collapsed},
        expanded={keys[k] for k in expanded},
    )
    count = ctx.t("tree_count", shown=len(shown), total=len(keys))
    # A phone gets the outline, a wider screen the drawing (whose text a phone shrinks to a
    # few pixels): both are sent, the page's width picks one (NARROW_CSS).
    st.html(NARROW_CSS)
    with st.container(key="tree_drawing"):
        st.caption(f"{count} · {ctx.t('tree_legend')}")
        st.graphviz_chart(tree_dot(shown, lang, selected), width="stretch")
    with st.container(key="tree_outline"):
        st.caption(f"{count} · {ctx.t('tree_outline_legend')}")
        st.html(outline_html(shown, lang, selected))

    _details(ctx, find(root, selected), period, latest)


def _details(ctx: PageContext, node: NodeResult, period: Period, latest) -> None:
    lang, cat = ctx.lang, ctx.cat
    kpi = None if node.is_scorecard else cat.kpis[node.kpi_id]
    st.subheader(node_name(node, cat, lang, with_unit=not node.is_scorecard))
    marks = [badge(node.status, lang)]
    if node.is_scorecard:
        marks.append(f":blue-badge[{ctx.t('tree_scorecard')}]")
    if kpi is not None and kpi.veto:
        marks.append(f":violet-badge[{ctx.t('veto_mark')}]")
    st.markdown(" ".join(marks))
    if node.vetoed_by:
        names = "、".join(cat.kpi(c).name(lang) for c in node.vetoed_by)
        st.error(ctx.t("vetoed", kpis=names))

    cols = st.columns(4)
    cols[0].metric(ctx.t("score"), "—" if node.score is None else f"{node.score:.1f}")
    if kpi is not None:
        cols[1].metric(ctx.t("actual"), i18n.format_value(node.actual, kpi, lang))
        cols[2].metric(ctx.t("target"), i18n.format_target(node.levels, kpi, lang))
    if node.children:
        cols[3].metric(ctx.t("coverage"), f"{(node.coverage or 0) * 100:.0f}%")
    if kpi is not None and node.own_actual and node.children_score is not None:
        st.caption(ctx.t("tree_own_vs_children", score=f"{node.children_score:.1f}"))
    elif kpi is not None and node.children_score is not None:
        st.caption(
            f"{ctx.t('children_score')}: {node.children_score:.1f} ({ctx.t('from_children')})"
        )

    trend_col, targets_col = st.columns([3, 2])
    with trend_col:
        st.markdown(f"**{ctx.t('tree_trend')}**")
        trend = node_trend(ctx.wh, cat, ctx.actor.scope, node, min(period.end, latest))
        values = trend["score"] if kpi is None else trend["actual"]
        if values.notna().any():
            st.altair_chart(trend_chart(trend, kpi, lang), width="stretch")
        else:
            st.info(ctx.t("tree_no_trend"))
    with targets_col:
        st.markdown(f"**{ctx.t('tree_targets')}**")
        if kpi is None:
            st.caption(
                ctx.t(
                    "tree_scorecard_levels",
                    target=DEFAULT_LADDER.target,
                    baseline=DEFAULT_LADDER.baseline,
                )
            )
        else:
            st.dataframe(_levels_table(ctx, node), hide_index=True, width="stretch")

    st.markdown(f"**{ctx.t('tree_contributions')}**")
    rows = contributions(node, cat, lang)
    if not rows:
        st.caption(ctx.t("tree_no_children"))
    else:
        st.dataframe(
            [
                {
                    ctx.t("tree_child"): r.name,
                    ctx.t("weight"): f"{r.weight:g}%",
                    ctx.t("score"): "—" if r.score is None else f"{r.score:.1f}",
                    ctx.t("status"): i18n.status_label(r.status, lang),
                    ctx.t("tree_contribution"): ctx.t("tree_no_data_child")
                    if r.contribution is None
                    else f"{r.contribution:.1f}",
                    ctx.t("tree_share"): "—" if r.share is None else f"{r.share * 100:.1f}%",
                }
                for r in rows
            ],
            hide_index=True,
            width="stretch",
            height="content",
        )
        st.altair_chart(contribution_chart(rows, lang), width="stretch")

    if kpi is not None:
        notes = review.comments(
            ctx.wh, cat, ctx.actor, kpi_id=kpi.id, unit_id=node.unit_id,
            start=period.start, end=period.end,
        )  # fmt: skip
        with st.expander(panel_title(ctx, notes), icon=":material/forum:"):
            comments_panel(ctx, kpi.id, node.unit_id, period, key="tree_rv", notes=notes)

    unit = cat.units[node.unit_id]
    if kpi is not None:
        # The drawing cannot be clicked: the chosen node's detail is one link away.
        detail_link(ctx, node.unit_id, kpi.id, period, ctx.t("tr_open_detail"))
    if st.button(
        ctx.t("tree_open_board", unit=unit.name(lang)),
        icon=":material/space_dashboard:",
        key="tree_open_board",
    ):
        # The Board keeps the unit picked in this session over the URL's: forget it, so the
        # Board opens at this node's unit (or the nearest unit above it with a scorecard).
        st.session_state.pop("unit", None)
        st.switch_page(
            "pages/1_Board.py",
            query_params={"unit": unit.code, "period": period.label(), "lang": lang},
        )


def _levels_table(ctx: PageContext, node: NodeResult) -> pd.DataFrame:
    lang = ctx.lang
    kpi = ctx.cat.kpis[node.kpi_id]
    lv = node.levels
    fields = (
        ("low", "high", "tolerance")
        if kpi.direction == "range"
        else ("baseline", "target", "challenge")
    )
    rows = [
        (
            ctx.t(f"tree_{f}" if kpi.direction == "range" else f),
            i18n.format_value(None if lv is None else getattr(lv, f), kpi, lang),
        )
        for f in fields
    ]
    rows.append((ctx.t("actual"), i18n.format_value(node.actual, kpi, lang)))
    if node.achievement is not None:
        rows.append((ctx.t("achievement"), f"{node.achievement * 100:.1f}%"))
    rows.append((ctx.t("score"), "—" if node.score is None else f"{node.score:.1f}"))
    return pd.DataFrame(rows, columns=[ctx.t("tree_level"), ctx.t("value")])
