"""Alerts: red and amber lights, at-risk forecasts, anomalies, stale data and overdue actions,
with owners; acknowledge, comment, create an action (复盘) and close with a resolution; push
channels and rule settings. For department heads, analysts and admins; viewers read."""

import streamlit as st

from kpi_core.texts import N_
from kpi_core.ui import page
from kpi_core.ui.alerts import actions_section, alerts_section, filters, rules_section, run_button
from kpi_core.ui.boundary import guard
from kpi_core.ui.push import channels_section

ctx = page("nav_alerts")
with guard(ctx):
    st.title(ctx.t("nav_alerts"))
    st.caption(ctx.t("al_intro"))
    chosen = filters(ctx)
    run_button(ctx)
    sections = [N_("al_tab_alerts"), N_("al_tab_actions"), N_("al_tab_push"), N_("al_tab_rules")]
    tabs = dict(zip(sections, st.tabs([ctx.t(s) for s in sections]), strict=True))
    with tabs["al_tab_alerts"]:
        alerts_section(ctx, chosen)
    with tabs["al_tab_actions"]:
        actions_section(ctx)
    with tabs["al_tab_push"]:
        channels_section(ctx)
    with tabs["al_tab_rules"]:
        rules_section(ctx)
