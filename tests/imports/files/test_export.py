"""errors.csv: failed rows as they were, with the reason, safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from service.imports.files import RowError, csv_line, defuse, error_record, errors_header, render_errors_csv
from service.imports.files.values import DATE_MESSAGE
from tests.imports.helpers import read_all, write_csv


@pytest.mark.parametrize(
    ("cell", "safe"),
    [
        ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ('=HYPERLINK("http://evil","x")', '\'=HYPERLINK("http://evil","x")'),
        ("Buy milk", "Buy milk"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_defuse_neutralises_formulas(cell: str, safe: str) -> None:
    assert defuse(cell) == safe


def test_csv_line_quotes_properly_and_defuses_every_cell() -> None:
    line = csv_line(['say "hi"', "a,b", "multi\nline", "=1+1"])
    assert line == '"say ""hi""","a,b","multi\nline",\'=1+1\r\n'
    assert next(csv.reader(io.StringIO(line))) == ['say "hi"', "a,b", "multi\nline", "'=1+1"]


def test_error_rows_are_padded_to_the_header_and_keep_extra_cells() -> None:
    header = ["title", "priority"]
    assert errors_header(header) == ["title", "priority", "error"]
    assert error_record(header, ["a"], "bad") == ["a", "", "bad"]
    assert error_record(header, ["a", "9", "extra"], "bad") == ["a", "9", "bad", "extra"]


def test_a_reuploaded_errors_file_reuses_its_error_column() -> None:
    header = ["title", "priority", "Error"]
    assert errors_header(header) == header
    assert error_record(header, ["a", "9", "old reason"], "new reason") == ["a", "9", "new reason"]


def test_errors_csv_from_a_real_import_can_be_fixed_and_uploaded_again(tmp_path: Path) -> None:
    # Given an import with a formula in a bad row
    path = write_csv(tmp_path, "title,priority,due_date\nok,1,\n=2+3,9,tomorrow\n")
    _valid, errors, _ = read_all(path)
    # When errors.csv is rendered
    text = "".join(render_errors_csv(["title", "priority", "due_date"], errors))
    # Then it starts with a BOM, has one line per failed row with all reasons, and no live formula
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert rows == [
        ["title", "priority", "due_date", "error"],
        ["'=2+3", "9", "tomorrow", f"Priority must be from 1 to 5; {DATE_MESSAGE}"],
    ]
    # And the file itself is accepted by the importer again
    again = write_csv(tmp_path, text, name="errors.csv")
    _, errors_again, _ = read_all(again)
    assert [e.column for e in errors_again] == ["priority", "due_date"]


def test_render_groups_errors_by_row() -> None:
    errors = [
        RowError(2, "priority", "P", "9", ["a", "9"]),
        RowError(2, "title", "T", "", ["a", "9"]),
        RowError(5, None, "R", None, ["b"]),
    ]
    lines = list(render_errors_csv(["title", "priority"], errors))
    assert lines[1:] == ["a,9,P; T\r\n", "b,,R\r\n"]
