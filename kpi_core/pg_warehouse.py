"""The warehouse on PostgreSQL (`KPI_WAREHOUSE=postgresql+psycopg://user:pw@host:port/db`), for
several app servers on several machines sharing one warehouse (docs/scale.md).

It has the public face of `kpi_core.warehouse.Warehouse` as the core uses it. The cursors it
gives take the core's DuckDB SQL (`kpi_core.pg_dialect` translates each text once), fetch rows,
frames and numpy columns as DuckDB's do, and `register(name, frame)` makes a temp table filled
by COPY and ANALYZEd (without statistics the planner scans `actual` to join it).

PostgreSQL itself does what the file's gate does: many writers at once, each in a transaction,
row locks and keys. So there is no gate, no linger and no file lock: a small pool of
connections, one per thread at a time. `data_version()` is read at every ask, since another
server may have committed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
from psycopg import errors as pg_errors
from psycopg.adapt import Dumper, Loader
from pyarrow import csv

from kpi_core import pauses, pg_columns
from kpi_core.errors import DuplicateKeyError, KpiError, WarehouseBusyError
from kpi_core.messages import Message
from kpi_core.migrations import MIGRATIONS
from kpi_core.pg_dialect import bind, translate
from kpi_core.pg_migrations import PG_MIGRATIONS

SCHEMES = ("postgresql+psycopg://", "postgresql://", "postgres://")
# Connections a process keeps at most: N app servers × POOL stay under the server's
# max_connections (100 by default). A thread that holds one already may open one more beyond it
# (a read inside its own write), so threads never wait for each other in a circle.
POOL = 10

# Keys and columns of the tables, read once per schema (for INSERT OR REPLACE's ON CONFLICT).
_SCHEMA: dict[str, tuple[str, ...]] = {}


def is_url(target: str) -> bool:
    return str(target).startswith(SCHEMES)


def redacted(url: str) -> str:
    """The URL without its password: what logs, messages and pages may show."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else "***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


def _dsn(url: str) -> str:
    return "postgresql://" + url.split("://", 1)[1]


def schema_keys(name: str) -> tuple[str, ...]:
    return _SCHEMA.get(name, ())


# -- values both ways, as DuckDB gives and takes them -----------------------------------------


class _NumpyInt(Dumper):
    oid = psycopg.postgres.types["int8"].oid

    def dump(self, obj: Any) -> bytes:
        return str(int(obj)).encode()


class _NumpyFloat(Dumper):
    oid = psycopg.postgres.types["float8"].oid

    def dump(self, obj: Any) -> bytes:
        return repr(float(obj)).encode()


class _NumpyBool(Dumper):
    oid = psycopg.postgres.types["bool"].oid

    def dump(self, obj: Any) -> bytes:
        return b"t" if obj else b"f"


class _NumericAsFloat(Loader):
    """DuckDB gives DOUBLE for avg() and sums of doubles; PostgreSQL's numeric would be Decimal."""

    def load(self, data: Any) -> float:
        return float(bytes(data))


class _DateAsText(Loader):
    """A date as PostgreSQL's ISO text, for `fetchnumpy`: numpy parses 5,000 of them in ~0.3 ms,
    where building date objects and converting those took ~7 ms a column (a roll-up has three)."""

    def load(self, data: Any) -> str:
        return bytes(data).decode()


def _adapt(con: psycopg.Connection) -> None:
    for t in (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32):
        con.adapters.register_dumper(t, _NumpyInt)
    for t in (np.float32, np.float64):
        con.adapters.register_dumper(t, _NumpyFloat)
    con.adapters.register_dumper(np.bool_, _NumpyBool)
    con.adapters.register_loader("numeric", _NumericAsFloat)


_INTS, _FLOATS, _TIMES, _BOOL = {20, 21, 23}, {700, 701, 1700}, {1082, 1114, 1184}, 16


