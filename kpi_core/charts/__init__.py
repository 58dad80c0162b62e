"""Altair chart builders. They return charts; pages only render them; tests read `to_dict()`."""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import altair as alt
import numpy as np
import pandas as pd

from kpi_core import i18n, settings
from kpi_core.catalog import Catalog
from kpi_core.i18n import STATUS_COLOR, STATUS_ICON
from kpi_core.library import Kpi
from kpi_core.scorecard import NodeResult
from kpi_core.scoring import Levels

_STATUSES = ["green", "amber", "red", "grey"]
_BAND_COLORS = {"red": "#f4c7c3", "amber": "#fde9b5", "green": "#cfe8d5", "stretch": "#a8d5b5"}


P = ParamSpec("P")
C = TypeVar("C", bound=alt.TopLevelMixin)

# Charts the pages drew lately, by builder and inputs (see `for_pages`).
_DRAWN: OrderedDict[tuple, alt.TopLevelMixin] = OrderedDict()
_DRAWN_MAX = 256
_drawn_lock = threading.Lock()


def _content(value: object) -> object:
    """A hashable stand-in for a builder's argument: a frame by its contents, a list by its
    items, anything else as it is (NodeResults by identity: they come from cached results)."""
    if isinstance(value, pd.DataFrame):
        hashed = pd.util.hash_pandas_object(value, index=True).to_numpy().tobytes()
        return ("frame", tuple(value.columns), tuple(map(str, value.dtypes)), hashed)
    if isinstance(value, list | tuple):
        return (type(value).__name__, *(_content(v) for v in value))
    if isinstance(value, dict):
        return ("dict", *sorted((k, _content(v)) for k, v in value.items()))
    hash(value)
    return value


# The data transformer st.altair_chart installs while it turns a chart into a spec (Streamlit 1.67,
# streamlit/elements/vega_charts.py): the spec made under it can be handed out again.
_STREAMLIT_TRANSFORMER = "to_arrow_dataset"


def _spec_once(chart: alt.TopLevelMixin) -> Callable[..., dict]:
    """`chart.to_dict` without validation, and for Streamlit the spec made the first time.

    The spec is made once with Streamlit's own transformer, its data (Arrow bytes named by a
    hash of their contents) put in its `datasets` — where Streamlit looks for datasets a spec
    already carries — so handing it out again draws the same chart with the same data. Any
    other caller (a download as SVG, a test) gets a spec made for it."""
    plain = functools.partial(chart.to_dict, validate=False)
    made: list[dict] = []

    def to_dict(*args: object, **kwargs: object) -> dict:
        if args or kwargs or alt.data_transformers.active != _STREAMLIT_TRANSFORMER:
            return plain(*args, **kwargs)
        if not made:
            datasets: dict = {}
            with alt.data_transformers.enable(_STREAMLIT_TRANSFORMER, datasets=datasets):
                spec = plain()
            spec["datasets"] = {**spec.get("datasets", {}), **datasets}
            made.append(spec)  # complete before anyone else can see it
        return made[0]

    return to_dict


def for_pages(build: Callable[P, C]) -> Callable[P, C]:
    """A chart builder as the pages call it at every run: the same inputs give the chart built
    the first time, and the chart skips Altair's schema validation when it is drawn.

    Building a chart and validating its spec against the Vega-Lite JSON schema was most of a
    chart page's run (Trends: 0.35 s of 0.5 s), for a spec whose shape is the builder's, not
    the data's. With `KPI_VALIDATE_CHARTS=1` (the tests set it) every chart built is validated
    once, so a builder's invalid spec still fails the tests that draw it. Inputs are compared by
    content (frames hashed), so a chart is never one of other data; charts are shared between
    sessions and never changed after.
    """

    @functools.wraps(build)
    def built(*args: P.args, **kwargs: P.kwargs) -> C:
        try:
            key = (build.__qualname__, _content(args), _content(kwargs))
        except TypeError:
            key = None
        if key is not None:
            with _drawn_lock:
                if key in _DRAWN:
                    _DRAWN.move_to_end(key)
                    return _DRAWN[key]  # type: ignore[return-value]
        chart = build(*args, **kwargs)
        if settings.env("KPI_VALIDATE_CHARTS") == "1":
            chart.to_dict(validate=True)
        # Altair's charts keep attributes set on them as chart properties: around it.
        object.__setattr__(chart, "to_dict", _spec_once(chart))
        if key is not None:
            with _drawn_lock:
                _DRAWN[key] = chart
                while len(_DRAWN) > _DRAWN_MAX:
                    _DRAWN.popitem(last=False)
        return chart

    return built


def _status_scale(lang: str) -> alt.Scale:
    return alt.Scale(
        domain=[i18n.t(s, lang) for s in _STATUSES], range=[STATUS_COLOR[s] for s in _STATUSES]
    )


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
                scale=alt.Scale(domain=list(_BAND_COLORS), range=list(_BAND_COLORS.values())),
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
        color=alt.Color("status:N", scale=_status_scale(lang), title=i18n.t("status", lang)),
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
            color=alt.Color("status:N", scale=_status_scale(lang), legend=None),
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


# Shared by the KPI tree's trend and the Trends page.
SERIES_COLORS = {
    "actual": "#263238",
    "baseline": STATUS_COLOR["red"],
    "target": STATUS_COLOR["green"],
    "challenge": "#1f5fa8",
    "low": STATUS_COLOR["green"],
    "high": STATUS_COLOR["green"],
}
_LAST_YEAR_COLOR = "#8d99ae"
_COMMENT_COLOR = "#6a3d9a"
_PARTIAL_COLOR = "#e08a00"  # amber, darker than the band it may sit on


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
        (names[band], _BAND_COLORS["amber" if band == "base" else "green"]) for band, *_ in bands
    ]
    if has_last_year:
        series.append((names["last_year"], _LAST_YEAR_COLOR))
    series.append((names["actual"], SERIES_COLORS["actual"]))
    if not marks.empty:
        series.append((names["comment"], _COMMENT_COLOR))
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
            series.append((names["partial"], _PARTIAL_COLOR))
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
            .mark_rule(strokeDash=[2, 3], color=_COMMENT_COLOR, opacity=0.7)
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
            color=alt.Color("status:N", scale=_status_scale(lang), legend=None),
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


def to_svg(chart: alt.TopLevelMixin, width: int = 900, title: str | None = None) -> str:
    """The chart drawn as SVG on the server (vl-convert, no network): for downloads."""
    import vl_convert

    return vl_convert.vegalite_to_svg(_sized(chart, width, title))


def to_png(
    chart: alt.TopLevelMixin, width: int = 900, title: str | None = None, scale: float = 2.0
) -> bytes:
    import vl_convert

    return vl_convert.vegalite_to_png(_sized(chart, width, title), scale=scale)


def _sized(chart: alt.TopLevelMixin, width: int, title: str | None) -> dict:
    # On a page the chart takes the container's width and the page names it; an image file
    # needs a width in pixels and its own title.
    sized = chart.properties(width=width)
    if title:
        sized = sized.properties(title=alt.Title(title, anchor="start", fontSize=15))
    spec = sized.to_dict()
    spec.setdefault("background", "white")
    return spec
