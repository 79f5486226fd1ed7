"""Request and response bodies of the tasks API.

Every input field is checked by the one function of `rules` for it (PlainValidator: the rule alone
decides what is accepted), so the API and the bulk importer can never disagree on what a valid task is.
Responses are built as plain dicts straight from the rows (no model per row on the hot path); the
*Out models describe them for the OpenAPI document.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema

from service.tasks import rules

Status = Literal["todo", "in_progress", "done"]
Sort = Literal["created_at", "-created_at", "due_date", "-due_date", "priority", "-priority"]
SEARCH_MAX = 200


def _date_schema(description: str, *, nullable: bool = False) -> dict[str, Any]:
    return {
        "type": ["string", "null"] if nullable else "string",
        "format": "date",
        "not": {"enum": list(rules.UNSTORABLE_DATES)},
        "description": description,
    }


def _text_schema(max_length: int, pattern: str, description: str | None = None, *, nullable: bool = False) -> Any:
    schema: dict[str, Any] = {
        "type": ["string", "null"] if nullable else "string",
        "maxLength": max_length,
        "pattern": pattern,
    }
    if description:
        schema["description"] = description
    return WithJsonSchema(schema)


Title = Annotated[
    str,
    PlainValidator(rules.title),
    _text_schema(rules.TITLE_MAX, rules.NOT_BLANK, "Kept without its leading and trailing spaces"),
]
Description = Annotated[
    str | None,
    PlainValidator(rules.description),
    _text_schema(rules.DESCRIPTION_MAX, rules.NO_NUL, nullable=True),
]
TaskStatus = Annotated[str, PlainValidator(rules.status), WithJsonSchema({"enum": list(rules.STATUSES)})]
PRIORITY_MEANING = "1 is the most urgent, 5 the least; sorting by `priority` ascending lists the most urgent first"
Priority = Annotated[
    int,
    PlainValidator(rules.priority),
    WithJsonSchema({"type": "integer", "minimum": 1, "maximum": 5, "description": PRIORITY_MEANING}),
]
DueDate = Annotated[
    date | None,
    PlainValidator(rules.due_date),
    WithJsonSchema(_date_schema("YYYY-MM-DD, or null for none", nullable=True)),
]
CategoryName = Annotated[
    str | None,
    PlainValidator(rules.category),
    _text_schema(
        rules.CATEGORY_MAX,
        rules.NO_NUL,
        "A category name (created if new; matched case-insensitively); null or only spaces for none",
        nullable=True,
    ),
]
CategoryFilter = Annotated[
    str | None,
    PlainValidator(rules.category),
    _text_schema(rules.CATEGORY_MAX, rules.NO_NUL, "Only tasks in the category of this name (case-insensitively)"),
]


def _new_category_name(value: object) -> str:
    name = rules.category(value)
    if name is None:
        raise ValueError("Category name must not be empty")
    return name


def _search(value: object) -> str | None:
    if not isinstance(value, str):
        raise ValueError("Search text must be text")
    if len(value) > SEARCH_MAX:
        raise ValueError(f"Search text must be at most {SEARCH_MAX} characters")
    if "\x00" in value:
        raise ValueError("Search text must not contain NUL characters")
    return value.strip() or None


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskIn(Strict):
    title: Title
    description: Description = None
    status: TaskStatus = rules.DEFAULT_STATUS
    priority: Priority = rules.DEFAULT_PRIORITY
    due_date: DueDate = None
    category: CategoryName = None


class TaskPatch(Strict):
    """Only the fields sent change; null clears description, due_date and category."""

    title: Title = None  # type: ignore[assignment]  (absent is fine; null is refused by the rule)
    description: Description = None
    status: TaskStatus = None  # type: ignore[assignment]
    priority: Priority = None  # type: ignore[assignment]
    due_date: DueDate = None
    category: CategoryName = None


class TaskQuery(Strict):
    """The query string of GET /tasks. `status` may repeat (any of them); the others are given once."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: tuple[TaskStatus, ...] = ()
    category: CategoryFilter = None
    q: Annotated[
        str | None,
        PlainValidator(_search),
        _text_schema(
            SEARCH_MAX,
            rules.NO_NUL,
            "Words to search for in titles: a task matches when each word begins a word of its title "
            "(descriptions are not searched), ignoring case and accents (`plumb` finds 'Plumber', `resume` "
            "finds 'Résumé'). Punctuation separates words; a q without letters or digits matches no task.",
        ),
    ] = None
    due_before: Annotated[
        date | None,
        PlainValidator(rules.due_date),
        WithJsonSchema(_date_schema("Due strictly before this day (tasks due on it are left out)")),
    ] = None
    due_after: Annotated[
        date | None,
        PlainValidator(rules.due_date),
        WithJsonSchema(_date_schema("Due strictly after this day (tasks due on it are left out)")),
    ] = None
    overdue: bool | None = Field(
        None, description="true: only tasks due before today (UTC) and not done; false: only the others"
    )
    sort: Sort = Field(
        "-created_at",
        description="Tasks without due date come last by due_date, first by -due_date; priority lists the most "
        "urgent (1) first, -priority the least urgent (5) first",
    )
    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = Field(None, min_length=1, max_length=512, description="next_cursor of the previous page")


class CategoryPatch(Strict):
    name: Annotated[
        str,
        PlainValidator(_new_category_name),
        _text_schema(rules.CATEGORY_MAX, rules.NOT_BLANK, "Kept without its leading and trailing spaces"),
    ]


class TaskOut(BaseModel):
    id: UUID
    title: str
    description: str | None
    status: Status
    priority: int = Field(ge=1, le=5, description=PRIORITY_MEANING)
    due_date: date | None
    category: str | None
    created_at: datetime
    updated_at: datetime
    import_id: UUID | None = Field(description="The import that created the task, while that import exists")


class TaskPage(BaseModel):
    items: list[TaskOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


class CategoryOut(BaseModel):
    id: UUID
    name: str
    task_count: int
    created_at: datetime


class CategoryList(BaseModel):
    items: list[CategoryOut]
