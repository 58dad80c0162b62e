"""The KPI detail page, reached by a deep link `?unit=SALES&kpi=REV&period=2026-10`: why the KPI
is what it is, its trend with levels, its contributors by child (each one click away), its alerts,
comments and actions, and its source batches. Also the links other pages use to open it.

The URL is the page's only state, so the browser's back button returns to the page the user came
from, and a link sent in a push opens the same view.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import streamlit as st

from kpi_core import attention, charts, i18n, review, scoring
from kpi_core.actuals import data_range
from kpi_core.catalog import SCORECARD
from kpi_core.detail import Detail, detail
from kpi_core.errors import KpiError
from kpi_core.periods import Period
from kpi_core.texts import N_
from kpi_core.tree_view import contribution_chart, trend_chart
from kpi_core.trends import tree_kpis
from kpi_core.ui import PageContext, _asked_period
from kpi_core.ui.review import comments_panel, panel_title
from kpi_core.ui.widgets import badge, error_text, md

PAGE = "pages/11_Detail.py"
# Streamlit cuts a page link's label to one line; a reason cut off on a phone says nothing.
_WRAP = (
    "<style>[class*='st-key-wraplinks'] [data-testid='stPageLink'] * "
    "{white-space: normal !important; overflow: visible !important; "
    "text-overflow: clip !important; height: auto !important;}</style>"
)


def query(ctx: PageContext, unit_id: int, kpi_id: int, period: Period) -> dict[str, str]:
    """The deep link's parameters for a KPI of a unit in a period."""
    return {
        "unit": ctx.cat.units[unit_id].code,
        "kpi": ctx.cat.kpis[kpi_id].code,
        "period": period.label(),
        "lang": ctx.lang,
    }


def link(
    ctx: PageContext,
    unit_id: int,
    kpi_id: int,
    period: Period,
    label: str,
    icon: str | None = ":material/arrow_forward:",
) -> None:
    """A link to the KPI's detail: in-app navigation, so the back button comes back here."""
    st.page_link(PAGE, label=label, icon=icon, query_params=query(ctx, unit_id, kpi_id, period))


def open_detail(ctx: PageContext, unit_id: int, kpi_id: int, period: Period) -> None:
    """Go to the KPI's detail now (from a click on a chart or a table row)."""
    st.switch_page(PAGE, query_params=query(ctx, unit_id, kpi_id, period))


# Lines of the "needs attention" list behind its "N more" button, worst first.
MORE_SHOWN = 50


def attention_list(ctx: PageContext, items: list[attention.Item], period: Period) -> None:
    """The Board's "needs attention" box: one line per red or at-risk KPI, each a link to its
    detail; a green board says so in one line."""
    if not items:
        st.success(ctx.t("na_green"), icon=":material/check_circle:")
        return
    reds = sum(i.kind == attention.RED for i in items)
    shown, rest = items[:6], items[6:]
    st.html(_WRAP)
    with st.container(border=True, key="wraplinks_attention"):
        risks = len(items) - reds
        key = (
            N_("na_summary") if reds and risks else N_("na_summary_red") if reds
            else N_("na_summary_risk")
        )  # fmt: skip
        st.markdown(f"**{ctx.t('na_title')}** · {ctx.t(key, red=reds, risk=risks)}")
        for item in shown:
            _item_link(ctx, item, period)
        if rest:
            # Drawn when opened, and the first MORE_SHOWN only: a large company's board has
            # thousands of lines, which no one reads and every run would send (issue 22).
            more = st.popover(
                ctx.t("na_more", n=len(rest)), width="stretch", key="na_more", on_change="rerun"
            )
            if more.open:
                with more:
                    for item in rest[:MORE_SHOWN]:
                        _item_link(ctx, item, period)
                    if len(rest) > MORE_SHOWN:
                        st.caption(ctx.t("na_not_listed", n=len(rest) - MORE_SHOWN))


def _item_link(ctx: PageContext, item: attention.Item, period: Period) -> None:
    # A shape and a colour, so it reads without colour too; names are users' text (md).
    mark = ":red[**■**]" if item.kind == attention.RED else ":orange[**▲**]"
    text = f"{mark} {md(attention.text(item, ctx.cat, ctx.lang))}"
    link(ctx, item.unit_id, item.kpi_id, period, text, None)


def _options(ctx: PageContext, month: date) -> list[tuple[int, int]]:
    """(KPI, unit) of every KPI node in the user's trees, for picking one without a link."""
    out: dict[tuple[int, int], None] = {}
    for root in ctx.cat.scope_roots(ctx.actor.scope):
        for u in ctx.cat.descendants(root):
            if ctx.cat.tree(month).get((u, SCORECARD)):
                out |= dict.fromkeys(tree_kpis(ctx.cat, ctx.actor.scope, u, month))
    return list(out)


def _node_label(ctx: PageContext, kpi_id: int, unit_id: int) -> str:
    return ctx.t(
        "tr_of_unit",
        kpi=ctx.cat.kpis[kpi_id].name(ctx.lang),
        unit=ctx.cat.units[unit_id].name(ctx.lang),
    )


