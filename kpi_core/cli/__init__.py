"""`python -m kpi_core`: what must run unattended (cron after the month-end close) or without a browser.

Exit codes: 0 done · 1 input refused (every problem listed) · 2 wrong usage · 3 not found or
outside the user's scope · 4 warehouse busy (another process held it too long) · 5 a database
source cannot be reached or read (connection, password, driver, query, time-out).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from datetime import date
from pathlib import Path

import pandas as pd

from kpi_core import alerts, backup, clock, completeness, export, i18n, people, service, workbook
from kpi_core.access import Scope
from kpi_core.board import data_range
from kpi_core.catalog import load_catalog
from kpi_core.errors import (
    KpiError,
    NotFoundError,
    ScopeError,
    ValidationError,
    WarehouseBusyError,
)
from kpi_core.ingest import (
    definition_file,
    files,
    intake,
    profile,
    sources,
    target_mapping,
    validate,
)
from kpi_core.ingest.names import Names
from kpi_core.periods import parse_period
from kpi_core.settings import env
from kpi_core.warehouse import Warehouse, resolve_path


class UsageError(KpiError):
    """The command line is incomplete (e.g. it does not say who runs it)."""


EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_BUSY, EXIT_SOURCE = 0, 1, 2, 3, 4, 5
# Seconds an import or pull waits for its alert rules and pushes before it exits; enough for
# every retry of a few messages to a failing receiver.
AFTER_COMMIT_WAIT = 60.0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m kpi_core",
        description="KPI Monitor command line. The warehouse comes from --warehouse, "
        "KPI_WAREHOUSE, or [warehouse] path in .streamlit/secrets.toml.",
        epilog="Exit codes: 0 done, 1 input refused, 2 wrong usage, 3 not found or outside "
        "scope, 4 warehouse busy, 5 source unreachable or "
        "unreadable.",
    )
    p.add_argument("--warehouse", metavar="PATH", help="DuckDB warehouse file")
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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except ValidationError as exc:
        if getattr(args, "json", False):
            problems = [p.__dict__ for p in exc.problems]
            print(json.dumps({"ok": False, "problems": problems}, ensure_ascii=False, indent=2))
        else:
            print(str(exc), file=sys.stderr)
        return EXIT_REFUSED
    except UsageError as exc:
        return _failed(args, exc, EXIT_USAGE)
    except (NotFoundError, ScopeError) as exc:
        return _failed(args, exc, EXIT_NOT_FOUND)
    except WarehouseBusyError as exc:
        return _failed(args, exc, EXIT_BUSY)
    except sources.SourceError as exc:
        return _failed(args, exc, EXIT_SOURCE)
    except KpiError as exc:
        return _failed(args, exc, EXIT_REFUSED)


def _failed(args: argparse.Namespace, exc: Exception, code: int) -> int:
    """The refusal on stderr; with --json also as JSON on stdout, so a script always has a
    document to read (a file that cannot be read at all has no report)."""
    print(f"error: {exc}", file=sys.stderr)
    if getattr(args, "json", False):
        print(json.dumps({"ok": False, "error": str(exc), "exit": code}, ensure_ascii=False))
    return code


def _run(args: argparse.Namespace) -> int:
    wh = Warehouse(resolve_path(args.warehouse), linger=0)
    try:
        if args.command == "restore":  # replacing the file: it must not be held open meanwhile
            return _restore(wh, args)
        with wh.hold():
            return _command(wh, args)
    finally:
        wh.close()


def _command(wh: Warehouse, args: argparse.Namespace) -> int:
    if args.command == "init":
        loaded = service.ensure_demo(wh, today=clock.today()) if args.demo else False
        note = " (demo company loaded)" if loaded else ""
        print(f"warehouse {wh.path} at schema version {wh.schema_version()}{note}")
        return EXIT_OK

    actor = _who(wh, args)
    if args.command == "import" and (args.profile or not _is_system_workbook(args.file)):
        return _import_actuals(wh, actor, args)
    if args.command == "import" and args.bind:
        raise UsageError(
            f"--bind is for actuals; {Path(args.file).name} is a KPI-system workbook, whose "
            "sheets name their KPIs by code"
        )
    if args.command == "pull":
        return _pull(wh, actor, args)
    if args.command == "rollback":
        done = intake.rollback(wh, args.batch, actor, args.reason)
        print(f"batch {args.batch} rolled back: {done['restored']} restored, "
              f"{done['removed']} removed")  # fmt: skip
        return EXIT_OK
    if args.command == "import":
        result = service.import_workbook(wh, args.file, actor, dry_run=args.dry_run)
        if args.json:
            out = {
                "ok": True,
                "dry_run": result.dry_run,
                "batch": result.batch_id,
                "summary": result.summary,
            }
            print(json.dumps(out, ensure_ascii=False, indent=2))
        else:
            verb = "would change" if result.dry_run else "changed"
            parts = ", ".join(f"{k}={v}" for k, v in sorted(result.summary.items())) or "nothing"
            print(f"{Path(args.file).name}: {verb} {parts}")
        return EXIT_OK

    if args.command in ("publish", "unpublish"):
        return _publish(wh, actor, args)

    if args.command == "score":
        card = service.score_unit(wh, actor, args.unit, parse_period(args.period))
        if args.json:
            print(json.dumps(card, ensure_ascii=False, indent=2))
        else:
            print(_text_card(card))
        return EXIT_OK

    if args.command == "alerts":
        return _alerts(wh, actor, args)

    if args.command == "backup":
        conf = backup.settings(wh)
        keep = args.keep if args.keep is not None else conf.keep
        done = backup.backup(wh, args.path or conf.directory, actor, keep=keep)
        print(f"wrote {done.path}: {len(done.manifest.tables)} tables, {done.manifest.rows} rows, "
              f"schema {done.manifest.schema_version}")  # fmt: skip
        for old in done.removed:
            print(f"removed {old} (keeping {keep})")
        return EXIT_OK

    if args.command == "targets":
        return _targets(wh, actor, args)

    if args.command in ("profile", "source"):
        return _definition(wh, actor, args)

    if args.command == "export":
        frames = export.system_frames(wh, actor.scope, actuals=not args.no_actuals)
        workbook.write(frames, args.file, lang=args.lang)
        print(f"wrote {args.file}: " + ", ".join(f"{k} {len(v)}" for k, v in frames.items()))
        return EXIT_OK
    return EXIT_USAGE  # pragma: no cover - argparse requires a command


def _who(wh: Warehouse, args: argparse.Namespace) -> service.Actor:
    """The named user, or full access only when asked for by --admin: a command that reads or
    writes data never falls back to full access silently (a warehouse without users aside)."""
    if args.admin and args.user:
        raise UsageError("Give --user NAME or --admin, not both.")
    if args.admin:
        return service.Actor(f"admin@cli:{_system_user()}", "admin", Scope.all())
    name = args.user or env("KPI_USER")
    if name:
        return service.actor(wh, name)
    if wh.one("SELECT count(*) FROM app_user")[0] == 0:
        return service.SYSTEM
    raise UsageError(
        "Say who runs this command: --user NAME (or KPI_USER) acts within that user's role and "
        "scope; --admin acts with full access."
    )


def _system_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user without a passwd entry
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


def _restore(wh: Warehouse, args: argparse.Namespace) -> int:
    actor = _who(wh, args)
    manifest = backup.read_manifest(args.path)
    print(f"{args.path}: backup of {manifest.created_at} by {manifest.created_by}, schema "
          f"{manifest.schema_version}, {len(manifest.tables)} tables, {manifest.rows} rows")  # fmt: skip
    if not args.yes:
        if not sys.stdin.isatty():
            raise KpiError("Restoring replaces the whole warehouse: confirm with --yes.")
        answer = input(f"Replace the warehouse {wh.path} by this backup? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing changed")
            return EXIT_REFUSED
    done = backup.restore(wh, args.path, actor)
    migrated = f", migrated from schema {done.migrated_from}" if done.migrated_from else ""
    print(f"restored {wh.path} from {args.path}{migrated}; the replaced warehouse is kept "
          f"as {done.kept_as}")  # fmt: skip
    return EXIT_OK


def _alerts(wh: Warehouse, actor: service.Actor, args: argparse.Namespace) -> int:
    today = None
    if args.today:
        try:
            today = date.fromisoformat(args.today)
        except ValueError:
            raise KpiError(f"'{args.today}' is not a day — write it like 2026-11-21") from None
    result = alerts.run(wh, actor, push=args.push, today=today, month=_month(args.month))
    new = {a.id for a in result.new}
    listed = alerts.open_alerts(wh, load_catalog(wh), actor)
    known = people.load(wh)
    rows = [
        {
            "id": int(r.id),
            "new": int(r.id) in new,
            "kpi": None if pd.isna(r.kpi) else r.kpi,
            "unit": r.unit,
            "period": r.period_label,
            "kind": r.kind,
            "severity": r.severity,
            # The person as every surface names them, and the user id where they have one.
            "owner": None if pd.isna(r.owner) else known.name(r.owner),
            "owner_user": None if pd.isna(r.owner) else known.user_of(r.owner),
            "message_zh": r.message_zh,
            "message_en": r.message_en,
            "state": r.state,
        }
        for r in listed.itertuples()
    ]
    failed = [d for d in result.deliveries or [] if getattr(d, "ok", True) is False]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        month = ", ".join(f"{m:%Y-%m}" for m in result.months) or "no data"
        print(
            f"alerts for {month}: {len(result.new)} new, {len(result.closed)} closed by the "
            f"system, {len(rows)} open"
        )
        for r in rows:
            mark = "*" if r["new"] else " "
            message = r["message_zh"] if args.lang == "zh" else r["message_en"]
            print(
                f"{mark}{r['id']:>6}  {r['severity']:<6} {r['kind']:<8} {r['period']:<7} "
                f"{r['unit']:<10} {r['kpi'] or '-':<14} {r['owner'] or '-'}\n"
                f"         {message}"
            )
        if result.deliveries is not None:
            print(f"pushed: {len(result.deliveries)} deliveries, {len(failed)} failed")
    for d in failed:
        print(f"push failed: {d}", file=sys.stderr)
    return EXIT_OK


def _is_system_workbook(path: str) -> bool:
    """A workbook with any KPI-system sheet besides actuals goes to the system import."""
    if Path(path).suffix.lower() not in (".xlsx", ".xlsm", ".xls"):
        return False
    try:
        sheets = workbook.read(path)
    except workbook.WorkbookError:
        return False  # the intake explains what is wrong with the file
    return bool(set(sheets) - {"actuals"})


def _month(text: str | None):
    if text is None:
        return None
    period = parse_period(text)
    if period.grain != "M":
        raise KpiError(f"'{text}' is not a month — write it like 2026-03")
    return period.start


def _publish(wh: Warehouse, actor: service.Actor, args: argparse.Namespace) -> int:
    month = _month(args.month)
    cat = load_catalog(wh)
    units = [cat.unit(code) for code in args.unit] if args.unit else None
    ids = [u.id for u in units] if units else cat.scope_roots(actor.scope)
    span = data_range(wh, actor.scope, cat)
    if span is None or month > span[1]:
        latest = "none" if span is None else f"{span[1]:%Y-%m}"
        raise KpiError(
            f"nothing is loaded for {month:%Y-%m} (latest month with data: {latest}) — "
            "load its actuals before publishing it"
        )
    publish = args.command == "publish"
    done = []
    for unit_id in ids:
        before = completeness.month_status(wh, cat, unit_id, month)
        completeness.publish(wh, cat, actor, unit_id, month, published=publish)
        after = completeness.month_status(wh, cat, unit_id, month)
        done.append((unit_id, before, after))
    if args.json:
        out = {
            "ok": True,
            "month": f"{month:%Y-%m}",
            "units": [
                {
                    "unit": cat.units[u].code,
                    "published": after.published,
                    "state": after.state,
                    "loaded": after.loaded,
                    "expected": after.expected,
                    "missing": [
                        {
                            "unit": cat.units[g.unit_id].code,
                            "loaded": g.loaded,
                            "expected": g.expected,
                        }
                        for g in before.parts
                    ],  # fmt: skip
                }
                for u, before, after in done
            ],
        }
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return EXIT_OK
    for u, before, after in done:
        state = i18n.month_state(before.state, before.loaded, before.expected, "en")
        lacking = ", ".join(
            f"{cat.units[g.unit_id].code} {g.loaded}/{g.expected}" for g in before.parts
        )
        now = (
            "published"
            if after.published
            else i18n.month_state(after.state, after.loaded, after.expected, "en")
        )
        missing = f", missing: {lacking}" if lacking and not before.published else ""
        print(f"{cat.units[u].code} {month:%Y-%m}: {state}{missing} → {now}")
    return EXIT_OK


def _pull(wh: Warehouse, actor: service.Actor, args: argparse.Namespace) -> int:
    source = sources.load(wh, args.source)
    prepared = sources.prepare_pull(
        wh, source, actor, first=_month(args.first), last=_month(args.last), new_only=args.new
    )
    return _report(wh, actor, args, prepared, f"source {source.name}")


def _import_actuals(wh: Warehouse, actor: service.Actor, args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise KpiError(f"File not found: {args.file}")
    binds = _binds(args.bind, load_catalog(wh))
    upload = [(path.name, path.read_bytes())]
    prepared = intake.prepare(wh, upload, actor, mapping=args.profile, source=args.source)
    if binds:
        # The answers are given per binding as the preview found it: read once to find them.
        choices = _choices(binds, prepared.bindings, path.name)
        prepared = intake.prepare(
            wh, upload, actor, mapping=args.profile, source=args.source, choices=choices
        )
    return _report(wh, actor, args, prepared, path.name)


def _binds(given: list[str], cat) -> list[tuple[str, str, str]]:
    """`--bind` answers as (what was written, column, KPI code); UsageError naming a malformed
    one or an unknown KPI code (any case is accepted: codes are unique without it)."""
    codes = {k.code.casefold(): k.code for k in cat.kpis.values()}
    out = []
    for text in given:
        column, eq, code = text.rpartition("=")
        column, code = column.strip(), code.strip()
        if not eq or not column or not code:
            raise UsageError(
                f"--bind '{text}': write COLUMN=KPI_CODE, e.g. --bind 'Sales=CAR_SALES' "
                "(SHEET!COLUMN=KPI_CODE for a column on several sheets)"
            )
        if code.casefold() not in codes:
            hint = Names(cat).kpi_hint(code)
            raise UsageError(
                f"--bind '{text}': '{code}' is not a KPI code of the library"
                + (f" — {hint}" if hint else "")
            )
        out.append((text, column, codes[code.casefold()]))
    return out


def _choices(
    binds: list[tuple[str, str, str]], bindings: list[validate.Binding], file: str
) -> dict[tuple[str, str, str, str], str]:
    """The `--bind` answers as `intake.prepare` choices, per binding key. A column is the
    binding's text (a header, a KPI cell) or its place ("header B (Sales)"), exactly or in any
    case; SHEET!COLUMN names its sheet. Refused: a column the file does not bind, one on several
    sheets without its sheet, and one bound to two KPIs."""
    sheets = list(dict.fromkeys(b.sheet for b in bindings))
    chosen: dict[tuple[str, str, str, str], tuple[str, str]] = {}
    for text, column, code in binds:
        sheet, bang, rest = column.partition("!")
        qualified = bang and rest.strip() and any(_same(sheet, s) for s in sheets)
        name = rest.strip() if qualified else column
        pool = [b for b in bindings if not qualified or _same(sheet, b.sheet)]
        hits = [b for b in pool if name in (b.text, b.column)] or [
            b for b in pool if _same(name, b.text) or _same(name, b.column)
        ]
        if not hits:
            raise UsageError(
                f"--bind '{text}': {file} has no column '{column}' that holds a KPI — its "
                f"columns are: {_listed(bindings, file)}"
            )
        on = list(dict.fromkeys(b.sheet for b in hits))
        if len(on) > 1:
            raise UsageError(
                f"--bind '{text}': column '{name}' is on sheets "
                f"{', '.join(repr(s) for s in on)} of {file} — say which, e.g. "
                f"--bind '{on[0]}!{name}={code}'"
            )
        for b in hits:
            before = chosen.get(b.key)
            if before and before[0] != code:
                raise UsageError(
                    f"column '{b.text}' of sheet '{b.sheet}' is bound twice ({before[0]}, "
                    f"{code}) — by --bind '{before[1]}' and --bind '{text}'"
                )
            chosen[b.key] = (code, text)
    return {key: code for key, (code, _) in chosen.items()}


def _same(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


def _listed(bindings: list[validate.Binding], file: str) -> str:
    """The texts the file binds, sheet by sheet: "Margin, Sales (sheet 'Cars'); …"."""
    by_sheet: dict[str, list[str]] = {}
    for b in bindings:
        if b.text not in by_sheet.setdefault(b.sheet, []):
            by_sheet[b.sheet].append(b.text)
    if not by_sheet:
        return "none (no KPI column was found)"
    return "; ".join(
        ", ".join(texts) + ("" if sheet in ("", file) else f" (sheet '{sheet}')")
        for sheet, texts in by_sheet.items()
    )


def _report(wh, actor, args, prepared: intake.Intake, what: str) -> int:
    """Commit unless refused or a dry run; print the intake's report; the exit code."""
    committed = None
    refused = bool(prepared.errors) and not args.accept_invalid
    if not args.dry_run and not refused and len(prepared.rows):
        committed = intake.commit(wh, prepared, actor, accept_invalid=args.accept_invalid)
        # The alert rules and pushes run on threads that use the warehouse: they finish before
        # it is closed and the process ends (a push cut off by exit aborted the process).
        if not committed.finish(AFTER_COMMIT_WAIT):
            print(
                f"warning: the alerts' pushes were still retrying after {AFTER_COMMIT_WAIT:.0f} "
                "s and were stopped; the push log on the Alerts page has every attempt",
                file=sys.stderr,
            )
    cat = load_catalog(wh)
    out = intake.report(prepared, cat, committed)
    out["dry_run"] = args.dry_run
    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=2, default=str))
    else:
        # Every column's KPI and how it was matched, so nothing loads by an unseen guess.
        for b in prepared.bindings:
            print(f"binding: {intake.describe_binding(b)}")
        for f in prepared.findings:
            if f.severity != "info":
                print(f"{f.severity}: {intake.describe(f)}", file=sys.stderr)
        counts = ", ".join(f"{k} {v}" for k, v in out["counts"].items())
        turns = ", ".join(f"{n} turn {light}" for light, n in out["turns"].items())
        if refused:
            verb = "refused, nothing written"
        elif args.dry_run:
            verb = "dry run, nothing written"
        elif committed and committed.batch_id:
            verb = f"loaded as batch {committed.batch_id}"
        elif not len(prepared.rows):
            verb = "nothing to load"
        else:
            verb = "nothing changed"
        print(f"{what}: {verb} ({counts}{'; ' + turns if turns else ''})")
    # Nothing valid with errors is a refusal; nothing at all (no new month yet) is not.
    nothing_valid = bool(prepared.errors) and not len(prepared.rows)
    return EXIT_REFUSED if refused or nothing_valid else EXIT_OK


