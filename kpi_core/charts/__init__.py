"""Altair chart builders. They return charts; pages only render them; tests read `to_dict()`.

`board`: bullet charts, status matrix, scores; `trend`: a KPI over time, units compared;
`palette`: colours; `cache`: charts the pages drew lately (`for_pages`); `image`: SVG and PNG.
"""

from kpi_core.charts.board import bullet_chart, score_bars, status_matrix
from kpi_core.charts.cache import for_pages
from kpi_core.charts.image import to_png, to_svg
from kpi_core.charts.palette import SERIES_COLORS
from kpi_core.charts.trend import level_bands, unit_comparison, value_axis

__all__ = [
    "SERIES_COLORS",
    "bullet_chart",
    "for_pages",
    "level_bands",
    "score_bars",
    "status_matrix",
    "to_png",
    "to_svg",
    "unit_comparison",
    "value_axis",
]
