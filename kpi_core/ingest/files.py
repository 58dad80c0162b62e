"""Uploaded files to grids of cells: .xlsx/.xlsm, legacy .xls, .csv and .parquet.

The file's bytes decide what it is, not its name: a renamed .xls, an encrypted workbook (an OLE
container holding an `EncryptedPackage`) or a zip that is not a workbook are each named for what
they are. Size limits are checked before anything is decompressed — a zip declares the size of
each member, so a "zip bomb" is refused without inflating it.

calamine silently drops two things users must hear about: formula cells saved without a result
(files written by scripts, never opened in Excel) and merged ranges. The first is found by
scanning the sheet XML for `<f>` without a value (a text formula whose saved result is empty,
`IF(x="","",…)`, is a blank, not one of them); merged ranges come from calamine itself.

A long sheet is parsed in pieces side by side, one per core (`_pieces`): calamine lets go of
Python's lock while it parses, and the scan above runs meanwhile.
"""

from __future__ import annotations

import csv
import io
import os
import pickle
import re
import subprocess
import sys
import zipfile
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, time
from functools import lru_cache
from itertools import pairwise
from pathlib import PurePath

import pandas as pd
from python_calamine import CalamineWorkbook, PasswordError

from kpi_core import settings
from kpi_core.errors import KpiError

EXTENSIONS = (".xlsx", ".xlsm", ".xls", ".csv", ".parquet")


class FileError(KpiError):
    """A file that cannot be read at all; the message names the file and what to do."""

    def __init__(self, file: str, message: str):
        self.file = file
        super().__init__(f"{file}: {message}")


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


def read_file(name: str, data: bytes, limits: Limits | None = None) -> list[Table]:
    limits = limits or Limits.configured()
    ext = PurePath(name).suffix.lower()
    if ext not in EXTENSIONS:
        raise FileError(
            name,
            f"'{ext or 'no extension'}' files cannot be read — upload .xlsx, .xlsm, .xls, .csv "
            "or .parquet.",
        )
    if len(data) == 0:
        raise FileError(name, "the file is empty (0 bytes). Save it again from Excel and retry.")
    if len(data) > limits.max_bytes:
        raise FileError(
            name,
            f"the file is {_size(len(data))}; the limit is {_size(limits.max_bytes)}. Split it "
            "by month or department"
            + (", or save it as .csv (smaller than a workbook)." if ext != ".csv" else "."),
        )
    kind = _sniff(data)
    if kind == "encrypted":
        raise FileError(
            name,
            "the workbook is password-protected. Open it in Excel, remove the password "
            "(File → Info → Protect Workbook) and upload it again.",
        )
    if ext in (".xlsx", ".xlsm", ".xls"):
        if kind not in ("zip", "ole"):
            hint = (
                " It looks like a CSV file: rename it to .csv."
                if kind == "text"
                else " Open it in Excel and save it as .xlsx."
            )
            raise FileError(name, f"this is not an Excel workbook, or it is damaged.{hint}")
        tables = _read_xlsx(name, data, limits) if kind == "zip" else _read_xls(name, data, limits)
        if not tables:
            raise FileError(
                name, "the workbook has no sheets. Open it in Excel, check that it holds the "
                "data, and save it again."
            )  # fmt: skip
        return tables
    if ext == ".parquet":
        if kind != "parquet":
            raise FileError(
                name, "this is not a Parquet file, or it is damaged. Export it again, or upload "
                "the data as .xlsx or .csv."
            )  # fmt: skip
        return [_read_parquet(name, data, limits)]
    if kind != "text":
        raise FileError(name, "this is a binary file, not CSV text. Check the file's extension.")
    return [_read_csv(name, data, limits)]


def _size(n: int) -> str:
    """Bytes for people: 0.5 KB, 3.2 MB — a small configured limit must not read "0 MB"."""
    if n >= 2**20:
        return f"{n / 2**20:,.1f} MB"
    return f"{n / 2**10:,.1f} KB"


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


_ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le") + b"\0\0"


def _has_encrypted_package(data: bytes) -> bool:
    """Whether the OLE file's directory names an `EncryptedPackage` stream.

    The directory may lie anywhere in the file (writers put it after the streams too), so the
    whole file is searched, but only directory entries count: 128-byte slots at sector
    boundaries from offset 512, the name followed at byte 64 by its length (34, with the NUL).
    A cell in an ordinary .xls that happens to say "EncryptedPackage" is not one.
    """
    at = data.find(_ENCRYPTED_PACKAGE)
    while at != -1:
        if at >= 512 and at % 128 == 0 and data[at + 64 : at + 66] == b"\x22\x00":
            return True
        at = data.find(_ENCRYPTED_PACKAGE, at + 1)
    return False


