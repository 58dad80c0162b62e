"""The panels an intake of either kind goes through, shared by the Upload page and the Sources
page (DESIGN.md §6): the validation report, the KPI bindings, the preview, the commit panel,
and the history with roll-back. Nothing is written before the analyst clicks.
"""

from __future__ import annotations

import hashlib

import pandas as pd
import streamlit as st

from kpi_core import i18n, service
from kpi_core.catalog import Catalog
from kpi_core.ingest import batches, intake
from kpi_core.ingest.layout import Finding
from kpi_core.ingest.names import Names
from kpi_core.messages import Message
from kpi_core.texts import N_
from kpi_core.ui import PageContext
from kpi_core.ui.boundary import guard
from kpi_core.ui.intake_frames import (
    CHANGES,
    COUNTS,
    LEVEL_ICON,
    SEVERITIES,
    diff_frame,
    effects_frame,
    findings_frame,
    history_frame,
    in_order,
    kpi_text,
    said,
    turns_text,
)
from kpi_core.ui.widgets import md

# Previews held in the session, one per page; a roll-back or a closed month makes them stale.
HELD = ("up_intake", "src_intake")


# The `KEY_pull` strings `say` picks for a database pull, written out for extraction.
_PULL_KEYS = (
    N_("up_already_loaded_pull"), N_("up_commit_blocked_pull"), N_("up_has_errors_pull"),
    N_("up_source_is_pull"), N_("up_turns_none_pull"),
)  # fmt: skip


def say(ctx: PageContext, it: intake.Intake, key: str, **values: object) -> str:
    """A string of the report in the words of the intake's kind: "the file" for an upload,
    "the pull" for a database source (a `KEY_pull` string, where one is needed)."""
    pulled = f"{key}_pull"  # one of _PULL_KEYS
    return ctx.t(pulled if it.kind == "pull" and i18n.known(pulled) else key, **values)


def kept(name: str, key: object, build):
    """One derived value in the session, rebuilt when its key changes."""
    held = st.session_state.get(name)
    if held is None or held[0] != key:
        held = (key, build())
        st.session_state[name] = held
    return held[1]


def step_text(ctx: PageContext, step: Message) -> str:
    """The core's progress steps (an upload's or a pull's, coded messages) in the page's
    language."""
    return step.render(ctx.lang)


# Keys built below as "up_count_…" / "up_sev_…", written out so that extraction finds them.
_UP_COUNT_KEYS = (
    N_("up_count_changed"),
    N_("up_count_invalid"),
    N_("up_count_new"),
    N_("up_count_removed"),
    N_("up_count_unchanged"),
    N_("up_sev_error"),
    N_("up_sev_info"),
    N_("up_sev_warning"),
)


def report(ctx: PageContext, it: intake.Intake, tag: str, *, hint: str | None = None) -> None:
    """The validation report: counts, a verdict, and the problems by place, filterable by
    severity. `hint` is said when nothing loadable was found."""
    st.subheader(ctx.t("up_report"))
    counts = it.counts
    for col, key in zip(st.columns(len(COUNTS)), COUNTS, strict=True):
        col.metric(ctx.t(f"up_count_{key}"), f"{counts[key]:,}", border=True)
    errors, warnings = len(it.errors), len(it.warnings)
    if errors:
        st.error(say(ctx, it, N_("up_has_errors"), errors=errors, warnings=warnings))
    elif warnings:
        st.warning(ctx.t("up_has_warnings", warnings=warnings))
    else:
        st.success(ctx.t("up_no_problems"))
    if not len(it.rows) and hint:
        st.info(hint)
    if not it.findings:
        return
    n = {s: sum(f.severity == s for f in it.findings) for s in SEVERITIES}
    present = [s for s in SEVERITIES if n[s]]
    shown = st.pills(
        ctx.t("up_severity_filter"),
        present,
        selection_mode="multi",
        default=present,
        format_func=lambda s: f"{LEVEL_ICON[s]} {ctx.t('up_sev_' + s)} ({n[s]:,})",
        key=f"up_sev_{tag}",
    )
    chosen = in_order([f for f in it.findings if f.severity in (shown or [])])
    st.caption(ctx.t("up_pick_finding"))
    picked = st.dataframe(
        findings_frame(chosen, ctx.lang),
        hide_index=True,
        placeholder="—",
        width="stretch",
        on_select="rerun",
        selection_mode="single-row",
        key=f"up_findings_{tag}",
        column_config={
            ctx.t("up_col_severity"): st.column_config.TextColumn(width=80),
            # The problem is the long text to read; the file is named above the report too.
            ctx.t("up_col_file"): st.column_config.TextColumn(width=150),
            ctx.t("up_col_row"): st.column_config.NumberColumn(width=55),
            ctx.t("up_col_message"): st.column_config.TextColumn(width=420),
            ctx.t("up_col_hint"): st.column_config.TextColumn(width="large"),
        },
    )
    rows = picked.selection.rows if picked else []
    if chosen:
        # A grid cell never wraps: the picked problem (else the first) is told in full below it.
        finding_details(ctx, chosen[rows[0] if rows and rows[0] < len(chosen) else 0])


