"""The KPI library page's editing form (DESIGN.md §6, kpi_core/ui/library.py): one definition,
edited or created, with the formula checked as it is typed, the problems named beside their
fields and the SMART warnings of what was saved.

The work is in `kpi_core.library_edits`, which sends every edit through the KPI-system import.
"""

from __future__ import annotations

import streamlit as st

from kpi_core import clock, library_edits, people
from kpi_core.errors import KpiError, ValidationError, WarehouseBusyError
from kpi_core.library import AGGREGATIONS, DIRECTIONS, PERSPECTIVES
from kpi_core.messages import Message
from kpi_core.texts import N_
from kpi_core.ui import PageContext
from kpi_core.ui.boundary import guard
from kpi_core.ui.library import kpi_label, summary_text
from kpi_core.ui.widgets import error_text, md

KINDS = ("result", "process")
NEW = "__new__"  # the code a formula is checked under before the KPI has one
TEXT_FIELDS = ("code", "name_zh", "name_en", "unit", "caliber", "source", "owner")
NUMBER_FIELDS = ("decimals", "min", "max")


def field_problems(
    problems: list[tuple[str | None, Message | str]], field: str
) -> list[Message | str]:
    return [m for c, m in problems if c == field]


def _problem_pairs(exc: ValidationError) -> list[tuple[str | None, Message | str]]:
    return [(p.column, p.message) for p in exc.problems]


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


# Keys built below as "lib_kind_…" / "lib_persp_…" / "lib_field_…", written out so that
# extraction finds them.
_LIB_KIND_KEYS = (
    N_("lib_field_kind"),
    N_("lib_field_perspective"),
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
            _optional_pick(ctx, problems, "perspective", PERSPECTIVES, "lib_persp_")
        with c2:
            _optional_pick(ctx, problems, "kind", KINDS, "lib_kind_")
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


def _optional_pick(ctx, problems, field: str, options, words: str) -> None:
    """A select of `options` or none ("—"), each named by the message `words` + option, with
    the problems of `field` below it."""
    st.selectbox(
        ctx.t(f"lib_field_{field}"),
        [None, *options],
        format_func=lambda o: "—" if o is None else ctx.t(words + o),
        placeholder="—",
        key=f"lib_f_{field}",
    )
    _notes(ctx, problems, field)