def _read_xlsx(name: str, data: bytes, limits: Limits) -> list[Table]:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        members = zf.infolist()
    except (zipfile.BadZipFile, OSError):
        raise FileError(
            name, "the file is damaged (not a readable .xlsx). Save it again from Excel."
        ) from None
    declared = sum(m.file_size for m in members)
    bomb = any(
        m.file_size > 10 * 2**20 and m.file_size > limits.max_ratio * max(m.compress_size, 1)
        for m in members
    )
    if declared > limits.max_unzipped or bomb:
        raise FileError(
            name,
            f"the workbook unpacks to {_size(declared)}, far more than its {_size(len(data))} "
            "— refused before reading. Save only the sheets you need, as values.",
        )
    names = {m.filename for m in members}
    if "xl/workbook.xml" not in names:
        raise FileError(
            name, "this zip file is not an Excel workbook. Open the data in Excel and save it "
            "as .xlsx (Excel Workbook)."
        )  # fmt: skip
    _check_shared_strings(name, zf, names)
    formulas: dict[str, list[str]] = {}
    errors: dict[str, list[tuple[str, str]]] = {}
    parsing: dict[str, list[Future]] = {}
    with ThreadPoolExecutor(_cores(), thread_name_prefix="sheet-piece") as pool:
        for sheet, path in _sheet_paths(zf, names).items():
            try:
                xml = zf.read(path)
            except (KeyError, zipfile.BadZipFile, OSError, EOFError, zlib.error):
                continue  # a damaged member: calamine's read that follows names the damage
            if too_big := _oversized(xml, limits.max_cells):
                rows, cols = too_big
                raise FileError(
                    name, f"sheet '{sheet}' has a value as far as row {rows:,}, column "
                    f"{column_letter(cols - 1)}: {rows * cols:,} cells, more than the "
                    f"{limits.max_cells:,} allowed. Delete what lies far below or to the right of "
                    "the data (Ctrl+End in Excel goes to the last cell), save and upload again."
                )  # fmt: skip
            if len(xml) >= SPLIT_BYTES and (pieces := _pieces(zf, path, xml, _cores())):
                parsing[sheet] = [
                    pool.submit(_parse_piece, name, sheet, piece, i == 0, limits)
                    for i, piece in enumerate(pieces)
                ]
                del pieces
            # While the pieces parse (calamine lets go of Python's lock), look for what
            # calamine does not report.
            formulas[sheet], errors[sheet] = _unreadable_cells(xml)
        return _read_calamine(name, data, limits, formulas, errors, parsing)


def _check_shared_strings(name: str, zf: zipfile.ZipFile, names: set[str]) -> None:
    """calamine reserves room for the `uniqueCount` the shared-strings part declares before
    reading it: a forged count of 4,000,000,000 asks for 96 GB and kills the process. Each
    string takes at least five bytes (`<si/>`), so a count beyond a fifth of the part's size
    cannot be true."""
    try:
        rels = zf.read("xl/_rels/workbook.xml.rels").decode("utf-8", "replace")
    except (KeyError, zipfile.BadZipFile, OSError, EOFError, zlib.error):
        rels = ""
    paths = {"xl/sharedStrings.xml"}
    for tag in re.findall(r"<Relationship\b[^>]*>", rels):
        if "sharedStrings" in tag and (target := re.search(r'Target="([^"]+)"', tag)):
            t = target[1]
            paths.add(t.lstrip("/") if t.startswith("/") else f"xl/{t}")
    for path in paths & names:
        try:
            with zf.open(path) as f:
                head = f.read(4096)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error):
            continue  # calamine's own read names the damage
        count = re.search(rb'uniqueCount="([0-9]+)"', head)
        if count and int(count[1]) > zf.getinfo(path).file_size // 5:
            raise FileError(
                name, f"the workbook is damaged: its shared strings claim {int(count[1]):,} "
                "entries, more than the part can hold. Open it in Excel and save it again."
            )  # fmt: skip


