"""The SQL a pull wraps around a source's checked query: a derived table, and the date window
pushed down to the source."""

from __future__ import annotations

from datetime import date

from kpi_core.ingest.source_urls import (
    _FILE_SCHEMES,
    _scheme,
)


def _subquery(sql: str, alias: str = "kpi_src") -> str:
    """The checked query as a derived table: a database reads one query expression, whatever the
    text holds; the newline ends a trailing `-- comment` before the parenthesis."""
    return f"SELECT * FROM ({sql}\n) AS {alias}"  # noqa: S608 - checked by a parser


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _windowed(url: str, sql: str, date_column: str, first: date | None, after: date | None):
    """The user's query as a derived table inside a date filter, so the source reads only the
    months asked for: (SQL, parameters) — `?` and a list for DuckDB and SQLite, `:name` and a
    dict for SQLAlchemy."""
    scheme = _scheme(url)
    if scheme == "sqlite" or scheme in _FILE_SCHEMES:
        # Their dates are often text (20/01/19), which no string comparison orders: the rows
        # are read whole and the aggregation keeps the months after reading the dates.
        return _subquery(sql), []
    conds: list[str] = []
    params: dict = {}
    col = _quote(date_column)
    if scheme in ("mysql", "mariadb"):
        col = "`" + date_column.replace("`", "``") + "`"
    for name, op, day in (("kpi_first", ">=", first), ("kpi_after", "<", after)):
        if day is not None:
            conds.append(f"kpi_src.{col} {op} :{name}")
            params[name] = day
    where = f" WHERE {' AND '.join(conds)}" if conds else ""
    return _subquery(sql) + where, params
