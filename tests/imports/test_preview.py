"""POST /imports/preview, and the checks POST /imports makes at upload: mapping, preset, empty files."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.imports.files.test_formats import TODOIST
from tests.imports.helpers import write_xlsx
from tests.imports.test_jobs import user
from tests.processes import running_stack
from tests.support import PASSWORD, assert_problem, db_value, insert_account, upload, wait_job


async def preview(client, headers, content: bytes, name: str = "tasks.csv", **fields: str):
    # Fields first: a preview of a large CSV file stops reading at the file's start.
    return await client.post(
        "/api/v1/imports/preview",
        data=fields,
        files={"file": (name, content, "application/octet-stream")},
        headers=headers,
    )


SHEET = (
    b"Exported from Sheets on 2026-12-01\n"
    b"\n"
    b"Task,When,Owner,Urgency\n"
    b"Book the venue,12/23/2026,Ada,High\n"
    b"Order food,03/04/2026,Grace,p9\n"
)


async def test_a_preview_shows_the_layout_and_the_rows_and_creates_nothing(client, ctx, smtp, settings):
    headers = await user(client, ctx, smtp)
    response = await preview(client, headers, SHEET)
    assert response.status_code == 200, response.text
    body = response.json()
    assert {k: body[k] for k in ("format", "encoding", "delimiter", "preset", "header_row", "partial")} == {
        "format": "csv", "encoding": "utf-8", "delimiter": ",", "preset": None, "header_row": 3, "partial": False,
    }  # fmt: skip
    assert body["headers"] == ["Task", "When", "Owner", "Urgency"]
    assert body["mapping"] == [
        {"header": "Task", "field": "title", "matched": "synonym"},
        {"header": "When", "field": None, "matched": None},
        {"header": "Owner", "field": None, "matched": None},
        {"header": "Urgency", "field": None, "matched": None},
    ]
    assert body["unmatched"] == ["When", "Owner", "Urgency"]
    assert body["rows"][0] == {
        "row": 4,
        "task": {"title": "Book the venue", "description": None, "status": "todo", "priority": 3, "due_date": None,
                 "category": None},
        "errors": [], "warnings": [],
    }  # fmt: skip
    # No job, no stored file
    assert await db_value(ctx, "SELECT count(*) FROM import_jobs") == 0
    assert list(Path(settings.upload_dir).iterdir()) == []

    # The person fixes the mapping: the preview shows it, with each value read by its field's rules
    mapping = {"When": "due_date", "Urgency": "priority", "Owner": None}
    fixed = (await preview(client, headers, SHEET, mapping=json.dumps(mapping))).json()
    assert [(m["header"], m["field"], m["matched"]) for m in fixed["mapping"]] == [
        ("Task", "title", "synonym"),
        ("When", "due_date", "explicit"),
        ("Owner", None, None),
        ("Urgency", "priority", "explicit"),
    ]
    assert fixed["unmatched"] == ["Owner"]
    assert fixed["rows"][0]["task"]["due_date"] == "2026-12-23" and fixed["rows"][0]["task"]["priority"] == 2
    assert fixed["rows"][1] == {
        "row": 5,
        "task": None,
        "errors": [{"column": "priority", "message": fixed["rows"][1]["errors"][0]["message"], "value": "p9"}],
        "warnings": [],
    }
    assert fixed["rows"][1]["errors"][0]["message"].startswith("Priority must be")


async def test_a_preview_of_a_todoist_export_and_of_a_workbook(client, ctx, smtp, tmp_path):
    headers = await user(client, ctx, smtp)
    todoist = (await preview(client, headers, TODOIST.encode(), name="Offsite.csv")).json()
    assert todoist["preset"] == "todoist"
    assert {m["header"]: (m["field"], m["matched"]) for m in todoist["mapping"] if m["matched"]} == {
        "TYPE": (None, "preset"), "CONTENT": ("title", "preset"), "DESCRIPTION": ("description", "preset"),
        "PRIORITY": ("priority", "preset"), "DATE": ("due_date", "preset"),
    }  # fmt: skip
    assert "TYPE" not in todoist["unmatched"] and "AUTHOR" in todoist["unmatched"]
    assert [r["row"] for r in todoist["rows"]] == [2, 6, 7, 9]
    assert todoist["rows"][1]["warnings"][0]["value"] == "every day"

    path = write_xlsx(tmp_path, [["Q4 plan"], [], ["Task", "Due"], ["Book venue", "5 Dec 2026"]])
    sheet = (await preview(client, headers, path.read_bytes(), name="plan.xlsx")).json()
    assert (sheet["format"], sheet["header_row"], sheet["encoding"], sheet["delimiter"]) == ("xlsx", 3, None, None)
    assert sheet["rows"][0]["task"]["due_date"] == "2026-12-05"


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"mapping": "not json"}, "mapping", "Must be a JSON object"),
        ({"mapping": "[1, 2]"}, "mapping", "Must be a JSON object"),
        ({"mapping": '{"Task": "owner"}'}, "mapping.Task", 'Unknown field "owner"'),
        ({"mapping": '{"Task": "title", "Owner": "title"}'}, "mapping.Owner", "'Task' is already mapped to title"),
        ({"mapping": '{"Deadline": "due_date"}'}, "mapping.Deadline", "No column 'Deadline' in the header row"),
        ({"preset": "trello"}, "preset", "Must be one of todoist, asana, jira, clickup, none"),
    ],
)
async def test_mapping_errors_answer_422_at_preview_and_at_upload(client, ctx, smtp, settings, fields, field, message):
    headers = await user(client, ctx, smtp)
    for response in (await preview(client, headers, SHEET, **fields), await upload(client, headers, SHEET, **fields)):
        problem = assert_problem(response, 422)
        assert problem["errors"][0]["field"] == field
        assert message in problem["errors"][0]["message"]
    assert await db_value(ctx, "SELECT count(*) FROM import_jobs") == 0
    assert list(Path(settings.upload_dir).iterdir()) == []


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf", b" \r\n\r\n\t\n", b"\xff\xfe"])
async def test_an_empty_file_answers_422_at_upload(client, ctx, smtp, settings, content):
    headers = await user(client, ctx, smtp)
    problem = assert_problem(await upload(client, headers, content), 422)
    assert "empty" in problem["detail"]
    assert await db_value(ctx, "SELECT count(*) FROM import_jobs") == 0
    assert list(Path(settings.upload_dir).iterdir()) == []
    assert_problem(await upload(client, headers, b"", name="tasks.xlsx"), 422)


async def test_an_upload_with_a_mapping_imports_by_it_and_a_header_only_file_warns(client, ctx, smtp, worker):
    headers = await user(client, ctx, smtp)
    mapping = json.dumps({"When": "due_date", "Urgency": "priority"})
    response = await upload(client, headers, SHEET, mapping=mapping)
    assert response.status_code == 202, response.text
    done = await wait_job(client, headers, response.json()["id"])
    assert (done["status"], done["rows_imported"], done["rows_failed"]) == ("completed", 1, 1)
    task = (await client.get("/api/v1/tasks", headers=headers)).json()["items"][0]
    assert (task["title"], task["due_date"], task["priority"]) == ("Book the venue", "2026-12-23", 2)

    empty = (await upload(client, headers, b"title,priority\r\n")).json()
    done = await wait_job(client, headers, empty["id"])
    assert (done["status"], done["rows_processed"], done["rows_imported"]) == ("completed", 0, 0)
    assert done["warnings"] == ["The file has a header row but no data rows: nothing was imported"]


async def test_a_todoist_import_lists_the_dates_in_words_in_the_jobs_warnings(client, ctx, smtp, worker):
    headers = await user(client, ctx, smtp)
    job = (await upload(client, headers, TODOIST.encode(), name="todoist.csv")).json()
    done = await wait_job(client, headers, job["id"])
    assert (done["status"], done["rows_imported"], done["rows_failed"]) == ("completed", 4, 0)
    assert [w for w in done["warnings"] if w.startswith("Row ")] == [
        "Row 6: 'every day' is a date in words (recurring or relative), not a calendar date: imported without a "
        "due date",
        "Row 9: 'tomorrow' is a date in words (recurring or relative), not a calendar date: imported without a "
        "due date",
    ]
    categories = (await client.get("/api/v1/categories", headers=headers)).json()["items"]
    assert [(c["name"], c["task_count"]) for c in categories] == [("Errands", 3)]


# --- a 500 MB upload against a real web process --------------------------------------------------------------

EMAIL = "previewer@example.com"
BOUNDARY = "preview-boundary-7d1f"
DECLARED = 500 * 1000 * 1000  # the file part's size, as the request announces it


async def _login(database: str, url: str) -> str:
    import httpx

    conn = await asyncpg.connect(database)
    try:
        await conn.execute("DELETE FROM accounts WHERE email = $1", EMAIL)
        await insert_account(conn, EMAIL, password=PASSWORD)
    finally:
        await conn.close()
    async with httpx.AsyncClient() as http:
        tokens = (await http.post(f"{url}/api/v1/auth/login", json={"email": EMAIL, "password": PASSWORD})).json()
    return tokens["access_token"]


def _peak_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024


def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        received = sock.recv(65536)
        if not received:
            raise AssertionError(f"the connection closed before an answer: {data!r}")
        data += received
    head, _, body = data.partition(b"\r\n\r\n")
    fields = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])
    length = int({k.lower(): v for k, v in fields.items()}[b"content-length"])
    while len(body) < length:
        body += sock.recv(65536)
    return int(head.split(b" ", 2)[1]), body[:length]


async def test_a_preview_of_a_500_mb_file_answers_from_its_start_with_bounded_memory(database, clean, tmp_path):
    with running_stack(tmp_path, LOG_LEVEL="WARNING") as stack:
        web, url = stack.web()
        token = await _login(database, url)
        rows = "".join(f"Task {i},High,2026-12-{i % 28 + 1:02d}\r\n" for i in range(60_000)).encode()
        first = b"Task,Priority,Due\r\n" + rows[: (2 << 20)]  # 2 MiB: more than the preview needs
        preamble = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="preset"\r\n\r\nnone\r\n'
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="huge.csv"\r\n\r\n'
        ).encode()
        closing = f"\r\n--{BOUNDARY}--\r\n".encode()
        host, port = url.removeprefix("http://").split(":")
        request = (
            f"POST /api/v1/imports/preview HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"Content-Length: {len(preamble) + DECLARED + len(closing)}\r\n\r\n"
        ).encode()
        before = _peak_mb(web.popen.pid)

        def exchange() -> dict[str, Any]:
            with socket.create_connection((host, int(port)), timeout=60) as sock:
                sock.sendall(request + preamble + first)
                # When 2 MiB of the 500 MB are sent, and nothing more: the answer comes
                started = time.monotonic()
                status, body = _read_response(sock)
                answered = time.monotonic() - started
                # Then the rest of the body is sent, and the server discards it without holding it
                filler = b"x" * (1 << 20)
                left = DECLARED - len(first)
                while left > 0:
                    sock.sendall(filler[: min(left, len(filler))])
                    left -= len(filler)
                sock.sendall(closing)
                # And once it has all been read, the server closes the connection cleanly (no reset)
                ending = sock.recv(65536)
            return {"status": status, "body": body, "answered": answered, "ending": ending}

        result = await asyncio.to_thread(exchange)
        peak = _peak_mb(web.popen.pid)
    assert result["status"] == 200, result["body"][:500]
    preview_body = json.loads(result["body"])
    assert preview_body["partial"] is True and preview_body["preset"] is None
    assert len(preview_body["rows"]) == 20 and preview_body["rows"][0]["task"]["priority"] == 2
    assert result["answered"] < 20  # generous for a loaded machine; it needs no more of the body at all
    assert result["ending"] == b""
    assert peak - before < 60, (before, peak)
