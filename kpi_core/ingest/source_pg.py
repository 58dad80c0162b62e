"""PostgreSQL sources, read with the least power the server allows.

Every read — Test connection, a sample, a pull — runs in a transaction this module opens itself:
`BEGIN READ ONLY` and `SET LOCAL statement_timeout`, on a connection that also defaults to
read-only, with a client-side timer that cancels the query should the server not. The analyst's
query never travels as a simple query (which may hold several statements): a sample is a
prepared statement, a pull a `COPY (…) TO STDOUT` sent through the extended protocol, so the
server itself refuses a second statement ("cannot insert multiple commands into a prepared
statement"). Our own values (the months of a range) go in as literals quoted by psycopg, and
the analyst's text is never passed through psycopg's `%` formatting, so `'50%'` and `7 % 3`
reach the server as written.

Test connection also says what the account could do beyond reading — a superuser, a member of
the roles that read or write the server's files or run programs, a table it may change, a
database or schema it may create in — because a source should use an account that can only read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date

import pandas as pd

from kpi_core.ingest.source_files import SourceError, TimeLimit, watchdog
from kpi_core.messages import Message

GRACE_S = 5  # the client cancels this long after the server should have


@dataclass(frozen=True)
class Caution:
    """Something Test connection found that a read-only account would not have. `names` are the
    tables, schemas or roles concerned (data, rendered by the page in its language)."""

    code: str  # "superuser", "server_files", "writes", "creates"
    names: tuple[str, ...] = ()

    def __str__(self) -> str:
        listed = ", ".join(self.names)
        return {
            "superuser": "the account is a superuser: it can read and write anything on the "
            "server — use an account that can only read",
            "server_files": f"the account may read or write the server's files or run programs "
            f"({listed}) — use an account that can only read",
            "writes": f"the account may change tables ({listed}) — use an account that can only "
            "read",
            "creates": f"the account may create objects ({listed}) — use an account that can "
            "only read",
        }[self.code]


@dataclass(frozen=True)
class Target:
    """Where to connect, from a URL whose references are resolved (never shown)."""

    host: str
    port: int
    user: str | None
    password: str | None
    dbname: str | None
    options: dict


@contextmanager
def read_only(target: Target, timeout_s: float) -> Iterator:
    """A psycopg connection inside `BEGIN READ ONLY` with the time limit set; rolled back and
    closed at the end. Raises TimeLimit when the limit stopped the work."""
    import psycopg
    from psycopg import sql

    ms = max(int(timeout_s * 1000), 1)
    con = psycopg.connect(
        host=target.host, port=target.port, user=target.user, password=target.password,
        dbname=target.dbname, connect_timeout=10, autocommit=True,
        options="-c default_transaction_read_only=on",
        # Never hand the password over in clear text (a server of the analyst's choosing
        # could ask for it so): SCRAM and md5 prove it without sending it.
        require_auth="!password", **target.options,
    )  # fmt: skip
    try:
        with watchdog(timeout_s + GRACE_S, con.cancel_safe) as cancelled:
            try:
                con.execute("BEGIN READ ONLY")
                con.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(ms)))
                yield con
            except psycopg.errors.QueryCanceled:
                raise TimeLimit() from None
            except psycopg.OperationalError:
                if cancelled():
                    raise TimeLimit() from None
                raise
    finally:
        con.close()  # the server rolls the transaction back


def sample(con, query: str, n: int) -> pd.DataFrame:
    """The first `n` rows of `query` (checked already), as a prepared statement: one statement
    by the server's own parser, the text not touched by `%` formatting (no parameters)."""
    wrapped = f"SELECT * FROM ({query}\n) AS kpi_sample LIMIT {int(n)}"  # noqa: S608
    with con.cursor() as cur:
        cur.execute(wrapped, prepare=True)
        columns = [d.name for d in cur.description or []]
        return pd.DataFrame.from_records(cur.fetchall(), columns=columns)


