"""Trends: a KPI over months against its bands, last year, the phased target year to date and
other units, with review comments."""

from kpi_core.ui import page
from kpi_core.ui.boundary import guard
from kpi_core.ui.trends import trends_page

ctx = page("tr_nav")
with guard(ctx):
    trends_page(ctx)
