"""The `profile` and `source` commands: list, show, export or save mapping profiles and database
sources as TOML files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kpi_core import access
from kpi_core.catalog import load_catalog
from kpi_core.cli.outcome import EXIT_OK
from kpi_core.errors import (
    KpiError,
)
from kpi_core.ingest import (
    definition_file,
    profile,
    sources,
)
from kpi_core.messages import Message
from kpi_core.warehouse import Warehouse


def _definition(wh: Warehouse, actor: access.Actor, args: argparse.Namespace) -> int:
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
        raise KpiError(Message("wb_err_no_file", path=args.file))
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise KpiError(Message("cli_err_not_utf8", file=path.name)) from None
    reader = definition_file.read_profile if kind == "profile" else definition_file.read_source
    item = reader(text, path.name, load_catalog(wh))
    if args.dry_run:
        print(f"{path.name}: {kind} '{item.name}' is complete; nothing saved (dry run)")
        return EXIT_OK
    module.save(wh, item, actor)
    print(f"saved {kind} '{item.name}' from {path.name}")
    return EXIT_OK
