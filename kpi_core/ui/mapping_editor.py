"""The Upload page's mapping profiles (DESIGN.md §6): the editor for a file in its own layout,
tried on the uploaded file before it is saved, and its fields (date column, unit, measures),
which the Sources page uses for a database pull too.
"""

from __future__ import annotations

import hashlib

import pandas as pd
import streamlit as st

from kpi_core.ingest import files, profile
from kpi_core.ingest.names import norm
from kpi_core.texts import N_
from kpi_core.ui import PageContext
from kpi_core.ui.boundary import guard
from kpi_core.ui.definition_files import download, opened
from kpi_core.ui.intake_frames import (
    STORED,
    digest,
    findings_frame,
    guess_column,
    measures_frame,
    measures_from,
    records_frame,
    shown_cells,
)
from kpi_core.ui.intake_panels import kept
from kpi_core.ui.widgets import error_text, md


def profiles_section(ctx: PageContext, uploads: list[tuple[str, bytes]]) -> None:
    st.caption(ctx.t("up_pf_intro"))
    done = st.session_state.pop("up_pf_done", None)
    if done:
        st.success(done)
    with guard(ctx, "up_unexpected"):
        _profile_editor(ctx, uploads)


def _tables(name: str, data: bytes) -> list[files.Table]:
    """The sample file's sheets, read once per file."""
    return kept("up_pf_tables", digest([(name, data)]), lambda: files.read_file(name, data))


# Keys built below as "up_pf_…", written out so that extraction finds them.
_UP_PF_KEYS = N_("up_pf_date_")


def _profile_editor(ctx: PageContext, uploads: list[tuple[str, bytes]]) -> None:
    names = profile.names(ctx.wh)
    start = st.selectbox(
        ctx.t("up_pf_start"),
        [None, *names],
        format_func=lambda n: ctx.t("up_pf_new") if n is None else n,
        key="up_pf_start",
    )
    base = profile.load(ctx.wh, start) if start else None
    if base:
        download(ctx, base, "up_pf_dl_saved", ctx.t("def_download_saved"))
    # A TOML file (profile export, or downloaded here) opens in the editor in place of `start`.
    loaded, toml_tag = opened(ctx, "profile", "up_pf_toml")
    if loaded is not None:
        base = loaded
        if st.button(ctx.t("def_save_file"), icon=":material/save:", key="up_pf_save_toml"):
            profile.save(ctx.wh, loaded, ctx.actor)
            st.session_state.up_pf_done = ctx.t("up_pf_saved", name=loaded.name)
            st.session_state.up_profile_next = loaded.name
            st.rerun()
    if not uploads:
        st.info(ctx.t("up_pf_need_file"))
        return
    by_name = dict(uploads)
    sample = st.selectbox(ctx.t("up_pf_sample"), list(by_name), key="up_pf_file")
    tables = _tables(sample, by_name[sample])
    file_id = digest([(sample, by_name[sample])])
    # Widgets are keyed by profile (or opened file) and sample file, so choosing another one
    # starts from its settings.
    p = "up_pf_" + hashlib.sha256(f"{start}|{toml_tag}|{file_id}".encode()).hexdigest()[:10] + "_"

    labels = [t.label for t in tables]
    sheet_at = 0
    if base and base.sheet:
        sheet_at = next((i for i, t in enumerate(tables) if norm(t.sheet) == norm(base.sheet)), 0)
    left, right = st.columns([3, 1])
    label = left.selectbox(ctx.t("up_pf_sheet"), labels, index=sheet_at, key=p + "sheet")
    table = tables[labels.index(label)]
    height = max(len(table.rows), 1)
    header_row = int(
        right.number_input(
            ctx.t("up_pf_header_row"),
            min_value=1,
            max_value=height,
            value=min(base.header_row if base else 1, height),
            step=1,
            key=p + "header",
        )
    )
    # Every tab runs on every click: what costs time on a big export is kept between runs.
    frame = kept(
        "up_pf_frame", (file_id, label, header_row), lambda: profile.frame(table, header_row)
    )
    st.caption(ctx.t("up_pf_first_rows"))
    st.dataframe(shown_cells(frame.head(8)), width="stretch")
    columns = [str(c) for c in frame.columns]
    if not columns:
        return

    def values_of(unit_column: str) -> list[str]:
        return kept(
            "up_pf_values",
            (file_id, label, header_row, unit_column),
            lambda: sorted({str(v).strip() for v in frame[unit_column] if v is not None} - {""}),
        )

    mapped = mapping_fields(ctx, columns, base, p, values_of)
    name = st.text_input(ctx.t("up_pf_name"), value=base.name if base else "", key=p + "name")
    candidate = profile.Profile(
        name=(name or "").strip(), sheet=table.sheet or None, header_row=header_row, **mapped
    )
    problems = candidate.problems(columns)  # a column an expression names must be in the sheet
    if problems:
        st.info(
            "\n".join([ctx.t("up_pf_problems"), *(f"- {md(error_text(ctx, q))}" for q in problems)])
        )
    else:
        _try_profile(ctx, candidate, tables, file_id)
    with st.container(horizontal=True):
        save = st.button(
            ctx.t("up_pf_save"),
            type="primary",
            icon=":material/save:",
            disabled=bool(problems),
            key=p + "save",
        )
        if not problems:
            download(ctx, candidate, p + "dl", ctx.t("def_download_edited"))
    if save:
        profile.save(ctx.wh, candidate, ctx.actor)
        st.session_state.up_pf_done = ctx.t("up_pf_saved", name=candidate.name)
        st.session_state.up_profile_next = candidate.name
        st.rerun()


