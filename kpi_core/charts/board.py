"""The Board's and the Overview's charts: bullet charts of a scorecard's KPIs, the status matrix
of units by KPIs, and child units' scores as bars.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from kpi_core import i18n
from kpi_core.catalog import Catalog
from kpi_core.charts.cache import for_pages
from kpi_core.charts.palette import BAND_COLORS, status_scale
from kpi_core.i18n import STATUS_ICON
from kpi_core.scorecard import NodeResult


@for_pages
def bullet_chart(nodes: list[NodeResult], cat: Catalog, lang: str) -> alt.Chart:
    """Each KPI's actual as a share of its target, over red/amber/green bands of its levels.

    A common axis (100% = target) lets KPIs of any unit share one chart; for `down` KPIs the
    axis still reads 'share of target' and the bands run the other way.
    """
    bands, marks = [], []
    for n in nodes:
        kpi = cat.kpis[n.kpi_id]
        lv = n.levels
        label = kpi.name(lang)
        if lv is None:
            continue
        if kpi.direction == "range":
            ref = lv.high or lv.low
            if not ref:
                continue
            tol = lv.tolerance or 0
            lo, hi = (lv.low if lv.low is not None else 0) / ref, (lv.high or ref) / ref
            edges = [
                (0, lo - tol / ref, "red"),
                (lo - tol / ref, lo, "amber"),
                (lo, hi, "green"),
                (hi, hi + tol / ref, "amber"),
                (hi + tol / ref, 2.0, "red"),
            ]
        else:
            t = lv.target
            if not t:
                continue
            b = (lv.baseline if lv.baseline is not None else 0.6 * t) / t
            c = (lv.challenge if lv.challenge is not None else t) / t
            if kpi.direction == "up":
                edges = [(0, b, "red"), (b, 1, "amber"), (1, c, "green"), (c, 2.0, "stretch")]
            else:
                edges = [(0, c, "stretch"), (c, 1, "green"), (1, b, "amber"), (b, 2.0, "red")]
        for start, end, band in edges:
            if end > start:
                bands.append(
                    {"kpi": label, "start": max(start, 0), "end": min(end, 2.0), "band": band}
                )
        ref = lv.target if kpi.direction != "range" else (lv.high or lv.low)
        share = None if n.actual is None else n.actual / ref
        marks.append(
            {
                "kpi": label,
                "share": None if share is None else min(max(share, 0), 2.0),
                "actual": i18n.format_value(n.actual, kpi, lang),
                "target": i18n.format_target(lv, kpi, lang),
                "status": i18n.t(n.status, lang),
                "score": None if n.score is None else round(n.score, 1),
            }
        )
    order = [m["kpi"] for m in marks]
    # Show up to a little past the furthest actual or challenge, never less than 130% of target.
    upper = max([1.3] + [m["share"] + 0.1 for m in marks if m["share"] is not None])
    upper = min(2.0, max([upper] + [b["start"] + 0.05 for b in bands if b["band"] != "red"]))
    bands = [{**b, "end": min(b["end"], upper)} for b in bands if b["start"] < upper]
    for m in marks:
        if m["share"] is not None:
            m["share"] = min(m["share"], upper)
    y = alt.Y("kpi:N", sort=order, title=None, axis=alt.Axis(labelLimit=220))
    x_title = "实际 / 目标" if lang == "zh" else "Actual as share of target"
    band_layer = (
        alt.Chart(pd.DataFrame(bands))
        .mark_bar(size=22)
        .encode(
            x=alt.X(
                "start:Q",
                title=x_title,
                axis=alt.Axis(format="%"),
                scale=alt.Scale(domain=[0, upper], nice=False),
            ),
            x2="end:Q",
            y=y,
            color=alt.Color(
                "band:N",
                scale=alt.Scale(domain=list(BAND_COLORS), range=list(BAND_COLORS.values())),
                legend=None,
            ),
        )
    )
    tooltip = [
        alt.Tooltip("kpi:N", title=i18n.t("kpi", lang)),
        alt.Tooltip("actual:N", title=i18n.t("actual", lang)),
        alt.Tooltip("target:N", title=i18n.t("target", lang)),
        alt.Tooltip("score:Q", title=i18n.t("score", lang)),
        alt.Tooltip("status:N", title=i18n.t("status", lang)),
    ]
    mark_data = pd.DataFrame(marks)
    bar = (
        alt.Chart(mark_data)
        .mark_bar(size=9, color="#263238")
        .encode(x="share:Q", y=y, tooltip=tooltip)
    )
    target_tick = (
        alt.Chart(pd.DataFrame({"x": [1.0]})).mark_rule(color="#222", strokeWidth=2).encode(x="x:Q")
    )
    return (band_layer + bar + target_tick).properties(height={"step": 38})


@for_pages
def status_matrix(
    nodes: list[NodeResult], cat: Catalog, lang: str, select: str | None = None
) -> alt.Chart:
    """Units down, KPIs across, each cell a KPI node's light with a shape for colour-blind eyes.
    With `select`, a click on a cell selects its `node` ("UNIT/KPI" codes) under that name."""
    rows = []
    for n in nodes:
        kpi = cat.kpis[n.kpi_id]
        rows.append(
            {
                "unit": cat.units[n.unit_id].name(lang),
                "kpi": kpi.name(lang),
                "status": i18n.t(n.status, lang),
                "icon": STATUS_ICON[n.status],
                "actual": i18n.format_value(n.actual, kpi, lang),
                "score": None if n.score is None else round(n.score, 1),
                "node": f"{cat.units[n.unit_id].code}/{kpi.code}",
            }
        )
    columns = ["unit", "kpi", "status", "icon", "actual", "score", "node"]
    df = pd.DataFrame(rows, columns=columns)
    unit_order = list(dict.fromkeys(df["unit"]))
    kpi_order = list(dict.fromkeys(df["kpi"]))
    base = alt.Chart(df).encode(
        x=alt.X(
            "kpi:N",
            title=None,
            sort=kpi_order,
            # Every column named: upright labels never overlap, so none is hidden.
            axis=alt.Axis(labelAngle=-90, labelLimit=160, labelOverlap=False, orient="top"),
        ),
        y=alt.Y("unit:N", title=None, sort=unit_order, axis=alt.Axis(labelLimit=180)),
    )
    cells = base.mark_rect(stroke="white", strokeWidth=2).encode(
        color=alt.Color("status:N", scale=status_scale(lang), title=i18n.t("status", lang)),
        tooltip=[
            alt.Tooltip("unit:N", title=i18n.t("unit", lang)),
            alt.Tooltip("kpi:N", title=i18n.t("kpi", lang)),
            alt.Tooltip("actual:N", title=i18n.t("actual", lang)),
            alt.Tooltip("score:Q", title=i18n.t("score", lang)),
            alt.Tooltip("status:N", title=i18n.t("status", lang)),
        ],
    )
    if select:
        cells = cells.add_params(alt.selection_point(name=select, fields=["node"], on="click"))
    text = base.mark_text(color="white", fontSize=13).encode(text="icon:N")
    return (cells + text).properties(height={"step": 30}, width={"step": 28})


@for_pages
def score_bars(nodes: list[NodeResult], cat: Catalog, lang: str) -> alt.Chart:
    """Unit scores as ranked bars, with rules at the baseline (60) and target (100) points."""
    df = pd.DataFrame(
        [
            {
                "unit": cat.units[n.unit_id].name(lang),
                "score": None if n.score is None else round(n.score, 1),
                "status": i18n.t(n.status, lang),
                "label": "—" if n.score is None else f"{n.score:.1f} {STATUS_ICON[n.status]}",
            }
            for n in nodes
        ],
        columns=["unit", "score", "status", "label"],
    )
    # Ranked here, best first and units without a score last, whoever calls.
    df = df.sort_values("score", ascending=False, na_position="last", kind="stable")
    order = df["unit"].tolist()
    y = alt.Y("unit:N", sort=order, title=None, axis=alt.Axis(labelLimit=200))
    bars = (
        alt.Chart(df)
        .mark_bar(size=22)
        .encode(
            x=alt.X("score:Q", title=i18n.t("score", lang), scale=alt.Scale(domain=[0, 125])),
            y=y,
            color=alt.Color("status:N", scale=status_scale(lang), legend=None),
            tooltip=[alt.Tooltip("unit:N"), alt.Tooltip("score:Q"), alt.Tooltip("status:N")],
        )
    )
    labels = bars.mark_text(align="left", dx=4, fontSize=13).encode(
        text="label:N", color=alt.value("#333")
    )
    # A white outline under each label keeps the 60/100 rules from running through it.
    halo = labels.mark_text(align="left", dx=4, fontSize=13, stroke="white", strokeWidth=4)
    rules = (
        alt.Chart(pd.DataFrame({"x": [60, 100]}))
        .mark_rule(strokeDash=[4, 3], color="#666")
        .encode(x="x:Q")
    )
    return (rules + bars + halo + labels).properties(height={"step": 34})
