"""Board: one unit's KPI cards, bullet charts and status matrix for a period."""

import streamlit as st

from kpi_core import alerts, attention, charts, completeness, i18n
from kpi_core.actuals import data_range
from kpi_core.board import board
from kpi_core.ui import page, period_picker, unit_picker
from kpi_core.ui.boundary import guard
from kpi_core.ui.detail import attention_list, card_footer, clickable_matrix
from kpi_core.ui.review import board_counts, board_panel
from kpi_core.ui.widgets import badge, kpi_card, month_notes, partial_period_note

ctx = page("nav_board")
with guard(ctx):
    span = data_range(ctx.wh, ctx.actor.scope, ctx.cat)
    if span is None:
        st.info(ctx.t("no_data_yet"))
        st.stop()
    first, latest = span
    unit_id = unit_picker(ctx, latest)
    view = completeness.in_view(ctx.wh, ctx.cat, [unit_id], latest, first)
    period = period_picker(ctx, first, latest, view)
    b = board(ctx.wh, ctx.cat, ctx.actor.scope, unit_id, period, as_of=latest)
    lang = ctx.lang
    unit = ctx.cat.units[unit_id]

    st.title(f"{unit.name(lang)} · {i18n.period_label(period.label(), lang)}")
    items = attention.board_list(ctx.wh, ctx.cat, ctx.actor.scope, unit_id, period, latest)
    attention_list(ctx, items, period)
    partial_period_note(ctx, period, latest)
    month_notes(ctx, period, view, b.partial)
    head = st.columns([1, 1, 1, 2])
    res = b.result
    head[0].metric(
        ctx.t("score"),
        "—" if res.score is None else f"{res.score:.1f}",
        delta=None
        if res.score is None or b.previous_score is None
        else f"{res.score - b.previous_score:+.1f}",
        delta_description=ctx.t("vs_prev"),
    )
    head[1].markdown(f"{ctx.t('status')}\n\n{badge(res.status, lang)}")
    head[2].metric(ctx.t("coverage"), f"{(res.coverage or 0) * 100:.0f}%")
    if b.rank:
        head[3].markdown(f"\n\n**{ctx.t('rank_among', rank=b.rank[0], n=b.rank[1])}**")
    if res.vetoed_by:
        names = "、".join(ctx.cat.kpi(c).name(lang) for c in res.vetoed_by)
        st.error(ctx.t("vetoed", kpis=names))

    comments = board_counts(ctx, b, latest)
    open_alerts = alerts.open_counts(
        ctx.wh, ctx.actor, [(line.node.kpi_id, line.node.unit_id) for line in b.lines]
    )
    if b.lines:
        st.subheader(ctx.t("kpi_cards"))
        per_row = 3
        for start in range(0, len(b.lines), per_row):
            cols = st.columns(per_row)
            for col, line in zip(cols, b.lines[start : start + per_row], strict=False):
                with col:
                    pair = (line.node.kpi_id, line.node.unit_id)
                    n = open_alerts.get(pair, 0)
                    link = card_footer(ctx, *pair, period, n)
                    kpi_card(ctx, line, comments.get(pair), n, footer=link)
        board_panel(ctx, b, latest, comments)
        st.subheader(ctx.t("bullets"))
        st.altair_chart(
            charts.bullet_chart([line.node for line in b.lines], ctx.cat, lang), width="stretch"
        )
    units = [n for _, n in res.unit_children()]
    if units:
        st.subheader(ctx.t("child_units"))
        st.altair_chart(charts.score_bars(units, ctx.cat, lang), width="stretch")

    if len({n.unit_id for n in b.matrix}) > 1:
        st.subheader(ctx.t("matrix"))
        clickable_matrix(ctx, b.matrix, period, key="board_matrix")