def _column(values: Sequence[Any], oid: int) -> np.ndarray:
    """A column as DuckDB's fetchnumpy + warehouse._plain give it (NULL as NaN / NaT / None)."""
    if oid in _INTS:
        if any(v is None for v in values):
            return np.array([np.nan if v is None else v for v in values], dtype=float)
        return np.array(values, dtype=np.int32 if oid != 20 else np.int64)
    if oid in _FLOATS:
        return np.array(values, dtype=float)  # None becomes NaN
    if oid == 1082 and all(isinstance(v, str) or v is None for v in values):
        return np.array(["NaT" if v is None else v for v in values], dtype="datetime64[D]").astype(
            "datetime64[us]"
        )  # the text of _DateAsText
    if oid in _TIMES:
        return np.array([np.datetime64("NaT") if v is None else v for v in values]).astype(
            "datetime64[us]"
        )
    if oid == _BOOL and not any(v is None for v in values):
        return np.array(values, dtype=bool)
    return np.array(values, dtype=object)


def _sql_type(name: str, values: pd.Series) -> str:
    """The PostgreSQL type of a registered frame's column: its dtype's, or for a column of
    Python objects (all NULL, say) the type of the warehouse's columns of that name."""
    kind = values.dtype.kind
    if kind == "b":
        return "boolean"
    if kind in "iu":
        return "bigint"
    if kind == "f":
        return "double precision"
    if kind == "M":
        return "timestamp"
    if known := _SCHEMA.get(f"type:{name}"):
        return known[0]
    sample = values.dropna()
    first = sample.iloc[0] if len(sample) else None
    if isinstance(first, bool | np.bool_):
        return "boolean"
    if isinstance(first, int | np.integer):
        return "bigint"
    if isinstance(first, float | np.floating):
        return "double precision"
    if isinstance(first, dt.datetime):
        return "timestamp"
    if isinstance(first, dt.date):
        return "date"
    if isinstance(first, list | tuple | np.ndarray):
        return "text[]"
    return "text"


