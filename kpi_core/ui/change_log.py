"""The history of a KPI's targets with revert, and the change log (audit) as the Targets, Library
and Admin pages show it.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import streamlit as st

from kpi_core import audit, i18n, planning, target_history, workbook
from kpi_core.errors import ValidationError
from kpi_core.texts import N_
from kpi_core.ui import PageContext
from kpi_core.ui.edit_grid import LEVEL_KEYS, column_label, save_form, saved_notice, since_text
from kpi_core.ui.widgets import error_text

# --- History and revert ------------------------------------------------------------------------


def history_section(ctx: PageContext, unit_id: int, year: int, grain: str) -> None:
    grid = planning.target_grid(ctx.wh, ctx.cat, ctx.actor, unit_id, year, grain, ctx.lang)
    pairs = list(dict.fromkeys(zip(grid["kpi_id"], grid["unit_id"], strict=True)))
    if not pairs:
        st.info(ctx.t("tw_no_kpis"))
        return
    kpi_id, uid = st.selectbox(
        ctx.t("tw_history_of"),
        pairs,
        format_func=lambda p: (
            f"{ctx.cat.units[p[1]].name(ctx.lang)} · {ctx.cat.kpis[p[0]].name(ctx.lang)}"
        ),
        key="tw_history_pair",
    )
    hist = target_history.target_history(ctx.wh, ctx.cat, ctx.actor, kpi_id, uid, ctx.lang)
    st.markdown(f"**{ctx.t('tw_target_versions')}**")
    if hist.empty:
        st.caption(ctx.t("tw_no_versions"))
    else:
        shown = hist.sort_values(["period_start", "grain", "version"], ascending=False)
        shown = shown.assign(valid_from=[since_text(ctx, d) for d in shown["valid_from"]])
        st.dataframe(
            shown[
                ["period", "version", "valid_from", "changed_by", "changed_at", "reason", "change"]
            ].rename(columns=_history_labels(ctx)),
            hide_index=True,
            width="stretch",
        )
    weights = planning.weight_history(ctx.wh, ctx.cat, ctx.actor, uid, kpi_id)
    st.markdown(f"**{ctx.t('tw_weight_versions')}**")
    if weights.empty:
        st.caption(ctx.t("tw_no_versions"))
    else:
        weights = weights.assign(
            parent=[_node_label(ctx, p) for p in weights["parent"]],
            valid_from=[since_text(ctx, d) for d in weights["valid_from"]],
        )
        st.dataframe(
            weights.rename(columns={**_history_labels(ctx), "parent": ctx.t("tw_parent")}),
            hide_index=True,
            width="stretch",
        )
    if hist.empty or not planning.can_edit(ctx.actor, uid):
        return
    _revert_form(ctx, hist, kpi_id, uid)


def _node_label(ctx: PageContext, text: str) -> str:
    """A node written UNIT or UNIT/KPI, by name."""
    unit, _, kpi = text.partition("/")
    name = ctx.cat.unit(unit).name(ctx.lang)
    return f"{name} · {ctx.cat.kpi(kpi).name(ctx.lang)}" if kpi else name


def _history_labels(ctx: PageContext) -> dict[str, str]:
    return {
        "period": ctx.t("period"), "version": ctx.t("tw_version"),
        "valid_from": ctx.t("tw_valid_from"), "changed_by": ctx.t("tw_changed_by"),
        "changed_at": ctx.t("tw_changed_at"), "reason": ctx.t("tw_reason"),
        "change": ctx.t("tw_change"),
    }  # fmt: skip


def _revert_form(ctx: PageContext, hist: pd.DataFrame, kpi_id: int, unit_id: int) -> None:
    latest = hist.groupby(["grain", "period_start"])["version"].transform("max")
    older = hist[hist["version"] < latest]
    if older.empty:
        return
    st.markdown(f"**{ctx.t('tw_revert')}**")
    saved_notice(ctx, "revert")
    options = list(older.index)
    pick = st.selectbox(
        ctx.t("tw_revert_to"),
        options,
        format_func=lambda i: (
            f"{older.at[i, 'period']} · v{older.at[i, 'version']} · {older.at[i, 'change']}"
        ),
        # A new version makes a new list: the pick starts over rather than naming a row of
        # the old one.
        key=f"tw_revert_pick_{kpi_id}_{unit_id}_{len(hist)}",
    )
    effective, reason, clicked = save_form(ctx, "revert", True, N_("tw_revert_button"))
    if clicked:
        row = older.loc[pick]
        edit = target_history.revert_edit(
            ctx.wh, ctx.cat, kpi_id, unit_id, row["grain"], row["period_start"], int(row["version"])
        )
        try:
            planning.save_targets(
                ctx.wh, ctx.cat, ctx.actor, [edit], reason=reason, effective=effective
            )
        except ValidationError as exc:
            for p in exc.problems:
                st.error(error_text(ctx, p.message))
        except planning.ConflictError as exc:
            st.error(ctx.t("tw_conflict", text=error_text(ctx, exc)))
        else:
            st.session_state.pop("tw_targets", None)  # the grid reads the new version
            st.session_state["tw_revert_done"] = ctx.t("tw_reverted", version=row["version"])
            st.rerun()


# --- Change log --------------------------------------------------------------------------------


def audit_section(ctx: PageContext, entities: tuple[str, ...] | None = None) -> None:
    """The audit log with filters by entity, user, date and key, and an Excel download."""
    all_entities, users = audit.facets(ctx.wh)
    # The options stay put as the log grows (a widget keeps its selection across reruns); an
    # empty selection means all of them.
    offered = list(entities) if entities else all_entities
    c1, c2, c3, c4 = st.columns([3, 2, 3, 2])  # the date range needs room for both dates
    chosen = c1.multiselect(
        ctx.t("tw_entity"), offered, placeholder=ctx.t("tw_all"),
        format_func=lambda e: _entity(ctx, e),
        key="tw_audit_entities",
    )  # fmt: skip
    who = c2.multiselect(ctx.t("tw_user"), users, placeholder=ctx.t("tw_all"), key="tw_audit_users")
    # The log's rows are stamped by the system clock, so its default window ends on the
    # system's day, not on a business day fixed by KPI_TODAY.
    today = date.today()
    span = c3.date_input(
        ctx.t("tw_dates"), value=(date(today.year, 1, 1), today), key="tw_audit_dates"
    )
    prefix = c4.text_input(ctx.t("tw_key"), key="tw_audit_key", placeholder="SALES/REV")
    start, end = (span[0], span[-1]) if isinstance(span, tuple) and span else (None, None)
    log = audit.entries(
        ctx.wh, ctx.cat, ctx.actor, entities=chosen or offered, users=who,
        start=start, end=end, key_prefix=prefix.strip() or None,
    )  # fmt: skip
    st.caption(ctx.t("tw_audit_count", n=len(log)))
    labels = {
        "changed_at": ctx.t("tw_changed_at"), "changed_by": ctx.t("tw_changed_by"),
        "entity": ctx.t("tw_entity"), "key": ctx.t("tw_key_column"), "field": ctx.t("tw_field"),
        "old": ctx.t("tw_old"), "new": ctx.t("tw_new"), "reason": ctx.t("tw_reason"),
    }  # fmt: skip
    shown = log.assign(
        entity=[_entity(ctx, e) for e in log["entity"]],
        field=[_field(ctx, f) for f in log["field"]],
        old=[_word(ctx, v) for v in log["old"]],
        new=[_word(ctx, v) for v in log["new"]],
    ).fillna("")
    # Keys and reasons are the long texts; times, users, fields and values are short.
    widths = {"changed_at": 150, "changed_by": 90, "entity": 165, "key": 210, "field": 80,
              "old": 80, "new": 80, "reason": "large"}  # fmt: skip
    st.dataframe(
        shown.rename(columns=labels),
        hide_index=True,
        width="stretch",
        height=420,
        column_config={labels[c]: st.column_config.Column(width=w) for c, w in widths.items()},
    )
    st.download_button(
        ctx.t("tw_audit_download"),
        data=lambda: workbook.sheet_bytes("audit", log),  # made on the click, not every run
        file_name=f"audit_{today:%Y%m%d}.xlsx",
        mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        key="tw_audit_download",
        disabled=log.empty,
    )


# Keys built below as "lib_field_…" / "tw_field_…", written out so that extraction finds them.
_LIB_FIELD_KEYS = (
    N_("lib_field_code"),
    N_("lib_field_decimals"),
    N_("lib_field_denominator"),
    N_("lib_field_max"),
    N_("lib_field_min"),
    N_("lib_field_name_en"),
    N_("lib_field_name_zh"),
    N_("lib_field_numerator"),
    N_("lib_field_owner"),
    N_("lib_field_source"),
    N_("lib_field_unit"),
    N_("tw_field_action"),
    N_("tw_field_backup"),
    N_("tw_field_children"),
    N_("tw_field_created"),
    N_("tw_field_definition"),
    N_("tw_field_deleted"),
    N_("tw_field_display_name"),
    N_("tw_field_email"),
    N_("tw_field_enabled"),
    N_("tw_field_failed"),
    N_("tw_field_locked"),
    N_("tw_field_mapping"),
    N_("tw_field_parent"),
    N_("tw_field_password"),
    N_("tw_field_restore"),
    N_("tw_field_revoked"),
    N_("tw_field_revoked_token_used"),
    N_("tw_field_role"),
    N_("tw_field_rotated"),
    N_("tw_field_scope"),
    N_("tw_field_settings"),
    N_("tw_field_shares"),
    N_("tw_field_signed_in"),
    N_("tw_field_signed_out"),
    N_("tw_field_state"),
    N_("tw_field_status"),
    N_("tw_field_text"),
    N_("tw_field_throttled"),
    N_("tw_field_timed_out"),
    N_("tw_field_unlocked"),
    N_("tw_field_value"),
    N_("tw_field_weight"),
    N_("tw_field_wrong_token"),
)


def _field(ctx: PageContext, field: object) -> object:
    """An audit row's field in the page's words; a word without a label, with spaces."""
    if not isinstance(field, str):
        return field
    if field in LEVEL_KEYS:
        return column_label(ctx, field)
    for key in (f"tw_field_{field}", f"lib_field_{field}"):
        if i18n.known(key):
            return ctx.t(key)
    return field.replace("_", " ")


# Keys built below as "tw_word_…", written out so that extraction finds them.
_TW_WORD_KEYS = (
    N_("tw_word_acknowledged"),
    N_("tw_word_changed"),
    N_("tw_word_client"),
    N_("tw_word_closed"),
    N_("tw_word_committed"),
    N_("tw_word_created"),
    N_("tw_word_everyone"),
    N_("tw_word_malformed"),
    N_("tw_word_open"),
    N_("tw_word_password"),
    N_("tw_word_rolled_back"),
    N_("tw_word_set"),
    N_("tw_word_sso"),
    N_("tw_word_unknown"),
)


def _word(ctx: PageContext, value: object) -> object:
    """An old/new value that is one of the core's words (a sign-in's method, a batch's status)
    in the page's words; anything else as it is."""
    key = f"tw_word_{value}"
    return ctx.t(key) if isinstance(value, str) and i18n.known(key) else value


# Keys built below as "tw_entity_…", written out so that extraction finds them.
_TW_ENTITY_KEYS = (
    N_("tw_entity_actual"),
    N_("tw_entity_alert"),
    N_("tw_entity_alert_rule"),
    N_("tw_entity_backup"),
    N_("tw_entity_batch"),
    N_("tw_entity_comment"),
    N_("tw_entity_import_profile"),
    N_("tw_entity_kiosk"),
    N_("tw_entity_kpi"),
    N_("tw_entity_month_publish"),
    N_("tw_entity_org_unit"),
    N_("tw_entity_period_lock"),
    N_("tw_entity_phasing"),
    N_("tw_entity_push_channel"),
    N_("tw_entity_session"),
    N_("tw_entity_source"),
    N_("tw_entity_target"),
    N_("tw_entity_tree"),
    N_("tw_entity_user"),
)


def _entity(ctx: PageContext, entity: str) -> str:
    key = f"tw_entity_{entity}"
    return ctx.t(key) if i18n.known(key) else entity
