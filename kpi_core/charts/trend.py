"""A KPI over time: its value by month against its target bands, last year, comments and
months not complete yet (the KPI tree and the Trends page), and units compared."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from kpi_core import i18n
from kpi_core.catalog import Catalog
from kpi_core.charts.cache import for_pages
from kpi_core.charts.palette import (
    BAND_COLORS,
    COMMENT_COLOR,
    LAST_YEAR_COLOR,
    PARTIAL_COLOR,
    SERIES_COLORS,
    status_scale,
)
from kpi_core.i18n import STATUS_ICON
from kpi_core.library import Kpi
from kpi_core.scoring import Levels


def value_axis(kpi: Kpi, title: str | None = None, lang: str = "en") -> alt.Axis:
    """Percent KPIs (stored as fractions) read as %; others compactly — 6M in English,
    600万 / 1.2亿 in Chinese."""
    title = alt.Undefined if title is None else title
    if kpi.is_percent:
        return alt.Axis(format="%", title=title)
    if lang == "zh":
        v = "datum.value"
        expr = (
            f"abs({v}) >= 1e8 ? format({v} / 1e8, ',.4~g') + '亿' : "
            f"abs({v}) >= 1e4 ? format({v} / 1e4, ',.4~g') + '万' : format({v}, ',.4~g')"
        )
        return alt.Axis(labelExpr=expr, title=title)
    return alt.Axis(format="~s", title=title)


def _mid(months: pd.Series) -> pd.Series:
    """The middle of each month: points sit inside the month's band, not on its edge."""
    return pd.to_datetime(months) + pd.Timedelta(days=14)