def mapping_fields(
    ctx: PageContext,
    columns: list[str],
    base: profile.Profile | None,
    p: str,
    values_of,
    *,
    growable: bool = False,
) -> dict:
    """The profile editor's pieces the Upload and Sources pages share: the date column (its
    month is the period), the unit (a column with a map of its values, or one unit), and the
    measures. Returns the profile's fields for those. `values_of(column)` gives the unit
    column's values to map; `growable` lets the analyst add values the sample did not show
    (a database sample is a few rows, not the whole table)."""

    def at(name: str | None, field: str) -> int:
        if name and name in columns:
            return columns.index(name)
        return guess_column(columns, field)

    left, right = st.columns(2, gap="large")
    date_column = left.selectbox(
        ctx.t("up_pf_date_column"),
        columns,
        index=at(base and base.date_column, "period"),
        key=p + "date",
    )
    date_format = _date_format(ctx, left, base, p)
    codes = [
        ctx.cat.units[u].code
        for r in ctx.cat.scope_roots(ctx.actor.scope)
        for u in ctx.cat.descendants(r)
    ]

    def unit_name(code: str) -> str:
        u = ctx.cat.unit_by_code.get(code)
        return f"{code} · {u.name(ctx.lang)}" if u else code

    mode = right.radio(
        ctx.t("up_pf_unit_mode"),
        ["column", "fixed"],
        index=1 if base and not base.unit_column else 0,
        format_func=lambda m: ctx.t(
            "up_pf_unit_by_column"
            if m == "column"
            else "up_pf_unit_fixed_rows"
            if growable
            else "up_pf_unit_fixed"
        ),
        horizontal=True,
        key=p + "umode",
    )
    unit_column, unit_map, fixed = None, {}, None
    if mode == "column":
        unit_column = right.selectbox(
            ctx.t("up_pf_unit_column"),
            columns,
            index=at(base and base.unit_column, "unit"),
            key=p + "ucol",
        )
        values = values_of(unit_column)[:500]
        if growable and base:  # values mapped before stay, though the sample lacks them
            have = {norm(v) for v in values}
            values += [k for k in base.unit_map if norm(k) not in have]
        unit_map = _unit_map(ctx, values, unit_column, codes, unit_name, base, p, growable)
    else:
        fixed = right.selectbox(
            ctx.t("up_pf_unit"),
            codes,
            index=codes.index(base.unit) if base and base.unit in codes else 0,
            format_func=unit_name,
            key=p + "unit",
        )
    measures = measures_editor(ctx, columns, base, p)
    return {
        "date_column": date_column,
        "date_format": date_format,
        "unit_column": unit_column,
        "unit_map": unit_map,
        "unit": fixed,
        "measures": measures,
    }


