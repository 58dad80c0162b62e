"""The one way rows become monthly values: an Excel sheet read by a mapping profile and the rows
of a database or file source both land in a DuckDB table `pulled` (every cell as text, with its
row number `kpi_row`) and are aggregated here, in SQL, by the same code — so the two paths
cannot drift apart.

- A blank cell (empty or spaces only) is missing, never 0: the sum or average of a month whose
  cells are all blank is NULL, and a NULL is no value (counts still count rows: 0 is a count).
- Numbers are read as the upload reads them (1,234.5 · 0.2万 · 85% · ¥/$), dates by `dates`
  with the profile's format, never by a guess of DuckDB; both through small maps of each
  column's distinct texts, so a million rows cost one pass in SQL.
- Expressions (`expression`) and filters become SQL over those typed columns, with every literal
  bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb
import pandas as pd

from kpi_core.ingest import dates, expression, places
from kpi_core.ingest.expression import DATE, NUM, TEXT, Expression, ExpressionError
from kpi_core.ingest.layout import Finding, Records
from kpi_core.ingest.names import norm
from kpi_core.messages import Message
from kpi_core.numbers import NumberError, parse_number

MAX_PLACED = 200  # findings placed row by row, per column; the rest are counted


@dataclass(frozen=True)
class Place:
    """Where the rows came from, for findings and records."""

    file: str
    sheet: str
    who: str  # "profile 'erp-orders'" or "source 'erp'"
    fix_number: str  # what to do about a cell that is not a number
    fix_date: str


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _text(v: object) -> str | None:
    """A cell as the text the aggregation reads: blanks are None; 12.0 is '12' (an ERP's
    numeric codes compared as people type them); Excel dates are ISO."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, float):
        if v != v:  # NaN: a blank
            return None
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)
    if hasattr(v, "isoformat"):
        return v.isoformat(sep=" ") if hasattr(v, "hour") and hasattr(v, "day") else v.isoformat()
    text = str(v)
    return text if text.strip() else None


def land_frame(con: duckdb.DuckDBPyConnection, df: pd.DataFrame) -> list[str]:
    """A sheet's cells below its header (index: Excel row numbers) as the table `pulled`."""
    columns = [str(c) for c in df.columns]
    data = {"kpi_row": [int(i) for i in df.index]}
    for j in range(len(columns)):
        data[f"c{j}"] = [_text(v) for v in df.iloc[:, j].tolist()]
    landing = pd.DataFrame(data).astype({f"c{j}": object for j in range(len(columns))})
    con.register("kpi_landing", landing)
    try:
        cells = "".join(f", CAST(c{j} AS VARCHAR) AS {quote(c)}" for j, c in enumerate(columns))
        con.execute(f"CREATE TABLE pulled AS SELECT kpi_row{cells} FROM kpi_landing")  # noqa: S608
    finally:
        con.unregister("kpi_landing")
    return columns


class _Say:
    """Findings of one aggregation: `say(row, column, message, hint)` is an error."""

    def __init__(self, findings: list[Finding], place: Place) -> None:
        self.findings, self.place = findings, place

    def __call__(
        self, row: int | None, column: str | None, message: Message, hint: Message | str = ""
    ) -> None:
        self.findings.append(
            Finding("error", self.place.file, self.place.sheet, row, column, message, hint)
        )

    def info(self, column: str, message: Message, hint: Message) -> None:
        self.findings.append(
            Finding("info", self.place.file, self.place.sheet, None, column, message, hint)
        )


