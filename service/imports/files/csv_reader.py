"""Streaming CSV reader: encoding and delimiter decided up front, rows read in chunks with flat memory.

Before any row is yielded, one pass over the bytes in 1 MiB blocks settles what would otherwise fail half-way
through an import: the encoding (UTF-8, with or without BOM, else Windows-1252, or UTF-16 with its BOM as
Excel's "Unicode Text" writes it; never a switch after rows were imported), NUL characters, and lines too
long to be a task list (which also bounds the memory the csv module uses). Then the sample at the start of
the file decides the delimiter, the header row (a title line above it is fine) and the layout.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
from collections.abc import Iterator
from itertools import islice

from service.imports.files.exceptions import EmptyFile, MappingError, UnreadableFile
from service.imports.files.headers import HEADER_SEARCH_ROWS, Options, find_header
from service.imports.files.layout import SAMPLE_ROWS, Layout, plan
from service.imports.files.rows import Chunk, check_rows, make_checker
from service.imports.files.sniff import CP1252_UNDEFINED

BLOCK_BYTES = 1 << 20
MAX_LINE_BYTES = 4 << 20  # a task row is a few KB; a longer line is a broken or hostile file
FIELD_LIMIT = 1 << 20  # csv.field_size_limit: bounds a quoted value that never closes
SAMPLE_CHARS = 256 << 10  # text read to find the header and the delimiter, and to decide date orders
SAMPLE_BYTES = SAMPLE_CHARS * 4  # bytes that always hold SAMPLE_CHARS characters, whatever the encoding
DELIMITERS = (",", ";", "\t", "|")
_NEWLINES = (b"\n", b"\r")
_UTF16_BOMS = ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))


class CsvReader:
    kind = "csv"

    def __init__(self, path: str | os.PathLike[str], options: Options | None = None, *, whole: bool = True) -> None:
        """`whole=False` reads only the file's first SAMPLE_BYTES to decide the encoding (a preview, or a
        check at upload); the importer checks the whole file first, so it never switches mid-way."""
        self.path = os.fspath(path)
        self.size = os.path.getsize(self.path)
        self.encoding, self._offset = detect_encoding(self.path) if whole else sniff_encoding(self.path)
        self.delimiter, self.layout = self._detect_layout(options)
        self.header: list[str] = self.layout.header
        self.header_row = self.layout.header_row
        self.warnings: list[str] = list(self.layout.warnings)
        self.total_rows: int | None = None  # unknown without reading the file; progress is by bytes
        self._check = make_checker(self.layout)

    def close(self) -> None:
        """Nothing is held open between calls to `chunks`; here for the Reader interface."""

    def __enter__(self) -> CsvReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open_text(self) -> tuple[io.BufferedReader, io.TextIOWrapper]:
        raw = open(self.path, "rb")  # noqa: SIM115 (closed through the wrapper by the caller)
        raw.seek(self._offset)
        # newline="" so the csv module sees CRLF/LF itself and keeps newlines inside quoted values. The
        # whole file was checked first; "replace" only matters for a preview of a file's first bytes, which
        # may end inside a character.
        return raw, io.TextIOWrapper(raw, encoding=self.encoding, errors="replace", newline="")

    def _detect_layout(self, options: Options | None) -> tuple[str, Layout]:
        _raw, text = self._open_text()
        with text:
            sample = text.read(SAMPLE_CHARS)
        if not sample.strip():
            raise EmptyFile("The file is empty: a header row with a title column is required.")
        # Each delimiter is tried on the sample; the one under which a header row names the most fields
        # (then: the most rows as wide as the header, the widest header) is the file's.
        best: tuple[tuple[int, int, int, int], str, list[list[str]], Exception | None] | None = None
        csv.field_size_limit(FIELD_LIMIT)  # as in `chunks`: a long first value reads the same in both
        for delimiter in DELIMITERS:
            problem: Exception | None = None
            records: list[list[str]] = []
            try:
                records = _parse_sample(sample, delimiter)
                at, found = find_header(records, options)
                score = (2, len(found.index), _consistent(records, at), len(records[at]))
            except MappingError as exc:  # a header row, but the mapping does not fit it
                problem, score = exc, (1, 0, 0, 0)
            except UnreadableFile as exc:
                problem, score = exc, (0, 0, 0, 0)
            if best is None or score > best[0]:
                best = (score, delimiter, records, problem)
        assert best is not None
        _score, delimiter, records, problem = best
        if problem is not None:
            raise problem
        return delimiter, plan(records, options, delimiter=delimiter)

    def chunks(self, size: int = 10_000, skip: int = 0) -> Iterator[Chunk]:
        """Yield chunks of up to `size` data rows, after skipping the first `skip` data rows.

        Data rows are the records after the header, blank ones included, so `Chunk.rows_processed` is a
        position in the file and `skip=rows_processed` resumes exactly after it. May raise UnreadableFile
        mid-way (a quoted value that never closes), naming the row.
        """
        if size < 1 or skip < 0:
            raise ValueError("size must be >= 1 and skip >= 0")
        csv.field_size_limit(FIELD_LIMIT)  # process-wide; 1 MiB is far above any legitimate task cell
        check = self._check
        layout = self.layout
        layout.section[0] = ""
        header_row = self.header_row
        row = header_row
        raw, text = self._open_text()
        with text:
            reader = csv.reader(text, delimiter=self.delimiter)
            try:
                for _ in range(header_row):  # the rows above the header (title lines, blanks), then the header
                    next(reader)
                if skip and layout.sections is not None:
                    for cells in islice(reader, skip):
                        layout.track(cells)
                        row += 1
                elif skip:
                    row += sum(1 for _ in islice(reader, skip))
                while True:
                    chunk = check_rows(reader, size, row, check)
                    if not chunk.rows:
                        return
                    row += chunk.rows
                    chunk.rows_processed = row - header_row
                    chunk.progress = min(raw.tell() / self.size, 1.0) if self.size else 1.0
                    yield chunk
            except csv.Error as exc:
                raise UnreadableFile(f"Row {row + 1} could not be read as CSV: {_explain(exc)}") from None


def _consistent(records: list[list[str]], header_at: int) -> int:
    width = len(records[header_at])
    return sum(1 for r in records[header_at + 1 :] if len(r) == width)


def _explain(exc: csv.Error) -> str:
    message = str(exc)
    if "field larger than field limit" in message:
        return f'a value is longer than {FIELD_LIMIT // (1 << 20)} MiB, usually a quote (") that is never closed'
    return message


def _parse_sample(sample: str, delimiter: str) -> list[list[str]]:
    """The sample's records: the rows the header is searched in, then the data rows decisions are made from."""
    reader = csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter)
    records: list[list[str]] = []
    try:
        for cells in islice(reader, HEADER_SEARCH_ROWS + SAMPLE_ROWS):
            records.append(cells)
    except csv.Error as exc:
        if not records:  # not even a first row: the whole-file checks (or the chunks) name the problem
            raise UnreadableFile(f"Row 1 could not be read as CSV: {_explain(exc)}") from None
        # Otherwise the sample ends inside a quoted value; what was read is enough to choose.
    if len(records) > 1 and not _ends_cleanly(sample):
        records.pop()  # probably cut by the sample boundary
    return records


