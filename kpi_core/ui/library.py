"""The KPI library page's sections (DESIGN.md §6): the list with SMART warnings, editing one
definition (with the formula checked as it is typed), placing a KPI on a unit's scorecard, and
the KPI-system workbook out and back in. For admins.

The work is in `kpi_core.library_edits`, which sends every edit through the KPI-system import, so
a definition saved here is checked exactly as a workbook row would be; this module draws it.
"""

from __future__ import annotations

import hashlib
import math

import pandas as pd
import streamlit as st

from kpi_core import clock, export, i18n, library_edits, people, service, workbook
from kpi_core.catalog import SCORECARD, Catalog
from kpi_core.errors import KpiError, Problem, ValidationError, WarehouseBusyError
from kpi_core.ingest import files
from kpi_core.library import AGGREGATIONS, DIRECTIONS, PERSPECTIVES
from kpi_core.messages import Message
from kpi_core.texts import N_
from kpi_core.ui import PageContext
from kpi_core.ui.boundary import guard
from kpi_core.ui.widgets import error_text, md, refusal_text

KINDS = ("result", "process")
NEW = "__new__"  # the code a formula is checked under before the KPI has one
TEXT_FIELDS = ("code", "name_zh", "name_en", "unit", "caliber", "source", "owner")
NUMBER_FIELDS = ("decimals", "min", "max")
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


def field_problems(
    problems: list[tuple[str | None, Message | str]], field: str
) -> list[Message | str]:
    return [m for c, m in problems if c == field]


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


def _problem_pairs(exc: ValidationError) -> list[tuple[str | None, Message | str]]:
    return [(p.column, p.message) for p in exc.problems]


def _problem_text(ctx: PageContext, p: Problem) -> str:
    where = [p.sheet]
    if p.row is not None:
        where.append(ctx.t("lib_row", row=p.row))
    if p.column:
        where.append(p.column)
    return f"{' · '.join(where)}: {error_text(ctx, p.message)}"


# --- 1: the list -------------------------------------------------------------------------------


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


# --- 2: edit or create a definition ------------------------------------------------------------


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


def _load_fields(ctx: PageContext, code: str | None) -> None:
    """Put the picked KPI's definition (or blanks) into the form's widgets."""
    if st.session_state.get("lib_loaded", "∅") == code:
        return
    values = (
        library_edits.fields_of(ctx.cat.kpi(code))
        if code
        else {"direction": "up", "aggregation": "sum", "veto": False}
    )
    for f in library_edits.FIELDS:
        v = values.get(f)
        if f in TEXT_FIELDS or f == "formula":
            v = "" if v is None else str(v)
        st.session_state[f"lib_f_{f}"] = v
    st.session_state.lib_loaded = code
    held = st.session_state.get("lib_outcome")
    if not (held and held.get("saved") == code):
        st.session_state.pop("lib_outcome", None)


def collected() -> dict[str, object]:
    """The form's fields as `save_kpi` takes them."""
    fields = {f: st.session_state.get(f"lib_f_{f}") for f in library_edits.FIELDS}
    agg = fields.get("aggregation")
    if agg != "ratio":
        fields["numerator"] = fields["denominator"] = None
    if agg != "formula":
        fields["formula"] = None
    if fields.get("decimals") is not None:
        fields["decimals"] = int(fields["decimals"])
    return fields


def _submit(ctx: PageContext, dry_run: bool) -> None:
    """Check or save (a callback, so the problems are there when the fields are drawn)."""
    fields = collected()
    outcome: dict[str, object] = {
        "dry_run": dry_run, "problems": [], "error": None, "fields": fields,
    }  # fmt: skip
    try:
        result = library_edits.save_kpi(ctx.wh, fields, ctx.actor, dry_run=dry_run)
    except ValidationError as exc:
        outcome["problems"] = _problem_pairs(exc)
    except WarehouseBusyError:
        outcome["error"] = ctx.t("warehouse_busy")
    except KpiError as exc:
        outcome["error"] = error_text(ctx, exc)
    else:
        outcome["summary"] = result.summary
        outcome["code"] = fields["code"]
        if not dry_run:
            # Show the KPI as stored (names filled in, aliases resolved), with the message.
            st.session_state.lib_pick = fields["code"]
            st.session_state.pop("lib_loaded", None)
            outcome["saved"] = fields["code"]
    st.session_state.lib_outcome = outcome


