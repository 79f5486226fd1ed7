"""Query strings and response bodies of the imports API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


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
