"""Everything decided about a file before its first data row, once: where the header is, which column
holds which field, which format it is, and how each field's values are read.

`plan(rows, options)` takes the file's first rows (the header search and the sample the date decisions
are made from) and returns a Layout; the readers then build one row checker from it. The sample is
always the start of the file, so a job resumed after a crash plans exactly as its first attempt did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from service.imports.files.cells import as_text
from service.imports.files.dates import DateDecision, date_converter, decide_date_orders
from service.imports.files.headers import HeaderMatch, Options, find_header, normalise
from service.imports.files.presets import Preset
from service.imports.files.values import Converter, StatusKind, priority_converter, status_converter

SAMPLE_ROWS = 2_000  # data rows after the header that slash-date decisions are made from
# Headers of columns whose dates also tell how the file writes dates (Created, Start Date, Updated...).
_DATE_WORDS = ("date", "due", "deadline", "created", "updated", "modified", "resolved", "completed", "start")


@dataclass(slots=True)
class Layout:
    header: list[str]  # the header cells as text, as in the file
    header_row: int  # the header's row number as the sheet shows it (1-based)
    match: HeaderMatch
    warnings: list[str]
    status: Converter
    priority: Converter
    due_date: Converter
    date_orders: dict[int, DateDecision] = field(default_factory=dict)
    sections: tuple[int, int] | None = None  # Todoist: (TYPE, CONTENT) column indexes
    section: list[str] = field(default_factory=lambda: [""])  # the category rows without a column get

    @property
    def index(self) -> dict[str, int]:
        return self.match.index

    @property
    def width(self) -> int:
        return len(self.header)

    @property
    def preset(self) -> Preset | None:
        return self.match.preset

    def track(self, cells: Sequence[object]) -> None:
        """Follow a row that is skipped on resume, for state that crosses rows (Todoist's sections)."""
        if self.sections is None:
            return
        kind_at, text_at = self.sections
        if kind_at < len(cells) and as_text(cells[kind_at]).strip().casefold() == "section":
            self.section[0] = as_text(cells[text_at]).strip() if text_at < len(cells) else ""


def plan(rows: Sequence[Sequence[object]], options: Options | None = None, *, delimiter: str | None = None) -> Layout:
    """The layout of a file from its first rows (0-based `rows`, as read; the header among the first 20)."""
    header_index, found = find_header(rows, options)
    header = [as_text(c) for c in rows[header_index]]
    preset = found.preset
    warnings = list(found.warnings)
    status_at = found.index.get("status")
    kind: StatusKind = "words"
    if status_at is not None:
        name = normalise(header[status_at])
        kind = "filled" if name == "completedat" else "flag" if name in ("done", "completed") else "words"
    decisions: dict[int, DateDecision] = {}
    due_at = found.index.get("due_date")
    if due_at is not None:
        data = rows[header_index + 1 : header_index + 1 + SAMPLE_ROWS]
        dated = {i for i, name in enumerate(header) if i == due_at or any(w in normalise(name) for w in _DATE_WORDS)}
        samples = {i: [r[i] for r in data if i < len(r)] for i in dated}
        decisions = decide_date_orders(
            samples,
            {due_at: header[due_at].strip()},
            delimiter=delimiter,
            preset_order=preset.date_order if preset else None,
            preset_label=preset.label if preset else None,
        )
        warnings.extend(d.warning for d in decisions.values() if d.warning)
    sections = None
    if preset is not None and preset.sections is not None:
        names = [normalise(c) for c in header]
        kind_name, text_name = preset.sections
        if kind_name in names and text_name in names:
            sections = (names.index(kind_name), names.index(text_name))
    return Layout(
        header=header,
        header_row=header_index + 1,
        match=found,
        warnings=warnings,
        status=status_converter(kind, preset.statuses if preset else None),
        priority=priority_converter(preset.priorities if preset else None),
        due_date=date_converter(
            decisions[due_at].order if due_at is not None else "mdy", bool(preset and preset.lenient_dates)
        ),
        date_orders=decisions,
        sections=sections,
    )
