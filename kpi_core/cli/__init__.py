"""`python -m kpi_core`: what must run unattended (cron after the month-end close) or without a browser.

Exit codes: 0 done · 1 input refused (every problem listed) · 2 wrong usage · 3 not found or
outside the user's scope · 4 warehouse busy (another process held it too long) · 5 a database
source cannot be reached or read (connection, password, driver, query, time-out).

This module runs a command; `parser` reads the command line, `arguments` the arguments every
command shares, `outcome` has the exit codes; one module per command group: `loading` (import,
pull, targets), `months` (publish, unpublish), `alert_run` (alerts), `definitions` (profile,
source); `text` prints a scorecard.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kpi_core import backup, clock, export, service, workbook
from kpi_core.cli.alert_run import _alerts
from kpi_core.cli.arguments import _is_system_workbook, _who
from kpi_core.cli.definitions import _definition
from kpi_core.cli.loading import _import_actuals, _pull, _targets
from kpi_core.cli.months import _publish
from kpi_core.cli.outcome import (
    EXIT_BUSY,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_SOURCE,
    EXIT_USAGE,
    UsageError,
)
from kpi_core.cli.parser import _parser
from kpi_core.cli.text import _text_card
from kpi_core.errors import (
    KpiError,
    NotFoundError,
    ScopeError,
    ValidationError,
    WarehouseBusyError,
)
from kpi_core.ingest import sources
from kpi_core.messages import Message
from kpi_core.periods import parse_period
from kpi_core.warehouse import Warehouse, open_warehouse, resolve_path


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except ValidationError as exc:
        if getattr(args, "json", False):
            # A problem's message in English, as the command line has always written it.
            problems = [{**p.__dict__, "message": str(p.message)} for p in exc.problems]
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
    wh = open_warehouse(resolve_path(args.warehouse), linger=0)
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
        raise UsageError(Message("cli_err_bind_system", file=Path(args.file).name))
    if args.command == "pull":
        return _pull(wh, actor, args)
    if args.command == "rollback":
        done = service.rollback_actuals(wh, args.batch, actor, args.reason)
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


def _restore(wh: Warehouse, args: argparse.Namespace) -> int:
    actor = _who(wh, args)
    backup.file_only(wh)  # before reading the zip: on PostgreSQL, pg_restore
    manifest = backup.read_manifest(args.path)
    print(f"{args.path}: backup of {manifest.created_at} by {manifest.created_by}, schema "
          f"{manifest.schema_version}, {len(manifest.tables)} tables, {manifest.rows} rows")  # fmt: skip
    if not args.yes:
        if not sys.stdin.isatty():
            raise KpiError(Message("cli_err_confirm_restore"))
        answer = input(f"Replace the warehouse {wh.path} by this backup? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing changed")
            return EXIT_REFUSED
    done = backup.restore(wh, args.path, actor)
    migrated = f", migrated from schema {done.migrated_from}" if done.migrated_from else ""
    print(f"restored {wh.path} from {args.path}{migrated}; the replaced warehouse is kept "
          f"as {done.kept_as}")  # fmt: skip
    return EXIT_OK