@for_pages
def level_bands(
    frame: pd.DataFrame,
    kpi: Kpi,
    lang: str,
    *,
    actual_name: str | None = None,
    markers: pd.DataFrame | None = None,
    yearly: bool = False,
    partial: pd.DataFrame | None = None,
) -> alt.LayerChart:
    """A KPI's values month by month over its bands: baseline→target (amber) and target→challenge
    (green) — or the green low→high band of a `range` KPI — one rect per month, since levels
    change by month (phased shares, a new target version). `frame` holds `month`, `actual`, the
    level columns and optionally `last_year` (drawn dashed). `markers` (trends.comment_markers)
    puts a rule and a point on each month with comments, their text in the tooltip. `yearly`
    draws one line per year (a year-to-date series restarts each January). `partial` (`month`,
    `state`: the words) rings the months not complete yet, their state in the tooltip."""
    unit = i18n.unit_label(kpi.unit, lang) or None
    names = {
        "actual": actual_name or i18n.t("actual", lang),
        "last_year": i18n.t("tr_last_year", lang),
        "base": i18n.t("tr_band_base", lang),
        "stretch": i18n.t("tr_band_stretch", lang),
        "range": i18n.t("tr_band_range", lang),
        "comment": i18n.t("rv_comments", lang),
        "partial": i18n.t("tr_partial_month", lang),
    }
    df = frame.copy()
    df["month"] = pd.to_datetime(df["month"])
    df["end"] = df["month"] + pd.offsets.MonthBegin(1)
    df["mid"] = _mid(df["month"])
    df["label"] = df["month"].dt.strftime("%Y-%m")

    def shown(v: float) -> str:
        return i18n.format_value(None if pd.isna(v) else float(v), kpi, lang)

    def exact(v: float) -> str:
        return i18n.format_value(None if pd.isna(v) else float(v), kpi, lang, compact=False)

    if kpi.direction == "range":
        band_defs = [("range", "low", "high")]
    else:
        band_defs = [("base", "baseline", "target"), ("stretch", "target", "challenge")]
    bands = []
    for band, lo, hi in band_defs:
        b = df[df[lo].notna() & df[hi].notna()]
        if not b.empty:
            bands.append((band, b, lo, hi))
    has_last_year = "last_year" in df and df["last_year"].notna().any()
    marks = pd.DataFrame()
    if markers is not None and not markers.empty:
        marks = markers.dropna(subset=["y"]).copy()
    # Every layer shares one colour scale, so the legend names bands, lines and markers alike.
    series = [
        (names[band], BAND_COLORS["amber" if band == "base" else "green"]) for band, *_ in bands
    ]
    if has_last_year:
        series.append((names["last_year"], LAST_YEAR_COLOR))
    series.append((names["actual"], SERIES_COLORS["actual"]))
    if not marks.empty:
        series.append((names["comment"], COMMENT_COLOR))
    rings = pd.DataFrame()
    if partial is not None and not partial.empty:
        at = df.set_index("month")
        months = pd.to_datetime(partial["month"])
        rings = pd.DataFrame(
            {
                "mid": _mid(months),
                "y": [at["actual"].get(m, np.nan) for m in months],
                "label": months.dt.strftime("%Y-%m"),
                "state": partial["state"].astype(str).to_numpy(),
                "series": names["partial"],
            }
        )
        fallback = [at["target"].get(m, np.nan) if "target" in at else np.nan for m in months]
        rings["y"] = rings["y"].fillna(pd.Series(fallback, index=rings.index)).astype(float)
        rings = rings.dropna(subset=["y"])
        if not rings.empty:
            series.append((names["partial"], PARTIAL_COLOR))
    color = alt.Color(
        "series:N",
        title=None,
        scale=alt.Scale(domain=[n for n, _ in series], range=[c for _, c in series]),
        legend=alt.Legend(orient="bottom"),
    )
    # The whole range, first month's start to last month's end, whatever has data.
    first, stop = df["month"].min(), df["end"].max()
    domain = [alt.DateTime(year=d.year, month=d.month, date=1) for d in (first, stop)]
    # Ticks in the middle of each month, under its point, rather than at month boundaries
    # (which put a label past the last month); Vega drops those that would overlap.
    ticks = [alt.DateTime(year=m.year, month=m.month, date=m.day, hours=m.hour) for m in df["mid"]]
    axis = alt.Axis(format="%Y-%m", title=None, labelAngle=-40, values=ticks)
    x = alt.X("start:T", axis=axis, scale=alt.Scale(domain=domain))
    x_mid = alt.X("mid:T", axis=axis, scale=alt.Scale(domain=domain))

    def y(field: str) -> alt.Y:
        return alt.Y(
            f"{field}:Q",
            title=unit,
            axis=value_axis(kpi, unit, lang),
            scale=alt.Scale(zero=False),
        )

    month_tip = alt.Tooltip("label:N", title=i18n.t("month", lang))
    layers = []
    for band, b, lo, hi in bands:
        rect = pd.DataFrame(
            {
                "start": b["month"],
                "end": b["end"],
                "lo": b[lo],
                "hi": b[hi],
                "series": names[band],
                "label": b["label"],
                "from": [shown(v) for v in b[lo]],
                "to": [shown(v) for v in b[hi]],
            }
        )
        layers.append(
            alt.Chart(rect)
            .mark_rect(opacity=0.6)
            .encode(
                x=x,
                x2="end:T",
                y=y("lo"),
                y2="hi:Q",
                color=color,
                tooltip=[
                    month_tip,
                    alt.Tooltip("series:N", title=" "),
                    alt.Tooltip("from:N", title=i18n.t("tr_from", lang)),
                    alt.Tooltip("to:N", title=i18n.t("tr_to", lang)),
                ],
            )
        )
    if has_last_year:
        ly = df[df["last_year"].notna()]
        ly = pd.DataFrame(
            {
                "mid": ly["mid"],
                "value": ly["last_year"],
                "series": names["last_year"],
                "label": (ly["month"] - pd.DateOffset(years=1)).dt.strftime("%Y-%m"),
                "shown": [shown(v) for v in ly["last_year"]],
                "exact": [exact(v) for v in ly["last_year"]],
            }
        )
        layers.append(
            alt.Chart(ly)
            .mark_line(strokeDash=[5, 4], strokeWidth=1.8, point=alt.OverlayMarkDef(size=18))
            .encode(
                x=x_mid,
                y=y("value"),
                color=color,
                tooltip=[
                    month_tip,
                    alt.Tooltip("shown:N", title=names["last_year"]),
                    alt.Tooltip("exact:N", title=i18n.t("tr_exact", lang)),
                ],
            )
        )
    level_cols = (
        ["low", "high"] if kpi.direction == "range" else ["baseline", "target", "challenge"]
    )
    points = df[df["actual"].notna()]
    line = pd.DataFrame(
        {
            "mid": points["mid"],
            "actual": points["actual"],
            "label": points["label"],
            "series": names["actual"],
            "year": points["month"].dt.year,
            "shown": [shown(v) for v in points["actual"]],
            "exact": [exact(v) for v in points["actual"]],
            **{f: [shown(v) for v in points[f]] for f in level_cols},
        }
    )
    line_chart = alt.Chart(line).mark_line(strokeWidth=2.5, point=alt.OverlayMarkDef(size=45))
    if yearly:
        line_chart = line_chart.encode(detail="year:N")
    layers.append(
        line_chart.encode(
            x=x_mid,
            y=y("actual"),
            color=color,
            tooltip=[
                month_tip,
                alt.Tooltip("shown:N", title=names["actual"]),
                alt.Tooltip("exact:N", title=i18n.t("tr_exact", lang)),
                *(
                    alt.Tooltip(
                        f"{f}:N", title=i18n.t(f"tree_{f}" if f in ("low", "high") else f, lang)
                    )
                    for f in level_cols
                ),
            ],
        )
    )
    if not marks.empty:
        marks = pd.DataFrame(
            {
                "mid": _mid(marks["month"]),
                "y": marks["y"].astype(float),
                "n": marks["n"].astype(int),
                "text": marks["text"].astype(str),
                "label": pd.to_datetime(marks["month"]).dt.strftime("%Y-%m"),
                "series": names["comment"],
            }
        )
        comment_tip = [
            month_tip,
            alt.Tooltip("n:Q", title=i18n.t("rv_count", lang)),
            alt.Tooltip("text:N", title=names["comment"]),
        ]
        layers.append(
            alt.Chart(marks)
            .mark_rule(strokeDash=[2, 3], color=COMMENT_COLOR, opacity=0.7)
            .encode(x=x_mid, tooltip=comment_tip)
        )
        layers.append(
            alt.Chart(marks)
            .mark_point(shape="diamond", size=160, filled=True, opacity=1)
            .encode(x=x_mid, y=y("y"), color=color, tooltip=comment_tip)
        )
    if not rings.empty:
        # A ring, not a colour of the line: the tooltip and the page's note say it in words.
        layers.append(
            alt.Chart(rings)
            .mark_point(shape="circle", size=320, filled=False, strokeWidth=2.5, opacity=1)
            .encode(
                x=x_mid,
                y=y("y"),
                color=color,
                tooltip=[month_tip, alt.Tooltip("state:N", title=names["partial"])],
            )
        )
    return alt.layer(*layers).properties(height=320)


