"""KPI detail: one KPI of one unit for a period, reached by a deep link
(`?unit=SALES&kpi=REV&period=2026-10`)."""

from kpi_core.ui import page
from kpi_core.ui.boundary import guard
from kpi_core.ui.detail import detail_page

ctx = page("dt_nav")
with guard(ctx):
    detail_page(ctx)