def finding_details(ctx: PageContext, f: Finding) -> None:
    """One problem in full, wrapped: where it is, what is wrong and what to do."""
    lang = ctx.lang
    place = [said(f.file, lang), f.sheet]
    if f.row is not None:
        place.append(ctx.t("up_detail_row", row=f.row))
    if f.column:
        place.append(ctx.t("up_detail_column", column=said(f.column, lang)))
    with st.container(border=True):
        st.markdown(
            f"**{LEVEL_ICON[f.severity]} {ctx.t('up_level_' + f.severity)}** · "
            + " · ".join(md(p) for p in place if p)
        )
        colon = "：" if lang == "zh" else ": "
        st.markdown(f"**{ctx.t('up_col_message')}**{colon}{md(said(f.message, lang))}")
        if f.hint:
            st.markdown(f"**{ctx.t('up_col_hint')}**{colon}{md(said(f.hint, lang))}")


# Keys built below as "up_bind_…" / "up_bind_how_…", written out so that extraction finds them.
_UP_BIND_KEYS = (
    N_("up_bind_ambiguous"),
    N_("up_bind_formula"),
    N_("up_bind_how_"),
    N_("up_bind_how_analyst"),
    N_("up_bind_how_code"),
    N_("up_bind_how_name"),
    N_("up_bind_how_profile"),
    N_("up_bind_how_source"),
    N_("up_bind_no unit"),
    N_("up_bind_not on tree"),
    N_("up_bind_ok"),
    N_("up_bind_unknown"),
)


def bindings_frame(it: intake.Intake, cat: Catalog, lang: str) -> pd.DataFrame:
    """Every binding of a KPI to a column or KPI text, problems first."""
    rows = sorted(it.bindings, key=lambda b: b.problem == "")

    def t(key: str) -> str:
        return i18n.t(key, lang)

    def kpi(b) -> str:
        k = cat.kpi_by_code.get(b.kpi)
        return f"{k.code} · {k.name(lang)}" if k else "—"

    def place(b) -> str:
        sheet = f" / {b.sheet}" if b.sheet and b.sheet != b.file else ""
        return f"{said(b.file, lang)}{sheet} · {said(b.column, lang)}"

    return pd.DataFrame(
        {
            t("up_bind_col_place"): [place(b) for b in rows],
            t("up_bind_col_text"): [b.text for b in rows],
            t("up_bind_col_kpi"): [kpi(b) for b in rows],
            t("up_bind_col_how"): [t("up_bind_how_" + b.how) for b in rows],
            t("up_bind_col_units"): [i18n.join(list(b.units), lang) for b in rows],
            t("up_bind_col_values"): [b.values for b in rows],
            t("up_bind_col_status"): [t("up_bind_" + (b.problem or "ok")) for b in rows],
        }
    )


def bindings_section(ctx: PageContext, it: intake.Intake, answers: dict | None = None) -> None:
    """Which KPI each column feeds and how that was decided, before anything is loaded: no
    value goes in by a match the analyst did not see. With `answers` (the Upload page), a
    binding in question — a name several KPIs share, a KPI off the unit's tree, an unknown
    text — is answered by choosing its KPI; the files are then checked again."""
    if not it.bindings:
        return
    st.subheader(ctx.t("up_bindings"))
    st.caption(ctx.t("up_bindings_caption"))
    bad = sum(1 for b in it.bindings if b.problem)
    if bad:
        st.warning(ctx.t("up_bindings_problems", n=bad))
    st.dataframe(
        bindings_frame(it, ctx.cat, ctx.lang),
        hide_index=True,
        placeholder="—",
        width="stretch",
        column_config={
            ctx.t("up_bind_col_place"): st.column_config.TextColumn(width=260),
            ctx.t("up_bind_col_values"): st.column_config.NumberColumn(width=80),
            ctx.t("up_bind_col_status"): st.column_config.TextColumn(width="medium"),
        },
    )
    if answers is None:
        return
    asked = [b for b in it.bindings
             if b.problem in ("ambiguous", "not on tree", "unknown") or b.how == "analyst"]  # fmt: skip
    if not asked:
        return
    st.markdown(f"**{ctx.t('up_bind_ask')}**")
    for b in asked:
        options = _kpi_options(ctx.cat, b)
        wkey = "up_bind_" + hashlib.sha256(repr(b.key).encode()).hexdigest()[:12]
        current = answers.get(b.key)
        st.selectbox(
            ctx.t("up_bind_choose", place=f"{b.sheet} · {said(b.column, ctx.lang)}", text=b.text),
            options,
            index=options.index(current) if current in options else None,
            format_func=lambda c: kpi_text(ctx.cat, ctx.cat.kpi_by_code[c].id, ctx.lang),
            placeholder=ctx.t("up_bind_placeholder"),
            key=wkey,
            on_change=_answer,
            args=(answers, b.key, wkey),
        )