def copy_text(
    con, query: str, date_column: str | None, first: date | None, after: date | None
) -> bytes:
    """`COPY (the query, within the months) TO STDOUT` as bytes: the months as literals, the
    column as an identifier, both quoted by psycopg; the analyst's text as it is."""
    from psycopg import sql

    conds = []
    if date_column and first is not None:
        conds.append(sql.SQL("kpi_src.{} >= {}").format(sql.Identifier(date_column),
                                                         sql.Literal(first)))  # fmt: skip
    if date_column and after is not None:
        conds.append(sql.SQL("kpi_src.{} < {}").format(sql.Identifier(date_column),
                                                       sql.Literal(after)))  # fmt: skip
    where = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conds) if conds else sql.SQL("")
    # The newline keeps a trailing `-- comment` of the query from swallowing the parenthesis.
    statement = sql.SQL(
        "COPY (SELECT * FROM ({}\n) AS kpi_src{}) TO STDOUT (FORMAT csv, HEADER)"
    ).format(sql.SQL(query), where)
    return statement.as_bytes(con)


def copy_out(con, statement: bytes, write: Callable[[bytes], None]) -> None:
    """Run `statement` (a COPY … TO STDOUT) through the extended protocol and hand each block of
    CSV to `write`. psycopg's own `copy()` sends a simple query, which would run every
    statement hidden in the text; here the server parses one statement or refuses."""
    import psycopg
    from psycopg import pq

    pg = con.pgconn
    encoding = con.info.encoding
    pg.send_query_params(statement, None)
    while pg.flush():
        pass
    try:
        first = pg.get_result()
        if first is None or first.status != pq.ExecStatus.COPY_OUT:
            _raise_for(first, encoding)
        while True:
            size, data = pg.get_copy_data(0)
            if size == -1:
                break
            if size == -2:
                raise psycopg.OperationalError(pg.get_error_message(encoding))
            write(bytes(data))
        _raise_for(pg.get_result(), encoding, ok=True)
    finally:
        while pg.get_result() is not None:
            pass


def _raise_for(result, encoding: str, ok: bool = False) -> None:
    """Turn a libpq result that is not what was expected into psycopg's own exception."""
    import psycopg
    from psycopg import pq

    if result is None:
        raise psycopg.OperationalError("the server sent no result")
    if ok and result.status == pq.ExecStatus.COMMAND_OK:
        return
    if result.status == pq.ExecStatus.FATAL_ERROR:
        raise psycopg.errors.error_from_result(result, encoding=encoding)
    raise psycopg.OperationalError(f"unexpected answer from the server: {result.status}")


_PROBE = """
SELECT r.rolsuper,
       ARRAY(SELECT b.rolname FROM pg_roles b
             WHERE b.rolname IN ('pg_read_server_files', 'pg_write_server_files',
                                 'pg_execute_server_program')
               AND pg_has_role(current_user, b.oid, 'USAGE')
             ORDER BY 1),
       ARRAY(SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p', 'v', 'f', 'm')
               AND n.nspname NOT IN ('pg_catalog', 'information_schema')
               AND n.nspname NOT LIKE 'pg_toast%'
               AND has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')
             ORDER BY 1 LIMIT 6),
       ARRAY(SELECT 'database ' || quote_ident(current_database())
             WHERE has_database_privilege(current_database(), 'CREATE')
             UNION ALL
             SELECT 'schema ' || quote_ident(n.nspname) FROM pg_namespace n
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
               AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
               AND has_schema_privilege(n.oid, 'CREATE')),
       version()
FROM pg_roles r WHERE r.rolname = current_user
"""


def probe(con) -> tuple[str, list[Caution]]:
    """The server's version and what the account could do beyond reading."""
    with con.cursor() as cur:
        cur.execute(_PROBE, prepare=True)
        superuser, server_roles, writable, creatable, version = cur.fetchone()
    cautions = []
    if superuser:
        cautions.append(Caution("superuser"))
    else:
        if server_roles:
            cautions.append(Caution("server_files", tuple(server_roles)))
        if writable:
            names = list(writable[:5]) + (["…"] if len(writable) > 5 else [])
            cautions.append(Caution("writes", tuple(names)))
        if creatable:
            cautions.append(Caution("creates", tuple(creatable)))
    return version, cautions


def target(parts) -> Target:
    """A Target from a SQLAlchemy URL's parts (references resolved)."""
    if not parts.host:
        raise SourceError(Message("su_no_host", example="…@host:5432/db"))
    allowed = {k: str(v) for k, v in parts.query.items() if k in ("sslmode", "application_name",
                                                                  "target_session_attrs")}  # fmt: skip
    return Target(parts.host, int(parts.port or 5432), parts.username, parts.password,
                  parts.database, allowed)  # fmt: skip
