"""KPI library: create and edit KPI definitions with the formula checked as it is typed and
SMART warnings, place a KPI on a unit's scorecard, and export or import the whole KPI system.
For admins."""

import streamlit as st

from kpi_core.access import can
from kpi_core.texts import N_
from kpi_core.ui import page
from kpi_core.ui.boundary import guard
from kpi_core.ui.change_log import audit_section
from kpi_core.ui.definition_form import edit_section
from kpi_core.ui.library import kpi_picker, list_section, place_section, transfer_section

ctx = page("nav_library")
with guard(ctx):
    st.title(ctx.t("lib_title"))
    if not can(ctx.actor, "edit_library"):
        st.info(ctx.t("lib_not_allowed"))
        st.stop()
    st.caption(ctx.t("lib_intro"))
    chosen = kpi_picker(ctx)
    sections = [
        N_("lib_tab_list"),
        N_("lib_tab_edit"),
        N_("lib_tab_place"),
        N_("lib_tab_transfer"),
        N_("tw_tab_audit"),
    ]
    tabs = dict(zip(sections, st.tabs([ctx.t(s) for s in sections]), strict=True))
    with tabs["lib_tab_list"]:
        list_section(ctx)
    with tabs["lib_tab_edit"]:
        edit_section(ctx, chosen)
    with tabs["lib_tab_place"]:
        place_section(ctx, chosen)
    with tabs["lib_tab_transfer"]:
        transfer_section(ctx)
    with tabs["tw_tab_audit"]:
        audit_section(ctx, ("kpi", "tree", "phasing", "org_unit"))
