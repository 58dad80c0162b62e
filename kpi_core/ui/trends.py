"""The Trends page: one KPI of a unit over a range of months — against its bands, last year and
the phased target year to date, across units — with its comments and downloads."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import altair as alt
import pandas as pd
import streamlit as st

from kpi_core import charts, i18n, people, review, scoring, trends, workbook
from kpi_core.actuals import data_range
from kpi_core.errors import KpiError
from kpi_core.periods import Period, add_months, months_between, parse_period
from kpi_core.texts import N_
from kpi_core.ui import PageContext, unit_picker
from kpi_core.ui.review import comments_panel, panel_title
from kpi_core.ui.widgets import md

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DEFAULT_MONTHS = 24
# How a KPI's year-to-date is aggregated, and what a unit can be compared with, in words.
AGGREGATIONS = {
    "sum": N_("tr_agg_sum"),
    "avg": N_("tr_agg_avg"),
    "last": N_("tr_agg_last"),
    "ratio": N_("tr_agg_ratio"),
    "formula": N_("tr_agg_formula"),
}
COMPARISONS = {"siblings": N_("tr_compare_siblings"), "children": N_("tr_compare_children")}


def _node_code(ctx: PageContext, pair: tuple[int, int], unit_id: int) -> str:
    k, u = pair
    code = ctx.cat.kpis[k].code
    return code if u == unit_id else f"{ctx.cat.units[u].code}/{code}"


def _kpi_picker(ctx: PageContext, unit_id: int, latest: date) -> tuple[int, int]:
    """The KPI nodes of the unit's tree: its own KPIs, then those of the units below."""
    pairs = trends.tree_kpis(ctx.cat, ctx.actor.scope, unit_id, latest)
    if not pairs:
        st.info(ctx.t("tr_no_kpis"))
        st.stop()
    codes = {_node_code(ctx, p, unit_id): p for p in pairs}
    key = f"tr_kpi_{unit_id}"
    if st.session_state.get(key) not in codes:
        asked = st.query_params.get("kpi")
        st.session_state[key] = asked if asked in codes else next(iter(codes))

    def label(code: str) -> str:
        k, u = codes[code]
        name = ctx.cat.kpis[k].name(ctx.lang)
        if u == unit_id:
            return name
        return ctx.t("tr_of_unit", kpi=name, unit=ctx.cat.units[u].name(ctx.lang))

    chosen = st.sidebar.selectbox(ctx.t("kpi"), list(codes), format_func=label, key=key)
    st.query_params["kpi"] = chosen
    return codes[chosen]


def _asked_month(text: str | None, fallback: date, options: list[date]) -> date:
    try:
        month = parse_period(text).end if text else fallback
    except KpiError:
        return fallback
    return month if month in options else fallback


def _range_picker(ctx: PageContext, first: date, latest: date) -> list[date]:
    """From and to months among those with data; the last 24 by default; kept in the URL."""
    options = months_between(first, latest)
    # Kept under a key of its own: the slider is a range only when given a (from, to) value.
    if "tr_months" not in st.session_state:
        default_from = max(first, add_months(latest, -(DEFAULT_MONTHS - 1)))
        start = _asked_month(st.query_params.get("from"), default_from, options)
        end = _asked_month(st.query_params.get("to"), latest, options)
        st.session_state.tr_months = (start, end) if start <= end else (default_from, latest)
    lo, hi = st.session_state.tr_months
    if lo not in options or hi not in options:
        st.session_state.tr_months = (options[0], options[-1])

    def chosen() -> None:
        st.session_state.tr_months = tuple(st.session_state.tr_range)

    if len(options) == 1:
        start = end = options[0]
    else:
        start, end = st.sidebar.select_slider(
            ctx.t("tr_range"),
            options=options,
            value=st.session_state.tr_months,
            format_func=lambda m: i18n.period_label(f"{m:%Y-%m}", ctx.lang),
            key="tr_range",
            on_change=chosen,
            help=ctx.t("tr_range_help"),
        )
    st.query_params["from"] = f"{start:%Y-%m}"
    st.query_params["to"] = f"{end:%Y-%m}"
    return trends.month_range(start, end)


def _downloads(
    ctx: PageContext,
    chart: alt.TopLevelMixin,
    frame: Callable[[], pd.DataFrame],
    name: str,
    title: str,
) -> None:
    """Chart as SVG or PNG (drawn on the server when clicked) and its data as Excel."""
    row = st.container(horizontal=True, gap="small")
    row.download_button(
        ctx.t("tr_download_svg"),
        data=lambda: charts.to_svg(chart, title=title),
        file_name=f"{name}.svg",
        mime="image/svg+xml",
        icon=":material/image:",
        on_click="ignore",
        key=f"tr_svg_{name}",
    )
    row.download_button(
        ctx.t("tr_download_png"),
        data=lambda: charts.to_png(chart, title=title),
        file_name=f"{name}.png",
        mime="image/png",
        icon=":material/image:",
        on_click="ignore",
        key=f"tr_png_{name}",
    )
    row.download_button(
        ctx.t("tr_download_xlsx"),
        data=lambda: workbook.sheet_bytes(name[:31], frame()),
        file_name=f"{name}.xlsx",
        mime=XLSX,
        icon=":material/table:",
        on_click="ignore",
        key=f"tr_xlsx_{name}",
    )


