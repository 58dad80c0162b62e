"""An intake said in plain words and data, the same on the page, the command line and in logs:
a finding or a binding as one line, the whole intake as a dict (`import --json`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from kpi_core.catalog import Catalog
from kpi_core.ingest import validate
from kpi_core.ingest.layout import Finding

if TYPE_CHECKING:  # the intake imports this module, to hand these on
    from kpi_core.ingest.intake import Committed, Intake


def describe(f: Finding) -> str:
    """One line per finding, the same on the page and the command line."""
    where = [f.file] if f.file else []
    if f.sheet and f.sheet != f.file:
        where.append(f"sheet '{f.sheet}'")
    if f.row is not None:
        where.append(f"row {f.row}")
    if f.column:
        where.append(f"column {f.column}")
    place = ", ".join(where)
    text = f"{place}: {f.message}" if place else str(f.message)  # a coded message: its English
    return f"{text} — {f.hint}" if f.hint else text


def describe_binding(b: validate.Binding) -> str:
    """One line per binding, the same on the command line and in logs: where, what it says,
    the KPI and how it was matched."""
    where = [b.file] if b.file else []
    if b.sheet and b.sheet != b.file:
        where.append(f"sheet '{b.sheet}'")
    if b.column:
        where.append(f"column {b.column}")
    how = "chosen by the analyst" if b.how == "analyst" else f"matched by {b.how}"
    target = f"KPI {b.kpi} ({b.name}), {how}" if b.kpi else "no KPI"
    units = f", unit{'s' if len(b.units) > 1 else ''} {', '.join(b.units)}" if b.units else ""
    problem = f" — {BINDING_PROBLEMS[b.problem]}" if b.problem else ""
    return f"{', '.join(where)}: '{b.text}' → {target}{units}, {b.values} value(s){problem}"


BINDING_PROBLEMS = {
    "unknown": "no KPI has this code or name",
    "ambiguous": "several KPIs have this name",
    "not on tree": "not on the unit's tree",
    "formula": "computed by its formula",
    "no unit": "no known unit for its values",
}


def report(intake: Intake, cat: Catalog, committed: Committed | None = None) -> dict:
    """The intake as plain data (`import --json`): counts, lights that change, every problem."""

    def code(ids, table) -> list[str]:
        return [table[int(i)].code for i in ids]

    changes = intake.diff[intake.diff["change"] != "unchanged"]
    return {
        "ok": not intake.errors,
        "source": intake.source,
        "files": intake.files,
        "months": [f"{m:%Y-%m}" for m in intake.months],
        "counts": intake.counts,
        "turns": intake.turns(),
        "batch": committed.batch_id if committed else None,
        "bindings": [
            {
                "file": b.file,
                "sheet": b.sheet,
                "column": b.column,
                "text": b.text,
                "kpi": b.kpi or None,
                "how": b.how or None,
                "units": list(b.units),
                "values": b.values,
                "problem": b.problem or None,
            }
            for b in intake.bindings
        ],  # fmt: skip
        "problems": [
            {
                "severity": f.severity,
                "file": f.file,
                "sheet": f.sheet,
                "row": f.row,
                "column": f.column,
                "message": str(f.message),  # a coded message: its English, as before
                "hint": str(f.hint),
            }
            for f in intake.findings
            if f.severity != "info"
        ],
        "changes": [
            {
                "kpi": k,
                "unit": u,
                "period": f"{pd.Timestamp(p):%Y-%m}",
                "old": None if pd.isna(o) else float(o),
                "new": None if pd.isna(n) else float(n),
                "change": c,
            }
            for k, u, p, o, n, c in zip(
                code(changes["kpi_id"], cat.kpis),
                code(changes["unit_id"], cat.units),
                changes["period"],
                changes["old"],
                changes["new"],
                changes["change"],
                strict=True,
            )
        ],
    }