def detail_page(ctx: PageContext) -> None:
    span = data_range(ctx.wh, ctx.actor.scope, ctx.cat)
    if span is None:
        st.info(ctx.t("no_data_yet"))
        st.stop()
    first, latest = span
    params = st.query_params
    unit_code, kpi_code = params.get("unit"), params.get("kpi")
    if not unit_code or not kpi_code:
        # No link followed: pick a KPI; the pick goes into the URL like a link would.
        options = _options(ctx, latest)
        if not options:
            st.info(ctx.t("no_scorecard"))
            st.stop()
        st.title(ctx.t("dt_title"))
        chosen = st.selectbox(
            ctx.t("kpi"), options, format_func=lambda p: _node_label(ctx, *p), index=None,
            placeholder=ctx.t("dt_pick"),
        )  # fmt: skip
        if chosen is None:
            st.caption(ctx.t("dt_pick_help"))
            return
        kpi_id, unit_id = chosen
        open_detail(ctx, unit_id, kpi_id, Period("M", latest))
    # One answer for a unit that does not exist and one outside the scope: a link must not
    # tell which units exist elsewhere, nor show anything of them.
    unit = ctx.cat.unit_by_code.get(unit_code)
    if unit is None or not ctx.actor.scope.allows(unit.id):
        st.error(ctx.t("dt_refused"), icon=":material/block:")
        st.stop()
    period, _ = _asked_period(ctx, first, latest, latest)
    try:
        d = detail(ctx.wh, ctx.cat, ctx.actor, unit_code, kpi_code, period, latest, ctx.lang)
    except KpiError as exc:
        st.error(error_text(ctx, exc))
        st.page_link(
            PAGE, label=ctx.t("dt_pick"), icon=":material/search:", query_params={"lang": ctx.lang}
        )
        st.stop()
    _render(ctx, d, latest)


def _render(ctx: PageContext, d: Detail, latest: date) -> None:
    lang, cat, node, kpi = ctx.lang, ctx.cat, d.node, d.kpi
    unit = cat.units[d.unit_id]
    st.title(f"{kpi.name(lang)} · {unit.name(lang)} · {i18n.period_label(d.period.label(), lang)}")
    marks = [badge(node.status, lang)]
    if d.forecast is not None:
        marks.append(f":orange-badge[{ctx.t('at_risk')}]")
    if kpi.veto:
        marks.append(f":violet-badge[{ctx.t('veto_mark')}]")
    if d.alerts:
        n = len(d.alerts)
        marks.append(f":red-badge[{ctx.t('al_badge_one' if n == 1 else 'al_badge', n=n)}]")
    st.markdown(" ".join(marks))
    # Why, in words: the same sentence as the Board's list.
    kind = (
        attention.RED
        if node.status == scoring.RED
        else attention.AT_RISK
        if d.forecast is not None
        else None
    )
    if kind is not None:
        item = attention.Item(
            kind, node, d.forecast, attention.cause(node, scoring.DEFAULT_LADDER), 0
        )
        (st.error if kind == attention.RED else st.warning)(attention.text(item, cat, lang))

    cols = st.columns(4)
    cols[0].metric(ctx.t("actual"), i18n.format_value(node.actual, kpi, lang))
    cols[1].metric(ctx.t("target"), i18n.format_target(node.levels, kpi, lang))
    cols[2].metric(ctx.t("score"), "—" if node.score is None else f"{node.score:.1f}")
    if node.achievement is not None:
        cols[3].metric(ctx.t("achievement"), f"{node.achievement * 100:.1f}%")

    nav = st.columns(2)
    with nav[0]:
        if d.parent is not None:
            link(
                ctx, d.parent.unit_id, d.parent.kpi_id, d.period,
                ctx.t("dt_up", node=_node_label(ctx, d.parent.kpi_id, d.parent.unit_id)),
                ":material/arrow_upward:",
            )  # fmt: skip
    with nav[1]:
        st.page_link(
            "pages/1_Board.py",
            label=ctx.t("tree_open_board", unit=unit.name(lang)),
            icon=":material/space_dashboard:",
            query_params={"unit": unit.code, "period": d.period.label(), "lang": lang},
        )

    _contributors(ctx, d)

    st.subheader(ctx.t("dt_trend"))
    values = d.trend["actual"]
    if values.notna().any():
        st.altair_chart(trend_chart(d.trend, kpi, lang), width="stretch")
    else:
        st.info(ctx.t("tree_no_trend"))

    st.subheader(ctx.t("dt_alerts", n=len(d.alerts)))
    if not d.alerts:
        st.caption(ctx.t("dt_no_alerts"))
    for a in d.alerts:
        st.markdown(
            f":red-badge[{ctx.t('al_kind_' + a.kind)}] "
            f":gray-badge[{ctx.t('al_sev_' + a.severity)}] "
            f":gray-badge[{ctx.t('al_state_' + a.state)}] · {a.raised_at:%Y-%m-%d %H:%M}"
        )
        st.text(a.message(lang))
    st.page_link(
        "pages/8_Alerts.py",
        label=ctx.t("dt_to_alerts"),
        icon=":material/notifications:",
        query_params={"lang": lang},
    )

    notes = review.comments(
        ctx.wh, cat, ctx.actor, kpi_id=kpi.id, unit_id=d.unit_id,
        start=d.months[0], end=d.months[-1],
    )  # fmt: skip
    st.subheader(panel_title(ctx, notes))
    comments_panel(ctx, kpi.id, d.unit_id, d.period, months=d.months, key="detail_rv", notes=notes)

    _children_notes(ctx, d)

    st.subheader(ctx.t("dt_batches"))
    if d.batches.empty:
        st.caption(ctx.t("dt_no_batches"))
    else:
        st.dataframe(_batches_table(ctx, d.batches), hide_index=True, width="stretch")


