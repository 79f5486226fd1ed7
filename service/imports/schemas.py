"""Query strings, request and response bodies of the imports API."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from service.http.openapi import Body
from service.imports.files.presets import CHOICES as PRESETS
from service.notifications import webhooks


class PageQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = Field(None, max_length=512)


class ImportOut(BaseModel):
    id: UUID
    status: Literal["queued", "processing", "completed", "failed", "cancelled"]
    filename: str
    size_bytes: int
    dry_run: bool
    rows_processed: int
    rows_imported: int
    rows_failed: int
    progress: float = Field(ge=0, le=1, description="Share of the file read so far")
    warnings: list[str]
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    webhook_url: str | None


IMPORT_FIELDS = tuple(ImportOut.model_fields)


def import_out(job: Mapping[str, Any]) -> dict[str, Any]:
    """A job row as the API shows it: ImportOut's fields, in its order, with the values the database holds
    (already of the model's types, so not validated a second time)."""
    return {name: job[name] for name in IMPORT_FIELDS}


class ImportPage(BaseModel):
    items: list[ImportOut]
    next_cursor: str | None


class DeliveryOut(BaseModel):
    attempt: int
    status_code: int | None = Field(description="null when the receiver could not be reached")
    error: str | None
    duration_ms: int | None
    created_at: datetime


class DeliveryList(BaseModel):
    items: list[DeliveryOut]


class RowErrorOut(BaseModel):
    row: int = Field(description="Row number as a spreadsheet shows it (header = 1)")
    column: str | None
    message: str
    value: str | None


class RowErrorPage(BaseModel):
    items: list[RowErrorOut]
    next_cursor: str | None


TaskField = Literal["title", "description", "status", "priority", "due_date", "category"]


class ColumnMatch(BaseModel):
    header: str = Field(description="The header cell as written in the file")
    field: TaskField | None = Field(description="The task field this column fills, or null: ignored")
    matched: Literal["exact", "synonym", "preset", "explicit"] | None = Field(
        description="How: the field's own name, one of its synonyms, the recognised format's column, or `mapping`"
    )


class PreviewTask(BaseModel):
    title: str
    description: str | None
    status: Literal["todo", "in_progress", "done"]
    priority: int = Field(ge=1, le=5, description="1 is the most urgent, 5 the least")
    due_date: date | None
    category: str | None


class PreviewIssue(BaseModel):
    column: str | None = Field(description="The task field, or null for the whole row")
    message: str
    value: str | None


class PreviewRow(BaseModel):
    row: int = Field(description="Row number as a spreadsheet shows it")
    task: PreviewTask | None = Field(description="The task as it would be imported; null when the row has errors")
    errors: list[PreviewIssue]
    warnings: list[PreviewIssue]


class PreviewOut(BaseModel):
    format: Literal["csv", "xlsx", "xls"]
    encoding: str | None = Field(description="CSV only: utf-8, cp1252, utf-16-le or utf-16-be")
    delimiter: str | None = Field(description="CSV only")
    preset: Literal["todoist", "asana", "jira", "clickup"] | None = Field(
        description="The export format recognised (or named by `preset`), null for none"
    )
    header_row: int = Field(ge=1, description="Row number of the header row (title lines above it are skipped)")
    headers: list[str]
    mapping: list[ColumnMatch] = Field(description="One entry per header cell, in file order")
    unmatched: list[str] = Field(description="Headers no field was matched to: ignored on import")
    warnings: list[str]
    rows: list[PreviewRow] = Field(description="The first data rows (about 20) as they would be imported")
    partial: bool = Field(description="Only the start of the file was read (enough for the preview)")


class ImportEventData(BaseModel):
    job_id: UUID
    status: Literal["completed", "failed", "cancelled"]
    rows_processed: int
    rows_imported: int
    rows_failed: int
    finished_at: datetime
    completed_at: datetime = Field(description="The same time as finished_at")
    error: str | None = Field(None, description="Why the import failed: import.failed events only")


class ImportEvent(BaseModel):
    """The body POSTed to an import's webhook_url when the job ends, signed per Standard Webhooks
    (webhook-id, webhook-timestamp, webhook-signature with WEBHOOK_SECRET)."""

    type: Literal["import.completed", "import.failed", "import.cancelled"]
    timestamp: datetime = Field(description="When the event was queued")
    data: ImportEventData


# Multipart bodies (uploads) and the event stream: described by hand, as they are not JSON models.
FILE_PROPERTY = {
    "type": "string",
    "format": "binary",
    "description": ".csv (or tab-delimited .tsv/.txt), .xlsx or .xls, up to MAX_UPLOAD_BYTES",
}
# The kind of file is told by its name and checked against its content.
FILE_ENCODING = {
    "file": {
        "headers": {
            "Content-Disposition": {
                "description": "The file's name, ending in .csv, .tsv, .txt, .xlsx or .xls",
                "schema": {"type": "string"},
                "example": 'form-data; name="file"; filename="tasks.csv"',
            }
        }
    }
}
OPTION_PROPERTIES: dict[str, Any] = {
    "mapping": {
        "type": "string",
        "description": "A JSON object of source header -> field name (title, description, status, priority, "
        "due_date, category) or null to ignore the column; it overrides the matching by header names. A field "
        "or header that does not exist answers 422.",
        "example": '{"Task": "title", "When": "due_date", "Owner": null}',
    },
    "preset": {
        "type": "string",
        "enum": list(PRESETS),
        "description": "The export format, when it should not be recognised from the header row "
        "(none: match headers by their names only)",
    },
}
UPLOAD_BODY = Body(
    "multipart/form-data",
    {
        "type": "object",
        "required": ["file"],
        "additionalProperties": False,
        "properties": {
            "file": FILE_PROPERTY,
            "webhook_url": {
                "type": "string",
                "format": "uri",
                "maxLength": webhooks.MAX_URL_LENGTH,
                "pattern": webhooks.URL_PATTERN,
                "description": "POSTed a signed event when the job ends (see the webhooks of this document); "
                "http or https, without user name or password",
            },
            "dry_run": {"type": "boolean", "description": "Validate every row, import nothing"},
            **OPTION_PROPERTIES,
        },
    },
    encoding=FILE_ENCODING,
)
PREVIEW_BODY = Body(
    "multipart/form-data",
    {
        "type": "object",
        "required": ["file"],
        "additionalProperties": False,
        "properties": {"file": FILE_PROPERTY, **OPTION_PROPERTIES},
    },
    encoding=FILE_ENCODING,
)
# The text fields each upload takes, besides the file: exactly those its body above describes.
FORM_FIELDS = frozenset(UPLOAD_BODY.schema["properties"]) - {"file"}
PREVIEW_FIELDS = frozenset(PREVIEW_BODY.schema["properties"]) - {"file"}
# One server-sent event (comments, the keep-alives, are not events).
EVENT_STREAM = Body(
    "text/event-stream",
    {
        "type": "object",
        "required": ["event", "data"],
        "properties": {
            "event": {"enum": ["progress", "end"]},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "description": 'The job as GET /imports/{id} shows it; {"status": "deleted"} at the end of '
                "a deleted job's stream",
            },
        },
    },
)
