"""The charts' colours: status lights, target bands and the series of a trend."""

from __future__ import annotations

import altair as alt

from kpi_core import i18n
from kpi_core.i18n import STATUS_COLOR

STATUSES = ["green", "amber", "red", "grey"]


BAND_COLORS = {"red": "#f4c7c3", "amber": "#fde9b5", "green": "#cfe8d5", "stretch": "#a8d5b5"}


def status_scale(lang: str) -> alt.Scale:
    return alt.Scale(
        domain=[i18n.t(s, lang) for s in STATUSES], range=[STATUS_COLOR[s] for s in STATUSES]
    )


# Shared by the KPI tree's trend and the Trends page.
SERIES_COLORS = {
    "actual": "#263238",
    "baseline": STATUS_COLOR["red"],
    "target": STATUS_COLOR["green"],
    "challenge": "#1f5fa8",
    "low": STATUS_COLOR["green"],
    "high": STATUS_COLOR["green"],
}


LAST_YEAR_COLOR = "#8d99ae"


COMMENT_COLOR = "#6a3d9a"


PARTIAL_COLOR = "#e08a00"  # amber, darker than the band it may sit on
