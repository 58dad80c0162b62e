"""A long sheet is parsed in pieces side by side (xlsx._pieces / xlsx._join_pieces): the grid
must be exactly the one a whole read gives, wherever the cuts fall."""

from __future__ import annotations

import io
import re
import zipfile
from datetime import date, datetime

import pytest

from kpi_core import access
from kpi_core.ingest import files, intake, xlsx
from kpi_core.warehouse import Warehouse
from tests.test_intake_files import PARTS, TODAY, x_sheet, x_text, zip_of
from tests.test_intake_files import xlsx as workbook


def read(data: bytes, monkeypatch, pieces: int) -> tuple[list[files.Table], list[bool]]:
    """The tables, and for each piece read whether it was read in pieces (not read whole)."""
    split = []
    real = xlsx._join_pieces

    def spy(*a, **kw):
        got = real(*a, **kw)
        split.append(got is not None)
        return got

    with monkeypatch.context() as m:
        m.setattr(xlsx, "SPLIT_BYTES", 1 if pieces > 1 else 10**12)
        m.setattr(xlsx, "_cores", lambda: pieces)
        m.setattr(xlsx, "_join_pieces", spy)
        return files.read_file("cut.xlsx", data), split


def same_as_whole(data: bytes, monkeypatch, pieces: int = 3) -> list[files.Table]:
    whole, split = read(data, monkeypatch, 1)
    assert split == []
    cut, split = read(data, monkeypatch, pieces)
    assert split and all(split), "the sheet was not read in pieces"
    for a, b in zip(whole, cut, strict=True):
        assert (a.sheet, a.merged, a.formulas_without_values) == (
            b.sheet, b.merged, b.formulas_without_values
        )  # fmt: skip
        assert len(a.rows) == len(b.rows)
        for i, (ra, rb) in enumerate(zip(a.rows, b.rows, strict=True)):
            assert ra == rb, f"row {i + 1}"
    return cut


def long_rows(n: int) -> list[list[object]]:
    rows = [["期间", "组织", "指标编码", "实际值"]]
    for i in range(n):
        rows.append([date(2026, 1 + i % 9, 1), " SALES_E ", "REV", 1000.5 + i])
    return rows


@pytest.mark.parametrize("pieces", [2, 3, 7])
def test_a_long_sheet_cut_in_pieces_reads_as_the_whole(monkeypatch, pieces):
    same_as_whole(workbook({"Actuals": long_rows(500)}), monkeypatch, pieces)


def test_gaps_widths_and_offsets_across_the_cuts(monkeypatch):
    # Rows far apart, a later block that starts in column C, a note in column H near the end,
    # and a first block narrower than the rest: each piece has its own first cell and width.
    rows: list[list[object]] = [["period", "unit", "kpi", "value"]]
    rows += [["2026-01", "SALES_E", "REV", i] for i in range(200)]
    rows += [[] for _ in range(300)]  # nothing written for these rows
    rows += [[None, None, "REV", i, "x"] for i in range(200)]
    rows += [[None] * 7 + ["note"]]
    cut = same_as_whole(workbook({"Gaps": rows}), monkeypatch, 4)
    grid = cut[0].rows
    assert len(grid) == len(rows) and {len(r) for r in grid} == {8}
    assert grid[1] == ["2026-01", "SALES_E", "REV", 0, None, None, None, None]  # stripped, padded
    assert grid[-1][7] == "note"


def test_merged_ranges_errors_and_formulas_of_a_cut_sheet(monkeypatch):
    rows = long_rows(400)
    rows[350][3] = "=D2*2"  # openpyxl saves no result: a formula without a value
    rows[380][3] = "#DIV/0!"
    data = workbook({"Actuals": rows}, {"Actuals": ["A395:B396"]})
    (table,) = same_as_whole(data, monkeypatch)
    assert table.merged == [(394, 0, 395, 1)]
    assert table.formulas_without_values == ["D351"]
    assert table.rows[380][3] == "#DIV/0!"


def test_a_small_sheet_beside_a_long_one(monkeypatch):
    data = workbook({"说明": [["填写说明"], ["每月一行"]], "Actuals": long_rows(300)})
    notes, actuals = same_as_whole(data, monkeypatch)
    assert notes.rows == [["填写说明"], ["每月一行"]]
    assert actuals.rows[1][0] == datetime(2026, 1, 1).date()


