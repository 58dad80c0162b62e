"""The KPI library page's sections (DESIGN.md §6): the list with SMART warnings, editing one
definition (with the formula checked as it is typed), placing a KPI on a unit's scorecard, and
the KPI-system workbook out and back in. For admins. The editing form is in
kpi_core/ui/definition_form.py.

The work is in `kpi_core.library_edits`, which sends every edit through the KPI-system import, so
a definition saved here is checked exactly as a workbook row would be; this module draws it.
"""

from __future__ import annotations

import hashlib
import math

import pandas as pd
import streamlit as st

from kpi_core import clock, export, i18n, library_edits, service, workbook
from kpi_core.catalog import SCORECARD, Catalog
from kpi_core.errors import KpiError, Problem, ValidationError, WarehouseBusyError
from kpi_core.ingest import files
from kpi_core.texts import N_
from kpi_core.ui import PageContext
from kpi_core.ui.boundary import guard
from kpi_core.ui.widgets import error_text, md, refusal_text

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


# --- frames and helpers (no streamlit) ---------------------------------------------------------


def kpi_label(cat: Catalog, code: str | None, lang: str) -> str:
    k = cat.kpi_by_code.get(code or "")
    return f"{code} · {k.name(lang)}" if k else str(code or "—")


# Keys built below as "lib_agg_…" / "lib_col_…" / "lib_dir_…", written out so that extraction finds them.
_LIB_AGG_KEYS = (
    N_("lib_agg_avg"),
    N_("lib_agg_formula"),
    N_("lib_agg_last"),
    N_("lib_agg_ratio"),
    N_("lib_agg_sum"),
    N_("lib_col_aggregation"),
    N_("lib_col_code"),
    N_("lib_col_direction"),
    N_("lib_col_name"),
    N_("lib_col_name_other"),
    N_("lib_col_owner"),
    N_("lib_col_unit"),
    N_("lib_dir_down"),
    N_("lib_dir_range"),
    N_("lib_dir_up"),
)


def library_frame(wh, cat: Catalog, lang: str, year: int, text: str = "") -> pd.DataFrame:
    """The library as the page lists it: names in the page's language first, how each KPI is
    computed, and how many SMART warnings it has; filtered by `text` (any column)."""
    other = "en" if lang == "zh" else "zh"
    rows = []
    for k in sorted(cat.kpis.values(), key=lambda k: (k.sort_order, k.code)):
        how = f"{k.numerator} / {k.denominator}" if k.aggregation == "ratio" else k.formula
        rows.append(
            [k.code, k.name(lang), k.name(other), k.unit, t_of("lib_dir_" + k.direction, lang),
             t_of("lib_agg_" + k.aggregation, lang), how or "", k.owner or "",
             len(library_edits.smart_warnings(wh, cat, k.code, year))]
        )  # fmt: skip
    columns = ["code", "name", "name_other", "unit", "direction", "aggregation", "formula",
               "owner", "warnings"]  # fmt: skip
    df = pd.DataFrame(rows, columns=[t_of(f"lib_col_{c}", lang) for c in columns])
    needle = text.strip().lower()
    if needle:
        hit = df.astype(str).apply(lambda c: c.str.lower().str.contains(needle, regex=False))
        df = df[hit.any(axis=1)]
    return df.reset_index(drop=True)


def t_of(key: str, lang: str) -> str:
    return i18n.t(key, lang)


def export_bytes(wh, scope, lang: str) -> bytes:
    """The whole system in the user's scope as the KPI-system workbook."""
    return workbook.to_bytes(export.system_frames(wh, scope), lang)


def weights_total(frame: pd.DataFrame) -> float:
    total = 0.0
    for v in frame["weight"]:
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            total += float(v)
    return total


def children_rows(frame: pd.DataFrame) -> list[tuple[str, float | None]]:
    """The editor's rows as `set_children` takes them; rows without a node are left out."""
    out = []
    for node, weight in zip(frame["node"], frame["weight"], strict=True):
        text = "" if node is None or (isinstance(node, float) and math.isnan(node)) else str(node)
        if text.strip():
            bad = weight is None or (isinstance(weight, float) and math.isnan(weight))
            out.append((text.strip(), None if bad else float(weight)))
    return out


# --- the list ----------------------------------------------------------------------------------


def list_section(ctx: PageContext) -> None:
    with guard(ctx, N_("lib_unexpected")):
        text = st.text_input(ctx.t("lib_filter"), key="lib_filter", width=420)
        df = library_frame(ctx.wh, ctx.cat, ctx.lang, clock.today().year, text or "")
        st.caption(ctx.t("lib_count", n=len(df), total=len(ctx.cat.kpis)))
        st.dataframe(
            df,
            hide_index=True,
            width="stretch",
            height=min(35 * (len(df) + 1) + 3, 640),
            column_config={
                ctx.t("lib_col_formula"): st.column_config.TextColumn(width="medium"),
                ctx.t("lib_col_warnings"): st.column_config.NumberColumn(
                    help=ctx.t("lib_warnings_help"), width="small"
                ),
            },
        )


