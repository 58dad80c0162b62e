"""Targets & weights page: the grids edited in place, checked as they are edited, saved with a
reason and an effective date, with history, revert and the change log.

Each grid is kept in the session as it was read (`base`, with the version of every row) and as
it is shown (`shown`: the base with edits carried over). The editor's key changes whenever the
shown data does, so the editor never mixes an old state into new data. What the user changed is
always the difference between the editor's output and `base` — so after a refused save
(somebody else saved first) "reload" reads the grid again and carries the user's edits over
onto it: nothing of either person's work is lost. That shared grid is in `edit_grid`; the
history with revert and the change log in `change_log`.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import streamlit as st

from kpi_core import clock, i18n, planning
from kpi_core.periods import month_of
from kpi_core.ui import PageContext
from kpi_core.ui.edit_grid import (
    column_label,
    conflict_box,
    grid_editor,
    grid_state,
    pending_edits,
    problem_line,
    readable_kept,
    reload_grid,
    row_form,
    save_form,
    save_grid,
    saved_notice,
    since_text,
)
from kpi_core.ui.widgets import error_text

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
    reload_grid(store, store["base"], keys, pending_edits(store, keys, edit_cols))
    if conflict is not None:
        store["conflict"] = conflict


def targets_section(
    ctx: PageContext, unit_id: int, year: int, grain: str, latest_data: date | None = None
) -> None:
    keys, edit_cols = GRID_COLUMNS["targets"]

    def load() -> pd.DataFrame:
        return planning.target_grid(ctx.wh, ctx.cat, ctx.actor, unit_id, year, grain, ctx.lang)

    store = grid_state("targets", (unit_id, year, grain, ctx.lang), load, keys, edit_cols)

    def reload() -> None:
        reload_grid(store, load(), keys, pending_edits(store, keys, edit_cols))

    saved_notice(ctx, "targets")
    base, shown = store["base"], readable_kept(ctx, store)
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
        out = grid_editor("targets", editable[visible], config, store)
        edited = base.copy()
        for c in edit_cols:
            if c in out.columns:
                edited[c] = edited[c].astype(object)
                edited.loc[out.index, c] = out[c]
        store["edited"] = edited
        edits, problems = planning.target_edits(ctx.wh, ctx.cat, base, edited)
    if not editable.empty:
        row_form(
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
    conflict_box(ctx, store, reload)
    if editable.empty:
        return
    effective, reason, clicked = save_form(ctx, "targets", bool(edits))
    if latest_data is not None:
        st.caption(
            ctx.t("tw_data_through", month=i18n.period_label(f"{latest_data:%Y-%m}", ctx.lang))
        )
    problems += planning.check_targets(ctx.wh, ctx.cat, ctx.actor, edits, effective)
    _changes_table(ctx, base, edits, problems)
    if clicked:
        save_grid(ctx, "targets", planning.save_target_grid, store, load, keys, reason, effective)


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
        st.warning(problem_line(ctx, p))
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

    store = grid_state("weights", (unit_id, month, ctx.lang), load, keys, ["weight"])

    def reload() -> None:
        reload_grid(store, load(), keys, pending_edits(store, keys, ["weight"]))

    saved_notice(ctx, "weights")
    base, shown = store["base"], readable_kept(ctx, store)
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
            out = grid_editor("weights", editable[visible], config, store)
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

            row_form(
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
    conflict_box(ctx, store, reload)
    if editable.empty:
        return
    effective, reason, clicked = save_form(
        ctx, "weights", bool(edits), default=max(month_of(today), date(year, 1, 1))
    )
    problems += planning.check_weights(ctx.wh, ctx.actor, edits, effective)
    if store.get("edited") is not None:
        _weight_changes_table(ctx, base, store["edited"], problems)
    if effective is not None:
        _overridden(ctx, scheduled, edits, month_of(effective))
    if clicked:
        save_grid(ctx, "weights", planning.save_weight_grid, store, load, keys, reason, effective)


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
            date=since_text(ctx, start),
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
                    date=since_text(ctx, valid_from),
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
        st.warning(problem_line(ctx, p))
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


def year_options(ctx: PageContext) -> list[int]:
    """Years with targets or data, and the next one (targets are set before the year starts)."""
    years = set(planning.data_years(ctx.wh)) | {clock.today().year, clock.today().year + 1}
    return sorted(years, reverse=True)