def sheet_xml(data: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return z.read("xl/worksheets/sheet1.xml").decode()


def with_sheet_xml(data: bytes, xml: str) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        members = {i.filename: z.read(i.filename) for i in z.infolist()}
    return zip_of({**members, "xl/worksheets/sheet1.xml": xml.encode()})


def test_rows_written_out_of_order_are_read_whole(monkeypatch):
    # Some writers do not keep rows in order; pieces would overlap, so the sheet is read whole.
    data = workbook({"Actuals": long_rows(300)})
    xml = sheet_xml(data)
    rows = re.findall(r'<row r="\d+".*?</row>', xml)
    moved = xml.replace(rows[-1], "").replace(rows[1], rows[-1] + rows[1])
    data = with_sheet_xml(data, moved)
    whole, _ = read(data, monkeypatch, 1)
    cut, split = read(data, monkeypatch, 3)
    assert split == [False]
    assert cut[0].rows == whole[0].rows and whole[0].rows[-1][3] == 1000.5 + 299


def test_rows_without_numbers_are_not_cut(monkeypatch):
    # Without `r` on each row, calamine counts rows from the start of what it reads.
    data = workbook({"Actuals": long_rows(300)})
    data = with_sheet_xml(data, re.sub(r'<row r="\d+"', "<row", sheet_xml(data)))
    whole, _ = read(data, monkeypatch, 1)
    cut, split = read(data, monkeypatch, 3)
    assert split == []
    assert cut[0].rows == whole[0].rows and len(whole[0].rows) == 301


def test_rows_numbered_only_now_and_then_read_as_the_whole(monkeypatch):
    # calamine numbers a row without `r` from the row before it: every fourth row and every
    # cell unnumbered still reads the same in pieces, as long as each piece starts at a row
    # with its number. Where a cut would fall on an unnumbered row, the sheet is read whole.
    data = workbook({"Actuals": long_rows(300)})
    xml = sheet_xml(data)
    odd = iter(range(10**6))
    xml = re.sub(r'<row r="\d+"', lambda m: '<row spans="1:4"' if next(odd) % 4 == 1 else m[0], xml)
    xml = re.sub(r'<c r="[A-Z]+\d+"', "<c", xml)
    data = with_sheet_xml(data, xml)
    whole, _ = read(data, monkeypatch, 1)
    assert len(whole[0].rows) == 301 and whole[0].rows[-1][3] == 1000.5 + 299
    cut_at = []
    for pieces in range(2, 12):
        cut, split = read(data, monkeypatch, pieces)
        assert cut[0].rows == whole[0].rows, f"{pieces} pieces"
        cut_at.append(split)
    assert [True] in cut_at and [] in cut_at  # both ways were tried


def test_a_sheet_with_prefixed_tags_is_cut_too(monkeypatch):
    rows = [x_row(1, x_text("A1", "期间"), x_text("B1", "组织"), x_text("C1", "指标编码"),
                  x_text("D1", "实际值"))]  # fmt: skip
    for r in range(2, 402):
        rows.append(x_row(r, x_text(f"A{r}", "2026-03"), x_text(f"B{r}", "SALES_E"),
                          x_text(f"C{r}", "REV"), b'<x:c r="D%d"><x:v>%d</x:v></x:c>' % (r, r)))  # fmt: skip
    data = zip_of({**PARTS, "xl/worksheets/sheet1.xml": x_sheet(*rows)})
    cut = same_as_whole(data, monkeypatch, 3)
    assert len(cut[0].rows) == 401 and cut[0].rows[-1] == ["2026-03", "SALES_E", "REV", 401]


def x_row(r: int, *cells: bytes) -> bytes:
    return b'<x:row r="%d">' % r + b"".join(cells) + b"</x:row>"


def test_too_many_rows_in_a_later_piece(monkeypatch):
    data = workbook({"Actuals": long_rows(300)})
    monkeypatch.setattr(xlsx, "SPLIT_BYTES", 1)
    monkeypatch.setattr(xlsx, "_cores", lambda: 3)
    with pytest.raises(files.FileError, match="has 301 rows; the limit is 250"):
        files.read_file("cut.xlsx", data, files.Limits(max_rows=250))


def test_an_intake_of_pieces_is_the_intake_of_the_whole(own_file, monkeypatch):
    rows = [["期间", "组织", "指标编码", "实际值"]]
    for m in range(1, 10):
        for unit in ("SALES_E", "SALES_N", "SALES_S"):
            for kpi, v in (("REV", 1_000_000 + m), ("ORDERS", 100 + m), ("NEW_CUST", "12")):
                rows.append([f"2026-{m:02d}", unit, kpi, v])
    rows.append(["2026-09", "SALES_E", "NOPE", 1])
    data = workbook({"Actuals": rows})
    wh = Warehouse(own_file, linger=0)
    try:
        got = {}
        for pieces in (1, 3):
            with monkeypatch.context() as m:
                m.setattr(xlsx, "SPLIT_BYTES", 1 if pieces > 1 else 10**12)
                m.setattr(xlsx, "_cores", lambda n=pieces: n)
                got[pieces] = intake.prepare(wh, [("cut.xlsx", data)], access.SYSTEM, today=TODAY)
    finally:
        wh.close()
    whole, cut = got[1], got[3]
    assert cut.findings == whole.findings and len(cut.errors) == 1
    assert cut.rows.equals(whole.rows) and cut.diff.equals(whole.diff)
    assert cut.counts == whole.counts and cut.counts["invalid"] == 1
