"""Streaming CSV reader: encoding and delimiter decided up front, rows read in chunks with flat memory.

Before any row is yielded, one pass over the bytes in 1 MiB blocks settles what would otherwise fail half-way
through an import: the encoding (UTF-8, with or without BOM, else Windows-1252; never a switch after rows were
imported), NUL bytes, and lines too long to be a task list (which also bounds the memory the csv module uses).
"""

from __future__ import annotations

import codecs
import csv
import io
import os
from collections.abc import Iterator
from itertools import islice

from service.imports.exceptions import UnreadableFile
from service.imports.rows import (
    FIELDS,
    Chunk,
    check_rows,
    make_checker,
    map_header,
    normalise_name,
)
from service.imports.sniff import CP1252_UNDEFINED

BLOCK_BYTES = 1 << 20
MAX_LINE_BYTES = 4 << 20  # a task row is a few KB; a longer line is a broken or hostile file
FIELD_LIMIT = 1 << 20  # csv.field_size_limit: bounds a quoted value that never closes
SAMPLE_CHARS = 256 << 10  # text read to find the header and the delimiter
SAMPLE_ROWS = 50
DELIMITERS = (",", ";", "\t", "|")
_NEWLINES = (b"\n", b"\r")


class CsvReader:
    kind = "csv"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.size = os.path.getsize(self.path)
        self.encoding, self._offset = detect_encoding(self.path)
        self.delimiter, header, self._header_row = self._detect_layout()
        columns = map_header(header)
        self.header: list[str] = columns.header
        self.columns = columns
        self.warnings: list[str] = list(columns.warnings)
        self.total_rows: int | None = None  # unknown without reading the file; progress is by bytes
        self._check = make_checker(columns)

    @property
    def header_row(self) -> int:
        return self._header_row

    def close(self) -> None:
        """Nothing is held open between calls to `chunks`; here for the Reader interface."""

    def __enter__(self) -> CsvReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open_text(self) -> tuple[io.BufferedReader, io.TextIOWrapper]:
        raw = open(self.path, "rb")  # noqa: SIM115 (closed through the wrapper by the caller)
        raw.seek(self._offset)
        # newline="" so the csv module sees CRLF/LF itself and keeps newlines inside quoted values.
        return raw, io.TextIOWrapper(raw, encoding=self.encoding, newline="")

    def _detect_layout(self) -> tuple[str, list[str], int]:
        _raw, text = self._open_text()
        with text:
            sample = text.read(SAMPLE_CHARS)
        if not sample.strip():
            raise UnreadableFile("The file is empty: a header row with a 'title' column is required.")
        best: tuple[tuple[int, int, int], str, list[str], int] | None = None
        for delimiter in DELIMITERS:
            header, header_row, records = _parse_sample(sample, delimiter)
            known = _known_columns(header)
            consistent = sum(1 for r in records if len(r) == len(header))
            score = (known, consistent, len(header))
            if best is None or score > best[0]:
                best = (score, delimiter, header, header_row)
        assert best is not None
        return best[1], best[2], best[3]

    def chunks(self, size: int = 10_000, skip: int = 0) -> Iterator[Chunk]:
        """Yield chunks of up to `size` data rows, after skipping the first `skip` data rows.

        Data rows are the records after the header, blank ones included, so `Chunk.rows_consumed` is a
        position in the file and `skip=rows_consumed` resumes exactly after it. May raise UnreadableFile
        mid-way (a quoted value that never closes), naming the row.
        """
        if size < 1 or skip < 0:
            raise ValueError("size must be >= 1 and skip >= 0")
        csv.field_size_limit(FIELD_LIMIT)  # process-wide; 1 MiB is far above any legitimate task cell
        check = self._check
        header_row = self._header_row
        row = header_row
        raw, text = self._open_text()
        with text:
            reader = csv.reader(text, delimiter=self.delimiter)
            try:
                for _ in range(header_row):  # the blank lines before the header, then the header
                    next(reader)
                if skip:
                    row += sum(1 for _ in islice(reader, skip))
                while True:
                    chunk = check_rows(reader, size, row, check)
                    if not chunk.rows:
                        return
                    row += chunk.rows
                    chunk.rows_consumed = row - header_row
                    chunk.progress = min(raw.tell() / self.size, 1.0) if self.size else 1.0
                    yield chunk
            except csv.Error as exc:
                raise UnreadableFile(f"Row {row + 1} could not be read as CSV: {_explain(exc)}") from None
            except UnicodeDecodeError:  # the first pass rules this out; kept so it can never crash a job
                raise UnreadableFile(f"Row {row + 1} is not valid {self.encoding} text.") from None