DATE_FORMATS = ("", "dmy", "mdy", "ymd", "%d/%m/%y", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y")


# Keys built below as "up_pf_date_…", written out so that extraction finds them.
_UP_PF_DATE_KEYS = (N_("up_pf_date_dmy"), N_("up_pf_date_mdy"), N_("up_pf_date_ymd"))


def _date_format(ctx: PageContext, where, base: profile.Profile | None, p: str) -> str:
    """How text dates read: detected (asking when a column reads both ways), an order, or a
    pattern the analyst types."""
    current = base.date_format if base else ""
    options = list(DATE_FORMATS) + ([current] if current not in DATE_FORMATS else [])
    got = where.selectbox(
        ctx.t("up_pf_date_format"),
        options,
        index=options.index(current),
        format_func=lambda f: ctx.t("up_pf_date_" + f) if f in ("", "dmy", "mdy", "ymd") else f,
        accept_new_options=True,
        help=ctx.t("up_pf_date_format_help"),
        key=p + "datefmt",
    )
    return (got or "").strip()


# Keys built below as "up_agg_…", written out so that extraction finds them.
_UP_AGG_KEYS = (N_("up_agg_avg"), N_("up_agg_count"), N_("up_agg_count_distinct"), N_("up_agg_sum"))


def measures_editor(
    ctx: PageContext, columns: list[str], base: profile.Profile | None, p: str
) -> list[profile.Measure]:
    """One row per KPI: its aggregation of a column or of an expression, and one filter."""
    st.markdown(f"**{ctx.t('up_pf_measures')}**")
    st.caption(ctx.t("up_pf_measures_help"))
    kpis = sorted(
        (k for k in ctx.cat.kpis.values() if k.aggregation in STORED),
        key=lambda k: (k.sort_order, k.code),
    )
    kpi_names = {k.code: f"{k.code} · {k.name(ctx.lang)}" for k in kpis}
    if base and any(len(m.filters) > 1 for m in base.measures):
        st.warning(ctx.t("up_pf_more_filters"))
    edited = st.data_editor(
        measures_frame(base),
        num_rows="dynamic",
        hide_index=True,
        placeholder="—",
        width="stretch",
        key=p + "measures",
        column_config={
            "kpi": st.column_config.SelectboxColumn(
                ctx.t("up_pf_kpi"),
                options=list(kpi_names),
                format_func=lambda c: kpi_names.get(c, c),
                required=True,
                width="medium",
            ),
            "agg": st.column_config.SelectboxColumn(
                ctx.t("up_pf_agg"),
                options=list(profile.AGGS),
                format_func=lambda a: ctx.t("up_agg_" + a),
                required=True,
                default="sum",
            ),
            "column": st.column_config.SelectboxColumn(ctx.t("up_pf_column"), options=columns),
            "expression": st.column_config.TextColumn(
                ctx.t("up_pf_expression"), help=ctx.t("up_pf_expression_help")
            ),
            "filter_column": st.column_config.SelectboxColumn(
                ctx.t("up_pf_filter_column"), options=columns
            ),
            "filter_op": st.column_config.SelectboxColumn(
                ctx.t("up_pf_filter_op"), options=list(profile.OPS)
            ),
            "filter_value": st.column_config.TextColumn(ctx.t("up_pf_filter_value")),
        },
    )
    return measures_from(edited)


def _unit_map(ctx, values, column, codes, unit_name, base, p, growable=False) -> dict[str, str]:
    """The unit column's distinct values against unit codes; empty where a value is already a
    unit's code or name. `growable`: the analyst may add values (rows) of their own."""
    known = {norm(k): v for k, v in (base.unit_map if base else {}).items()}
    mapped = [known.get(norm(v)) for v in values]
    st.caption(ctx.t("up_pf_unit_map_rows" if growable else "up_pf_unit_map"))
    edited = st.data_editor(
        pd.DataFrame({"value": values, "code": mapped}, dtype=object),
        hide_index=True,
        placeholder="—",
        width="stretch",
        num_rows="dynamic" if growable else "fixed",
        key=p + "umap_" + hashlib.sha1(column.encode()).hexdigest()[:8],
        column_config={
            "value": st.column_config.TextColumn(
                ctx.t("up_pf_value_in_source" if growable else "up_pf_value_in_file"),
                disabled=not growable,
            ),
            "code": st.column_config.SelectboxColumn(
                ctx.t("up_pf_unit_code"), options=codes, format_func=unit_name
            ),
        },
    )
    return {
        str(v).strip(): str(c)
        for v, c in zip(edited["value"], edited["code"], strict=True)
        if isinstance(v, str) and v.strip() and isinstance(c, str) and c and c != v.strip()
    }


def _try_profile(ctx: PageContext, candidate: profile.Profile, tables, file_id: str) -> None:
    st.markdown(f"**{ctx.t('up_pf_try')}**")

    def attempt():
        try:
            return profile.apply(candidate, tables)
        except profile.ProfileError as exc:
            return exc

    got = kept("up_pf_try", (file_id, candidate.to_json()), attempt)
    if isinstance(got, profile.ProfileError):
        st.warning(error_text(ctx, got))
        return
    records, findings = got
    if findings:
        st.dataframe(
            findings_frame(findings, ctx.lang), hide_index=True, placeholder="—", width="stretch"
        )
    if not len(records):
        st.caption(ctx.t("up_pf_try_empty"))
        return
    st.dataframe(
        records_frame(records, ctx.lang),
        hide_index=True,
        placeholder="—",
        width="stretch",
        column_config={ctx.t("value"): st.column_config.NumberColumn(format="localized")},
    )
