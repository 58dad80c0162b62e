"""The review panel (复盘): a KPI's comments and actions for a unit and period, and the forms to
add one and to close an action. Used by the Board, Trends and Alerts pages.

Comment text comes from users: it is shown with `st.text` (never Markdown or HTML).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

import pandas as pd
import streamlit as st

from kpi_core import clock, i18n, people, review
from kpi_core.board import Board
from kpi_core.errors import KpiError
from kpi_core.periods import Period, month_of
from kpi_core.texts import N_
from kpi_core.ui import PageContext
from kpi_core.ui.widgets import error_text, md

DUE_IN_DAYS = 14


def _months(period: date | Period, months: Sequence[date] | None) -> list[date]:
    if months:
        return [month_of(m) for m in months]
    return period.months if isinstance(period, Period) else [month_of(period)]


def panel_title(ctx: PageContext, notes: pd.DataFrame) -> str:
    """'Comments and actions (3, 1 open)' for an expander or a heading."""
    n = len(notes)
    open_n = int((notes["state"] == review.OPEN).sum()) if n else 0
    if open_n:
        return ctx.t("rv_panel_open", n=n, open=open_n)
    return ctx.t("rv_panel", n=n)


def comments_panel(
    ctx: PageContext,
    kpi_id: int,
    unit_id: int,
    period: date | Period,
    *,
    months: Sequence[date] | None = None,
    default_month: date | None = None,
    alert_id: int | None = None,
    key: str = "rv",
    notes: pd.DataFrame | None = None,
) -> None:
    """Comments on (KPI, unit) in the months of `period` (or `months`), newest first, with a
    form to add one (heads, analysts and admins in scope) — attached to `default_month` unless
    another month is picked — and a form to close each open action."""
    run = _months(period, months)
    month = month_of(default_month) if default_month else run[-1]
    if flash := st.session_state.pop(f"{key}_flash", None):
        st.success(ctx.t(flash), icon=":material/check:")
    writer = review.can_comment(ctx.actor, unit_id)
    if writer:
        _add_form(ctx, kpi_id, unit_id, run, month, alert_id, key)
    else:
        st.caption(ctx.t("rv_read_only"))
    if notes is None:
        notes = review.comments(
            ctx.wh, ctx.cat, ctx.actor, kpi_id=kpi_id, unit_id=unit_id, start=run[0], end=run[-1]
        )
    if notes.empty:
        st.caption(ctx.t("rv_none"))
        return
    known = people.load(ctx.wh)
    for _, c in notes.iterrows():
        _comment(ctx, c, writer, key, known)


def _add_form(
    ctx: PageContext,
    kpi_id: int,
    unit_id: int,
    run: list[date],
    month: date,
    alert_id: int | None,
    key: str,
) -> None:
    with st.form(f"{key}_add", clear_on_submit=True, border=True):
        st.markdown(f"**{ctx.t('rv_add')}**")
        text = st.text_area(
            ctx.t("rv_text"), max_chars=review.MAX_TEXT, key=f"{key}_text", height=90
        )
        cols = st.columns([1, 2, 1, 1])
        if len(run) > 1:
            chosen = cols[0].selectbox(
                ctx.t("rv_month"),
                run[::-1],
                index=run[::-1].index(month) if month in run else 0,
                format_func=lambda m: i18n.period_label(f"{m:%Y-%m}", ctx.lang),
                key=f"{key}_month",
            )
        else:
            chosen = run[0]
            cols[0].text_input(
                ctx.t("rv_month"),
                i18n.period_label(f"{chosen:%Y-%m}", ctx.lang),
                disabled=True,
                key=f"{key}_month_shown",
            )
        action = cols[1].text_input(
            ctx.t("rv_action"),
            max_chars=review.MAX_SHORT,
            help=ctx.t("rv_action_help"),
            key=f"{key}_action",
        )
        # The users, by display name, the writer first; anybody else can be typed in (stored as
        # text; a typed user's name is stored as the user, review.add_comment).
        known = people.load(ctx.wh)
        users = sorted(known.display, key=lambda u: (u != ctx.actor.name, known.display[u]))
        owner = cols[2].selectbox(
            ctx.t("rv_owner"), users, index=0 if users else None,
            format_func=lambda u: known.display.get(u, u), accept_new_options=True,
            help=ctx.t("rv_owner_help"), key=f"{key}_owner",
        )  # fmt: skip
        due = cols[3].date_input(
            ctx.t("rv_due"), value=clock.today() + timedelta(days=DUE_IN_DAYS), key=f"{key}_due"
        )
        posted = st.form_submit_button(
            ctx.t("rv_submit"), icon=":material/add_comment:", key=f"{key}_submit"
        )
    if not posted:
        return
    # Owner and due date have defaults; they belong to the comment only with an action.
    has_action = bool(action and action.strip())
    try:
        review.add_comment(
            ctx.wh,
            ctx.actor,
            kpi_id,
            unit_id,
            chosen,
            text,
            action=action if has_action else None,
            owner=owner if has_action else None,
            due=due if has_action else None,
            alert_id=alert_id,
        )
    except KpiError as exc:
        st.error(error_text(ctx, exc))
        return
    # Run the page again so every count and marker of this KPI includes the new comment.
    st.session_state[f"{key}_flash"] = N_("rv_added")
    st.rerun()


def _comment(ctx: PageContext, c: pd.Series, writer: bool, key: str, known: people.People) -> None:
    lang = ctx.lang
    with st.container(border=True):
        when = pd.Timestamp(c["created_at"]).strftime("%Y-%m-%d %H:%M")
        month = i18n.period_label(pd.Timestamp(c["period"]).strftime("%Y-%m"), lang)
        head = f"**{md(c['author'])}** · {month} · {when}"
        if pd.notna(c["alert_id"]):
            head += f" · :blue-badge[{ctx.t('rv_alert', id=int(c['alert_id']))}]"
        st.markdown(head)
        st.text(c["text"])
        if pd.isna(c["action"]):
            return
        due = pd.Timestamp(c["due"]).date() if pd.notna(c["due"]) else None
        state = c["state"]
        if state == review.OPEN:
            badge = f":orange-badge[{ctx.t('rv_open')}]"
            if due is not None and due < clock.today():
                badge += f" :red-badge[{ctx.t('rv_overdue')}]"
        else:
            badge = f":green-badge[{ctx.t('rv_closed')}]"
        st.markdown(badge)
        st.text(
            ctx.t(
                "rv_action_line",
                action=c["action"],
                owner=(known.name(c["owner"]) if pd.notna(c["owner"]) else None) or "—",
                due="—" if due is None else f"{due:%Y-%m-%d}",
            )
        )
        if state == review.CLOSED:
            at = pd.Timestamp(c["closed_at"]).strftime("%Y-%m-%d")
            st.caption(ctx.t("rv_closed_by", who=md(known.name(c["closed_by"])), at=at))
            if pd.notna(c["resolution"]):
                st.text(c["resolution"])
        elif writer:
            _close_form(ctx, int(c["id"]), key)


def _close_form(ctx: PageContext, comment_id: int, key: str) -> None:
    form_key = f"{key}_close_{comment_id}"
    with st.form(form_key, clear_on_submit=True, border=False):
        cols = st.columns([4, 1], vertical_alignment="bottom")
        resolution = cols[0].text_input(
            ctx.t("rv_resolution"), max_chars=review.MAX_SHORT, key=f"{form_key}_text"
        )
        done = cols[1].form_submit_button(ctx.t("rv_close"), key=f"{form_key}_submit")
    if done:
        try:
            review.close_action(ctx.wh, ctx.actor, comment_id, resolution)
        except KpiError as exc:
            st.error(error_text(ctx, exc))
            return
        st.session_state[f"{key}_flash"] = N_("rv_closed_ok")
        st.rerun()


def board_counts(
    ctx: PageContext, b: Board, latest: date
) -> dict[tuple[int, int], tuple[int, int]]:
    """(comments, open actions) per KPI node of a Board's tree — its own cards and every KPI of
    the units below it — from one query."""
    months = _board_months(b, latest)
    return review.counts(ctx.wh, ctx.cat, ctx.actor, _board_pairs(b), months[0], months[-1])


def _board_pairs(b: Board) -> list[tuple[int, int]]:
    """The unit's own KPIs first, then those of the units below it in tree order."""
    own = [(line.node.kpi_id, line.node.unit_id) for line in b.lines]
    return list(dict.fromkeys([*own, *((n.kpi_id, n.unit_id) for n in b.matrix)]))


