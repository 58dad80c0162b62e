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
from kpi_core.errors import LinesError, Problem, ScopeError, ValidationError
from kpi_core.ingest import profile
from kpi_core.ingest.files import Table
from kpi_core.ingest.names import norm
from kpi_core.messages import Items, Message
from kpi_core.numbers import NumberError, parse_number
from kpi_core.periods import Period, PeriodError, iso_week, parse_period, weeks_of_month
from kpi_core.warehouse import Warehouse

LEVEL_KEYS = ("baseline", "target", "challenge")
GRAINS = {"month": "M", "quarter": "Q", "year": "Y"}


class TargetMappingError(LinesError):
    """A target mapping that is incomplete or does not fit the file."""


# What a column is for, and a level, as a message names them.
WORDS = {
    "period": Message("tm_w_period"),
    "target": Message("tm_w_target"),
    "baseline": Message("tm_w_baseline"),
    "challenge": Message("tm_w_challenge"),
    "KPI": Message("tm_w_kpi"),
    "unit": Message("tm_w_unit"),
    "fill-down": Message("tm_w_fill_down"),
    "month": Message("tm_w_month"),
    "quarter": Message("tm_w_quarter"),
    "year": Message("tm_w_year"),
}


def _at(where: Message, row: object, column: str | None = None) -> Message:
    """A sheet's row, and its column when named: "orders.xlsx sheet 'S' row 3 column 'C'"."""
    at = Message("tm_row", where=where, row=row)
    return Message("tm_column", at=at, column=column) if column else at


def _said(where: Message, problem: Message | str) -> Message:
    return Message("df_at", where=where, problem=problem)


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

    def problems(self) -> list[Message]:
        out = []
        if not self.name.strip():
            out.append(Message("tm_no_name"))
        if not self.period_column:
            out.append(Message("tm_no_period_column"))
        if not self.target_column:
            out.append(Message("tm_no_target_column"))
        if bool(self.kpi) == bool(self.kpi_column):
            out.append(Message("tm_kpi_or_column"))
        if bool(self.unit) == bool(self.unit_column):
            out.append(Message("tm_unit_or_column"))
        if self.levels_for is not None and self.levels_for not in GRAINS:
            out.append(Message("tm_levels_for"))
        if self.header_row < 1:
            out.append(Message("pf_header_row"))
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
            [Message("tm_not_complete", name=mapping.name, problems=Items(problems))]
        )
    pick = profile.Profile(mapping.name, mapping.period_column, [], sheet=mapping.sheet)
    table = profile.pick_table(pick, tables)
    df = profile.frame(table, mapping.header_row)
    where = Message("tm_sheet", file=table.file, sheet=table.label)
    cols = {norm(c): c for c in df.columns}
    problems: list[Message | str] = []
    have = Items([str(c) for c in df.columns[:30]], commas=True)
    for name, what in mapping.columns():
        if norm(name) not in cols:
            missing = Message("tm_not_in_header", what=WORDS[what], column=name, columns=have)
            problems.append(_said(_at(where, mapping.header_row), missing))
    if problems:
        raise TargetMappingError(problems)

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
        found = len(problems)
        period, week, month = None, None, None
        raw = values["period"]
        try:
            got = iso_week(raw) if isinstance(raw, str) else None
            if got is not None:
                week, month = got
            elif _blank(raw):
                at = _at(where, excel_row, col(mapping.period_column))
                problems.append(_said(at, Message("tm_no_period")))
            else:
                period = parse_period(raw)
        except PeriodError as exc:
            problems.append(_said(_at(where, excel_row, col(mapping.period_column)), exc.said()))
        code = mapping.kpi or str(values.get("KPI") or "").strip()
        kpi = cat.kpi_by_code.get(code)
        if kpi is None:
            at = _at(where, excel_row, mapping.kpi_column and col(mapping.kpi_column))
            no_kpi = Message(
                "tm_no_kpi_in_column" if mapping.kpi_column else "df_no_kpi", code=code
            )
            problems.append(_said(at, no_kpi))
        if mapping.unit_column:
            text = "" if _blank(values["unit"]) else str(values["unit"]).strip()
            unit_code = unit_map.get(norm(text), text)
        else:
            unit_code = mapping.unit or ""
        unit = cat.unit_by_code.get(unit_code)
        if unit is None:
            at = _at(where, excel_row, mapping.unit_column and col(mapping.unit_column))
            problems.append(_said(at, Message("tm_not_a_unit", code=unit_code)))
        levels: dict[str, float | None] = {}
        for key in LEVEL_KEYS:
            name = getattr(mapping, f"{key}_column")
            if not name:
                continue
            v = values[key]
            try:
                parsed = None if _blank(v) else parse_number(v)
            except NumberError:
                at = _at(where, excel_row, col(name))
                problems.append(_said(at, Message("tm_not_a_number", value=str(v))))
                continue
            levels[key] = None if parsed is None else parsed.value
        if levels.get("target") is None and "target" in levels and len(problems) == found:
            at = _at(where, excel_row, col(mapping.target_column))
            problems.append(_said(at, Message("tm_no_target")))
        if len(problems) == found:
            rows.append(_Row(int(excel_row), kpi.id, unit.id, period, week, month, levels))
    if problems:
        raise TargetMappingError(problems)
    targets = _targets(cat, mapping, rows, where)
    return _as_edits(wh, targets)


