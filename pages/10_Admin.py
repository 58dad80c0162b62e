"""Admin: users with their roles, scopes and passwords; the whole change log; backup and restore.
For admins."""

from kpi_core.ui import page
from kpi_core.ui.admin import main
from kpi_core.ui.boundary import guard

ctx = page("ad_nav")
with guard(ctx):
    main(ctx)
