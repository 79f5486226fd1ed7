"""Imports kept in an S3-compatible store (moto's S3 server over HTTP): what a user notices when the store
is away at upload time, while a job waits for it, when an object is gone, and what becomes of objects."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from service import storage
from service.config import Settings
from service.context import Context
from service.imports import intake, pipeline
from service.imports import service as imports
from tests.imports.test_jobs import csv_rows, user
from tests.stores import S3Server
from tests.support import AppClient, assert_problem, db_execute, db_value, eventually, upload

PREFIX = f"store-tests-{os.getpid()}"


@pytest.fixture
async def s3_app(settings: Settings, database: str, clean: None, s3: S3Server) -> AsyncIterator[AppClient]:
    """The app with uploads in the S3 store, whatever store the rest of the suite uses."""
    s3.start()
    s3.clear()
    s3_settings = Settings.from_env({**os.environ, **s3.env(PREFIX)})
    async with AppClient.start(s3_settings) as app:
        yield app
    s3.start()  # a test that stopped the store leaves it running for the next one


async def run_until_waiting(ctx: Context, job_id: str) -> asyncio.Future[str]:
    """Starts the worker's loop on a job while the store is away; returns once it waits for the store."""
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign]
    handler.addFilter(lambda record: record.getMessage() == "upload store unavailable, import waits")
    logger = logging.getLogger("tasklane.imports")
    logger.addHandler(handler)
    try:
        running = asyncio.ensure_future(pipeline.run_job(ctx, uuid.UUID(job_id)))

        async def waiting() -> bool:
            return bool(seen)

        await eventually(waiting, timeout=30)
    finally:
        logger.removeHandler(handler)
    return running


def wide_csv(rows: int) -> bytes:
    """About 2 KB a row: a file bigger than one part of a multipart upload in few rows."""
    text = "x" * 2000
    return ("title,description\n" + "".join(f"Task {i},{text}\n" for i in range(rows))).encode()


def staged(settings: Settings) -> list[str]:
    return [p.name for p in Path(settings.upload_dir).glob("*.part")]


async def test_uploads_land_in_the_bucket_and_the_job_completes_from_it(s3_app, s3, smtp):
    headers = await user(s3_app.http, s3_app.ctx, smtp)
    big = wide_csv(6_000)  # ~12 MB: sent as a multipart upload, parts in flight
    assert len(big) > 2 * storage.MIN_PART_BYTES
    response = await upload(s3_app.http, headers, big, name="big.csv")
    assert response.status_code == 202, response.text
    job = response.json()
    [key] = s3.keys(PREFIX)
    assert key == f"{PREFIX}/{job['id']}_big.csv"
    assert s3.client.head_object(Bucket="tasklane-test-uploads", Key=key)["ContentLength"] == len(big)
    assert s3.uploads(PREFIX) == [] and staged(s3_app.ctx.settings) == []

    assert await pipeline.run_job(s3_app.ctx, uuid.UUID(job["id"])) == "completed"
    assert await db_value(s3_app.ctx, "SELECT count(*) FROM tasks") == 6_000
    # The object is deleted when the job ends, and the worker's copy with it
    assert s3.keys(PREFIX) == []
    assert list(storage.scratch_dir(s3_app.ctx.settings).glob("*")) == []


async def test_a_store_that_is_down_at_upload_time_answers_503_and_keeps_nothing(s3_app, s3, smtp):
    headers = await user(s3_app.http, s3_app.ctx, smtp)
    s3.stop()
    for content in (csv_rows(10), wide_csv(6_000)):  # one PUT, and a multipart upload
        response = await upload(s3_app.http, headers, content)
        problem = assert_problem(response, 503)
        assert response.headers["Retry-After"] == str(intake.STORE_RETRY_AFTER)
        assert "upload store" in problem["detail"]
    assert await db_value(s3_app.ctx, "SELECT count(*) FROM import_jobs") == 0
    assert staged(s3_app.ctx.settings) == []
    s3.start()
    assert s3.keys(PREFIX) == [] and s3.uploads(PREFIX) == []
    # Once the store is back, the same request goes through
    assert (await upload(s3_app.http, headers, csv_rows(10))).status_code == 202


async def test_a_job_waits_while_the_store_is_away_then_completes(s3_app, s3, smtp):
    headers = await user(s3_app.http, s3_app.ctx, smtp)
    job = (await upload(s3_app.http, headers, csv_rows(5_000))).json()
    s3.stop()
    running = await run_until_waiting(s3_app.ctx, job["id"])
    # Waiting, not failed: the user sees a job in progress
    shown = (await s3_app.http.get(f"/api/v1/imports/{job['id']}", headers=headers)).json()
    assert (shown["status"], shown["error"]) == ("processing", None)
    s3.start()
    assert await running == "completed"
    done = (await s3_app.http.get(f"/api/v1/imports/{job['id']}", headers=headers)).json()
    assert (done["status"], done["rows_imported"]) == ("completed", 5_000)
    assert s3.keys(PREFIX) == []


