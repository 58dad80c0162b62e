"""A read's rows as numpy columns through `COPY (query) TO STDOUT` and Arrow's CSV reader, for
the engine's big reads on PostgreSQL (`PgWarehouse.arrays`).

Why: a company roll-up reads ~5,000 rows of `actual_year` and as many of `target` (13 columns).
Fetched as Python tuples and turned into numpy arrays they cost ~10 ms of a ~36 ms roll-up, on
two threads that share the interpreter's lock (bench/README.md); Arrow's C++ reader turns
PostgreSQL's CSV into the same arrays in a fraction of that.

COPY takes no server-side parameters: psycopg binds them client side, each quoted as a literal
by libpq's escaping (as its ClientCursor does), so the values still never become SQL text of
their own. The column types are those of the first run of the same text through the ordinary
cursor (its description), kept per text: a text with a column of any other type stays on that
path.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import psycopg
import pyarrow as pa
from pyarrow import csv

# PostgreSQL type oids → the Arrow type the CSV is read as.
_ARROW: dict[int, pa.DataType] = {
    16: pa.bool_(),
    20: pa.int64(),
    21: pa.int32(),
    23: pa.int32(),
    700: pa.float64(),
    701: pa.float64(),
    1700: pa.float64(),
    25: pa.string(),
    1043: pa.string(),
    1082: pa.date32(),
    1114: pa.timestamp("us"),
}

Shape = tuple[tuple[str, ...], tuple[int, ...]]
_shapes: dict[str, Shape | None] = {}  # by PostgreSQL text; one item set at a time


def shape_of(text: str) -> Shape | None:
    """The recorded column names and type oids of `text`, if it can be read through COPY."""
    return _shapes.get(text)


def remember(text: str, names: Sequence[str], oids: Sequence[int]) -> None:
    """Record `text`'s columns after its first run; a type COPY is not read for marks it out."""
    fits = all(oid in _ARROW for oid in oids) and len(set(names)) == len(names)
    _shapes[text] = (tuple(names), tuple(oids)) if fits else None


def known(text: str) -> bool:
    return text in _shapes


def read(cur: psycopg.Cursor, text: str, values: object, shape: Shape) -> dict[str, np.ndarray]:
    """Run `text` with `values` through COPY and read its CSV into columns of `shape`."""
    names, oids = shape
    buf = io.BytesIO()
    with cur.copy(f"COPY ({text}) TO STDOUT (FORMAT csv)", values) as copy:
        for block in copy:
            buf.write(block)
    if buf.tell() == 0:
        return {n: _empty(oid) for n, oid in zip(names, oids, strict=True)}
    buf.seek(0)
    table = csv.read_csv(
        buf,
        read_options=csv.ReadOptions(column_names=list(names)),
        parse_options=csv.ParseOptions(newlines_in_values=True),
        convert_options=csv.ConvertOptions(
            column_types={n: _ARROW[oid] for n, oid in zip(names, oids, strict=True)},
            # PostgreSQL writes NULL unquoted and empty, an empty text as "".
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            true_values=["t"],  # PostgreSQL's text of a boolean
            false_values=["f"],
        ),
    )
    return {n: _numpy(table.column(n), oid) for n, oid in zip(names, oids, strict=True)}


def _numpy(column: pa.ChunkedArray, oid: int) -> np.ndarray:
    """As `pg_warehouse._column` gives it (DuckDB's fetchnumpy): NULL as NaN / NaT / None."""
    nulls = column.null_count > 0
    if oid in (20, 21, 23):
        if nulls:
            return column.to_numpy(zero_copy_only=False).astype(float)
        return column.to_numpy().astype(np.int64 if oid == 20 else np.int32, copy=False)
    if oid in (700, 701, 1700):
        return column.to_numpy(zero_copy_only=False).astype(float, copy=False)
    if oid in (1082, 1114):
        return column.to_numpy(zero_copy_only=False).astype("datetime64[us]")
    if oid == 16 and not nulls:
        return column.to_numpy(zero_copy_only=False).astype(bool)
    return column.to_numpy(zero_copy_only=False).astype(object)


def _empty(oid: int) -> np.ndarray:
    if oid in (20, 21, 23):
        return np.array([], dtype=np.int64 if oid == 20 else np.int32)
    if oid in (700, 701, 1700):
        return np.array([], dtype=float)
    if oid in (1082, 1114):
        return np.array([], dtype="datetime64[us]")
    if oid == 16:
        return np.array([], dtype=bool)
    return np.array([], dtype=object)