class _Plan:
    """The typed columns an aggregation needs, built once over `pulled`."""

    def __init__(self, con: duckdb.DuckDBPyConnection, columns: list[str], fmt: str) -> None:
        self.con, self.fmt = con, fmt
        self.by_norm = {norm(c): c for c in columns}
        self.slot: dict[str, int] = {}
        self.kinds: dict[str, str] = {}
        self.readings: dict[str, dates.Reading] = {}
        self.numbers: set[str] = set()
        # Columns a source (or Parquet) already typed: read as they are, without maps.
        described = con.execute("DESCRIBE pulled").fetchall()
        self.types = {r[0]: str(r[1]).upper() for r in described}
        # A sheet's rows carry their Excel row; a source's are numbered in the order they came.
        self.row = (
            "kpi_row" if "kpi_row" in self.types and "kpi_row" not in columns else ("rowid + 1")
        )

    def typed(self, real: str, kind: str) -> bool:
        t = self.types.get(real, "VARCHAR")
        if kind == NUM:
            return t in _NUMERIC_TYPES or t.startswith("DECIMAL")
        return t == "DATE" or t.startswith("TIMESTAMP")

    def col(self, name: str) -> str:
        return self.by_norm[norm(name)]

    def use(self, name: str) -> int:
        real = self.col(name)
        return self.slot.setdefault(real, len(self.slot))

    def build_text(self) -> None:
        """A view of the used columns as text (blank: NULL), and as they are (`r`)."""
        cells = ", ".join(
            f"NULLIF(trim(CAST({quote(c)} AS VARCHAR)), '') AS t{i}, {quote(c)} AS r{i}"
            for c, i in self.slot.items()
        )
        self.con.execute(
            f"CREATE TEMP VIEW kpi_text AS SELECT {self.row} AS kpi_row, {cells} FROM pulled"  # noqa: S608
        )

    def infer(self, name: str) -> str:
        """How a column reads in arithmetic, judged on a sample of its distinct texts."""
        real = self.col(name)
        if real in self.kinds:
            return self.kinds[real]
        for kind in (NUM, DATE):
            if self.typed(real, kind):
                self.kinds[real] = kind
                return kind
        i = self.slot[real]
        sample = [r[0] for r in self.con.execute(
            f"SELECT DISTINCT t{i} FROM kpi_text WHERE t{i} IS NOT NULL LIMIT 500"  # noqa: S608
        ).fetchall()]  # fmt: skip
        numbers = sum(_number(t) is not None for t in sample)
        read = dates.read({dates.day_text(t) for t in sample}, self.fmt, months=False)
        days = sum(dates.day_text(t) in read.dates for t in sample) + (
            len(sample) if read.ambiguous else 0
        )
        if sample and days > numbers and days * 2 >= len(sample):
            kind = DATE
        elif not sample or numbers * 2 >= len(sample):
            kind = NUM
        else:
            kind = TEXT
        self.kinds[real] = kind
        return kind

    def date(self, name: str, *, months: bool) -> dates.Reading:
        real = self.col(name)
        self.kinds[real] = DATE
        if real not in self.readings and self.typed(real, DATE):
            self.readings[real] = dates.Reading()
        if real not in self.readings:
            i = self.slot[real]
            # Distinct texts, then their days in Python: no expression runs per row.
            texts = [r[0] for r in self.con.execute(
                f"SELECT DISTINCT t{i} FROM kpi_text WHERE t{i} IS NOT NULL"  # noqa: S608
            ).fetchall()]  # fmt: skip
            days = {t: dates.day_text(t) for t in texts}
            reading = dates.read(set(days.values()), self.fmt, months=months)
            # Keyed by the whole text (time and all), as the rows hold it.
            reading.dates = {t: reading.dates[d] for t, d in days.items() if d in reading.dates}
            reading.bad = {t: reading.bad[d] for t, d in days.items() if d in reading.bad}
            self.readings[real] = reading
            pairs = pd.DataFrame(
                {"k": list(reading.dates), "v": pd.to_datetime(list(reading.dates.values()))}
            )
            self.con.register("kpi_pairs", pairs)
            self.con.execute(
                f"CREATE TEMP TABLE dm{i} AS SELECT k, CAST(v AS DATE) AS v FROM kpi_pairs"  # noqa: S608
            )
            self.con.unregister("kpi_pairs")
        return self.readings[real]

    def number(self, name: str) -> None:
        real = self.col(name)
        if real in self.numbers:
            return
        self.numbers.add(real)
        if self.typed(real, NUM):
            return
        i = self.slot[real]
        texts = [r[0] for r in self.con.execute(
            f"SELECT DISTINCT t{i} FROM kpi_text WHERE t{i} IS NOT NULL AND NOT "  # noqa: S608
            f"coalesce(isfinite(TRY_CAST(t{i} AS DOUBLE)), false)"
        ).fetchall()]  # fmt: skip
        pairs = pd.DataFrame({"k": texts, "v": [_number(t) for t in texts]}, dtype=object)
        self.con.register("kpi_pairs", pairs)
        self.con.execute(
            f"CREATE TEMP TABLE nm{i} AS SELECT CAST(k AS VARCHAR) AS k, "  # noqa: S608
            "CAST(v AS DOUBLE) AS v FROM kpi_pairs"
        )
        self.con.unregister("kpi_pairs")

    def build_typed(self) -> None:
        cols, joins, params = ["k.kpi_row"], [], []
        for real, i in self.slot.items():
            # A typed number keeps its value (`r`); its text is made only where a query asks.
            cols.append(f"k.r{i}" if self.typed(real, NUM) else f"k.t{i}")
            if real in self.numbers and self.typed(real, NUM):
                cast = f"CAST(k.r{i} AS DOUBLE)"
                cols.append(f"CASE WHEN isfinite({cast}) THEN {cast} END AS n{i}")
            elif real in self.numbers:
                cast = f"TRY_CAST(k.t{i} AS DOUBLE)"
                cols.append(f"CASE WHEN isfinite({cast}) THEN {cast} ELSE nm{i}.v END AS n{i}")
                joins.append(f"LEFT JOIN nm{i} ON nm{i}.k = k.t{i}")
            if real in self.readings and self.typed(real, DATE):
                cols.append(f"CAST(k.r{i} AS DATE) AS d{i}")
            elif real in self.readings:
                cols.append(f"dm{i}.v AS d{i}")
                joins.append(f"LEFT JOIN dm{i} ON dm{i}.k = k.t{i}")
        sql = f"CREATE TEMP TABLE kpi_typed AS SELECT {', '.join(cols)} FROM kpi_text k {' '.join(joins)}"  # noqa: S608
        self.con.execute(sql, params)

    def column(self, name: str) -> expression.Column:
        real = self.col(name)
        i = self.slot[real]
        kind = self.kinds.get(real, NUM)
        if self.typed(real, NUM):
            number = f"n{i}" if real in self.numbers else f"CAST(r{i} AS DOUBLE)"
            return expression.Column(kind, number, "NULL", f"CAST(r{i} AS VARCHAR)")
        return expression.Column(
            kind,
            number=f"n{i}" if real in self.numbers else f"TRY_CAST(t{i} AS DOUBLE)",
            date=f"d{i}" if real in self.readings else "NULL",
            text=f"t{i}",
        )

    def raw(self, name: str) -> str:
        """The column as it is, for counting (a typed number needs no text)."""
        real = self.col(name)
        i = self.slot[real]
        return f"r{i}" if self.typed(real, NUM) else f"t{i}"


