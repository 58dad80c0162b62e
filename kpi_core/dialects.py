"""PostgreSQL texts written by hand, each beside the DuckDB text it stands for.

The core's SQL is DuckDB's. On a PostgreSQL warehouse each text is translated once
(kpi_core/pg_dialect.py, sqlglot and a few rewrites); where that is not enough, the module that
holds the text names its PostgreSQL twin where it defines it:

    CLASH = dialects.postgres(\"\"\"SELECT … SEMI JOIN … GROUP BY ALL\"\"\",
                              \"\"\"SELECT … WHERE EXISTS (…) GROUP BY 1, 2\"\"\")

`postgres` returns the DuckDB text unchanged: the file's path pays nothing. Plain Python, no
import of sqlglot or psycopg.
"""

from __future__ import annotations

# The DuckDB text, whitespace-normalised → its PostgreSQL text (`?` parameters in the same order).
ALTERNATES: dict[str, str] = {}


def normal(sql: str) -> str:
    return " ".join(sql.split())


# A DuckDB fragment that other texts embed (a subquery, a table expression), normalised → its
# PostgreSQL text. It stands in a statement where a table name or a value could; it has no
# parameters (a `?` in the PostgreSQL text is its own: a regular expression's, say).
PARTS: dict[str, str] = {}


def postgres_part(duckdb_part: str, postgres_part: str) -> str:
    """As `postgres`, for a fragment that statements built at run time embed."""
    if "?" in duckdb_part:
        raise ValueError("a fragment with its own parameters cannot be swapped")
    PARTS[normal(duckdb_part)] = postgres_part
    return duckdb_part


def postgres(duckdb_text: str, postgres_text: str) -> str:
    """Record `postgres_text` as what PostgreSQL runs for `duckdb_text`; gives `duckdb_text`."""
    ALTERNATES[normal(duckdb_text)] = postgres_text
    return duckdb_text