def _board_months(b: Board, latest: date) -> list[date]:
    return [m for m in b.period.months if m <= latest] or b.period.months


def board_panel(
    ctx: PageContext, b: Board, latest: date, counts: dict[tuple[int, int], tuple[int, int]]
) -> None:
    """One expander below the Board's cards: pick a KPI, read and add its comments. Its content
    runs only while it is open, so a closed panel costs the Board nothing."""
    if not b.lines:
        return
    total = sum(n for n, _ in counts.values())
    still_open = sum(o for _, o in counts.values())
    label = (
        ctx.t("rv_panel_open", n=total, open=still_open)
        if still_open
        else ctx.t("rv_panel", n=total)
    )
    box = st.expander(label, icon=":material/forum:", key="board_rv_open", on_change="rerun")
    if not box.open:
        return
    pairs = _board_pairs(b)
    codes = {f"{ctx.cat.units[u].code}/{ctx.cat.kpis[k].code}": (k, u) for k, u in pairs}
    # The ones with open actions first, then with comments: what a head comes here for.
    ranked = sorted(
        codes, key=lambda c: (-counts.get(codes[c], (0, 0))[1], -counts.get(codes[c], (0, 0))[0])
    )

    def name(code: str) -> str:
        k, u = codes[code]
        n, o = counts.get((k, u), (0, 0))
        text = ctx.cat.kpis[k].name(ctx.lang)
        if u != b.unit_id:
            text = ctx.t("tr_of_unit", kpi=text, unit=ctx.cat.units[u].name(ctx.lang))
        if n:
            text += f" · {ctx.t('rv_n', n=n)}"
        if o:
            text += f" · {ctx.t('rv_badge_open', n=o)}"
        return text

    with box:
        by_unit = _by_unit(ctx, b.unit_id, counts)
        if by_unit:
            st.caption(ctx.t("rv_by_unit", units=by_unit))
        if st.session_state.get("board_rv_kpi") not in codes:
            st.session_state.board_rv_kpi = ranked[0]
        chosen = st.selectbox(ctx.t("rv_board_kpi"), ranked, format_func=name, key="board_rv_kpi")
        kpi_id, unit_id = codes[chosen]
        months = _board_months(b, latest)
        comments_panel(
            ctx, kpi_id, unit_id, b.period, months=months, default_month=months[-1], key="board_rv"
        )


def _by_unit(ctx: PageContext, unit_id: int, counts: dict[tuple[int, int], tuple[int, int]]) -> str:
    """'华南大区 1（1 项未完成）· 销售部 2' — where the Board's comments are, by unit."""
    units: dict[int, list[int]] = {}
    for (_, u), (n, o) in counts.items():
        total = units.setdefault(u, [0, 0])
        total[0] += n
        total[1] += o
    order = {u: i for i, u in enumerate(ctx.cat.descendants(unit_id))}
    parts = []
    for u in sorted(units, key=lambda u: order.get(u, 0)):
        n, o = units[u]
        text = ctx.t("rv_unit_count", unit=ctx.cat.units[u].name(ctx.lang), n=n)
        if o:
            text += ctx.t("rv_unit_open", open=o)
        parts.append(text)
    return " · ".join(parts)