@for_pages
def unit_comparison(
    rows: pd.DataFrame, kpi: Kpi, cat: Catalog, lang: str, selected: int | None = None
) -> alt.LayerChart:
    """One KPI across units as ranked bars coloured by status, a tick at each unit's target
    (the middle of its band for a `range` KPI), the value beside each bar; `selected` outlined."""
    data = pd.DataFrame(
        {
            "unit": [cat.units[u].name(lang) for u in rows["unit_id"]],
            "actual": rows["actual"].to_numpy(dtype=float),
            "target": np.where(
                rows["target"].notna(), rows["target"], (rows["low"] + rows["high"]) / 2
            ).astype(float),
            "status": [i18n.t(s, lang) for s in rows["status"]],
            "rank": rows["rank"].astype("object").where(rows["rank"].notna(), None),
            "shown": [
                i18n.format_value(None if pd.isna(v) else float(v), kpi, lang)
                for v in rows["actual"]
            ],
            "exact": [
                i18n.format_value(None if pd.isna(v) else float(v), kpi, lang, compact=False)
                for v in rows["actual"]
            ],
            "target_shown": [
                i18n.format_target(_levels_of(r), kpi, lang) for _, r in rows.iterrows()
            ],
            "score": rows["score"].round(1).to_numpy(dtype=float),
            "selected": [u == selected for u in rows["unit_id"]],
        }
    )
    data["label"] = [
        f"{s} {STATUS_ICON[st]}" for s, st in zip(data["shown"], rows["status"], strict=True)
    ]
    # Labels start right of the bar or the target tick, whichever is further, so none overlap.
    data["label_at"] = data[["actual", "target"]].max(axis=1)
    order = data["unit"].tolist()
    unit = i18n.unit_label(kpi.unit, lang) or None
    y = alt.Y("unit:N", sort=order, title=None, axis=alt.Axis(labelLimit=220))
    tooltip = [
        alt.Tooltip("unit:N", title=i18n.t("unit", lang)),
        alt.Tooltip("rank:Q", title=i18n.t("tr_rank", lang)),
        alt.Tooltip("shown:N", title=i18n.t("actual", lang)),
        alt.Tooltip("exact:N", title=i18n.t("tr_exact", lang)),
        alt.Tooltip("target_shown:N", title=i18n.t("target", lang)),
        alt.Tooltip("score:Q", title=i18n.t("score", lang)),
        alt.Tooltip("status:N", title=i18n.t("status", lang)),
    ]
    top = np.nanmax(np.concatenate([data["actual"].to_numpy(), data["target"].to_numpy(), [0]]))
    bars = (
        alt.Chart(data)
        .mark_bar(size=22)
        .encode(
            x=alt.X(
                "actual:Q",
                title=unit,
                axis=value_axis(kpi, unit, lang),
                scale=alt.Scale(domain=[0, float(top) * 1.3 if top > 0 else 1]),
            ),
            y=y,
            color=alt.Color("status:N", scale=status_scale(lang), legend=None),
            stroke=alt.condition(alt.datum.selected, alt.value("#111"), alt.value(None)),
            strokeWidth=alt.condition(alt.datum.selected, alt.value(2.5), alt.value(0)),
            tooltip=tooltip,
        )
    )
    labels = bars.mark_text(align="left", dx=8, fontSize=12).encode(
        x="label_at:Q", text="label:N", color=alt.value("#333"), stroke=alt.value(None)
    )
    ticks = (
        alt.Chart(data)
        .mark_tick(color="#222", thickness=2, size=30)
        .encode(x="target:Q", y=y, tooltip=tooltip)
    )
    return (bars + ticks + labels).properties(height={"step": 36})


def _levels_of(row: pd.Series) -> Levels:
    return Levels(
        *(None if pd.isna(row[f]) else float(row[f]) for f in Levels.__dataclass_fields__)
    )
