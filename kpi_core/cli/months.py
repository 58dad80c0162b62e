"""The `publish` and `unpublish` commands: a unit's months marked complete for the pages, or no
longer (analysts, admins).
"""

from __future__ import annotations

import argparse
import json

from kpi_core import access, completeness, i18n
from kpi_core.actuals import data_range
from kpi_core.catalog import load_catalog
from kpi_core.cli.arguments import _month
from kpi_core.cli.outcome import EXIT_OK
from kpi_core.errors import (
    KpiError,
)
from kpi_core.messages import Message
from kpi_core.warehouse import Warehouse


def _publish(wh: Warehouse, actor: access.Actor, args: argparse.Namespace) -> int:
    month = _month(args.month)
    cat = load_catalog(wh)
    units = [cat.unit(code) for code in args.unit] if args.unit else None
    ids = [u.id for u in units] if units else cat.scope_roots(actor.scope)
    span = data_range(wh, actor.scope, cat)
    if span is None or month > span[1]:
        latest = Message("cli_w_no_month") if span is None else f"{span[1]:%Y-%m}"
        raise KpiError(Message("cli_err_nothing_loaded", month=f"{month:%Y-%m}", latest=latest))
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
