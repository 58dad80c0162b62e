"""Reusable widgets: status badge and KPI card, and texts every page shows the same way."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date

import pandas as pd
import streamlit as st

from kpi_core import completeness, i18n
from kpi_core.board import KpiLine
from kpi_core.errors import KpiError
from kpi_core.messages import Message
from kpi_core.periods import Period
from kpi_core.ui import PageContext

_CJK = re.compile(r"[\u3400-\u9fff]")
_BADGE = {"green": "green", "amber": "orange", "red": "red", "grey": "gray"}


def badge(status: str, lang: str) -> str:
    """Markdown for a status badge: colour, shape and word, so it reads without colour too."""
    return f":{_BADGE[status]}-badge[{i18n.status_label(status, lang)}]"


def missing(value: object) -> bool:
    """None, NaN, pd.NA, NaT or blank text: nothing a user should see as a value."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or an array is a value
        return False


def or_dash(value: object) -> str:
    """A value as text, "—" where it is missing."""
    return "—" if missing(value) else str(value)


def md(text: object) -> str:
    """Text from users (KPI and unit names, comments, files, databases), kept from being read
    as Markdown: no links, images, emphasis or HTML made of it. Missing text is "—"."""
    return "".join("\\" + ch if ch in "\\`*_[]<>#|~:$" else ch for ch in or_dash(text))


def error_text(ctx: PageContext, error: KpiError | Message | str) -> str:
    """A refusal from the core in the page's language (see `refusal_text`)."""
    return refusal_text(ctx.lang, error)


def refusal_text(lang: str, error: KpiError | Message | str) -> str:
    """A refusal or problem from the core in `lang`: a coded message rendered from the
    catalogs. Words from outside (a database's or a library's own, which no catalog can know)
    are shown as they are, under a line that says whose words they are."""
    if isinstance(error, Message):
        return error.render(lang)
    if isinstance(error, KpiError) and error.coded is not None:
        return error.text(lang)
    text = str(error)
    if lang == "zh" and not _CJK.search(text):
        return i18n.t("up_said_in_english", lang, text=text)
    return text


def kpi_card(
    ctx: PageContext,
    line: KpiLine,
    comments: tuple[int, int] | None = None,
    alerts: int = 0,
    footer: Callable[[], None] | None = None,
) -> None:
    """`comments`: (comments, open actions) on the KPI in the period; `alerts`: its alerts not
    closed yet — both shown as badges, unless `footer` (drawn last inside the card: the link to
    the KPI's detail) shows the alerts itself."""
    node = line.node
    kpi = ctx.cat.kpis[node.kpi_id]
    lang = ctx.lang
    with st.container(border=True):
        head = f"**{md(kpi.name(lang))}** {badge(node.status, lang)}"
        if kpi.veto:
            head += f" :violet-badge[{ctx.t('veto_mark')}]"
        if line.at_risk:
            head += f" :orange-badge[{ctx.t('at_risk')}]"
        if alerts and footer is None:
            count = ctx.t("al_badge_one" if alerts == 1 else "al_badge", n=alerts)
            head += f" :red-badge[:material/notifications: {count}]"
        if comments and comments[0]:
            head += f" :blue-badge[:material/forum: {comments[0]}]"
        if comments and comments[1]:
            head += f" :orange-badge[{ctx.t('rv_badge_open', n=comments[1])}]"
        st.markdown(head)
        spark = [v for _, v in line.spark if v is not None]
        delta = i18n.format_delta(node.actual, line.previous, kpi, lang)
        flat = delta is not None and i18n.is_flat(delta)
        said = ctx.t("vs_prev")
        if delta is not None and not flat and kpi.direction in ("up", "down"):
            better = (node.actual > line.previous) == (kpi.direction == "up")
            said = ctx.t(
                "card_change", vs=said, word=ctx.t("card_better" if better else "card_worse")
            )
        st.metric(
            label=f"{ctx.t('actual')} · {ctx.t('vs_prev')}",
            value=i18n.format_value(node.actual, kpi, lang),
            delta=ctx.t("flat") if flat else delta,
            # Streamlit draws the sparkline in the delta's colour: the light's, so a red KPI
            # never gets a green line because its last change was good. Whether the change was
            # good is said in words next to it, and the arrow gives its sign.
            delta_color=_BADGE[node.status],
            delta_arrow="off" if flat else "auto",
            delta_description=said,
            chart_data=spark if len(spark) > 1 else None,
            chart_type="line",
            label_visibility="collapsed",
        )
        target = i18n.format_target(node.levels, kpi, lang)
        score = "—" if node.score is None else f"{node.score:.1f}"
        if node.achievement is not None:
            score += f" · {ctx.t('achievement')} {node.achievement * 100:.1f}%"
        yoy = i18n.format_delta(node.actual, line.last_year, kpi, lang) or "—"
        prev = i18n.format_delta(node.actual, line.previous, kpi, lang) or "—"
        st.caption(
            f"{ctx.t('target')} {target} · {ctx.t('score')} {score} · "
            f"{ctx.t('vs_prev')} {prev} · {ctx.t('vs_last_year')} {yoy} · "
            f"{ctx.t('weight')} {line.weight:g}%"
        )
        if not node.own_actual and node.children_score is not None:
            st.caption(
                f"{ctx.t('children_score')}: {node.children_score:.1f} ({ctx.t('from_children')})"
            )
        if line.missing:
            # Coloured text, not a badge: a badge cuts a list of units off, text wraps.
            names = [ctx.cat.units[u].name(lang) for u in line.missing]
            text = md(ctx.t("cm_card_missing", units=i18n.join(names, lang)))
            st.markdown(f":orange[◐ {text}]")
        if footer is not None:
            footer()


