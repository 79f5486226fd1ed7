"""Import jobs through the API and a real worker: upload, process, errors, cancel, delete, events."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import threading
import uuid
from typing import Any

import pytest

from service.imports import pipeline
from service.imports.files.values import DATE_MESSAGE
from tests.imports.helpers import read_all, write_csv, write_xls, write_xlsx
from tests.stores import stored_uploads
from tests.support import (
    AppClient,
    active_account,
    assert_problem,
    bearer,
    db_execute,
    db_value,
    eventually,
    upload,
    wait_job,
    worker_broker,
)

GOOD_AND_BAD = (
    b"title,description,status,priority,due_date,category,notes\r\n"
    b"Buy milk,2 litres,todo,2,2026-12-01,Home,x\r\n"
    b",no title,todo,3,,Home,\r\n"
    b"Write report,,in_progress,5,,Work,\r\n"
    b"Bad date,,done,1,2026-02-30,work,\r\n"
    b"=cmd|' /C calc'!A0,,todo,9,,,\r\n"
    b"Call mum,,done,,,,\r\n"
)

# Passes the checks at upload (its start is text), fails in the worker: NUL bytes deep in it.
UNREADABLE = b"title\n" + b"a task\n" * 2000 + b"\x00\n"


async def user(client, ctx, smtp, email: str = "ivan@example.com") -> dict[str, str]:
    return bearer(await active_account(client, ctx, smtp, email))


def csv_rows(n: int) -> bytes:
    lines = ["title,priority,category"] + [f"Task {i},{i % 5 + 1},Cat {i % 3}" for i in range(n)]
    return ("\n".join(lines) + "\n").encode()


async def assert_unlinked(client, ctx, headers) -> None:
    """The tasks a deleted job had committed stay, and none of them names an import any more."""
    assert await db_value(ctx, "SELECT count(*) FROM tasks") > 0
    page = (await client.get("/api/v1/tasks?limit=100", headers=headers)).json()["items"]
    assert page and {task["import_id"] for task in page} == {None}
    # Every task, as the API would show it (the page above is a sample).
    shown = "SELECT count(*) FROM tasks t WHERE EXISTS (SELECT 1 FROM import_jobs j WHERE j.id = t.import_id)"
    assert await db_value(ctx, shown) == 0


async def test_a_csv_import_creates_tasks_and_reports_every_bad_row(client, ctx, smtp, worker, settings):
    headers = await user(client, ctx, smtp)
    response = await upload(client, headers, GOOD_AND_BAD)
    assert response.status_code == 202
    job = response.json()
    assert job["status"] == "queued" and job["filename"] == "tasks.csv" and job["size_bytes"] == len(GOOD_AND_BAD)
    assert response.headers["Location"] == f"/api/v1/imports/{job['id']}"

    done = await wait_job(client, headers, job["id"])
    assert done["status"] == "completed", done
    assert (done["rows_processed"], done["rows_imported"], done["rows_failed"]) == (6, 3, 3)
    assert done["progress"] == 1
    assert any("notes" in w for w in done["warnings"])
    assert done["started_at"] and done["finished_at"]

    tasks = (await client.get("/api/v1/tasks?sort=created_at&limit=100", headers=headers)).json()["items"]
    assert sorted(t["title"] for t in tasks) == ["Buy milk", "Call mum", "Write report"]
    milk = next(t for t in tasks if t["title"] == "Buy milk")
    assert (milk["priority"], milk["due_date"], milk["category"], milk["import_id"]) == (
        2,
        "2026-12-01",
        "Home",
        job["id"],
    )
    assert next(t for t in tasks if t["title"] == "Call mum")["priority"] == 3  # the default

    errors = (await client.get(f"/api/v1/imports/{job['id']}/errors", headers=headers)).json()
    located = [(e["row"], e["column"]) for e in errors["items"]]
    # Row numbers as a spreadsheet shows them: the header is row 1
    assert located == [(3, "title"), (5, "due_date"), (6, "priority")]
    assert errors["next_cursor"] is None

    # The upload is gone from disk once the job ended
    assert stored_uploads(settings) == []


async def test_errors_csv_gives_the_failed_rows_back_defused_with_an_error_column(client, ctx, smtp, worker):
    headers = await user(client, ctx, smtp)
    job = (await upload(client, headers, GOOD_AND_BAD)).json()
    await wait_job(client, headers, job["id"])
    response = await client.get(f"/api/v1/imports/{job['id']}/errors.csv", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    lines = response.text.lstrip("\ufeff").splitlines()
    assert lines[0] == "title,description,status,priority,due_date,category,notes,error"
    assert lines[1].startswith(",no title,todo,3,,Home,,")
    assert lines[2].startswith("Bad date,,done,1,2026-02-30,work,,")
    # A formula never reaches the user's spreadsheet as a formula
    assert lines[3].startswith("'=cmd|' /C calc'!A0,")
    assert len(lines) == 4


async def test_an_errors_csv_can_be_fixed_and_uploaded_again(client, ctx, smtp, tmp_path):
    # Given an import whose one bad row has two bad fields and a formula
    headers = await user(client, ctx, smtp)
    job = (await upload(client, headers, b"title,priority,due_date\nok,1,\n=2+3,9,tomorrow\n")).json()
    assert await pipeline.run_job(ctx, uuid.UUID(job["id"])) == "completed"
    # When its errors.csv is downloaded
    text = (await client.get(f"/api/v1/imports/{job['id']}/errors.csv", headers=headers)).text
    # Then it starts with a BOM, has one line per failed row with all its reasons, and no live formula
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert rows == [
        ["title", "priority", "due_date", "error"],
        ["'=2+3", "9", "tomorrow", f"Priority must be from 1 to 5; {DATE_MESSAGE}"],
    ]
    # And the file itself is accepted by the importer again
    _, errors_again, _ = read_all(write_csv(tmp_path, text, name="errors.csv"))
    assert [e.column for e in errors_again] == ["priority", "due_date"]


async def test_dry_run_validates_everything_and_imports_nothing(client, ctx, smtp, worker):
    headers = await user(client, ctx, smtp)
    job = (await upload(client, headers, GOOD_AND_BAD, dry_run="true")).json()
    assert job["dry_run"] is True
    done = await wait_job(client, headers, job["id"])
    assert (done["status"], done["rows_processed"], done["rows_imported"], done["rows_failed"]) == (
        "completed",
        6,
        0,
        3,
    )
    assert await db_value(ctx, "SELECT count(*) FROM tasks") == 0


async def test_excel_files_import_dates_and_numbers(client, ctx, smtp, worker, tmp_path):
    import datetime

    headers = await user(client, ctx, smtp)
    rows = [["Title", "Priority", "Due Date"], ["From Excel", 4.0, datetime.date(2026, 3, 1)], [None, None, None],
            ["Second", 2, datetime.datetime(2026, 4, 2, 13, 30)]]  # fmt: skip
    for path in (write_xlsx(tmp_path, rows), write_xls(tmp_path, rows)):
        job = (await upload(client, headers, path.read_bytes(), name=path.name)).json()
        done = await wait_job(client, headers, job["id"])
        assert (done["status"], done["rows_imported"], done["rows_failed"]) == ("completed", 2, 0), done
    tasks = (await client.get("/api/v1/tasks?sort=due_date&limit=10", headers=headers)).json()["items"]
    assert [(t["title"], t["priority"], t["due_date"]) for t in tasks] == [
        ("From Excel", 4, "2026-03-01"), ("From Excel", 4, "2026-03-01"),
        ("Second", 2, "2026-04-02"), ("Second", 2, "2026-04-02"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("content", "name", "expected"),
    [
        (b"description,status\nno title column,todo\n", "tasks.csv", "title"),
        (b"PK\x03\x04" + b"\x00" * 200, "tasks.xlsx", None),
    ],
)
async def test_unusable_files_fail_the_job_with_a_clear_error(client, ctx, smtp, worker, content, name, expected):
    headers = await user(client, ctx, smtp)
    response = await upload(client, headers, content, name=name)
    if response.status_code == 415:  # refused at upload already: also a clear answer
        assert_problem(response, 415)
        return
    done = await wait_job(client, headers, response.json()["id"])
    assert done["status"] == "failed"
    assert done["error"] and (expected is None or expected in done["error"].lower())
    assert await db_value(ctx, "SELECT count(*) FROM tasks") == 0


async def test_a_corrupt_workbook_fails_the_job(client, ctx, smtp, worker, tmp_path):
    import zipfile

    headers = await user(client, ctx, smtp)
    good = write_xlsx(tmp_path, [["title"], ["a"]])
    # A real workbook whose sheet is garbage: accepted at upload (it is a zip with a workbook)...
    broken = tmp_path / "broken.xlsx"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(broken, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            dst.writestr(item, b"<worksheet><sheetData><row r=" if "worksheets/" in item.filename else data)
    response = await upload(client, headers, broken.read_bytes(), name="broken.xlsx")
    assert response.status_code == 202
    # ...and failed by the worker with a reason, not a crash
    done = await wait_job(client, headers, response.json()["id"])
    assert done["status"] == "failed" and done["error"]
    # A truncated one is refused at once
    assert_problem(await upload(client, headers, good.read_bytes()[:1000], name="cut.xlsx"), 415)


@pytest.fixture
async def rejecting(settings, database, clean):
    """The app with a 1 KiB upload cap and private webhook addresses refused, as in production."""
    strict = dataclasses.replace(settings, max_upload_bytes=1024, webhook_allow_private=False)
    async with AppClient.start(strict) as app:
        yield app


@pytest.mark.parametrize(
    ("request_kwargs", "status"),
    [
        ({"files": {"file": ("t.csv", b"title\n" + b"x" * 2000, "text/csv")}}, 413),
        ({"files": {"file": ("t.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "image/png")}}, 415),
        ({"files": {"file": ("t.csv", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "text/csv")}}, 415),
        ({"files": {"file": ("t.exe", b"MZ\x90\x00" + b"\x00" * 100, "application/octet-stream")}}, 415),
        ({"data": {"dry_run": "true"}, "files": {"other": ("t.csv", b"title\na\n", "text/csv")}}, 422),
        ({"files": {"file": ("t.csv", b"title\na\n", "text/csv")}, "data": {"webhook_url": "ftp://x.example/"}}, 422),
        ({"files": {"file": ("t.csv", b"title\na\n", "text/csv")}, "data": {"webhook_url": "http://127.0.0.1/h"}}, 422),
        ({"files": {"file": ("t.csv", b"title\na\n", "text/csv")}, "data": {"webhook_url": "http://10.0.0.8/"}}, 422),
        ({"files": {"file": ("t.csv", b"title\na\n", "text/csv")}, "data": {"dry_run": "maybe"}}, 422),
        ({"files": {"dry_run": (None, "true")}}, 400),
        (
            {
                "content": b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n\r\ntitle\n',
                "headers": {"content-type": "multipart/form-data; boundary=xyz"},
            },
            400,
        ),
        ({"content": b"title\na\n", "headers": {"content-type": "multipart/form-data"}}, 400),
        ({"content": b"title\na\n", "headers": {"content-type": "text/csv"}}, 415),
    ],
)
async def test_rejected_uploads_leave_no_job_and_no_file(rejecting, ctx, smtp, settings, request_kwargs, status):
    headers = await user(rejecting.http, ctx, smtp)
    kwargs = dict(request_kwargs)
    kwargs["headers"] = {**headers, **kwargs.get("headers", {})}
    problem = assert_problem(await rejecting.http.post("/api/v1/imports", **kwargs), status)
    assert problem["detail"]
    assert await db_value(ctx, "SELECT count(*) FROM import_jobs") == 0
    assert stored_uploads(settings) == []


async def test_a_declared_length_over_the_limit_is_refused_before_reading(rejecting, ctx, smtp):
    headers = await user(rejecting.http, ctx, smtp)
    read = []

    async def body():
        read.append(1)
        yield b"x" * 10

    response = await rejecting.http.post(
        "/api/v1/imports",
        content=body(),
        headers={**headers, "content-type": "multipart/form-data; boundary=b", "content-length": str(10**9)},
    )
    assert_problem(response, 413)


async def test_uploads_need_a_valid_token(client):
    response = await client.post("/api/v1/imports", files={"file": ("t.csv", b"title\na\n", "text/csv")})
    assert_problem(response, 401)


async def test_another_users_job_is_404_on_every_route(client, ctx, smtp, worker):
    owner = await user(client, ctx, smtp, "owner@example.com")
    stranger = await user(client, ctx, smtp, "stranger@example.com")
    job_id = (await upload(client, owner, GOOD_AND_BAD)).json()["id"]
    await wait_job(client, owner, job_id)
    for method, path in [
        ("GET", ""), ("POST", "/cancel"), ("DELETE", ""), ("GET", "/errors"), ("GET", "/errors.csv"),
        ("GET", "/events"), ("GET", "/deliveries"),
    ]:  # fmt: skip
        for who, job in ((stranger, job_id), (owner, "not-a-uuid")):
            response = await client.request(method, f"/api/v1/imports/{job}{path}", headers=who)
            problem = assert_problem(response, 404)
            assert "Buy milk" not in response.text and problem["status"] == 404
    assert (await client.get("/api/v1/imports", headers=stranger)).json()["items"] == []
    assert (await client.get(f"/api/v1/imports/{job_id}", headers=owner)).status_code == 200


async def test_jobs_are_listed_newest_first_in_keyset_pages(client, ctx, smtp):
    headers = await user(client, ctx, smtp)
    ids = [(await upload(client, headers, b"title\na\n")).json()["id"] for _ in range(3)]
    first = (await client.get("/api/v1/imports?limit=2", headers=headers)).json()
    assert [j["id"] for j in first["items"]] == ids[::-1][:2]
    second = (await client.get(f"/api/v1/imports?limit=2&cursor={first['next_cursor']}", headers=headers)).json()
    assert [j["id"] for j in second["items"]] == ids[:1] and second["next_cursor"] is None
    assert_problem(await client.get(f"/api/v1/imports?cursor={first['next_cursor'][:-2]}xx", headers=headers), 400)
    assert_problem(await client.get("/api/v1/imports?limit=0", headers=headers), 422)
    assert_problem(await client.get("/api/v1/imports?limit=101", headers=headers), 422)


async def test_errors_are_paged_without_overlap(client, ctx, smtp, worker):
    headers = await user(client, ctx, smtp)
    content = ("title,priority\n" + "".join(f"T{i},{9 if i % 2 else 1}\n" for i in range(50))).encode()
    job = (await upload(client, headers, content)).json()
    assert (await wait_job(client, headers, job["id"]))["rows_failed"] == 25
    seen, cursor = [], ""
    while True:
        page = (await client.get(f"/api/v1/imports/{job['id']}/errors?limit=10{cursor}", headers=headers)).json()
        seen += [e["row"] for e in page["items"]]
        if not page["next_cursor"]:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert seen == [i + 2 for i in range(50) if i % 2]


async def test_cancelling_a_queued_job_ends_it_at_once(client, ctx, smtp, settings):
    headers = await user(client, ctx, smtp)
    job = (await upload(client, headers, csv_rows(10))).json()
    response = await client.post(f"/api/v1/imports/{job['id']}/cancel", headers=headers)
    assert response.status_code == 202
    assert response.json()["status"] == "cancelled"
    assert_problem(await client.post(f"/api/v1/imports/{job['id']}/cancel", headers=headers), 409)
    # A worker that gets the message later leaves it alone
    assert await pipeline.run_job(ctx, uuid.UUID(job["id"])) == "not-due"
    assert stored_uploads(settings) == []


async def _run_with_hook(ctx, job_id: str, after_chunks: int, hook) -> str:
    """Run the real pipeline for a job, calling `hook` once `after_chunks` chunks have committed."""
    original = pipeline.commit_chunk
    committed = 0

    async def counting(*args, **kwargs):
        nonlocal committed
        await original(*args, **kwargs)
        committed += 1
        if committed == after_chunks:
            await hook()

    pipeline.commit_chunk = counting
    try:
        return await pipeline.run_job(ctx, uuid.UUID(job_id))
    finally:
        pipeline.commit_chunk = original


async def test_cancel_mid_job_stops_at_the_next_chunk_and_keeps_committed_rows(client, ctx, smtp, settings):
    headers = await user(client, ctx, smtp)
    job = (await upload(client, headers, csv_rows(20_000))).json()

    async def cancel() -> None:
        response = await client.post(f"/api/v1/imports/{job['id']}/cancel", headers=headers)
        assert response.status_code == 202 and response.json()["status"] == "processing"

    assert await _run_with_hook(ctx, job["id"], 3, cancel) == "cancelled"
    done = (await client.get(f"/api/v1/imports/{job['id']}", headers=headers)).json()
    chunk = settings.import_chunk_rows
    assert done["status"] == "cancelled"
    assert done["rows_imported"] == await db_value(ctx, "SELECT count(*) FROM tasks") == 3 * chunk
    assert done["rows_processed"] == 3 * chunk < 20_000
    assert_problem(await client.post(f"/api/v1/imports/{job['id']}/cancel", headers=headers), 409)


async def test_a_failed_run_hands_the_job_back_and_the_retry_resumes_after_its_last_committed_chunk(client, ctx, smtp):
    headers = await user(client, ctx, smtp)
    job = (await upload(client, headers, csv_rows(12_345))).json()

    async def crash() -> None:
        raise RuntimeError("database went away")

    with pytest.raises(RuntimeError):
        await _run_with_hook(ctx, job["id"], 2, crash)
    # Handed back at once (no lease left to go stale): the retry need not wait IMPORT_STALE_AFTER
    assert await db_value(ctx, "SELECT (status, lease_id) FROM import_jobs") == ("queued", None)
    # A worker that dies without a word (SIGKILL) keeps its lease: nobody takes the job while its heartbeat
    # is fresh...
    await db_execute(ctx, "UPDATE import_jobs SET status = 'processing', lease_id = gen_random_uuid()")
    assert await pipeline.run_job(ctx, uuid.UUID(job["id"])) == "not-due"
    # ...but once it has gone quiet, it resumes from the checkpoint
    await db_execute(ctx, "UPDATE import_jobs SET heartbeat_at = now() - interval '1 hour'")
    assert await pipeline.run_job(ctx, uuid.UUID(job["id"])) == "completed"
    done = (await client.get(f"/api/v1/imports/{job['id']}", headers=headers)).json()
    assert (done["rows_processed"], done["rows_imported"]) == (12_345, 12_345)
    assert await db_value(ctx, "SELECT count(*) FROM tasks") == 12_345
    assert await db_value(ctx, "SELECT count(DISTINCT title) FROM tasks") == 12_345


async def test_a_stopping_worker_hands_the_job_back_and_another_finishes_it(client, ctx, smtp):
    headers = await user(client, ctx, smtp)
    job = (await upload(client, headers, csv_rows(9_000))).json()

    async def stop() -> None:
        pipeline.stopping.set()

    try:
        assert await _run_with_hook(ctx, job["id"], 1, stop) == "released"
        # The stopping worker may still receive the message it just sent: it leaves the job alone.
        assert await pipeline.run_job(ctx, uuid.UUID(job["id"])) == "released"
    finally:
        pipeline.stopping.clear()
    assert await db_value(ctx, "SELECT status || ':' || attempts FROM import_jobs") == "queued:1"
    assert await pipeline.run_job(ctx, uuid.UUID(job["id"])) == "completed"
    assert await db_value(ctx, "SELECT count(*) FROM tasks") == 9_000


async def test_a_worker_stopped_while_its_reader_opens_the_file_hands_the_job_back_without_waiting(
    client, ctx, smtp, monkeypatch
):
    # Opening a big workbook takes seconds: the stop must not wait for it. Here the reader stays inside
    # open_reader until the test lets it go.
    headers = await user(client, ctx, smtp)
    job = (await upload(client, headers, csv_rows(3_000))).json()
    opened = pipeline.open_reader
    opening, let_go = threading.Event(), threading.Event()

    def slow_open(*args: Any) -> Any:
        opening.set()
        let_go.wait(60)
        return opened(*args)

    monkeypatch.setattr(pipeline, "open_reader", slow_open)
    run = asyncio.create_task(pipeline.run_job(ctx, uuid.UUID(job["id"])))
    try:
        assert await asyncio.to_thread(opening.wait, 30), "the reader never started"
        pipeline.stopping.set()
        # The job is handed back while the reader is still opening the file
        assert await asyncio.wait_for(run, 30) == "released"
        assert not let_go.is_set()
    finally:
        pipeline.stopping.clear()
        let_go.set()
    assert await db_value(ctx, "SELECT (status, lease_id) FROM import_jobs") == ("queued", None)
    monkeypatch.setattr(pipeline, "open_reader", opened)
    assert await pipeline.run_job(ctx, uuid.UUID(job["id"])) == "completed"
    assert await db_value(ctx, "SELECT count(*) FROM tasks") == 3_000


async def test_deleting_a_job_keeps_its_tasks_unlinked(client, ctx, smtp, worker, settings):
    headers = await user(client, ctx, smtp)
    job = (await upload(client, headers, GOOD_AND_BAD)).json()
    await wait_job(client, headers, job["id"])
    assert (await client.delete(f"/api/v1/imports/{job['id']}", headers=headers)).status_code == 204
    assert_problem(await client.get(f"/api/v1/imports/{job['id']}", headers=headers), 404)
    assert await db_value(ctx, "SELECT count(*) FROM import_errors") == 0
    # The tasks stay, no longer linked to an import.
    tasks = (await client.get("/api/v1/tasks", headers=headers)).json()["items"]
    assert len(tasks) == 3
    assert {task["import_id"] for task in tasks} == {None}
    assert (await client.get(f"/api/v1/tasks/{tasks[0]['id']}", headers=headers)).json()["import_id"] is None
    patched = await client.patch(f"/api/v1/tasks/{tasks[0]['id']}", json={"status": "done"}, headers=headers)
    assert patched.json()["import_id"] is None
    assert_problem(await client.delete(f"/api/v1/imports/{job['id']}", headers=headers), 404)


async def test_deleting_a_running_job_cancels_it_and_removes_its_file(client, ctx, smtp, settings, monkeypatch):
    headers = await user(client, ctx, smtp)
    job = (await upload(client, headers, csv_rows(20_000))).json()

    async def delete() -> None:
        assert (await client.delete(f"/api/v1/imports/{job['id']}", headers=headers)).status_code == 204

    # One chunk at a time: the hook runs inside the chain of commits, where a later chunk's transaction
    # (holding the job row) would wait for it while it waits for that row.
    monkeypatch.setattr(pipeline, "CHUNKS_IN_FLIGHT", 1)
    assert await _run_with_hook(ctx, job["id"], 2, delete) == "lost"
    assert await db_value(ctx, "SELECT count(*) FROM import_jobs") == 0
    await assert_unlinked(client, ctx, headers)
    assert stored_uploads(settings) == []


async def test_deleting_a_job_while_chunks_are_written_side_by_side_cuts_the_import_short(client, ctx, smtp, settings):
    headers = await user(client, ctx, smtp)
    job = (await upload(client, headers, csv_rows(100_000))).json()
    running = asyncio.create_task(pipeline.run_job(ctx, uuid.UUID(job["id"])))

    async def three_chunks() -> bool:
        assert not running.done()
        return await db_value(ctx, "SELECT count(*) FROM import_chunks") >= 3

    await eventually(three_chunks, 30, "3 chunks to commit", every=0.01)
    assert (await client.delete(f"/api/v1/imports/{job['id']}", headers=headers)).status_code == 204
    assert await running == "lost"
    # The delete waited for the chunks in flight (they see its cancel and roll back), not behind chunk after
    # chunk until the import's end: most of the rows were never written.
    assert await db_value(ctx, "SELECT count(*) FROM tasks") < 100_000 // 2
    assert await db_value(ctx, "SELECT count(*) FROM import_jobs") == 0
    await assert_unlinked(client, ctx, headers)
    assert stored_uploads(settings) == []


async def test_events_stream_progress_until_the_job_ends(client, ctx, smtp, worker):
    headers = await user(client, ctx, smtp)
    job = (await upload(client, headers, csv_rows(30_000))).json()
    events: list[str] = []
    async with client.stream("GET", f"/api/v1/imports/{job['id']}/events", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                events.append(line.removeprefix("event: "))
    assert events[0] == "progress" and events[-1] == "end"
    final = (await client.get(f"/api/v1/imports/{job['id']}", headers=headers)).json()
    assert final["status"] == "completed" and final["rows_imported"] == 30_000


async def test_same_idempotency_key_and_file_returns_the_first_job(client, ctx, smtp, settings):
    headers = {**(await user(client, ctx, smtp)), "Idempotency-Key": "upload-1"}
    first, second = await asyncio.gather(*(upload(client, headers, GOOD_AND_BAD) for _ in range(2)))
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert await db_value(ctx, "SELECT count(*) FROM import_jobs") == 1
    assert len(stored_uploads(settings)) == 1
    other = await upload(client, headers, csv_rows(3))
    assert_problem(other, 422)
    assert len(stored_uploads(settings)) == 1


async def test_the_relay_re_drives_an_import_whose_message_was_lost(client, ctx, smtp):
    from service.relay import sweep

    broker = worker_broker()

    headers = await user(client, ctx, smtp)
    await upload(client, headers, csv_rows(5))
    await ctx.dispatcher.drain()  # the upload's own enqueue happens in the background: let it land first
    broker.flush_all()
    assert await sweep(ctx, broker) == 0  # within the grace period: trust the request's own enqueue
    await db_execute(ctx, "UPDATE import_jobs SET created_at = now() - interval '1 hour'")
    assert await sweep(ctx, broker) == 1
    assert broker.do_qsize("imports") == 1


async def test_an_xlsx_written_with_backslashes_in_its_zip_imports(client, ctx, smtp, tmp_path):
    import zipfile

    headers = await user(client, ctx, smtp)
    good = write_xlsx(tmp_path, [["title", "priority"], ["Backslashed", 2]])
    # As some libraries write them: xl\workbook.xml, not xl/workbook.xml (python-calamine reads either)
    odd = tmp_path / "odd.xlsx"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(odd, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename.replace("/", "\\"), src.read(info))
    response = await upload(client, headers, odd.read_bytes(), name="odd.xlsx")
    assert response.status_code == 202, response.text
    assert await pipeline.run_job(ctx, uuid.UUID(response.json()["id"])) == "completed"
    assert await db_value(ctx, "SELECT title FROM tasks") == "Backslashed"


async def test_a_resumed_import_logs_with_the_request_id_of_its_upload(client, ctx, smtp):
    import io
    import logging

    from service.logs import JSONFormatter, request_id_var

    headers = await user(client, ctx, smtp)
    response = await upload(client, {**headers, "X-Request-ID": "upload-42"}, csv_rows(5))
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JSONFormatter())
    logger = logging.getLogger("tasklane.imports")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)

    async def resumed() -> str:
        # The worker that resumes it got a message without the id: the relay re-drives from the database.
        request_id_var.set(None)
        return await pipeline.run_job(ctx, uuid.UUID(response.json()["id"]))

    try:
        assert await asyncio.create_task(resumed()) == "completed"  # a task: a context of its own
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    lines = [__import__("orjson").loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in lines] == ["import started", "import finished"]
    assert {line["request_id"] for line in lines} == {"upload-42"}


async def test_the_end_of_an_import_is_announced_with_completed_at_and_why_it_failed(
    client, ctx, smtp, settings, webhook_receiver
):
    from service.notifications import webhooks
    from tests.conftest import TEST_WEBHOOK_SECRET

    headers = await user(client, ctx, smtp)
    receiver = webhook_receiver()
    response = await upload(client, headers, UNREADABLE, webhook_url=receiver.url)
    assert await pipeline.run_job(ctx, uuid.UUID(response.json()["id"])) == "failed"
    event_id = await db_value(ctx, "SELECT id FROM webhook_events")
    http = webhooks.make_http_client(settings)
    try:
        assert await webhooks.deliver(ctx, http, event_id) == "delivered"
    finally:
        await http.aclose()
    [received] = receiver.requests
    payload = received.verify(TEST_WEBHOOK_SECRET)
    assert payload["type"] == "import.failed"
    data = payload["data"]
    assert data["completed_at"] == data["finished_at"] and data["status"] == "failed"
    assert "NUL" in data["error"]
    job = (await client.get(f"/api/v1/imports/{response.json()['id']}", headers=headers)).json()
    assert data["error"] == job["error"]
