"""Upload: the analyst's monthly actuals — check, preview and load them; history and roll-back;
the entry template; mapping profiles for files in their own layout; publishing months (analysts
and admins) and closing them (admins)."""

import streamlit as st

from kpi_core.access import can
from kpi_core.texts import N_
from kpi_core.ui import page
from kpi_core.ui.boundary import guard
from kpi_core.ui.intake_panels import history_section
from kpi_core.ui.mapping_editor import profiles_section
from kpi_core.ui.upload import load_section, months_section, template_section

ctx = page("nav_upload")
with guard(ctx):
    st.title(ctx.t("up_title"))
    if not can(ctx.actor, "load_actuals"):
        st.info(ctx.t("up_viewer"))
        st.stop()
    # The months tab publishes months (analysts and admins) and closes them (admins).
    sections = [
        N_("up_tab_load"),
        N_("up_tab_history"),
        N_("up_tab_template"),
        N_("up_tab_profiles"),
        N_("up_tab_months"),
    ]
    tabs = dict(zip(sections, st.tabs([ctx.t(s) for s in sections]), strict=True))
    with tabs["up_tab_load"]:
        uploads = load_section(ctx)
    with tabs["up_tab_history"]:
        history_section(ctx)
    with tabs["up_tab_template"]:
        template_section(ctx)
    with tabs["up_tab_profiles"]:
        profiles_section(ctx, uploads)
    with tabs["up_tab_months"]:
        months_section(ctx)
