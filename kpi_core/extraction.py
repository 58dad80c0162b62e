"""Finds the message keys the code uses, for `pybabel extract` (wired in babel.cfg) and for
tests/test_catalogs.py.

A key counts when it is written literally as the first argument of a call to one of
`KEYWORDS` — `t("key", lang)`, `ctx.t("key")`, `N_("key")`, `Message("key", ...)`, an alert's
stored `fmt.word("key")` — or as either branch of a conditional there: `t("a" if x else "b", lang)`. Babel's own Python
extractor would glue both branches into one nonsense key, hence this small one. A key that is
built at run time (`t(f"status_{s}")`) is not found: write it out with `N_` where the choices
are listed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from typing import IO

KEYWORDS = frozenset({"t", "N_", "Message", "word"})


def literal_keys(node: ast.AST) -> Iterator[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.IfExp):
        yield from literal_keys(node.body)
        yield from literal_keys(node.orelse)


def called_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def keys_in_source(source: str) -> Iterator[tuple[int, str, str]]:
    """(line, function, key) for every literal key in one Python file."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and node.args and called_name(node) in KEYWORDS:
            for key in literal_keys(node.args[0]):
                yield node.lineno, called_name(node) or "", key


def extract(
    fileobj: IO[bytes], keywords: object, comment_tags: object, options: object
) -> Iterator[tuple[int, None, str, list[str]]]:
    """Babel's extraction-method interface (babel.cfg: `[kpi_core.extraction.extract: ...]`).
    The function name is given as None so that Babel takes every key without `-k` options."""
    for line, _function, key in keys_in_source(fileobj.read().decode("utf-8")):
        yield line, None, key, []
