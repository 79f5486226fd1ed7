"""What the upload endpoint decides before storing a file: its kind (or 415) and a safe name."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from service.imports.files import SNIFF_BYTES, UnsupportedFile, safe_filename, sniff
from tests.imports.helpers import write_xls, write_xlsx


def head(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(SNIFF_BYTES)


def test_each_accepted_kind_is_recognised_by_name_and_content(tmp_path: Path) -> None:
    xlsx = write_xlsx(tmp_path, [["title"], ["a"]])
    xls = write_xls(tmp_path, [["title"], ["a"]])
    assert sniff("Tasks.XLSX", head(xlsx), xlsx) == "xlsx"
    assert sniff("tasks.xls", head(xls)) == "xls"
    assert sniff("tasks.csv", b"title\nBuy milk\n") == "csv"
    assert sniff("tasks.csv", "title\nCafé\n".encode("cp1252")) == "csv"
    assert sniff("tasks.csv", "title\nCafé\n".encode()[:-2]) == "csv"  # a head cut inside a character
    # Excel's "Unicode Text": UTF-16 with a BOM, tab-delimited, saved as .txt
    assert sniff("tasks.txt", b"\xff\xfe" + "Title\tDue\r\nCafé\t\r\n".encode("utf-16-le")) == "csv"
    assert sniff("tasks.tsv", b"\xfe\xff" + "Title\tDue\r\n".encode("utf-16-be")) == "csv"


def test_a_password_protected_xlsx_is_accepted_as_excel(tmp_path: Path) -> None:
    # An encrypted .xlsx is an OLE2 file: accepted here, refused later by the reader with the reason.
    assert sniff("locked.xlsx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100) == "xls"


def test_the_kind_follows_the_content_for_excel_names(tmp_path: Path) -> None:
    xlsx = write_xlsx(tmp_path, [["title"]])
    assert sniff("old-name.xls", head(xlsx), xlsx) == "xlsx"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("tasks.exe", b"MZ\x90\x00", "Only .csv, .xlsx and .xls"),
        ("tasks", b"title\n", "without an extension"),
        ("tasks.csv", b"MZ\x90\x00\x03\x00", "not text (it looks like a Windows program)"),
        ("tasks.csv", b"\x89PNG\r\n\x1a\n\x00\x00", "not text (it looks like a PNG image)"),
        ("tasks.csv", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "not text (it looks like a PDF document)"),
        ("tasks.csv", b"PK\x03\x04\x14\x00", "not text (it looks like a zip archive)"),
        ("tasks.csv", b"title\x00\x00", "contains NUL bytes"),
        ("tasks.csv", b"\xff\xfe\x00\xd8t\x00", "not UTF-16 text"),
        ("tasks.csv", b"title\n\x81\x8d\xc3", "not text in UTF-8 or Windows-1252"),
        ("tasks.xlsx", b"%PDF-1.7\n", "not an Excel workbook (it looks like a PDF document)"),
        ("tasks.xlsx", b"\x89PNG\r\n\x1a\n", "not an Excel workbook (it looks like a PNG image)"),
        ("tasks.xls", b"title\tpriority\nBuy milk\t1\n", "it looks like text). Save it from Excel as .xlsx"),
        ("report.pdf", b"%PDF-1.7", "This file is named .pdf"),
    ],
)
def test_other_files_are_refused_with_a_clear_reason(name: str, content: bytes, message: str) -> None:
    with pytest.raises(UnsupportedFile, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        sniff(name, content)


def test_a_zip_without_a_workbook_is_refused_when_the_path_is_given(tmp_path: Path) -> None:
    path = tmp_path / "renamed.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("holiday.jpg", b"\xff\xd8\xff")
    with pytest.raises(UnsupportedFile, match="zip archive without an Excel workbook"):
        sniff("renamed.xlsx", head(path), path)


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\Windows\\win.ini", "win.ini"),
        ("/abs/path/tasks.CSV", "tasks.csv"),
        ("tasks\x00.csv.exe", "tasks.csv.exe"),
        ("evil\u202etxt.csv", "eviltxt.csv"),  # right-to-left override removed
        ("tâches été 2025.xlsx", "tâches été 2025.xlsx"),
        ("任务列表.csv", "任务列表.csv"),
        ("..", "upload"),
        ("", "upload"),
        (".csv", "upload.csv"),
        ("$(rm -rf ~);`x`|y>z.csv", "(rm -rf_)_x_y_z.csv"),
        ("  .hidden  .csv", "hidden.csv"),
    ],
)
def test_safe_filename(name: str, safe: str) -> None:
    assert safe_filename(name) == safe


def test_safe_filename_bounds_length_and_keeps_the_extension() -> None:
    name = safe_filename("a" * 5000 + ".xlsx")
    assert name.endswith(".xlsx")
    assert len(name) <= 100
    wide = safe_filename("é" * 300 + ".csv")
    assert wide.endswith(".csv")
    assert len(wide.encode()) <= 150