def _owner_note(ctx: PageContext, col) -> None:
    """Say whom the owner typed names: a user (shown everywhere by display name) or somebody
    without an account (shown as typed)."""
    typed = str(st.session_state.get("lib_f_owner") or "").strip()
    if not typed:
        return
    known = people.load(ctx.wh)
    user = known.user_of(typed)
    if user is None:
        col.caption(ctx.t("lib_owner_text"))
    else:
        col.caption(ctx.t("lib_owner_user", name=md(known.display[user]), user=md(user)))


def _notes(ctx: PageContext, problems, field: str) -> None:
    for m in field_problems(problems, field):
        st.error(error_text(ctx, m), icon=":material/error:")


# Keys built below as "lib_kind_…" / "lib_persp_…", written out so that extraction finds them.
_LIB_KIND_KEYS = (
    N_("lib_kind_process"),
    N_("lib_kind_result"),
    N_("lib_persp_customer"),
    N_("lib_persp_financial"),
    N_("lib_persp_learning"),
    N_("lib_persp_process"),
)


def edit_section(ctx: PageContext, code: str | None) -> None:
    with guard(ctx, "lib_unexpected"):
        _load_fields(ctx, code)
        outcome = st.session_state.get("lib_outcome") or {}
        if outcome and not outcome.get("saved") and outcome.get("fields") != collected():
            outcome = {}  # the fields changed since: what was said of them no longer holds
            st.session_state.pop("lib_outcome", None)
        problems = outcome.get("problems") or []
        if code is None:
            st.caption(ctx.t("lib_new_help"))
        kpi_codes = sorted(ctx.cat.kpi_by_code)

        def text(field: str, col, **kw) -> None:
            with col:
                st.text_input(ctx.t(f"lib_field_{field}"), key=f"lib_f_{field}", **kw)
                _notes(ctx, problems, field)

        c1, c2, c3 = st.columns(3)
        text("code", c1, disabled=code is not None, help=ctx.t("lib_code_help"))
        text("name_zh", c2)
        text("name_en", c3)
        c1, c2, c3 = st.columns(3)
        with c1:
            st.selectbox(
                ctx.t("lib_field_direction"),
                DIRECTIONS,
                format_func=lambda d: ctx.t("lib_dir_" + d),
                key="lib_f_direction",
            )
            _notes(ctx, problems, "direction")
        with c2:
            st.selectbox(
                ctx.t("lib_field_aggregation"),
                AGGREGATIONS,
                format_func=lambda a: ctx.t("lib_agg_" + a),
                key="lib_f_aggregation",
            )
            _notes(ctx, problems, "aggregation")
        text("unit", c3, help=ctx.t("lib_unit_help"))

        agg = st.session_state.get("lib_f_aggregation")
        if agg == "ratio":
            c1, c2 = st.columns(2)
            for field, col in (("numerator", c1), ("denominator", c2)):
                with col:
                    st.selectbox(
                        ctx.t(f"lib_field_{field}"),
                        [None, *[c for c in kpi_codes if c != code]],
                        format_func=lambda c: "—" if c is None else kpi_label(ctx.cat, c, ctx.lang),
                        key=f"lib_f_{field}",
                    )
                    _notes(ctx, problems, field)
        elif agg == "formula":
            typed = st.text_input(
                ctx.t("lib_field_formula"),
                key="lib_f_formula",
                placeholder="AVAIL * PERF * QUAL",
                help=ctx.t("lib_formula_help"),
            )
            if (typed or "").strip():
                said = library_edits.formula_problem(typed, ctx.cat, code or _typed_code() or NEW)
                if said:
                    st.error(error_text(ctx, said), icon=":material/function:")
                else:
                    st.success(ctx.t("lib_formula_ok"), icon=":material/function:")
            _notes(ctx, problems, "formula")

        c1, c2, c3 = st.columns(3)
        with c1:
            st.selectbox(
                ctx.t("lib_field_perspective"),
                [None, *PERSPECTIVES],
                format_func=lambda p: "—" if p is None else ctx.t("lib_persp_" + p),
                placeholder="—",
                key="lib_f_perspective",
            )
            _notes(ctx, problems, "perspective")
        with c2:
            st.selectbox(
                ctx.t("lib_field_kind"),
                [None, *KINDS],
                format_func=lambda k: "—" if k is None else ctx.t("lib_kind_" + k),
                placeholder="—",
                key="lib_f_kind",
            )
            _notes(ctx, problems, "kind")
        with c3:
            st.checkbox(ctx.t("lib_field_veto"), key="lib_f_veto", help=ctx.t("lib_veto_help"))
        c1, c2, c3 = st.columns(3)
        for field, col in (("decimals", c1), ("min", c2), ("max", c3)):
            with col:
                st.number_input(
                    ctx.t(f"lib_field_{field}"),
                    value=None,
                    key=f"lib_f_{field}",
                    step=1 if field == "decimals" else None,
                    min_value=0 if field == "decimals" else None,
                    max_value=9 if field == "decimals" else None,
                )
                _notes(ctx, problems, field)
        st.text_area(
            ctx.t("lib_field_caliber"),
            key="lib_f_caliber",
            height=80,
            help=ctx.t("lib_caliber_help"),
        )
        _notes(ctx, problems, "caliber")
        c1, c2 = st.columns(2)
        text("source", c1)
        text("owner", c2, help=ctx.t("lib_owner_help"))
        _owner_note(ctx, c2)

        b1, b2, _ = st.columns([1, 1, 4])
        b1.button(
            ctx.t("lib_check"), key="lib_check", on_click=_submit, args=(ctx, True),
            icon=":material/rule:",
        )  # fmt: skip
        b2.button(
            ctx.t("lib_save"), key="lib_save", type="primary", on_click=_submit,
            args=(ctx, False), icon=":material/save:",
        )  # fmt: skip
        _outcome(ctx, outcome, problems)
        if code is not None:
            _smart(ctx, code)


