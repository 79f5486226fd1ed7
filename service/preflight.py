"""`make run` start-up checks: PostgreSQL, Redis (and RabbitMQ when BROKER_URL names it) answer, and the
database exists (created if not).

A new user should see what to do, not a stack trace.
"""

from __future__ import annotations

import asyncio
import sys
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pika
import pika.exceptions
import redis

from service.config import ConfigError, get_settings
from service.messages import is_rabbitmq
from service.storage import open_store

START_POSTGRES = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
START_REDIS = (
    'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis'
)
START_RABBITMQ = "rabbitmq-server -detached"


def shown(url: str) -> str:
    """A URL as it may be printed: credentials and query (which can hold secrets) left out."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def ensure_database(url: str) -> str:
    """Returns what was done; raises OSError when PostgreSQL does not answer."""
    try:
        conn = await asyncpg.connect(url, timeout=5)
    except asyncpg.InvalidCatalogNameError:
        name = urlsplit(url).path.lstrip("/")
        admin = await asyncpg.connect(_with_database(url, "postgres"), timeout=5)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        except asyncpg.DuplicateDatabaseError:
            pass
        finally:
            await admin.close()
        return f"created database {name}"
    await conn.close()
    return "database exists"


def main() -> int:
    try:
        settings = get_settings()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 1
    ok = True
    where = urlsplit(settings.database_url)
    try:
        outcome = asyncio.run(ensure_database(settings.database_url))
        print(f"PostgreSQL at {where.hostname}:{where.port or 5432}: {outcome}")
    except (OSError, asyncpg.PostgresError) as exc:
        ok = False
        print(
            f"PostgreSQL does not answer at {where.hostname}:{where.port or 5432} ({exc}).\n"
            f"Start it (on this kind of machine) with:\n    {START_POSTGRES}\n"
            "or point DATABASE_URL at a running server.",
            file=sys.stderr,
        )
    try:
        redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2).ping()
        print(f"Redis at {shown(settings.redis_url)}: answers")
    except redis.exceptions.RedisError as exc:
        ok = False
        print(
            f"Redis does not answer at {shown(settings.redis_url)} ({exc}).\n"
            f"Start it with:\n    {START_REDIS}\nor point REDIS_URL at a running server.",
            file=sys.stderr,
        )
    if is_rabbitmq(settings):
        try:
            pika.BlockingConnection(pika.URLParameters(settings.broker_url)).close()
            print(f"RabbitMQ at {shown(settings.broker_url)}: answers")
        except (pika.exceptions.AMQPError, OSError) as exc:
            ok = False
            print(
                f"RabbitMQ does not answer at {shown(settings.broker_url)} ({exc!r}).\n"
                f"Start it with:\n    {START_RABBITMQ}\nor point BROKER_URL at a running server.",
                file=sys.stderr,
            )
    store = open_store(settings)
    if store.kind == "local":
        print(f"Uploads kept in the local folder {settings.upload_store_url.removeprefix('file://')}")
    elif asyncio.run(store.ready()):
        print(f"Upload store {shown(settings.upload_store_url)}: answers")
    else:
        # Not fatal: everything but imports works, and imports wait for the store.
        where = shown(settings.upload_store_url)
        print(f"Upload store {where} does not answer: imports will wait for it", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