def _explain(exc: csv.Error) -> str:
    message = str(exc)
    if "field larger than field limit" in message:
        return f'a value is longer than {FIELD_LIMIT // (1 << 20)} MiB, usually a quote (") that is never closed'
    return message


def _parse_sample(sample: str, delimiter: str) -> tuple[list[str], int, list[list[str]]]:
    reader = csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter)
    header: list[str] = []
    header_row = 0
    records: list[list[str]] = []
    try:
        for cells in reader:
            if not header:
                header_row += 1
                if any(c.strip() for c in cells):
                    header = cells
                continue
            records.append(cells)
            if len(records) >= SAMPLE_ROWS:
                break
    except csv.Error:
        pass  # the sample may end inside a quoted value; what was read is enough to choose
    if records and not _ends_cleanly(sample):
        records.pop()  # probably cut by the sample boundary
    return header, header_row, records


def _ends_cleanly(sample: str) -> bool:
    return len(sample) < SAMPLE_CHARS or sample.endswith(("\n", "\r"))


def _known_columns(header: list[str]) -> int:
    return sum(1 for cell in header if normalise_name(cell.lstrip("\ufeff")) in FIELDS)


def detect_encoding(path: str) -> tuple[str, int]:
    """Return (codec, bytes to skip) after checking the whole file in 1 MiB blocks.

    Raises UnreadableFile for NUL bytes, bytes that are neither UTF-8 nor Windows-1252, and over-long lines.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    utf8 = cp1252 = True
    offset = 0
    line = 1
    since_newline = 0
    with open(path, "rb") as f:
        block = f.read(BLOCK_BYTES)
        if block.startswith(codecs.BOM_UTF8):
            offset = len(codecs.BOM_UTF8)
            block = block[offset:]
        while block:
            if b"\x00" in block:
                line += block.count(b"\n", 0, block.index(b"\x00"))
                raise UnreadableFile(f"The file contains NUL bytes (line {line}): it is not CSV text.")
            bad_at = 0  # where in this block the last encoding still possible failed
            if utf8:
                try:
                    decoder.decode(block)
                except UnicodeDecodeError as exc:
                    utf8 = False
                    bad_at = exc.start
            if cp1252:
                undefined = [i for i in (block.find(b) for b in CP1252_UNDEFINED) if i >= 0]
                if undefined:
                    cp1252 = False
                    bad_at = max(bad_at, min(undefined))
            if not (utf8 or cp1252):
                at = line + block.count(b"\n", 0, bad_at)
                raise UnreadableFile(
                    f"The file is not text in UTF-8 or Windows-1252 (around line {at}). Save it as CSV UTF-8."
                )
            first = min((i for i in (block.find(b"\n"), block.find(b"\r")) if i >= 0), default=-1)
            if first < 0:
                since_newline += len(block)
            else:
                if since_newline + first > MAX_LINE_BYTES:
                    break
                since_newline = len(block) - max(block.rfind(nl) for nl in _NEWLINES) - 1
            if since_newline > MAX_LINE_BYTES:
                break
            line += block.count(b"\n")
            block = f.read(BLOCK_BYTES)
        else:
            if utf8:
                try:
                    decoder.decode(b"", final=True)
                except UnicodeDecodeError:  # the file ends inside a multi-byte character
                    utf8 = False
            if utf8:
                return ("utf-8", offset)
            if cp1252:
                return ("cp1252", offset)
            raise UnreadableFile("The file is not text in UTF-8 or Windows-1252. Save it as CSV UTF-8.")
    raise UnreadableFile(
        f"Line {line} is longer than {MAX_LINE_BYTES // (1 << 20)} MiB: this does not look like a task list."
    )
