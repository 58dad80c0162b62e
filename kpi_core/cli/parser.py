"""The command line's arguments: one sub-parser per command, each with its own help."""

from __future__ import annotations

import argparse


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m kpi_core",
        description="KPI Monitor command line. The warehouse comes from --warehouse, "
        "KPI_WAREHOUSE, or [warehouse] path in .streamlit/secrets.toml.",
        epilog="Exit codes: 0 done, 1 input refused, 2 wrong usage, 3 not found or outside "
        "scope, 4 warehouse busy, 5 source unreachable or "
        "unreadable.",
    )
    p.add_argument(
        "--warehouse",
        metavar="PATH|URL",
        help="the warehouse: a DuckDB file, or a PostgreSQL URL (postgresql+psycopg://…)",
    )
    who = p.add_mutually_exclusive_group()
    who.add_argument(
        "--user",
        metavar="NAME",
        help="act as this user, within their role and scope (or set KPI_USER)",
    )
    who.add_argument(
        "--admin",
        action="store_true",
        help="act with full access, recorded as admin@cli:<system user> (scheduled jobs)",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init = sub.add_parser("init", help="create or migrate the warehouse")
    init.description = "Create the warehouse file if needed and apply schema migrations."
    init.add_argument("--demo", action="store_true", help="load the demo company if empty")

    imp = sub.add_parser("import", help="import actuals or a KPI-system workbook")
    imp.description = (
        "Import a file. A workbook with KPI-system sheets (kpis, org_units, tree, targets, "
        "phasing; English or Chinese names) updates the KPI system, all or nothing. Any other "
        "file (.xlsx, .xlsm, .xls, .csv, .parquet) is read as the month's actuals — its layout "
        "detected, or mapped by --profile — checked against the KPI library and loaded as one "
        "batch. Nothing is written if any value has a problem, unless --accept-invalid."
    )
    imp.add_argument("file", metavar="FILE", help=".xlsx / .xlsm / .xls / .csv / .parquet")
    imp.add_argument("--profile", metavar="NAME", help="read the file with a saved mapping profile")
    imp.add_argument(
        "--source",
        metavar="NAME",
        help="source of the actuals (default: the profile or file name); a later upload from "
        "the same source for the same months replaces its values",
    )
    imp.add_argument(
        "--bind",
        action="append",
        default=[],
        metavar="COLUMN=KPI",
        help="answer a binding question: the values of column COLUMN (its header, or the KPI "
        "text of a KPI column) go to the KPI with code KPI; write SHEET!COLUMN=KPI when the "
        "column is on several sheets; repeatable",
    )
    _loading_flags(imp)

    rb = sub.add_parser("rollback", help="undo a batch of actuals")
    rb.description = (
        "Undo a committed batch: its values are removed and the values it replaced come back. "
        "Refused while a later batch changed some of the same values."
    )
    rb.add_argument("batch", type=int, metavar="BATCH", help="batch number (see the Upload page)")
    rb.add_argument("--reason", default="", help="why, for the audit trail")

    pl = sub.add_parser("pull", help="pull actuals from a saved database source")
    pl.description = (
        "Run a saved source's query (read-only, with its time and row limits), aggregate the "
        "rows by its mapping, check them like an upload and load them as one batch. Nothing is "
        "written if any value has a problem, unless --accept-invalid. Exit code 5 when the "
        "source cannot be reached or read."
    )
    pl.add_argument("source", metavar="SOURCE", help="the source's name (see the Sources page)")
    pl.add_argument("--from", dest="first", metavar="P", help="first month, e.g. 2026-01")
    pl.add_argument("--to", dest="last", metavar="P", help="last month, e.g. 2026-06")
    pl.add_argument("--new", action="store_true", help="only the months after the last one pulled")
    _loading_flags(pl)

    sc = sub.add_parser("score", help="a unit's scorecard for a month, quarter or year")
    sc.description = "Score a unit's scorecard, e.g. score --unit SALES --period 2026-03."
    sc.add_argument("--unit", required=True, metavar="CODE", help="org unit code")
    sc.add_argument("--period", required=True, metavar="P", help="2026 (year), 2026-Q1 or 2026-03")
    sc.add_argument("--json", action="store_true", help="print the scorecard as JSON")

    al = sub.add_parser("alerts", help="evaluate alert rules; list new and open alerts")
    al.description = (
        "Evaluate the alert rules (status red/amber, at risk, anomaly, stale data, overdue "
        "actions) for a month — by default the latest with data — within the user's scope, "
        "raise what is new, close what no longer holds, and list the open alerts (new ones "
        "marked *). Run it from cron after the month-end close; with --push the new alerts, and "
        "open ones never pushed, go to the push channels."
    )
    al.add_argument("--month", metavar="YYYY-MM", help="the month to judge (default: latest)")
    al.add_argument(
        "--today", metavar="YYYY-MM-DD", help="judge stale data and due dates as of this day"
    )
    al.add_argument("--push", action="store_true", help="deliver alerts to the push channels")
    al.add_argument("--json", action="store_true", help="print the alerts as a JSON list")
    al.add_argument("--lang", choices=["en", "zh"], default="en", help="language of the table")
    # SUPPRESS: without the option here, the global --user (before the command) still holds.
    al.add_argument("--user", metavar="NAME", default=argparse.SUPPRESS, help="act as this user")

    _publish_parsers(sub)

    ex = sub.add_parser("export", help="write the KPI system as a workbook")
    ex.description = "Export the KPI system (within your scope) in the documented workbook format."
    ex.add_argument("file", metavar="FILE", help="the .xlsx file to write")
    ex.add_argument("--lang", choices=["en", "zh"], default="en", help="sheet and column names")
    ex.add_argument("--no-actuals", action="store_true", help="definitions and targets only")

    bk = sub.add_parser("backup", help="copy the whole warehouse to a backup file (admins)")
    bk.description = (
        "Write a consistent copy of the whole warehouse — every table and sequence, taken in "
        "one read transaction, safe while the app runs — as a .zip backup with a manifest "
        "(schema version, row counts and checksums). PATH is a .zip file or a directory to "
        "name one in (default: [backup] dir in .streamlit/secrets.toml, else backups/ next to "
        "the warehouse). With --keep N (or [backup] keep = N) only the newest N backups in "
        "that directory are kept."
    )
    bk.add_argument("path", nargs="?", metavar="PATH|DIR", help="backup file or directory")
    bk.add_argument("--keep", type=int, metavar="N", help="keep only the newest N backups")

    rs = sub.add_parser("restore", help="replace the warehouse by a backup (admins)")
    rs.description = (
        "Check a backup completely (manifest, checksums, every table) and only then replace "
        "the warehouse by it in one step, even while the app runs. The replaced warehouse is "
        "kept as <warehouse>.before-restore; an older backup is migrated, one from a newer "
        "version refused. Asks for confirmation unless --yes."
    )
    rs.add_argument("path", metavar="PATH", help="the backup .zip file")
    rs.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    tg = sub.add_parser("targets", help="load targets from a sheet with a target mapping (TOML)")
    tg.description = (
        "Read targets (baseline, target, challenge) from an analyst's own sheet with a target "
        'mapping file (type = "targets", see README): periods of any grain — year, quarter, '
        "month or ISO week (2019-W15; a week belongs to the month of its Thursday, and weekly "
        "values of sum KPIs add up to months) — fill-down where a blank means the value above, "
        "and a map of the file's unit values. They are saved as new target versions like an "
        "edit on the Targets page (department heads and admins), all or nothing."
    )
    tg.add_argument("file", metavar="FILE", help=".xlsx / .xlsm / .xls / .csv with the targets")
    tg.add_argument("--mapping", required=True, metavar="TOML", help="the target mapping file")
    tg.add_argument("--reason", required=True, help="why, kept with every new version")
    tg.add_argument(
        "--effective", metavar="YYYY-MM-DD", help="when a changed target takes effect (today)"
    )
    tg.add_argument("--dry-run", action="store_true", help="check and list, write nothing")

    for kind, what, page in (
        ("profile", "mapping profiles", "Upload"),
        ("source", "database sources", "Sources"),
    ):
        _definition_commands(sub, kind, what, page)
    return p


def _publish_parsers(sub) -> None:
    """`publish` and `unpublish`: what the Upload page's "Publish a month" does."""
    for command, says in (
        ("publish", "mark a month published: final for a unit and the units below it"),
        ("unpublish", "withdraw a month's publication"),
    ):
        pb = sub.add_parser(command, help=f"{says} (analysts, admins)")
        pb.description = (
            f"{says[0].upper()}{says[1:]}, as the Upload page does (analysts and admins, inside "
            "their scope; audited). A published month counts as final even where values are "
            "missing: boards, the Overview and the wall show it by default. What the month "
            "lacks is said first."
        )
        pb.add_argument("month", metavar="YYYY-MM", help="the month, e.g. 2026-11")
        pb.add_argument(
            "--unit", action="append", metavar="CODE",
            help="org unit code, repeatable (default: the top units of your scope)",
        )  # fmt: skip
        pb.add_argument("--json", action="store_true", help="print the result as JSON")


def _definition_commands(sub, kind: str, what: str, page: str) -> None:
    """`profile …` and `source …`: the same four actions on a TOML file of either."""
    cmd = sub.add_parser(kind, help=f"list, show, export or save {what} as TOML files")
    cmd.description = (
        f"{what.capitalize()} as readable TOML files, to keep in version control or move "
        f"between warehouses (the {page} page downloads and uploads the same files). A saved "
        "file is checked like the page checks it; every problem is named with its line."
        + (
            " A source's URL keeps its password as a reference (${secrets.source_secrets.NAME}"
            " or ${KPI_SOURCE_SECRET_…}); a file never holds the secret itself."
            if kind == "source"
            else ""
        )
    )
    actions = cmd.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help=f"the saved {what}")
    show = actions.add_parser("show", help=f"print a saved {kind} as TOML, with who saved it")
    show.add_argument("name", metavar="NAME")
    ex = actions.add_parser("export", help=f"write a saved {kind} to a TOML file")
    ex.add_argument("name", metavar="NAME")
    ex.add_argument("-o", "--output", metavar="FILE", help="the file to write (default: stdout)")
    save = actions.add_parser("save", help=f"check a TOML file and save the {kind} it describes")
    save.add_argument("file", metavar="FILE", help=".toml file (see export)")
    save.add_argument("--dry-run", action="store_true", help="check the file, save nothing")


def _loading_flags(parser: argparse.ArgumentParser) -> None:
    """What `import` of actuals and `pull` share: they end the same way."""
    parser.add_argument(
        "--accept-invalid",
        action="store_true",
        help="load the valid values and leave the invalid ones out (they are still listed)",
    )
    parser.add_argument("--dry-run", action="store_true", help="check and count, write nothing")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