async def test_a_worker_asked_to_stop_while_the_store_is_away_hands_the_job_back(s3_app, s3, smtp):
    headers = await user(s3_app.http, s3_app.ctx, smtp)
    job = (await upload(s3_app.http, headers, csv_rows(50))).json()
    s3.stop()
    running = await run_until_waiting(s3_app.ctx, job["id"])
    pipeline.stopping.set()
    try:
        assert await asyncio.wait_for(running, 10) == "released"
    finally:
        pipeline.stopping.clear()
    shown = (await s3_app.http.get(f"/api/v1/imports/{job['id']}", headers=headers)).json()
    assert (shown["status"], shown["error"]) == ("queued", None)


async def test_a_job_fails_with_a_reason_once_the_store_stayed_away_too_long(s3_app, s3, smtp):
    headers = await user(s3_app.http, s3_app.ctx, smtp)
    job = (await upload(s3_app.http, headers, csv_rows(50))).json()
    impatient = dataclasses.replace(s3_app.ctx.settings, upload_store_retry_for=1.0)
    ctx = dataclasses.replace(s3_app.ctx, settings=impatient)
    s3.stop()
    assert await pipeline.run_job(ctx, uuid.UUID(job["id"])) == "failed"
    done = (await s3_app.http.get(f"/api/v1/imports/{job['id']}", headers=headers)).json()
    assert "upload store could not be reached" in done["error"]
    assert await db_value(ctx, "SELECT count(*) FROM tasks") == 0
    # Its object could not be deleted then; the relay's purge deletes it once the store is back
    s3.start()
    assert len(s3.keys(PREFIX)) == 1
    assert await imports.purge_uploads(ctx) == 1
    assert s3.keys(PREFIX) == []


async def test_a_job_whose_object_is_gone_fails_at_once(s3_app, s3, smtp):
    headers = await user(s3_app.http, s3_app.ctx, smtp)
    job = (await upload(s3_app.http, headers, csv_rows(50))).json()
    [key] = s3.keys(PREFIX)
    s3.client.delete_object(Bucket="tasklane-test-uploads", Key=key)
    assert await pipeline.run_job(s3_app.ctx, uuid.UUID(job["id"])) == "failed"
    done = (await s3_app.http.get(f"/api/v1/imports/{job['id']}", headers=headers)).json()
    assert done["error"] == "The uploaded file is no longer available"


async def test_deleting_an_import_deletes_its_object_or_changes_nothing(s3_app, s3, smtp):
    headers = await user(s3_app.http, s3_app.ctx, smtp)
    job = (await upload(s3_app.http, headers, csv_rows(50))).json()
    s3.stop()
    response = await s3_app.http.delete(f"/api/v1/imports/{job['id']}", headers=headers)
    assert_problem(response, 503)
    assert response.headers["Retry-After"]
    assert (await s3_app.http.get(f"/api/v1/imports/{job['id']}", headers=headers)).status_code == 200
    s3.start()
    assert (await s3_app.http.delete(f"/api/v1/imports/{job['id']}", headers=headers)).status_code == 204
    assert s3.keys(PREFIX) == []
    # Cancelling a queued job removes its object too
    queued = (await upload(s3_app.http, headers, csv_rows(50))).json()
    assert (await s3_app.http.post(f"/api/v1/imports/{queued['id']}/cancel", headers=headers)).status_code == 202
    assert s3.keys(PREFIX) == []


async def test_upload_retention_keeps_the_object_until_the_purge(s3_app, s3, smtp):
    headers = await user(s3_app.http, s3_app.ctx, smtp)
    ctx = dataclasses.replace(s3_app.ctx, settings=dataclasses.replace(s3_app.ctx.settings, upload_retention=3600))
    job = (await upload(s3_app.http, headers, csv_rows(50))).json()
    assert await pipeline.run_job(ctx, uuid.UUID(job["id"])) == "completed"
    assert len(s3.keys(PREFIX)) == 1
    assert await imports.purge_uploads(ctx) == 0
    await db_execute(ctx, "UPDATE import_jobs SET finished_at = now() - interval '2 hours'")
    assert await imports.purge_uploads(ctx) == 1
    assert s3.keys(PREFIX) == []


async def test_readiness_reports_the_store(s3_app, s3, monkeypatch):
    monkeypatch.setattr(storage, "PROBE_TTL", 0.0)
    ready = await s3_app.http.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "checks": {"postgres": "ok", "redis": "ok", "store": "ok"}}
    s3.stop()
    # Only imports need the store: the process stays in service, and says what is missing
    ready = await s3_app.http.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "degraded" and ready.json()["checks"]["store"] == "unavailable"


def test_a_worker_clears_the_copies_killed_workers_left_and_only_those(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / f"{dead.pid}-job_a.csv").write_bytes(b"left by a killed worker")
    (tmp_path / f"{os.getpid()}-job_b.csv").write_bytes(b"in use")
    assert storage.clear_scratch(tmp_path) == 1
    assert [p.name for p in tmp_path.iterdir()] == [f"{os.getpid()}-job_b.csv"]


async def test_a_readiness_answer_is_reused_for_a_few_seconds():
    class Counting(storage._CachedProbe):
        probes = 0

        async def _probe(self) -> None:
            Counting.probes += 1

    probe = Counting()
    assert all([await probe.ready() for _ in range(5)])
    assert Counting.probes == 1
