"""Excel workbooks (.xlsx via openpyxl, .xls via xlwt, both real files) and hostile or broken ones."""

from __future__ import annotations

import struct
import zipfile
from datetime import date, datetime
from pathlib import Path

import pytest

from service.imports.files import UnreadableFile, biff, excel_guard, open_reader
from tests.imports.helpers import inline_row, messages, read_all, write_bytes, write_raw_xlsx, write_xls, write_xlsx

ROWS = [
    ["Title", "Priority", "Due Date", "Status", "comments"],
    ["Buy milk", 3.0, date(2025, 3, 4), "In Progress", "x"],
    [None, None, None, None, None],  # an empty row: skipped, but still row 3
    [42, 2, datetime(2025, 3, 4, 13, 30), "done", None],
    [True, 2.5, 45000, "todo", None],
]


@pytest.mark.parametrize("writer", [write_xlsx, write_xls], ids=["xlsx", "xls"])
def test_typed_cells_become_task_values(tmp_path: Path, writer) -> None:
    # Given a workbook with numbers, dates, a datetime, a boolean and an empty row
    path = writer(tmp_path, ROWS)
    # When it is read
    with open_reader(path, "xlsx") as reader:
        assert reader.header == ["Title", "Priority", "Due Date", "Status", "comments"]
        assert "Unknown column 'comments' ignored" in reader.warnings
        chunks = list(reader.chunks())
    valid = [row for c in chunks for row in c.valid]
    errors = [e for c in chunks for e in c.errors]
    # Then 3.0 is priority 3, dates are dates, a datetime keeps its date, and the number 42 is the title "42"
    assert valid == [
        ("Buy milk", None, "in_progress", 3, date(2025, 3, 4), None, 2),
        ("42", None, "done", 2, date(2025, 3, 4), None, 4),
    ]
    # And the bad row reports its spreadsheet row number, with cells as text for errors.csv (a plain number
    # in a date column is an Excel serial: 45000 is 2023-03-15)
    assert messages(errors) == [(5, "priority", "Priority must be a whole number from 1 to 5")]
    assert errors[0].raw == ["TRUE", "2.5", "45000", "todo", ""]
    assert chunks[-1].skipped == 1
    assert chunks[-1].progress == 1.0


@pytest.mark.parametrize("writer", [write_xlsx, write_xls], ids=["xlsx", "xls"])
def test_only_the_first_sheet_is_read_and_the_others_are_mentioned(tmp_path: Path, writer) -> None:
    path = writer(tmp_path, [["title"], ["first"]], Archive=[["title"], ["second"]])
    with open_reader(path, "xlsx") as reader:
        assert reader.warnings == ["Only the first sheet 'Tasks' was read; 1 other sheet ignored"]
        valid = [r for c in reader.chunks() for r in c.valid]
    assert [v[0] for v in valid] == ["first"]


def test_rows_above_the_header_keep_spreadsheet_numbering(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path, [[None], [None], ["title", "priority"], ["a", 1], ["b", 7]])
    with open_reader(path, "xlsx") as reader:
        assert reader.header_row == 3
        errors = [e for c in reader.chunks() for e in c.errors]
    assert messages(errors) == [(5, "priority", "Priority must be from 1 to 5")]


def test_a_workbook_without_a_title_column_fails(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFile, match="no 'title' column"):
        open_reader(write_xlsx(tmp_path, [["owner"], ["x"]]), "xlsx")


def test_an_empty_sheet_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFile, match="first sheet is empty"):
        open_reader(write_xlsx(tmp_path, []), "xlsx")


@pytest.mark.parametrize(
    "content",
    [
        b"PK\x03\x04" + bytes(range(256)) * 20,  # a zip header followed by garbage
        b"",
    ],
    ids=["garbage-after-zip-header", "empty"],
)
def test_a_corrupt_workbook_fails_with_a_message_not_a_crash(tmp_path: Path, content: bytes) -> None:
    with pytest.raises(UnreadableFile, match="The workbook could not be read"):
        open_reader(write_bytes(tmp_path, content, "broken.xlsx"), "xlsx")


