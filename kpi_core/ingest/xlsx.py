"""Reading .xlsx/.xlsm workbooks with calamine, and what calamine silently drops: formula cells
saved without a result (files written by scripts, never opened in Excel) are found by scanning
the sheet XML for `<f>` without a value (a text formula whose saved result is empty,
`IF(x="","",…)`, is a blank, not one of them); merged ranges come from calamine itself. Size
limits are checked before anything is decompressed: a zip declares the size of each member.

A long sheet is parsed in pieces side by side, one per core (`_pieces`): calamine lets go of
Python's lock while it parses, and the scan above runs meanwhile.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise

from python_calamine import CalamineWorkbook, PasswordError

from kpi_core.ingest.sheets import (
    FileError,
    Limits,
    Table,
    _column_index,
    _grid,
    _size,
    _table,
    _too_many_rows,
    column_letter,
)
from kpi_core.messages import Message

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
        raise FileError(name, Message("fi_not_zip")) from None
    declared = sum(m.file_size for m in members)
    bomb = any(
        m.file_size > 10 * 2**20 and m.file_size > limits.max_ratio * max(m.compress_size, 1)
        for m in members
    )
    if declared > limits.max_unzipped or bomb:
        raise FileError(name, Message("fi_unpacks", size=_size(declared), packed=_size(len(data))))
    names = {m.filename for m in members}
    if "xl/workbook.xml" not in names:
        raise FileError(name, Message("fi_zip_not_workbook"))
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
                far = Message(
                    "fi_far_cell", sheet=sheet, row=rows, column=column_letter(cols - 1),
                    cells=rows * cols, limit=limits.max_cells,
                )  # fmt: skip
                raise FileError(name, far)
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
            raise FileError(name, Message("fi_shared_strings", n=int(count[1])))


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
                name, Message("fi_sheet_unreadable", sheet=sheet_name, error=str(exc))
            ) from None
        tables.append(_table(name, sheet_name, grid, merged, formulas, errors))
    return tables


def _open_book(name: str, data: bytes) -> CalamineWorkbook:
    try:
        return CalamineWorkbook.from_filelike(io.BytesIO(data))
    except PasswordError:
        raise FileError(name, Message("fi_password_short")) from None
    except Exception as exc:  # calamine raises its own types for each kind of damage
        raise FileError(name, Message("fi_unreadable", error=str(exc))) from None
    except BaseException as exc:
        # A panic inside calamine (an index out of range on a damaged file) arrives as pyo3's
        # PanicException, which is not an Exception: it would end the page with a traceback.
        if type(exc).__name__ != "PanicException":
            raise
        raise FileError(name, Message("fi_damaged")) from None


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