def _ends_cleanly(sample: str) -> bool:
    return len(sample) < SAMPLE_CHARS or sample.endswith(("\n", "\r"))


def detect_encoding(path: str) -> tuple[str, int]:
    """Return (codec, bytes to skip) after checking the whole file in 1 MiB blocks.

    Raises UnreadableFile for NUL bytes, bytes that are neither UTF-8 nor Windows-1252, and over-long lines.
    """
    with open(path, "rb") as f:
        bom = f.read(2)
    for mark, codec in _UTF16_BOMS:
        if bom == mark:
            _check_utf16(path, codec)
            return codec, len(mark)
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


def _check_utf16(path: str, codec: str) -> None:
    """The UTF-16 counterpart of the checks above, on decoded text (every other byte of ASCII is NUL)."""
    decoder = codecs.getincrementaldecoder(codec)()
    line = 1
    since_newline = 0
    with open(path, "rb") as f:
        f.seek(2)
        while block := f.read(BLOCK_BYTES):
            try:
                text = decoder.decode(block)
            except UnicodeDecodeError:
                raise UnreadableFile(f"The file is not valid {codec.upper()} text (around line {line}).") from None
            if "\x00" in text:
                line += text.count("\n", 0, text.index("\x00"))
                raise UnreadableFile(f"The file contains NUL characters (line {line}): it is not CSV text.")
            last = max(text.rfind("\n"), text.rfind("\r"))
            since_newline = since_newline + len(text) if last < 0 else len(text) - last - 1
            if since_newline > MAX_LINE_BYTES // 2:
                limit = MAX_LINE_BYTES // (1 << 20)
                raise UnreadableFile(f"Line {line} is longer than {limit} MiB: this does not look like a task list.")
            line += text.count("\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise UnreadableFile(f"The file is not valid {codec.upper()} text: it ends inside a character.") from None


def sniff_encoding(path: str) -> tuple[str, int]:
    """The encoding (codec, bytes to skip) as the file's first SAMPLE_BYTES show it, without reading on."""
    with open(path, "rb") as f:
        head = f.read(SAMPLE_BYTES)
    for mark, codec in ((codecs.BOM_UTF8, "utf-8"), *_UTF16_BOMS):
        if head.startswith(mark):
            return codec, len(mark)
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=len(head) < SAMPLE_BYTES)
        return "utf-8", 0
    except UnicodeDecodeError:
        if any(b in head for b in CP1252_UNDEFINED) or b"\x00" in head:
            raise UnreadableFile("The file is not text in UTF-8, Windows-1252 or UTF-16.") from None
        return "cp1252", 0
