"""Targets & weights page, "From a sheet": targets loaded from an analyst's own sheet with a
target mapping file (`ingest/target_mapping.py`), previewed as the new versions they would be,
and saved through the same writer as an edit in the grid (`planning.save_targets`)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from kpi_core import clock, planning
from kpi_core.access import can
from kpi_core.errors import KpiError, ValidationError
from kpi_core.ingest import definition_file, files, target_mapping
from kpi_core.messages import Message
from kpi_core.periods import month_of
from kpi_core.ui import PageContext
from kpi_core.ui.widgets import error_text, md

EXTENSIONS = ["xlsx", "xlsm", "xls", "csv"]


def _refused(ctx: PageContext, head: str, lines: list[Message | str]) -> None:
    st.error("\n".join([head, *(f"- {md(error_text(ctx, line))}" for line in lines[:50])]))


def sheet_section(ctx: PageContext) -> None:
    if not can(ctx.actor, "edit_targets"):
        st.info(ctx.t("tg_readonly"))
        return
    st.caption(ctx.t("tg_intro"))
    done = st.session_state.pop("tg_done", None)
    if done:
        st.success(done)
    left, right = st.columns(2)
    sheet = left.file_uploader(ctx.t("tg_sheet"), type=EXTENSIONS, key="tg_sheet")
    mapping_file = right.file_uploader(
        ctx.t("tg_mapping"), type=["toml"], key="tg_mapping", help=ctx.t("tg_mapping_help")
    )
    if sheet is None or mapping_file is None:
        return
    try:
        mapping = definition_file.read_target_mapping(
            mapping_file.getvalue().decode("utf-8"), mapping_file.name
        )
    except UnicodeDecodeError:
        st.error(error_text(ctx, Message("cli_err_not_utf8", file=mapping_file.name)))
        return
    except definition_file.DefinitionError as exc:
        _refused(ctx, ctx.t("def_refused", file=mapping_file.name), exc.lines)
        return
    try:
        tables = files.read_file(sheet.name, sheet.getvalue())
        found = target_mapping.edits(ctx.wh, ctx.cat, mapping, tables)
    except target_mapping.TargetMappingError as exc:
        _refused(ctx, ctx.t("def_refused", file=sheet.name), exc.lines)
        return
    except KpiError as exc:
        st.error(error_text(ctx, exc))
        return
    if not found:
        st.info(ctx.t("tg_nothing"))
        return
    st.markdown(ctx.t("tg_preview", n=len(found)))
    st.dataframe(preview(ctx, found), hide_index=True, width="stretch", placeholder="—")
    c1, c2, c3 = st.columns([1, 3, 1], vertical_alignment="bottom")
    effective = c1.date_input(
        ctx.t("tw_effective"), value=month_of(clock.today()), key="tg_effective",
        help=ctx.t("tw_effective_help"), format="YYYY-MM-DD",
    )  # fmt: skip
    reason = c2.text_input(ctx.t("tw_reason"), key="tg_reason", placeholder=ctx.t("tg_reason_hint"))
    if c3.button(ctx.t("tw_save"), type="primary", key="tg_save"):
        try:
            _, saved = target_mapping.save(
                ctx.wh, ctx.cat, ctx.actor, mapping, tables, reason=reason, effective=effective
            )
        except (ValidationError, planning.ConflictError) as exc:
            lines = [str(p) for p in exc.problems] if isinstance(exc, ValidationError) else [
                str(exc)
            ]  # fmt: skip
            _refused(ctx, ctx.t("tg_not_saved"), lines)
            return
        st.session_state.tg_done = ctx.t("tg_saved", n=saved.rows, file=sheet.name)
        st.session_state.pop("tg_reason", None)
        st.rerun()


def preview(ctx: PageContext, found: list[planning.TargetEdit]) -> pd.DataFrame:
    """One line per new version: where, and each level as it was and will be."""
    out = []
    for e in found:
        kpi = ctx.cat.kpis[e.kpi_id]
        row = {ctx.t("tw_where"): planning.node_name(ctx.cat, e.unit_id, e.kpi_id, ctx.lang)}
        row[ctx.t("tg_period")] = e.where(ctx.cat).rsplit(" ", 1)[1]
        for f in target_mapping.LEVEL_KEYS:
            old = planning.level_text(e.old[f], kpi, ctx.lang) if e.old[f] is not None else "—"
            new = planning.level_text(e.new[f], kpi, ctx.lang) if e.new[f] is not None else "—"
            row[ctx.t(f)] = new if old == new else f"{old} → {new}"
        out.append(row)
    return pd.DataFrame(out, dtype=object)
