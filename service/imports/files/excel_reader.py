"""Excel reader (.xlsx and .xls) on python-calamine: the first sheet, typed cells, chunks like the CSV reader.

calamine (Rust) reads a sheet many times faster than openpyxl's read-only mode (tests/perf/bench_readers.py
measures by how much) but holds the whole sheet in memory, so `excel_guard` bounds the sheet before it is loaded.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from itertools import islice

from python_calamine import CalamineWorkbook, PasswordError

from service.imports.files import excel_guard
from service.imports.files.cells import is_blank
from service.imports.files.exceptions import EmptyFile, UnreadableFile
from service.imports.files.headers import HEADER_SEARCH_ROWS, Options
from service.imports.files.layout import SAMPLE_ROWS, plan
from service.imports.files.rows import Chunk, check_rows, make_checker
from service.imports.files.sniff import OLE2_MAGIC

ENCRYPTED_MESSAGE = "The workbook is password-protected. Remove the password (or save a copy without one) and retry."
# Streams of an OLE2 file that wraps an encrypted .xlsx, as names in its directory (UTF-16LE).
_ENCRYPTED_STREAMS = ("EncryptedPackage".encode("utf-16-le"), "EncryptionInfo".encode("utf-16-le"))


class ExcelReader:
    def __init__(self, path: str | os.PathLike[str], options: Options | None = None) -> None:
        self.path = os.fspath(path)
        with open(self.path, "rb") as f:
            magic = f.read(len(OLE2_MAGIC))
        # The container decides, not the name: an encrypted .xlsx is an OLE2 file like an .xls.
        self.kind = "xls" if magic == OLE2_MAGIC else "xlsx"
        if self.kind == "xls":
            excel_guard.check_xls(self.path)
        else:
            excel_guard.check_xlsx(self.path)
        self._workbook, self._sheet = self._load()
        self.warnings: list[str] = []
        names = self._workbook.sheet_names
        if len(names) > 1:
            others = len(names) - 1
            self.warnings.append(
                f"Only the first sheet '{names[0]}' was read; {others} other sheet{'s' * (others > 1)} ignored"
            )
        # iter_rows() starts at the sheet's row 1 even when `start` says the data begins lower (python-calamine
        # 0.9 does), so the n-th row it yields is spreadsheet row n; columns start at the data.
        end = self._sheet.end
        self._height = end[0] + 1 if end else 0
        # The header is searched in the first rows, and slash-date orders decided from the rows after it.
        first = list(islice(self._sheet.iter_rows(), HEADER_SEARCH_ROWS + SAMPLE_ROWS))  # type: ignore[attr-defined]
        if all(is_blank(cells) for cells in first):
            raise EmptyFile("The first sheet is empty: a header row with a title column is required.")
        self.layout = plan(first, options)
        self.header: list[str] = self.layout.header
        self.header_row = self.layout.header_row
        self._header_index = self.header_row - 1
        self.warnings.extend(self.layout.warnings)
        self.total_rows: int | None = max(self._height - self.header_row, 0)
        self._check = make_checker(self.layout)

    def _load(self) -> tuple[CalamineWorkbook, object]:
        try:
            workbook = CalamineWorkbook.from_path(self.path)
            if not workbook.sheet_names:
                raise UnreadableFile("The workbook has no sheets.")
            return workbook, workbook.get_sheet_by_index(0)
        except UnreadableFile:
            raise
        except PasswordError:
            raise UnreadableFile(ENCRYPTED_MESSAGE) from None
        except BaseException as exc:  # calamine errors, and pyo3's PanicException which is a BaseException
            if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit | MemoryError):
                raise
            if self.kind == "xls" and _is_encrypted_package(self.path):
                raise UnreadableFile(ENCRYPTED_MESSAGE) from None
            if "password" in str(exc).lower() or "encrypt" in str(exc).lower():
                raise UnreadableFile(ENCRYPTED_MESSAGE) from None
            raise UnreadableFile(f"The workbook could not be read: {_first_line(exc)}.") from None

    def close(self) -> None:
        workbook = getattr(self, "_workbook", None)
        if workbook is not None:
            self._sheet = None
            with contextlib.suppress(Exception):  # already closed
                workbook.close()
            self._workbook = None

    def __enter__(self) -> ExcelReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def chunks(self, size: int = 10_000, skip: int = 0) -> Iterator[Chunk]:
        """Same contract as CsvReader.chunks: data rows after the header, blank rows included in counts."""
        if size < 1 or skip < 0:
            raise ValueError("size must be >= 1 and skip >= 0")
        if self._sheet is None:
            raise ValueError("the reader is closed")
        check = self._check
        total = self.total_rows or 0
        rows = self._sheet.iter_rows()  # type: ignore[attr-defined]
        layout = self.layout
        layout.section[0] = ""
        consumed = sum(1 for _ in islice(rows, self._header_index + 1))
        for cells in islice(rows, skip):
            layout.track(cells)
            consumed += 1
        consumed = max(consumed - self._header_index - 1, 0)
        row = self.header_row + consumed
        while True:
            chunk = check_rows(rows, size, row, check)
            if not chunk.rows:
                return
            row += chunk.rows
            chunk.rows_processed = row - self.header_row
            chunk.progress = min(chunk.rows_processed / total, 1.0) if total else 1.0
            yield chunk


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200].rstrip(".")


def _is_encrypted_package(path: str) -> bool:
    """True for an OLE2 file whose directory names the streams of an encrypted Office Open XML package.

    A byte search over at most the xls size cap (already checked): directory entries store names in
    UTF-16LE, and a legitimate .xls that calamine could not read anyway is the only false-positive risk.
    """
    with open(path, "rb") as f:
        data = f.read(excel_guard.MAX_XLS_BYTES)
    return all(name in data for name in _ENCRYPTED_STREAMS)
