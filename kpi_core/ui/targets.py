"""Targets & weights page: the grids edited in place, checked as they are edited, saved with a
reason and an effective date, with history, revert and the change log.

Each grid is kept in the session as it was read (`base`, with the version of every row) and as
it is shown (`shown`: the base with edits carried over). The editor's key changes whenever the
shown data does, so the editor never mixes an old state into new data. What the user changed is
always the difference between the editor's output and `base` — so after a refused save
(somebody else saved first) "reload" reads the grid again and carries the user's edits over
onto it: nothing of either person's work is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pandas as pd
import streamlit as st

from kpi_core import audit, clock, i18n, planning, workbook
from kpi_core.errors import ValidationError
from kpi_core.periods import month_of
from kpi_core.ui import PageContext
from kpi_core.ui.widgets import error_text

_LEVEL_KEYS = {
    "baseline": "baseline", "target": "target", "challenge": "challenge",
    "low": "tw_low", "high": "tw_high", "tolerance": "tw_tolerance", "phasing": "tw_phasing",
    "weight": "weight", "valid_from": "tw_valid_from", "unit": "unit", "parent": "tw_parent",
    "effective": "tw_effective", "reason": "tw_reason",
}  # fmt: skip


def column_label(ctx: PageContext, column: str) -> str:
    key = _LEVEL_KEYS.get(column)
    return ctx.t(key) if key else column


# --- Shared: the grid kept in the session ----------------------------------------------------


def _grid(name: str, signature: tuple, load, key_columns: list[str], edit_columns: list[str]):
    """The session's copy of a grid: reloaded when its signature changes (another unit, year or
    language), carrying over the cells the user had changed."""
    store = st.session_state.setdefault(f"tw_{name}", {})
    if store.get("signature") != signature:
        pending = _pending(store, key_columns, edit_columns) if store else {}
        _reload(store, load(), key_columns, pending)
        store["signature"] = signature
    return store


def _pending(store: dict, key_columns: list[str], edit_columns: list[str]) -> dict:
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


def _reload(store: dict, base: pd.DataFrame, key_columns: list[str], pending: dict) -> None:
    shown = base.copy()
    if pending and not base.empty:
        where = {tuple(base.loc[i, key_columns]): i for i in base.index}
        for (key, c), value in pending.items():
            if key in where:
                shown[c] = shown[c].astype(object)
                shown.at[where[key], c] = value
    store.update(base=base, shown=shown, edited=None, nonce=store.get("nonce", 0) + 1)
    store.pop("conflict", None)


def _editor(name: str, rows: pd.DataFrame, config: dict, store: dict) -> pd.DataFrame:
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


def _row_form(
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
            pending = _pending(store, keys, list(fields))
            where = tuple(base.loc[row, keys])
            try:
                for column, text in typed.items():
                    pending[(where, column)] = parse(column, text)
            except ValueError as exc:
                st.error(str(exc))
                return
            _reload(store, base, keys, pending)
            st.rerun()


def _problem_line(ctx: PageContext, p: planning.CellProblem) -> str:
    place = f"{p.where} · {column_label(ctx, p.column)}" if p.where else column_label(ctx, p.column)
    return f"{place}: {error_text(ctx, p.message)}"


def _save_form(
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


def _conflict_box(ctx: PageContext, store: dict, reload) -> None:
    if "conflict" not in store:
        return
    lines = "\n".join(f"- {error_text(ctx, line)}" for line in store["conflict"].splitlines())
    st.error(ctx.t("tw_conflict", text="\n" + lines))
    st.button(ctx.t("tw_reload_keep"), key=f"tw_reload_{id(store)}", on_click=reload)


def _save(ctx: PageContext, name: str, save, store: dict, load, keys, reason, effective) -> None:
    """Save the grid `name` (targets or weights) through the core's `save`: on success say so
    and read the grid again; a conflict keeps the user's edits for "reload, keeping my edits";
    refused cells are listed."""
    try:
        saved = save(ctx.wh, ctx.cat, ctx.actor, store["base"], store["edited"],
                     reason=reason, effective=effective)  # fmt: skip
    except planning.ConflictError as exc:
        store["conflict"] = str(exc)
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
        _reload(store, load(), keys, {})
        st.rerun()


def _flash(ctx: PageContext, name: str) -> None:
    done = st.session_state.pop(f"tw_{name}_done", None)
    if done:
        st.success(done)


def _readable(ctx: PageContext, grid: pd.DataFrame) -> pd.DataFrame:
    """Display-only columns in the page's words: dates as text ('from the start' for a tree set
    up undated), units of measure in the page's language."""
    out = grid.copy()
    out["valid_from"] = [_since(ctx, d) for d in out["valid_from"]]
    if "measure" in out:
        out["measure"] = [i18n.unit_label(u, ctx.lang) for u in out["measure"]]
    return out