def _children_notes(ctx: PageContext, d: Detail) -> None:
    """Comments and actions on the nodes right below, each one click away (a department's
    revenue is discussed where it went wrong: on the region's)."""
    keys = [(k, u) for u, k in (r.key for r in d.contributions) if k != SCORECARD]
    counts = review.counts(ctx.wh, ctx.cat, ctx.actor, keys, d.months[0], d.months[-1])
    if not counts:
        return
    st.caption(ctx.t("dt_children_notes"))
    for (k, u), (n, o) in counts.items():
        text = f"{_node_label(ctx, k, u)} · {ctx.t('rv_n', n=n)}"
        if o:
            text += f" · {ctx.t('rv_badge_open', n=o)}"
        link(ctx, u, k, d.period, md(text), ":material/forum:")


def _contributors(ctx: PageContext, d: Detail) -> None:
    """Each child's weight × score, and a link to its own detail."""
    rows = d.contributions
    st.subheader(ctx.t("dt_contributors"))
    st.html(_WRAP)
    if not rows:
        st.caption(ctx.t("dt_no_children"))
        return
    box = st.container(key="wraplinks_contributors")
    for r in rows:
        unit_id, kpi_id = r.key
        score = "—" if r.score is None else f"{r.score:.1f}"
        part = ctx.t("tree_no_data_child") if r.contribution is None else f"{r.contribution:.1f}"
        label = f"{i18n.STATUS_ICON[r.status]} {r.name} · {r.weight:g}% × {score} = {part}"
        with box:
            if kpi_id == SCORECARD:
                st.markdown(md(label))
            else:
                link(ctx, unit_id, kpi_id, d.period, md(label), ":material/arrow_forward:")
    st.altair_chart(contribution_chart(rows, ctx.lang), width="stretch")


def _batches_table(ctx: PageContext, df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            ctx.t("dt_batch"): [f"#{i}" for i in df["id"]],
            ctx.t("dt_source"): [
                str(s).replace("\n", ", ") if pd.notna(s) else "—" for s in df["source"]
            ],
            ctx.t("dt_loaded_by"): df["created_by"].fillna("—"),
            ctx.t("dt_loaded_at"): pd.to_datetime(df["created_at"]).dt.strftime("%Y-%m-%d %H:%M"),
            ctx.t("dt_values"): df["values"],
            ctx.t("up_col_kind"): [_word(ctx, "up_kind_", k) for k in df["kind"]],
            ctx.t("status"): [_word(ctx, "up_status_", v) for v in df["status"]],
        }
    )


def _word(ctx: PageContext, prefix: str, value: str) -> str:
    return ctx.t(prefix + value) if i18n.known(prefix + value) else str(value)


def card_footer(ctx: PageContext, kpi_id: int, unit_id: int, period: Period, alerts: int):
    """A Board card's way into the KPI's detail: its alert count, or 'Details'."""
    if alerts:
        label = ctx.t("dt_card_alert" if alerts == 1 else "dt_card_alerts", n=alerts)
        icon = ":material/notifications_active:"
    else:
        label, icon = ctx.t("dt_open"), ":material/arrow_forward:"
    return lambda: link(ctx, unit_id, kpi_id, period, label, icon)


def clickable_matrix(ctx: PageContext, nodes: list, period: Period, key: str) -> None:
    """The status matrix; a click on a cell opens that KPI's detail for the unit."""
    event = st.altair_chart(
        charts.status_matrix(nodes, ctx.cat, ctx.lang, select="cell"),
        width="stretch",
        on_select="rerun",
        selection_mode="cell",
        key=key,
    )
    picked = (event.selection.get("cell") or [{}])[0].get("node") if event else None
    if picked:
        unit_code, _, kpi_code = picked.partition("/")
        unit, kpi = ctx.cat.unit_by_code.get(unit_code), ctx.cat.kpi_by_code.get(kpi_code)
        if unit is not None and kpi is not None:
            open_detail(ctx, unit.id, kpi.id, period)