def _typed_code() -> str | None:
    typed = (st.session_state.get("lib_f_code") or "").strip()
    return typed or None


def _outcome(ctx: PageContext, outcome: dict, problems) -> None:
    if outcome.get("error"):
        st.error(outcome["error"])
    elif problems:
        lines = [
            f"- **{ctx.t('lib_field_' + c) if c in library_edits.FIELDS else c or '—'}**: "
            f"{md(error_text(ctx, m))}"
            for c, m in problems
        ]
        st.error(ctx.t("lib_refused", n=len(problems)) + "\n\n" + "\n".join(lines))
    elif "summary" in outcome:
        said = summary_text(ctx, outcome["summary"])
        if outcome["dry_run"]:
            st.info(ctx.t("lib_check_ok", changes=said))
        else:
            st.success(ctx.t("lib_saved", code=outcome["code"], changes=said))


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


def _smart(ctx: PageContext, code: str) -> None:
    year = clock.today().year
    warnings = library_edits.smart_warnings(ctx.wh, ctx.cat, code, year)
    if warnings:
        st.warning(
            ctx.t("lib_smart", code=code)
            + "\n\n"
            + "\n".join(f"- {md(w.render(ctx.lang))}" for w in warnings)
        )
    else:
        st.success(ctx.t("lib_smart_ok", code=code))


# --- 3: place on a scorecard -------------------------------------------------------------------


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


# --- 4: the KPI-system workbook out and in -----------------------------------------------------


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