_NUMERIC_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                  "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE"}  # fmt: skip


def _number(text: str) -> float | None:
    try:
        got = parse_number(text)
    except (NumberError, TypeError, ValueError):
        return None
    return None if got is None else got.value


def _norm_sql(sql: str) -> str:
    """names.norm() in SQL for the column texts: no spaces or underscores, lower case."""
    return f"lower(regexp_replace({sql}, '[\\s_]+', '', 'g'))"


def expressions(
    mapping,
) -> tuple[dict[int, Expression], dict[tuple[int, int], Expression], list[Message]]:
    """The measures' and filters' expressions, parsed; and what cannot be read, per measure."""
    measures: dict[int, Expression] = {}
    filters: dict[tuple[int, int], Expression] = {}
    problems = []
    for i, m in enumerate(mapping.measures, start=1):
        try:
            if m.column and expression.is_expression(m.column):
                measures[i] = expression.parse(m.column)
            for j, f in enumerate(m.filters):
                if f.is_expression:
                    filters[(i, j)] = expression.parse(f.value)
        except ExpressionError as exc:
            problems.append(Message("ag_measure", i=i, kpi=m.kpi, problem=exc.said()))
    return measures, filters, problems


def aggregate(
    con: duckdb.DuckDBPyConnection,
    mapping,
    columns: list[str],
    place: Place,
    *,
    first: date | None = None,
    after: date | None = None,
) -> tuple[Records, list[Finding]]:
    """The profile's measures over `pulled`, by month and unit: records and findings."""
    findings: list[Finding] = []
    error = _Say(findings, place)

    measures, filters, problems = expressions(mapping)
    for p in problems:
        error(None, None, p, Message("ag_fix_in_profile"))
    if problems:
        return Records(), findings
    plan = _Plan(con, columns, getattr(mapping, "date_format", "") or "")
    date_col = plan.col(mapping.date_column)
    plan.use(date_col)
    if mapping.unit_column:
        plan.use(mapping.unit_column)
    for i, m in enumerate(mapping.measures, start=1):
        for name in measures[i].references() if i in measures else [m.column] if m.column else []:
            plan.use(name)
        for j, f in enumerate(m.filters):
            plan.use(f.column)
            for name in filters[(i, j)].references() if (i, j) in filters else []:
                plan.use(name)
    plan.build_text()

    # Dates of the date column: the month of each row.
    reading = plan.date(date_col, months=True)
    if _date_questions(plan, date_col, reading, place, error):
        return Records(), findings
    # The other columns by how they are used.
    for i, m in enumerate(mapping.measures, start=1):
        refs = measures[i].references() if i in measures else []
        if m.agg in ("sum", "avg") and not refs and m.column:
            plan.number(m.column)
        for name in refs:
            _typed(plan, name, place, error)
        for j, f in enumerate(m.filters):
            if (i, j) in filters or f.op in (">", ">=", "<", "<="):
                _typed(plan, f.column, place, error)
                for name in filters[(i, j)].references() if (i, j) in filters else []:
                    _typed(plan, name, place, error)
    if any(f.severity == "error" for f in findings):
        return Records(), findings
    plan.build_typed()
    d = plan.slot[date_col]
    month = f"CAST(date_trunc('month', d{d}) AS DATE)"
    window, wparams = [f"d{d} IS NOT NULL"], []
    if first is not None:
        window.append(f"d{d} >= ?")
        wparams.append(first)
    if after is not None:
        window.append(f"d{d} < ?")
        wparams.append(after)
    kept = " AND ".join(window)

    # Rows whose date cannot be read.
    bad_dates = {t: why for t, why in reading.bad.items()}
    if bad_dates:
        _place_bad(con, plan, date_col, "date", bad_dates, place, error)

    unit, join = "NULL", ""
    if mapping.unit_column:
        ut = plan.column(mapping.unit_column).text
        texts = [
            r[0]
            for r in con.execute(
                f"SELECT DISTINCT {ut} FROM kpi_typed WHERE {ut} IS NOT NULL"  # noqa: S608
            ).fetchall()
        ]
        known = {norm(k): v for k, v in mapping.unit_map.items()}
        pairs = pd.DataFrame(
            {"k": texts, "v": [known.get(norm(t), t) for t in texts]}, dtype=object
        )
        con.register("kpi_unit_map", pairs)
        join = f"LEFT JOIN kpi_unit_map um ON um.k = {ut}"
        unit = "um.v"
    selects, params = [], []
    conditions: list[tuple[str, list]] = []
    wrong = False
    for i, m in enumerate(mapping.measures, start=1):
        try:
            cond, cparams = _where(plan, m, i, filters)
            conditions.append((cond, cparams))
            sql, sparams = _measure_sql(plan, m, measures.get(i), cond, cparams)
            selects.append(sql)
            params += sparams
        except ExpressionError as exc:
            wrong = True
            problem = Message("ag_measure", i=i, kpi=m.kpi, problem=exc.said())
            error(None, m.column, problem, Message("ag_fix_expression"))
    if wrong:
        return Records(), findings
    # Cells that are not numbers, in the rows a measure sums or averages.
    for i, m in enumerate(mapping.measures, start=1):
        if m.agg not in ("sum", "avg") and i not in measures:
            continue
        refs = measures[i].references() if i in measures else [m.column] if m.column else []
        for name in refs:
            real = plan.col(name)
            if real not in plan.numbers or plan.typed(real, NUM):
                continue
            c = plan.slot[real]
            cond, cparams = conditions[i - 1]
            rows = con.execute(
                f"SELECT kpi_row, t{c} FROM kpi_typed WHERE {kept} AND ({cond}) "  # noqa: S608
                f"AND t{c} IS NOT NULL AND n{c} IS NULL ORDER BY kpi_row LIMIT {MAX_PLACED}",
                [*wparams, *cparams],
            ).fetchall()
            for row, text in rows:
                error(row, real, Message("vl_not_a_number", value=text), place.fix_number)
    if any(f.severity == "error" for f in findings):
        return Records(), findings

    sql = (
        f"SELECT {month} AS kpi_month, {unit} AS kpi_unit, "  # noqa: S608 - quoted identifiers
        + ", ".join(f"{s} AS m{i}" for i, s in enumerate(selects))
        + f" FROM kpi_typed {join} WHERE {kept} GROUP BY ALL ORDER BY 1, 2"
    )
    groups = con.execute(sql, [*params, *wparams]).fetchall()
    out = Records()
    # Each measure's places, made once: "profile 'ERP' measure 2", "sum(金额)".
    kpi_at = [places.measure(place.who, i + 1) for i in range(len(mapping.measures))]
    value_at = [places.aggregated(m.agg, m.column) for m in mapping.measures]
    for g in groups:
        for i, m in enumerate(mapping.measures):
            value = g[2 + i]
            if value is None or value != value:
                continue  # no value: all blank, or no row to average
            out.file.append(place.file)
            out.sheet.append(place.sheet)
            out.row.append(None)
            out.period.append(g[0])
            out.period_at.append(date_col)
            out.unit.append(g[1] if mapping.unit_column else mapping.unit)
            out.unit_at.append(plan.col(mapping.unit_column) if mapping.unit_column else place.who)
            out.kpi.append(m.kpi)
            out.kpi_at.append(kpi_at[i])
            out.value.append(float(value))
            out.value_at.append(value_at[i])
    return out, findings