def _targets(wh: Warehouse, actor: service.Actor, args: argparse.Namespace) -> int:
    mapping_path, sheet_path = Path(args.mapping), Path(args.file)
    for path in (mapping_path, sheet_path):
        if not path.is_file():
            raise KpiError(f"File not found: {path}")
    try:
        text = mapping_path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise KpiError(f"{mapping_path.name} is not a UTF-8 text file") from None
    mapping = definition_file.read_target_mapping(text, mapping_path.name)
    effective = clock.today()
    if args.effective:
        try:
            effective = date.fromisoformat(args.effective)
        except ValueError:
            raise KpiError(f"'{args.effective}' is not a day — write it like 2026-11-21") from None
    tables = files.read_file(sheet_path.name, sheet_path.read_bytes())
    cat = load_catalog(wh)
    found, saved = target_mapping.save(
        wh, cat, actor, mapping, tables, reason=args.reason, effective=effective,
        dry_run=args.dry_run,
    )  # fmt: skip
    for e in found:
        levels = ", ".join(
            f"{f} {_fmt(e.old[f], 2)} → {_fmt(e.new[f], 2)}" for f in e.changed if f != "phasing"
        )
        print(f"  {e.where(cat)}: {levels}")
    verb = "would save" if saved is None else "saved"
    print(f"{sheet_path.name}: {verb} {len(found)} target versions")
    return EXIT_OK