# --- the KPI the edit and place tabs work on -------------------------------------------------


def kpi_picker(ctx: PageContext) -> str | None:
    """Above the tabs: a KPI to edit and place, or a new one."""
    codes = [k.code for k in sorted(ctx.cat.kpis.values(), key=lambda k: (k.sort_order, k.code))]
    if "lib_pick_next" in st.session_state:
        st.session_state.lib_pick = st.session_state.pop("lib_pick_next")
    if st.session_state.get("lib_pick") not in [None, *codes]:
        st.session_state.lib_pick = None
    return st.selectbox(
        ctx.t("lib_pick"),
        [None, *codes],
        format_func=lambda c: (
            ctx.t("lib_pick_new") if c is None else kpi_label(ctx.cat, c, ctx.lang)
        ),
        key="lib_pick",
        width=480,
    )


def summary_text(ctx: PageContext, summary: dict[str, int]) -> str:
    if not summary:
        return ctx.t("lib_no_change")
    return ", ".join(f"{_summary_key(ctx, k)} {v:,}" for k, v in summary.items())


# Keys built below as "lib_sum_…", written out so that extraction finds them.
_LIB_SUM_KEYS = (
    N_("lib_sum_actuals_changed"),
    N_("lib_sum_actuals_new"),
    N_("lib_sum_actuals_unchanged"),
    N_("lib_sum_kpis_changed"),
    N_("lib_sum_kpis_new"),
    N_("lib_sum_phasing_changed"),
    N_("lib_sum_targets_changed"),
    N_("lib_sum_targets_new"),
    N_("lib_sum_tree_parents_changed"),
    N_("lib_sum_units_changed"),
    N_("lib_sum_units_new"),
)


def _summary_key(ctx: PageContext, key: str) -> str:
    name = f"lib_sum_{key}"
    return ctx.t(name) if i18n.known(name) else key


# --- place on a scorecard ----------------------------------------------------------------------


def place_section(ctx: PageContext, code: str | None) -> None:
    with guard(ctx, "lib_unexpected"):
        if code is None:
            st.info(ctx.t("lib_place_pick_first"))
            return
        month = clock.today().replace(day=1)
        tree = ctx.cat.tree(month)
        units = [
            u for root in ctx.cat.scope_roots(ctx.actor.scope) for u in ctx.cat.descendants(root)
        ]
        with_card = [u for u in units if tree.get((u, SCORECARD))]
        depth0 = min(len(ctx.cat.ancestors(u)) for u in units)

        def label(u: int) -> str:
            unit = ctx.cat.units[u]
            return (
                "\u2003" * (len(ctx.cat.ancestors(u)) - depth0)
                + f"{unit.code} · {unit.name(ctx.lang)}"
            )

        if st.session_state.get("lib_place_unit") not in units:
            st.session_state.lib_place_unit = with_card[0] if with_card else units[0]
        unit_id = st.selectbox(
            ctx.t("lib_place_unit"), units, format_func=label, key="lib_place_unit", width=420
        )
        unit = ctx.cat.units[unit_id].code
        st.caption(
            ctx.t("lib_place_help", unit=unit, month=i18n.period_label(f"{month:%Y-%m}", ctx.lang))
        )
        if done := st.session_state.pop("lib_place_done", None):
            st.success(done)
        current = library_edits.children_of(ctx.cat, unit, None, month)
        node = f"{unit}/{code}"
        added = st.session_state.get("lib_place_add") == node
        rows = list(current)
        on_card = any(n == node for n, _ in rows)
        if added and not on_card:
            rows.append((node, 0.0))
        if not on_card and not added:
            st.button(
                ctx.t("lib_place_add", code=code, unit=unit),
                key="lib_place_add_btn",
                on_click=lambda: st.session_state.update(lib_place_add=node),
                icon=":material/add:",
            )
        elif on_card:
            st.caption(ctx.t("lib_place_already", code=code, unit=unit))
        base = pd.DataFrame(rows, columns=["node", "weight"]).astype({"weight": "float"})
        gen = st.session_state.get("lib_place_gen", 0)
        tag = hashlib.sha256(repr((unit, rows, gen)).encode()).hexdigest()[:10]
        edited = st.data_editor(
            base,
            key=f"lib_tree_{tag}",
            num_rows="dynamic",
            hide_index=True,
            width=560,
            column_config={
                "node": st.column_config.TextColumn(
                    ctx.t("lib_col_node"), help=ctx.t("lib_node_help"), required=True
                ),
                "weight": st.column_config.NumberColumn(
                    ctx.t("weight"), min_value=0, max_value=100, step=0.5, format="%g"
                ),
            },
        )
        total = weights_total(edited)
        if abs(total - 100) <= 0.01:
            st.success(ctx.t("lib_sum_ok", total=f"{total:g}"))
        else:
            st.warning(ctx.t("lib_sum_bad", total=f"{total:g}"))
        if st.button(ctx.t("lib_place_save"), key="lib_place_save", type="primary"):
            children = children_rows(edited)
            try:
                library_edits.set_children(ctx.wh, unit, children, ctx.actor)
            except ValidationError as exc:
                lines = []
                for p in exc.problems:
                    at = p.row - 2 if p.row is not None else None
                    where = children[at][0] if at is not None and 0 <= at < len(children) else unit
                    lines.append(f"- **{md(where)}**: {md(error_text(ctx, p.message))}")
                st.error(ctx.t("lib_place_refused") + "\n\n" + "\n".join(lines))
            else:
                st.session_state.lib_place_done = ctx.t("lib_place_saved", unit=unit)
                st.session_state.lib_place_gen = gen + 1
                st.session_state.pop("lib_place_add", None)
                st.rerun()


