"""Targets & weights: levels and weights edited in place, checked as they are typed, saved with a
reason and an effective date; history, revert and the change log. Department heads and admins
edit their units; everyone else sees the same grids read-only."""

import streamlit as st

from kpi_core import clock
from kpi_core.access import can
from kpi_core.actuals import data_range
from kpi_core.periods import month_of
from kpi_core.texts import N_
from kpi_core.ui import page, unit_picker
from kpi_core.ui.boundary import guard
from kpi_core.ui.change_log import audit_section, history_section
from kpi_core.ui.target_sheet import sheet_section
from kpi_core.ui.targets import keep_edits, targets_section, weights_section, year_options
from kpi_core.ui.widgets import open_tab_only

ctx = page("nav_targets")
with guard(ctx):
    st.title(ctx.t("nav_targets"))
    span = data_range(ctx.wh, ctx.actor.scope, ctx.cat)
    unit_id = unit_picker(ctx, span[1] if span else month_of(clock.today()))
    years = year_options(ctx)
    this_year = (span[1] if span else clock.today()).year
    year = st.sidebar.selectbox(
        ctx.t("tw_year"), years, index=years.index(this_year), key="tw_year"
    )
    grain = (
        st.sidebar.segmented_control(
            ctx.t("tw_grain"), ["Y", "Q", "M"], format_func=lambda g: ctx.t(f"grain_{g}"),
            default="Y", key="tw_grain",
        )
        or "Y"
    )  # fmt: skip
    st.caption(ctx.t("tw_intro" if can(ctx.actor, "edit_targets") else "tw_intro_readonly"))
    sections = [N_("tw_tab_targets"), N_("tw_tab_weights"), N_("tw_tab_history"), "tw_tab_audit"]
    if can(ctx.actor, "edit_targets"):
        sections.insert(2, N_("tw_tab_sheet"))
    # Only the open tab runs (issue 22): the others' grids, history and log are drawn when
    # their tab is opened, so a click in one grid does not redraw the other three.
    tabs = open_tab_only(ctx, sections, "tw_tab")
    if tabs["tw_tab_targets"].open:
        with tabs["tw_tab_targets"]:
            targets_section(ctx, unit_id, year, grain, span[1] if span else None)
    else:
        keep_edits("targets")
    if tabs["tw_tab_weights"].open:
        with tabs["tw_tab_weights"]:
            weights_section(ctx, unit_id, year)
    else:
        keep_edits("weights")
    if tabs["tw_tab_history"].open:
        with tabs["tw_tab_history"]:
            history_section(ctx, unit_id, year, grain)
    if "tw_tab_sheet" in tabs and tabs["tw_tab_sheet"].open:
        with tabs["tw_tab_sheet"]:
            sheet_section(ctx)
    if tabs["tw_tab_audit"].open:
        with tabs["tw_tab_audit"]:
            audit_section(ctx, ("target", "tree", "kpi", "phasing"))
