"""KPI tree: a unit's scorecard drawn as a tree, and one node's trend, targets and contributions."""

from kpi_core.ui import page
from kpi_core.ui.boundary import guard
from kpi_core.ui.tree import tree_page

ctx = page("nav_tree")
with guard(ctx):
    tree_page(ctx)