def _typed(plan: _Plan, name: str, place: Place, error) -> None:
    kind = plan.infer(name)
    if kind == DATE:
        reading = plan.date(name, months=False)
        if not _date_questions(plan, plan.col(name), reading, place, error) and reading.bad:
            _place_bad(plan.con, plan, plan.col(name), "date", reading.bad, place, error)
    elif kind == NUM:
        plan.number(name)


def _date_questions(plan: _Plan, column: str, reading: dates.Reading, place: Place, error) -> bool:
    """An ambiguous column is a question to the analyst (True: nothing can be read)."""
    if reading.ambiguous:
        error(
            None, column,
            Message("ag_ambiguous_dates", column=column,
                    readings=dates.readings(reading.ambiguous[0])),
            Message("ag_ambiguous_dates_hint"),
        )  # fmt: skip
        return True
    if reading.detected:
        example = next((t for t in reading.dates if not t[:4].isdigit()), "")
        # Certain (only one reading fits every value), but said, so a new file is noticed.
        error.info(
            column,
            Message(
                "ag_dates_read", column=column, words=dates.ORDER_WORDS[reading.order],
                order=reading.order, example=example, day=str(reading.dates.get(example)),
            ),
            Message("ag_dates_read_hint"),
        )  # fmt: skip
    return False