@dataclass(frozen=True)
class _Tags:
    """The patterns the scans use, for a sheet whose tags carry `prefix` (`x:` in `<x:row>`, as
    some .NET exporters write them; calamine reads those sheets like any other)."""

    prefix: bytes
    row: bytes  # b"<row ", b"<x:row "
    formula: bytes  # b"<f"
    # A cell holding a formula: its reference, its other attributes, and the start of what
    # follows the formula (its saved value, if any).
    cell_with_formula: re.Pattern
    value_follows: re.Pattern
    empty_value: re.Pattern  # a saved value that is empty: <v/>, <v></v>
    error_cell: re.Pattern  # a cell showing an Excel error, and its insides
    value: re.Pattern
    row_with_cells: re.Pattern  # a row with cells
    numbered_row: re.Pattern  # a row tag that carries its number

    def far_cell(self, digits: int) -> re.Pattern:
        """A cell numbered with `digits` digits or more, or in a column of two letters or more:
        one pass for both. Groups: the number of a cell in column A-Z; the letters and the
        number of one in AA or beyond, and (not None) that this one holds a value or formula."""
        return _far_cell(self.prefix, digits)


@lru_cache(maxsize=8)
def _tags_for(prefix: bytes) -> _Tags:
    p = re.escape(prefix)
    return _Tags(
        prefix,
        b"<" + prefix + b"row ",
        b"<" + prefix + b"f",
        re.compile(rb'<%sc r="([A-Z]+[0-9]+)"([^>]*)>\s*<%sf[^>]*?(?:/>|>[^<]*</%sf>)(.{0,24})'
                   % (p, p, p), re.S),
        re.compile(rb"\s*<%sv>[^<]" % p),
        re.compile(rb"\s*<%sv\s*(?:/>|>\s*</%sv>)" % (p, p)),
        re.compile(rb'<%sc ([^>]*\bt="e"[^>]*)>(.*?)</%sc>' % (p, p), re.S),
        re.compile(rb"<%sv>([^<]*)</%sv>" % (p, p)),
        re.compile(rb'<%srow\b[^>]*?\br="([0-9]+)"[^>]*?(?<!/)>' % p),
        re.compile(rb'<%srow\b[^>]*?\br="[0-9]+"' % p),
    )  # fmt: skip


@lru_cache(maxsize=32)
def _far_cell(prefix: bytes, digits: int) -> re.Pattern:
    p = re.escape(prefix)
    return re.compile(
        rb'<%sc r="(?:[A-Z]([0-9]{%d,})"|([A-Z]{2,})([0-9]+)"(?:[^>]*>\s*<%s(?:v|is|f)\b())?)'
        % (p, digits, p)
    )


def _tags(xml: bytes) -> _Tags:
    """The patterns for this sheet: its `sheetData` tag shows the prefix its tags carry."""
    at = xml.find(b"sheetData")
    lt = xml.rfind(b"<", 0, at) if at > 0 else -1
    prefix = xml[lt + 1 : at] if lt >= 0 else b""
    return _tags_for(prefix if re.fullmatch(rb"(?:[A-Za-z_][\w.-]*:)?", prefix) else b"")


def _unreadable_cells(xml: bytes) -> tuple[list[str], list[tuple[str, str]]]:
    """A sheet's cells holding a formula whose result was never saved, and its cells showing
    an Excel error (#DIV/0!, #N/A …) with their text: calamine gives both as empty, and a blank
    value is skipped without a word, so a broken formula would silently load nothing."""
    tags = _tags(xml)
    errors = []
    # Excel writes an error's text with its leading # (#DIV/0!, #N/A …): one byte is looked
    # for at C speed, where `t="e"` among a long sheet's `t="s"` is not.
    if b"#" in xml:
        for attrs, body in tags.error_cell.findall(xml):
            ref = re.search(rb'\br="([A-Z]+[0-9]+)"', attrs)
            value = tags.value.search(body)
            if ref and value:
                errors.append((ref[1].decode(), _unescape(value[1].decode("utf-8", "replace"))))
    # Between the sheetData tags, an f is rare but in a formula's tag: one byte, looked for at
    # C speed, spares most sheets the search for the tag.
    first = xml.find(b"sheetData")
    no_f = first >= 0 and xml.find(b"f", first, xml.rfind(b"sheetData")) < 0
    if no_f or tags.formula not in xml:
        return [], errors
    # A formula whose result is the empty text (IF(x="","",…)) is saved by Excel as a text cell
    # (t="str") with an empty value: a blank, like the cell it shows. Without t="str" an empty
    # value is what openpyxl and other scripts write for a result never computed.
    formulas = [
        m[1].decode()
        for m in tags.cell_with_formula.finditer(xml)
        if not tags.value_follows.match(m[3])
        and not (_TEXT_TYPE.search(m[2]) and tags.empty_value.match(m[3]))
    ]
    return formulas, errors


