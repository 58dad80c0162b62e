"""What reading a file gives: its tables (one per sheet, a grid of cells with their merged ranges
and unreadable cells), the limits they are read under, and the refusal of a file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, time
from pathlib import PurePath

from kpi_core import settings
from kpi_core.errors import KpiError
from kpi_core.messages import Message


class FileError(KpiError):
    """A file that cannot be read at all; the message names the file and what to do.

    The file's name goes in front, as the file system spells it: "FILE: message"."""

    def __init__(self, file: str, message: Message):
        self.file = file
        super().__init__(Message("fi_in_file", file=file, said=message))


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 20 * 2**20  # one upload
    max_unzipped: int = 400 * 2**20  # declared size of a workbook's members together
    max_ratio: int = 200  # declared ÷ compressed size of a large member
    max_rows: int = 2_000_000  # rows of one sheet
    # Cells of one sheet's grid (rows × columns up to its last value): calamine allocates the
    # whole rectangle, so one value typed in XFD1048576 would ask for hundreds of gigabytes.
    max_cells: int = 30_000_000
    # The legacy .xls reader runs in a child process with this much memory and time.
    xls_memory: int = 2 * 2**30
    xls_seconds: float = 120.0

    @classmethod
    def configured(cls) -> Limits:
        """`KPI_MAX_UPLOAD_MB` overrides the upload limit (the page's limit is in config.toml)."""
        mb = settings.env("KPI_MAX_UPLOAD_MB")
        return cls(max_bytes=int(float(mb) * 2**20)) if mb else cls()


@dataclass
class Table:
    """One sheet (or a whole CSV / Parquet file) as a grid of cells."""

    file: str
    sheet: str
    rows: list[list[object]]  # rows[i][j] is Excel row i + 1, column j + 1
    merged: list[tuple[int, int, int, int]] = field(default_factory=list)  # r0, c0, r1, c1
    formulas_without_values: list[str] = field(default_factory=list)  # cell refs, e.g. "B5"

    @property
    def label(self) -> str:
        return self.sheet or PurePath(self.file).name


def column_letter(j: int) -> str:
    """0 → A, 25 → Z, 26 → AA."""
    out = ""
    j += 1
    while j:
        j, r = divmod(j - 1, 26)
        out = chr(65 + r) + out
    return out


def _size(n: int) -> str:
    """Bytes for people: 0.5 KB, 3.2 MB — a small configured limit must not read "0 MB"."""
    if n >= 2**20:
        return f"{n / 2**20:,.1f} MB"
    return f"{n / 2**10:,.1f} KB"


def _column_index(letters: str) -> int:
    """A → 0, Z → 25, AA → 26."""
    c = 0
    for ch in letters:
        c = c * 26 + ord(ch) - 64
    return c - 1


def _too_many_rows(name: str, sheet: str, n: int, limits: Limits) -> None:
    raise FileError(name, Message("fi_sheet_rows", sheet=sheet, n=n, limit=limits.max_rows))


def _grid(rows: list[list]) -> list[list]:
    """calamine's cells as plain values, row by row (`_cell`, inlined for the common types:
    this touches every cell of every sheet)."""
    return [
        [
            (c.strip() or None) if type(c) is str else c if type(c) is not datetime else _cell(c)
            for c in r
        ]
        for r in rows
    ]


def _table(name, sheet_name, grid, merged, formulas=None, errors=None) -> Table:
    for ref, text in (errors or {}).get(sheet_name, []):
        _put(grid, ref, text)
    return Table(name, sheet_name, grid, merged, (formulas or {}).get(sheet_name, []))


def _put(grid: list[list[object]], ref: str, value: object) -> None:
    """Write `value` at cell `ref` ("C5") where calamine left the cell empty."""
    letters = re.match(r"[A-Z]+", ref)[0]
    r = int(ref[len(letters) :]) - 1
    c = _column_index(letters)
    while len(grid) <= r:
        grid.append([])
    row = grid[r]
    if len(row) <= c:
        row.extend([None] * (c + 1 - len(row)))
    if row[c] is None:
        row[c] = value


def _cell(c: object) -> object:
    """calamine's cell as a plain value: '' → None, whole datetimes → date."""
    if isinstance(c, str):
        s = c.strip()
        return s or None
    if isinstance(c, datetime) and c.time() == time(0):
        return c.date()
    return c
