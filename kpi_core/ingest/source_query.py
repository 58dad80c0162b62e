"""Is a source's query exactly one SELECT? Judged by a real parser, never by regular expressions.

DuckDB's own parser (`duckdb.extract_statements`, and `json_serialize_sql` for the tree) judges
exports, which DuckDB runs, and PostgreSQL and SQLite: DuckDB's parser grew from PostgreSQL's, so
it reads strings, dollar quotes, escapes and nested comments as PostgreSQL does. Where DuckDB and
SQLite differ (SQLite does not nest comments), SQLite's driver refuses a second statement and its
authorizer any write. Other dialects quote differently — MySQL's backslash escapes and `#`
comments, SQL Server's `[bracketed names]`, where a ';' DuckDB sees inside a string is a
statement break — so they are judged by sqlglot in their own dialect.

A query that passes is returned without its trailing ';', ready to be put inside a derived table
(`SELECT * FROM (<query>\n) AS kpi_src`), which every reader does: a database then reads one
query expression whatever the text holds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import duckdb

from kpi_core.ingest.source_files import SourceError
from kpi_core.messages import Message

# SQLAlchemy's dialect → sqlglot's, for the dialects DuckDB's parser would misread.
SQLGLOT_DIALECTS = {"mysql": "mysql", "mariadb": "mysql", "mssql": "tsql", "oracle": "oracle"}
_READS = {"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE"}


def check_query(sql: str, dialect: str = "duckdb") -> str:
    """The query without a trailing ';' if it is one SELECT (or WITH … SELECT); else
    SourceError. `dialect` is the URL's scheme (postgresql, sqlite, mysql, …) or duckdb."""
    text = (sql or "").strip()
    if not text or not _code(text, dialect):
        raise SourceError(Message("sq_empty"))
    if dialect in SQLGLOT_DIALECTS:
        return _sqlglot(text, SQLGLOT_DIALECTS[dialect])
    return _duckdb(text)


def _first_line(exc: BaseException) -> str:
    lines = [x.strip() for x in str(exc).splitlines() if x.strip()]
    return re.sub(r"^Parser Error:\s*", "", lines[0]) if lines else type(exc).__name__


def _code(text: str, dialect: str) -> bool:
    """Whether `text` holds anything but comments and semicolons."""
    if dialect in SQLGLOT_DIALECTS:
        return bool(re.sub(r"[\s;]", "", text))  # sqlglot says so itself below
    try:
        tokens = duckdb.tokenize(text)
    except duckdb.Error:
        return True  # the parser will say what is wrong
    return any(
        kind != duckdb.token_type.comment and text[pos] != ";" for pos, kind in tokens
    )  # fmt: skip


def _duckdb(text: str) -> str:
    try:
        statements = duckdb.extract_statements(text)
    except duckdb.Error as exc:
        raise SourceError(Message("sq_unreadable", error=_first_line(exc))) from None
    if len(statements) > 1:
        raise SourceError(Message("sq_one_statement"))
    if not statements or statements[0].type != duckdb.StatementType.SELECT:
        raise SourceError(Message("sq_not_select"))
    # A data-changing statement inside a WITH parses as a SELECT: look through the tree.
    with duckdb.connect() as con:
        tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [text]).fetchone()[0])
    if tree.get("error"):
        raise SourceError(Message("sq_unreadable", error=tree.get("error_message", "")))
    for kind in _node_types(tree):
        if kind not in _READS:
            word = kind.removesuffix("_QUERY_NODE").removesuffix("_NODE").split("_")[0]
            raise SourceError(Message("sq_writes", word=word))
    # Cut a trailing ';' (and what follows it, comments only): the text goes into a subquery.
    tokens = [(p, k) for p, k in duckdb.tokenize(text) if k != duckdb.token_type.comment]
    while tokens and text[tokens[-1][0]] == ";":
        text = text[: tokens.pop()[0]]
    return text.rstrip()


def _node_types(tree: object) -> Iterator[str]:
    if isinstance(tree, dict):
        kind = tree.get("type")
        if isinstance(kind, str) and kind.endswith("_NODE") and "node" not in tree:
            yield kind
        for value in tree.values():
            yield from _node_types(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _node_types(value)


def _sqlglot(text: str, dialect: str) -> str:
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    try:
        statements = [s for s in sqlglot.parse(text, read=dialect) if s is not None]
        tokens = sqlglot.Dialect.get_or_raise(dialect).tokenize(text)
    except SqlglotError as exc:
        raise SourceError(Message("sq_unreadable", error=_first_line(exc))) from None
    if not statements:
        raise SourceError(Message("sq_empty"))
    if len(statements) > 1:
        raise SourceError(Message("sq_one_statement"))
    query = statements[0]
    if not isinstance(query, exp.Query):
        raise SourceError(Message("sq_not_select"))
    for node, word in ((exp.Into, "INTO"), (exp.Lock, "FOR UPDATE"), (exp.Insert, "INSERT"),
                       (exp.Update, "UPDATE"), (exp.Delete, "DELETE"), (exp.Merge, "MERGE"),
                       (exp.Command, Message("sq_a_command"))):  # fmt: skip
        if query.find(node):
            raise SourceError(Message("sq_writes", word=word))
    while tokens and tokens[-1].token_type == sqlglot.TokenType.SEMICOLON:
        text = text[: tokens.pop().start]
    return text.rstrip()
