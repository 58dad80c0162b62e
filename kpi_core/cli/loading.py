"""The commands that load data: `import` (actuals or a KPI-system workbook), `pull` (a saved
database source) and `targets` (a sheet with a target mapping), with their report.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

from kpi_core import access, clock, service
from kpi_core.catalog import load_catalog
from kpi_core.cli.arguments import _month
from kpi_core.cli.outcome import EXIT_OK, EXIT_REFUSED, UsageError
from kpi_core.cli.text import _fmt
from kpi_core.errors import (
    KpiError,
)
from kpi_core.ingest import (
    definition_file,
    files,
    intake,
    sources,
    target_mapping,
    validate,
)
from kpi_core.ingest.names import Names
from kpi_core.messages import Items, Message
from kpi_core.warehouse import Warehouse

# Seconds an import or pull waits for its alert rules and pushes before it exits; enough for
# every retry of a few messages to a failing receiver.
AFTER_COMMIT_WAIT = 60.0


def _pull(wh: Warehouse, actor: access.Actor, args: argparse.Namespace) -> int:
    source = sources.load(wh, args.source)
    prepared = sources.prepare_pull(
        wh, source, actor, first=_month(args.first), last=_month(args.last), new_only=args.new
    )
    return _report(wh, actor, args, prepared, f"source {source.name}")


def _import_actuals(wh: Warehouse, actor: access.Actor, args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise KpiError(Message("wb_err_no_file", path=args.file))
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
            raise UsageError(Message("cli_err_bind_form", text=text))
        if code.casefold() not in codes:
            hint = Names(cat).kpi_hint(code)
            if hint:
                raise UsageError(Message("cli_err_bind_code_hint", text=text, code=code, hint=hint))
            raise UsageError(Message("cli_err_bind_code", text=text, code=code))
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
                Message(
                    "cli_err_bind_no_column",
                    text=text,
                    file=file,
                    column=column,
                    columns=_listed(bindings, file),
                )
            )
        on = list(dict.fromkeys(b.sheet for b in hits))
        if len(on) > 1:
            sheets = Items((repr(s) for s in on), commas=True)
            raise UsageError(
                Message(
                    "cli_err_bind_sheets",
                    text=text,
                    name=name,
                    sheets=sheets,
                    file=file,
                    first=on[0],
                    code=code,
                )
            )
        for b in hits:
            before = chosen.get(b.key)
            if before and before[0] != code:
                raise UsageError(
                    Message(
                        "cli_err_bound_twice",
                        column=b.text,
                        sheet=b.sheet,
                        first=before[0],
                        code=code,
                        by=before[1],
                        text=text,
                    )
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
        committed = service.commit_actuals(wh, prepared, actor, accept_invalid=args.accept_invalid)
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


def _targets(wh: Warehouse, actor: access.Actor, args: argparse.Namespace) -> int:
    mapping_path, sheet_path = Path(args.mapping), Path(args.file)
    for path in (mapping_path, sheet_path):
        if not path.is_file():
            raise KpiError(Message("wb_err_no_file", path=str(path)))
    try:
        text = mapping_path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise KpiError(Message("cli_err_not_utf8", file=mapping_path.name)) from None
    mapping = definition_file.read_target_mapping(text, mapping_path.name)
    effective = clock.today()
    if args.effective:
        try:
            effective = date.fromisoformat(args.effective)
        except ValueError:
            raise KpiError(Message("cli_err_not_a_day", value=args.effective)) from None
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
