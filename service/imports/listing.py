"""The user's import jobs and a job's row errors, in keyset pages; and errors.csv, the failed rows as
they were in the file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

from service import pagination
from service.context import Context
from service.db import Queries
from service.imports.files import FIELDS, csv_line, error_record, errors_header
from service.imports.files.export import BOM
from service.imports.schemas import import_out
from service.imports.service import get_job

Q = Queries("imports")
CSV_BATCH = 1000  # failed rows read per query while errors.csv streams


def _scope(user_id: UUID, what: bytes) -> bytes:
    return what + b":" + user_id.bytes


async def list_jobs(ctx: Context, user_id: UUID, limit: int, cursor: str | None) -> dict[str, Any]:
    """The user's jobs, newest first."""
    keyset = pagination.Keyset(ctx.settings.secret_key, _scope(user_id, b"imports"))
    after = keyset.position(cursor or None, _job_position)
    if after is None:
        rows = await ctx.db.fetch_all(Q.list_jobs_first, user_id=user_id, limit=limit + 1)
    else:
        created_at, last_id = after
        rows = await ctx.db.fetch_all(
            Q.list_jobs_after, user_id=user_id, created_at=created_at, id=last_id, limit=limit + 1
        )
    page = keyset.page(rows, limit, lambda row: [row["created_at"].isoformat(), str(row["id"])])
    return {"items": [import_out(r) for r in page.items], "next_cursor": page.next_cursor}


def _job_position(values: list[Any]) -> tuple[datetime, UUID]:
    created_at, job_id = values
    return datetime.fromisoformat(created_at), UUID(job_id)


async def errors_page(ctx: Context, user_id: UUID, job_id: str, limit: int, cursor: str | None) -> dict[str, Any]:
    """A job's row errors in row order."""
    uid = (await get_job(ctx, user_id, job_id))["id"]
    keyset = pagination.Keyset(ctx.settings.secret_key, _scope(user_id, b"import-errors:" + uid.bytes))
    after = keyset.position(cursor or None, _error_position)
    if after is None:
        rows = await ctx.db.fetch_all(Q.errors_first, job_id=uid, limit=limit + 1)
    else:
        row_number, seq = after
        rows = await ctx.db.fetch_all(Q.errors_after, job_id=uid, row_number=row_number, seq=seq, limit=limit + 1)
    page = keyset.page(rows, limit, lambda row: [row["row_number"], row["seq"]])
    return {
        "items": [
            {"row": r["row_number"], "column": r["column_name"], "message": r["message"], "value": r["value"]}
            for r in page.items
        ],
        "next_cursor": page.next_cursor,
    }


def _error_position(values: list[Any]) -> tuple[int, int]:
    row_number, seq = values
    if not isinstance(row_number, int) or not isinstance(seq, int):
        raise ValueError("not a row error's position")
    return row_number, seq


class ErrorsCsv(NamedTuple):
    filename: str
    lines: AsyncIterator[bytes]


async def errors_csv(ctx: Context, user_id: UUID, job_id: str) -> ErrorsCsv:
    """errors.csv: the failed rows as they were in the file, plus an `error` column, ready to fix and
    re-upload. Cells are defused so a spreadsheet never runs them as formulas."""
    job = await get_job(ctx, user_id, job_id)
    uid = job["id"]
    header = list(job["header"] or FIELDS)

    async def lines() -> AsyncIterator[bytes]:
        yield (BOM + csv_line(errors_header(header))).encode()
        after = 0
        while True:
            rows = await ctx.db.fetch_all(Q.failed_rows_after, job_id=uid, row_number=after, limit=CSV_BATCH)
            if not rows:
                return
            yield "".join(csv_line(error_record(header, r["raw"] or [], r["error"])) for r in rows).encode()
            after = rows[-1]["row_number"]

    return ErrorsCsv(f"import-{uid}-errors.csv", lines())
