"""Hostile upload files, built at test time: zip bombs (2 GiB of deflated data in about 2 MB), workbooks that
lie about their sizes or their dimensions, NUL escapes, formula cells, CSV files with a 100 MB line, NUL
bytes or bytes that are no text at all."""

from __future__ import annotations

import io
import struct
import zlib
from functools import cache

GIB = 1 << 30
SEGMENT = 64 << 20  # deflated with a full flush, so every copy of it compresses to the same bytes

CONTENT_TYPES = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    b'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    b'<Default Extension="xml" ContentType="application/xml"/>'
    b'<Override PartName="/xl/workbook.xml" '
    b'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    b'<Override PartName="/xl/worksheets/sheet1.xml" '
    b'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    b"</Types>"
)
ROOT_RELS = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    b'<Relationship Id="rId1" '
    b'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    b'Target="xl/workbook.xml"/></Relationships>'
)
WORKBOOK = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    b'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    b'<sheets><sheet name="Tasks" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
WORKBOOK_RELS = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    b'<Relationship Id="rId1" '
    b'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
    b'Target="worksheets/sheet1.xml"/></Relationships>'
)
SHEET_HEAD = b'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'


def cell(ref: str, text: str) -> bytes:
    return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'.encode()


def sheet(rows: list[list[str]], dimension: str | None = None, extra: bytes = b"") -> bytes:
    body = b"".join(
        f'<row r="{r}">'.encode() + b"".join(cell(f"{chr(65 + c)}{r}", v) for c, v in enumerate(row)) + b"</row>"
        for r, row in enumerate(rows, start=1)
    )
    dim = f'<dimension ref="{dimension}"/>'.encode() if dimension else b""
    return SHEET_HEAD + dim + b"<sheetData>" + body + extra + b"</sheetData></worksheet>"


def zip_archive(members: list[tuple[str, bytes, int, int, int]]) -> bytes:
    """A zip from (name, deflated data, crc, compressed size, uncompressed size) as the headers claim them."""
    out = bytearray()
    central = bytearray()
    for name, data, crc, csize, usize in members:
        encoded = name.encode()
        offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, csize, usize, len(encoded), 0)
        out += encoded + data
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x21, crc, csize, usize, len(encoded), 0, 0, 0, 0, 0,
            offset,
        )  # fmt: skip
        central += encoded
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(out), 0)
    return bytes(out + central + end)


def deflated(data: bytes) -> tuple[bytes, int, int, int]:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    packed = c.compress(data) + c.flush()
    return packed, zlib.crc32(data), len(packed), len(data)


def workbook(sheet_xml: bytes) -> bytes:
    parts = [
        ("[Content_Types].xml", CONTENT_TYPES),
        ("_rels/.rels", ROOT_RELS),
        ("xl/workbook.xml", WORKBOOK),
        ("xl/_rels/workbook.xml.rels", WORKBOOK_RELS),
        ("xl/worksheets/sheet1.xml", sheet_xml),
    ]
    return zip_archive([(name, *deflated(data)) for name, data in parts])


@cache
def _bomb_stream(size: int) -> tuple[bytes, int]:
    """Raw deflate of `size` bytes of spaces (a multiple of SEGMENT), and their CRC-32, in ~2 s."""
    block = b" " * SEGMENT
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    final = c.flush()
    crc = 0
    for _ in range(size // SEGMENT):
        crc = zlib.crc32(block, crc)
    return segment * (size // SEGMENT) + final, crc


def zip_bomb(size: int = 2 * GIB, as_workbook: bool = True) -> bytes:
    """A zip whose one big member unpacks to `size` bytes (honest headers): a classic bomb with, if
    `as_workbook`, the parts that make it pass for an .xlsx (its sheet is the bomb)."""
    data, crc = _bomb_stream(size)
    bomb = ("xl/worksheets/sheet1.xml" if as_workbook else "bomb.bin", data, crc, len(data), size)
    if not as_workbook:
        return zip_archive([bomb])
    small = [
        ("[Content_Types].xml", CONTENT_TYPES),
        ("_rels/.rels", ROOT_RELS),
        ("xl/workbook.xml", WORKBOOK),
        ("xl/_rels/workbook.xml.rels", WORKBOOK_RELS),
    ]
    return zip_archive([*((name, *deflated(d)) for name, d in small), bomb])


def lying_workbook() -> bytes:
    """A workbook whose sheet claims to be shorter than it is: the declared bytes hold 3 small rows, the rest
    (which only a reader ignoring the declared size would see) a cell at XFD1048576."""
    honest = sheet([["title"], ["a"], ["b"]])
    cut = honest.index(b"</sheetData>")
    far = b'<row r="1048576">' + cell("XFD1048576", "x") + b"</row>"
    real = honest[:cut] + far + honest[cut:]
    packed, _crc, csize, _size = deflated(real)
    parts = [
        ("[Content_Types].xml", CONTENT_TYPES),
        ("_rels/.rels", ROOT_RELS),
        ("xl/workbook.xml", WORKBOOK),
        ("xl/_rels/workbook.xml.rels", WORKBOOK_RELS),
    ]
    members = [(name, *deflated(d)) for name, d in parts]
    members.append(("xl/worksheets/sheet1.xml", packed, zlib.crc32(real[:cut]), csize, cut))
    return zip_archive(members)


def far_xls() -> bytes:
    """A 6 KB .xls whose second sheet holds one cell at IV65536: calamine builds every sheet of an .xls when
    it opens one, a 65,536 x 256 grid here (~0.5-1 GB) for a file whose first sheet has two rows."""
    import xlwt

    book = xlwt.Workbook()
    tasks = book.add_sheet("Tasks")
    tasks.write(0, 0, "title")
    tasks.write(1, 0, "a task")
    book.add_sheet("Notes").write(65535, 255, "far")
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def csv_long_line(size: int = 100 << 20) -> bytes:
    return b"title,description\nok,fine\n" + b"x," + b"y" * size


def csv_nul_after_head() -> bytes:
    return b"title\n" + b"fine row\n" * 2000 + b"bad\x00row\n" + b"after\n"


def csv_not_text_after_head() -> bytes:
    # 0xFF 0xFE 0x81: invalid UTF-8, and 0x81 has no character in Windows-1252 either.
    return b"title\n" + b"fine row\n" * 2000 + b"bad \xff\xfe\x81 row\n"


FORMULAS = ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(1,2)", "\t=1+1", "\r=1+1", '=HYPERLINK("http://x")']


def csv_formulas() -> bytes:
    """Rows that fail (priority 9) with formula-like cells, for errors.csv."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["title", "description", "priority", "category"])
    for formula in FORMULAS:
        writer.writerow([formula, formula, "9", formula[:20]])
    return buffer.getvalue().encode()
