"""Bad uploads of monthly actuals, each made here by the test: refused with the place (file,
sheet, row, column) and what to do, and the warehouse file left byte-for-byte as it was.

A few good files in awkward encodings (GBK, BOM, semicolons, Parquet, legacy .xls) load.
"""

from __future__ import annotations

import hashlib
import io
import re
import struct
import zipfile
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from kpi_core import access, month_locks, service
from kpi_core.access import Scope
from kpi_core.catalog import load_catalog
from kpi_core.errors import NotFoundError, ScopeError
from kpi_core.ingest import batches, files, intake
from kpi_core.ingest.layout import Finding
from kpi_core.warehouse import Warehouse
from tests.said import chinese, untranslated

TODAY = date(2026, 11, 21)  # the demo's actuals end 2026-10; November is the open month
HEADER = ["period", "unit", "kpi", "value"]


# --- the warehouse ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sales_analyst(demo_file) -> access.Actor:
    wh = Warehouse(demo_file, linger=0)
    try:
        cat = load_catalog(wh)
        sales = frozenset(cat.descendants(cat.unit("SALES").id))
    finally:
        wh.close()
    return access.Actor("analyst_sales", "analyst", Scope(sales))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


_CJK = re.compile(r"[\u3400-\u9fff]")


def in_chinese(*said: intake.Intake | BaseException) -> None:
    """The Upload page can say all of it in Chinese: each finding's message and hint, and each
    refusal's message. A coded message whose key is missing from either catalog, or a message
    that is not coded (plain English), fails here, in whichever test first meets it
    (tests/said.py)."""
    texts: list = []
    for s in said:
        if isinstance(s, intake.Intake):
            texts += [text for f in s.findings for text in (f.message, f.hint) if text]
        else:
            texts.append(s)
    missing = untranslated(texts)
    assert missing == [], f"no Chinese in the catalogs for: {missing}"


# --- refusing --------------------------------------------------------------------------------


@dataclass
class Refusal:
    error: Exception | None  # prepare refused the file as a whole
    prepared: intake.Intake | None  # or prepared it with errors, which commit refused

    def finding(self, fragment: str, severity: str = "error") -> Finding:
        """The one finding of this severity whose message holds `fragment`."""
        assert self.prepared is not None, f"the file was refused whole: {self.error}"
        hits = [
            f
            for f in self.prepared.findings
            if f.severity == severity and fragment in str(f.message)
        ]
        assert len(hits) == 1, (fragment, self.prepared.findings)
        return hits[0]


def refuse(path: Path, name: str, data: bytes, who: access.Actor = access.SYSTEM, **kw) -> Refusal:
    """Prepare (and, when prepare gets that far, commit) must refuse; the file stays as it was.

    The warehouse is opened for the attempt and closed before hashing, so the hash sees
    everything that was written.
    """
    before = sha256(path)
    wh = Warehouse(path, linger=0)
    try:
        try:
            prepared = intake.prepare(wh, [(name, data)], who, today=TODAY, **kw)
        except (files.FileError, intake.IntakeError) as exc:
            in_chinese(exc)
            result = Refusal(exc, None)
        else:
            assert prepared.errors, f"{name} should have been refused: {prepared.findings}"
            with pytest.raises(intake.IntakeError, match="nothing was written") as refused:
                service.commit_actuals(wh, prepared, who)
            in_chinese(prepared, refused.value)
            result = Refusal(None, prepared)
    finally:
        wh.close()
    assert sha256(path) == before, f"refusing {name} changed the warehouse file"
    return result


def refused_whole(path: Path, name: str, data: bytes, *fragments: str, **kw) -> str:
    """The file cannot be read at all: one message, starting with the file's name."""
    got = refuse(path, name, data, **kw)
    assert isinstance(got.error, files.FileError), got
    # A coded message (kpi_core.ingest.files): the page renders it in its language.
    assert got.error.coded is not None and got.error.coded.key == "fi_in_file", got.error
    assert got.error.coded.values["file"] == name
    message = str(got.error)
    assert message.startswith(f"{name}: "), message
    for fragment in fragments:
        assert fragment in message, message
    return message


def placed(f: Finding, file: str, sheet: str, row: int | None, column: str | None) -> None:
    """The finding names its place and says what to do."""
    assert (f.file, f.sheet, f.row, f.column) == (file, sheet, row, column), f
    assert f.hint, f"no advice given with: {f.message}"


# --- files made here --------------------------------------------------------------------------


def xlsx(sheets: dict[str, list[list[object]]], merge: dict[str, list[str]] | None = None) -> bytes:
    """A real workbook written by openpyxl, as a script would write one."""
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for r in rows:
            ws.append(r)
        for ref in (merge or {}).get(name, []):
            ws.merge_cells(ref)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def good_xlsx() -> bytes:
    return xlsx({"2026-09": [["unit", "kpi", "value"], ["SALES_E", "REV", 1_000_000]]})


def zip_of(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()


def declare_size(data: bytes, member: str, size: int) -> bytes:
    """The zip with `member`'s uncompressed size rewritten in its local and central headers —
    a few hundred bytes that say they unpack to `size`."""
    buf = bytearray(data)
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo(member)
    struct.pack_into("<I", buf, info.header_offset + 22, size)  # local file header
    at = buf.find(b"PK\x01\x02")  # central directory entries
    while at != -1:
        name_len = struct.unpack_from("<H", buf, at + 28)[0]
        if bytes(buf[at + 46 : at + 46 + name_len]) == member.encode():
            struct.pack_into("<I", buf, at + 24, size)
            return bytes(buf)
        at = buf.find(b"PK\x01\x02", at + 4)
    raise AssertionError(f"{member} is not in the zip")


# The parts of a workbook around one sheet written by hand, for sheets no library writes.
SHEET_XML_HEAD = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
)
PARTS = {
    "[Content_Types].xml": b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    b'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    b'<Default Extension="xml" ContentType="application/xml"/>'
    b'<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    b'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    b'<Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
    b"</Types>",
    "_rels/.rels": b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    b'<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>'
    b"</Relationships>",
    "xl/workbook.xml": b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    b'<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    b'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    b'<sheets><sheet name="Formatted" sheetId="1" r:id="rId1"/></sheets></workbook>',
    "xl/_rels/workbook.xml.rels": b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    b'<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>'
    b'<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/>'
    b"</Relationships>",
    "xl/styles.xml": b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    b'<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    b'<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>'
    b'<fills count="3"><fill><patternFill patternType="none"/></fill>'
    b'<fill><patternFill patternType="gray125"/></fill>'
    b'<fill><patternFill patternType="solid"><fgColor rgb="FFFFFF00"/></patternFill></fill></fills>'
    b'<borders count="1"><border/></borders>'
    b'<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    b'<cellXfs count="2"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    b'<xf numFmtId="0" fontId="0" fillId="2" borderId="0" xfId="0" applyFill="1"/></cellXfs>'
    b"</styleSheet>",
}  # fmt: skip


OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def cfb(stream_names: list[str], directory_sector: int = 1) -> bytes:
    """A minimal, well-formed OLE compound file: header, one FAT sector (sector 0), free
    filler sectors, then one directory sector naming a root storage and these empty streams."""
    end, free, fat_sect, nostream = 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFD, 0xFFFFFFFF
    header = bytearray(512)
    header[:8] = OLE_MAGIC
    struct.pack_into("<HHHHH", header, 24, 0x3E, 3, 0xFFFE, 9, 6)  # v3, 512-byte sectors
    struct.pack_into("<IIIIIIII", header, 40, 0, 1, directory_sector, 0, 4096, end, 0, end)
    struct.pack_into("<I", header, 72, 0)  # no DIFAT sectors
    struct.pack_into("<109I", header, 76, 0, *[free] * 108)  # the FAT is sector 0
    fat = [free] * 128
    fat[0], fat[directory_sector] = fat_sect, end
    directory = bytearray(512)
    names = ["Root Entry", *stream_names]
    for i, name in enumerate(names):
        raw = name.encode("utf-16-le") + b"\0\0"
        at = i * 128
        directory[at : at + len(raw)] = raw
        struct.pack_into("<HBB", directory, at + 64, len(raw), 5 if i == 0 else 2, 1)
        right = i + 1 if 0 < i < len(names) - 1 else nostream
        child = 1 if i == 0 and len(names) > 1 else nostream
        struct.pack_into("<III", directory, at + 68, nostream, right, child)
        struct.pack_into("<II", directory, at + 116, end, 0)  # start sector, size
    filler = bytes(512 * (directory_sector - 1))
    return bytes(header) + struct.pack("<128I", *fat) + filler + bytes(directory)


def looping_cfb() -> bytes:
    """An OLE header whose sector tables are all zero: every chain leads back to sector 0.
    calamine followed it until the process was killed for memory (1.5 KB took 24 GB)."""
    header = bytearray(512)
    header[:8] = OLE_MAGIC
    struct.pack_into("<HHHHH", header, 24, 0x3E, 3, 0xFFFE, 9, 6)
    return bytes(header) + bytes(1024)


# --- unreadable files: refused whole ---------------------------------------------------------


def test_intake_refusals_are_coded_messages(demo_file):
    viewer = access.Actor("v", "viewer", Scope.all())
    wh = Warehouse(demo_file, linger=0)
    try:
        with pytest.raises(intake.IntakeError) as none:
            intake.prepare(wh, [], access.SYSTEM, today=TODAY)
        bad = xlsx({"2026-09": [["unit", "kpi", "value"], ["SALES_E", "REV", "lots"]]})
        prepared = intake.prepare(wh, [("bad.xlsx", bad)], access.SYSTEM, today=TODAY)
        with pytest.raises(intake.IntakeError) as errors:
            intake.commit(wh, prepared, access.SYSTEM)
        with pytest.raises(ScopeError) as viewer_loads:
            intake.commit(wh, prepared, viewer)
        with pytest.raises(NotFoundError) as no_batch:
            batches.rollback(wh, 999_999, access.SYSTEM)
        with pytest.raises(ScopeError) as closing:
            month_locks.lock_month(wh, date(2026, 9, 1), viewer)
    finally:
        wh.close()
    said = [none.value, errors.value, viewer_loads.value, no_batch.value, closing.value]
    assert [e.coded.key for e in said] == [
        "in_no_file", "in_has_errors", "in_cannot_load", "in_no_batch", "in_admins_close",
    ]  # fmt: skip
    assert str(viewer_loads.value) == (
        "User 'v' (viewer) cannot load actuals — analysts and admins do."
    )
    assert chinese(viewer_loads.value) == (
        "用户“v”（查看者）不能导入实际数据——这由数据分析员和管理员完成。"
    )
    assert untranslated(said) == []


def test_an_upload_says_its_steps_in_either_language(demo_file):
    steps = []
    wh = Warehouse(demo_file, linger=0)
    try:
        intake.prepare(
            wh, [("good.xlsx", good_xlsx())], access.SYSTEM, today=TODAY,
            progress=lambda fraction, step: steps.append(step),
        )  # fmt: skip
    finally:
        wh.close()
    assert [str(s) for s in steps] == [
        "Reading good.xlsx", "Checking against the KPI library", "Comparing with the warehouse",
        "Ready",
    ]  # fmt: skip
    assert [s.render("zh") for s in steps] == [
        "正在读取 good.xlsx", "正在对照指标库检查", "正在与数据仓库比较", "完成",
    ]  # fmt: skip


@pytest.mark.parametrize("name", ["empty.xlsx", "empty.csv", "empty.parquet", "empty.xls"])
def test_empty_file(demo_file, name):
    refused_whole(demo_file, name, b"", "empty (0 bytes)", "Save it again")


@pytest.mark.parametrize(
    "name, data",
    [
        ("report.pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"),
        ("report.docx", zip_of({"word/document.xml": b"<w:document/>"})),
        ("export.txt", bytes(range(256)) * 4),
        ("no_extension", b"period,unit,kpi,value\n"),
    ],
)
def test_wrong_extension(demo_file, name, data):
    message = refused_whole(demo_file, name, data, "cannot be read")
    assert "upload .xlsx, .xlsm, .xls, .csv or .parquet" in message


def test_csv_text_named_xlsx(demo_file):
    data = b"period,unit,kpi,value\n2026-09,SALES_E,REV,1\n"
    refused_whole(demo_file, "actuals.xlsx", data, "not an Excel workbook", "rename it to .csv")


@pytest.mark.parametrize(
    "data", [b"%PDF-1.7\n\x00\x01\x02\xff", b"PK\x05\x06" + bytes(18)], ids=["pdf", "empty_zip"]
)
def test_other_binary_named_xlsx(demo_file, data):
    message = refused_whole(demo_file, "report.xlsx", data, "not an Excel workbook", "save it as")
    assert ".csv" not in message


