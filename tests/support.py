"""Shared test helpers: a real SMTP sink, the app on its lifespan, and account flows."""

from __future__ import annotations

import asyncio
import email
import inspect
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from email.message import Message
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
from aiosmtpd.controller import Controller
from starlette.applications import Starlette

from service.config import Settings
from service.context import Context

PASSWORD = "secret123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SMTPSink:
    """A real SMTP server that keeps what it receives; it can be told to refuse mail for a while."""

    def __init__(self, host: str, port: int) -> None:
        self.messages: list[Message] = []
        self.refusing = False
        self._lock = threading.Lock()
        self.controller = Controller(self, hostname=host, port=port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refusing:
            return "451 4.3.0 Temporarily refusing mail"
        with self._lock:
            self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()
        self.refusing = False

    def to(self, address: str) -> list[Message]:
        with self._lock:
            return [m for m in self.messages if m["To"] == address]

    async def wait_for(self, address: str, count: int = 1, timeout: float = 15.0) -> list[Message]:
        """The emails to `address` once there are `count` of them."""

        def enough() -> list[Message] | None:
            found = self.to(address)
            return found if len(found) >= count else None

        return await eventually(enough, timeout, f"{count} email(s) to {address}")


def body(message: Message) -> str:
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


def code_in(message: Message) -> str:
    match = re.search(r"activation code is (\d{4})", body(message))
    assert match, body(message)
    return match.group(1)


def reset_token_in(message: Message) -> str:
    match = re.search(r'"token": "([^"]+)"', body(message))
    assert match, body(message)
    return match.group(1)


async def drop_database(url: str, *, create: bool = False) -> None:
    """Drop the database of `url` (ending its sessions first); with `create`, make it again, empty."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = await asyncpg.connect(urlunsplit(parts._replace(path="/postgres")))
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        if create:
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


async def recreate_database(url: str) -> None:
    await drop_database(url, create=True)


@dataclass
class AppClient:
    app: Starlette
    state: dict[str, Any]
    http: httpx.AsyncClient

    @property
    def ctx(self) -> Context:
        return self.state["ctx"]

    @classmethod
    @asynccontextmanager
    async def start(
        cls, settings: Settings, client: tuple[str, int] = ("127.0.0.1", 50000)
    ) -> AsyncIterator[AppClient]:
        from service.app import create_app

        app = create_app(settings)
        async with app.router.lifespan_context(app) as state:

            async def with_state(scope: Any, receive: Callable[..., Any], send: Callable[..., Any]) -> None:
                scope["state"] = dict(state)  # as uvicorn does with lifespan state
                await app(scope, receive, send)

            transport = httpx.ASGITransport(app=with_state, client=client)
            async with httpx.AsyncClient(transport=transport, base_url="http://tasklane.test") as http:
                yield cls(app, state, http)


async def send_email(ctx: Context, email_id: Any, mailer: Any = None) -> str:
    """One attempt at a queued email, as the `emails.send` actor makes it (through the real SMTP server
    unless another mailer is given); what happened."""
    from service.accounts.service import mint_for_email
    from service.notifications.emails import SMTPMailer, deliver

    return await deliver(ctx, mailer or SMTPMailer(ctx.settings), email_id, mint_for_email)


async def deliver_pending_emails(ctx: Context) -> list[str]:
    """Send every queued email now, as the `emails.send` actor would, through the real SMTP server."""
    async with ctx.db.connection() as conn:
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM emails WHERE status = 'pending' ORDER BY created_at")]
    return [await send_email(ctx, i) for i in ids]


async def register(http: httpx.AsyncClient, address: str, password: str = PASSWORD) -> httpx.Response:
    return await http.post("/api/v1/users", json={"email": address, "password": password})


async def activate(http: httpx.AsyncClient, address: str, code: str, password: str = PASSWORD) -> httpx.Response:
    return await http.post("/api/v1/users/activate", json={"code": code}, auth=(address, password))


async def login(http: httpx.AsyncClient, address: str, password: str = PASSWORD) -> httpx.Response:
    return await http.post("/api/v1/auth/login", json={"email": address, "password": password})


async def active_account(
    http: httpx.AsyncClient, ctx: Context, smtp: Any, address: str, password: str = PASSWORD
) -> dict[str, Any]:
    """Register, read the code from the email, activate and log in; returns the token response."""
    assert (await register(http, address, password)).status_code == 201
    await deliver_pending_emails(ctx)
    code = code_in((await smtp.wait_for(address))[-1])
    assert (await activate(http, address, code, password)).status_code == 200
    await deliver_pending_emails(ctx)  # the welcome email, so the outbox starts empty
    response = await login(http, address, password)
    assert response.status_code == 200, response.text
    return response.json()


async def signup(
    http: httpx.AsyncClient, smtp: Any, address: str, password: str = PASSWORD, *, forwarded_for: str | None = None
) -> dict[str, str]:
    """Register, activate with the code a worker emailed, log in; returns Bearer headers (for real processes).
    `forwarded_for` sends both requests from that client address (X-Forwarded-For, behind a trusted proxy)."""
    forwarded = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    response = await http.post("/api/v1/users", json={"email": address, "password": password}, headers=forwarded)
    assert response.status_code == 201, response.text
    code = code_in((await smtp.wait_for(address, timeout=30))[-1])
    assert (await activate(http, address, code, password)).status_code == 200
    response = await http.post("/api/v1/auth/login", json={"email": address, "password": password}, headers=forwarded)
    assert response.status_code == 200, response.text
    return bearer(response.json())


async def insert_account(
    conn: asyncpg.Connection, email: str, *, password: str | None = None, active: bool = True
) -> uuid.UUID:
    """An account written straight to PostgreSQL, for tests that need an owner rather than the sign-up
    flow; with `password`, one that can log in (hashed at the lowest cost)."""
    from service.accounts.passwords import hash_password_sync

    password_hash = hash_password_sync(password, 4) if password else "x"
    sql = "INSERT INTO accounts (email, password_hash, is_active) VALUES ($1, $2, $3) RETURNING id"
    return await conn.fetchval(sql, email, password_hash, active)


def client_address(n: int) -> str:
    """A distinct client address per user, sent as X-Forwarded-For (with TRUSTED_PROXIES=127.0.0.1)."""
    return f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"


async def upload(
    http: httpx.AsyncClient, headers: dict[str, str], content: bytes, name: str = "tasks.csv", **fields: str
) -> httpx.Response:
    """POST a file to /api/v1/imports (the kind is read from the bytes; the part's type does not matter)."""
    files = {"file": (name, content, "application/octet-stream")}
    return await http.post("/api/v1/imports", files=files, data=fields or None, headers=headers)


async def wait_job(
    http: httpx.AsyncClient, headers: dict[str, str], job_id: str, timeout: float = 60
) -> dict[str, Any]:
    """The import `job_id` once it has ended (completed, failed or cancelled)."""

    async def ended() -> dict[str, Any] | None:
        job = (await http.get(f"/api/v1/imports/{job_id}", headers=headers)).json()
        return job if job["status"] not in ("queued", "processing") else None

    return await eventually(ended, timeout, f"import {job_id} to end", every=0.1)


def worker_broker() -> Any:
    """The broker `dramatiq workers` runs: importing the package builds it (once) and declares the actors."""
    import dramatiq

    import workers  # noqa: F401

    return dramatiq.get_broker()


@contextmanager
def running_worker(threads: int = 2) -> Iterator[Any]:
    """A real Dramatiq worker in this process, on the test Redis, with the project's middleware."""
    import dramatiq

    broker = worker_broker()
    broker.flush_all()
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=100)
    worker.start()
    try:
        yield broker
    finally:
        worker.stop()


async def fail_every_attempt(ctx: Context, email_id: Any) -> str:
    """Deliver a queued email to an SMTP server that refuses it, attempt after attempt, each as soon as the
    last failed; the outcome of the last one (the SMTP sink must be refusing)."""
    from service.notifications.emails import MAX_ATTEMPTS

    for _ in range(MAX_ATTEMPTS - 1):
        assert await send_email(ctx, email_id) == "retrying"
        await db_execute(ctx, "UPDATE emails SET next_attempt_at = now()")
    return await send_email(ctx, email_id)


def wait_until(probe: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """Poll a (blocking) probe until it returns something truthy, which is returned; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.1)  # the poll interval, not a wait for anything
    raise AssertionError(f"{what}: not in {timeout:.0f} s")


async def eventually(
    probe: Callable[[], Any], timeout: float = 15.0, what: str = "condition", every: float = 0.05
) -> Any:
    """Wait for an event: poll `probe` (a function, or a coroutine function) until it returns something
    truthy, which is returned. The deadline is generous, for a loaded machine: after `timeout` seconds,
    AssertionError naming `what` and the last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not in {timeout:g} s (last: {value!r})")
        await asyncio.sleep(every)  # the poll interval, not a wait for anything


@contextmanager
def log_records(name: str, level: int = logging.INFO) -> Iterator[list[logging.LogRecord]]:
    """The records logger `name` emits inside the block, at `level` and above. Unlike caplog, this holds
    when something in the block sets up logging again (importing the workers package does: it resets the root
    logger's handlers)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger, handler = logging.getLogger(name), Keep(level)
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def queue_size(broker: Any, actor: str) -> int:
    """Messages of `actor`'s queue that are waiting, delayed (a retry) or in a worker's hands (not yet acked)."""
    from service.messages import queue_of

    return broker.do_qsize(queue_of(actor))


def delayed_messages(broker: Any, actor: str) -> list[Any]:
    """The messages of `actor`'s queue waiting for their time (Dramatiq's Redis broker keeps them apart)."""
    import dramatiq

    from service.messages import queue_of

    raw = broker.client.hvals(f"{broker.namespace}:{queue_of(actor)}.DQ.msgs")
    return [dramatiq.Message.decode(data) for data in raw]


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def db_value(ctx: Context, sql: str, *args: Any) -> Any:
    async with ctx.db.connection() as conn:
        return await conn.fetchval(sql, *args)


async def db_execute(ctx: Context, sql: str, *args: Any) -> None:
    async with ctx.db.connection() as conn:
        await conn.execute(sql, *args)


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    data = response.json()
    assert data["status"] == status and data["title"] and data["detail"] and data["type"]
    return data
