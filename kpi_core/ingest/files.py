"""Uploaded files to grids of cells: .xlsx/.xlsm, legacy .xls, .csv and .parquet.

The file's bytes decide what it is, not its name: a renamed .xls, an encrypted workbook (an OLE
container holding an `EncryptedPackage`) or a zip that is not a workbook are each named for what
they are. Size limits are checked before anything is decompressed — a zip declares the size of
each member, so a "zip bomb" is refused without inflating it.

Workbooks (.xlsx/.xlsm) are read in `xlsx`; what every reader gives (`Table`, `Limits`,
`FileError`) is in `sheets` and handed on from here.
"""

from __future__ import annotations

import csv
import io
import pickle
import re
import subprocess
import sys
from datetime import datetime
from pathlib import PurePath

import pandas as pd

from kpi_core.ingest.sheets import (
    FileError,
    Limits,
    Table,
    _cell,
    _grid,
    _size,
    _table,
    _too_many_rows,
)
from kpi_core.ingest.sheets import column_letter as column_letter  # handed on: files.X everywhere
from kpi_core.ingest.xlsx import _has_encrypted_package, _read_xlsx
from kpi_core.messages import Message
from kpi_core.texts import N_

EXTENSIONS = (".xlsx", ".xlsm", ".xls", ".csv", ".parquet")


def read_file(name: str, data: bytes, limits: Limits | None = None) -> list[Table]:
    limits = limits or Limits.configured()
    ext = PurePath(name).suffix.lower()
    if ext not in EXTENSIONS:
        raise FileError(
            name, Message("fi_extension", ext=ext) if ext else Message("fi_no_extension")
        )
    if len(data) == 0:
        raise FileError(name, Message("fi_empty"))
    if len(data) > limits.max_bytes:
        size, limit = _size(len(data)), _size(limits.max_bytes)
        # A CSV is already the smaller form: it is not told to become one.
        key = N_("fi_too_big_csv") if ext == ".csv" else N_("fi_too_big")
        raise FileError(name, Message(key, size=size, limit=limit))
    kind = _sniff(data)
    if kind == "encrypted":
        raise FileError(name, Message("fi_password"))
    if ext in (".xlsx", ".xlsm", ".xls"):
        if kind not in ("zip", "ole"):
            key = N_("fi_not_workbook_text") if kind == "text" else N_("fi_not_workbook")
            raise FileError(name, Message(key))
        tables = _read_xlsx(name, data, limits) if kind == "zip" else _read_xls(name, data, limits)
        if not tables:
            raise FileError(name, Message("fi_no_sheets"))
        return tables
    if ext == ".parquet":
        if kind != "parquet":
            raise FileError(name, Message("fi_not_parquet"))
        return [_read_parquet(name, data, limits)]
    if kind != "text":
        raise FileError(name, Message("fi_binary"))
    return [_read_csv(name, data, limits)]


def _sniff(data: bytes) -> str:
    if data[:4] == b"PK\x03\x04":
        return "zip"
    if data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        # Office encryption wraps the real workbook in an OLE file with this stream.
        return "encrypted" if _has_encrypted_package(data) else "ole"
    if data[:4] == b"PAR1":
        return "parquet"
    # Only what reads as text is called text: a PDF or an empty zip must not be told to
    # "rename it to .csv".
    head = data[:4096]
    if head[:2] in _UTF16_BOMS:
        return "text"  # Excel's "Unicode Text": UTF-16, full of NUL bytes
    if b"\0" in head:
        return "binary"
    for encoding in _ENCODINGS:
        try:
            head.decode(encoding)
            return "text"
        except UnicodeDecodeError as exc:
            if exc.start >= len(head) - 4:  # a character cut at the end of the sample
                return "text"
    return "binary"


# The child that reads a legacy workbook: sheets as (name, height, rows, merged), or a problem.
_XLS_CHILD = """
import io, pickle, sys
try:
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[1]), int(sys.argv[1])))
except (ImportError, ValueError, OSError):
    pass  # no memory cap on this platform; the time limit still holds
from python_calamine import CalamineWorkbook, PasswordError
try:
    book = CalamineWorkbook.from_filelike(io.BytesIO(sys.stdin.buffer.read()))
    sheets = []
    for name in book.sheet_names:
        sheet = book.get_sheet_by_name(name)
        height = max(sheet.total_height, sheet.height)
        if height > int(sys.argv[2]):
            sheets.append((name, height, None, None))
            continue
        merged = [tuple(r0c0) + tuple(r1c1) for r0c0, r1c1 in (sheet.merged_cell_ranges or [])]
        sheets.append((name, height, sheet.to_python(skip_empty_area=False), merged))
    result = ("ok", sheets)
except PasswordError:
    result = ("password", None)
except BaseException as exc:
    result = ("error", str(exc))
sys.stdout.buffer.write(pickle.dumps(result))
"""