_TEXT_TYPE = re.compile(rb'\bt="str"')


def _oversized(xml: bytes, max_cells: int) -> tuple[int, int] | None:
    """(rows, columns) of the grid calamine would build for a sheet, if over `max_cells`.

    Rows: the highest numbered row that holds cells (rows only formatted, `<row r="9" s="1"/>`,
    hold none), or a cell numbered beyond it. Columns: the furthest cell with a value in
    column AA or beyond (else Z). Cell numbers need not be valid Excel ones: calamine takes
    row 4,294,967,295 at its word.
    """
    tags = _tags(xml)
    rows = _last_row_with_cells(xml, tags)
    digits = len(str(rows)) + 1  # a cell numbered with more digits may lie beyond that row
    rows, wide = max(rows, 0), []
    for m in tags.far_cell(digits).finditer(xml):
        letters, number, has_value = m.group(2, 3, 4)
        if len(number or m[1]) >= digits:
            rows = max(rows, int(number or m[1]))
        if has_value is not None:
            wide.append(letters)
    cols = max((_column_index(c.decode()) + 1 for c in set(wide)), default=26)
    return (rows, cols) if rows * cols > max_cells else None


def _last_row_with_cells(xml: bytes, tags: _Tags) -> int:
    """The number of the last `<row>` element that is not empty. Rows are written in order, so
    this is read from the end instead of matching every row of a long sheet; a cell numbered
    out of order is caught by the caller's check for longer numbers."""
    end = len(xml)
    while (start := xml.rfind(tags.row, 0, end)) >= 0:
        m = tags.row_with_cells.match(xml, start)
        if m:
            return int(m[1])
        end = start
    return 0


def _column_index(letters: str) -> int:
    """A → 0, Z → 25, AA → 26."""
    c = 0
    for ch in letters:
        c = c * 26 + ord(ch) - 64
    return c - 1


def _sheet_paths(zf: zipfile.ZipFile, names: set[str]) -> dict[str, str]:
    """Sheet name → its XML part, from workbook.xml and its relationships."""
    try:
        book = zf.read("xl/workbook.xml").decode("utf-8", "replace")
        rels = zf.read("xl/_rels/workbook.xml.rels").decode("utf-8", "replace")
    except KeyError:
        return {}
    targets = dict(re.findall(r'<Relationship[^>]*?Id="([^"]+)"[^>]*?Target="([^"]+)"', rels))
    targets |= {
        rid: target
        for target, rid in re.findall(
            r'<Relationship[^>]*?Target="([^"]+)"[^>]*?Id="([^"]+)"', rels
        )
    }
    out = {}
    for sheet_name, rid in re.findall(r'<sheet [^>]*?name="([^"]+)"[^>]*?r:id="([^"]+)"', book):
        target = targets.get(rid, "")
        path = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
        if path in names:
            out[_unescape(sheet_name)] = path
    return out


def _unescape(text: str) -> str:
    return (
        text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&apos;", "'")
    ).replace("&amp;", "&")


def _read_calamine(
    name: str,
    data: bytes,
    limits: Limits,
    formulas: dict[str, list[str]] | None,
    errors: dict[str, list[tuple[str, str]]] | None = None,
    parsing: dict[str, list[Future]] | None = None,
) -> list[Table]:
    """Every sheet's grid; a sheet in `parsing` from its pieces (see `_pieces`)."""
    book = _open_book(name, data)
    tables = []
    for sheet_name in book.sheet_names:
        try:
            pieces = (parsing or {}).get(sheet_name)
            got = _join_pieces(name, sheet_name, pieces, limits) if pieces else None
            grid, merged = got or _read_sheet(name, book, sheet_name, limits)
        except FileError:
            raise
        except BaseException as exc:
            if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
                raise  # KeyboardInterrupt and the like; a calamine panic is a damaged sheet
            raise FileError(
                name, f"sheet '{sheet_name}' cannot be read ({exc}). The file may be damaged: "
                "open it in Excel and save it again."
            ) from None  # fmt: skip
        tables.append(_table(name, sheet_name, grid, merged, formulas, errors))
    return tables


