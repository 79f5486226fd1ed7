"""Test fixtures on real components: a dedicated PostgreSQL database (re-created per run), a dedicated
Redis database, a real SMTP server (aiosmtpd) and real HTTP webhook receivers in this process."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis

from tests.receiver import Reply, WebhookReceiver
from tests.reporting import report, terminal_summary  # noqa: F401  (the `report` fixture)
from tests.stores import S3Server, s3_mode, shared_s3
from tests.support import SMTPSink, free_port

TEST_WEBHOOK_SECRET = "whsec_dGVzdC13ZWJob29rLXNlY3JldC0wMTIzNDU2Nzg5YWI="  # base64 of 32 bytes


def _scratch_uploads() -> str:
    directory = tempfile.mkdtemp(prefix="tasklane-test-uploads-")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


def _setdefault_env() -> None:
    os.environ.setdefault("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/tasklane_test")
    os.environ.setdefault("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    os.environ.update(
        APP_ENV="test",
        DATABASE_URL=os.environ["TEST_DATABASE_URL"],
        REDIS_URL=os.environ["TEST_REDIS_URL"],
        SECRET_KEY="test-secret-key-that-is-long-enough-0123456789",
        BCRYPT_ROUNDS="4",
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(free_port()),
        EMAIL_FROM="tasklane <no-reply@tasklane.test>",
        RELAY_INTERVAL="0.3",
        RELAY_GRACE="1",
        BROKER_HEARTBEAT_TIMEOUT_MS="5000",
        LOG_LEVEL="WARNING",
        # Webhook receivers in tests listen on 127.0.0.1; tests of the refusal path turn this off.
        WEBHOOK_ALLOW_PRIVATE="true",
        WEBHOOK_RETRY_BASE="0.2",
        WEBHOOK_SECRET=TEST_WEBHOOK_SECRET,
        UPLOAD_DIR=_scratch_uploads(),
        IMPORT_CHUNK_ROWS="1000",
        IMPORT_STALE_AFTER="3",
        UPLOAD_STORE_RETRY_FOR="60",
    )
    if s3_mode():
        # A prefix of this run's own in the bucket: the database name is unique to a run.
        os.environ.update(shared_s3().env(os.environ["TEST_DATABASE_URL"].rsplit("/", 1)[-1]))


_setdefault_env()

from service.config import Settings, get_settings  # noqa: E402  (after the environment is set)
from service.migrate import migrate  # noqa: E402
from tests.support import AppClient, recreate_database, running_worker  # noqa: E402

KEEP_TABLES = {"schema_migrations"}


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
def smtp(settings: Settings) -> Iterator[SMTPSink]:
    sink = SMTPSink(settings.smtp_host, settings.smtp_port)
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def webhook_receiver() -> Iterator[Callable[..., WebhookReceiver]]:
    """Starts real HTTP receivers: `webhook_receiver([500, 500, 200])`; all are stopped after the test."""
    started: list[WebhookReceiver] = []

    def start(script: Iterable[int | Reply] = (), *, then: int | Reply = 200) -> WebhookReceiver:
        receiver = WebhookReceiver(script, then=then).start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


@pytest.fixture(scope="session")
async def database(settings: Settings) -> str:
    await recreate_database(settings.database_url)
    await migrate(settings.database_url)
    return settings.database_url


@pytest.fixture(scope="session")
def redis_client(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url)


@pytest.fixture
async def clean(database: str, redis_client: redis.Redis, smtp: SMTPSink) -> None:
    """Every test starts with empty tables, an empty Redis database and an empty mailbox."""
    conn = await asyncpg.connect(database)
    try:
        tables = [
            r["tablename"]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            if r["tablename"] not in KEEP_TABLES
        ]
        if tables:
            await conn.execute(f"TRUNCATE {', '.join(tables)} CASCADE")
    finally:
        await conn.close()
    redis_client.flushdb()
    smtp.clear()
    uploads = Path(os.environ["UPLOAD_DIR"])
    shutil.rmtree(uploads, ignore_errors=True)
    uploads.mkdir(parents=True)
    if s3_mode():
        shared_s3().clear()


@pytest.fixture(scope="session")
def s3() -> S3Server:
    """The session's S3 server (moto over HTTP), whatever store the other tests use."""
    return shared_s3()


@pytest.fixture(scope="session")
async def app_client(database: str, settings: Settings) -> AsyncIterator[AppClient]:
    async with AppClient.start(settings) as client:
        yield client


@pytest.fixture
async def client(app_client: AppClient, clean: None) -> httpx.AsyncClient:
    return app_client.http


@pytest.fixture
def worker(clean: None) -> Iterator[Any]:
    """A real Dramatiq worker (in this process) processing the test Redis queues; yields its broker."""
    with running_worker() as broker:
        yield broker


@pytest.fixture
def ctx(app_client: AppClient):
    return app_client.ctx


def pytest_configure(config: pytest.Config) -> None:
    # Fail early, with a useful message, when a backing service is down.
    for host, port, what in (
        ("127.0.0.1", 5432, "PostgreSQL"),
        ("127.0.0.1", 6379, "Redis"),
        ("127.0.0.1", 5672, "RabbitMQ"),
    ):
        with socket.socket() as s:
            s.settimeout(2)
            if s.connect_ex((host, port)) != 0:
                raise pytest.UsageError(f"{what} is not answering on {host}:{port}; .ci/run starts it")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    terminal_summary(terminalreporter, "contract findings", "tests/http/test_contract.py")
