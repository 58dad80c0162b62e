"""Measure expressions over a file's columns — `=[Ship Date] - [Order Date]`,
`=[Shipped] <= [Required]`, `=IF([Returned] = 'Yes', 1, 0)` — read by a real parser (sqlglot)
and written back as DuckDB SQL by this module, node by node, from a whitelist.

The analyst's text never reaches DuckDB: column references become the SQL the aggregation
prepared for them (their number, date or text), numbers are re-written from floats, and strings
are bound parameters. Anything outside the whitelist (functions other than IF and ABS, `||`,
subqueries, …) is refused with its place in words.

Types follow the columns: date − date is days, date ± number is a date, two dates or two
numbers compare, a column compared with a text compares its text (case and spaces ignored).
A comparison summed counts the rows where it holds; averaged, it is their share.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from kpi_core.errors import KpiError
from kpi_core.messages import Message

ANY, NUM, DATE, TEXT, BOOL = "any", "number", "date", "text", "true/false"
# A kind as a message names it ("a number" / "数字").
KIND_WORDS = {
    ANY: Message("ex_w_any"),
    NUM: Message("ex_w_number"),
    DATE: Message("ex_w_date"),
    TEXT: Message("ex_w_text"),
    BOOL: Message("ex_w_bool"),
}


def kind_word(kind: str) -> Message | str:
    return KIND_WORDS.get(kind, kind)


_SUBS = {"×": "*", "÷": "/", "＋": "+", "－": "-", "−": "-", "（": "(", "）": ")", "≤": "<=",
         "≥": ">=", "≠": "!=", "＝": "=", "＜": "<", "＞": ">", "，": ",", "’": "'", "‘": "'"}  # fmt: skip
_COMPARE = {exp.EQ: "=", exp.NEQ: "<>", exp.GT: ">", exp.GTE: ">=", exp.LT: "<", exp.LTE: "<="}


class ExpressionError(KpiError):
    """An expression that cannot be read or does not fit its columns."""


@dataclass(frozen=True)
class Expression:
    text: str
    tree: exp.Expression
    names: dict[str, str]  # placeholder → column name as written

    def references(self) -> list[str]:
        return sorted(set(self.names.values()))


def is_expression(text: object) -> bool:
    return isinstance(text, str) and text.lstrip().startswith("=")


def parse(text: str) -> Expression:
    """`=…` (or without the '=') as a checked tree; ExpressionError says what is wrong."""
    body = text.lstrip()
    body = body[1:] if body.startswith("=") else body
    names: dict[str, str] = {}
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch in "'\"":  # a string: copied as it is, brackets and all
            end = body.find(ch, i + 1)
            if end < 0:
                raise ExpressionError(Message("ex_quote_open", text=body[i:]))
            out.append("'" + body[i + 1 : end].replace("'", "''") + "'")
            i = end + 1
        elif ch == "[":
            end = body.find("]", i)
            if end < 0:
                raise ExpressionError(Message("ex_bracket_open", text=body[i:]))
            name = body[i + 1 : end].strip()
            if not name:
                raise ExpressionError(Message("ex_no_column"))
            key = f"kpicol{len(names)}"
            names[key] = name
            out.append(f" {key} ")
            i = end + 1
        else:
            out.append(_SUBS.get(ch, ch))
            i += 1
    sql = "".join(out).strip()
    sql = re.sub(r"(?<![<>!=])==?(?!=)", "=", sql).replace("==", "=")
    if not sql:
        raise ExpressionError(Message("ex_empty"))
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except SqlglotError as exc:
        raise ExpressionError(Message("ex_unreadable", text=text.strip())) from exc
    for node in tree.walk():
        if isinstance(node, exp.Column):
            if node.table or node.name not in names:
                # A bare word is a column too (as in KPI formulas): [Amount] or Amount.
                if node.table:
                    raise ExpressionError(Message("ex_qualified", text=node.sql()))
                key = f"kpicol{len(names)}"
                names[key] = node.name
                node.set("this", exp.to_identifier(key))
        elif not isinstance(node, _ALLOWED):
            raise ExpressionError(Message("ex_not_allowed", text=_shown(node, names)))
    return Expression(text.strip(), tree, names)


_ALLOWED = (exp.Column, exp.Identifier, exp.Literal, exp.Paren, exp.Add, exp.Sub, exp.Mul,
            exp.Div, exp.Neg, exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.And, exp.Or,
            exp.Not, exp.If, exp.Abs, exp.Is, exp.Null, exp.Boolean)  # fmt: skip


def _shown(node: exp.Expression, names: dict[str, str]) -> str:
    text = node.sql()
    for key, name in names.items():
        text = text.replace(key, f"[{name}]")
    return text


@dataclass
class Column:
    """What the aggregation prepared for one column: SQL for its number, date and text."""

    kind: str  # NUM, DATE or TEXT: how the column reads in arithmetic
    number: str = "NULL"
    date: str = "NULL"
    text: str = "NULL"


Resolve = Callable[[str], Column]


def to_sql(e: Expression, resolve: Resolve, params: list, date_of: Callable[[str], object]):
    """(DuckDB SQL, kind) of the expression; literals into `params`. `date_of` reads a text as a
    date in the profile's format (or returns None)."""
    return _Writer(e, resolve, params, date_of).write(e.tree)


