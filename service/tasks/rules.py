"""The field rules of a task, as plain functions shared by the API schemas and the bulk importer.

Pure and allocation-light on purpose: the importer runs them on every row of million-row files, where
building a pydantic model per row would cost more than the database write.
"""

from __future__ import annotations

import re
from datetime import date, datetime

STATUSES = ("todo", "in_progress", "done")
DEFAULT_STATUS = "todo"
DEFAULT_PRIORITY = 3
TITLE_MAX = 200
DESCRIPTION_MAX = 10_000
CATEGORY_MAX = 100
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
# The same rules as JSON Schema patterns, for the OpenAPI document: no NUL; and some character that is
# neither NUL nor whitespace (what str.strip() removes is what Python's \s matches).
NO_NUL = r"^[^\x00]*$"
NOT_BLANK = r"^[^\x00]*[^\s\x00][^\x00]*$"
# Dates asyncpg cannot store as themselves (it sends date.min and date.max as -infinity and infinity).
UNSTORABLE_DATES = (date.min.isoformat(), date.max.isoformat())


def _has_nul(what: str) -> ValueError:
    # PostgreSQL text cannot hold U+0000: caught here, it is a field error instead of a failed insert. The
    # test itself (`"\x00" in value`) is written out in each rule: one call less per field of an imported row.
    return ValueError(f"{what} must not contain NUL characters")


def title(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("Title must be text")
    # The length as sent, spaces included: what a client (and the schema's maxLength) can check.
    if len(value) > TITLE_MAX:
        raise ValueError(f"Title must be at most {TITLE_MAX} characters")
    value = value.strip()
    if not value:
        raise ValueError("Title must not be empty")
    if "\x00" in value:
        raise _has_nul("Title")
    return value


def description(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("Description must be text")
    if len(value) > DESCRIPTION_MAX:
        raise ValueError(f"Description must be at most {DESCRIPTION_MAX} characters")
    if "\x00" in value:
        raise _has_nul("Description")
    return value


def status(value: object) -> str:
    if value not in STATUSES:
        raise ValueError(f"Status must be one of {', '.join(STATUSES)}")
    return value  # type: ignore[return-value]


def priority(value: object) -> int:
    # 5.0 is the integer 5 to JSON (and JSON Schema): taken as such. bool is an int subclass; True is not a priority.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("Priority must be a whole number from 1 to 5")
    if not 1 <= value <= 5:
        raise ValueError("Priority must be from 1 to 5")
    return value


def due_date(value: object) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        value = value.date()
    elif isinstance(value, str):
        # Exactly YYYY-MM-DD: fromisoformat alone would also take week dates such as 2025-W01-1.
        if not _ISO_DATE.fullmatch(value):
            raise ValueError("Due date must be a date as YYYY-MM-DD")
        try:
            value = date.fromisoformat(value)
        except ValueError:
            raise ValueError("Due date must be a date as YYYY-MM-DD") from None
    if not isinstance(value, date):
        raise ValueError("Due date must be a date as YYYY-MM-DD")
    # asyncpg stores date.min/date.max as -infinity/infinity, which sort with "no due date".
    if not date.min < value < date.max:
        raise ValueError("Due date must be between 0001-01-02 and 9999-12-30")
    return value


def category(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("Category must be text")
    if len(value) > CATEGORY_MAX:
        raise ValueError(f"Category must be at most {CATEGORY_MAX} characters")
    value = value.strip()
    if not value:
        return None
    if "\x00" in value:
        raise _has_nul("Category")
    return value
