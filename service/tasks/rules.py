"""The field rules of a task, as plain functions shared by the API schemas and the bulk importer.

Pure and allocation-light on purpose: the importer runs them on every row of million-row files, where
building a pydantic model per row would cost more than the database write.
"""

from __future__ import annotations

from datetime import date, datetime

STATUSES = ("todo", "in_progress", "done")
DEFAULT_STATUS = "todo"
DEFAULT_PRIORITY = 3
TITLE_MAX = 200
DESCRIPTION_MAX = 10_000
CATEGORY_MAX = 100


def title(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("Title must be text")
    value = value.strip()
    if not value:
        raise ValueError("Title must not be empty")
    if len(value) > TITLE_MAX:
        raise ValueError(f"Title must be at most {TITLE_MAX} characters")
    return value


def description(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("Description must be text")
    if len(value) > DESCRIPTION_MAX:
        raise ValueError(f"Description must be at most {DESCRIPTION_MAX} characters")
    return value


def status(value: object) -> str:
    if value not in STATUSES:
        raise ValueError(f"Status must be one of {', '.join(STATUSES)}")
    return value  # type: ignore[return-value]


def priority(value: object) -> int:
    # bool is an int subclass; True is not a priority.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("Priority must be a whole number from 1 to 5")
    if not 1 <= value <= 5:
        raise ValueError("Priority must be from 1 to 5")
    return value


def due_date(value: object) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            if len(value) != 10:
                raise ValueError
            return date.fromisoformat(value)
        except ValueError:
            raise ValueError("Due date must be a date as YYYY-MM-DD") from None
    raise ValueError("Due date must be a date as YYYY-MM-DD")


def category(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("Category must be text")
    value = value.strip()
    if not value:
        return None
    if len(value) > CATEGORY_MAX:
        raise ValueError(f"Category must be at most {CATEGORY_MAX} characters")
    return value
