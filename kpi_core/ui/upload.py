"""The Upload page's sections (DESIGN.md §6): load the month's files — check, preview, load —,
the entry template, and closing and publishing months.

The work is in `kpi_core.ingest`; this module draws it. Nothing is written before the analyst
clicks, and no error reaches the screen as a traceback (kpi_core/ui/boundary.py). The panels an
intake goes through, and the history with roll-back, are in `intake_panels` (the Sources page
shows a database pull with them); the frames they show in `intake_frames`; the mapping profiles
in `mapping_editor`.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time

import pandas as pd
import streamlit as st

from kpi_core import clock, completeness, i18n, month_locks
from kpi_core.access import can
from kpi_core.actuals import data_range
from kpi_core.catalog import SCORECARD
from kpi_core.errors import KpiError, WarehouseBusyError
from kpi_core.ingest import files, intake, profile, template
from kpi_core.messages import Message
from kpi_core.texts import N_
from kpi_core.ui import PageContext
from kpi_core.ui.boundary import guard
from kpi_core.ui.intake_frames import digest, month_options
from kpi_core.ui.intake_panels import (
    HELD,
    bindings_section,
    commit_panel,
    done_message,
    preview,
    report,
    step_text,
)
from kpi_core.ui.widgets import error_text, md, parts_text

log = logging.getLogger(__name__)


TYPES = ("xlsx", "xlsm", "xls", "csv", "parquet")


# --- 1-4: upload, validation report, preview, load -------------------------------------------


def load_section(ctx: PageContext) -> list[tuple[str, bytes]]:
    """The uploader and everything that follows from it; returns the uploaded files."""
    names = profile.names(ctx.wh)
    wanted = st.session_state.pop("up_profile_next", None)
    if wanted in names:
        st.session_state.up_profile = wanted
    if st.session_state.get("up_profile") not in [None, *names]:
        st.session_state.up_profile = None
    left, right = st.columns([3, 2], gap="large")
    with left:
        uploaded = st.file_uploader(
            ctx.t("up_files"),
            type=list(TYPES),
            accept_multiple_files=True,
            key=f"up_files_{st.session_state.get('up_generation', 0)}",
            help=ctx.t("up_files_help"),
            # The core's own limit (KPI_MAX_UPLOAD_MB), so the drop zone says the true one.
            max_upload_size=max(1, math.ceil(files.Limits.configured().max_bytes / 2**20)),
        )
        if ctx.lang == "zh":
            # Streamlit 1.67 draws the drop zone's words in English and takes no text for them.
            st.caption(
                ctx.t(
                    "up_files_zone",
                    mb=max(1, math.ceil(files.Limits.configured().max_bytes / 2**20)),
                )
            )
    with right:
        # One widget per language: a selectbox keeps showing the label it was first drawn
        # with ("None (detect the layout)" on the Chinese page). `up_profile` is the choice
        # itself, which each language's widget starts from.
        shown = f"up_profile_{ctx.lang}"
        if st.session_state.get("up_profile") is None:
            st.session_state.pop(shown, None)  # to a selectbox None is "nothing chosen"
        else:
            st.session_state[shown] = st.session_state.up_profile
        chosen = st.selectbox(
            ctx.t("up_profile"),
            [None, *names],
            format_func=lambda n: ctx.t("up_profile_auto") if n is None else n,
            key=shown,
            on_change=lambda: st.session_state.update(up_profile=st.session_state[shown]),
            help=ctx.t("up_profile_help"),
        )
        default = chosen or ", ".join(sorted(f.name for f in uploaded or [])) or "—"
        source = st.text_input(
            ctx.t("up_source"),
            key="up_source",
            placeholder=ctx.t("up_source_placeholder", default=default),
            help=ctx.t("up_source_help"),
        )
    if not uploaded:
        st.session_state.pop("up_intake", None)
        done = st.session_state.get("up_done")
        if done:
            getattr(st, done[0])(done[1])
        else:
            st.info(ctx.t("up_drop_hint"))
        return []
    st.session_state.pop("up_done", None)
    uploads = [(f.name, f.getvalue()) for f in uploaded]
    # The analyst's answers (a KPI per column) hold for these files only.
    files_digest = digest(uploads)
    answers = st.session_state.get("up_answers")
    if answers is None or answers[0] != files_digest:
        answers = st.session_state.up_answers = (files_digest, {})
    key = (files_digest, chosen or "", (source or "").strip(), tuple(sorted(answers[1].items())))
    held = st.session_state.get("up_intake")
    if held is None or held[0] != key:
        held = (
            key,
            *_prepare(ctx, uploads, chosen, (source or "").strip() or None, dict(answers[1])),
        )
        st.session_state.up_intake = held
    else:
        _, it, error, seconds = held
        st.status(
            ctx.t("up_check_failed")
            if error
            else ctx.t("up_checked", n=len(uploads), seconds=seconds),
            state="error" if error else "complete",
        )
    _, it, error, _ = held
    if error:
        st.error(error_text(ctx, error))  # held as the core said it; shown in ctx.lang
        return uploads
    st.markdown(ctx.t("up_source_is", source=md(it.source)))
    # Widgets of this intake have keys of their own: another file or profile starts afresh.
    tag = hashlib.sha256(repr(key).encode()).hexdigest()[:12]
    report(ctx, it, tag, hint=None if chosen else ctx.t("up_nothing_found_hint"))
    bindings_section(ctx, it, answers=answers[1])
    preview(ctx, it, tag)
    done = commit_panel(ctx, it, tag, key="up_commit")
    if done is not None:
        st.session_state.up_done = done_message(ctx, it, done)
        st.session_state.pop("up_intake", None)
        st.session_state.up_rb_newest = True  # the roll-back picker offers the new batch
        # A new uploader key empties it: the file is loaded, the page is ready for the next one.
        st.session_state.up_generation = st.session_state.get("up_generation", 0) + 1
        st.rerun()
    return uploads


def _prepare(ctx: PageContext, uploads, mapping: str | None, source: str | None, choices=None):
    """Run the checks with a progress bar: (intake or None, error message or None, seconds)."""
    started = time.monotonic()
    n = len(uploads)
    with st.status(ctx.t("up_checking", n=n), expanded=True) as status:
        bar = st.progress(0.0, text=ctx.t("up_checking", n=n))

        def progress(fraction: float, step: Message) -> None:
            bar.progress(min(max(float(fraction), 0.0), 1.0), text=step_text(ctx, step))

        error = None
        it = None
        try:
            it = intake.prepare(
                ctx.wh,
                uploads,
                ctx.actor,
                mapping=mapping,
                source=source,
                progress=progress,
                choices=choices or None,
            )
        except WarehouseBusyError:
            error = ctx.t("warehouse_busy")
        except KpiError as exc:
            error = exc.said()  # a coded message is rendered in the language shown
        except Exception as exc:
            log.exception("preparing an upload")
            error = ctx.t("up_unexpected", error=f"{type(exc).__name__}: {exc}")
        seconds = time.monotonic() - started
        if error:
            status.update(label=ctx.t("up_check_failed"), state="error", expanded=False)
        else:
            status.update(
                label=ctx.t("up_checked", n=n, seconds=seconds), state="complete", expanded=False
            )
    return it, error, seconds


# --- 6: the entry template -------------------------------------------------------------------


def template_section(ctx: PageContext) -> None:
    st.caption(ctx.t("up_template_help"))
    with guard(ctx, "up_unexpected"):
        units = [u for r in ctx.cat.scope_roots(ctx.actor.scope) for u in ctx.cat.descendants(r)]
        if not units:
            return
        span = data_range(ctx.wh, ctx.actor.scope, ctx.cat)
        months, default = month_options(span[1] if span else None, clock.today())
        root_depth = min(len(ctx.cat.ancestors(u)) for u in units)
        left, right = st.columns(2)
        unit_id = left.selectbox(
            ctx.t("unit"),
            units,
            format_func=lambda u: (
                "\u2003" * (len(ctx.cat.ancestors(u)) - root_depth)
                + f"{ctx.cat.units[u].code} · {ctx.cat.units[u].name(ctx.lang)}"
            ),
            key="up_tpl_unit",
        )
        month = right.selectbox(
            ctx.t("up_template_month"),
            months,
            index=months.index(default),
            format_func=lambda m: i18n.period_label(f"{m:%Y-%m}", ctx.lang),
            key="up_tpl_month",
        )
        unit = ctx.cat.units[unit_id]
        shown_month = i18n.period_label(f"{month:%Y-%m}", ctx.lang)
        rows = template.template_rows(ctx.wh, ctx.cat, ctx.actor.scope, unit.code, month)
        if not rows:
            st.info(ctx.t("up_template_empty", unit=unit.name(ctx.lang), month=shown_month))
            return
        cat, scope, lang = ctx.cat, ctx.actor.scope, ctx.lang
        wh = ctx.wh
        st.download_button(
            ctx.t("up_template_download"),
            # Built when clicked, not on every run of the page.
            data=lambda: template.build_template(wh, cat, scope, unit.code, month, lang),
            file_name=f"kpi_template_{unit.code}_{month:%Y-%m}.xlsx",
            mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            icon=":material/download:",
            type="primary",
            on_click="ignore",
            key="up_tpl_download",
        )
        st.caption(
            ctx.t("up_template_rows", n=len(rows), unit=unit.name(ctx.lang), month=shown_month)
        )
        st.dataframe(
            pd.DataFrame(
                {
                    ctx.t("up_col_unit"): [f"{r.unit.code} · {r.unit.name(lang)}" for r in rows],
                    ctx.t("up_col_kpi"): [f"{r.kpi.code} · {r.kpi.name(lang)}" for r in rows],
                    ctx.t("target"): [i18n.format_value(r.target, r.kpi, lang) for r in rows],
                }
            ),
            hide_index=True,
            placeholder="—",
            width="stretch",
        )


# --- 8: closing months (admins) and publishing them (analysts and admins) ---------------------


def months_section(ctx: PageContext) -> None:
    done = st.session_state.pop("up_lock_done", None)
    if done:
        st.success(done)
    publish_section(ctx)
    if not can(ctx.actor, "close_months"):
        return
    st.subheader(ctx.t("up_close_title"))
    st.caption(ctx.t("up_months_help"))
    with guard(ctx, "up_unexpected"):
        closed = month_locks.closed_months(ctx.wh)
        label = ", ".join(i18n.period_label(f"{m:%Y-%m}", ctx.lang) for m in closed)
        st.markdown(ctx.t("up_months_closed", months=label) if closed else ctx.t("up_months_none"))
        span = data_range(ctx.wh, ctx.actor.scope, ctx.cat)
        today = clock.today()
        months, _ = month_options(span[1] if span else None, today)
        months = sorted(set(months) | set(closed), reverse=True)
        latest = span[1].replace(day=1) if span else today.replace(day=1)
        month = st.selectbox(
            ctx.t("up_month_pick"),
            months,
            index=months.index(latest) if latest in months else 0,
            format_func=lambda m: (
                i18n.period_label(f"{m:%Y-%m}", ctx.lang) + (" 🔒" if m in closed else "")
            ),
            key="up_lock_month",
            width=320,
        )
        shut = month in closed
        if st.button(
            ctx.t("up_month_reopen" if shut else "up_month_close"),
            icon=":material/lock_open:" if shut else ":material/lock:",
            key="up_lock_button",
        ):
            month_locks.lock_month(ctx.wh, month, ctx.actor, locked=not shut)
            for held in HELD:  # check the upload or the pull again against the locks
                st.session_state.pop(held, None)
            shown = i18n.period_label(f"{month:%Y-%m}", ctx.lang)
            st.session_state.up_lock_done = ctx.t(
                "up_month_reopened" if shut else "up_month_closed", month=shown
            )
            st.rerun()


def publish_section(ctx: PageContext) -> None:
    """Mark a unit's month published (final, whatever is missing) or withdraw that; the state
    of the month picked is shown first, with what it lacks."""
    st.subheader(ctx.t("up_publish_title"))
    st.caption(ctx.t("up_publish_help"))
    with guard(ctx, "up_unexpected"):
        lang, cat = ctx.lang, ctx.cat
        done = completeness.published_months(ctx.wh, cat, ctx.actor.scope)
        listed = [
            f"{cat.units[u].name(lang)} {i18n.period_label(f'{m:%Y-%m}', lang)}" for m, u in done
        ]
        st.markdown(
            ctx.t("up_published_list", items=md(i18n.join(listed, lang, limit=12)))
            if listed
            else ctx.t("up_published_none")
        )
        span = data_range(ctx.wh, ctx.actor.scope, cat)
        if span is None:
            st.info(ctx.t("no_data_yet"))
            return
        units = [u for root in cat.scope_roots(ctx.actor.scope) for u in cat.descendants(root)]
        units = [u for u in units if cat.tree(span[1]).get((u, SCORECARD))] or units
        months, _ = month_options(span[1], clock.today())
        months = [m for m in months if m <= span[1]]
        cols = st.columns(2)
        unit_id = cols[0].selectbox(
            ctx.t("up_publish_unit"),
            units,
            format_func=lambda u: cat.units[u].name(lang),
            key="up_publish_unit",
        )
        month = cols[1].selectbox(
            ctx.t("up_month_pick"),
            months,
            format_func=lambda m: i18n.period_label(f"{m:%Y-%m}", lang),
            key="up_publish_month",
        )
        status = completeness.month_status(ctx.wh, cat, unit_id, month)
        state = i18n.month_state(status.state, status.loaded, status.expected, lang)
        shown = i18n.period_label(f"{month:%Y-%m}", lang)
        name = cat.units[unit_id].name(lang)
        text = ctx.t("up_publish_state", unit=md(name), month=shown, state=state)
        lacking = parts_text(ctx, status)
        st.markdown(f"{text} {md(lacking)}" if lacking and not status.published else text)
        mine = (month, unit_id) in done
        if st.button(
            ctx.t("up_unpublish" if mine else "up_publish"),
            icon=":material/undo:" if mine else ":material/verified:",
            key="up_publish_button",
        ):
            completeness.publish(ctx.wh, cat, ctx.actor, unit_id, month, published=not mine)
            key = N_("up_unpublished_done") if mine else N_("up_published_done")
            st.session_state.up_lock_done = ctx.t(key, unit=name, month=shown)
            st.rerun()