def _targets(
    cat: Catalog, mapping: TargetMapping, rows: list[_Row], where: Message
) -> dict[tuple[int, int, str, date], tuple[int, dict[str, float | None]]]:
    """(kpi, unit, grain, start) → (first Excel row, levels), by the mapping's rule."""
    problems: list[Message | str] = []
    out: dict[tuple[int, int, str, date], tuple[int, dict]] = {}
    if mapping.levels_for:
        grain = GRAINS[mapping.levels_for]
        for r in rows:
            start = r.month if r.week else r.period.start
            if r.period is not None and {"Y": 3, "Q": 2, "M": 1}[r.period.grain] > {
                "Y": 3, "Q": 2, "M": 1}[grain]:  # fmt: skip
                longer = Message(
                    "tm_longer", period=r.period.label(), grain=WORDS[mapping.levels_for]
                )
                problems.append(_said(_at(where, r.excel_row), longer))
                continue
            key = (r.kpi_id, r.unit_id, grain, Period.containing(grain, start).start)
            if key in out and out[key][1] != r.levels:
                first, levels = out[key]
                p = Period(grain, key[3]).label()
                disagree = Message(
                    "tm_disagree", levels=_levels(r.levels), levels2=_levels(levels), period=p,
                    node=f"{cat.units[r.unit_id].code}/{cat.kpis[r.kpi_id].code}", row=first,
                    grain=WORDS[mapping.levels_for],
                )  # fmt: skip
                problems.append(_said(_at(where, r.excel_row), disagree))
            out.setdefault(key, (r.excel_row, r.levels))
    else:
        weeks: dict[tuple[int, int, date], dict[date, _Row]] = {}
        for r in rows:
            node = f"{cat.units[r.unit_id].code}/{cat.kpis[r.kpi_id].code}"
            if r.week is None:
                key = (r.kpi_id, r.unit_id, r.period.grain, r.period.start)
                if key in out:
                    twice = Message(
                        "tm_period_twice", node=node, period=r.period.label(), row=out[key][0]
                    )
                    problems.append(_said(_at(where, r.excel_row), twice))
                out.setdefault(key, (r.excel_row, r.levels))
                continue
            if cat.kpis[r.kpi_id].aggregation != "sum":
                not_sum = Message("tm_not_sum", node=node, agg=cat.kpis[r.kpi_id].aggregation)
                problems.append(_said(_at(where, r.excel_row), not_sum))
                continue
            month_weeks = weeks.setdefault((r.kpi_id, r.unit_id, r.month), {})
            if r.week in month_weeks:
                twice = Message(
                    "tm_week_twice", node=node, week=_week(r.week),
                    row=month_weeks[r.week].excel_row,
                )  # fmt: skip
                problems.append(_said(_at(where, r.excel_row), twice))
            month_weeks[r.week] = r
        for (kpi_id, unit_id, month), given in weeks.items():
            node = f"{cat.units[unit_id].code}/{cat.kpis[kpi_id].code}"
            missing = [w for w in weeks_of_month(month) if w not in given]
            if missing:
                lacks = Message(
                    "tm_lacks_weeks", node=node, month=f"{month:%Y-%m}",
                    weeks=Items(map(_week, missing), commas=True),
                )  # fmt: skip
                problems.append(_said(where, lacks))
                continue
            ordered = sorted(given.values(), key=lambda r: r.week)
            levels: dict[str, float | None] = {}
            for key in ordered[0].levels:
                parts = [r.levels[key] for r in ordered]
                if any(p is None for p in parts) and not all(p is None for p in parts):
                    blank = next(r for r in ordered if r.levels[key] is None)
                    no_level = Message(
                        "tm_week_blank", level=WORDS[key], week=_week(blank.week),
                        month=f"{month:%Y-%m}",
                    )  # fmt: skip
                    problems.append(_said(_at(where, blank.excel_row), no_level))
                levels[key] = None if parts[0] is None else float(sum(p or 0.0 for p in parts))
            out[(kpi_id, unit_id, "M", month)] = (ordered[0].excel_row, levels)
    if problems:
        raise TargetMappingError(problems)
    return out


def _week(monday: date) -> str:
    y, w, _ = monday.isocalendar()
    return f"{y}-W{w:02d}"


def _levels(levels: dict[str, float | None]) -> Items:
    """ "target 1,200, baseline —": each level named, in the order the sheet gives them."""
    return Items(
        [
            Message("tm_level", level=WORDS[k], value="—" if v is None else f"{v:,.15g}")
            for k, v in levels.items()
        ],
        commas=True,
    )


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
        raise ScopeError(Message("pl_err_heads_only"))
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
