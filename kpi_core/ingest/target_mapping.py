"""Target mappings: targets from an analyst's own sheet (a channel-target sheet, a budget
export), not only from the KPI-system workbook's `targets` layout.

A mapping (a TOML file with `type = "targets"`, read like profiles by `definition_file`) names
the sheet and header row, the period column, the columns of the levels (baseline, target,
challenge), the KPI (one for the sheet, or a column of codes) and the unit (a column with a map
from many file values to one unit — channel ids an Excel fill handle counted up, say — or one
unit for the sheet). Columns listed in `fill_down` take the value above where a cell is blank.

Periods are years, quarters, months or ISO weeks (2019-W15). Where the levels belong:
- `levels_for` empty: to the row's own period. Weekly rows are added up to months — a week
  belongs to the month of its Thursday (`periods.iso_week`) — for KPIs that are sums only, and
  only when every week of the month is given (a month is not targeted by half its weeks).
- `levels_for = "month"` (or "quarter", "year"): the levels are the month's (quarter's, year's)
  and are repeated on its rows — a monthly target written on the first week row and filled
  down. The rows of one period must then agree; a row that says otherwise is named.

The result is a list of `planning.TargetEdit`, saved by `planning.save_targets` — the one writer
of target versions, with its checks (scope, levels in order, closed months, conflicts), dated
versions and audit. Nothing is written while any problem is left.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import pandas as pd

from kpi_core import planning
from kpi_core.access import Actor, can
from kpi_core.catalog import Catalog
from kpi_core.errors import KpiError, Problem, ScopeError, ValidationError
from kpi_core.ingest import profile
from kpi_core.ingest.files import Table
from kpi_core.ingest.names import norm
from kpi_core.numbers import NumberError, parse_number
from kpi_core.periods import Period, PeriodError, iso_week, parse_period, weeks_of_month
from kpi_core.warehouse import Warehouse

LEVEL_KEYS = ("baseline", "target", "challenge")
GRAINS = {"month": "M", "quarter": "Q", "year": "Y"}


class TargetMappingError(KpiError):
    """A target mapping that is incomplete or does not fit the file."""


@dataclass
class TargetMapping:
    name: str
    period_column: str
    target_column: str
    baseline_column: str | None = None
    challenge_column: str | None = None
    kpi: str | None = None  # one KPI for the whole sheet …
    kpi_column: str | None = None  # … or a column of KPI codes
    sheet: str | None = None  # None: the first sheet
    header_row: int = 1
    unit_column: str | None = None
    unit_map: dict[str, str] = field(default_factory=dict)  # file value → unit code
    unit: str | None = None  # one unit for the whole sheet
    fill_down: list[str] = field(default_factory=list)  # blank below = same as above
    levels_for: str | None = None  # None: the row's period; or "month", "quarter", "year"

    def problems(self) -> list[str]:
        out = []
        if not self.name.strip():
            out.append("give the mapping a name")
        if not self.period_column:
            out.append("choose the period column")
        if not self.target_column:
            out.append("choose the target column")
        if bool(self.kpi) == bool(self.kpi_column):
            out.append("give one KPI for the sheet (kpi) or the column of KPI codes (kpi_column)")
        if bool(self.unit) == bool(self.unit_column):
            out.append("give one unit for the sheet (unit) or the unit column (unit_column)")
        if self.levels_for is not None and self.levels_for not in GRAINS:
            out.append("levels_for must be month, quarter or year (or left out)")
        if self.header_row < 1:
            out.append("the header row is counted from 1")
        return out

    def columns(self) -> list[tuple[str, str]]:
        """(column, what it is for) of every column the mapping reads."""
        named = [
            (self.period_column, "period"), (self.target_column, "target"),
            (self.baseline_column, "baseline"), (self.challenge_column, "challenge"),
            (self.kpi_column, "KPI"), (self.unit_column, "unit"),
        ]  # fmt: skip
        return [(c, what) for c, what in named if c] + [(c, "fill-down") for c in self.fill_down]


@dataclass
class _Row:
    excel_row: int
    kpi_id: int
    unit_id: int
    period: Period | None  # None for a week
    week: date | None  # its Monday
    month: date | None  # a week's month
    levels: dict[str, float | None]


def _blank(v: object) -> bool:
    return v is None or (isinstance(v, float) and pd.isna(v)) or str(v).strip() == ""


def edits(
    wh: Warehouse, cat: Catalog, mapping: TargetMapping, tables: list[Table]
) -> list[planning.TargetEdit]:
    """The new target versions the sheet asks for (unchanged ones left out); or
    TargetMappingError listing every problem with its file, sheet, row and column."""
    if problems := mapping.problems():
        raise TargetMappingError(
            f"Target mapping '{mapping.name}' is not complete: " + "; ".join(problems)
        )
    pick = profile.Profile(mapping.name, mapping.period_column, [], sheet=mapping.sheet)
    table = profile.pick_table(pick, tables)
    df = profile.frame(table, mapping.header_row)
    where = f"{table.file} sheet '{table.label}'"
    cols = {norm(c): c for c in df.columns}
    problems: list[str] = []
    for name, what in mapping.columns():
        if norm(name) not in cols:
            problems.append(
                f"{where} row {mapping.header_row}: the {what} column '{name}' is not in the "
                f"header (it has: {', '.join(str(c) for c in df.columns[:30])})"
            )
    if problems:
        raise TargetMappingError("\n".join(problems))

    def col(name: str) -> str:
        return cols[norm(name)]

    # An empty line between blocks is skipped before fill-down could fill it.
    read = [col(c) for c, what in mapping.columns() if what != "fill-down"]
    empty = df[read].map(_blank).all(axis=1)
    df = df[~empty]
    for name in mapping.fill_down:
        c = col(name)
        df[c] = df[c].map(lambda v: None if _blank(v) else v).ffill()

    unit_map = {norm(k): v for k, v in mapping.unit_map.items()}
    rows: list[_Row] = []
    for excel_row, r in df.iterrows():
        values = {what: r[col(c)] for c, what in mapping.columns() if what != "fill-down"}
        at = f"{where} row {excel_row}"
        found = len(problems)
        period, week, month = None, None, None
        raw = values["period"]
        try:
            got = iso_week(raw) if isinstance(raw, str) else None
            if got is not None:
                week, month = got
            elif _blank(raw):
                problems.append(f"{at} column '{col(mapping.period_column)}': no period")
            else:
                period = parse_period(raw)
        except PeriodError as exc:
            problems.append(f"{at} column '{col(mapping.period_column)}': {exc}")
        code = mapping.kpi or str(values.get("KPI") or "").strip()
        kpi = cat.kpi_by_code.get(code)
        if kpi is None:
            problems.append(
                f"{at}{_in(mapping.kpi_column, col)}: there is no KPI '{code}'"
                + (" — write KPI codes in the column" if mapping.kpi_column else "")
            )
        if mapping.unit_column:
            text = "" if _blank(values["unit"]) else str(values["unit"]).strip()
            unit_code = unit_map.get(norm(text), text)
        else:
            unit_code = mapping.unit or ""
        unit = cat.unit_by_code.get(unit_code)
        if unit is None:
            problems.append(
                f"{at}{_in(mapping.unit_column, col)}: '{unit_code}' is not an org unit — map "
                "the file's value to a unit code in unit_map"
            )
        levels: dict[str, float | None] = {}
        for key in LEVEL_KEYS:
            name = getattr(mapping, f"{key}_column")
            if not name:
                continue
            v = values[key]
            try:
                parsed = None if _blank(v) else parse_number(v)
            except NumberError:
                problems.append(f"{at} column '{col(name)}': '{v}' is not a number")
                continue
            levels[key] = None if parsed is None else parsed.value
        if levels.get("target") is None and "target" in levels and len(problems) == found:
            problems.append(
                f"{at} column '{col(mapping.target_column)}': no target — fill it in, or list "
                "the column in fill_down if a blank means the value above"
            )
        if len(problems) == found:
            rows.append(_Row(int(excel_row), kpi.id, unit.id, period, week, month, levels))
    if problems:
        raise TargetMappingError("\n".join(problems))
    targets = _targets(cat, mapping, rows, where)
    return _as_edits(wh, targets)


def _in(name: str | None, col) -> str:
    return f" column '{col(name)}'" if name else ""


def _targets(
    cat: Catalog, mapping: TargetMapping, rows: list[_Row], where: str
) -> dict[tuple[int, int, str, date], tuple[int, dict[str, float | None]]]:
    """(kpi, unit, grain, start) → (first Excel row, levels), by the mapping's rule."""
    problems: list[str] = []
    out: dict[tuple[int, int, str, date], tuple[int, dict]] = {}
    if mapping.levels_for:
        grain = GRAINS[mapping.levels_for]
        for r in rows:
            start = r.month if r.week else r.period.start
            if r.period is not None and {"Y": 3, "Q": 2, "M": 1}[r.period.grain] > {
                "Y": 3, "Q": 2, "M": 1}[grain]:  # fmt: skip
                problems.append(
                    f"{where} row {r.excel_row}: {r.period.label()} is longer than a "
                    f"{mapping.levels_for} — levels_for cannot split it"
                )
                continue
            key = (r.kpi_id, r.unit_id, grain, Period.containing(grain, start).start)
            if key in out and out[key][1] != r.levels:
                first, levels = out[key]
                p = Period(grain, key[3]).label()
                problems.append(
                    f"{where} row {r.excel_row}: {_levels(r.levels)} for "
                    f"{cat.units[r.unit_id].code}/{cat.kpis[r.kpi_id].code} {p}, but row {first} "
                    f"says {_levels(levels)} — the rows of one {mapping.levels_for} must agree"
                )
            out.setdefault(key, (r.excel_row, r.levels))
    else:
        weeks: dict[tuple[int, int, date], dict[date, _Row]] = {}
        for r in rows:
            node = f"{cat.units[r.unit_id].code}/{cat.kpis[r.kpi_id].code}"
            if r.week is None:
                key = (r.kpi_id, r.unit_id, r.period.grain, r.period.start)
                if key in out:
                    problems.append(
                        f"{where} row {r.excel_row}: {node} {r.period.label()} is also given in "
                        f"row {out[key][0]} — give each period once"
                    )
                out.setdefault(key, (r.excel_row, r.levels))
                continue
            if cat.kpis[r.kpi_id].aggregation != "sum":
                problems.append(
                    f"{where} row {r.excel_row}: {node} is not a sum "
                    f"({cat.kpis[r.kpi_id].aggregation}), so its weekly values cannot be added "
                    "up to a month — give monthly values, or set levels_for"
                )
                continue
            month_weeks = weeks.setdefault((r.kpi_id, r.unit_id, r.month), {})
            if r.week in month_weeks:
                problems.append(
                    f"{where} row {r.excel_row}: {node} week {_week(r.week)} is also given in "
                    f"row {month_weeks[r.week].excel_row} — give each week once"
                )
            month_weeks[r.week] = r
        for (kpi_id, unit_id, month), given in weeks.items():
            node = f"{cat.units[unit_id].code}/{cat.kpis[kpi_id].code}"
            missing = [w for w in weeks_of_month(month) if w not in given]
            if missing:
                problems.append(
                    f"{where}: {node} {month:%Y-%m} lacks week {', '.join(map(_week, missing))} "
                    "— a month's target is the sum of all its weeks (a week belongs to the "
                    "month of its Thursday)"
                )
                continue
            ordered = sorted(given.values(), key=lambda r: r.week)
            levels: dict[str, float | None] = {}
            for key in ordered[0].levels:
                parts = [r.levels[key] for r in ordered]
                if any(p is None for p in parts) and not all(p is None for p in parts):
                    blank = next(r for r in ordered if r.levels[key] is None)
                    problems.append(
                        f"{where} row {blank.excel_row}: no {key} for week {_week(blank.week)} "
                        f"while other weeks of {month:%Y-%m} have one"
                    )
                levels[key] = None if parts[0] is None else float(sum(p or 0.0 for p in parts))
            out[(kpi_id, unit_id, "M", month)] = (ordered[0].excel_row, levels)
    if problems:
        raise TargetMappingError("\n".join(problems))
    return out


