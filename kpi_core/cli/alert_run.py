"""The `alerts` command: evaluate the alert rules, list new and open alerts."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date

import pandas as pd

from kpi_core import access, alerts, people
from kpi_core.catalog import load_catalog
from kpi_core.cli.arguments import _month
from kpi_core.cli.outcome import EXIT_OK
from kpi_core.errors import (
    KpiError,
)
from kpi_core.messages import Message
from kpi_core.warehouse import Warehouse


def _alerts(wh: Warehouse, actor: access.Actor, args: argparse.Namespace) -> int:
    today = None
    if args.today:
        try:
            today = date.fromisoformat(args.today)
        except ValueError:
            raise KpiError(Message("cli_err_not_a_day", value=args.today)) from None
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