class PgCursor:
    """A DuckDB-like cursor over one pooled connection: execute → fetch*, df, fetchnumpy,
    register. Temp tables it registered are dropped when it closes."""

    def __init__(self, con: psycopg.Connection):
        self._con = con
        self._cur = con.cursor()
        self._temps: list[str] = []

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> PgCursor:
        done = translate(sql, schema_keys)
        for text in done.statements[:-1]:
            self._cur.execute(text)
        self._cur.execute(done.statements[-1], bind(params, done.count))
        return self

    @staticmethod
    def with_tables(
        sql: str, params: Sequence[Any] | None, tables: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        """The PostgreSQL text and values of one read statement that joins `tables` (frames or
        Arrow tables) by name, each bound as one array per column and unnested in a WITH
        clause in front of it."""
        done = translate(sql, schema_keys)
        (text,) = done.statements
        values = bind(params, done.count)
        ctes = []
        for i, (name, table) in enumerate(tables.items()):
            # An Arrow table's columns as pandas Series, without to_pandas()'s frame (~1 ms).
            frame = (
                table
                if isinstance(table, pd.DataFrame)
                else {c: pd.Series(table.column(c).to_numpy()) for c in table.column_names}
            )
            arrays = []
            for j, column in enumerate(frame):
                kind = _sql_type(str(column), frame[column])
                values[f"t{i}_{j}"] = _array_value(frame[column])
                arrays.append(f"%(t{i}_{j})s::{kind}[]")
            names = ", ".join(f'"{c}"' for c in frame)
            # Names are the core's own (pairs.py: "wanted"); the values are bound.
            unnested = f"SELECT * FROM unnest({', '.join(arrays)})"  # noqa: S608
            ctes.append(f"{name} ({names}) AS ({unnested})")
        head = "WITH " + ", ".join(ctes)
        text = f"{head}, {text[5:]}" if text[:5].upper() == "WITH " else f"{head} {text}"
        return text, values

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> PgCursor:
        done = translate(sql, schema_keys)
        self._cur.executemany(done.statements[-1], [bind(r, done.count) for r in rows])
        return self

    def fetchall(self) -> list[tuple]:
        return self._cur.fetchall()

    def fetchone(self) -> tuple | None:
        return self._cur.fetchone()

    def _names_types(self) -> tuple[list[str], list[int]]:
        desc = self._cur.description or []
        return [d.name for d in desc], [d.type_code for d in desc]

    def fetchnumpy(self) -> dict[str, np.ndarray]:
        names, types = self._names_types()
        rows = self._cur.fetchall()
        cols = list(zip(*rows, strict=True)) if rows else [()] * len(names)
        return {n: _column(c, t) for n, c, t in zip(names, cols, types, strict=True)}

    def df(self) -> pd.DataFrame:
        names, types = self._names_types()
        frame = pd.DataFrame.from_records(self._cur.fetchall(), columns=names)
        for name, oid in zip(names, types, strict=True):
            if oid in _TIMES:  # DuckDB gives DATE and TIMESTAMP as datetime64
                frame[name] = pd.to_datetime(frame[name])
            elif oid in _FLOATS:
                frame[name] = frame[name].astype(float)
        return frame

    def register(self, name: str, table: Any) -> None:
        """The frame (or Arrow table) as a temp table `name` for this cursor's statements."""
        frame = table if isinstance(table, pd.DataFrame) else table.to_pandas()
        columns = ", ".join(f'"{c}" {_sql_type(str(c), frame[c])}' for c in frame.columns)
        self._cur.execute(f"DROP TABLE IF EXISTS pg_temp.{name}")
        self._cur.execute(f"CREATE TEMP TABLE {name} ({columns})")
        if name not in self._temps:
            self._temps.append(name)
        if len(frame):
            names = ", ".join(f'"{c}"' for c in frame.columns)
            if all(isinstance(t, np.dtype) and t.kind in "biufM" for t in frame.dtypes):
                # Numbers and times (an upload's values): Arrow's CSV writer, ~30× faster than a
                # row at a time from Python (2 s for an upload of 94,000 values). NaN and NaT
                # are written as NULL; floats in their shortest exact text.
                text = io.BytesIO()
                csv.write_csv(
                    pa.Table.from_pandas(frame, preserve_index=False),
                    text,
                    csv.WriteOptions(include_header=False),
                )
                with self._cur.copy(f"COPY {name} ({names}) FROM STDIN (FORMAT csv)") as copy:
                    copy.write(text.getvalue())
            else:
                with self._cur.copy(f"COPY {name} ({names}) FROM STDIN") as copy:
                    for row in frame.itertuples(index=False, name=None):
                        copy.write_row([None if _missing(v) else _plain_value(v) for v in row])
        self._cur.execute(f"ANALYZE {name}")

    def unregister(self, name: str) -> None:
        # In a failed transaction (a `finally` after a refused insert) the drop would hide the
        # error; the rollback drops the table anyway.
        if self._con.info.transaction_status != psycopg.pq.TransactionStatus.INERROR:
            self._cur.execute(f"DROP TABLE IF EXISTS pg_temp.{name}")
        if name in self._temps:
            self._temps.remove(name)

    def complete(self) -> None:
        """DuckDB needs an unfinished read ended before a register; psycopg does not."""

    def close(self) -> None:
        try:
            if self._temps and not self._con.closed:
                status = self._con.info.transaction_status
                if status == psycopg.pq.TransactionStatus.IDLE:
                    for name in self._temps:
                        self._cur.execute(f"DROP TABLE IF EXISTS pg_temp.{name}")
        finally:
            self._cur.close()


def _array_value(values: pd.Series) -> Any:
    """A column bound as one array: integers as the array's text (`{1,2,…}`), which psycopg
    passes as it is; its own dump of a list of 5,000 ints took ~8 ms of a roll-up's query."""
    if values.dtype.kind in "iu":
        return "{" + ",".join(map(str, values.tolist())) + "}"
    return values.tolist()


def _missing(v: Any) -> bool:
    if v is None or v is pd.NaT or v is pd.NA:
        return True
    return isinstance(v, float) and v != v


def _plain_value(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, pd.Timestamp):
        return v.to_pydatetime()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


class PgWarehouse:
    """The warehouse in a PostgreSQL database (see the module docstring)."""

    engine = "postgresql"
    in_memory = False
    linger = 0.0

    def __init__(self, url: str, *, wait: float = 30.0, pool: int = POOL, **_: Any):
        self._url = url
        self.path = redacted(url)  # printed by commands; never the password
        self.version_key = self.path
        self.wait = wait
        self.pool = pool
        self._idle: list[psycopg.Connection] = []
        self._all: list[psycopg.Connection] = []
        self._state = threading.Condition(threading.Lock())
        self._mine = threading.local()  # how many connections this thread holds
        self.migrate()

    # -- connections -------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection:
        try:
            con = psycopg.connect(
                _dsn(self._url), autocommit=True, connect_timeout=max(1, int(self.wait))
            )
        except psycopg.OperationalError:
            # psycopg's text may quote the connection string: never pass it on.
            raise KpiError(Message("pg_err_connect", url=self.path)) from None
        _adapt(con)
        # A roll-up joins thousands of pairs to a year of actual_year and target: key probes
        # take ~30 ms where a full scan hashed against the pairs took ~250 (bench/README.md).
        # PostgreSQL's default random_page_cost (4) prices a probe for a disk that seeks and
        # picks the scan; 1.1 is the usual value for SSDs and a warehouse that sits in memory.
        # A value the administrator set (server, database or role) is kept.
        con.execute(
            "SELECT set_config('random_page_cost', '1.1', false) FROM pg_settings"
            " WHERE name = 'random_page_cost' AND source = 'default'"
        )
        return con

    def _take(self) -> psycopg.Connection:
        """An idle connection, a new one while under the bound, else wait for one."""
        deadline = time.monotonic() + self.wait
        held = getattr(self._mine, "held", 0)
        with self._state:
            while not self._idle and len(self._all) >= self.pool and not held:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WarehouseBusyError(
                        Message("wh_err_in_use", path=self.path, seconds=f"{self.wait:.0f}")
                    )
                pauses.nap(self._state, left)  # not a timed wait: kpi_core/pauses.py
            if self._idle:
                return self._idle.pop()
            self._all.append(None)  # a place taken while connecting, outside the lock
        try:
            con = self._connect()
        except BaseException:
            with self._state:
                self._all.remove(None)
                self._state.notify()
            raise
        with self._state:
            self._all[self._all.index(None)] = con
        return con

    def _give_back(self, con: psycopg.Connection, *, broken: bool) -> None:
        idle = psycopg.pq.TransactionStatus.IDLE
        if broken or con.closed or con.info.transaction_status != idle:
            with contextlib.suppress(Exception):
                con.close()
            with self._state:
                if con in self._all:
                    self._all.remove(con)
                self._state.notify()
            return
        with self._state:
            if con in self._all:  # not closed meanwhile by close()
                self._idle.append(con)
            self._state.notify()

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        con = self._take()
        self._mine.held = getattr(self._mine, "held", 0) + 1
        broken = False
        try:
            yield con
        except (psycopg.OperationalError, psycopg.InterfaceError):
            broken = True
            raise
        finally:
            self._mine.held -= 1
            self._give_back(con, broken=broken)

    @contextlib.contextmanager
    def cursor(self) -> Iterator[PgCursor]:
        """A cursor of its own, on a connection no other thread uses meanwhile."""
        with self._connection() as con:
            cur = PgCursor(con)
            try:
                yield cur
            finally:
                cur.close()

    @contextlib.contextmanager
    def hold(self) -> Iterator[PgCursor]:
        """The file's hold keeps it open over a command; a pool needs nothing of the kind."""
        with self.cursor() as cur:
            yield cur

    @contextlib.contextmanager
    def transaction(self, *, data: bool = True) -> Iterator[PgCursor]:
        """A write, all or nothing; with `data`, it changes the data version (see Warehouse).
        Another server's commit of the same key first (a target version) is refused by the
        key: `DuplicateKeyError`, which the saving code reports as a conflict."""
        with self._connection() as con:
            cur = PgCursor(con)
            try:
                cur._cur.execute("BEGIN")
                try:
                    yield cur
                    if data:
                        cur._cur.execute(
                            "UPDATE data_version SET token = %s", [secrets.randbits(63)]
                        )
                except BaseException:
                    with contextlib.suppress(psycopg.Error):
                        cur._cur.execute("ROLLBACK")
                    raise
                cur._cur.execute("COMMIT")
            except pg_errors.UniqueViolation as exc:
                raise DuplicateKeyError(str(exc.diag.table_name or "")) from exc
            finally:
                cur.close()

    def close(self) -> None:
        with self._state:
            for con in self._all:
                if con is not None:
                    with contextlib.suppress(Exception):
                        con.close()
            self._all.clear()
            self._idle.clear()

    def replace_file(self, new: Any, keep_as: Any) -> None:
        raise KpiError(Message("pg_err_backup", url=self.path))

    # -- reading -----------------------------------------------------------------------------

    def data_version(self) -> int:
        """Read at every ask: another server may have committed since."""
        return self.one("SELECT token FROM data_version")[0]

    def rows(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        with self.cursor() as cur:
            return cur.execute(sql, params).fetchall()

    def one(self, sql: str, params: Sequence[Any] | None = None) -> tuple | None:
        with self.cursor() as cur:
            return cur.execute(sql, params).fetchone()

    def df(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        with self.cursor() as cur:
            return cur.execute(sql, params).df()

    def arrays(
        self, sql: str, params: Sequence[Any] | None = None, tables: dict[str, Any] | None = None
    ) -> dict[str, np.ndarray]:
        """As the file's. `tables` (the pairs of a roll-up) are bound as arrays, unnested in a
        WITH clause: one round trip, where a temp table (CREATE, COPY, ANALYZE, DROP) cost
        ~100 ms for 5,000 pairs on the bench warehouse."""
        with self.cursor() as cur:
            cur._cur.adapters.register_loader("date", _DateAsText)  # this cursor's only
            if not tables:
                return cur.execute(sql, params).fetchnumpy()
            text, values = cur.with_tables(sql, params, tables)
            # The thousands of rows of a roll-up's pairs come through COPY after the text's
            # first run (pg_columns). Reads without `tables` (a unit's few rows) keep the plain
            # fetch: COPY's set-up costs more than it saves there (a trend: 0.6 → 1.2 ms).
            if (shape := pg_columns.shape_of(text)) is not None:
                return pg_columns.read(cur._cur, text, values, shape)
            cur._cur.execute(text, values)
            if not pg_columns.known(text):
                pg_columns.remember(text, *cur._names_types())
            return cur.fetchnumpy()

    # -- the schema --------------------------------------------------------------------------

    def schema_version(self) -> int:
        with self.cursor() as cur:
            if not cur.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()[0]:
                return 0
            return cur.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]

    def migrate(self) -> int:
        """Apply the PostgreSQL text of each migration not recorded yet (kpi_core/pg_migrations.py,
        the numbers of kpi_core/migrations.py). Two servers starting at once: the advisory lock
        lets one of them migrate, the other then finds everything applied."""
        missing = sorted({m[0] for m in MIGRATIONS} - set(PG_MIGRATIONS))
        if missing:
            raise RuntimeError(f"migrations {missing} have no PostgreSQL text in pg_migrations.py")
        with self._connection() as con:
            con.execute("SELECT pg_advisory_lock(2024)")
            try:
                con.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version "
                    "(version INTEGER PRIMARY KEY, description VARCHAR, applied_at TIMESTAMP)"
                )
                applied = {r[0] for r in con.execute("SELECT version FROM schema_version")}
                for version, description, _ in sorted(MIGRATIONS):
                    if version in applied:
                        continue
                    with con.transaction():
                        con.execute(PG_MIGRATIONS[version])
                        con.execute(
                            "INSERT INTO schema_version VALUES (%s, %s, %s)",
                            [version, description, dt.datetime.now()],
                        )
                self._load_schema(con)
            finally:
                con.execute("SELECT pg_advisory_unlock(2024)")
        return self.schema_version()

    @staticmethod
    def _load_schema(con: psycopg.Connection) -> None:
        keys: dict[str, list[str]] = {}
        for table, column in con.execute(
            """SELECT tc.table_name, kcu.column_name
               FROM information_schema.table_constraints tc
               JOIN information_schema.key_column_usage kcu
                 ON tc.constraint_name = kcu.constraint_name
                AND tc.table_schema = kcu.table_schema
               WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = current_schema()
               ORDER BY tc.table_name, kcu.ordinal_position"""
        ):
            keys.setdefault(table, []).append(column)
        columns: dict[str, list[str]] = {}
        types: dict[str, str] = {}
        for table, column, kind, udt in con.execute(
            """SELECT table_name, column_name, data_type, udt_name FROM information_schema.columns
               WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"""
        ):
            columns.setdefault(table, []).append(column)
            types.setdefault(column, f"{udt[1:]}[]" if kind == "ARRAY" else kind)
        _SCHEMA.update({t: tuple(c) for t, c in keys.items()})
        _SCHEMA.update({f"columns:{t}": tuple(c) for t, c in columns.items()})
        _SCHEMA.update({f"type:{c}": (t,) for c, t in types.items()})

    def is_empty(self) -> bool:
        return self.one("SELECT count(*) FROM kpi")[0] == 0
