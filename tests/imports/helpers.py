"""Fixture builders for the importer tests: real files written in tmp_path at test time."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from service.imports.files import Chunk, RowError, ValidRow, open_reader

HEADER = ["title", "description", "status", "priority", "due_date", "category"]


def write_bytes(tmp_path: Path, data: bytes, name: str = "tasks.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def write_csv(tmp_path: Path, text: str, name: str = "tasks.csv", encoding: str = "utf-8") -> Path:
    return write_bytes(tmp_path, text.encode(encoding), name)


def write_xlsx(tmp_path: Path, rows: list[list[Any]], name: str = "tasks.xlsx", **sheets: list[list[Any]]) -> Path:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "Tasks"
    for row in rows:
        sheet.append(row)
    for title, other in sheets.items():
        extra = workbook.create_sheet(title)
        for row in other:
            extra.append(row)
    path = tmp_path / name
    workbook.save(path)
    return path


def write_xls(tmp_path: Path, rows: list[list[Any]], name: str = "tasks.xls", **sheets: list[list[Any]]) -> Path:
    import datetime

    import xlwt

    workbook = xlwt.Workbook()
    date_style = xlwt.easyxf(num_format_str="YYYY-MM-DD")
    datetime_style = xlwt.easyxf(num_format_str="YYYY-MM-DD HH:MM")
    for title, content in {"Tasks": rows, **sheets}.items():
        sheet = workbook.add_sheet(title)
        for r, row in enumerate(content):
            for c, value in enumerate(row):
                if value is None:
                    continue
                if isinstance(value, datetime.datetime):
                    sheet.write(r, c, value, datetime_style)
                elif isinstance(value, datetime.date):
                    sheet.write(r, c, value, date_style)
                else:
                    sheet.write(r, c, value)
    path = tmp_path / name
    workbook.save(str(path))
    return path


def write_raw_xlsx(tmp_path: Path, sheet_data: str, dimension: str = "A1", name: str = "crafted.xlsx") -> Path:
    """A minimal but valid xlsx whose sheet XML is given verbatim (for hostile and unusual layouts)."""
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    pkg = "http://schemas.openxmlformats.org/package/2006/relationships"
    parts = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            '<Override PartName="/xl/worksheets/sheet1.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>'
        ),
        "_rels/.rels": (
            f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{pkg}">'
            f'<Relationship Id="rId1" Type="{rel}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
        ),
        "xl/workbook.xml": (
            f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{main}" xmlns:r="{rel}">'
            '<sheets><sheet name="Tasks" sheetId="1" r:id="rId1"/></sheets></workbook>'
        ),
        "xl/_rels/workbook.xml.rels": (
            f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{pkg}">'
            f'<Relationship Id="rId1" Type="{rel}/worksheet" Target="worksheets/sheet1.xml"/></Relationships>'
        ),
        "xl/worksheets/sheet1.xml": (
            f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{main}"><dimension ref="{dimension}"/>'
            f"<sheetData>{sheet_data}</sheetData></worksheet>"
        ),
    }
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for part, text in parts.items():
            archive.writestr(part, text)
    return path


def inline_row(row: int, *values: str) -> str:
    cells = "".join(f'<c r="{chr(65 + i)}{row}" t="inlineStr"><is><t>{v}</t></is></c>' for i, v in enumerate(values))
    return f'<row r="{row}">{cells}</row>'


def read_all(
    path: Path, kind: str = "csv", size: int = 10_000, skip: int = 0
) -> tuple[list[ValidRow], list[RowError], list[Chunk]]:
    with open_reader(path, kind) as reader:
        chunks = list(reader.chunks(size=size, skip=skip))
    valid = [row for chunk in chunks for row in chunk.valid]
    errors = [error for chunk in chunks for error in chunk.errors]
    return valid, errors, chunks


def titles(valid: list[ValidRow]) -> list[str]:
    return [row[0] for row in valid]


def messages(errors: list[RowError]) -> list[tuple[int, str | None, str]]:
    return [(e.row, e.column, e.message) for e in errors]
