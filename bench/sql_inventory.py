"""Count the SQL in kpi_core and what in it is DuckDB's own (issue 24, docs/scale.md).

    python bench/sql_inventory.py [--list]

Reads every module of kpi_core with `ast` (the code is not run), takes each string literal and
f-string that reads as an SQL statement, and checks it against PATTERNS: constructs that
PostgreSQL spells differently or lacks, and those DuckLake lacks. Also counts the Python-side
DuckDB API the warehouse code calls (frames registered on a cursor, fetchnumpy, .df()).
`--list` prints every hit with its file and line. Then each statement goes through sqlglot
(already a dependency) from DuckDB's dialect to PostgreSQL's, and those it cannot write, or writes
with a construct PostgreSQL lacks (LEFT_OVER), are counted: the statements a dialect layer
must spell out by hand. A statement built from pieces is counted once
per literal that holds a keyword, so the numbers are close, not exact.
"""

from __future__ import annotations

import argparse
import ast
import logging
import re
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SQL_START = re.compile(
    r"^\s*(\(?\s*SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP|WITH|MERGE|COPY|ATTACH|"
    r"DETACH|CHECKPOINT|BEGIN|COMMIT|ROLLBACK)\b",  # upper case, as the code writes SQL
)
SQL_BODY = re.compile(r"\b(FROM|INTO|TABLE|SET|VALUES|WHERE|SEQUENCE)\b|nextval", re.IGNORECASE)

# (name, regex, what PostgreSQL needs instead, what DuckLake needs instead)
PATTERNS: list[tuple[str, str, str, str]] = [
    ("INSERT OR REPLACE / IGNORE", r"INSERT\s+OR\s+(REPLACE|IGNORE)", "INSERT … ON CONFLICT DO UPDATE",
     "DELETE + INSERT (no keys)"),
    ("GROUP BY ALL", r"GROUP\s+BY\s+ALL", "the columns spelled out", "-"),
    ("SEMI / ANTI JOIN", r"\b(SEMI|ANTI)\s+JOIN", "EXISTS / NOT EXISTS", "-"),
    ("QUALIFY", r"\bQUALIFY\b", "a subquery over the window", "-"),
    ("arg_max / arg_min", r"\barg_(max|min)\s*\(", "(array_agg(x ORDER BY y DESC))[1] or "
     "DISTINCT ON", "-"),
    ("any_value", r"\bany_value\s*\(", "min() (PostgreSQL 16 has any_value)", "-"),
    ("list / struct functions and types",
     r"\blist_\w+\s*\(|\blist\s*\(|\bstruct_\w+\s*\(|\w+\[\]|\bunnest\s*\(|\{\s*'\w+'\s*:",
     "arrays (array_agg, unnest, int[]) or JSON", "-"),
    ("year() / month() / day()", r"\b(year|month|day)\s*\(", "extract(… FROM …)", "-"),
    ("strftime / strptime", r"\bstr[fp]time\s*\(", "to_char / to_date", "-"),
    ("date_diff / date_add", r"\bdate_(diff|add|sub)\s*\(", "date arithmetic / age()", "-"),
    ("sequences", r"\bnextval\s*\(|\bSEQUENCE\b", "same (serial or nextval)",
     "max(id) + 1 in the write, or ids drawn in Python"),
    ("PRIMARY KEY / UNIQUE", r"PRIMARY\s+KEY|\bUNIQUE\b", "same", "none: checked in code"),
    ("ADD COLUMN with a constraint", r"ADD\s+COLUMN\s+\w+\s+\w+[^;]*(NOT\s+NULL|DEFAULT)",
     "same", "add plain, then backfill"),
    ("CREATE OR REPLACE TEMP", r"CREATE\s+OR\s+REPLACE\s+TEMP", "DROP IF EXISTS + CREATE TEMP",
     "-"),
    ("read_csv / read_parquet / COPY / ATTACH / CHECKPOINT",
     r"\bread_(csv|csv_auto|parquet|json)\b|\bCOPY\b|\bATTACH\b|\bCHECKPOINT\b",
     "engine's own I/O (COPY FROM STDIN, pg_dump)", "same as DuckDB"),
    ("duckdb_*() / pragma_* catalog functions", r"\bduckdb_\w+\s*\(|\bpragma_\w+\s*\(",
     "pg_catalog / information_schema", "same as DuckDB"),
    ("? placeholders", r"\?", "%s (psycopg) or :name (SQLAlchemy text)", "-"),
]  # fmt: skip

