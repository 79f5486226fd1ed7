"""From a row of cells to a row ready for COPY, or to the errors a user needs to fix it.

Shared by the CSV and the Excel readers. Every field goes through `service.tasks.rules`, so an import
accepts exactly what `POST /tasks` accepts; what is added here is only the coercion a file needs first
(empty cell -> default, "High" -> 2, "In Progress" -> "in_progress", "Dec 5, 2026" and Excel dates),
through converters chosen once per file by `layout.py`.

The hot path runs per row on million-row files: one closure, plain tuples, no dict per row, and each
converter behind a cache keyed by the raw cell, so the values a file repeats cost a dict hit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from itertools import count, islice
from typing import TYPE_CHECKING

from service.imports.files.cells import as_text, is_blank
from service.imports.files.headers import FIELDS
from service.imports.files.values import CACHE_MAX, Lenient
from service.tasks import rules

if TYPE_CHECKING:
    from service.imports.files.layout import Layout

# What one valid row is: the task fields in COPY order, then the spreadsheet row number it came from.
VALID_COLUMNS = (*FIELDS, "row")
ValidRow = tuple[str, str | None, str, int, date | None, str | None, int]

MAX_VALUE_CHARS = 100  # RowError.value is for display; the whole cell stays in RowError.raw
_ABSENT = 1 << 62  # index of a column the file does not have: never < len(cells), so reads the default
_MISS = object()  # not in a cache (whose values may be None)


@dataclass(frozen=True, slots=True)
class RowError:
    """One bad field (or, with column None, a problem with the whole row)."""

    row: int  # as a spreadsheet shows it: the header is row 1 when it is the first line
    column: str | None  # canonical field name ("priority"), None for a row-level problem
    message: str
    value: str | None  # the offending cell as text, shortened for display
    raw: list[str]  # the row's cells as text, as in the file, for errors.csv


@dataclass(frozen=True, slots=True)
class RowWarning:
    """A value that was imported differently from what the cell says (e.g. no due date for "every day")."""

    row: int
    column: str
    message: str
    value: str | None


@dataclass(slots=True)
class Chunk:
    valid: list[ValidRow]
    errors: list[RowError]
    # Data rows read since the header, in total, blank ones included (the job's rows_processed): pass it as
    # `skip=` to resume after this chunk.
    rows_processed: int
    rows: int  # data rows consumed by this chunk, blank ones included
    failed: int  # rows of this chunk with at least one error
    skipped: int  # blank rows of this chunk (and rows a format says are not tasks, such as Todoist's notes)
    progress: float  # 0..1
    warnings: list[RowWarning]


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- the per-row check ------------------------------------------------------------------------------------

Checker = Callable[[Sequence[object], int, list[ValidRow], list[RowError], list[RowWarning]], int]
OK, FAILED, BLANK = 0, 1, 2


def _cached(convert: Callable[[object], object], seed: dict[str, object]) -> tuple[dict[str, object], Callable]:
    """A converter behind a cache of raw text -> value, filled as values are met (up to CACHE_MAX)."""
    cache = dict(seed)

    def lookup(value: object) -> object:
        result = convert(value)  # raises for a bad value: never cached
        if type(value) is str and len(cache) < CACHE_MAX:
            cache[value] = result
        return result

    return cache, lookup


def make_checker(layout: Layout) -> Checker:
    """Build the per-row function: `check(cells, row, valid, errors, warnings) -> OK | FAILED | BLANK`.

    It appends a ValidRow to `valid`, or one RowError per bad field to `errors`, and a RowWarning for a
    value imported leniently; a blank row appends nothing. `cells` are strings (CSV) or Excel values
    (str, int, float, bool, date, datetime, ... with "" for empty).
    """
    idx = layout.index
    ti = idx["title"]
    di, si, pi, ui, ci = (idx.get(f, _ABSENT) for f in ("description", "status", "priority", "due_date", "category"))
    width = layout.width
    title_rule, description_rule, category_rule = rules.title, rules.description, rules.category
    statuses, convert_status = _cached(layout.status, {"": rules.DEFAULT_STATUS})
    priorities, convert_priority = _cached(layout.priority, {"": rules.DEFAULT_PRIORITY})
    dates, convert_due = _cached(layout.due_date, {"": None})
    categories: dict[str, str | None] = {}
    cache_max = CACHE_MAX
    section = layout.section  # a one-item list: the category of rows whose file has no category column

    def fail(cells: Sequence[object], row: int, problems: list[tuple[str | None, str, object]], errors: list) -> int:
        raw = [as_text(c) for c in cells]
        for column, message, value in problems:
            shown = None if value is None else _short(as_text(value), MAX_VALUE_CHARS)
            errors.append(RowError(row, column, message, shown, raw))
        return FAILED

    def check(
        cells: Sequence[object], row: int, valid: list[ValidRow], errors: list[RowError], warnings: list[RowWarning]
    ) -> int:
        n = len(cells)
        problems: list[tuple[str | None, str, object]] | None = None

        value = cells[ti] if ti < n else ""
        try:
            title = title_rule(value) if type(value) is str else title_rule(as_text(value))
        except ValueError as exc:
            if is_blank(cells):
                return BLANK
            title = ""
            problems = [("title", str(exc), value)]

        value = cells[di] if di < n else ""
        if value == "":
            description = None
        else:
            try:
                if type(value) is str:
                    description = None if value.isspace() else description_rule(value)
                else:
                    text = as_text(value)
                    description = description_rule(text) if text.strip() else None
            except ValueError as exc:
                description = None
                problems = problems or []
                problems.append(("description", str(exc), value))

        value = cells[si] if si < n else ""
        status = statuses.get(value) if type(value) is str else None
        if status is None:
            try:
                status = convert_status(value)
            except ValueError as exc:
                status = rules.DEFAULT_STATUS
                problems = problems or []
                problems.append(("status", str(exc), value))

        value = cells[pi] if pi < n else ""
        priority = priorities.get(value) if type(value) is str else None
        if priority is None:
            try:
                priority = convert_priority(value)
            except ValueError as exc:
                priority = rules.DEFAULT_PRIORITY
                problems = problems or []
                problems.append(("priority", str(exc), value))

        value = cells[ui] if ui < n else ""
        due = dates.get(value, _MISS) if type(value) is str else _MISS  # one lookup, None being a value
        if due is _MISS:
            try:
                due = convert_due(value)
            except Lenient as exc:
                due = None
                warnings.append(RowWarning(row, "due_date", str(exc), _short(as_text(value), MAX_VALUE_CHARS)))
            except ValueError as exc:
                due = None
                problems = problems or []
                problems.append(("due_date", str(exc), value))

        value = cells[ci] if ci < n else section[0]
        category = categories.get(value, _MISS) if type(value) is str else _MISS
        if category is _MISS:
            try:
                if type(value) is str:
                    category = category_rule(value)
                    if len(categories) < cache_max:
                        categories[value] = category
                else:
                    category = category_rule(as_text(value))
            except ValueError as exc:
                category = None
                problems = problems or []
                problems.append(("category", str(exc), value))

        if n > width and not is_blank(cells[width:]):
            problems = problems or []
            problems.append(
                (
                    None,
                    f"This row has {n} cells but the header has {width} columns; "
                    "check for a delimiter inside a value that is not quoted",
                    None,
                )
            )

        if problems:
            return fail(cells, row, problems, errors)
        valid.append((title, description, status, priority, due, category, row))  # type: ignore[arg-type]
        return OK

    if layout.sections is None:
        return check
    return _with_sections(check, layout, fail)


def _with_sections(check: Checker, layout: Layout, fail: Callable) -> Checker:
    """Todoist's rows: `task` rows are tasks, a `section` row names the category of the tasks after it,
    `note` rows (comments) and blank rows are skipped. State crosses rows, so resuming replays it
    (`Layout.track`)."""
    kind_at, text_at = layout.sections  # type: ignore[misc]
    section = layout.section

    def check_sections(
        cells: Sequence[object], row: int, valid: list[ValidRow], errors: list[RowError], warnings: list[RowWarning]
    ) -> int:
        kind = as_text(cells[kind_at]).strip().casefold() if kind_at < len(cells) else ""
        if kind == "task":
            return check(cells, row, valid, errors, warnings)
        if kind == "section":
            section[0] = as_text(cells[text_at]).strip() if text_at < len(cells) else ""
            return BLANK
        if kind == "note" or is_blank(cells):
            return BLANK
        shown = cells[kind_at] if kind_at < len(cells) else ""
        return fail(cells, row, [(None, "TYPE must be task, section or note", shown)], errors)

    return check_sections


def check_rows(lines: Iterator[Sequence[object]], size: int, row: int, check: Checker) -> Chunk:
    """Check up to `size` rows from `lines`, numbered after `row`. The chunk's `rows_processed` and
    `progress` are left for the reader to fill in; `rows` is 0 when `lines` was exhausted."""
    valid: list[ValidRow] = []
    errors: list[RowError] = []
    warnings: list[RowWarning] = []
    # A comprehension, then counts in C: no branch per row in Python.
    outcomes = [check(cells, n, valid, errors, warnings) for n, cells in zip(count(row + 1), islice(lines, size))]
    return Chunk(valid, errors, 0, len(outcomes), outcomes.count(FAILED), outcomes.count(BLANK), 0.0, warnings)