def _answer(answers: dict, key: tuple, widget: str) -> None:
    code = st.session_state.get(widget)
    if code:
        answers[key] = code
    else:
        answers.pop(key, None)


def _kpi_options(cat: Catalog, b) -> list[str]:
    """The KPIs to choose from: those the text could mean, the units' own, then the rest."""
    first = [k.code for k in Names(cat).kpi_match(b.text).kpis]
    units = {cat.unit_by_code[u].id for u in b.units if u in cat.unit_by_code}
    own = [cat.kpis[e.child_kpi].code for e in sorted(cat.edges, key=lambda e: e.sort_order)
           if e.child_unit in units and e.child_kpi in cat.kpis]  # fmt: skip
    rest = sorted(k.code for k in cat.kpis.values() if k.aggregation != "formula")
    return list(dict.fromkeys([*first, *own, *rest]))


def preview(ctx: PageContext, it: intake.Intake, tag: str) -> None:
    """What loading would change (old → new, removed), and the status lights that change."""
    counts = it.counts
    present = [c for c in CHANGES if counts[c]]
    if not present:
        return
    st.subheader(ctx.t("up_preview"))
    if present == ["unchanged"]:
        st.info(ctx.t("up_no_changes"))
    shown = st.pills(
        ctx.t("up_change_filter"),
        present,
        selection_mode="multi",
        default=[c for c in present if c != "unchanged"],
        format_func=lambda c: f"{ctx.t('up_change_' + c)} ({counts[c]:,})",
        key=f"up_chg_{tag}",
    )
    if shown:
        # Formatting every value takes a while on a big upload; once per intake and language.
        full = kept(
            f"{it.kind}_diff_view",
            (tag, ctx.lang),
            lambda: diff_frame(it, ctx.cat, ctx.lang, CHANGES),
        )
        labels = {ctx.t("up_change_" + c) for c in shown}
        st.dataframe(
            full[full[ctx.t("up_col_change")].isin(labels)],
            hide_index=True,
            placeholder="—",
            width="stretch",
        )
    st.markdown(f"**{ctx.t('up_lights')}**")
    turns = it.turns()
    if not turns:
        st.caption(say(ctx, it, N_("up_turns_none")))
        return
    st.markdown(turns_text(turns, ctx.lang))
    st.dataframe(
        effects_frame(it, ctx.cat, ctx.lang), hide_index=True, placeholder="—", width="stretch"
    )


def commit_panel(
    ctx: PageContext, it: intake.Intake, tag: str, *, key: str
) -> intake.Committed | None:
    """The confirmation (when some values are invalid) and the button that loads the intake as
    one batch. What was committed once clicked and done; else None (a refusal is shown)."""
    st.subheader(ctx.t("up_commit"))
    valid = len(it.rows)
    accepted = True
    if not valid:
        st.warning(ctx.t("up_nothing_valid"))
    elif it.errors:
        accepted = st.checkbox(
            ctx.t("up_accept_invalid", valid=f"{valid:,}", invalid=f"{it.invalid:,}"),
            key=f"up_accept_{tag}",
        )
    clicked = st.button(
        ctx.t("up_commit_button"),
        type="primary",
        icon=":material/upload:",
        disabled=not valid or not accepted,
        key=key,
    )
    if valid and not accepted:
        st.caption(say(ctx, it, N_("up_commit_blocked")))
    if not clicked:
        return None
    with guard(ctx, "up_unexpected"):
        return service.commit_actuals(
            ctx.wh, it, ctx.actor, accept_invalid=bool(it.errors) and accepted
        )
    return None


def done_message(ctx: PageContext, it: intake.Intake, done: intake.Committed) -> tuple[str, str]:
    """What a commit did, as (st function name, text): a new batch, or nothing changed."""
    if done.batch_id is None:
        return "info", say(ctx, it, N_("up_already_loaded"))
    counts = {k: f"{v:,}" for k, v in done.counts.items()}  # 99,513 as on the metrics above
    return "success", ctx.t("up_committed", batch=done.batch_id, **counts)


# --- 5: history and roll-back ----------------------------------------------------------------