def _open_book(name: str, data: bytes) -> CalamineWorkbook:
    try:
        return CalamineWorkbook.from_filelike(io.BytesIO(data))
    except PasswordError:
        raise FileError(
            name, "the workbook is password-protected. Remove the password and upload it again."
        ) from None
    except Exception as exc:  # calamine raises its own types for each kind of damage
        raise FileError(
            name, f"the workbook cannot be read ({exc}). Save it again from Excel."
        ) from None
    except BaseException as exc:
        # A panic inside calamine (an index out of range on a damaged file) arrives as pyo3's
        # PanicException, which is not an Exception: it would end the page with a traceback.
        if type(exc).__name__ != "PanicException":
            raise
        raise FileError(name, "the workbook is damaged. Save it again from Excel.") from None


Merged = list[tuple[int, int, int, int]]


def _read_sheet(
    name: str, book: CalamineWorkbook, sheet_name: str, limits: Limits
) -> tuple[list[list], Merged]:
    sheet = book.get_sheet_by_name(sheet_name)
    # total_height is from the file's own dimension record, which may be short.
    if (height := max(sheet.total_height, sheet.height)) > limits.max_rows:
        _too_many_rows(name, sheet_name, height, limits)
    # The grid from A1, so list positions are Excel positions.
    return _grid(sheet.to_python(skip_empty_area=False)), _merged(sheet)


def _merged(sheet) -> Merged:
    return [(r0, c0, r1, c1) for (r0, c0), (r1, c1) in (sheet.merged_cell_ranges or [])]


# A sheet part this large is parsed in pieces side by side, one per core: calamine lets go of
# Python's lock while it parses, which is most of reading a long sheet.
SPLIT_BYTES = 4 * 2**20


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# Parts a piece workbook needs besides its sheet: calamine reads the workbook, its
# relationships, shared strings and styles (which say what is a date); not the other sheets.
_PIECE_SKIPS = ("xl/worksheets/", "xl/chartsheets/", "xl/drawings/", "xl/charts/", "xl/media/",
                "xl/embeddings/", "xl/pivot", "xl/externalLinks/", "xl/vbaProject", "customXml/",
                "docProps/", "xl/printerSettings/", "xl/tables/", "xl/queryTables/")  # fmt: skip