def _readable_kept(ctx: PageContext, store: dict) -> pd.DataFrame:
    """`_readable` of the grid as shown, made once per grid and language rather than a cell at
    a time at every run (thousands of rows on a large unit)."""
    kept = store.get("readable")
    if kept is None or kept[0] is not store["shown"] or kept[1] != ctx.lang:
        kept = store["readable"] = (store["shown"], ctx.lang, _readable(ctx, store["shown"]))
    return kept[2]


def _since(ctx: PageContext, d: object) -> str:
    return ctx.t("tw_from_start") if d is None or pd.isna(d) else f"{d:%Y-%m-%d}"


# --- Targets -----------------------------------------------------------------------------------


# Each grid's row identity and the columns a user edits in it.
GRID_COLUMNS = {
    "targets": (["kpi_id", "unit_id", "grain", "period_start"], [*planning.LEVELS, "phasing"]),
    "weights": (["parent_unit", "parent_kpi", "child_unit", "child_kpi"], ["weight"]),
}


def keep_edits(name: str) -> None:
    """The grid `name`'s tab is closed: its editor is not drawn, and Streamlit forgets an editor
    not drawn in a run. Its unsaved cells move into the grid as shown, where the editor finds
    them when the tab opens again (a refused save's conflict stays too)."""
    store = st.session_state.get(f"tw_{name}")
    if not store or store.get("edited") is None:
        return
    keys, edit_cols = GRID_COLUMNS[name]
    conflict = store.get("conflict")
    _reload(store, store["base"], keys, _pending(store, keys, edit_cols))
    if conflict is not None:
        store["conflict"] = conflict


def targets_section(
    ctx: PageContext, unit_id: int, year: int, grain: str, latest_data: date | None = None
) -> None:
    keys, edit_cols = GRID_COLUMNS["targets"]

    def load() -> pd.DataFrame:
        return planning.target_grid(ctx.wh, ctx.cat, ctx.actor, unit_id, year, grain, ctx.lang)

    store = _grid("targets", (unit_id, year, grain, ctx.lang), load, keys, edit_cols)

    def reload() -> None:
        _reload(store, load(), keys, _pending(store, keys, edit_cols))

    _flash(ctx, "targets")
    base, shown = store["base"], _readable_kept(ctx, store)
    if base.empty:
        st.info(ctx.t("tw_no_kpis"))
        return
    has_range = bool((base["direction"] == "range").any())
    levels = [*planning.LEVELS] if has_range else ["baseline", "target", "challenge"]
    visible = ["unit", "kpi", "period", "measure", *levels, "phasing"]
    visible += ["applies"] if grain != "Y" else []
    visible += ["valid_from", "changed_by"]
    profiles = ["", "even", *sorted(p for p in ctx.cat.profiles if p != "even")]
    config = {
        "unit": st.column_config.TextColumn(ctx.t("unit"), disabled=True),
        "kpi": st.column_config.TextColumn(ctx.t("kpi"), disabled=True),
        "period": st.column_config.TextColumn(ctx.t("period"), disabled=True),
        "measure": st.column_config.TextColumn(ctx.t("tw_measure"), disabled=True),
        **{
            f: st.column_config.TextColumn(column_label(ctx, f), help=ctx.t("tw_level_help"))
            for f in levels
        },
        "phasing": st.column_config.SelectboxColumn(
            ctx.t("tw_phasing"),
            options=profiles,
            help=ctx.t("tw_phasing_help"),
            # The built-in even split in words; a profile of the KPI system by its name.
            format_func=lambda p: ctx.t("tw_phasing_even") if p == "even" else p,
        ),
        "applies": st.column_config.TextColumn(
            ctx.t("tw_applies"), disabled=True, help=ctx.t("tw_applies_help")
        ),
        "valid_from": st.column_config.TextColumn(ctx.t("tw_valid_from"), disabled=True),
        "changed_by": st.column_config.TextColumn(ctx.t("tw_changed_by"), disabled=True),
    }
    editable = shown[shown["editable"]]
    readonly = shown[~shown["editable"]]
    edits: list[planning.TargetEdit] = []
    problems: list[planning.CellProblem] = []
    if not editable.empty:
        out = _editor("targets", editable[visible], config, store)
        edited = base.copy()
        for c in edit_cols:
            if c in out.columns:
                edited[c] = edited[c].astype(object)
                edited.loc[out.index, c] = out[c]
        store["edited"] = edited
        edits, problems = planning.target_edits(ctx.wh, ctx.cat, base, edited)
    if not editable.empty:
        _row_form(
            ctx, "targets", store, keys,
            {f: column_label(ctx, f) for f in [*levels, "phasing"]},
            lambda g: g["unit"].astype(str) + " · " + g["kpi"].astype(str) + " · "
            + g["period"].astype(str),
            choices={"phasing": (profiles, lambda p: ctx.t("tw_phasing_even") if p == "even"
                                 else p or "—")},
        )  # fmt: skip
    if not readonly.empty:
        st.caption(ctx.t("tw_read_only"))
        st.dataframe(
            readonly[visible],
            column_config=config,
            hide_index=True,
            width="stretch",
            placeholder="",
        )
    _conflict_box(ctx, store, reload)
    if editable.empty:
        return
    effective, reason, clicked = _save_form(ctx, "targets", bool(edits))
    if latest_data is not None:
        st.caption(
            ctx.t("tw_data_through", month=i18n.period_label(f"{latest_data:%Y-%m}", ctx.lang))
        )
    problems += planning.check_targets(ctx.wh, ctx.cat, ctx.actor, edits, effective)
    _changes_table(ctx, base, edits, problems)
    if clicked:
        _save(ctx, "targets", planning.save_target_grid, store, load, keys, reason, effective)


