"""The editable grid the Targets page's tabs share: kept in the session with the user's pending
edits, a row form on a phone, checked as typed, saved with a reason and an effective date, and
a conflict said plainly when someone else saved first.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pandas as pd
import streamlit as st

from kpi_core import clock, i18n, planning
from kpi_core.errors import ValidationError
from kpi_core.periods import month_of
from kpi_core.texts import N_
from kpi_core.ui import PageContext
from kpi_core.ui.widgets import error_text

LEVEL_KEYS = {
    "baseline": "baseline", "target": "target", "challenge": "challenge",
    "low": N_("tw_low"), "high": N_("tw_high"), "tolerance": N_("tw_tolerance"), "phasing": "tw_phasing",
    "weight": "weight", "valid_from": "tw_valid_from", "unit": "unit", "parent": "tw_parent",
    "effective": "tw_effective", "reason": "tw_reason",
}  # fmt: skip


def column_label(ctx: PageContext, column: str) -> str:
    key = LEVEL_KEYS.get(column)
    return ctx.t(key) if key else column


def grid_state(name: str, signature: tuple, load, key_columns: list[str], edit_columns: list[str]):
    """The session's copy of a grid: reloaded when its signature changes (another unit, year or
    language), carrying over the cells the user had changed."""
    store = st.session_state.setdefault(f"tw_{name}", {})
    if store.get("signature") != signature:
        pending = pending_edits(store, key_columns, edit_columns) if store else {}
        reload_grid(store, load(), key_columns, pending)
        store["signature"] = signature
    return store


def pending_edits(store: dict, key_columns: list[str], edit_columns: list[str]) -> dict:
    """The cells the user has changed in the editor, keyed by row identity and column."""
    base, edited = store.get("base"), store.get("edited")
    if base is None or edited is None:
        return {}
    out = {}
    for i in base.index.intersection(edited.index):
        key = tuple(base.loc[i, key_columns])
        for c in edit_columns:
            new, old = edited.at[i, c], base.at[i, c]
            if not (_blank(new) and _blank(old)) and str(new) != str(old):
                out[(key, c)] = new
    return out


def _blank(v: object) -> bool:
    return v is None or (isinstance(v, float) and pd.isna(v)) or v == ""


def reload_grid(store: dict, base: pd.DataFrame, key_columns: list[str], pending: dict) -> None:
    shown = base.copy()
    if pending and not base.empty:
        where = {tuple(base.loc[i, key_columns]): i for i in base.index}
        for (key, c), value in pending.items():
            if key in where:
                shown[c] = shown[c].astype(object)
                shown.at[where[key], c] = value
    store.update(base=base, shown=shown, edited=None, nonce=store.get("nonce", 0) + 1)
    store.pop("conflict", None)


def grid_editor(name: str, rows: pd.DataFrame, config: dict, store: dict) -> pd.DataFrame:
    """The grid `name` in place; its key changes with the shown data (see the module's doc)."""
    return st.data_editor(
        rows,
        column_config=config,
        hide_index=True,
        num_rows="fixed",
        placeholder="",  # an unset phasing is blank, not "None"
        width="stretch",
        height=min(38 + 35 * len(rows), 560),
        key=f"tw_{name}_editor_{store['nonce']}",
    )


# A phone shows a grid's first columns only (unit, KPI): its editable columns are past the right
# edge. There the grid gets a form that edits one row at a time, and the edits go into the grid
# as typed in it (so the checks, the list of changes and saving are the same). Wider screens
# hide the form.
NARROW = 640  # px


NARROW_CSS = f"""<style>
@media (min-width: {NARROW}px) {{ [class*="st-key-tw_rowform_"] {{ display: none !important; }} }}
</style>"""


def _cell_text(v: object) -> str:
    return "" if _blank(v) else f"{v:g}" if isinstance(v, float) else str(v)


def row_form(
    ctx: PageContext,
    name: str,
    store: dict,
    keys: list[str],
    fields: dict[str, str],
    row_labels: Callable[[pd.DataFrame], pd.Series],
    parse=lambda column, text: text,
    choices: dict[str, tuple[list, object]] | None = None,
) -> None:
    """Edit one editable row of the grid `name`: `fields` (column → label) as text, or as a
    choice for columns in `choices` (column → (options, format_func)). `row_labels` names the
    rows of a grid, a column at a time. `parse` turns a typed text into the grid's value,
    raising ValueError with what is wrong."""
    base = store["base"]
    # A large unit's grid has thousands of rows: its row picker is built once per grid read,
    # with whole columns, not a cell at a time at every run.
    if store.get("row_picker_of") is not base:
        editable = base[base["editable"].to_numpy(dtype=bool)]
        store["row_picker"] = dict(zip(editable.index, row_labels(editable), strict=True))
        store["row_picker_of"] = base
    labels = store["row_picker"]
    rows = list(labels)
    if not rows:
        return
    current = store["edited"] if store.get("edited") is not None else store["shown"]
    st.html(NARROW_CSS)
    with (
        st.container(key=f"tw_rowform_{name}"),
        st.expander(ctx.t("tw_row_form"), icon=":material/edit:"),
    ):
        row = st.selectbox(
            ctx.t("tw_row_pick"), rows, format_func=labels.__getitem__, key=f"tw_{name}_row"
        )
        tag = f"{name}_{row}_{store['nonce']}"
        with st.form(f"tw_{name}_row_form_{tag}", border=False):
            typed = {}
            for column, label in fields.items():
                value = current.at[row, column]
                if choices and column in choices:
                    options, shown = choices[column]
                    pick = value if value in options else options[0]
                    typed[column] = st.selectbox(
                        label, options, index=options.index(pick), format_func=shown,
                        key=f"tw_{tag}_{column}",
                    )  # fmt: skip
                else:
                    typed[column] = st.text_input(
                        label, value=_cell_text(value), key=f"tw_{tag}_{column}"
                    )
            applied = st.form_submit_button(ctx.t("tw_row_apply"), type="primary")
        if applied:
            pending = pending_edits(store, keys, list(fields))
            where = tuple(base.loc[row, keys])
            try:
                for column, text in typed.items():
                    pending[(where, column)] = parse(column, text)
            except ValueError as exc:
                st.error(str(exc))
                return
            reload_grid(store, base, keys, pending)
            st.rerun()


def problem_line(ctx: PageContext, p: planning.CellProblem) -> str:
    place = f"{p.where} · {column_label(ctx, p.column)}" if p.where else column_label(ctx, p.column)
    return f"{place}: {error_text(ctx, p.message)}"


def save_form(
    ctx: PageContext, name: str, can_save: bool, label: str = "tw_save", default: date | None = None
) -> tuple[date | None, str, bool]:
    """Effective date (by default this month), reason and the save button."""
    c1, c2, c3 = st.columns([1, 3, 1], vertical_alignment="bottom")
    effective = c1.date_input(
        ctx.t("tw_effective"),
        value=default or month_of(clock.today()),
        key=f"tw_{name}_effective",
        help=ctx.t("tw_effective_help"),
        format="YYYY-MM-DD",
    )
    reason = c2.text_input(
        ctx.t("tw_reason"), key=f"tw_{name}_reason", placeholder=ctx.t("tw_reason_hint")
    )
    clicked = c3.button(ctx.t(label), type="primary", disabled=not can_save, key=f"tw_{name}_save")
    return effective, reason, clicked


def conflict_box(ctx: PageContext, store: dict, reload) -> None:
    if "conflict" not in store:
        return
    lines = "\n".join(f"- {error_text(ctx, line)}" for line in store["conflict"])
    st.error(ctx.t("tw_conflict", text="\n" + lines))
    st.button(ctx.t("tw_reload_keep"), key=f"tw_reload_{id(store)}", on_click=reload)


# Keys built below as "tw_saved_…", written out so that extraction finds them.
_TW_SAVED_KEYS = (N_("tw_saved_targets"), N_("tw_saved_weights"))


def save_grid(
    ctx: PageContext, name: str, save, store: dict, load, keys, reason, effective
) -> None:
    """Save the grid `name` (targets or weights) through the core's `save`: on success say so
    and read the grid again; a conflict keeps the user's edits for "reload, keeping my edits";
    refused cells are listed."""
    try:
        saved = save(ctx.wh, ctx.cat, ctx.actor, store["base"], store["edited"],
                     reason=reason, effective=effective)  # fmt: skip
    except planning.ConflictError as exc:
        store["conflict"] = exc.lines
        st.rerun()
    except ValidationError as exc:
        for p in exc.problems:
            st.error(error_text(ctx, p.message))
    else:
        st.session_state[f"tw_{name}_done"] = ctx.t(
            f"tw_saved_{name}", rows=saved.rows, cells=saved.cells,
            month=i18n.period_label(f"{month_of(effective):%Y-%m}", ctx.lang),
        )  # fmt: skip
        st.session_state.pop(f"tw_{name}_reason", None)
        reload_grid(store, load(), keys, {})
        st.rerun()


def saved_notice(ctx: PageContext, name: str) -> None:
    done = st.session_state.pop(f"tw_{name}_done", None)
    if done:
        st.success(done)


def _readable(ctx: PageContext, grid: pd.DataFrame) -> pd.DataFrame:
    """Display-only columns in the page's words: dates as text ('from the start' for a tree set
    up undated), units of measure in the page's language."""
    out = grid.copy()
    out["valid_from"] = [since_text(ctx, d) for d in out["valid_from"]]
    if "measure" in out:
        out["measure"] = [i18n.unit_label(u, ctx.lang) for u in out["measure"]]
    return out


def readable_kept(ctx: PageContext, store: dict) -> pd.DataFrame:
    """`_readable` of the grid as shown, made once per grid and language rather than a cell at
    a time at every run (thousands of rows on a large unit)."""
    kept = store.get("readable")
    if kept is None or kept[0] is not store["shown"] or kept[1] != ctx.lang:
        kept = store["readable"] = (store["shown"], ctx.lang, _readable(ctx, store["shown"]))
    return kept[2]


def since_text(ctx: PageContext, d: object) -> str:
    return ctx.t("tw_from_start") if d is None or pd.isna(d) else f"{d:%Y-%m-%d}"