def _pieces(zf: zipfile.ZipFile, path: str, xml: bytes, n: int) -> list[bytes]:
    """The sheet as `n` workbooks of consecutive rows (uncompressed zips), or [] when it cannot
    be cut safely.

    Each piece keeps the sheet's head (dimension, columns) and its rows whole, so cells keep
    their own addresses; only the last keeps what follows the rows (merged ranges). A row
    without its number (`<row>`, no `r=`) is numbered by calamine from the row before it, so a
    piece must start at a row that carries its number: else it would count from the piece's
    start.
    """
    tags = _tags(xml)
    open_tag = b"<" + tags.prefix + b"sheetData>"
    start, stop = xml.find(open_tag), xml.rfind(b"</" + tags.prefix + b"sheetData>")
    if n < 2 or start < 0 or stop < start:
        return []
    start += len(open_tag)
    cuts = [start]
    for i in range(1, n):
        at = xml.find(tags.row, max(cuts[-1] + 1, start + (stop - start) * i // n), stop)
        if at < 0:
            break
        if not tags.numbered_row.match(xml, at):
            return []
        cuts.append(at)
    cuts.append(stop)
    if len(cuts) < 3:
        return []
    shared = [
        (m.filename, zf.read(m))
        for m in zf.infolist()
        if not m.filename.startswith(_PIECE_SKIPS) and not m.is_dir()
    ]
    view = memoryview(xml)  # slices of the sheet without copying it
    head, tail = view[:start], view[stop:]
    close = b"</" + tags.prefix + b"sheetData></" + tags.prefix + b"worksheet>"
    out = []
    for i, (a, b) in enumerate(pairwise(cuts)):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as piece:
            for member, content in shared:
                piece.writestr(member, content)
            with piece.open(path, "w") as part:
                part.write(head)
                part.write(view[a:b])
                part.write(tail if i == len(cuts) - 2 else close)
        out.append(buf.getvalue())
    return out


Piece = tuple[list[list], tuple[int, int] | None, int, Merged]


def _parse_piece(name: str, sheet_name: str, piece: bytes, first: bool, limits: Limits) -> Piece:
    """(grid, first cell, height, merged ranges) of one piece of a sheet: the first piece from
    A1, the others from their own first cell. The grid is left empty when the height is over
    the limit."""
    sheet = _open_book(name, piece).get_sheet_by_name(sheet_name)
    # A piece's own height counts from its first row.
    height = max(sheet.total_height, sheet.height + (sheet.start or (0, 0))[0])
    if height > limits.max_rows:
        return [], None, height, []
    grid = _grid(sheet.to_python(skip_empty_area=not first))  # beside the other pieces' parsing
    return grid, sheet.start, height, _merged(sheet)


def _join_pieces(
    name: str, sheet_name: str, pieces: list[Future], limits: Limits
) -> tuple[list[list], Merged] | None:
    """The grid of a sheet from its pieces as they finish parsing, each padded to its place.
    None when the pieces overlap (rows written out of order): the sheet is then read whole."""
    parsed: list[Piece] = [p.result() for p in pieces]
    if (height := max(p[2] for p in parsed)) > limits.max_rows:
        _too_many_rows(name, sheet_name, height, limits)
    rows = parsed[0][0]  # from A1
    rest = [(got, first) for got, first, _, _ in parsed[1:] if got and first]
    width = max([len(rows[0]) if rows else 0, *(c0 + len(got[0]) for got, (_, c0) in rest)])
    for got, (r0, c0) in rest:
        if r0 < len(rows):
            return None
        rows.extend([None] * width for _ in range(r0 - len(rows)))
        rows.extend([[None] * c0 + r for r in got] if c0 else got)
    # calamine's grid is a rectangle; pieces of different widths are evened out.
    if any(len(r) < width for r in (parsed[0][0][:1] + [got[0] for got, _ in rest])):
        for r in rows:
            r.extend([None] * (width - len(r)))
    return rows, parsed[-1][3]


def _too_many_rows(name: str, sheet: str, n: int, limits: Limits) -> None:
    raise FileError(
        name,
        f"sheet '{sheet}' has {n:,} rows; the limit is {limits.max_rows:,}. Delete the empty rows "
        "below the data or split the sheet.",
    )


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
    damaged = "the workbook is damaged. Open it in Excel and save it again as .xlsx."
    try:
        run = subprocess.run(
            [sys.executable, "-c", _XLS_CHILD, str(limits.xls_memory), str(limits.max_rows)],
            input=data,
            capture_output=True,
            timeout=limits.xls_seconds,
        )
    except subprocess.TimeoutExpired:
        raise FileError(name, f"reading took over {limits.xls_seconds:.0f} s: {damaged}") from None
    try:
        status, got = pickle.loads(run.stdout)
    except Exception:
        raise FileError(name, damaged) from None
    if status == "password":
        raise FileError(
            name, "the workbook is password-protected. Remove the password and upload it again."
        )
    if status != "ok":
        raise FileError(name, f"the workbook cannot be read ({got}). Save it again from Excel.")
    tables = []
    for sheet_name, height, rows, merged in got:
        if rows is None:
            _too_many_rows(name, sheet_name, height, limits)
        tables.append(_table(name, sheet_name, _grid(rows), merged))
    return tables


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
        raise FileError(name, "the text is neither UTF-8 nor GBK/GB18030. Save it as UTF-8 CSV.")
    if "\x00" in text[:4096]:
        raise FileError(name, "this is a binary file, not CSV text. Check the file's extension.")
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
        raise FileError(
            name, f"line {start}: {exc}. A quote (\") opened on that line is probably never "
            "closed: fix the line, or save the file again from Excel as CSV."
        ) from None  # fmt: skip
    if len(rows) > limits.max_rows:
        raise FileError(
            name, f"{len(rows):,} rows; the limit is {limits.max_rows:,}. Split the file."
        )
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
        raise FileError(name, f"the Parquet file cannot be read ({exc}).") from None
    if len(df) > limits.max_rows:
        raise FileError(
            name, f"{len(df):,} rows; the limit is {limits.max_rows:,}. Split the file."
        )
    header = [str(c) for c in df.columns]
    body = df.astype(object).where(df.notna(), None).to_numpy().tolist()
    return Table(
        name,
        "",
        [header, *[[_cell(c) if isinstance(c, str | datetime) else c for c in r] for r in body]],
    )