def _changes_table(
    ctx: PageContext,
    base: pd.DataFrame,
    edits: list[planning.TargetEdit],
    problems: list[planning.CellProblem],
) -> None:
    """Every changed cell with old → new and its check, and every problem at its cell: invalid
    cells are never dropped silently."""
    form = [p for p in problems if p.row is None]
    at_cell: dict[tuple[int, str], list[str]] = {}
    at_row: dict[int, list[str]] = {}
    for p in problems:
        if p.row is None:
            continue
        text = error_text(ctx, p.message)
        if p.column in base.columns and p.column in [*planning.LEVELS, "phasing"]:
            at_cell.setdefault((p.row, p.column), []).append(text)
        else:
            at_row.setdefault(p.row, []).append(f"{column_label(ctx, p.column)}: {text}")
    rows = []
    shown_cells = set()
    for e in edits:
        kpi = ctx.cat.kpis[e.kpi_id]
        for f in e.changed:
            shown_cells.add((e.row, f))
            notes = at_cell.get((e.row, f), []) + at_row.get(e.row, [])
            rows.append(
                {
                    ctx.t("tw_where"): f"{base.at[e.row, 'unit']} · {base.at[e.row, 'kpi']} · "
                    f"{base.at[e.row, 'period']}",
                    ctx.t("tw_field"): column_label(ctx, f),
                    ctx.t("tw_old"): _value(e.old[f], kpi, ctx.lang),
                    ctx.t("tw_new"): _value(e.new[f], kpi, ctx.lang),
                    ctx.t("tw_check"): "✗ " + "; ".join(notes) if notes else "✓",
                }
            )
    for (row, column), notes in at_cell.items():
        if (row, column) not in shown_cells:  # a cell that is not a number: no new value
            rows.append(
                {
                    ctx.t("tw_where"): f"{base.at[row, 'unit']} · {base.at[row, 'kpi']} · "
                    f"{base.at[row, 'period']}",
                    ctx.t("tw_field"): column_label(ctx, column),
                    ctx.t("tw_old"): str(base.at[row, column]),
                    ctx.t("tw_new"): "",
                    ctx.t("tw_check"): "✗ " + "; ".join(notes),
                }
            )
    for p in form:
        st.warning(_problem_line(ctx, p))
    if not rows:
        st.caption(ctx.t("tw_no_changes"))
        return
    bad = sum(1 for r in rows if r[ctx.t("tw_check")] != "✓")
    st.markdown(f"**{ctx.t('tw_changes', n=len(rows))}**")
    if bad:
        st.error(ctx.t("tw_fix_first", n=bad))
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")


def _value(v: object, kpi, lang: str) -> str:
    if v is None:
        return "—"
    return planning.level_text(v, kpi, lang) if isinstance(v, float | int) else str(v)


# --- Weights -----------------------------------------------------------------------------------