def _definition(wh: Warehouse, actor: service.Actor, args: argparse.Namespace) -> int:
    kind = args.command
    definition_file.may_read(actor, kind)
    module = profile if kind == "profile" else sources
    if args.action == "list":
        for row in definition_file.listing(wh, kind):
            print("  ".join(str(v) for v in row))
        return EXIT_OK
    if args.action in ("show", "export"):
        text = definition_file.export_text(wh, kind, args.name)
        if args.action == "show":
            print(definition_file.saved_note(wh, kind, args.name) + text, end="")
        elif args.output:
            Path(args.output).write_text(text, encoding="utf-8")
            print(f"wrote {args.output}: {kind} '{args.name}'")
        else:
            print(text, end="")
        return EXIT_OK
    path = Path(args.file)
    if not path.is_file():
        raise KpiError(f"File not found: {args.file}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise KpiError(f"{path.name} is not a UTF-8 text file") from None
    reader = definition_file.read_profile if kind == "profile" else definition_file.read_source
    item = reader(text, path.name, load_catalog(wh))
    if args.dry_run:
        print(f"{path.name}: {kind} '{item.name}' is complete; nothing saved (dry run)")
        return EXIT_OK
    module.save(wh, item, actor)
    print(f"saved {kind} '{item.name}' from {path.name}")
    return EXIT_OK


def _fmt(v: float | None, digits: int = 1) -> str:
    return "—" if v is None else f"{v:,.{digits}f}"


def _text_card(card: dict) -> str:
    lines = [
        f"{card['unit']} {card['period']}: score {_fmt(card['score'])} ({card['status']}), "
        f"coverage {card['coverage'] * 100:.0f}%",
    ]
    if card.get("vetoed_by"):
        lines.append(f"  vetoed by: {', '.join(card['vetoed_by'])}")
    lines.append(f"  {'KPI':<16}{'weight':>7}{'actual':>16}{'target':>16}{'score':>8}  status")
    for k in card["kpis"]:
        lines.append(
            f"  {k['kpi']:<16}{k['weight']:>7g}{_fmt(k['actual'], 2):>16}"
            f"{_fmt(k['target'], 2):>16}{_fmt(k['score']):>8}  {k['status']}"
        )
    for u in card.get("units", []):
        lines.append(
            f"  [{u['unit']:<14}]{u['weight']:>7g}{'':>32}{_fmt(u['score']):>8}  {u['status']}"
        )
    return "\n".join(lines)
