"""KPI Monitor's logic, plain Python: the pages and the command line are thin callers of it.

What lives where (README "Layout" has a line per module):

- storage: `warehouse` (the DuckDB file; `shared_file`: one writer, readers per process; `gate`,
  `pauses`), `migrations`, `settings`, `errors` (with the coded `messages` and `texts` they
  carry); nothing in storage imports the modules above it;
- the model: `library`, `org`, `catalog`, `access` (users, roles, scopes, `Actor`, `can`),
  `periods`, `actuals`, `targets`, `scoring`, `scorecard`, `audit`;
- what people do: `ingest/` (monthly actuals: files, database sources, the intake and its
  batches), `month_locks` (closed months), `planning`/`weights` (the Targets grids),
  `target_history` (a target's versions, revert), `library_edits`/`system_import` (the
  KPI-system workbook), `review`, `completeness`, `alerts/`, `push/`, `users`, `sessions`,
  `backup`;
- the service layer: `service` (operations as an actor; a commit's alert rules and pushes through
  `after_commit`), `cli/`;
- words: `messages` (coded messages), `texts` and `locale/` (gettext), `i18n`, `numbers`;
- the UI: `ui/`, the only package that imports streamlit; nothing outside it imports it.

Imports go one way: ui → service and the modules the UI may use (`UI_SURFACE`) → the model →
warehouse. tests/test_conventions.py checks that, and that no two modules import each other,
not even inside a function.
"""

# The core modules kpi_core/ui, pages/ and app.py may import. Anything else (collector, memo,
# formula, system_checks, system_writer, the ingest pieces below the intake, …) is reached
# through one of these. From `warehouse` the UI takes only `Warehouse`, `open_warehouse` and `resolve_path`
# (`UI_WAREHOUSE_NAMES`): connections, gates and queries stay in the core.
UI_SURFACE = frozenset(
    {
        # acting and the service layer
        "access", "auth", "service", "sessions", "sso", "users", "backup", "clock", "errors",
        # words and numbers
        "i18n", "texts", "messages", "references", "ingest.places",
        # what the pages show
        "board", "attention", "detail", "scorecard", "scoring", "tree_view", "trends",
        "completeness", "periods", "catalog", "people", "charts", "kiosk", "screen",
        "alerts", "review", "push", "audit",
        # what the pages change
        "planning", "target_history", "library_edits", "library", "workbook", "export", "actuals",
        "month_locks", "ingest.intake", "ingest.batches", "ingest.files", "ingest.layout",
        "ingest.names", "ingest.profile", "ingest.sources", "ingest.template", "ingest.target_mapping", "ingest.definition_file",
        # the warehouse's handle only (UI_WAREHOUSE_NAMES)
        "warehouse",
    }
)  # fmt: skip
UI_WAREHOUSE_NAMES = frozenset({"Warehouse", "open_warehouse", "resolve_path"})
