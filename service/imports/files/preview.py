"""What an import of a file would do, from its first rows: the layout found and the rows as they would be
imported. Pure: the web process calls it on the start of an upload and stores nothing."""

from __future__ import annotations

import os
from typing import Any

from service.imports.files.headers import Options
from service.imports.files.readers import open_reader
from service.imports.files.rows import VALID_COLUMNS

PREVIEW_ROWS = 20  # data rows shown


def preview(path: str | os.PathLike[str], kind: str, options: Options, *, partial: bool) -> dict[str, Any]:
    """The preview of a file (`partial`: only its start was received). Raises what `open_reader` raises."""
    with open_reader(path, kind, options, whole=False) as reader:
        chunk = next(reader.chunks(size=PREVIEW_ROWS), None)
    layout = reader.layout
    rows: dict[int, dict[str, Any]] = {}
    if chunk is not None:
        for valid in chunk.valid:
            task = dict(zip(VALID_COLUMNS[:-1], valid[:-1], strict=True))
            rows[valid[-1]] = {"row": valid[-1], "task": task, "errors": [], "warnings": []}
        for error in chunk.errors:
            entry = rows.setdefault(error.row, {"row": error.row, "task": None, "errors": [], "warnings": []})
            entry["errors"].append({"column": error.column, "message": error.message, "value": error.value})
        for warning in chunk.warnings:
            entry = rows[warning.row]
            entry["warnings"].append({"column": warning.column, "message": warning.message, "value": warning.value})
    return {
        "format": reader.kind,
        "encoding": getattr(reader, "encoding", None),
        "delimiter": getattr(reader, "delimiter", None),
        "preset": layout.preset.name if layout.preset else None,
        "header_row": reader.header_row,
        "headers": layout.header,
        "mapping": [{"header": c.header, "field": c.field, "matched": c.matched} for c in layout.match.columns],
        "unmatched": layout.match.unmatched,
        "warnings": reader.warnings,
        "rows": [rows[n] for n in sorted(rows)],
        "partial": partial,
    }
