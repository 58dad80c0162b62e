"""Admin: users with their roles, scopes and passwords; the whole change log; backup and restore.
For admins."""

from kpi_core.ui import guard, page
from kpi_core.ui.admin import main

ctx = page("ad_nav")
with guard(ctx):
    main(ctx)
