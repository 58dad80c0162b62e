"""`python -m kpi_core`: what must run unattended (cron after the month-end close) or without a browser.

Exit codes: 0 done · 1 input refused (every problem listed) · 2 wrong usage · 3 not found or
outside the user's scope · 4 warehouse busy (another process held it too long).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kpi_core import export, service, workbook
from kpi_core.errors import (
    KpiError,
    NotFoundError,
    ScopeError,
    ValidationError,
    WarehouseBusyError,
)
from kpi_core.periods import parse_period
from kpi_core.warehouse import Warehouse, resolve_path

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_BUSY = 0, 1, 2, 3, 4


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m kpi_core",
        description="KPI Monitor command line. The warehouse comes from --warehouse, "
        "KPI_WAREHOUSE, or [warehouse] path in .streamlit/secrets.toml.",
        epilog="Exit codes: 0 done, 1 input refused, 2 wrong usage, 3 not found or outside "
        "scope, 4 warehouse busy.",
    )
    p.add_argument("--warehouse", metavar="PATH", help="DuckDB warehouse file")
    p.add_argument(
        "--user",
        metavar="NAME",
        help="act as this user, within their scope (default: full access)",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init = sub.add_parser("init", help="create or migrate the warehouse")
    init.description = "Create the warehouse file if needed and apply schema migrations."
    init.add_argument("--demo", action="store_true", help="load the demo company if empty")

    imp = sub.add_parser("import", help="import a KPI-system workbook")
    imp.description = (
        "Import a KPI-system workbook (sheets kpis, org_units, tree, targets, actuals, phasing; "
        "English or Chinese names). Nothing is written if any row has a problem."
    )
    imp.add_argument("file", metavar="FILE", help=".xlsx / .xls workbook")
    imp.add_argument("--dry-run", action="store_true", help="check and count, write nothing")
    imp.add_argument("--json", action="store_true", help="print the result as JSON")

    sc = sub.add_parser("score", help="a unit's scorecard for a month, quarter or year")
    sc.description = "Score a unit's scorecard, e.g. score --unit SALES --period 2026-03."
    sc.add_argument("--unit", required=True, metavar="CODE", help="org unit code")
    sc.add_argument("--period", required=True, metavar="P", help="2026 (year), 2026-Q1 or 2026-03")
    sc.add_argument("--json", action="store_true", help="print the scorecard as JSON")

    ex = sub.add_parser("export", help="write the KPI system as a workbook")
    ex.description = "Export the KPI system (within your scope) in the documented workbook format."
    ex.add_argument("file", metavar="FILE", help="the .xlsx file to write")
    ex.add_argument("--lang", choices=["en", "zh"], default="en", help="sheet and column names")
    ex.add_argument("--no-actuals", action="store_true", help="definitions and targets only")
    return p


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
    except (NotFoundError, ScopeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except WarehouseBusyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BUSY
    except KpiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REFUSED


def _run(args: argparse.Namespace) -> int:
    wh = Warehouse(resolve_path(args.warehouse), linger=0)
    try:
        with wh.hold():
            return _command(wh, args)
    finally:
        wh.close()


def _command(wh: Warehouse, args: argparse.Namespace) -> int:
    if args.command == "init":
        loaded = service.ensure_demo(wh) if args.demo else False
        note = " (demo company loaded)" if loaded else ""
        print(f"warehouse {wh.path} at schema version {wh.schema_version()}{note}")
        return EXIT_OK

    actor = service.actor(wh, args.user)
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

    if args.command == "score":
        card = service.score_unit(wh, actor, args.unit, parse_period(args.period))
        if args.json:
            print(json.dumps(card, ensure_ascii=False, indent=2))
        else:
            print(_text_card(card))
        return EXIT_OK

    if args.command == "export":
        frames = export.system_frames(wh, actor.scope, actuals=not args.no_actuals)
        workbook.write(frames, args.file, lang=args.lang)
        print(f"wrote {args.file}: " + ", ".join(f"{k} {len(v)}" for k, v in frames.items()))
        return EXIT_OK
    return EXIT_USAGE  # pragma: no cover - argparse requires a command


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