def partial_period_note(ctx: PageContext, period: Period, latest: date) -> None:
    """Say when a quarter or year is still running, and what the changes compare."""
    if period.grain == "M" or not period.contains(latest) or latest == period.end:
        return
    done = len(period.until(latest))
    st.caption(
        ctx.t("partial_period", month=i18n.period_label(Period("M", latest).label(), ctx.lang),
              n=done, total=len(period.months))
    )  # fmt: skip


def _month(month: date, lang: str) -> str:
    return i18n.period_label(f"{month:%Y-%m}", lang)


def parts_text(ctx: PageContext, status: completeness.MonthStatus) -> str:
    """What a month's roll-up lacks, by the unit's own values and each unit right below it:
    "missing: East region 4/8, South China 0/8"."""
    names = []
    for g in status.parts:
        name = ctx.cat.units[g.unit_id].name(ctx.lang)
        if g.unit_id == status.unit_id and ctx.cat.children_of.get(g.unit_id):
            name = ctx.t("fr_own", unit=name)
        names.append(f"{name} {g.loaded}/{g.expected}")
    return ctx.t("cm_missing", units=i18n.join(names, ctx.lang)) if names else ""


def month_notes(
    ctx: PageContext,
    period: Period,
    view: completeness.InView,
    partial: dict[date, completeness.MonthStatus],
) -> None:
    """Say when the period shown holds months not complete yet (with what they lack), and when
    a newer month than the one shown has data but is not complete yet."""
    lang = ctx.lang
    if period.grain == "M" and period.start in partial:
        s = partial[period.start]
        state = i18n.month_state(s.state, s.loaded, s.expected, lang)
        st.warning(
            ctx.t("cm_shown_partial", month=_month(period.start, lang), state=state,
                  missing=md(parts_text(ctx, s))),
            icon=":material/rule:",
        )  # fmt: skip
    elif partial:
        months = [
            f"{_month(m, lang)} {i18n.month_state(s.state, s.loaded, s.expected, lang)}"
            for m, s in sorted(partial.items())
        ]
        st.warning(
            ctx.t("cm_period_partial", months=i18n.join(months, lang)), icon=":material/rule:"
        )
    shown_until = period.end
    later = [m for m in view.newer if m > shown_until]
    if later:
        newest = max(later)
        s = view.newer[newest]
        st.info(
            ctx.t("cm_newer_partial", month=_month(newest, lang),
                  state=i18n.month_state(s.state, s.loaded, s.expected, lang),
                  shown=_month(view.default, lang)),
            icon=":material/pending:",
        )  # fmt: skip


def confirmed(pending: str, name: str, question: str, yes: str, no: str, key: str) -> bool:
    """A delete asked for (`st.session_state[pending] == name`) waits for Yes or Cancel here.
    Either answer clears the request; True only for Yes — the caller deletes, then reruns. A
    Cancel reruns at once, so the question goes away."""
    if st.session_state.get(pending) != name:
        return False
    st.warning(question)
    with st.container(horizontal=True):
        said_yes = st.button(yes, type="primary", key=key + "delete_yes")
        said_no = st.button(no, key=key + "delete_no")
    if said_yes or said_no:
        st.session_state.pop(pending, None)
    if said_no:
        st.rerun()
    return said_yes


def open_tab_only(ctx: PageContext, sections: list[str], key: str) -> dict:
    """`st.tabs` of `sections` (message keys) that runs only the open tab, by section.

    One tab bar per language, opened on the section that was open before: a keyed tab bar keeps
    the label it was drawn with, so switching the language fell back to the first tab.
    """
    shown = f"{key}_{ctx.lang}"
    for lang in i18n.LANGS:
        if lang != ctx.lang:
            st.session_state.pop(f"{key}_{lang}", None)
    was = st.session_state.get(f"{key}_open")
    if shown not in st.session_state and was in sections:
        st.session_state[shown] = ctx.t(was)
    bars = st.tabs([ctx.t(s) for s in sections], key=shown, on_change="rerun")
    tabs = dict(zip(sections, bars, strict=True))
    st.session_state[f"{key}_open"] = next((s for s in sections if tabs[s].open), None)
    return tabs