def weights_section(ctx: PageContext, unit_id: int, year: int) -> None:
    """The weights in force in the selected year (today's month in it, or its nearest month) to
    edit, the versions scheduled after it apart and read-only, and every changed weight old →
    new with its check before saving."""
    keys = GRID_COLUMNS["weights"][0]
    today = clock.today()
    month = planning.weights_month(year, today)

    def load() -> pd.DataFrame:
        return planning.weight_grid(ctx.cat, ctx.actor, unit_id, ctx.lang, month)

    store = _grid("weights", (unit_id, month, ctx.lang), load, keys, ["weight"])

    def reload() -> None:
        _reload(store, load(), keys, _pending(store, keys, ["weight"]))

    _flash(ctx, "weights")
    base, shown = store["base"], _readable_kept(ctx, store)
    if base.empty:
        st.info(ctx.t("tw_no_tree"))
        return
    st.caption(ctx.t("tw_weights_in_force", month=i18n.period_label(f"{month:%Y-%m}", ctx.lang)))
    visible = ["parent_name", "child_name", "weight", "valid_from"]
    config = {
        "parent_name": st.column_config.TextColumn(ctx.t("tw_parent"), disabled=True),
        "child_name": st.column_config.TextColumn(ctx.t("tw_child"), disabled=True),
        "weight": st.column_config.NumberColumn(
            ctx.t("tw_weight_pct"), format="%.2f", help=ctx.t("tw_weight_help")
        ),
        "valid_from": st.column_config.TextColumn(ctx.t("tw_valid_from"), disabled=True),
    }
    editable = shown[shown["editable"]]
    readonly = shown[~shown["editable"]]
    edits: list[planning.WeightEdit] = []
    problems: list[planning.CellProblem] = []
    left, right = st.columns([3, 2])
    with left:
        if not editable.empty:
            out = _editor("weights", editable[visible], config, store)
            edited = base.copy()
            edited.loc[out.index, "weight"] = pd.to_numeric(out["weight"], errors="coerce")
            store["edited"] = edited
            edits, problems = planning.weight_edits(base, edited)
        if not editable.empty:

            def weight(column: str, text: str) -> float:
                try:
                    return float(text.strip().rstrip("%").replace(",", ""))
                except ValueError:
                    raise ValueError(ctx.t("tw_row_not_a_number", text=text)) from None

            _row_form(
                ctx, "weights", store, keys, {"weight": ctx.t("tw_weight_pct")},
                lambda g: g["parent_name"].astype(str) + " → " + g["child_name"].astype(str),
                parse=weight,
            )  # fmt: skip
        if not readonly.empty:
            st.caption(ctx.t("tw_read_only"))
            st.dataframe(readonly[visible], column_config=config, hide_index=True)
    with right:
        current = store.get("edited") if store.get("edited") is not None else base
        sums = planning.weight_sums(current)
        st.markdown(f"**{ctx.t('tw_sums')}**")
        st.dataframe(
            pd.DataFrame(
                {
                    ctx.t("tw_parent"): sums["parent_name"],
                    ctx.t("tw_sum"): [f"{s:g}" if pd.notna(s) else "—" for s in sums["sum"]],
                    ctx.t("tw_check"): [
                        "✓ 100" if ok else "✗ " + ctx.t("tw_not_100") for ok in sums["ok"]
                    ],
                }
            ),
            hide_index=True,
            width="stretch",
        )
    scheduled = planning.scheduled_weights(ctx.cat, ctx.actor, unit_id, ctx.lang, month)
    _scheduled_list(ctx, scheduled)
    _conflict_box(ctx, store, reload)
    if editable.empty:
        return
    effective, reason, clicked = _save_form(
        ctx, "weights", bool(edits), default=max(month_of(today), date(year, 1, 1))
    )
    problems += planning.check_weights(ctx.wh, ctx.actor, edits, effective)
    if store.get("edited") is not None:
        _weight_changes_table(ctx, base, store["edited"], problems)
    if effective is not None:
        _overridden(ctx, scheduled, edits, month_of(effective))
    if clicked:
        _save(ctx, "weights", planning.save_weight_grid, store, load, keys, reason, effective)


def _weights_text(ctx: PageContext, group: pd.DataFrame) -> str:
    sep = "、" if ctx.lang == "zh" else ", "
    return sep.join(f"{r.child_label} {r.weight:g}" for r in group.itertuples())


def _scheduled_list(ctx: PageContext, scheduled: pd.DataFrame) -> None:
    """Versions that take effect later: read-only, one line per parent and start month."""
    if scheduled.empty:
        return
    st.markdown(f"**{ctx.t('tw_weights_scheduled_title')}**")
    lines = [
        "- "
        + ctx.t(
            "tw_weights_scheduled",
            date=_since(ctx, start),
            parent=group["parent_name"].iloc[0],
            weights=_weights_text(ctx, group),
        )
        for (_, start, _), group in scheduled.groupby(
            ["parent", "valid_from", "version"], sort=False
        )
    ]
    st.markdown("\n".join(lines))