# --- the KPI-system workbook out and in --------------------------------------------------------


def transfer_section(ctx: PageContext) -> None:
    with guard(ctx, "lib_unexpected"):
        st.subheader(ctx.t("lib_export"))
        st.caption(ctx.t("lib_export_help"))
        lang = st.segmented_control(
            ctx.t("lib_export_lang"),
            ["zh", "en"],
            format_func=lambda x: "中文" if x == "zh" else "English",
            default=ctx.lang,
            key="lib_export_lang",
        )
        lang = lang or ctx.lang
        wh, scope = ctx.wh, ctx.actor.scope
        st.download_button(
            ctx.t("lib_export_button"),
            data=lambda: export_bytes(wh, scope, lang),
            file_name=f"kpi-system-{clock.today():%Y%m%d}-{lang}.xlsx",
            mime=XLSX,
            key="lib_export_button",
            icon=":material/download:",
            on_click="ignore",
        )
        st.divider()
        st.subheader(ctx.t("lib_import"))
        st.caption(ctx.t("lib_import_help"))
        gen = st.session_state.get("lib_import_gen", 0)
        if done := st.session_state.pop("lib_import_done", None):
            st.success(done)
        file = st.file_uploader(
            ctx.t("lib_import_file"),
            type=["xlsx", "xlsm", "xls"],
            key=f"lib_import_file_{gen}",
            # The same limit as monthly uploads: a KPI-system workbook is far smaller.
            max_upload_size=max(1, math.ceil(files.Limits.configured().max_bytes / 2**20)),
        )
        if file is None:
            return
        data = file.getvalue()
        digest = hashlib.sha256(data).hexdigest()
        held = st.session_state.get("lib_import_check")
        if not held or held[0] != digest:
            held = (digest, *_import(ctx, data, file.name, dry_run=True))
            st.session_state.lib_import_check = held
        _, summary, problems, error = held
        if error:
            st.error(error)
            return
        if problems:
            st.error(ctx.t("lib_import_refused", n=len(problems)))
            st.dataframe(
                problems_frame(problems, ctx.lang),
                hide_index=True,
                width="stretch",
                placeholder="—",
            )
            return
        st.info(ctx.t("lib_import_check", name=md(file.name)))
        st.dataframe(summary_frame(ctx, summary), hide_index=True, width=420)
        if st.button(ctx.t("lib_import_button"), key="lib_import_button", type="primary"):
            summary, problems, error = _import(ctx, data, file.name, dry_run=False)
            if error or problems:
                st.session_state.lib_import_check = (digest, summary, problems, error)
                st.rerun()
            st.session_state.lib_import_done = ctx.t(
                "lib_imported", name=md(file.name), changes=summary_text(ctx, summary)
            )
            st.session_state.lib_import_gen = gen + 1
            st.session_state.pop("lib_import_check", None)
            st.rerun()


def _import(ctx: PageContext, data: bytes, name: str, *, dry_run: bool):
    """(summary, problems, error) of importing `data`."""
    try:
        result = service.import_workbook(ctx.wh, data, ctx.actor, dry_run=dry_run, source_name=name)
    except ValidationError as exc:
        return {}, list(exc.problems), None
    except WarehouseBusyError:
        return {}, [], ctx.t("warehouse_busy")
    except KpiError as exc:
        return {}, [], error_text(ctx, exc)
    return result.summary, [], None


def problems_frame(problems: list[Problem], lang: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            t_of(N_("lib_col_sheet"), lang): [p.sheet for p in problems],
            t_of(N_("lib_col_row"), lang): [p.row for p in problems],
            t_of(N_("lib_col_column"), lang): [p.column for p in problems],
            t_of(N_("lib_col_problem"), lang): [refusal_text(lang, p.message) for p in problems],
        }
    )


def summary_frame(ctx: PageContext, summary: dict[str, int]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            ctx.t("lib_col_change"): [_summary_key(ctx, k) for k in summary]
            or [ctx.t("lib_no_change")],
            ctx.t("lib_col_count"): [f"{v:,}" for v in summary.values()] or ["0"],
        }
    )