def test_truncated_xlsx(demo_file):
    data = good_xlsx()
    refused_whole(demo_file, "cut.xlsx", data[: len(data) // 2], "damaged", "Save it again")


def test_xlsx_with_a_corrupt_sheet_inside(demo_file):
    # The zip's directory is intact but the sheet's compressed bytes are scrambled.
    rows = [HEADER] + [["2026-09", "SALES_E", "REV", i] for i in range(50)]
    data = bytearray(xlsx({"S": rows}))
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("xl/worksheets/sheet1.xml")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for k in range(start + 10, start + 60):
        data[k] ^= 0x5A
    refused_whole(demo_file, "scrambled.xlsx", bytes(data), "sheet 'S' cannot be read", "save it")


def test_zip_that_is_not_a_workbook(demo_file):
    data = zip_of({"readme.txt": b"hello", "data/numbers.csv": b"1,2,3"})
    refused_whole(demo_file, "archive.xlsx", data, "not an Excel workbook", "save it as .xlsx")


def test_zip_bomb_declared_size_refused_before_reading(demo_file):
    # A real workbook whose sheet says it unpacks to 4 GB: the declared size alone refuses it,
    # without inflating anything (the sheet's real bytes are a few hundred).
    data = declare_size(good_xlsx(), "xl/worksheets/sheet1.xml", 0xFFFF0000)
    assert len(data) < 10_000
    refused_whole(demo_file, "bomb.xlsx", data, "unpacks to 4,096.0 MB", "refused before reading")


def test_zip_bomb_highly_compressible_member(demo_file):
    # 30 MB of one byte, packed ~1000:1 — over the default ratio of a large member.
    members = {
        "[Content_Types].xml": b"<Types/>",
        "xl/workbook.xml": b"<workbook/>",
        "xl/worksheets/sheet1.xml": b" " * (30 * 2**20),
    }
    data = zip_of(members)
    assert len(data) < 200_000
    refused_whole(demo_file, "inflate.xlsx", data, "unpacks to 30.0 MB", "refused before reading")


def test_small_unzip_limit(demo_file):
    limits = files.Limits(max_unzipped=4096)
    refused_whole(
        demo_file, "small.xlsx", good_xlsx(), "refused before reading", "Save only the sheets",
        limits=limits,
    )  # fmt: skip


def test_password_protected_minimal_ole(demo_file):
    # What Office writes for a password: an OLE container with an EncryptedPackage stream.
    data = cfb(["\x06DataSpaces", "EncryptionInfo", "EncryptedPackage"])
    for name in ("secret.xlsx", "secret.xls", "secret.csv"):
        refused_whole(demo_file, name, data, "password-protected", "remove the password")


def test_password_protected_with_directory_far_into_the_file(demo_file):
    # Writers may put the directory after the streams, past the first 64 KB.
    data = cfb(["EncryptionInfo", "EncryptedPackage"], directory_sector=127)
    assert data.find("EncryptedPackage".encode("utf-16-le")) > 65536
    refused_whole(demo_file, "secret.xlsx", data, "password-protected", "remove the password")


def test_the_word_encryptedpackage_in_an_ole_file_is_not_a_password(demo_file):
    # Not in a directory entry: this is just an OLE file calamine cannot read as a workbook.
    data = cfb(["Workbook"]) + b"\0\0" + "EncryptedPackage".encode("utf-16-le") + b"\0\0"
    message = refused_whole(demo_file, "odd.xls", data, "has no sheets", "save it again")
    assert "password" not in message


def test_password_protected_real_encryption(demo_file):
    ooxml = pytest.importorskip("msoffcrypto.format.ooxml")
    encrypted = io.BytesIO()
    ooxml.OOXMLFile(io.BytesIO(good_xlsx())).encrypt("secret", encrypted)
    refused_whole(
        demo_file, "locked.xlsx", encrypted.getvalue(), "password-protected", "remove the password"
    )


def test_over_a_small_size_limit(demo_file):
    message = refused_whole(
        demo_file, "big.xlsx", good_xlsx(), "the limit is 1.0 KB", "Split it by month",
        limits=files.Limits(max_bytes=1024),
    )  # fmt: skip
    assert "0.0 MB" not in message


def test_over_the_configured_size_limit(demo_file, monkeypatch):
    monkeypatch.setenv("KPI_MAX_UPLOAD_MB", "0.01")
    assert files.Limits.configured().max_bytes == int(0.01 * 2**20)
    data = ("period,unit,kpi,value\n" + "2026-09,SALES_E,REV,1\n" * 1000).encode()
    refused_whole(demo_file, "big.csv", data, "the limit is 10.2 KB", "Split it by month")


def test_over_the_default_20_mb_limit_with_50_mb(demo_file, monkeypatch):
    monkeypatch.delenv("KPI_MAX_UPLOAD_MB", raising=False)
    line = b"2026-09,SALES_E,REV,1\n"
    data = b"period,unit,kpi,value\n" + line * (50 * 2**20 // len(line) + 1)
    assert len(data) > 50 * 2**20
    refused_whole(demo_file, "year.csv", data, "50.0 MB", "the limit is 20.0 MB", "Split it")


def test_too_many_rows_for_the_limit(demo_file):
    rows = [HEADER] + [["2026-09", "SALES_E", "REV", i] for i in range(10)]
    refused_whole(
        demo_file, "rows.xlsx", xlsx({"S": rows}), "sheet 'S' has 11 rows", "the limit is 5",
        limits=files.Limits(max_rows=5),
    )  # fmt: skip


def test_garbage_named_parquet(demo_file):
    refused_whole(
        demo_file, "x.parquet", b"not parquet at all" * 10, "not a Parquet file", "Export"
    )
    refused_whole(demo_file, "y.parquet", b"PAR1" + b"\x00" * 64, "cannot be read")


def test_ole_file_that_is_not_a_workbook(demo_file):
    refused_whole(demo_file, "memo.xls", cfb(["WordDocument"]), "cannot be read", "Save it again")


@pytest.mark.parametrize("name", ["loop.xls", "loop.xlsx"])
def test_damaged_ole_file_does_not_take_the_process_down(demo_file, name):
    # Read in a child process with a memory cap: only the child dies, and the file is refused.
    limits = files.Limits(xls_memory=2**28)
    refused_whole(
        demo_file, name, looping_cfb(), "the workbook is damaged", "save it again", limits=limits
    )


@pytest.mark.parametrize(
    "ref, row, column",
    [
        ("XFD1048576", "1,048,576", "XFD"),  # Excel's last cell
        ("B999999994", "999,999,994", "Z"),  # past Excel's last row: calamine takes it as it is
        ("A4294967295", "4,294,967,295", "Z"),
        ("AC999999994", "999,999,994", "AC"),
        # A cell only formatted still makes calamine reach its row; not its column.
        ("AB999999994/", "999,999,994", "Z"),
    ],
)
def test_one_value_far_away_is_refused_before_calamine_allocates(demo_file, ref, row, column):
    # calamine would allocate the whole rectangle from A1 to that cell: hundreds of gigabytes.
    cell = (
        b'<c r="%s" s="1"/>' % ref[:-1].encode()
        if ref.endswith("/")
        else b'<c r="%s"><v>1</v></c>' % ref.encode()
    )
    sheet = (
        SHEET_XML_HEAD
        + b'<row r="1"><c r="A1" t="inlineStr"><is><t>unit</t></is></c></row>'
        + b'<row r="2">%s</row>' % cell
        + b'<row r="3"><c r="A3"><v>1</v></c></row></sheetData></worksheet>'
    )
    refused_whole(
        demo_file, "far.xlsx", zip_of({**PARTS, "xl/worksheets/sheet1.xml": sheet}),
        f"sheet 'Formatted' has a value as far as row {row}, column {column}", "Ctrl+End",
    )  # fmt: skip


def x_sheet(*rows: bytes) -> bytes:
    """A sheet whose tags carry the `x:` prefix, as some .NET exporters write them; calamine
    reads it like any other."""
    return (
        b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><x:worksheet '
        b'xmlns:x="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><x:sheetData>'
        + b"".join(rows) + b"</x:sheetData></x:worksheet>"
    )  # fmt: skip


def x_text(ref: str, text: str) -> bytes:
    return b'<x:c r="%s" t="inlineStr"><x:is><x:t>%s</x:t></x:is></x:c>' % (
        ref.encode(), text.encode()
    )  # fmt: skip


@pytest.mark.parametrize(
    "ref, row, column",
    [("XFD1048576", "1,048,576", "XFD"), ("A4294967295", "4,294,967,295", "Z")],
)
def test_one_value_far_away_in_a_sheet_with_prefixed_tags(demo_file, ref, row, column):
    # Missed by the size check, this took the whole process down (calamine's allocation failed).
    sheet = x_sheet(
        b'<x:row r="1">' + x_text("A1", "unit") + b"</x:row>",
        b'<x:row r="2"><x:c r="%s"><x:v>1</x:v></x:c></x:row>' % ref.encode(),
    )
    refused_whole(
        demo_file, "far.xlsx", zip_of({**PARTS, "xl/worksheets/sheet1.xml": sheet}),
        f"sheet 'Formatted' has a value as far as row {row}, column {column}", "Ctrl+End",
    )  # fmt: skip


def test_formulas_and_errors_in_a_sheet_with_prefixed_tags(demo_file):
    head = b"".join(x_text(f"{c}1", t) for c, t in zip("ABCD", HEADER, strict=True))
    sheet = x_sheet(
        b'<x:row r="1">' + head + b"</x:row>",
        b'<x:row r="2">' + x_text("A2", "2026-09") + x_text("B2", "SALES_E") + x_text("C2", "REV")
        + b'<x:c r="D2"><x:f>1+1</x:f></x:c></x:row>',
        b'<x:row r="3">' + x_text("A3", "2026-09") + x_text("B3", "SALES_N") + x_text("C3", "REV")
        + b'<x:c r="D3" t="e"><x:f>1/0</x:f><x:v>#DIV/0!</x:v></x:c></x:row>',
    )  # fmt: skip
    got = refuse(demo_file, "x.xlsx", zip_of({**PARTS, "xl/worksheets/sheet1.xml": sheet}))
    formula = got.finding("D2 holds a formula whose result was never saved")
    placed(formula, "x.xlsx", "Formatted", 2, "D2")
    assert formula.says("ly_formula_unsaved")
    placed(got.finding("'#DIV/0!' is an Excel error"), "x.xlsx", "Formatted", 3, "D (value)")


def test_forged_shared_string_count(demo_file):
    parts = dict(PARTS)
    parts["xl/sharedStrings.xml"] = (
        b'<?xml version="1.0"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/'
        b'main" count="1" uniqueCount="4000000000"><si><t>unit</t></si></sst>'
    )
    parts["xl/_rels/workbook.xml.rels"] = parts["xl/_rels/workbook.xml.rels"].replace(
        b"</Relationships>",
        b'<Relationship Id="rId3" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
        b'relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>',
    )
    sheet = (
        SHEET_XML_HEAD + b'<row r="1"><c r="A1" t="s"><v>0</v></c></row></sheetData></worksheet>'
    )
    data = zip_of({**parts, "xl/worksheets/sheet1.xml": sheet})
    refused_whole(demo_file, "sst.xlsx", data, "shared strings claim 4,000,000,000", "save it")


def test_csv_with_a_quote_never_closed(demo_file):
    # From the quote on line 3, every following line is one field, until the field is too long.
    data = b'period,unit,kpi,value\n2026-09,SALES_E,REV,1\n2026-09,"SALES_N,REV,2\n'
    data += b"2026-09,SALES_S,REV,3\n" * 8000
    refused_whole(demo_file, "quote.csv", data, "line 3:", "never closed", "fix the line")


def test_binary_named_csv(demo_file):
    refused_whole(demo_file, "book.csv", good_xlsx(), "binary file, not CSV text")
    png = b"\x89PNG\r\n\x1a\n" + bytes(200)
    refused_whole(demo_file, "chart.csv", png, "binary file, not CSV text")


# --- readable files with nothing to load -----------------------------------------------------


def test_xlsx_with_an_empty_sheet(demo_file):
    got = refuse(demo_file, "blank.xlsx", xlsx({"Sheet1": []}))
    placed(got.finding("nothing to load: the sheets are empty"), "blank.xlsx", "", None, None)
    empty = got.finding("the sheet is empty", "info")
    assert empty.sheet == "Sheet1" and empty.says("ly_empty")
    # Told apart by its key; the English as the command line always printed it.
    nothing = got.finding("nothing to load")
    assert nothing.says("in_nothing_to_load")
    assert nothing.message.render("zh") == "没有可导入的数据：工作表都是空的"
    assert str(nothing.hint) == (
        "use columns period/期间, unit/部门, KPI/指标 and value/实际值, download the template, or "
        "map the sheet with a profile"
    )


def test_an_upload_whose_every_value_is_blank_says_so_in_either_language(demo_file):
    csv = "period,unit,kpi,value\n2026-10,SALES_E,REV,\n2026-10,SALES_E,VISITS, \n"
    got = refuse(demo_file, "blank.csv", csv.encode())
    f = got.finding("every value is blank")
    assert f.says("in_all_blank") and (f.file, str(f.hint)) == ("blank.csv", "fill them in")
    assert (f.message.render("zh"), f.hint.render("zh")) == ("所有数值都是空的", "请填写数值")


def test_workbook_with_only_a_header(demo_file):
    got = refuse(demo_file, "header.xlsx", xlsx({"Sheet1": [HEADER]}))
    f = got.finding("has no values below it", "warning")
    placed(f, "header.xlsx", "Sheet1", 1, None)
    assert f.says("ly_header_no_values")
    assert chinese(f.message) == "第 1 行的表头下方没有数据"
    assert got.finding("nothing to load").hint


def test_sheet_without_any_header(demo_file):
    got = refuse(demo_file, "notes.xlsx", xlsx({"Notes": [["hello"], ["world", 3]]}))
    f = got.finding("no header row found", "warning")
    placed(f, "notes.xlsx", "Notes", None, None)
    assert f.says("ly_no_header")
    assert got.finding("nothing to load").hint


def test_an_empty_sheet_beside_one_of_other_data(demo_file):
    # Not "the sheets are empty": one of them holds something, just not actuals.
    data = xlsx({"Blank": [], "Notes": [["hello"], ["world", 3]]})
    got = refuse(demo_file, "mixed.xlsx", data)
    placed(got.finding("nothing to load: no actuals were found"), "mixed.xlsx", "", None, None)
    assert got.finding("the sheet is empty", "info").sheet == "Blank"


def test_a_header_whose_kpi_and_value_columns_are_not_recognised(demo_file):
    # Rows of dates and amounts under it must not be taken for a header of months, and the
    # warning says which columns are missing instead of "no values below it".
    rows = [["Month", "Dept", "Indicator", "Amount", "Updated"]]
    rows += [[datetime(2026, 9, 1), u, "REV", 1_000_000 * i, datetime(2026, 10, 3, 9, 30)]
             for i, u in enumerate(("SALES_E", "SALES_N", "SALES_S"), 1)]  # fmt: skip
    got = refuse(demo_file, "odd.xlsx", xlsx({"Sheet": rows}))
    f = got.finding(
        "has no KPI/指标 or value/实际值 column, so its 3 rows give no values", "warning"
    )
    placed(f, "odd.xlsx", "Sheet", 1, None)
    assert "mapping profile" in str(f.hint)
    assert chinese(f.message) == (
        "第 1 行的表头没有 KPI/指标 或 value/实际值 列，因此其下 3 行没有可导入的数值"
    )
    assert [x for x in got.prepared.findings if "unknown" in str(x.message)] == []


def test_a_sheet_of_notes_beside_actuals_is_skipped_with_a_word(demo_file):
    # Beside a sheet of actuals, a sheet without a header is notes: told, not refused. The
    # intake knows the finding by its key, not by its English.
    data = xlsx({
        "2026-09": [["unit", "kpi", "value"], ["SALES_E", "REV", 1_000_000]],
        "Notes": [["hello"], ["world", 3]],
    })  # fmt: skip
    wh = Warehouse(demo_file, linger=0)
    try:
        prepared = intake.prepare(wh, [("notes.xlsx", data)], access.SYSTEM, today=TODAY)
    finally:
        wh.close()
    in_chinese(prepared)
    assert not prepared.errors and len(prepared.rows) == 1
    (f,) = [f for f in prepared.findings if f.sheet == "Notes"]
    assert (f.severity, f.message.key, f.message.values["said"].key) == (
        "info",
        "ly_skipped",
        "ly_no_header",
    )
    assert str(f.message) == (
        "no header row found in rows 1–2 (looked for period/期间, unit/部门, KPI/指标, "
        "value/实际值, KPI names as columns or months as columns); the sheet was skipped"
    )
    assert chinese(f.message) == (
        "在第 1–2 行中未找到表头行（查找了 period/期间、unit/部门、KPI/指标、value/实际值 等"
        "列名，以及以指标名称或月份作为列标题的表头）；已跳过该工作表"
    )


def test_rows_of_dates_and_numbers_alone_are_no_header(demo_file):
    # An export without a header: two dates in one month beside amounts are a row of data.
    rows = [[datetime(2013, 9, d), datetime(2013, 9, d + 1), 1000.0 * d, 5.0 + d] for d in (1, 2)]
    got = refuse(demo_file, "dates.xlsx", xlsx({"CNY": rows}))
    placed(got.finding("no header row found", "warning"), "dates.xlsx", "CNY", None, None)


def test_amounts_that_look_like_months_are_no_header(demo_file):
    # A sales export whose columns the reader does not know: 1931.04 and 2079.4 read as
    # 1931-04 and 2079-04, and a row of them was taken for a header of months, its order ids
    # for KPIs ("unknown KPI '2841'", "2079-04 is in the future" for every row below).
    csv = "Order ID,Region,Sales\n" + "".join(
        f"{2800 + i},East,{v}\n" for i, v in enumerate(("1931.04", "2079.4", "2010.11", "12.5"))
    )
    got = refuse(demo_file, "sales.csv", csv.encode())
    f = got.finding("no header row found in rows 1–5", "warning")
    placed(f, "sales.csv", "sales.csv", None, None)
    said = [str(x.message) for x in got.prepared.findings]
    assert not [m for m in said if "unknown KPI" in m or "future" in m or "header in row" in m]


def test_a_table_too_far_down_is_said_to_be_looked_for(demo_file):
    rows = [[f"note {i}"] for i in range(1, 1100)] + [HEADER, ["2026-09", "SALES_E", "REV", 1]]
    got = refuse(demo_file, "far.xlsx", xlsx({"Form": rows}))
    f = got.finding("no header row found in rows 1–1000", "warning")
    placed(f, "far.xlsx", "Form", None, None)
    assert "move the table up" in str(f.hint)
    assert f.hint.key == "ly_no_header_far_hint"


def test_whole_numbers_of_a_legacy_sheet_are_quoted_as_the_cells_show_them(demo_file):
    # calamine gives a number as a float: 2 comes as 2.0, and a message quoting "2.0" names
    # a value the analyst never typed.
    got = refuse(demo_file, "n.xlsx", xlsx({"S": [HEADER, ["2026-09", "SALES_E", 2.0, 1]]}))
    assert got.finding("unknown KPI '2'").column == "C (kpi)"


def test_a_million_blank_formatted_rows(demo_file):
    # A header, then a million rows whose only cell is a yellow fill: written as XML directly.
    header = b'<row r="1">' + b"".join(
        b'<c r="%s1" t="inlineStr"><is><t>%s</t></is></c>' % (col, text.encode())
        for col, text in zip((b"A", b"B", b"C", b"D"), HEADER, strict=True)
    ) + b"</row>"  # fmt: skip
    body = b"".join(b'<row r="%d"><c r="A%d" s="1"/></row>' % (i, i) for i in range(2, 1_000_002))
    sheet = SHEET_XML_HEAD + header + body + b"</sheetData></worksheet>"
    data = zip_of({**PARTS, "xl/worksheets/sheet1.xml": sheet})
    assert len(sheet) > 30 * 2**20 and len(data) < 20 * 2**20
    got = refuse(demo_file, "formatted.xlsx", data)
    placed(got.finding("has no values below it", "warning"), "formatted.xlsx", "Formatted", 1, None)
    assert got.finding("nothing to load").hint
    assert got.prepared.counts == {
        "new": 0, "changed": 0, "unchanged": 0, "removed": 0, "invalid": 0
    }  # fmt: skip


# --- cells that cannot be loaded --------------------------------------------------------------


def test_formulas_without_cached_values(demo_file):
    rows = [["unit", "kpi", "value"], ["SALES_E", "REV", 100], ["SALES_N", "REV", "=C2*2"]]
    got = refuse(demo_file, "script.xlsx", xlsx({"2026-09": rows}))
    f = got.finding("C3 holds a formula whose result was never saved")
    placed(f, "script.xlsx", "2026-09", 3, "C3")
    assert "save it" in str(f.hint)
    assert got.prepared.counts["changed"] == 1  # SALES_E's row is fine


def with_empty_text_results(data: bytes, refs: list[str]) -> bytes:
    """The workbook as Excel saves it after computing `IF(x="","",…)` to "" in `refs`: the
    cell keeps its formula, is typed text (t="str") and its saved value is empty. openpyxl
    cannot store a formula's result, so its sheet XML is patched in the zip."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for item in src.infolist():
            body = src.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                for i, ref in enumerate(refs):
                    empty = b"<v></v>" if i % 2 else b"<v/>"  # Excel and other writers
                    body, n = re.subn(
                        rb'<c r="%s"([^>]*)><f>([^<]*)</f><v ?/></c>' % ref.encode(),
                        rb'<c r="%s"\1 t="str"><f>\2</f>%s</c>' % (ref.encode(), empty),
                        body,
                    )
                    assert n == 1, ref
            z.writestr(item, body)
    return out.getvalue()


def test_formulas_whose_result_is_empty_text_are_blanks(own_file):
    # A tracker's value column holds =IF(E3="","",E3*1.1): months not yet filled show nothing.
    # Those cells are blank — no value, not zero, and nothing to fix in Excel.
    rows = [
        ["unit", "kpi", "value", "input"],
        ["SALES_E", "REV", 100, None],
        ["SALES_N", "REV", '=IF(D3="","",D3*1.1)', None],
        ["SALES_S", "REV", '=IF(D4="","",D4*1.1)', None],
        ["SALES_E", "NEW_CUST", 7, None],
    ]
    data = with_empty_text_results(xlsx({"2026-09": rows}), ["C3", "C4"])
    wh = Warehouse(own_file, linger=0)
    try:
        prepared = intake.prepare(wh, [("tracker.xlsx", data)], access.SYSTEM, today=TODAY)
        in_chinese(prepared)
        assert [f for f in prepared.findings if f.severity != "info"] == []
        cat = load_catalog(wh)
        got = sorted(
            (cat.units[r.unit_id].code, cat.kpis[r.kpi_id].code, r.value)
            for r in prepared.rows.itertuples()
        )
        assert got == [("SALES_E", "NEW_CUST", 7.0), ("SALES_E", "REV", 100.0)]
        assert prepared.invalid == 0
    finally:
        wh.close()


def test_a_formula_with_no_saved_result_is_still_refused_beside_empty_text_ones(demo_file):
    rows = [
        ["unit", "kpi", "value"],
        ["SALES_E", "REV", '=IF(1,"","")'],
        ["SALES_N", "REV", "=1+1"],
    ]
    data = with_empty_text_results(xlsx({"2026-09": rows}), ["C2"])
    got = refuse(demo_file, "mixed.xlsx", data)
    placed(got.finding("C3 holds a formula whose result was never saved"), "mixed.xlsx",
           "2026-09", 3, "C3")  # fmt: skip
    assert not [f for f in got.prepared.findings if "C2" in str(f.message)]


def test_excel_error_values_are_not_blanks(demo_file):
    # calamine reads an error cell as empty; an empty value is skipped silently, so without the
    # scan a #DIV/0! would quietly load nothing.
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "2026-09"
    for r in (["unit", "kpi", "value"], ["SALES_E", "REV", "#DIV/0!"], ["SALES_N", "REV", "#N/A"]):
        ws.append(r)
    assert ws["C2"].data_type == "e"
    out = io.BytesIO()
    wb.save(out)
    got = refuse(demo_file, "errors.xlsx", out.getvalue())
    f = got.finding("'#DIV/0!' is an Excel error")
    placed(f, "errors.xlsx", "2026-09", 2, "C (value)")
    assert "formula" in str(f.hint)
    placed(got.finding("'#N/A' is an Excel error"), "errors.xlsx", "2026-09", 3, "C (value)")


def test_merged_cells_over_values(demo_file):
    rows = [["unit", "kpi", "value"], ["SALES_E", "REV", 100], ["SALES_N", "REV", None]]
    got = refuse(demo_file, "merged.xlsx", xlsx({"2026-09": rows}, {"2026-09": ["C2:C3"]}))
    f = got.finding("C2:C3 are merged over values")
    placed(f, "merged.xlsx", "2026-09", 2, "C")
    assert f.says("ly_merged_values")
    assert "unmerge" in str(f.hint)
    assert not len(got.prepared.rows)


def test_text_in_the_value_column(demo_file):
    rows = [
        ["unit", "kpi", "value"],
        ["SALES_E", "REV", "about 100"],
        ["SALES_N", "REV", "n/a"],
        ["SALES_S", "REV", 5],
    ]
    got = refuse(demo_file, "text.xlsx", xlsx({"2026-09": rows}))
    placed(got.finding("'about 100' is not a number"), "text.xlsx", "2026-09", 2, "C (value)")
    placed(got.finding("'n/a' is not a number"), "text.xlsx", "2026-09", 3, "C (value)")
    assert got.prepared.counts["invalid"] == 2 and len(got.prepared.rows) == 1


def test_decimal_comma_in_a_text_cell_is_refused_not_read_ten_times_too_big(demo_file):
    rows = [
        HEADER,
        ["2026-09", "SALES_E", "NEW_CUST", "1,5"],
        ["2026-09", "SALES_N", "REV", "1,234"],
    ]
    got = refuse(demo_file, "comma.xlsx", xlsx({"S": rows}))
    placed(got.finding("'1,5' is not a number"), "comma.xlsx", "S", 2, "D (value)")
    assert got.prepared.rows["value"].tolist() == [1234.0]  # a thousands comma is fine


def test_merged_range_reaching_far_past_the_data(demo_file):
    # Column E merged from row 2 to the sheet's end: nothing there to fill, nothing to crash on.
    cells = [["period", "unit", "kpi", "value"], ["2026-09", "SALES_E", "REV", None]]
    xml = b"".join(
        b'<row r="%d">' % (i + 1)
        + b"".join(
            (b'<c r="%s%d"><v>7</v></c>' % (b"ABCD"[j : j + 1], i + 1))
            if c is None
            else (
                b'<c r="%s%d" t="inlineStr"><is><t>%s</t></is></c>'
                % (b"ABCD"[j : j + 1], i + 1, c.encode())
            )
            for j, c in enumerate(row)
        )
        + b"</row>"
        for i, row in enumerate(cells)
    )
    sheet = (
        SHEET_XML_HEAD + xml + b'<row r="3"/></sheetData>'
        b'<mergeCells count="1"><mergeCell ref="E2:XFD1048576"/></mergeCells></worksheet>'
    )
    wh = Warehouse(demo_file, linger=0)
    try:
        data = zip_of({**PARTS, "xl/worksheets/sheet1.xml": sheet})
        prepared = intake.prepare(wh, [("merged.xlsx", data)], access.SYSTEM, today=TODAY)
    finally:
        wh.close()
    in_chinese(prepared)
    assert prepared.errors == [] and prepared.rows["value"].tolist() == [7.0]


def test_every_row_invalid(demo_file):
    rows = [
        HEADER,
        ["2026-09", "SALES_X", "REV", 1],
        ["2026-09", "SALES_N", "REVX", 2],
        ["2026-13", "SALES_S", "REV", 3],
        ["2026-09", "SALES_S", "NEW_CUST", "many"],
    ]
    got = refuse(demo_file, "bad.xlsx", xlsx({"S": rows}))
    placed(got.finding("unknown unit 'SALES_X'"), "bad.xlsx", "S", 2, "B (unit)")
    placed(got.finding("unknown KPI 'REVX'"), "bad.xlsx", "S", 3, "C (kpi)")
    placed(got.finding("'2026-13' is not a period"), "bad.xlsx", "S", 4, "A (period)")
    placed(got.finding("'many' is not a number"), "bad.xlsx", "S", 5, "D (value)")
    assert got.prepared.counts["invalid"] == 4 and not len(got.prepared.rows)


def test_duplicate_rows_with_the_same_value_keep_one(own_file):
    rows = [HEADER, ["2026-11", "SALES_E", "REV", 7], ["2026-11", "华东大区", "营业收入", 7]]
    wh = Warehouse(own_file, linger=0)
    prepared = intake.prepare(wh, [("dup.xlsx", xlsx({"S": rows}))], access.SYSTEM, today=TODAY)
    in_chinese(prepared)
    assert prepared.errors == []
    (f,) = prepared.warnings
    placed(f, "dup.xlsx", "S", 3, "D (value)")
    assert "repeats sheet 'S' row 2 with the same value" in str(f.message)
    # One copy loads, and the repeat is not counted as invalid.
    assert prepared.counts == {"new": 1, "changed": 0, "unchanged": 0, "removed": 0, "invalid": 0}
    service.commit_actuals(wh, prepared, access.SYSTEM)
    assert wh.rows(
        "SELECT value FROM actual a JOIN kpi k ON k.id = a.kpi_id JOIN org_unit u "
        "ON u.id = a.unit_id WHERE k.code = 'REV' AND u.code = 'SALES_E' "
        "AND period = DATE '2026-11-01'"
    ) == [(7.0,)]
    wh.close()


def test_duplicate_rows_with_different_values_keep_none(demo_file):
    rows = [
        HEADER,
        ["2026-09", "SALES_E", "REV", 7],
        ["2026-09", "SALES_N", "REV", 8],
        ["2026-09", "East China Region", "Revenue", 9],
    ]
    got = refuse(demo_file, "dup.xlsx", xlsx({"S": rows}))
    f = got.finding("is also given in sheet 'S' row 2: 7 there, 9 here")
    placed(f, "dup.xlsx", "S", 4, "D (value)")
    assert "neither is loaded" in str(f.message)
    assert got.prepared.counts["invalid"] == 2
    assert len(got.prepared.rows) == 1  # SALES_N only


def test_unknown_kpi_with_did_you_mean(demo_file):
    rows = [HEADER, ["2026-09", "SALES_E", "REVENU", 1], ["2026-09", "SALES_E", "营业收人", 2]]
    got = refuse(demo_file, "kpi.xlsx", xlsx({"S": rows}))
    f = got.finding("unknown KPI 'REVENU'")
    placed(f, "kpi.xlsx", "S", 2, "C (kpi)")
    assert str(f.hint).startswith("did you mean REV (营业收入 / Revenue)")
    assert "REV (营业收入 / Revenue)" in str(got.finding("unknown KPI '营业收人'").hint)


def test_unknown_unit(demo_file):
    rows = [HEADER, ["2026-09", "华东区", "REV", 1], ["2026-09", "Mars office", "REV", 1]]
    got = refuse(demo_file, "unit.xlsx", xlsx({"S": rows}))
    f = got.finding("unknown unit '华东区'")
    placed(f, "unit.xlsx", "S", 2, "B (unit)")
    assert "SALES_E (华东大区 / East China Region)" in str(f.hint)
    assert str(got.finding("unknown unit 'Mars office'").hint) == "check the org units for its code"


def test_every_wrong_cell_of_a_row_is_listed_at_once(demo_file):
    """An analyst fixes a row in one go: its unknown KPI, unknown unit, impossible month and
    text value are each listed at their own cell, not only the first."""
    rows = [HEADER, ["2026-13", "Mars office", "REVENU", "lots"], ["2026-09", "SALES_E", "REV", 5]]
    got = refuse(demo_file, "many.xlsx", xlsx({"S": rows}))
    cells = sorted(
        (f.row, f.column) for f in got.prepared.findings if f.severity == "error" and f.row == 2
    )
    assert cells == [(2, "A (period)"), (2, "B (unit)"), (2, "C (kpi)"), (2, "D (value)")]
    got.finding("unknown KPI 'REVENU'")
    got.finding("unknown unit 'Mars office'")
    got.finding("'lots' is not a number")
    assert got.prepared.counts["invalid"] == 1  # one value left out, however many reasons
    assert len(got.prepared.rows) == 1


def test_unit_outside_the_uploaders_scope(demo_file, sales_analyst):
    rows = [HEADER, ["2026-09", "PROD", "HEADCOUNT", 120], ["2026-09", "SALES_E", "REV", 1]]
    got = refuse(demo_file, "scope.xlsx", xlsx({"S": rows}), who=sales_analyst)
    f = got.finding("unit 'PROD' is outside your scope")
    placed(f, "scope.xlsx", "S", 2, "B (unit)")
    assert "ask an admin" in str(f.hint)


def test_future_period(demo_file):
    rows = [HEADER, ["2026-12", "SALES_E", "REV", 1], ["2027年1月", "SALES_E", "REV", 1]]
    got = refuse(demo_file, "future.xlsx", xlsx({"S": rows}))
    placed(got.finding("2026-12 is in the future"), "future.xlsx", "S", 2, "A (period)")
    placed(got.finding("2027-01 is in the future"), "future.xlsx", "S", 3, "A (period)")


def test_locked_period(own_file):
    wh = Warehouse(own_file, linger=0)
    month_locks.lock_month(wh, date(2026, 9, 1), access.SYSTEM)
    wh.close()
    rows = [HEADER, ["2026-09", "SALES_E", "REV", 1]]
    got = refuse(own_file, "locked.xlsx", xlsx({"S": rows}))
    f = got.finding("2026-09 is closed")
    placed(f, "locked.xlsx", "S", 2, "A (period)")
    assert "reopen" in str(f.hint)


def test_plain_96_in_a_percent_kpi(demo_file):
    rows = [
        HEADER,
        ["2026-09", "SALES_E", "COLLECT_RATE", 96],
        ["2026-09", "SALES_N", "COLLECT_RATE", "96%"],
        ["2026-09", "SALES_S", "COLLECT_RATE", 0.96],
    ]
    got = refuse(demo_file, "pct.xlsx", xlsx({"S": rows}))
    f = got.finding("96 in percent KPI COLLECT_RATE — did you mean 96%?")
    placed(f, "pct.xlsx", "S", 2, "D (value)")
    assert str(f.hint) == "write 96% or 0.96"
    assert sorted(got.prepared.rows["value"]) == [0.96, 0.96]


def test_negative_count_below_the_minimum(demo_file):
    rows = [
        HEADER,
        ["2026-09", "SALES_E", "NEW_CUST", -3],
        ["2026-09", "SALES_N", "NEW_CUST", "(2)"],
    ]
    got = refuse(demo_file, "neg.xlsx", xlsx({"S": rows}))
    placed(got.finding("-3 is below NEW_CUST's allowed minimum 0"), "neg.xlsx", "S", 2, "D (value)")
    placed(got.finding("-2 is below NEW_CUST's allowed minimum 0"), "neg.xlsx", "S", 3, "D (value)")


def test_above_the_maximum(demo_file):
    rows = [HEADER, ["2026-09", "SALES_E", "CSAT", 120]]
    got = refuse(demo_file, "max.xlsx", xlsx({"S": rows}))
    placed(got.finding("120 is above CSAT's allowed maximum 100"), "max.xlsx", "S", 2, "D (value)")


def test_a_year_or_quarter_is_not_a_month(demo_file):
    rows = [
        HEADER,
        ["2026", "SALES_E", "NEW_CUST", 3],
        [2025, "SALES_N", "NEW_CUST", 3],  # a number cell: read as 2025.0
        ["2026-Q1", "SALES_S", "NEW_CUST", 3],
    ]
    got = refuse(demo_file, "year.xlsx", xlsx({"S": rows}))
    f = got.finding("'2026' is a year — actuals are monthly")
    placed(f, "year.xlsx", "S", 2, "A (period)")
    assert "2024-03" in str(f.hint)
    placed(got.finding("'2025' is a year"), "year.xlsx", "S", 3, "A (period)")
    placed(got.finding("'2026-Q1' is a quarter"), "year.xlsx", "S", 4, "A (period)")


def test_formula_kpi_uploaded_directly(demo_file):
    rows = [HEADER, ["2026-09", "PROD_L1", "OEE", 0.8], ["2026-09", "PROD_L1", "设备综合效率", 0.8]]
    got = refuse(demo_file, "oee.xlsx", xlsx({"S": rows}))
    hits = [f for f in got.prepared.errors if "'OEE' is computed by its formula" in str(f.message)]
    assert [f.row for f in hits] == [2, 3]
    placed(hits[0], "oee.xlsx", "S", 2, "C (kpi)")
    assert "AVAIL * PERF * QUAL" in str(hits[0].message)
    assert str(hits[0].hint) == "load the KPIs it is made of instead"


def test_commit_with_errors_only_when_accepted_and_then_only_valid_rows(own_file):
    rows = [
        HEADER,
        ["2026-11", "SALES_E", "REV", 111],
        ["2026-11", "SALES_N", "REV", "oops"],
        ["2026-11", "SALES_X", "REV", 333],
        ["2026-11", "SALES_S", "NEW_CUST", 4],
    ]
    data = xlsx({"S": rows})
    wh = Warehouse(own_file, linger=0)
    prepared = intake.prepare(wh, [("partly.xlsx", data)], access.SYSTEM, today=TODAY)
    assert len(prepared.errors) == 2 and prepared.counts["invalid"] == 2
    wh.close()
    before = sha256(own_file)
    wh = Warehouse(own_file, linger=0)
    with pytest.raises(
        intake.IntakeError, match=r"2 problem\(s\) found; nothing was written"
    ) as refused:
        service.commit_actuals(wh, prepared, access.SYSTEM)
    wh.close()
    in_chinese(prepared, refused.value)
    assert sha256(own_file) == before
    wh = Warehouse(own_file, linger=0)
    done = service.commit_actuals(wh, prepared, access.SYSTEM, accept_invalid=True)
    assert done.batch_id is not None
    assert done.counts == {"new": 2, "changed": 0, "unchanged": 0, "removed": 0, "invalid": 2}
    got = wh.rows(
        "SELECT u.code, k.code, value, batch_id FROM actual a JOIN kpi k ON k.id = a.kpi_id "
        "JOIN org_unit u ON u.id = a.unit_id WHERE period = DATE '2026-11-01' ORDER BY 1, 2"
    )
    wh.close()
    assert got == [
        ("SALES_E", "REV", 111.0, done.batch_id),
        ("SALES_S", "NEW_CUST", 4.0, done.batch_id),
    ]


def test_accepting_invalid_rows_with_nothing_valid_still_writes_nothing(own_file):
    data = xlsx({"S": [HEADER, ["2026-11", "SALES_X", "REV", 1]]})
    before = sha256(own_file)
    wh = Warehouse(own_file, linger=0)
    prepared = intake.prepare(wh, [("none.xlsx", data)], access.SYSTEM, today=TODAY)
    with pytest.raises(
        intake.IntakeError, match="No valid value to load; nothing was written"
    ) as refused:
        service.commit_actuals(wh, prepared, access.SYSTEM, accept_invalid=True)
    wh.close()
    in_chinese(prepared, refused.value)
    assert sha256(own_file) == before


# --- good files in awkward forms: they load ---------------------------------------------------


def loads(path: Path, name: str, data: bytes) -> dict[tuple[str, str, str], float]:
    """Prepare without errors or warnings and commit; the values stored for what was sent."""
    wh = Warehouse(path, linger=0)
    try:
        prepared = intake.prepare(wh, [(name, data)], access.SYSTEM, today=TODAY)
        in_chinese(prepared)
        assert [f for f in prepared.findings if f.severity != "info"] == []
        done = service.commit_actuals(wh, prepared, access.SYSTEM)
        assert done.batch_id is not None
        got = wh.rows(
            "SELECT u.code, k.code, strftime(period, '%Y-%m'), value FROM actual a "
            "JOIN kpi k ON k.id = a.kpi_id JOIN org_unit u ON u.id = a.unit_id "
            "WHERE batch_id = ?",
            [done.batch_id],
        )
    finally:
        wh.close()
    return {(u, k, p): v for u, k, p, v in got}


CHINESE_CSV = (
    "期间,部门,指标,实际值\n2026年11月,华东大区,营业收入,12.5万\n2026年11月,华北大区,新增客户数,7\n"
)
CHINESE_EXPECTED = {
    ("SALES_E", "REV", "2026-11"): 125_000.0,
    ("SALES_N", "NEW_CUST", "2026-11"): 7.0,
}


def test_csv_in_gbk_with_chinese_headers(own_file):
    data = CHINESE_CSV.encode("gbk")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    assert loads(own_file, "gbk.csv", data) == CHINESE_EXPECTED


def test_csv_with_bom(own_file):
    data = CHINESE_CSV.encode("utf-8-sig")
    assert data.startswith(b"\xef\xbb\xbf")
    assert loads(own_file, "bom.csv", data) == CHINESE_EXPECTED


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
def test_csv_in_utf16_as_excel_saves_unicode_text(own_file, encoding):
    # Excel's "Unicode Text": UTF-16 with a byte-order mark, tabs between the fields.
    data = CHINESE_CSV.replace(",", "\t").replace("\n", "\r\n").encode(encoding)
    data = data if data[:2] in (b"\xff\xfe", b"\xfe\xff") else b"\xfe\xff" + data
    assert b"\0" in data[:10]
    assert loads(own_file, "unicode.csv", data) == CHINESE_EXPECTED


@pytest.mark.parametrize("newline", ["\r", "\r\n", "\n"])
def test_csv_with_any_line_ending(own_file, newline):
    # "CSV (Macintosh)" ends lines with a lone CR; Python's csv module refused such a file.
    data = CHINESE_CSV.replace("\n", newline).encode("utf-8")
    assert loads(own_file, "mac.csv", data) == CHINESE_EXPECTED


def test_csv_with_semicolons_and_decimal_commas(own_file):
    # As Excel saves CSV where the decimal mark is a comma: "1.234,5" is 1234.5, "1,5" is 1.5.
    data = (
        b"period;unit;kpi;value\n"
        b"2026-11;SALES_E;REV;1.234,5\n"
        b"2026-11;SALES_N;REV;1,5\n"
        b"2026-11;SALES_S;REV;2.000\n"
        b"2026-11;SALES_E;COLLECT_RATE;85,5%\n"
    )
    assert loads(own_file, "semi.csv", data) == {
        ("SALES_E", "REV", "2026-11"): 1234.5,
        ("SALES_N", "REV", "2026-11"): 1.5,
        ("SALES_S", "REV", "2026-11"): 2000.0,
        ("SALES_E", "COLLECT_RATE", "2026-11"): pytest.approx(0.855),
    }


def test_csv_with_semicolons_and_decimal_points(own_file):
    data = "period;unit;kpi;value\n2026-11;SALES_E;REV;1,234.5\n2026-11;SALES_N;REV;7.25\n"
    assert loads(own_file, "points.csv", data.encode()) == {
        ("SALES_E", "REV", "2026-11"): 1234.5,
        ("SALES_N", "REV", "2026-11"): 7.25,
    }


def test_parquet(own_file):
    df = pd.DataFrame(
        {
            "period": pd.to_datetime(["2026-11-01", "2026-11-15"]),
            "unit": ["SALES_E", "华北大区"],
            "kpi": ["REV", "New customers"],
            "value": [2_500_000.0, 9.0],
        }
    )
    out = io.BytesIO()
    df.to_parquet(out)
    assert loads(own_file, "actuals.parquet", out.getvalue()) == {
        ("SALES_E", "REV", "2026-11"): 2_500_000.0,
        ("SALES_N", "NEW_CUST", "2026-11"): 9.0,
    }


def legacy_xls(sheets: dict[str, list[list[object]]]) -> bytes:
    xlwt = pytest.importorskip("xlwt")  # BIFF8 writer; listed in requirements-dev
    wb = xlwt.Workbook()
    for name, rows in sheets.items():
        ws = wb.add_sheet(name)
        for i, row in enumerate(rows):
            for j, cell in enumerate(row):
                if cell is not None:
                    ws.write(i, j, cell)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


XLS_SHEETS = {
    "2026年11月": [
        ["部门", "指标", "实际值"],
        ["SALES_E", "REV", 100.0],
        ["华北大区", "营业收入", 200.5],
    ]
}
XLS_EXPECTED = {("SALES_E", "REV", "2026-11"): 100.0, ("SALES_N", "REV", "2026-11"): 200.5}


def test_legacy_xls(own_file):
    data = legacy_xls(XLS_SHEETS)
    assert data.startswith(OLE_MAGIC)
    assert loads(own_file, "legacy.xls", data) == XLS_EXPECTED


def test_legacy_xls_renamed_to_xlsx(own_file):
    # The bytes decide: an OLE workbook named .xlsx is still read by calamine.
    assert loads(own_file, "renamed.xlsx", legacy_xls(XLS_SHEETS)) == XLS_EXPECTED
