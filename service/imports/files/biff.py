"""Where the cells of an .xls workbook are, read from its BIFF records without building any sheet.

An .xls is an OLE2 container whose `Workbook` stream (`Book` in BIFF5) is a run of records: 2-byte type,
2-byte length, data. The globals part lists each sheet (BOUNDSHEET) with the stream offset of its own
part; a sheet's cell records carry their row and column. calamine builds every sheet of an .xls when it
opens one, each as a dense grid up to its last cell, and ignores blank (formatting-only) cells: this
reads the same positions so the guard can refuse a grid that would not fit in memory.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import olefile

_BOF, _EOF, _BOUNDSHEET, _FILEPASS = 0x0809, 0x000A, 0x0085, 0x002F
# Records that hold one cell with a value, row and column first: FORMULA, NUMBER, LABEL, BOOLERR, RK,
# LABELSST, RSTRING. BLANK and MULBLANK are left out as calamine leaves them out.
_CELL = frozenset((0x0006, 0x0203, 0x0204, 0x0205, 0x027E, 0x00FD, 0x00D6))
_MULRK = 0x00BD  # row, first column, 6 bytes per cell, last column
_HEADER = struct.Struct("<HH")


class NotBiff(ValueError):
    """The file has no readable BIFF workbook stream (a corrupt file, or not an .xls at all)."""


@dataclass(frozen=True, slots=True)
class Workbook:
    encrypted: bool  # FILEPASS: cell records are ciphered, so positions cannot be read
    extents: list[tuple[int, int]]  # per sheet: (last row, last column) with a value, 1-based; (0, 0) if none


def scan(path: str | os.PathLike[str]) -> Workbook | None:
    """The sheets' extents, or None when the OLE2 file holds no workbook stream (e.g. an encrypted .xlsx)."""
    try:
        with olefile.OleFileIO(os.fspath(path)) as ole:
            name = next((n for n in ("Workbook", "Book") if ole.exists(n)), None)
            if name is None:
                return None
            stream = ole.openstream(name).read()
    except Exception as exc:  # a hostile container may trip olefile anywhere: a refusal, never a crashed job
        raise NotBiff(f"it is not a valid .xls file ({exc})") from None
    return _scan_stream(stream)


def _scan_stream(stream: bytes) -> Workbook:
    offsets: list[int] = []
    encrypted = False
    for kind, start, end in _records(stream, 0):
        if kind == _BOUNDSHEET and end - start >= 4:
            offsets.append(int.from_bytes(stream[start : start + 4], "little"))
        elif kind == _FILEPASS:
            encrypted = True
        elif kind == _EOF:
            break
    if encrypted:
        return Workbook(True, [])
    return Workbook(False, [_extent(stream, offset) for offset in offsets])


def _extent(stream: bytes, offset: int) -> tuple[int, int]:
    if not 0 <= offset < len(stream):
        raise NotBiff(f"a sheet starts at byte {offset}, past the end of the workbook")
    last_row = last_col = -1
    depth = 0  # charts embedded in a sheet are sub-streams of their own, BOF to EOF
    unpack = _HEADER.unpack_from  # (row, column) has the same layout as a record header
    for kind, start, end in _records(stream, offset):
        if kind in _CELL:
            if end - start >= 4:
                row, col = unpack(stream, start)
                last_row, last_col = max(last_row, row), max(last_col, col)
        elif kind == _MULRK:
            if end - start >= 6:
                row, col = unpack(stream, start)[0], unpack(stream, end - 2)[0]
                last_row, last_col = max(last_row, row), max(last_col, col)
        elif kind == _BOF:
            depth += 1
        elif kind == _EOF:
            depth -= 1
            if depth <= 0:
                break
    return last_row + 1, last_col + 1


def _records(stream: bytes, offset: int) -> Iterator[tuple[int, int, int]]:
    """(type, data start, data end) of each record from `offset` to the end of the stream."""
    unpack = _HEADER.unpack_from
    limit = len(stream) - 4
    while offset <= limit:
        kind, length = unpack(stream, offset)
        start = offset + 4
        offset = start + length
        yield kind, start, min(offset, len(stream))