def _overridden(
    ctx: PageContext, scheduled: pd.DataFrame, edits: list[planning.WeightEdit], start: date
) -> None:
    """A save from `start` is the latest decision for every month after it: a version
    scheduled later for the same parent would never take effect. Say so before saving."""
    edited = {e.parent for e in edits}
    later = scheduled[scheduled["parent"].isin(edited)]
    for (_, valid_from), group in later.groupby(["parent", "valid_from"], sort=False):
        if valid_from is not None and valid_from >= start:
            st.warning(
                ctx.t(
                    "tw_weights_overrides",
                    parent=group["parent_name"].iloc[0],
                    date=_since(ctx, valid_from),
                )
            )


def _weight_changes_table(
    ctx: PageContext,
    base: pd.DataFrame,
    edited: pd.DataFrame,
    problems: list[planning.CellProblem],
) -> None:
    """Every changed weight old → new with its check, as the targets tab lists its cells; the
    problems of a parent's group (its sum, a closed month, scope) on each of its rows."""
    form = [p for p in problems if p.row is None]
    for p in form:
        st.warning(_problem_line(ctx, p))
    changes = planning.weight_changes(base, edited)
    if changes.empty:
        st.caption(ctx.t("tw_no_changes"))
        return
    own: dict[int, list[str]] = {}
    group: dict[str, list[str]] = {}
    for p in problems:
        if p.row is None:
            continue
        text = f"{p.where}: {error_text(ctx, p.message)}" if p.where else error_text(ctx, p.message)
        if p.column == "weight" and p.where:  # an empty or negative cell: its own row
            own.setdefault(p.row, []).append(error_text(ctx, p.message))
        else:
            group.setdefault(str(base.at[p.row, "parent"]), []).append(text)
    rows = []
    for c in changes.itertuples():
        notes = own.get(c.row, []) + group.get(c.parent, [])
        rows.append(
            {
                ctx.t("tw_where"): f"{c.parent_name} → {c.child_label}",
                ctx.t("tw_old"): f"{c.old:g}",
                ctx.t("tw_new"): "—" if pd.isna(c.new) else f"{c.new:g}",
                ctx.t("tw_check"): "✗ " + "; ".join(notes) if notes else "✓",
            }
        )
    bad = sum(1 for r in rows if r[ctx.t("tw_check")] != "✓")
    st.markdown(f"**{ctx.t('tw_changes', n=len(rows))}**")
    if bad:
        st.error(ctx.t("tw_fix_first", n=bad))
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")


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
    hist = planning.target_history(ctx.wh, ctx.cat, ctx.actor, kpi_id, uid, ctx.lang)
    st.markdown(f"**{ctx.t('tw_target_versions')}**")
    if hist.empty:
        st.caption(ctx.t("tw_no_versions"))
    else:
        shown = hist.sort_values(["period_start", "grain", "version"], ascending=False)
        shown = shown.assign(valid_from=[_since(ctx, d) for d in shown["valid_from"]])
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
            valid_from=[_since(ctx, d) for d in weights["valid_from"]],
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
    _flash(ctx, "revert")
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
    effective, reason, clicked = _save_form(ctx, "revert", True, "tw_revert_button")
    if clicked:
        row = older.loc[pick]
        edit = planning.revert_edit(
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
            st.error(ctx.t("tw_conflict", text=error_text(ctx, str(exc))))
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


def _field(ctx: PageContext, field: object) -> object:
    """An audit row's field in the page's words; a word without a label, with spaces."""
    if not isinstance(field, str):
        return field
    if field in _LEVEL_KEYS:
        return column_label(ctx, field)
    for key in (f"tw_field_{field}", f"lib_field_{field}"):
        if i18n.known(key):
            return ctx.t(key)
    return field.replace("_", " ")


def _word(ctx: PageContext, value: object) -> object:
    """An old/new value that is one of the core's words (a sign-in's method, a batch's status)
    in the page's words; anything else as it is."""
    key = f"tw_word_{value}"
    return ctx.t(key) if isinstance(value, str) and i18n.known(key) else value


def _entity(ctx: PageContext, entity: str) -> str:
    key = f"tw_entity_{entity}"
    return ctx.t(key) if i18n.known(key) else entity


def year_options(ctx: PageContext) -> list[int]:
    """Years with targets or data, and the next one (targets are set before the year starts)."""
    years = set(planning.data_years(ctx.wh)) | {clock.today().year, clock.today().year + 1}
    return sorted(years, reverse=True)
