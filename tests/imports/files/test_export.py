"""errors.csv lines: failed rows as they were, with the reason, safe to open in a spreadsheet. The whole
file, from a real import and uploaded again, is tests/imports/test_jobs.py."""

from __future__ import annotations

import csv
import io

import pytest

from service.imports.files import csv_line, defuse, error_record, errors_header


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
