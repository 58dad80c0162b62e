"""The Overview page (app.py): company score, departments ranked, red/amber/at-risk counts, top
alerts, freshness."""

import streamlit as st

from kpi_core import alerts, charts, clock, completeness, i18n, people
from kpi_core.actuals import data_range
from kpi_core.attention import overview_list
from kpi_core.board import overview
from kpi_core.periods import Period
from kpi_core.ui import page, period_picker
from kpi_core.ui.boundary import guard
from kpi_core.ui.detail import attention_list, open_detail
from kpi_core.ui.widgets import badge, md, month_notes, partial_period_note


def main() -> None:
    ctx = page("nav_overview")
    with guard(ctx):
        span = data_range(ctx.wh, ctx.actor.scope, ctx.cat)
        if span is None:
            st.info(ctx.t("no_data_yet"))
            st.stop()
        first, latest = span
        view = completeness.in_view(
            ctx.wh, ctx.cat, ctx.cat.scope_roots(ctx.actor.scope), latest, first
        )
        period = period_picker(ctx, first, latest, view)
        grace = alerts.load_rules(ctx.wh).stale.grace_days
        today = clock.today()
        ov = overview(ctx.wh, ctx.cat, ctx.actor.scope, period, today=today, grace_days=grace)
        lang = ctx.lang

        st.title(f"{ctx.t('nav_overview')} · {i18n.period_label(period.label(), lang)}")
        st.caption(ctx.t("data_as_of", month=i18n.period_label(Period("M", latest).label(), lang)))
        partial_period_note(ctx, period, latest)
        month_notes(ctx, period, view, ov.partial)
        # The landing page answers "what is red, and why" before anything else, as the Board.
        items = overview_list(
            ctx.wh, ctx.cat, ctx.actor.scope, period, latest, today=today, grace_days=grace
        )
        attention_list(ctx, items, period)

        for root in ov.roots:
            unit = ctx.cat.units[root.unit_id]
            cols = st.columns([2, 1, 1, 1, 1])
            with cols[0]:
                st.markdown(f"#### {md(unit.name(lang))}")
                st.metric(
                    ctx.t("company_score"),
                    "—" if root.score is None else f"{root.score:.1f}",
                    label_visibility="visible",
                )
                st.markdown(badge(root.status, lang))
                if root.vetoed_by:
                    names = "、".join(ctx.cat.kpi(c).name(lang) for c in root.vetoed_by)
                    st.error(ctx.t("vetoed", kpis=names))
                own = sum(w for w, _ in root.kpi_children())
                below = sum(w for w, _ in root.unit_children())
                if own and below:
                    st.caption(ctx.t("score_mix", own=own, units=below))
            for col, key in zip(cols[1:], ("red", "amber", "green"), strict=False):
                col.metric(i18n.status_label(key, lang), ov.counts[key])
            # In a year the lights already are the year-to-date pace: nothing can fall behind them.
            yearly = period.grain == "Y"
            cols[4].metric(
                f"⚠ {ctx.t('at_risk')}",
                "—" if yearly else ov.at_risk,
                help=ctx.t("at_risk_year_help") if yearly else ctx.t("at_risk_help"),
            )
            st.caption(f"{ctx.t('coverage')}: {(root.coverage or 0) * 100:.0f}%")

        left, right = st.columns([4, 5])  # the freshness states need the room
        with left:
            # A scope below the company (a department's viewer) ranks the units below its root.
            first = ctx.cat.units[ov.roots[0].unit_id] if ov.roots else None
            top = first is None or first.parent_id is None
            st.subheader(ctx.t("departments_ranked" if top else "units_below_ranked"))
            if ov.departments:
                st.altair_chart(charts.score_bars(ov.departments, ctx.cat, lang), width="stretch")
            elif first is not None:
                st.caption(ctx.t("ranked_none", unit=first.name(lang)))
        with right:
            st.subheader(ctx.t("freshness"), help=ctx.t("fr_help", days=grace))
            rows = []
            for f in ov.freshness:
                name = ctx.cat.units[f.unit_id].name(lang)
                latest_text = (
                    "—"
                    if f.latest is None
                    else i18n.period_label(Period("M", f.latest).label(), lang)
                )
                rows.append(
                    {
                        ctx.t("unit"): ctx.t("fr_own", unit=name) if f.own else name,
                        ctx.t("latest_month"): latest_text,
                        ctx.t("status"): i18n.freshness_text(f, grace, lang),
                    }
                )
            st.dataframe(
                rows,
                hide_index=True,
                width="stretch",
                height="content",
                # The company's own row has the longest name: room for it whole.
                column_config={ctx.t("unit"): st.column_config.Column(width="medium")},
            )

        st.subheader(ctx.t("top_alerts"))
        if not ov.alerts:
            st.success(ctx.t("no_alerts"))
        else:
            rows = []
            known = people.load(ctx.wh)
            for node, _ in ov.alerts[:15]:
                kpi = ctx.cat.kpis[node.kpi_id]
                risky = (node.kpi_id, node.unit_id) in ov.at_risk_pairs and node.status != "red"
                rows.append(
                    {
                        ctx.t("status"): ctx.t("at_risk")
                        if risky
                        else i18n.status_label(node.status, lang),
                        ctx.t("unit"): ctx.cat.units[node.unit_id].name(lang),
                        ctx.t("kpi"): kpi.name(lang),
                        ctx.t("actual"): i18n.format_value(node.actual, kpi, lang),
                        ctx.t("target"): i18n.format_target(node.levels, kpi, lang),
                        ctx.t("score"): "—" if node.score is None else f"{node.score:.1f}",
                        ctx.t("owner"): known.name(kpi.owner) or "—",
                    }
                )
            shown = ov.alerts[:15]
            event = st.dataframe(
                rows,
                hide_index=True,
                width="stretch",
                height="content",
                # "At risk (forecast to miss)" is the longest status: room for it whole.
                column_config={ctx.t("status"): st.column_config.Column(width="medium")},
                on_select="rerun",
                selection_mode="single-row",
                key="ov_top_alerts",
            )
            st.caption(ctx.t("ov_click_row"))
            picked = event.selection.rows if event else []
            if picked and picked[0] < len(shown):
                node = shown[picked[0]][0]
                open_detail(ctx, node.unit_id, node.kpi_id, period)
