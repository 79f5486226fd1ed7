"""From a row of cells to a row ready for COPY, or to the errors a user needs to fix it.

Shared by the CSV and the Excel readers. Every field goes through `service.tasks.rules`, so an import
accepts exactly what `POST /tasks` accepts; what is added here is only the coercion a file needs first
(empty cell -> default, "3.0" -> 3, "In Progress" -> "in_progress", Excel numbers and dates).

The hot path runs per row on million-row files: one closure, plain tuples, no dict per row, and lookup
tables built from the rules themselves so the common values cost a dict hit instead of a call.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from itertools import islice

from service.imports.exceptions import UnreadableFile
from service.tasks import rules

FIELDS = ("title", "description", "status", "priority", "due_date", "category")
# What one valid row is: the task fields in COPY order, then the spreadsheet row number it came from.
VALID_COLUMNS = (*FIELDS, "row")
ValidRow = tuple[str, str | None, str, int, date | None, str | None, int]

MAX_WARNED_COLUMNS = 20
MAX_VALUE_CHARS = 100  # RowError.value is for display; the whole cell stays in RowError.raw
_CACHE_MAX = 10_000  # distinct due dates / categories remembered per reader
_ABSENT = sys.maxsize  # index of a column the file does not have: never < len(cells), so reads as ""

# Precomputed through the rules so a hit is exactly what the rule would have returned.
_PRIORITIES: dict[str, int] = {str(p): rules.priority(p) for p in range(1, 6)}
_STATUSES: dict[str, str] = {s: rules.status(s) for s in rules.STATUSES}


@dataclass(frozen=True, slots=True)
class RowError:
    """One bad field (or, with column None, a problem with the whole row)."""

    row: int  # as a spreadsheet shows it: the header is row 1 when it is the first line
    column: str | None  # canonical field name ("priority"), None for a row-level problem
    message: str
    value: str | None  # the offending cell as text, shortened for display
    raw: list[str]  # the row's cells as text, as in the file, for errors.csv


@dataclass(slots=True)
class Chunk:
    valid: list[ValidRow]
    errors: list[RowError]
    rows_consumed: int  # data rows consumed since the header, in total: pass as `skip=` to resume after it
    rows: int  # data rows consumed by this chunk, blank ones included
    failed: int  # rows of this chunk with at least one error
    skipped: int  # blank rows of this chunk
    progress: float  # 0..1


@dataclass(slots=True)
class Columns:
    """Where each task field sits in a row, from the header."""

    header: list[str]  # the header cells as text, as in the file
    index: dict[str, int]  # field -> 0-based cell index, only for fields the file has
    warnings: list[str] = field(default_factory=list)

    @property
    def width(self) -> int:
        return len(self.header)


def normalise_name(cell: str) -> str:
    # "  Due Date " and "due-date" both mean due_date: trimmed, case-insensitive, spaces/hyphens as "_".
    return "_".join(cell.replace("-", " ").split()).casefold()


def map_header(header: list[str]) -> Columns:
    """Find the task fields in a header row; raise UnreadableFile without a title column."""
    index: dict[str, int] = {}
    unknown: list[str] = []
    for i, cell in enumerate(header):
        name = normalise_name(cell.lstrip("\ufeff"))
        if not name:
            continue  # unnamed columns (often just formatting left in a sheet) are ignored silently
        if name in FIELDS:
            if name in index:
                raise UnreadableFile(f"The column '{name}' appears more than once in the header row.")
            index[name] = i
        else:
            unknown.append(cell.strip())
    if "title" not in index:
        found = ", ".join(f"'{_short(c.strip(), 40)}'" for c in header[:10] if c.strip()) or "nothing"
        raise UnreadableFile(
            "The file has no 'title' column. The first row must name the columns: title (required), "
            f"description, status, priority, due_date, category. Found: {found}."
        )
    warnings = [f"Unknown column '{_short(name, 50)}' ignored" for name in unknown[:MAX_WARNED_COLUMNS]]
    if len(unknown) > MAX_WARNED_COLUMNS:
        warnings.append(f"{len(unknown) - MAX_WARNED_COLUMNS} more unknown columns ignored")
    return Columns(header=header, index=index, warnings=warnings)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def as_text(value: object) -> str:
    """A cell as the text a user sees: 42 not 42.0, TRUE/FALSE, ISO dates."""
    if type(value) is str:
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return repr(value) if math.isfinite(value) else ""
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    return str(value)


def is_blank(cells: Sequence[object]) -> bool:
    for cell in cells:
        if cell is None or cell == "":
            continue
        if type(cell) is str and cell.isspace():
            continue
        return False
    return True


# --- coercion before the rules, off the fast path ------------------------------------------------------


def coerce_status(value: object) -> str:
    text = as_text(value)
    if not text.strip():
        return rules.DEFAULT_STATUS
    # "In Progress", " DONE ", "in-progress" -> the canonical spelling; anything else fails in the rule.
    return rules.status("_".join(text.replace("-", " ").split()).casefold())


def coerce_priority(value: object) -> int:
    if isinstance(value, bool):
        return rules.priority(value)  # raises: TRUE is not a priority
    if isinstance(value, int):
        return rules.priority(value)
    if isinstance(value, float):
        return rules.priority(int(value) if value.is_integer() else value)
    if not isinstance(value, str):
        return rules.priority(value)  # raises with the rule's message
    text = value.strip()
    if not text:
        return rules.DEFAULT_PRIORITY
    try:
        number = int(text)
    except ValueError:
        try:
            real = float(text)  # "3.0", as spreadsheets export whole numbers
        except ValueError:
            return rules.priority(value)  # raises "Priority must be a whole number from 1 to 5"
        if not real.is_integer():
            return rules.priority(value)  # raises, as above
        number = int(real)
    return rules.priority(number)


def coerce_due_date(value: object) -> date | None:
    if isinstance(value, str):
        text = value.strip()
        return rules.due_date(text) if text else None
    if value is None:
        return None
    return rules.due_date(value)  # dates and datetimes pass (a datetime becomes its date); numbers fail


def coerce_description(value: object) -> str | None:
    text = as_text(value)
    return rules.description(text) if text.strip() else None


# --- the per-row check ------------------------------------------------------------------------------------

Checker = Callable[[Sequence[object], int, list[ValidRow], list[RowError]], int]
OK, FAILED, BLANK = 0, 1, 2


def make_checker(columns: Columns) -> Checker:
    """Build the per-row function: `check(cells, row, valid, errors) -> OK | FAILED | BLANK`.

    It appends a ValidRow to `valid`, or one RowError per bad field to `errors`; a blank row appends nothing.
    `cells` are strings (CSV) or Excel values (str, int, float, bool, date, datetime, ... with "" for empty).
    """
    idx = columns.index
    ti = idx["title"]
    di, si, pi, ui, ci = (idx.get(f, _ABSENT) for f in ("description", "status", "priority", "due_date", "category"))
    width = columns.width
    title_rule, description_rule, category_rule = rules.title, rules.description, rules.category
    priorities, statuses = _PRIORITIES, _STATUSES
    default_status, default_priority = rules.DEFAULT_STATUS, rules.DEFAULT_PRIORITY
    dates: dict[str, date] = {}
    categories: dict[str, str | None] = {}
    cache_max = _CACHE_MAX
    due_rule = rules.due_date

    def fail(cells: Sequence[object], row: int, problems: list[tuple[str | None, str, object]], errors: list) -> int:
        raw = [as_text(c) for c in cells]
        for column, message, value in problems:
            shown = None if value is None else _short(as_text(value), MAX_VALUE_CHARS)
            errors.append(RowError(row, column, message, shown, raw))
        return FAILED

    def check(cells: Sequence[object], row: int, valid: list[ValidRow], errors: list[RowError]) -> int:
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
                    description = coerce_description(value)
            except ValueError as exc:
                description = None
                problems = problems or []
                problems.append(("description", str(exc), value))

        value = cells[si] if si < n else ""
        status = statuses.get(value) if type(value) is str else None
        if status is None:
            try:
                status = coerce_status(value) if value != "" else default_status
            except ValueError as exc:
                status = default_status
                problems = problems or []
                problems.append(("status", str(exc), value))

        value = cells[pi] if pi < n else ""
        priority = priorities.get(value) if type(value) is str else None
        if priority is None:
            try:
                priority = coerce_priority(value) if value != "" else default_priority
            except ValueError as exc:
                priority = default_priority
                problems = problems or []
                problems.append(("priority", str(exc), value))

        value = cells[ui] if ui < n else ""
        if value == "":
            due = None
        elif type(value) is str and value in dates:
            due = dates[value]
        else:
            try:
                if type(value) is str and len(value) == 10:
                    due = due_rule(value)
                    if len(dates) < cache_max:
                        dates[value] = due  # type: ignore[assignment]
                else:
                    due = coerce_due_date(value)
            except ValueError as exc:
                due = None
                problems = problems or []
                problems.append(("due_date", str(exc), value))

        value = cells[ci] if ci < n else ""
        if type(value) is str and value in categories:
            category = categories[value]
        else:
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
        valid.append((title, description, status, priority, due, category, row))
        return OK

    return check


def check_rows(lines: Iterator[Sequence[object]], size: int, row: int, check: Checker) -> Chunk:
    """Check up to `size` rows from `lines`, numbered after `row`. The chunk's `rows_consumed` and
    `progress` are left for the reader to fill in; `rows` is 0 when `lines` was exhausted."""
    valid: list[ValidRow] = []
    errors: list[RowError] = []
    failed = blank = rows = 0
    for rows, cells in enumerate(islice(lines, size), start=1):
        outcome = check(cells, row + rows, valid, errors)
        if outcome == FAILED:
            failed += 1
        elif outcome == BLANK:
            blank += 1
    return Chunk(valid, errors, 0, rows, failed, blank, 0.0)
