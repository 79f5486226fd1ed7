"""CSV files as users produce them: Excel exports, other locales, hand-edited files and broken ones."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from service.imports.files import UnreadableFile, csv_reader, open_reader
from service.imports.files.values import DATE_MESSAGE, PRIORITY_MESSAGE, STATUS_MESSAGE
from tests.imports.helpers import messages, read_all, titles, write_bytes, write_csv


def test_a_plain_csv_comes_out_as_rows_ready_for_copy(tmp_path: Path) -> None:
    # Given a CSV with every column
    path = write_csv(
        tmp_path,
        "title,description,status,priority,due_date,category\n"
        "Buy milk,Semi-skimmed,in_progress,2,2025-03-04,Home\n"
        "Call Bob,,,,,\n",
    )
    # When it is read
    valid, errors, _ = read_all(path)
    # Then each row is (title, description, status, priority, due_date, category, spreadsheet row)
    assert valid == [
        ("Buy milk", "Semi-skimmed", "in_progress", 2, date(2025, 3, 4), "Home", 2),
        ("Call Bob", None, "todo", 3, None, None, 3),  # defaults for empty cells
    ]
    assert errors == []


def test_header_names_are_trimmed_case_insensitive_and_unknown_ones_are_warned_about(tmp_path: Path) -> None:
    path = write_csv(tmp_path, " Title ,PRIORITY, Due Date ,comments,Owner\nBuy milk,1,2025-01-02,x,me\n")
    with open_reader(path, "csv") as reader:
        assert reader.header == [" Title ", "PRIORITY", " Due Date ", "comments", "Owner"]
        assert reader.warnings == ["Unknown column 'comments' ignored", "Unknown column 'Owner' ignored"]
        valid = [row for chunk in reader.chunks() for row in chunk.valid]
    assert valid == [("Buy milk", None, "todo", 1, date(2025, 1, 2), None, 2)]


def test_a_file_without_a_title_column_fails_with_a_message_naming_what_was_found(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "owner,priority\nBob,1\n")
    with pytest.raises(UnreadableFile, match=r"no 'title' column.*Found: 'owner', 'priority'"):
        open_reader(path, "csv")


@pytest.mark.parametrize("content", [b"", b"\n\n  \n", b"\xef\xbb\xbf"])
def test_an_empty_file_fails_clearly(tmp_path: Path, content: bytes) -> None:
    with pytest.raises(UnreadableFile, match="empty"):
        open_reader(write_bytes(tmp_path, content), "csv")


def test_a_repeated_column_is_not_an_error_the_first_is_used_and_the_other_named(tmp_path: Path) -> None:
    with open_reader(write_csv(tmp_path, "title,Title\na,b\n"), "csv") as reader:
        assert reader.warnings == ["Column 'Title' also looks like title; 'title' is used"]
        assert [v[0] for c in reader.chunks() for v in c.valid] == ["a"]


@pytest.mark.parametrize(("delimiter", "name"), [(",", "comma"), (";", "semicolon"), ("\t", "tab"), ("|", "pipe")])
def test_the_delimiter_is_detected(tmp_path: Path, delimiter: str, name: str) -> None:
    # Given the same file written with each delimiter, with the other candidates inside the values
    header = delimiter.join(["title", "description", "priority"])
    row = delimiter.join(['"Milk, eggs; bread | tea"', "a\tb" if delimiter != "\t" else "ab", "4"])
    path = write_csv(tmp_path, f"{header}\n{row}\n")
    # When read, the delimiter is found and values are intact
    with open_reader(path, "csv") as reader:
        assert reader.delimiter == delimiter, name
        valid = [r for c in reader.chunks() for r in c.valid]
    assert valid[0][0] == "Milk, eggs; bread | tea"
    assert valid[0][3] == 4


def test_a_single_column_file_with_commas_in_titles_is_not_split(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "title\nBuy milk, eggs\nCall Bob\n")
    valid, errors, _ = read_all(path)
    assert titles(valid) == ["Buy milk, eggs", "Call Bob"]
    assert errors == []


def test_utf8_with_bom_crlf_and_quoted_newlines(tmp_path: Path) -> None:
    # Given Excel's "CSV UTF-8": BOM, CRLF, a value with a line break inside quotes
    path = write_bytes(
        tmp_path,
        '\ufefftitle,description\r\nCafé crème,"line one\r\nline two"\r\nNext,\r\n'.encode(),
    )
    valid, errors, _ = read_all(path)
    # Then the BOM is not part of the header, and the quoted record is one row (row 2); the next is row 3
    assert [(v[0], v[1], v[6]) for v in valid] == [("Café crème", "line one\r\nline two", 2), ("Next", None, 3)]
    assert errors == []


def test_windows_1252_is_used_when_the_bytes_are_not_utf8(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "title,category\nCafé “special” \u2013 5€,Küche\n", encoding="cp1252")
    with open_reader(path, "csv") as reader:
        assert reader.encoding == "cp1252"
        valid = [r for c in reader.chunks() for r in c.valid]
    assert (valid[0][0], valid[0][5]) == ("Café “special” \u2013 5€", "Küche")


def test_the_encoding_is_decided_from_the_whole_file_before_any_row(tmp_path: Path) -> None:
    # Given 3 MB of ASCII and a single cp1252 byte at the very end
    body = "".join(f"Task {i}\n" for i in range(300_000))
    path = write_bytes(tmp_path, ("title\n" + body).encode() + b"Caf\xe9\n")
    # Then the whole file is read as cp1252 (no switch half-way), and the last row is right
    with open_reader(path, "csv") as reader:
        assert reader.encoding == "cp1252"
        last = [r for c in reader.chunks(size=100_000) for r in c.valid][-1]
    assert last[0] == "Café"


def test_bytes_that_are_neither_utf8_nor_windows_1252_fail(tmp_path: Path) -> None:
    # 0x81 is invalid UTF-8 here and has no character in cp1252
    path = write_bytes(tmp_path, b"title\nok\nbad \x81 byte\n")
    with pytest.raises(UnreadableFile, match="not text in UTF-8 or Windows-1252"):
        open_reader(path, "csv")


def test_nul_bytes_fail_with_the_line(tmp_path: Path) -> None:
    path = write_bytes(tmp_path, b"title\nok\nbad\x00value\n")
    with pytest.raises(UnreadableFile, match=r"NUL bytes \(line 3\)"):
        open_reader(path, "csv")


def test_blank_lines_are_skipped_but_still_count_toward_row_numbers(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "\ntitle,priority\nA,1\n\n,\n  ,  \nB,9\n")
    with open_reader(path, "csv") as reader:
        assert reader.header_row == 2  # a blank line above the header is row 1
        chunks = list(reader.chunks())
    assert [(v[0], v[6]) for v in chunks[0].valid] == [("A", 3)]
    assert messages(chunks[0].errors) == [(7, "priority", "Priority must be from 1 to 5")]
    assert (chunks[0].rows, chunks[0].skipped, chunks[0].failed, chunks[0].rows_processed) == (5, 3, 1, 5)


def test_ragged_rows_short_ones_are_padded_long_ones_are_errors(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "title,description,priority\nShort\nTrailing,x,2,,\nLong,x,2,oops\n")
    valid, errors, _ = read_all(path)
    assert [(v[0], v[3]) for v in valid] == [("Short", 3), ("Trailing", 2)]  # empty extra cells are harmless
    assert len(errors) == 1
    error = errors[0]
    assert (error.row, error.column) == (4, None)
    assert "4 cells but the header has 3 columns" in error.message
    assert error.raw == ["Long", "x", "2", "oops"]


def test_each_bad_field_is_its_own_error_with_the_row_and_the_original_cells(tmp_path: Path) -> None:
    long_title = "x" * 201
    path = write_csv(
        tmp_path,
        f"title,status,priority,due_date,category\n{long_title},someday,highish,next week,{'c' * 101}\n ,done,1,,\n",
    )
    valid, errors, _ = read_all(path)
    assert valid == []
    assert messages(errors) == [
        (2, "title", "Title must be at most 200 characters"),
        (2, "status", STATUS_MESSAGE),
        (2, "priority", PRIORITY_MESSAGE),
        (2, "due_date", DATE_MESSAGE),
        (2, "category", "Category must be at most 100 characters"),
        (3, "title", "Title must not be empty"),
    ]
    assert errors[0].raw == [long_title, "someday", "highish", "next week", "c" * 101]
    assert errors[0].value == "x" * 99 + "…"  # shortened for display; raw keeps everything
    assert errors[2].value == "highish"


def test_a_description_over_10000_characters_is_a_row_error(tmp_path: Path) -> None:
    path = write_csv(tmp_path, f"title,description\nok,{'d' * 10_000}\ntoo long,{'d' * 10_001}\n")
    valid, errors, _ = read_all(path)
    assert titles(valid) == ["ok"]
    assert messages(errors) == [(3, "description", "Description must be at most 10000 characters")]


def test_spreadsheet_style_values_are_coerced_before_the_rules(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "title,status,priority,due_date,category,description\n"
        " Padded title ,In Progress,3.0, 2025-12-31 ,  Work  ,   \n"
        "b, DONE ,+5,,,\n"
        "c,in-progress, 1 ,,,\n"
        "d,todo,2.5,,,\n",
    )
    valid, errors, _ = read_all(path)
    assert valid[:3] == [
        ("Padded title", None, "in_progress", 3, date(2025, 12, 31), "Work", 2),
        ("b", None, "done", 5, None, None, 3),
        ("c", None, "in_progress", 1, None, None, 4),
    ]
    assert messages(errors) == [(5, "priority", "Priority must be a whole number from 1 to 5")]


def test_a_quote_that_never_closes_fails_naming_the_row(tmp_path: Path) -> None:
    # Given a stray quote that swallows the rest of a file larger than the field limit
    rows = "".join(f"row {i}\n" for i in range(200_000))
    path = write_csv(tmp_path, f'title\nok\n"unclosed\n{rows}')
    with open_reader(path, "csv") as reader:
        chunks = reader.chunks(size=1)
        assert next(chunks).valid[0][0] == "ok"
        with pytest.raises(UnreadableFile, match=r"Row 3 could not be read as CSV: .*quote"):
            next(chunks)


def test_a_100_mb_line_is_refused_after_reading_only_its_first_mebibytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a CSV made of one 100 MB line
    path = tmp_path / "huge.csv"
    with open(path, "wb") as f:
        f.write(b"title,")
        block = b"x" * (1 << 20)
        for _ in range(100):
            f.write(block)
    # When it is opened, counting the bytes the reader takes from the file
    taken: list[int] = []

    class Counted:
        def __init__(self, file: BinaryIO) -> None:
            self.file = file

        def __enter__(self) -> Counted:
            return self

        def __exit__(self, *exc: object) -> None:
            self.file.close()

        def read(self, size: int = -1) -> bytes:
            data = self.file.read(size)
            taken.append(len(data))
            return data

    def counted_open(*args: Any, **kwargs: Any) -> Counted:
        return Counted(open(*args, **kwargs))

    monkeypatch.setattr(csv_reader, "open", counted_open, raising=False)
    with pytest.raises(UnreadableFile) as refused:
        open_reader(path, "csv")
    # Then it is refused with a clear reason, once the line passed the limit: the rest of the file is never
    # read, so no more than the limit and the block read past it is ever held
    assert str(refused.value) == "Line 1 is longer than 4 MiB: this does not look like a task list."
    assert sum(taken) <= csv_reader.MAX_LINE_BYTES + 2 * csv_reader.BLOCK_BYTES
