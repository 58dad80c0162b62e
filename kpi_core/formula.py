"""Formula KPIs: `+ - * / ( )`, numbers and KPI codes, read by a whitelist parser.

Never `eval`, never SQL: a formula is tokenised, parsed by recursive descent into a small tree,
and evaluated over a dict of values. `×` and `÷` are accepted as Excel users type them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from kpi_core.errors import KpiError
from kpi_core.messages import Message


class FormulaError(KpiError):
    """A formula could not be parsed."""


# A name is a KPI code, or any text in brackets — a column of a mapped sheet: [单价] * [数量].
_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d*)?|\.\d+)|([A-Za-z_][A-Za-z0-9_.]*)|\[([^\]]+)\]|(.))")
_OPS = {"×": "*", "÷": "/", "＋": "+", "－": "-", "（": "(", "）": ")", "−": "-"}


@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class Ref:
    code: str


@dataclass(frozen=True)
class BinOp:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Neg:
    operand: Node


Node = Num | Ref | BinOp | Neg


def _tokens(text: str) -> list[tuple[str, str]]:
    out = []
    for number, name, bracketed, other in _TOKEN.findall(text):
        if number:
            out.append(("num", number))
        elif name or bracketed:
            out.append(("ref", name or bracketed.strip()))
        elif other.strip():
            op = _OPS.get(other, other)
            if op not in "+-*/()":
                raise FormulaError(Message("fm_err_operator", text=other))
            out.append(("op", op))
    return out


def parse(text: str) -> Node:
    """Parse a formula; raises FormulaError with what is wrong."""
    tokens = _tokens(str(text))
    if not tokens:
        raise FormulaError(Message("fm_err_empty"))
    pos = 0

    def peek() -> tuple[str, str] | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> tuple[str, str]:
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def expr() -> Node:
        node = term()
        while (tok := peek()) and tok[1] in "+-" and tok[0] == "op":
            node = BinOp(take()[1], node, term())
        return node

    def term() -> Node:
        node = unary()
        while (tok := peek()) and tok[1] in "*/" and tok[0] == "op":
            node = BinOp(take()[1], node, unary())
        return node

    def unary() -> Node:
        tok = peek()
        if tok == ("op", "-"):
            take()
            return Neg(unary())
        if tok == ("op", "+"):
            take()
            return unary()
        return atom()

    def atom() -> Node:
        tok = peek()
        if tok is None:
            raise FormulaError(Message("fm_err_too_early"))
        take()
        if tok[0] == "num":
            return Num(float(tok[1]))
        if tok[0] == "ref":
            return Ref(tok[1])
        if tok[1] == "(":
            node = expr()
            if peek() != ("op", ")"):
                raise FormulaError(Message("fm_err_open_paren"))
            take()
            return node
        raise FormulaError(Message("fm_err_unexpected", text=tok[1]))

    node = expr()
    if pos != len(tokens):
        raise FormulaError(Message("fm_err_unexpected", text=tokens[pos][1]))
    return node


def references(node: Node) -> set[str]:
    if isinstance(node, Ref):
        return {node.code}
    if isinstance(node, BinOp):
        return references(node.left) | references(node.right)
    if isinstance(node, Neg):
        return references(node.operand)
    return set()


def evaluate(node: Node, values: Mapping[str, float | None]) -> float | None:
    """Value of the formula; None if any referenced value is missing or a division is by zero."""
    arrays = {k: np.array([np.nan if v is None else v], dtype=float) for k, v in values.items()}
    result = float(evaluate_arrays(node, arrays, 1)[0])
    return None if np.isnan(result) else result


def evaluate_arrays(node: Node, values: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    """The formula over arrays of `n` values each; NaN where a value is missing or ÷ 0."""
    if isinstance(node, Num):
        return np.full(n, node.value)
    if isinstance(node, Ref):
        return values.get(node.code, np.full(n, np.nan))
    if isinstance(node, Neg):
        return -evaluate_arrays(node.operand, values, n)
    left = evaluate_arrays(node.left, values, n)
    right = evaluate_arrays(node.right, values, n)
    if node.op == "+":
        return left + right
    if node.op == "-":
        return left - right
    if node.op == "*":
        return left * right
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(right == 0, np.nan, left / right)


def find_cycle(deps: Mapping[str, set[str]]) -> list[str] | None:
    """A dependency cycle among KPI codes (`deps[code]` = codes it uses), as a path, or None."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(code: str) -> list[str] | None:
        state[code] = 1
        path.append(code)
        for dep in sorted(deps.get(code, ())):
            if state.get(dep) == 1:
                return path[path.index(dep) :] + [dep]
            if dep not in state and (found := visit(dep)):
                return found
        path.pop()
        state[code] = 2
        return None

    for code in sorted(deps):
        if code not in state and (found := visit(code)):
            return found
    return None
