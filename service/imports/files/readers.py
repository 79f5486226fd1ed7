"""The importer's entry point: `open_reader(path, kind)` -> a Reader yielding validated chunks.

Pure file reading: no database, no HTTP, no broker. The worker drives it:

    with open_reader(path, kind, options) as reader:  # UnreadableFile -> job failed, str(exc) as its error
        job.warnings = reader.warnings
        for chunk in reader.chunks(size=10_000, skip=job.rows_processed):
            copy(chunk.valid); save(chunk.errors); job.rows_processed = chunk.rows_processed

Counting rule, the same for CSV and Excel: a "data row" is any record after the header row, blank ones
included. `rows_processed` therefore names a position in the file, and `skip=rows_processed` resumes exactly
after the last row of that chunk, whatever mix of valid, failed and blank rows came before it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Protocol

from service.imports.files.csv_reader import CsvReader
from service.imports.files.excel_reader import ExcelReader
from service.imports.files.headers import Options
from service.imports.files.layout import Layout
from service.imports.files.rows import Chunk
from service.imports.files.sniff import Kind


class Reader(Protocol):
    kind: str  # "csv", "xlsx" or "xls" (for Excel, the container found in the file)
    header: list[str]  # the header cells as text, for errors.csv
    header_row: int  # spreadsheet row number of the header (1 unless a title line or blank rows precede it)
    layout: Layout  # the header match, the preset recognised, how each field's values are read
    warnings: list[str]  # e.g. "Unknown column 'notes' ignored"
    total_rows: int | None  # data rows after the header when known up front (Excel), else None (CSV)

    def chunks(self, size: int = 10_000, skip: int = 0) -> Iterator[Chunk]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Reader: ...

    def __exit__(self, *exc: object) -> None: ...


def open_reader(
    path: str | os.PathLike[str], kind: Kind | str, options: Options | None = None, *, whole: bool = True
) -> Reader:
    """Open an uploaded file for import; raise UnreadableFile with a user-facing message if it cannot be
    (MappingError when the client's mapping does not fit the file).

    Everything that can be known before the first row is checked here (encoding, delimiter, header with a
    title column, corrupt/encrypted/oversized workbook), so a job fails before importing anything when it can.
    `whole=False` looks only at the start of a CSV file (a preview, or the checks at upload).
    """
    if kind == "csv":
        return CsvReader(path, options, whole=whole)
    if kind in ("xlsx", "xls"):
        return ExcelReader(path, options)
    raise ValueError(f"unknown file kind {kind!r}")