def test_a_truncated_workbook_fails_with_a_message(tmp_path: Path) -> None:
    whole = write_xlsx(tmp_path, [["title"], *[[f"task {i}"] for i in range(2000)]]).read_bytes()
    path = write_bytes(tmp_path, whole[: len(whole) // 2], "truncated.xlsx")
    with pytest.raises(UnreadableFile, match="The workbook could not be read"):
        open_reader(path, "xlsx")


def test_a_zip_without_a_workbook_fails(tmp_path: Path) -> None:
    path = tmp_path / "photos.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("photo.txt", "not a workbook")
    with pytest.raises(UnreadableFile, match=r"could not be read: xl/workbook\.xml is missing"):
        open_reader(path, "xlsx")


def test_a_corrupt_xls_fails_with_a_message(tmp_path: Path) -> None:
    path = write_bytes(tmp_path, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600, "broken.xls")
    with pytest.raises(UnreadableFile, match="The workbook could not be read"):
        open_reader(path, "xls")


def test_a_password_protected_xlsx_fails_mentioning_the_password(tmp_path: Path) -> None:
    # Given an .xlsx really encrypted by msoffcrypto-tool (an OLE2 file, as Excel writes it)
    from msoffcrypto.format.ooxml import OOXMLFile

    plain = write_xlsx(tmp_path, [["title"], ["secret task"]], name="plain.xlsx")
    encrypted = tmp_path / "locked.xlsx"
    with open(plain, "rb") as source, open(encrypted, "wb") as target:
        OOXMLFile(source).encrypt("hunter2", target)
    # When it is opened, whatever kind the upload was sniffed as
    for kind in ("xls", "xlsx"):
        with pytest.raises(UnreadableFile, match="password-protected"):
            open_reader(encrypted, kind)


def test_a_zip_bomb_is_refused_before_loading(tmp_path: Path) -> None:
    # Given a tiny file whose sheet part unpacks to 200 MB (ratio ~1000:1)
    path = tmp_path / "bomb.xlsx"
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("xl/worksheets/sheet1.xml", "w") as part,
    ):
        for _ in range(200):
            part.write(b" " * (1 << 20))
    assert path.stat().st_size < 1 << 20
    with pytest.raises(UnreadableFile, match=r"too large to import.*unpacks to 200 MB"):
        open_reader(path, "xlsx")


def test_far_away_cells_are_refused_before_calamine_allocates_the_grid(tmp_path: Path) -> None:
    # Given 1 KB claiming A1:XFD1048576 and holding a cell there (calamine would abort the process)
    data = inline_row(1, "title") + '<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>'
    path = write_raw_xlsx(tmp_path, data, dimension="A1:XFD1048576")
    with pytest.raises(UnreadableFile, match=r"spans 1,048,576 rows by 16,384 columns"):
        open_reader(path, "xlsx")


@pytest.mark.parametrize(
    "far_cell",
    [
        '<row r="2"><c r="zz900000"><v>1</v></c></row>',  # lower-case column letters
        '<row r="2"><c s="0" r="XFD9000"><v>1</v></c></row>',  # r is not the first attribute
        '<row r="2">' + "<c><v>1</v></c>" * 1000 + '</row><row r="9000"><c><v>1</v></c></row>',  # no cell refs
        '<row r="2"><c r="A9999999"><v>1</v></c></row><row r="3"><c r="ZZ3"><v>1</v></c></row>',  # out of order
    ],
    ids=["lowercase", "r-not-first", "no-refs", "unsorted"],
)
def test_the_extent_check_is_not_fooled_by_unusual_but_valid_xml(tmp_path: Path, far_cell: str) -> None:
    path = write_raw_xlsx(tmp_path, inline_row(1, "title") + far_cell)
    with pytest.raises(UnreadableFile, match="too large to import"):
        open_reader(path, "xlsx")


def test_a_wrong_dimension_tag_does_not_refuse_a_legitimate_file(tmp_path: Path) -> None:
    # Given a small sheet whose <dimension> claims the whole grid
    data = inline_row(1, "title", "priority") + inline_row(2, "Buy milk", "2")
    path = write_raw_xlsx(tmp_path, data, dimension="A1:XFD1048576")
    valid, errors, _ = read_all(path, "xlsx")
    assert valid == [("Buy milk", None, "todo", 2, None, None, 2)]
    assert errors == []


def test_the_extent_scan_agrees_with_an_openpyxl_file(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path, [["title", "a", "b"], *[[f"t{i}", i, i] for i in range(5000)]])
    assert excel_guard.check_xlsx(path) == excel_guard.SheetExtent(rows=5001, columns=3)


def test_an_xls_beyond_the_size_cap_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_xls(tmp_path, [["title"], ["a"]])
    monkeypatch.setattr(excel_guard, "MAX_XLS_BYTES", 1024)
    with pytest.raises(UnreadableFile, match=r"too large to import: the \.xls file"):
        open_reader(path, "xls")


def _record(kind: int, data: bytes = b"") -> bytes:
    return struct.pack("<HH", kind, len(data)) + data


def _cell(kind: int, row: int, col: int, rest: bytes = b"\x00" * 6) -> bytes:
    return _record(kind, struct.pack("<HHH", row, col, 0) + rest)


def _biff(globals_extra: bytes, *sheets: bytes) -> bytes:
    """A Workbook stream: globals (BOF, a BOUNDSHEET per sheet pointing at it, EOF), then the sheets."""
    bof, eof = _record(0x0809, b"\x00\x06\x05\x00" + b"\x00" * 12), _record(0x000A)
    boundsheet_size = len(_record(0x0085, b"\x00" * 10))
    offset = len(bof) + len(globals_extra) + boundsheet_size * len(sheets) + len(eof)
    entries = b""
    for sheet in sheets:
        entries += _record(0x0085, struct.pack("<IBB", offset, 0, 0) + b"\x02\x00ab")
        offset += len(bof) + len(sheet) + len(eof)
    return bof + globals_extra + entries + eof + b"".join(bof + sheet + eof for sheet in sheets)


def test_the_xls_scan_reads_the_cell_positions_calamine_reads() -> None:
    mulrk = _record(0x00BD, struct.pack("<HH", 9, 2) + b"\x00" * 18 + struct.pack("<H", 4))  # row 9, C..E
    # An embedded chart is a BOF..EOF of its own inside the sheet: what follows it still counts, and so
    # does what is inside it (whether calamine would read it or not, counting it is the safe side).
    chart = _record(0x0809, b"\x00" * 16) + _cell(0x0203, 25, 0) + _record(0x000A)
    first = (
        _cell(0x00FD, 0, 0) + mulrk + chart + _cell(0x0203, 20, 6)
        + _cell(0x0201, 65535, 255) + _record(0x00BE, struct.pack("<HHHHH", 70, 0, 0, 0, 250))  # blanks: ignored
    )  # fmt: skip
    second = _cell(0x027E, 3, 7)
    assert biff._scan_stream(_biff(b"", first, second)) == biff.Workbook(False, [(26, 7), (4, 8)])
    # An encrypted workbook's cell records are ciphered: nothing can be measured, the reader reports it.
    assert biff._scan_stream(_biff(_record(0x002F, b"\x01\x00"), first)) == biff.Workbook(True, [])


def test_a_sheet_pointing_past_the_end_of_the_xls_is_unreadable() -> None:
    stream = _biff(b"", _cell(0x0203, 1, 1))
    broken = stream.replace(struct.pack("<I", stream.index(b"\x09\x08", 4)), struct.pack("<I", 10**6), 1)
    with pytest.raises(biff.NotBiff, match="past the end"):
        biff._scan_stream(broken)


@pytest.mark.parametrize(
    "sheets",
    [
        {"Tasks": [["title", "priority", "due_date"], *[[f"t{i}", i % 5 + 1, date(2026, 1, 1)] for i in range(3000)]]},
        {"Tasks": [[None, None, "title"], [None, None, 1.5], [], [None, None, None, None, "x"]], "More": [["a", 2]]},
        {"Tasks": [["title"]], "Empty": [], "Wide": [[None] * 200 + [1]]},
    ],
    ids=["one-sheet", "offset-and-two-sheets", "empty-and-wide-sheets"],
)
def test_the_xls_scan_agrees_with_calamine_on_every_sheet(tmp_path: Path, sheets: dict[str, list[list]]) -> None:
    from python_calamine import CalamineWorkbook

    first, *others = sheets.items()
    path = write_xls(tmp_path, first[1], **dict(others))
    workbook = CalamineWorkbook.from_path(str(path))
    by_calamine = []
    for index in range(len(workbook.sheet_names)):
        end = workbook.get_sheet_by_index(index).end
        by_calamine.append((end[0] + 1, end[1] + 1) if end else (0, 0))
    assert biff.scan(path) == biff.Workbook(False, by_calamine)


def test_far_cells_on_any_xls_sheet_are_refused_before_calamine_builds_them(tmp_path: Path) -> None:
    far = [[None] * 255 + ["x"] for _ in range(1)]
    path = write_xls(tmp_path, [["title"], ["a"]], Other=[["x"], *([[]] * 65534), *far])
    with pytest.raises(UnreadableFile, match=r"too large to import: its 2 sheets span 16,777,218 cells \(the largest "
                       r"65,536 rows by 256 columns"):  # fmt: skip
        open_reader(path, "xls")
    # Formatting alone (a blank cell with a fill at IV65536) costs calamine nothing, so it does not count.
    import xlwt

    book = xlwt.Workbook()
    sheet = book.add_sheet("Tasks")
    sheet.write(0, 0, "title")
    sheet.write(1, 0, "a")
    sheet.write(65535, 255, None, xlwt.easyxf("pattern: pattern solid;"))
    book.save(str(tmp_path / "styled.xls"))
    assert biff.scan(tmp_path / "styled.xls") == biff.Workbook(False, [(2, 1)])
    assert read_all(tmp_path / "styled.xls", "xls")[0][0][0] == "a"