# What sqlglot 30 passes through unchanged from DuckDB to PostgreSQL although PostgreSQL lacks it.
LEFT_OVER = re.compile(
    r"\bARG_(MAX|MIN)\b|GROUP BY ALL|\bOR (REPLACE|IGNORE) INTO|\b(SEMI|ANTI) JOIN|"
    r"CREATE OR REPLACE TEMP|\bANY_VALUE\b|\bduckdb_\w+|\bread_(csv|parquet)|\bLIST_\w+|"
    r"\bCHECKPOINT\b|\bATTACH\b",
    re.IGNORECASE,
)

PY_API = {
    "frames registered on a cursor (cur.register)": re.compile(r"\.register\("),
    "fetchnumpy()": re.compile(r"\.fetchnumpy\("),
    ".df() / to_arrow_table()": re.compile(r"\.df\(\)|\.to_arrow_table\("),
    "`import duckdb` (modules)": re.compile(r"^import duckdb|^from duckdb", re.M),
}


def literals(tree: ast.AST) -> list[tuple[int, str]]:
    """Every string literal and f-string (its holes as `{x}`), each once."""
    inner = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = "".join(
                v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else "{x}"
                for v in node.values
            )
            out.append((node.lineno, text))
        elif (
            isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in inner
        ):
            out.append((node.lineno, node.value))
    return out


def is_sql(text: str) -> bool:
    text = re.sub(r"^(\s*--[^\n]*\n)+", "", text)  # a migration opens with comments
    return bool(SQL_START.match(text)) and bool(SQL_BODY.search(text))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--list", action="store_true")
    args = p.parse_args()
    import sqlglot

    logging.getLogger("sqlglot").setLevel(logging.ERROR)  # its notes on each statement
    statements = Counter()
    by_hand: list[str] = []
    hits: dict[str, list[str]] = defaultdict(list)
    api: dict[str, list[str]] = defaultdict(list)
    for path in sorted((ROOT / "kpi_core").rglob("*.py")):
        rel = path.relative_to(ROOT)
        source = path.read_text()
        for line, text in literals(ast.parse(source)):
            if not is_sql(text):
                continue
            statements[str(rel)] += 1
            try:
                out = sqlglot.transpile(text.replace("{x}", "x"), read="duckdb", write="postgres")
                if any(LEFT_OVER.search(o) for o in out):
                    by_hand.append(f"{rel}:{line}")
            except sqlglot.errors.SqlglotError:
                by_hand.append(f"{rel}:{line}")
            for name, rx, _pg, _lake in PATTERNS:
                n = len(re.findall(rx, text, re.IGNORECASE))
                if name == "? placeholders":
                    n = 1 if n else 0  # statements with parameters, not parameters
                for _ in range(n):
                    hits[name].append(f"{rel}:{line}")
        for name, rx in PY_API.items():
            for m in rx.finditer(source):
                api[name].append(f"{rel}:{source.count(chr(10), 0, m.start()) + 1}")

    total = sum(statements.values())
    print(f"SQL statements (string literals) in kpi_core: {total} in {len(statements)} modules")
    for mod, n in statements.most_common():
        print(f"  {n:4d}  {mod}")
    print(f"\n{'construct':<52} {'hits':>5} {'files':>5}  PostgreSQL | DuckLake")
    for name, _rx, pg, lake in PATTERNS:
        h = hits.get(name, [])
        files = len({x.split(":")[0] for x in h})
        print(f"{name:<52} {len(h):>5} {files:>5}  {pg} | {lake}")
    print(
        f"\nsqlglot (duckdb -> postgres): {total - len(by_hand)} statements come out usable, "
        f"{len(by_hand)} need a PostgreSQL text written by hand "
        f"(in {len({x.split(':')[0] for x in by_hand})} modules)"
    )
    print("\nPython-side DuckDB API:")
    for name, h in api.items():
        print(f"  {name:<48} {len(h):>4} in {len({x.split(':')[0] for x in h})} modules")
    if args.list:
        for name, h in {**hits, **api, "by hand after sqlglot": by_hand}.items():
            print(f"\n{name}:")
            for where in h:
                print(f"  {where}")


if __name__ == "__main__":
    main()
