"""The core's DuckDB SQL as PostgreSQL runs it: one translation per text, cached.

Most statements go through sqlglot (DuckDB → PostgreSQL) plus the rewrites sqlglot lacks:
`arg_max`, `GROUP BY ALL`, `INSERT OR REPLACE / IGNORE`, `CREATE OR REPLACE TEMP TABLE`,
`?::INTEGER[]`. Where that is not enough, the PostgreSQL text is written by hand and
recorded beside the DuckDB text (kpi_core/dialects.py; docs/scale.md, "What PostgreSQL costs").

Placeholders become psycopg's named ones (`%(p0)s`, …) in the order of the `?` in the DuckDB text,
so a translation that repeats an operand (sqlglot's `list_contains`) still binds the right value;
every other `%` is doubled, since psycopg reads the whole text.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import exp

from kpi_core.dialects import ALTERNATES, PARTS, normal

_TOKEN = "__kpi_p{}__"
_TOKEN_RE = re.compile(r"__kpi_p(\d+)__")


@dataclass(frozen=True)
class Translated:
    """PostgreSQL statements for one DuckDB text; the parameters go to the last of them."""

    statements: tuple[str, ...]
    count: int  # how many `?` the DuckDB text had


def number_placeholders(sql: str) -> tuple[str, int]:
    """Each `?` outside quotes and comments becomes a token numbered in text order."""
    out: list[str] = []
    n = 0
    i = 0
    while i < len(sql):
        c = sql[i]
        if c in "'\"":
            j = sql.find(c, i + 1)
            while j != -1 and j + 1 < len(sql) and sql[j + 1] == c:  # '' inside a literal
                j = sql.find(c, j + 2)
            j = len(sql) - 1 if j == -1 else j
            out.append(sql[i : j + 1])
            i = j + 1
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            j = len(sql) if j == -1 else j
            i = j  # comments dropped: a `?` or `%` in them means nothing
        elif c == "?":
            out.append(_TOKEN.format(n))
            n += 1
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out), n


def _arg_max(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.ArgMax | exp.ArgMin):
        order = "DESC" if isinstance(node, exp.ArgMax) else "ASC"
        value, by = node.this.sql("postgres"), node.expression.sql("postgres")
        return sqlglot.parse_one(
            f"(array_agg({value} ORDER BY {by} {order}) "
            f"FILTER (WHERE {value} IS NOT NULL AND {by} IS NOT NULL))[1]",
            read="postgres",
        )
    return node


def _date_part(node: exp.Expression) -> exp.Expression:
    """DuckDB's year() / month() / day() are integers; PostgreSQL's extract() is numeric."""
    if isinstance(node, exp.Year | exp.Month | exp.Day) and not isinstance(node.parent, exp.Cast):
        return exp.cast(node.copy(), exp.DataType.build("INT"))
    return node


def _group_by_all(tree: exp.Expression) -> None:
    for select in tree.find_all(exp.Select):
        group = select.args.get("group")
        if group is None or not group.args.get("all"):
            continue
        keys = [
            exp.Literal.number(i + 1)
            for i, e in enumerate(select.expressions)
            if not e.find(exp.AggFunc)
        ]
        select.set("group", exp.Group(expressions=keys) if keys else None)


def _insert_or(tree: exp.Expression, keys: Callable[[str], Sequence[str]]) -> str | None:
    """`INSERT OR IGNORE` / `OR REPLACE` → `ON CONFLICT`; the suffix to append, if any."""
    if not isinstance(tree, exp.Insert) or not tree.args.get("alternative"):
        return None
    how = tree.args["alternative"].upper()
    tree.set("alternative", None)
    if how == "IGNORE":
        return " ON CONFLICT DO NOTHING"
    target = tree.this
    table = (target.this if isinstance(target, exp.Schema) else target).name
    key = list(keys(table))
    if isinstance(target, exp.Schema) and target.expressions:
        columns = [c.name for c in target.expressions]
    else:
        columns = list(keys(f"columns:{table}"))
    rest = [c for c in columns if c not in key]
    if not rest:
        return f" ON CONFLICT ({', '.join(key)}) DO NOTHING"
    sets = ", ".join(f"{c} = excluded.{c}" for c in rest)
    return f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets}"


def _or_replace_temp(tree: exp.Expression) -> str | None:
    """`CREATE OR REPLACE TEMP TABLE x` → drop it first (the name, to drop)."""
    if isinstance(tree, exp.Create) and tree.args.get("replace") and tree.kind == "TABLE":
        tree.set("replace", False)
        return tree.this.name if isinstance(tree.this, exp.Table) else tree.this.this.name
    return None


def _finish(text: str) -> str:
    return _TOKEN_RE.sub(r"%(p\1)s", text.replace("%", "%%"))


@functools.lru_cache(maxsize=4096)
def _translate(sql: str, keys: Callable[[str], Sequence[str]]) -> Translated:
    hand = ALTERNATES.get(normal(sql))
    numbered, count = number_placeholders(hand if hand is not None else sql)
    if hand is not None:
        return Translated((_finish(numbered),), count)
    parts: dict[str, str] = {}
    if PARTS:
        numbered = normal(numbered)  # comments are gone: number_placeholders drops them
        for i, (part, text) in enumerate(PARTS.items()):
            if part in numbered:
                token = f"__kpi_part{i}__"
                numbered = numbered.replace(part, token)
                parts[token] = text
    numbered = re.sub(
        r"(__kpi_p\d+__)::(\w+(?:\[\])?)", r"CAST(\1 AS \2)", numbered
    )  # sqlglot does not parse `?::TYPE`
    statements: list[str] = []
    trees = [t for t in sqlglot.parse(numbered, read="duckdb") if t is not None]
    for tree in trees:
        drop = _or_replace_temp(tree)
        suffix = _insert_or(tree, keys) or ""
        _group_by_all(tree)
        tree = tree.transform(_arg_max).transform(_date_part)
        if drop:
            statements.append(f"DROP TABLE IF EXISTS {drop}")
        text = tree.sql("postgres") + suffix
        for token, part in parts.items():
            text = text.replace(token, part)
        statements.append(_finish(text))
    return Translated(tuple(statements), count)


def translate(sql: str, keys: Callable[[str], Sequence[str]]) -> Translated:
    """PostgreSQL statements for the DuckDB text `sql`. `keys(table)` gives a table's primary
    key, `keys("columns:" + table)` its columns (for `INSERT OR REPLACE`)."""
    return _translate(sql, keys)


def bind(params: Sequence[Any] | dict | None, count: int) -> dict[str, Any]:
    """DuckDB's positional parameters as the named ones of the translation."""
    if params is None:
        params = []
    if isinstance(params, dict):
        raise TypeError("named parameters are not used by the core's SQL")
    values = list(params)
    if len(values) != count:
        raise ValueError(f"{count} parameters expected, {len(values)} given")
    return {f"p{i}": v for i, v in enumerate(values)}