def _ratio(a: float, b: float) -> str:
    return "—" if pd.isna(a) or pd.isna(b) or b == 0 else f"{a / b * 100:.1f}%"


# Keys built below as "trend_…", written out so that extraction finds them.
_TREND_KEYS = N_("trend_12")


def trends_page(ctx: PageContext) -> None:
    lang, cat, wh, scope = ctx.lang, ctx.cat, ctx.wh, ctx.actor.scope
    span = data_range(wh, scope, cat)
    if span is None:
        st.info(ctx.t("no_data_yet"))
        st.stop()
    first, latest = span
    unit_id = unit_picker(ctx, latest)
    kpi_id, node_unit = _kpi_picker(ctx, unit_id, latest)
    months = _range_picker(ctx, first, latest)
    kpi, unit = cat.kpis[kpi_id], cat.units[node_unit]
    t = trends.trend(wh, cat, scope, kpi_id, node_unit, months)
    notes = review.comments(
        wh, cat, ctx.actor, kpi_id=kpi_id, unit_id=node_unit, start=months[0], end=months[-1]
    )

    st.title(f"{kpi.name(lang)} · {unit.name(lang)}")
    span_text = " – ".join(i18n.period_label(f"{m:%Y-%m}", lang) for m in (months[0], months[-1]))
    about = [span_text, f"{ctx.t('caliber')}: {kpi.caliber}" if kpi.caliber else None]
    if kpi.owner:
        about.append(f"{ctx.t('owner')}: {people.load(wh).name(kpi.owner)}")
    st.caption(" · ".join(a for a in about if a))
    if t.monthly["actual"].isna().all():
        st.info(ctx.t("tr_no_data"))
    partial = _partial_note(ctx, kpi_id, node_unit, months)
    _headline(ctx, t, kpi, set(partial["month"]))

    code = _node_code(ctx, (kpi_id, node_unit), unit_id).replace("/", "_")
    name = f"{code}_{months[0]:%Y%m}-{months[-1]:%Y%m}"
    head = f"{kpi.name(lang)} · {unit.name(lang)}"

    st.subheader(ctx.t("tr_monthly"))
    markers = trends.comment_markers(t.monthly, notes)
    chart = charts.level_bands(t.monthly, kpi, lang, markers=markers, partial=partial)
    st.altair_chart(chart, width="stretch")
    st.caption(ctx.t("tr_markers_note"))
    _downloads(
        ctx,
        chart,
        lambda: trends.table(t, kpi, lang, notes),
        f"trend_{name}",
        f"{head} · {span_text}",
    )

    left, right = st.columns(2, gap="large")
    with left:
        st.subheader(ctx.t("tr_ytd"))
        if kpi.aggregation == "sum":
            st.caption(ctx.t("tr_ytd_sum"))
        else:
            st.caption(ctx.t("tr_ytd_other", agg=ctx.t(AGGREGATIONS[kpi.aggregation])))
        ytd_chart = charts.level_bands(
            t.ytd, kpi, lang, actual_name=ctx.t("tr_ytd_actual"), yearly=True
        )
        st.altair_chart(ytd_chart, width="stretch")
        _downloads(
            ctx,
            ytd_chart,
            lambda: trends.table(t, kpi, lang),
            f"ytd_{name}",
            f"{head} · {ctx.t('tr_ytd')} · {span_text}",
        )
    with right:
        _comparison(ctx, kpi_id, node_unit, months, name, head)

    st.subheader(panel_title(ctx, notes))
    comments_panel(
        ctx, kpi_id, node_unit, Period("M", months[-1]), months=months, key="tr_rv", notes=notes
    )


def _partial_note(ctx: PageContext, kpi_id: int, unit_id: int, months: list[date]) -> pd.DataFrame:
    """Say which months of the range are not complete yet, and what this KPI lacks in each;
    returns them (`month`, `state`) for the chart's rings."""
    lang = ctx.lang
    found = trends.partial_months(ctx.wh, ctx.cat, kpi_id, unit_id, months)
    rows, said = [], []
    for month, (status, lacking) in sorted(found.items()):
        state = i18n.month_state(status.state, status.loaded, status.expected, lang)
        if lacking:
            names = [ctx.cat.units[u].name(lang) for u in lacking]
            state = ctx.t("tr_partial_lacks", state=state, units=i18n.join(names, lang))
        label = i18n.period_label(f"{month:%Y-%m}", lang)
        rows.append({"month": month, "state": state})
        said.append(f"{label} {state}")
    if said:
        st.warning(
            ctx.t(
                "tr_partial_note", months=md("; ".join(said) if lang == "en" else "；".join(said))
            ),
            icon=":material/rule:",
        )
    return pd.DataFrame(rows, columns=["month", "state"])


