"""Checks that run BEFORE a workbook is handed to calamine, which loads the whole first sheet into memory.

Why they exist (python-calamine 0.9): calamine allocates its cell grid densely from the
first to the last cell, about 85 bytes per cell at peak. A 1 KB xlsx holding only A1 and XFD1048576 makes
it ask for 550 GB and abort the whole worker process (a Rust allocation failure, not a Python exception).
So the cell positions actually used by the first sheet are scanned first, streaming, and anything that
would not fit the worker's memory budget is refused with a message the user can act on.
"""

from __future__ import annotations

import os
import posixpath
import re
import zipfile
from dataclasses import dataclass
from xml.etree import ElementTree  # nosec B405  # only the small workbook parts, bounded: see _read_xml

from service.imports.files import biff
from service.imports.files.exceptions import UnreadableFile

# Calamine holds ~85 bytes per cell at peak (1M rows x 6 columns: 561 MB RSS); 7.5M cells keeps a worker
# under its 768 MB budget with room for the interpreter. 1,000,000 rows of 7 columns fit.
MAX_CELLS = 7_500_000
MAX_UNCOMPRESSED_BYTES = 1536 << 20  # all parts of an .xlsx together, as declared by the zip
MAX_PART_BYTES = 1 << 30  # one part (in practice the sheet XML; 1M rows x 6 columns is ~350 MB)
MAX_RATIO = 100  # compression ratio above which a large part is treated as a zip bomb
RATIO_MIN_BYTES = 64 << 20  # small parts may compress absurdly well (blank sheets); only large ones count
MAX_XML_META_BYTES = 8 << 20  # workbook.xml and its relationships: small in any real workbook
MAX_XLS_BYTES = 64 << 20  # .xls holds at most 65,536 x 256 cells; bigger files are not worth the memory
SCAN_BLOCK_BYTES = 1 << 20

_MAIN_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL_NS = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_PKG_REL_NS = "{http://schemas.openxmlformats.org/package/2006/relationships}"

_TOO_LARGE = "The workbook is too large to import"
_SPLIT_HINT = "Delete unused rows and columns, or split it into several files (or save it as CSV)."

# The fast path reads references in the form every mainstream writer uses: <c r="B12" ...> and <row r="12">.
# Patterns start with the literal ' r="' so the regex engine can skip ahead; anything else (cells without a
# leading r, other quoting, prefixed tags) sends the sheet to the slow path that walks every tag.
_ROWS = re.compile(rb' r="[A-Za-z]*0*([0-9]+)"')
_COLUMNS = re.compile(rb' r="([A-Za-z]+)[0-9]')
_ANY_REF = re.compile(rb"""\sr\s*=\s*["']([A-Za-z]*)0*([0-9]+)["']""")
_ODD_CELL = re.compile(rb'<c(?:[>/]|\s(?!r="))')  # a <c> whose first attribute is not r="..."
_PREFIXED_CELL = re.compile(rb":c[\s/>]")
_TAGS = re.compile(rb"<(/?)(?:[\w.-]+:)?(row|c)(?=[\s/>])([^>]*)>")


@dataclass(frozen=True, slots=True)
class SheetExtent:
    rows: int  # bound on the last row used (1-based)
    columns: int  # bound on the last column used (1-based)

    @property
    def cells(self) -> int:
        return self.rows * self.columns


def check_xls(path: str | os.PathLike[str]) -> None:
    """Refuse .xls files whose sheets would not fit in memory: calamine builds every sheet on opening one
    (a 6 KB file with one cell at IV65536 took 1 GB), so the cells of all sheets count."""
    size = os.path.getsize(path)
    if size > MAX_XLS_BYTES:
        raise UnreadableFile(
            f"{_TOO_LARGE}: the .xls file is {size / (1 << 20):.0f} MB, the limit is "
            f"{MAX_XLS_BYTES >> 20} MB. Save it as .xlsx or CSV."
        )
    try:
        book = biff.scan(path)
    except biff.NotBiff as exc:
        raise UnreadableFile(f"The workbook could not be read: {exc}.") from None
    if book is None or book.encrypted:
        return  # nothing to measure: the reader reports it as password-protected (or unreadable)
    cells = sum(rows * columns for rows, columns in book.extents)
    if cells > MAX_CELLS:
        rows, columns = max(book.extents, key=lambda extent: extent[0] * extent[1])
        sheets = f"its {len(book.extents)} sheets span" if len(book.extents) > 1 else "its sheet spans"
        raise UnreadableFile(
            f"{_TOO_LARGE}: {sheets} {cells:,} cells (the largest {rows:,} rows by {columns:,} columns; the "
            f"limit is {MAX_CELLS:,}, every sheet of an .xls counting). {_SPLIT_HINT}"
        )