def check(e: Expression, kinds: dict[str, str]) -> str:
    """The kind of the expression when columns have `kinds` (ANY where unknown); raises
    ExpressionError naming what does not fit."""
    cols = {n: Column(kinds.get(n, ANY), "x", "x", "x") for n in e.names.values()}
    return _Writer(e, lambda n: cols[n], _CHECKING, lambda t: None).write(e.tree)[1]


class _Checking(list):
    """The parameters of a check: none are kept."""


_CHECKING = _Checking()


class _Writer:
    def __init__(self, e: Expression, resolve: Resolve, params: list, date_of) -> None:
        self.e, self.resolve, self.params, self.date_of = e, resolve, params, date_of
        self.at: dict[int, int] = {}  # a text literal → its place in params

    def date_param(self, node: exp.Expression, literal: exp.Literal) -> str:
        day = self.date_of(literal.this)
        if day is None and self.params is not _CHECKING:
            raise self.fail(node, Message("ex_date_with", value=literal.this))
        self.params[self.at[id(literal)]] = str(day)
        return "CAST(? AS DATE)"

    def fail(self, node: exp.Expression, why: Message) -> ExpressionError:
        return ExpressionError(
            Message("ex_in", expr=self.e.text, text=_shown(node, self.e.names), why=why)
        )

    def write(self, node: exp.Expression) -> tuple[str, str]:
        if isinstance(node, exp.Paren):
            sql, kind = self.write(node.this)
            return f"({sql})", kind
        if isinstance(node, exp.Literal):
            if node.is_string:
                self.at[id(node)] = len(self.params)
                self.params.append(node.this)
                return "CAST(? AS VARCHAR)", TEXT
            return repr(float(node.this)), NUM
        if isinstance(node, exp.Boolean):
            return ("true" if node.this else "false"), BOOL
        if isinstance(node, exp.Null):
            return "NULL", ANY
        if isinstance(node, exp.Column):
            col = self.resolve(self.e.names[node.name])
            return {NUM: col.number, DATE: col.date, TEXT: col.text}.get(col.kind, col.text), (
                col.kind
            )
        if isinstance(node, exp.Neg):
            sql, kind = self.write(node.this)
            self.need(node, kind, NUM)
            return f"(-{sql})", NUM
        if isinstance(node, exp.Abs):
            sql, kind = self.write(node.this)
            self.need(node, kind, NUM)
            return f"abs({sql})", NUM
        if isinstance(node, exp.Add | exp.Sub):
            return self.plus(node)
        if isinstance(node, exp.Mul | exp.Div):
            (a, ka), (b, kb) = self.write(node.this), self.write(node.expression)
            self.need(node, ka, NUM)
            self.need(node, kb, NUM)
            if isinstance(node, exp.Div):
                return f"({a} / NULLIF({b}, 0))", NUM
            return f"({a} * {b})", NUM
        if type(node) in _COMPARE:
            return self.compare(node)
        if isinstance(node, exp.And | exp.Or):
            (a, ka), (b, kb) = self.write(node.this), self.write(node.expression)
            self.need(node, ka, BOOL)
            self.need(node, kb, BOOL)
            return f"({a} {'AND' if isinstance(node, exp.And) else 'OR'} {b})", BOOL
        if isinstance(node, exp.Not):
            sql, kind = self.write(node.this)
            self.need(node, kind, BOOL)
            return f"(NOT {sql})", BOOL
        if isinstance(node, exp.Is):
            target = node.this
            if isinstance(target, exp.Column):
                sql = self.resolve(self.e.names[target.name]).text  # blank text is NULL
            else:
                sql = self.write(target)[0]
            return f"({sql} IS NULL)", BOOL
        if isinstance(node, exp.If):
            cond, kc = self.write(node.this)
            self.need(node, kc, BOOL)
            (a, ka) = self.write(node.args["true"])
            b, kb = self.write(node.args["false"]) if node.args.get("false") else ("NULL", ANY)
            kind = self.same(node, ka, kb)
            return f"(CASE WHEN {cond} THEN {a} ELSE {b} END)", kind
        raise self.fail(node, Message("ex_not_in_measure"))

    def need(self, node: exp.Expression, kind: str, want: str) -> None:
        if kind not in (want, ANY):
            raise self.fail(node, Message("ex_needs", want=kind_word(want), kind=kind_word(kind)))

    def same(self, node: exp.Expression, a: str, b: str) -> str:
        if a == ANY:
            return b
        if b in (ANY, a):
            return a
        raise self.fail(node, Message("ex_mixes", a=kind_word(a), b=kind_word(b)))

    def plus(self, node: exp.Expression) -> tuple[str, str]:
        (a, ka), (b, kb) = self.write(node.this), self.write(node.expression)
        add = isinstance(node, exp.Add)
        if ka == DATE and kb == DATE and not add:
            return f"CAST(date_diff('day', {b}, {a}) AS DOUBLE)", NUM  # days between
        if ANY in (ka, kb) and DATE in (ka, kb):
            # Only a check knows no column's kind: date − ? is days or a date.
            return "x", (ANY if not add and ka == DATE else DATE if add else NUM)
        if ka == DATE and kb == NUM:
            return f"({a} {'+' if add else '-'} CAST(round({b}) AS INTEGER))", DATE
        if kb == DATE and add and ka == NUM:
            return f"({b} + CAST(round({a}) AS INTEGER))", DATE
        if ka == DATE or kb == DATE:
            raise self.fail(node, Message("ex_two_dates"))
        self.need(node, ka, NUM)
        self.need(node, kb, NUM)
        return f"({a} {'+' if add else '-'} {b})", NUM

    def compare(self, node: exp.Expression) -> tuple[str, str]:
        op = _COMPARE[type(node)]
        left, right = node.this, node.expression
        (a, ka), (b, kb) = self.write(left), self.write(right)
        # A date compared with a text: the text is a date in the profile's format.
        if ka == DATE and kb == TEXT and isinstance(right, exp.Literal):
            b, kb = self.date_param(node, right), DATE
        elif kb == DATE and ka == TEXT and isinstance(left, exp.Literal):
            a, ka = self.date_param(node, left), DATE
        if TEXT in (ka, kb):
            ta = self.text_of(left, a, ka)
            tb = self.text_of(right, b, kb)
            return f"({_norm(ta)} {op} {_norm(tb)})", BOOL
        kind = self.same(node, ka, kb)
        if kind == BOOL and op not in ("=", "<>"):
            raise self.fail(node, Message("ex_orders_bools"))
        return f"({a} {op} {b})", BOOL

    def text_of(self, node: exp.Expression, sql: str, kind: str) -> str:
        if isinstance(node, exp.Column):
            return self.resolve(self.e.names[node.name]).text
        if kind in (TEXT, ANY):
            return sql
        return f"CAST({sql} AS VARCHAR)"


def _norm(sql: str) -> str:
    """Case, spaces and underscores ignored, as names.norm does."""
    return f"lower(regexp_replace({sql}, '[\\s_]+', '', 'g'))"
