"""Pure helpers for errors.csv: the rows that failed, as they were, plus an `error` column, ready to fix
and upload again.

Formula injection: a cell starting with = + - @ (or tab / carriage return, which some spreadsheet apps
strip before evaluating) is prefixed with a single quote, the OWASP recommendation. A spreadsheet shows
the text instead of running it. The price: a legitimate "-5" or "@home" comes back as "'-5" / "'@home",
and if the file is uploaded again unchanged the quote becomes part of the value. We accept that: this file
comes from our server, so it must never be able to run something on the user's machine.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from service.imports.files.headers import normalise

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
ERROR_COLUMN = "error"
BOM = "\ufeff"  # write first so Excel opens the UTF-8 file as UTF-8


def defuse(cell: str) -> str:
    return "'" + cell if cell.startswith(FORMULA_TRIGGERS) else cell


def csv_line(cells: Iterable[str]) -> str:
    """One CSV record, CRLF-terminated, quoted where needed, every cell defused."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow([defuse(c) for c in cells])
    return buffer.getvalue()


def error_column_index(header: list[str]) -> int | None:
    """Where an existing `error` column is (a re-uploaded errors.csv): reuse it rather than add another."""
    for i, cell in enumerate(header):
        if normalise(cell) == ERROR_COLUMN:
            return i
    return None


def errors_header(header: list[str]) -> list[str]:
    return list(header) if error_column_index(header) is not None else [*header, ERROR_COLUMN]


def error_record(header: list[str], raw: list[str], message: str) -> list[str]:
    """The cells of one errors.csv line: the row as it was, padded to the header, with the message in `error`.

    Cells beyond the header (a ragged row) are kept, after the `error` column, so nothing the user typed is lost.
    """
    at = error_column_index(header)
    if at is not None:
        cells = [*raw, *[""] * (len(header) - len(raw))]
        cells[at] = message
        return cells
    width = len(header)
    cells = [*raw[:width], *[""] * (width - len(raw)), message]
    return cells + raw[width:]