def _week(monday: date) -> str:
    y, w, _ = monday.isocalendar()
    return f"{y}-W{w:02d}"


def _levels(levels: dict[str, float | None]) -> str:
    return ", ".join(f"{k} {'—' if v is None else f'{v:,.15g}'}" for k, v in levels.items())


def _as_edits(wh: Warehouse, targets: dict) -> list[planning.TargetEdit]:
    """New versions of the stored targets: levels the sheet does not map are kept."""
    keys = list(targets)
    stored = planning.stored_levels(wh, keys)
    out = []
    fields = [*planning.LEVELS, "phasing"]
    for key in keys:
        excel_row, levels = targets[key]
        version, old = stored.get(key, (0, dict.fromkeys(fields)))
        new = {**old, **levels}
        changed = tuple(f for f in fields if new[f] != old[f])
        if changed:
            out.append(planning.TargetEdit(excel_row - 1, *key, version, new, old, changed))
    return out


def save(
    wh: Warehouse, cat: Catalog, who: Actor, mapping: TargetMapping, tables: list[Table], *,
    reason: str, effective: date | None, dry_run: bool = False,
) -> tuple[list[planning.TargetEdit], planning.Saved | None]:  # fmt: skip
    """Check and write the sheet's targets as new versions through `planning.save_targets`,
    all or nothing; its problems placed at the sheet's rows. A dry run checks all the same
    (`planning.check_targets`) and writes nothing."""
    if not can(who, "edit_targets"):  # before the sheet is read against the warehouse
        raise ScopeError("Only department heads and admins change targets and weights.")
    found = edits(wh, cat, mapping, tables)
    label = profile.pick_table(
        profile.Profile(mapping.name, mapping.period_column, [], sheet=mapping.sheet), tables
    ).label
    try:
        if dry_run:
            problems = planning.check_targets(
                wh, cat, who, found, effective, reason, need_reason=True
            )
            if problems:
                raise ValidationError([planning.as_problem("targets", p) for p in problems])
            return found, None
        return found, planning.save_targets(wh, cat, who, found, reason=reason, effective=effective)
    except ValidationError as exc:
        raise ValidationError(
            [Problem(label if p.row else p.sheet, p.row, p.column, p.message) for p in exc.problems]
        ) from None
