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

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema

from service.tasks import rules

Status = Literal["todo", "in_progress", "done"]
Sort = Literal["created_at", "-created_at", "due_date", "-due_date", "priority", "-priority"]
SEARCH_MAX = 200


def _date_schema(description: str) -> dict[str, Any]:
    return {"type": "string", "format": "date", "description": description}


Title = Annotated[
    str,
    PlainValidator(rules.title),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": rules.TITLE_MAX, "description": "Trimmed"}),
]
Description = Annotated[
    str | None,
    PlainValidator(rules.description),
    WithJsonSchema({"type": ["string", "null"], "maxLength": rules.DESCRIPTION_MAX}),
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
    WithJsonSchema({"type": ["string", "null"], "format": "date", "description": "YYYY-MM-DD, or null for none"}),
]
CategoryName = Annotated[
    str | None,
    PlainValidator(rules.category),
    WithJsonSchema(
        {
            "type": ["string", "null"],
            "maxLength": rules.CATEGORY_MAX,
            "description": "A category name (created if new; matched case-insensitively), or null for none",
        }
    ),
]


def _new_category_name(value: object) -> str:
    name = rules.category(value)
    if name is None:
        raise ValueError("Category name must not be empty")
    return name


def _search(value: object) -> str | None:
    if not isinstance(value, str):
        raise ValueError("Search text must be text")
    value = value.strip()
    if len(value) > SEARCH_MAX:
        raise ValueError(f"Search text must be at most {SEARCH_MAX} characters")
    if "\x00" in value:
        raise ValueError("Search text must not contain NUL characters")
    return value or None


def _only_true(value: bool | None) -> bool | None:
    # "overdue=false" could mean "not overdue" or "no overdue filter": neither is guessed.
    if value is False:
        raise ValueError("Only overdue=true is supported; leave it out to list every task")
    return value


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
    category: CategoryName = None
    q: Annotated[
        str | None,
        PlainValidator(_search),
        WithJsonSchema({"type": "string", "maxLength": SEARCH_MAX, "description": "Substring of title/description"}),
    ] = None
    due_before: Annotated[
        date | None, PlainValidator(rules.due_date), WithJsonSchema(_date_schema("Due strictly before this day"))
    ] = None
    due_after: Annotated[
        date | None, PlainValidator(rules.due_date), WithJsonSchema(_date_schema("Due strictly after this day"))
    ] = None
    overdue: Annotated[bool | None, AfterValidator(_only_true)] = Field(
        None, description="true: only tasks due before today (UTC) and not done"
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
        WithJsonSchema({"type": "string", "minLength": 1, "maxLength": rules.CATEGORY_MAX}),
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