def _headline(ctx: PageContext, t: trends.Trend, kpi, partial: set[date]) -> None:
    lang = ctx.lang
    have = t.monthly[t.monthly["actual"].notna()]
    if have.empty:
        return
    last = have.iloc[-1]
    ytd = t.ytd.loc[last.name]
    month = i18n.period_label(last["month"].strftime("%Y-%m"), lang)
    cols = st.columns(4)
    label = ctx.t("tr_latest", month=month)
    if last["month"].date() in partial:
        label += f" · ◐ {ctx.t('tr_partial_month')}"
    cols[0].metric(
        label,
        i18n.format_value(float(last["actual"]), kpi, lang),
        delta=i18n.format_delta(
            float(last["actual"]),
            None if pd.isna(last["last_year"]) else float(last["last_year"]),
            kpi,
            lang,
        ),
        delta_color="inverse" if kpi.direction == "down" else "normal",
        delta_description=ctx.t("vs_last_year"),
        border=True,
    )
    levels = scoring.Levels(*(None if pd.isna(last[f]) else float(last[f]) for f in trends.LEVELS))
    cols[1].metric(ctx.t("target"), i18n.format_target(levels, kpi, lang), border=True)
    cols[2].metric(
        ctx.t("tr_ytd_actual"),
        i18n.format_value(None if pd.isna(ytd["actual"]) else float(ytd["actual"]), kpi, lang),
        border=True,
    )
    pace = scoring.achievement(
        None if pd.isna(ytd["actual"]) else float(ytd["actual"]),
        None if pd.isna(ytd["target"]) else float(ytd["target"]),
        kpi.direction,
    )
    cols[3].metric(ctx.t("tr_pace"), "—" if pace is None else f"{pace * 100:.1f}%", border=True)


# Keys built below as "units_…", written out so that extraction finds them.
_UNITS_KEYS = N_("units_in_scope")


def _comparison(
    ctx: PageContext, kpi_id: int, unit_id: int, months: list[date], name: str, head: str
) -> None:
    cat, scope, lang = ctx.cat, ctx.actor.scope, ctx.lang
    st.subheader(ctx.t("tr_compare"))
    # Drawn above the period control, filled once the period says which groups have data.
    top = st.container()
    end = months[-1]
    overs = {
        "last": ctx.t("tr_compare_last", month=i18n.period_label(f"{end:%Y-%m}", lang)),
        "ytd": ctx.t("tr_compare_ytd", year=end.year),
    }
    over = (
        st.segmented_control(
            ctx.t("tr_compare_over"),
            list(overs),
            format_func=overs.get,
            default="last",
            key="tr_compare_over",
        )
        or "last"
    )
    run = [end] if over == "last" else months_between(date(end.year, 1, 1), end)
    # Offer only comparisons with something to compare: two units or more with a value.
    found = {}
    for group, units in (
        ("siblings", trends.siblings(cat, scope, unit_id)),
        ("children", trends.children(cat, scope, unit_id)),
    ):
        if len(units) > (1 if group == "siblings" else 0):
            rows = trends.compare_units(ctx.wh, cat, scope, kpi_id, units, run)
            if rows["actual"].notna().sum() >= 2:
                found[group] = rows
    if not found:
        st.caption(ctx.t("tr_compare_none"))
        return
    group = top.segmented_control(
        ctx.t("tr_compare_with"),
        list(found),
        format_func=lambda g: ctx.t(COMPARISONS[g]),
        default=next(iter(found)),
        key=f"tr_compare_with_{'_'.join(found)}",
    ) or next(iter(found))
    rows = found[group]
    chart = charts.unit_comparison(rows, cat.kpis[kpi_id], cat, lang, selected=unit_id)
    st.altair_chart(chart, width="stretch")

    def frame() -> pd.DataFrame:
        kpi = cat.kpis[kpi_id]
        return pd.DataFrame(
            {
                ctx.t("tr_rank"): rows["rank"],
                ctx.t("unit"): [cat.units[u].name(lang) for u in rows["unit_id"]],
                ctx.t("actual"): rows["actual"],
                ctx.t("baseline"): rows["baseline"],
                ctx.t("target"): rows["target"],
                ctx.t("challenge"): rows["challenge"],
                ctx.t("score"): rows["score"].round(2),
                ctx.t("status"): [i18n.t(s, lang) for s in rows["status"]],
                ctx.t("tr_exact"): [
                    i18n.format_value(None if pd.isna(v) else float(v), kpi, lang, compact=False)
                    for v in rows["actual"]
                ],
            }
        )

    title = f"{head} · {ctx.t(f'tr_compare_{group}')} · {overs[over]}"
    _downloads(ctx, chart, frame, f"units_{group}_{over}_{name}", title)