def check_xlsx(path: str | os.PathLike[str]) -> SheetExtent:
    """Refuse zip bombs and sheets whose cell grid would not fit in memory; return the first sheet's extent."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            total = sum(i.file_size for i in infos)
            if total > MAX_UNCOMPRESSED_BYTES:
                raise UnreadableFile(
                    f"{_TOO_LARGE}: it unpacks to {total / (1 << 30):.1f} GB "
                    f"(the limit is {MAX_UNCOMPRESSED_BYTES / (1 << 30):.1f} GB). {_SPLIT_HINT}"
                )
            for info in infos:
                ratio = info.file_size / max(info.compress_size, 1)
                if info.file_size > MAX_PART_BYTES or (info.file_size > RATIO_MIN_BYTES and ratio > MAX_RATIO):
                    raise UnreadableFile(
                        f"{_TOO_LARGE}: its part {info.filename!r} unpacks to {info.file_size / (1 << 20):.0f} MB "
                        f"from {info.compress_size / (1 << 20):.1f} MB. {_SPLIT_HINT}"
                    )
            sheet = first_sheet_part(archive)
            extent = scan_extent(archive, sheet)
    except zipfile.BadZipFile as exc:
        raise UnreadableFile(f"The workbook could not be read: it is not a valid .xlsx file ({exc}).") from None
    except (OSError, EOFError, ValueError, NotImplementedError, RuntimeError) as exc:
        # zlib errors, truncated archives, unsupported compression or encryption inside the zip
        raise UnreadableFile(f"The workbook could not be read: {exc}.") from None
    if extent.cells > MAX_CELLS:
        raise UnreadableFile(
            f"{_TOO_LARGE}: its first sheet spans {extent.rows:,} rows by {extent.columns:,} columns "
            f"({extent.cells:,} cells; the limit is {MAX_CELLS:,}). {_SPLIT_HINT}"
        )
    return extent


def zip_parts(archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """The archive's entries by name, `/`-separated: some libraries write `xl\\workbook.xml`, which
    calamine reads like `xl/workbook.xml` (zipfile keeps a name as written, except on Windows)."""
    return {info.filename.replace("\\", "/"): info for info in archive.infolist()}


def first_sheet_part(archive: zipfile.ZipFile) -> zipfile.ZipInfo:
    """The zip entry of the first sheet in workbook order (what calamine's sheet index 0 reads)."""
    parts = zip_parts(archive)
    workbook = _read_xml(archive, parts, "xl/workbook.xml")
    sheets = workbook.find(f"{_MAIN_NS}sheets")
    first = None if sheets is None else sheets.find(f"{_MAIN_NS}sheet")
    if first is None:
        raise UnreadableFile("The workbook could not be read: it has no sheets.")
    rel_id = first.get(f"{_REL_NS}id")
    rels = _read_xml(archive, parts, "xl/_rels/workbook.xml.rels")
    for rel in rels.iter(f"{_PKG_REL_NS}Relationship"):
        if rel.get("Id") == rel_id:
            target = rel.get("Target", "")
            part = target.lstrip("/") if target.startswith("/") else posixpath.normpath(f"xl/{target}")
            if part in parts:
                return parts[part]
    raise UnreadableFile("The workbook could not be read: its first sheet is missing.")


def _read_xml(archive: zipfile.ZipFile, parts: dict[str, zipfile.ZipInfo], name: str) -> ElementTree.Element:
    info = parts.get(name)
    if info is None:
        raise UnreadableFile(f"The workbook could not be read: {name} is missing.")
    if info.file_size > MAX_XML_META_BYTES:
        raise UnreadableFile(f"The workbook could not be read: {name} is implausibly large.")
    try:
        # Bounded size above; expat refuses external entities and limits entity amplification.
        return ElementTree.fromstring(archive.read(info))  # noqa: S314  # nosec B314
    except ElementTree.ParseError as exc:
        raise UnreadableFile(f"The workbook could not be read: {name} is not valid XML ({exc}).") from None


def scan_extent(archive: zipfile.ZipFile, part: zipfile.ZipInfo | str) -> SheetExtent:
    """Bound the last row and column calamine would place a cell in, streaming the sheet XML.

    The fast path reads each 1 MiB block with a few regex searches: "is there a column beyond the widest
    seen so far?", "is there a row beyond the last row of this block?". Only when cells lack an explicit
    r="A1" attribute first (rare writers) do we walk every tag, counting positions as calamine does.
    """
    max_col = max_row = 0
    simulate = _Positions()
    exact = True
    tail = b""
    with archive.open(part) as stream:
        while True:
            data = stream.read(SCAN_BLOCK_BYTES)
            block = tail + data
            if data:
                cut = block.rfind(b">") + 1  # tags never straddle two blocks
                block, tail = block[:cut], block[cut:]
            elif not block:
                break
            else:
                tail = b""
            if exact and _has_cells_without_leading_ref(block):
                exact = False
            if not exact:
                simulate.feed(block)
            max_col = _max_column(block, max_col)
            max_row = _max_row(block, max_row)
            if not data:
                break
    rows, columns = max_row, max_col
    if not exact:
        rows, columns = max(rows, simulate.max_row), max(columns, simulate.max_col)
    return SheetExtent(rows=rows, columns=columns)


def _has_cells_without_leading_ref(block: bytes) -> bool:
    # When every cell starts <c r="...">, cell positions are exactly the refs the fast path reads.
    # "<c" also opens <col>, <cfRule>...: only when the counts differ do we look at the tags themselves.
    if block.count(b"<c") != block.count(b'<c r="') and _ODD_CELL.search(block):
        return True
    return _PREFIXED_CELL.search(block) is not None


def column_index(letters: bytes) -> int:
    index = 0
    for ch in letters.upper():
        index = index * 26 + ch - 64
    return index


def column_letters(index: int) -> str:
    letters = ""
    while index > 0:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _greater_letters(index: int) -> str:
    """Regex alternatives matching column letters (either case) strictly after column `index`."""
    letters = column_letters(index) if index else ""
    options = [f"[A-Za-z]{{{len(letters) + 1},}}"]
    for i, ch in enumerate(letters):
        if ch != "Z":
            prefix = "".join(f"[{c}{c.lower()}]" for c in letters[:i])
            after = chr(ord(ch) + 1)
            rest = len(letters) - i - 1
            options.append(f"{prefix}[{after}-Z{after.lower()}-z][A-Za-z]{{{rest}}}")
    return "|".join(options)


def _greater_number(value: int) -> str:
    digits = str(value)
    options = [f"[1-9][0-9]{{{len(digits)},}}"]
    for i, ch in enumerate(digits):
        if ch != "9":
            low = max(int(ch) + 1, 1 if i == 0 else 0)
            options.append(f"{digits[:i]}[{low}-9][0-9]{{{len(digits) - i - 1}}}")
    return "|".join(options)


_beyond_column: dict[int, re.Pattern[bytes]] = {}


def _max_column(block: bytes, current: int) -> int:
    pattern = _beyond_column.get(current)
    if pattern is None:
        pattern = re.compile(f' r="(?:{_greater_letters(current)})[0-9]'.encode())
        if len(_beyond_column) < 1000:
            _beyond_column[current] = pattern
    if pattern.search(block) is None:
        return current
    return max(current, *(column_index(m) for m in set(_COLUMNS.findall(block))))


def _max_row(block: bytes, current: int) -> int:
    # In a well-formed sheet rows ascend, so the block's last reference is its highest row; we check that
    # claim with one search and fall back to reading every reference if the sheet is out of order.
    last = _ROWS.findall(block, max(len(block) - 4096, 0))
    candidate = max(current, *(int(m) for m in last)) if last else current
    beyond = re.compile(f' r="[A-Za-z]*0*(?:{_greater_number(candidate)})"'.encode())
    if beyond.search(block) is None:
        return candidate
    return max(candidate, *(int(m) for m in _ROWS.findall(block)))


class _Positions:
    """Follow calamine's row/column counters for cells and rows without an r attribute."""

    def __init__(self) -> None:
        self.row = self.col = 0  # 0-based, like calamine
        self.max_row = self.max_col = 0  # 1-based bounds

    def feed(self, block: bytes) -> None:
        for closing, name, attrs in _TAGS.findall(block):
            if closing:
                if name == b"row":
                    self.row += 1
                    self.col = 0
                continue
            ref = _ANY_REF.search(b" " + attrs)
            if name == b"row":
                if ref and ref.group(2):
                    self.row = int(ref.group(2)) - 1
                self.col = 0
                if attrs.endswith(b"/"):
                    self.row += 1
                continue
            if ref and ref.group(1):
                self.row, self.col = int(ref.group(2)) - 1, column_index(ref.group(1)) - 1
            self.max_row = max(self.max_row, self.row + 1)
            self.max_col = max(self.max_col, self.col + 1)
            self.col += 1