# `history_section(prefix=…)` says "{prefix}_no_history": the Upload and Sources pages'.
_NO_HISTORY_KEYS = (N_("up_no_history"), N_("src_no_history"))


def history_section(
    ctx: PageContext, *, prefix: str = "up", kinds: tuple[str, ...] | None = None
) -> None:
    """Batches, newest first, and rolling one back. `kinds` keeps batches of those kinds only
    (the Sources page shows pulls); `prefix` keeps each page's widgets apart."""
    with guard(ctx, "up_unexpected"):
        done = st.session_state.pop(f"{prefix}_rb_done", None)
        if done:
            st.success(done)
        df = batches.history(ctx.wh, ctx.actor)
        if kinds is not None:
            df = df[df["kind"].isin(list(kinds))].reset_index(drop=True)
        if not len(df):
            st.info(ctx.t(f"{prefix}_no_history"))  # one of _NO_HISTORY_KEYS
            return
        # Fits a laptop screen: the columns add up to a little under the page's width.
        widths = {"batch": 40, "when": 115, "who": 60, "kind": 82, "source": 100, "files": 100,
                  "months": 75, "rows": 62, "summary": 170, "status": 66}  # fmt: skip
        st.dataframe(
            history_frame(df, ctx.lang),
            hide_index=True,
            placeholder="—",
            width="stretch",
            column_config={
                ctx.t(f"up_col_{k}"): st.column_config.Column(width=w) for k, w in widths.items()
            },
        )
        _rollback(ctx, df, prefix)


def _rollback(ctx: PageContext, df: pd.DataFrame, prefix: str) -> None:
    st.subheader(ctx.t("up_rollback"))
    st.caption(ctx.t("up_rollback_help"))
    committed = df[df["status"] == "committed"]
    if not len(committed):
        st.info(ctx.t("up_no_rollback"))
        return
    by_id = {int(r.id): r for r in committed.itertuples()}
    key, reason_key = f"{prefix}_rb_batch", f"{prefix}_rb_reason"
    # Set before the widgets are drawn, so what they show and what they return agree. After a
    # load, the new batch is offered; on a first visit, the newest. After a roll-back nothing is
    # selected and the reason is emptied: the next batch is not armed with the last one's reason.
    if st.session_state.pop(f"{prefix}_rb_newest", False) or key not in st.session_state:
        st.session_state[key] = next(iter(by_id))
    if st.session_state.pop(f"{prefix}_rb_clear", False) or st.session_state[key] not in by_id:
        st.session_state[key] = None
        st.session_state[reason_key] = ""

    def label(batch: int) -> str:
        r = by_id[batch]
        when = pd.Timestamp(r.created_at).strftime("%Y-%m-%d %H:%M")
        months = r.months if isinstance(r.months, str) and r.months else ""
        return " · ".join(p for p in (f"#{batch}", str(r.source_name or ""), months, when) if p)

    left, right = st.columns([2, 3])
    batch = left.selectbox(
        ctx.t("up_rollback_batch"),
        list(by_id),
        format_func=label,
        key=key,
        placeholder=ctx.t("up_rollback_pick"),
    )
    reason = right.text_input(
        ctx.t("up_rollback_reason"),
        key=reason_key,
        placeholder=ctx.t("up_rollback_reason_placeholder"),
    )
    pending = f"{prefix}_rb_pending"
    if batch is None:
        st.session_state.pop(pending, None)
        st.button(
            ctx.t("up_rollback_none"), icon=":material/undo:", key=f"{prefix}_rb_ask", disabled=True
        )
        return
    if st.session_state.get(pending) != batch:
        if st.button(
            ctx.t("up_rollback_button", batch=batch),
            icon=":material/undo:",
            key=f"{prefix}_rb_ask",
        ):
            st.session_state[pending] = batch
            st.rerun()
        return
    r = by_id[batch]
    st.warning(
        ctx.t("up_rollback_confirm", batch=batch, source=r.source_name or "—", rows=int(r.rows))
    )
    with st.container(horizontal=True):
        yes = st.button(ctx.t("up_rollback_yes"), type="primary", key=f"{prefix}_rb_yes")
        no = st.button(ctx.t("up_cancel"), key=f"{prefix}_rb_no")
    if no:
        st.session_state.pop(pending, None)
        st.rerun()
    if yes:
        st.session_state.pop(pending, None)
        with guard(ctx, "up_unexpected"):
            got = service.rollback_actuals(ctx.wh, int(batch), ctx.actor, (reason or "").strip())
            for held in HELD:  # a pending preview has moved
                st.session_state.pop(held, None)
            st.session_state[f"{prefix}_rb_done"] = ctx.t("up_rolled_back", batch=batch, **got)
            st.session_state[f"{prefix}_rb_clear"] = True
            st.rerun()