def _place_bad(con, plan: _Plan, column: str, what: str, bad: dict[str, Message],
               place: Place, error) -> None:  # fmt: skip
    c = plan.slot[column]
    # The texts go to SQL to find their rows; why each is not a date stays here.
    pairs = pd.DataFrame({"k": list(bad)}, dtype=object)
    con.register("kpi_bad", pairs)
    rows = con.execute(
        f"SELECT kpi_row, t{c} FROM kpi_text JOIN kpi_bad ON kpi_bad.k = t{c} "  # noqa: S608
        f"ORDER BY kpi_row LIMIT {MAX_PLACED}"
    ).fetchall()
    con.unregister("kpi_bad")
    for row, text in rows:
        error(row, column, Message("ag_bad_date", text=text, why=bad[text]), place.fix_date)
    del what


def _where(plan: _Plan, m, i: int, filters: dict) -> tuple[str, list]:
    params: list = []
    conds = []
    for j, f in enumerate(m.filters):
        conds.append(_filter_sql(plan, f, filters.get((i, j)), params))
    return " AND ".join(conds) or "true", params


def _date_of(plan: _Plan):
    def read(text: str):
        got = dates.read([dates.day_text(text)], plan.fmt, months=False)
        return got.dates.get(dates.day_text(text))

    return read


