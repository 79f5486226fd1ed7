"""Decide at upload what kind of file this is, by its name AND its first bytes.

Pure: takes the client's filename and the first `SNIFF_BYTES` of the body; optionally the stored path, so
an .xlsx can be confirmed by its zip central directory (the workbook part is often stored at the end of
the archive, beyond any head we could read).
"""

from __future__ import annotations

import codecs
import os
import zipfile
from typing import Literal

from service.imports.files.excel_guard import zip_parts
from service.imports.files.exceptions import UnsupportedFile

Kind = Literal["csv", "xlsx", "xls"]

SNIFF_BYTES = 8192
OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP_MAGIC = b"PK\x03\x04"
# Bytes 0x81 0x8D 0x8F 0x90 0x9D have no character in Windows-1252: text holding them is neither encoding.
CP1252_UNDEFINED = b"\x81\x8d\x8f\x90\x9d"
# .tsv and .txt: tab-delimited text, which is what Excel's "Unicode Text" (UTF-16) saves as .txt.
EXTENSIONS: dict[str, Kind] = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".xlsx": "xlsx", ".xls": "xls"}
ALLOWED = "Only .csv, .xlsx and .xls files (and tab-delimited .tsv or .txt text) can be imported."

# Well-known binary signatures, to name what was uploaded instead of a vague refusal.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"MZ", "a Windows program"),
    (b"\x7fELF", "a program"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (ZIP_MAGIC, "a zip archive"),
    (OLE2_MAGIC, "an Office document"),
)


def extension(filename: str) -> str:
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    dot = base.rfind(".")
    return base[dot:].strip().lower() if dot > 0 else ""


def sniff(filename: str, head: bytes, path: str | os.PathLike[str] | None = None) -> Kind:
    """Return "csv", "xlsx" or "xls" for an acceptable upload, else raise UnsupportedFile (HTTP 415).

    The kind follows the content: an OLE2 file named .xlsx (which is what Excel makes of a password-protected
    .xlsx) comes back as "xls" and `open_reader` then reports the password. Pass `path` once the upload is
    stored to confirm a zip really holds a workbook; without it only the head is checked.
    """
    ext = extension(filename)
    if ext not in EXTENSIONS:
        raise UnsupportedFile(f"{ALLOWED} This file is named {ext or 'without an extension'}.")
    if EXTENSIONS[ext] == "csv":
        _check_text(head)
        return "csv"
    if head.startswith(OLE2_MAGIC):
        return "xls"
    if head.startswith(ZIP_MAGIC):
        if path is not None and not _zip_holds_workbook(path):
            raise UnsupportedFile(f"This {ext} file is a zip archive without an Excel workbook in it.")
        return "xlsx"
    what = _what(head)
    hint = " Save it from Excel as .xlsx, or as .csv if it is text." if what == "text" else ""
    raise UnsupportedFile(f"This {ext} file is not an Excel workbook (it looks like {what}).{hint}")


def _check_text(head: bytes) -> None:
    for bom, codec in ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        if head.startswith(bom):  # Excel's "Unicode Text": every ASCII character has a NUL byte
            try:
                codecs.getincrementaldecoder(codec)().decode(head[len(bom) :], final=False)
            except UnicodeDecodeError:
                raise UnsupportedFile("This text file starts like UTF-16 but is not UTF-16 text.") from None
            return
    for magic, what in _SIGNATURES:
        if head.startswith(magic):
            raise UnsupportedFile(f"This .csv file is not text (it looks like {what}).")
    if b"\x00" in head:
        raise UnsupportedFile("This .csv file is not text: it contains NUL bytes.")
    if not _decodes(head):
        raise UnsupportedFile("This .csv file is not text in UTF-8 or Windows-1252.")


def _decodes(head: bytes) -> bool:
    try:
        # final=False: the head may end in the middle of a multi-byte character.
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return True
    except UnicodeDecodeError:
        return not any(b in head for b in CP1252_UNDEFINED)


def _what(head: bytes) -> str:
    for magic, what in _SIGNATURES:
        if head.startswith(magic):
            return what
    if head and b"\x00" not in head and _decodes(head):
        return "text"
    return "some other kind of file"


def _zip_holds_workbook(path: str | os.PathLike[str]) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return "xl/workbook.xml" in zip_parts(archive)
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