def _read_xls(name: str, data: bytes, limits: Limits) -> list[Table]:
    """A legacy .xls (an OLE file), read by calamine in a child process.

    calamine's .xls reader trusts the file's sector chains, record lengths and cell positions:
    a damaged file of a kilobyte can make it loop or allocate until the process is killed —
    with the app in it. In a child with a memory cap and a time limit such a file only ends
    the child, and is reported as damaged.
    """
    damaged = Message("fi_xls_damaged")
    try:
        run = subprocess.run(
            [sys.executable, "-c", _XLS_CHILD, str(limits.xls_memory), str(limits.max_rows)],
            input=data,
            capture_output=True,
            timeout=limits.xls_seconds,
        )
    except subprocess.TimeoutExpired:
        raise FileError(
            name, Message("fi_xls_slow", seconds=limits.xls_seconds, said=damaged)
        ) from None
    try:
        status, got = pickle.loads(run.stdout)
    except Exception:
        raise FileError(name, damaged) from None
    if status == "password":
        raise FileError(name, Message("fi_password_short"))
    if status != "ok":
        raise FileError(name, Message("fi_unreadable", error=got))
    tables = []
    for sheet_name, height, rows, merged in got:
        if rows is None:
            _too_many_rows(name, sheet_name, height, limits)
        tables.append(_table(name, sheet_name, _grid(rows), merged))
    return tables


_ENCODINGS = ("utf-8-sig", "gb18030")


_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def _read_csv(name: str, data: bytes, limits: Limits) -> Table:
    for encoding in ("utf-16",) if data[:2] in _UTF16_BOMS else _ENCODINGS:
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # gb18030 decodes almost anything; this is for truly binary input
        raise FileError(name, Message("fi_encoding"))
    if "\x00" in text[:4096]:
        raise FileError(name, Message("fi_binary"))
    sample = text[:20000]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = ","
    # Universal newlines: "CSV (Macintosh)" ends its lines with a lone CR.
    reader = csv.reader(io.StringIO(text, newline=None), delimiter=delimiter)
    rows: list[list[object]] = []
    start = 1  # the line the record being read starts on
    try:
        for r in reader:
            rows.append([_csv_cell(c) for c in r])
            start = reader.line_num + 1
    except csv.Error as exc:  # a quote never closed swallows the lines after it
        raise FileError(name, Message("fi_open_quote", line=start, error=str(exc))) from None
    if len(rows) > limits.max_rows:
        raise FileError(name, Message("fi_rows", n=len(rows), limit=limits.max_rows))
    if delimiter != "," and _uses_decimal_comma(rows):
        rows = [[_point_decimal(c) for c in r] for r in rows]
    return Table(name, "", rows)


def _csv_cell(c: str) -> object:
    s = c.strip()
    return s or None


# Excel where the decimal mark is a comma (de, fr, ru, pt …) saves CSV with ";" between fields
# and 1234.5 as "1.234,5". Read as written, "1,5" would load as 15. Such a file is recognised
# by numbers that can only be decimal commas ("1,5", "1.234,5") and none that can only be
# thousands commas ("1,234.5", "1,234,567"); its numbers are then given a decimal point, and
# its dots between groups of three digits ("1.234") are read as the thousands marks they are.
_COMMA_NUMBER = re.compile(
    r"^(\(?[+-]?[¥$€£]?\s?)(\d{1,3}(?:[.\s\u00a0]\d{3})+|\d+)(?:,(\d+))?(\s?(?:%|万|亿)?\)?)$"
)


_ONLY_DECIMAL_COMMA = re.compile(r"^\D*(?:\d{1,3}(?:\.\d{3})+,\d+|\d+,(?:\d{1,2}|\d{4,}))\D*$")


_ONLY_THOUSANDS_COMMA = re.compile(r"\d,\d{3}(?:\.\d|,\d{3})")


def _uses_decimal_comma(rows: list[list[object]]) -> bool:
    decimal = False
    for r in rows:
        for c in r:
            if isinstance(c, str) and "," in c:
                if _ONLY_THOUSANDS_COMMA.search(c):
                    return False
                decimal = decimal or bool(_ONLY_DECIMAL_COMMA.match(c))
    return decimal


def _point_decimal(c: object) -> object:
    if not isinstance(c, str) or not ("," in c or "." in c) or not (m := _COMMA_NUMBER.match(c)):
        return c
    whole = re.sub(r"[.\s\u00a0]", "", m[2])
    return f"{m[1]}{whole}{'.' + m[3] if m[3] else ''}{m[4]}"


def _read_parquet(name: str, data: bytes, limits: Limits) -> Table:
    try:
        df = pd.read_parquet(io.BytesIO(data))
    except Exception as exc:
        raise FileError(name, Message("fi_parquet_unreadable", error=str(exc))) from None
    if len(df) > limits.max_rows:
        raise FileError(name, Message("fi_rows", n=len(df), limit=limits.max_rows))
    header = [str(c) for c in df.columns]
    body = df.astype(object).where(df.notna(), None).to_numpy().tolist()
    return Table(
        name,
        "",
        [header, *[[_cell(c) if isinstance(c, str | datetime) else c for c in r] for r in body]],
    )