def _filter_sql(plan: _Plan, f, expr: Expression | None, params: list) -> str:
    col = plan.column(f.column)
    if expr is not None or (f.op in (">", ">=", "<", "<=") and col.kind == DATE):
        if f.op not in ("=", "!=", ">", ">=", "<", "<="):
            raise ExpressionError(Message("ag_filter_operator", column=f.column))
        if expr is not None:
            right, kind = expression.to_sql(expr, plan.column, params, _date_of(plan))
        else:
            day = _date_of(plan)(f.value)
            if day is None:
                raise ExpressionError(
                    Message("ag_filter_not_a_date", column=f.column, value=f.value)
                )
            params.append(day)
            right, kind = "CAST(? AS DATE)", DATE
        left = {DATE: col.date, NUM: col.number}.get(kind)
        if left is None or kind != col.kind and not (kind == NUM and col.kind == NUM):
            raise ExpressionError(
                Message(
                    "ag_filter_kinds",
                    column=f.column,
                    kind=expression.kind_word(col.kind),
                    other=expression.kind_word(kind),
                )  # fmt: skip
            )
        op = "<>" if f.op == "!=" else f.op
        cond = f"({left} {op} {right})"
    else:
        text = _norm_sql(col.text)
        number = f"TRY_CAST({col.text} AS DOUBLE)"
        if f.op in ("=", "!="):
            params += [norm(f.value), f.value]
            cond = f"({text} = ? OR {number} = TRY_CAST(? AS DOUBLE))"
        elif f.op in ("in", "not in"):
            values = [norm(v) for v in f.value.split(",")]
            params += values
            cond = f"({text} IN ({', '.join('?' for _ in values)}))"
        elif f.op == "contains":
            params.append(norm(f.value))
            cond = f"(strpos({text}, ?) > 0)"
        else:
            params.append(f.value)
            cond = f"({col.number} {f.op} TRY_CAST(? AS DOUBLE))"
    negate = f.op in ("!=", "not in")
    return f"NOT coalesce({cond}, false)" if negate else f"coalesce({cond}, false)"


def _measure_sql(
    plan: _Plan, m, expr: Expression | None, where: str, wparams: list
) -> tuple[str, list]:
    """SQL of one measure and its parameters, in the order they appear."""
    if expr is not None:
        eparams: list = []
        sql, kind = expression.to_sql(expr, plan.column, eparams, _date_of(plan))
        if kind == DATE:
            raise ExpressionError(Message("ag_date_measure", text=expr.text))
        if kind == TEXT and m.agg in ("sum", "avg"):
            raise ExpressionError(Message("ag_text_sum", text=expr.text))
        if m.agg == "count" and kind == expression.BOOL:
            return (
                f"count(*) FILTER (WHERE ({where}) AND coalesce({sql}, false))",
                [*wparams, *eparams],
            )
        if m.agg == "count":
            return f"count({sql}) FILTER (WHERE {where})", [*eparams, *wparams]
        if m.agg == "count_distinct":
            return f"count(DISTINCT {sql}) FILTER (WHERE {where})", [*eparams, *wparams]
        # A comparison summed counts the rows where it holds; averaged, it is their share.
        value = f"CAST({sql} AS DOUBLE)" if kind == expression.BOOL else sql
        fn = "sum" if m.agg == "sum" else "avg"
        return f"{fn}({value}) FILTER (WHERE {where})", [*eparams, *wparams]
    if m.agg == "count" and not m.column:
        return f"count(*) FILTER (WHERE {where})", wparams
    col = plan.column(m.column)
    if m.agg == "count":
        return f"count({plan.raw(m.column)}) FILTER (WHERE {where})", wparams
    if m.agg == "count_distinct":
        return f"count(DISTINCT {plan.raw(m.column)}) FILTER (WHERE {where})", wparams
    fn = "sum" if m.agg == "sum" else "avg"
    # Blank cells are NULL: a month of blanks sums to NULL — no value, not 0.
    return f"{fn}({col.number}) FILTER (WHERE {where})", wparams
