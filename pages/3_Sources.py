"""Sources: database connections (SQLAlchemy URLs) and CSV/Parquet exports — a saved query
mapped to KPIs, pulled with progress into the same check, preview, load and roll-back as an
upload. For analysts and admins."""

import streamlit as st

from kpi_core.access import can
from kpi_core.texts import N_
from kpi_core.ui import page
from kpi_core.ui.boundary import guard
from kpi_core.ui.sources import (
    define_section,
    list_section,
    pull_section,
    pulls_history,
    source_picker,
)

ctx = page("nav_sources")
with guard(ctx):
    st.title(ctx.t("src_title"))
    if not can(ctx.actor, "define_sources"):
        st.info(ctx.t("src_not_allowed"))
        st.stop()
    st.caption(ctx.t("src_intro"))
    chosen = source_picker(ctx)
    sections = [N_("src_tab_list"), N_("src_tab_define"), N_("src_tab_pull"), N_("src_tab_history")]
    tabs = dict(zip(sections, st.tabs([ctx.t(s) for s in sections]), strict=True))
    with tabs["src_tab_list"]:
        list_section(ctx)
    with tabs["src_tab_define"]:
        define_section(ctx, chosen)
    with tabs["src_tab_pull"]:
        pull_section(ctx, chosen)
    with tabs["src_tab_history"]:
        pulls_history(ctx)
