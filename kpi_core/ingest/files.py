"""Uploaded files to grids of cells: .xlsx/.xlsm, legacy .xls, .csv and .parquet.

The file's bytes decide what it is, not its name: a renamed .xls, an encrypted workbook (an OLE
container holding an `EncryptedPackage`) or a zip that is not a workbook are each named for what
they are. Size limits are checked before anything is decompressed — a zip declares the size of
each member, so a "zip bomb" is refused without inflating it.

calamine silently drops two things users must hear about: formula cells saved without a result
(files written by scripts, never opened in Excel) and merged ranges. The first is found by
scanning the sheet XML for `<f>` without a value; merged ranges come from calamine itself.
"""

from __future__ import annotations

import csv
import io
import os
import re
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, time
from pathlib import PurePath

import pandas as pd
from python_calamine import CalamineWorkbook, PasswordError

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

    @classmethod
    def configured(cls) -> Limits:
        """`KPI_MAX_UPLOAD_MB` overrides the upload limit (the page's limit is in config.toml)."""
        mb = os.environ.get("KPI_MAX_UPLOAD_MB")
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
            f"the file is {len(data) / 2**20:.1f} MB; the limit is "
            f"{limits.max_bytes / 2**20:.0f} MB. Split it by month or department, or save it "
            "as .csv.",
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
            hint = " It looks like a CSV file: rename it to .csv." if kind == "text" else ""
            raise FileError(name, f"this is not an Excel workbook, or it is damaged.{hint}")
        if kind == "zip":
            return _read_xlsx(name, data, limits)
        return _read_calamine(name, data, limits, None)
    if ext == ".parquet":
        if kind != "parquet":
            raise FileError(name, "this is not a Parquet file, or it is damaged.")
        return [_read_parquet(name, data, limits)]
    if kind in ("zip", "ole", "parquet"):
        raise FileError(name, "this is a binary file, not CSV text. Check the file's extension.")
    return [_read_csv(name, data, limits)]


def _sniff(data: bytes) -> str:
    if data[:4] == b"PK\x03\x04":
        return "zip"
    if data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        # Office encryption wraps the real workbook in an OLE file with this stream.
        return "encrypted" if "EncryptedPackage".encode("utf-16-le") in data[:65536] else "ole"
    if data[:4] == b"PAR1":
        return "parquet"
    return "text"


_CELL_WITH_FORMULA = re.compile(
    rb'<c r="([A-Z]+[0-9]+)"[^>]*>\s*<f[^>]*?(?:/>|>[^<]*</f>)(.{0,12})', re.S
)


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
            f"the workbook unpacks to {declared / 2**20:,.0f} MB, far more than its "
            f"{len(data) / 2**20:.1f} MB — refused before reading. Save only the sheets you "
            "need, as values.",
        )
    names = {m.filename for m in members}
    if "xl/workbook.xml" not in names:
        raise FileError(name, "this zip file is not an Excel workbook.")
    formulas = _formulas_without_values(zf, names)
    return _read_calamine(name, data, limits, formulas)


def _formulas_without_values(zf: zipfile.ZipFile, names: set[str]) -> dict[str, list[str]]:
    """Per sheet name: cells holding a formula whose result was never saved."""
    sheet_paths = _sheet_paths(zf, names)
    out: dict[str, list[str]] = {}
    for sheet, path in sheet_paths.items():
        try:
            xml = zf.read(path)
        except (KeyError, zipfile.BadZipFile, OSError):
            continue
        if b"<f" not in xml:
            continue
        cells = [
            m[1].decode()
            for m in _CELL_WITH_FORMULA.finditer(xml)
            if not re.match(rb"\s*<v>[^<]", m[2])
        ]
        if cells:
            out[sheet] = cells
    return out


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
    name: str, data: bytes, limits: Limits, formulas: dict[str, list[str]] | None
) -> list[Table]:
    try:
        book = CalamineWorkbook.from_filelike(io.BytesIO(data))
    except PasswordError:
        raise FileError(
            name, "the workbook is password-protected. Remove the password and upload it again."
        ) from None
    except Exception as exc:  # calamine raises its own types for each kind of damage
        raise FileError(
            name, f"the workbook cannot be read ({exc}). Save it again from Excel."
        ) from None
    tables = []
    for sheet_name in book.sheet_names:
        try:
            sheet = book.get_sheet_by_name(sheet_name)
            if sheet.total_height > limits.max_rows:
                raise FileError(
                    name,
                    f"sheet '{sheet_name}' has {sheet.total_height:,} rows; the limit is "
                    f"{limits.max_rows:,}. Delete the empty rows below the data or split the sheet.",
                )
            # The grid from A1, so list positions are Excel positions.
            rows = sheet.to_python(skip_empty_area=False)
            merged = [(r0, c0, r1, c1) for (r0, c0), (r1, c1) in (sheet.merged_cell_ranges or [])]
        except FileError:
            raise
        except Exception as exc:
            raise FileError(name, f"sheet '{sheet_name}' cannot be read ({exc}).") from None
        tables.append(
            Table(
                name,
                sheet_name,
                [[_cell(c) for c in r] for r in rows],
                merged,
                (formulas or {}).get(sheet_name, []),
            )
        )
    return tables


def _cell(c: object) -> object:
    """calamine's cell as a plain value: '' → None, whole datetimes → date."""
    if isinstance(c, str):
        s = c.strip()
        return s or None
    if isinstance(c, datetime) and c.time() == time(0):
        return c.date()
    return c


_ENCODINGS = ("utf-8-sig", "gb18030")


def _read_csv(name: str, data: bytes, limits: Limits) -> Table:
    for encoding in _ENCODINGS:
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
    rows = [[_csv_cell(c) for c in r] for r in csv.reader(io.StringIO(text), delimiter=delimiter)]
    if len(rows) > limits.max_rows:
        raise FileError(
            name, f"{len(rows):,} rows; the limit is {limits.max_rows:,}. Split the file."
        )
    return Table(name, "", rows)


def _csv_cell(c: str) -> object:
    s = c.strip()
    return s or None


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
