"""Database lifecycle and the named-SQL loader.

Statements live in `sql/queries/*.sql` under `-- name: verb-noun` lines and use `:param` placeholders;
a statement may include a fragment of the same file by its name in braces (`{task_columns}` for
`-- name: task-columns`), so that a projection several statements share is written once. They are
rewritten once, at load time, into asyncpg's `$n` form and run on a raw asyncpg connection
(the one `databases` holds for the current task, if any): that keeps `databases`' per-task connection
and transaction handling while skipping the SQLAlchemy compilation it would do on every call, and
asyncpg caches each statement as a prepared statement. One runner, `run`, executes them, on whichever
connection a `Database` helper picks or on a connection the caller already holds.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import asyncpg
import databases
import orjson

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
_NAME = re.compile(r"^--\s*name:\s*([a-z0-9-]+)\s*$", re.MULTILINE)
# `:param`, but neither the `::type` cast nor a `:` inside a word.
_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
# `{name}`: the fragment of that (snake_case) name, when the file has one.
_INCLUDE = re.compile(r"\{([a-z0-9_]+)\}")
log = logging.getLogger("tasklane.db")
CLOSE_WAIT = 30.0  # seconds a closing pool waits for its connections to come back
Method = Literal["fetchrow", "fetch", "fetchval", "execute"]  # asyncpg's, on a connection


@dataclass(frozen=True)
class Query:
    name: str
    sql: str
    params: tuple[str, ...]
    # Plan with the actual values on every execution, never with PostgreSQL's generic plan: for
    # statements whose best plan depends on the values (a search pattern, a date range). Costs a
    # round trip (a one-off prepared statement) and the planning. Honoured by `fetch` (fetch_all).
    custom_plan: bool = False

    def args(self, values: Mapping[str, Any]) -> list[Any]:
        try:
            return [values[p] for p in self.params]
        except KeyError as exc:
            raise TypeError(f"query {self.name!r} needs parameter {exc.args[0]!r}") from None


def _compile(name: str, text: str) -> Query:
    order: list[str] = []

    def number(match: re.Match[str]) -> str:
        param = match.group(1)
        if param not in order:
            order.append(param)
        return f"${order.index(param) + 1}"

    return Query(name, _PARAM.sub(number, text).strip().rstrip(";"), tuple(order))


def split_queries(text: str) -> dict[str, str]:
    """The text of each named statement (or fragment), comment lines removed, the fragments it includes
    in place, `:param`s left as they are."""
    texts: dict[str, str] = {}
    parts = _NAME.split(text)
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [line for line in body.splitlines() if not line.lstrip().startswith("--")]
        key = name.replace("-", "_")
        if key in texts:
            raise ValueError(f"duplicate query name {name!r}")
        texts[key] = "\n".join(lines).strip()
    return _include(texts)


def _include(texts: dict[str, str]) -> dict[str, str]:
    """Each text with every `{name}` of a fragment of the same texts replaced by that fragment (itself with
    its own included); any other `{...}` is left for `compose` (a list's sort key, filters, ...)."""
    done: dict[str, str] = {}

    def resolve(key: str, within: tuple[str, ...]) -> str:
        if key in within:
            raise ValueError(f"query {key!r} includes itself")
        if key not in done:
            included = (*within, key)
            done[key] = _INCLUDE.sub(
                lambda m: resolve(m[1], included) if m[1] in texts else m[0],
                texts[key],
            )
        return done[key]

    return {key: resolve(key, ()) for key in texts}


def parse_queries(text: str) -> dict[str, Query]:
    return {key: _compile(key, body) for key, body in split_queries(text).items()}


def compose(name: str, text: str, *, custom_plan: bool = False) -> Query:
    """A statement assembled from named fragments (see `Queries.text`), compiled like a named one.
    Only ever join fragments from the SQL files: user input goes in as parameters, never as text."""
    query = _compile(name, text)
    return Query(query.name, query.sql, query.params, custom_plan) if custom_plan else query


class Queries:
    """The statements of one `sql/queries/<domain>.sql` file, as attributes named in snake_case."""

    def __init__(self, domain: str) -> None:
        self._texts = split_queries((SQL_DIR / "queries" / f"{domain}.sql").read_text())
        self._queries = {key: _compile(key, body) for key, body in self._texts.items()}

    def __getattr__(self, name: str) -> Query:
        try:
            return self._queries[name]
        except KeyError:
            raise AttributeError(name) from None

    def text(self, name: str) -> str:
        """The raw text of a statement or fragment, for `compose`."""
        return self._texts[name]


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb in and out as Python objects, through orjson.
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda v: b"\x01" + orjson.dumps(v),
        decoder=lambda b: orjson.loads(b[1:]),
        schema="pg_catalog",
        format="binary",
    )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Called instead of asyncpg's default reset when a connection goes back to the pool.

    The default sends `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` on every release: one
    more round trip for every request, for state nothing here creates. Pooled connections never hold session
    state: no session advisory locks (the migrator uses its own connection, the relay a transaction
    lock), no LISTEN, no cursors WITH HOLD, only `SET LOCAL`. asyncpg still rolls back a transaction
    left open before calling this."""


class Database:
    """A `databases.Database` pool with helpers that run named queries."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.url = url
        self._asyncpg_pool: asyncpg.Pool | None = None
        # `databases` hands asyncpg the URL's parts, not the URL: a `?sslmode=require` would be dropped
        # without a word and the connection made in clear text. asyncpg takes the mode names as its `ssl`.
        tls = {"ssl": mode[-1]} if (mode := parse_qs(urlsplit(url).query).get("sslmode")) else {}
        self.pool = databases.Database(
            url,
            **tls,
            min_size=min_size,
            max_size=max_size,
            # Fail fast instead of queueing behind a server that is down: callers answer 503.
            timeout=5,
            command_timeout=60,
            init=_init_connection,
            reset=_keep_session,
        )

    async def connect(self) -> None:
        await self.pool.connect()
        # asyncpg's own pool under `databases` (a private attribute, checked here once: without it,
        # every statement simply takes the `databases` path).
        self._asyncpg_pool = getattr(getattr(self.pool, "_backend", None), "_pool", None)

    async def disconnect(self) -> None:
        if not self.pool.is_connected:
            return
        try:
            await asyncio.wait_for(self.pool.disconnect(), CLOSE_WAIT)
        except TimeoutError:
            # A connection never came back (a task cancelled in a `databases` COMMIT leaves its connection
            # checked out); asyncpg terminates the pool when its close is cut short. A stop never hangs.
            log.warning("database pool closed by force: a connection was still checked out")

    def transaction(self) -> databases.core.Transaction:
        return self.pool.transaction()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """The raw asyncpg connection of this task (the one its open transaction uses, if any)."""
        async with self.pool.connection() as conn:
            yield conn.raw_connection

    def _free_pool(self) -> asyncpg.Pool | None:
        """asyncpg's pool when this task holds no `databases` connection (so is in no transaction): a
        lone statement then borrows a connection straight from it, skipping the per-task bookkeeping
        of `databases` (a weak map, three locks and a wrapper object per call, on every simple
        request). Inside `transaction()` or `connection()`, None: use the task's connection."""
        pool = self.pool
        if pool._global_connection is not None or asyncio.current_task() in pool._connection_map:
            return None
        return self._asyncpg_pool

    async def _run(self, method: Method, query: Query, values: Mapping[str, Any]) -> Any:
        if (free := self._free_pool()) is not None:
            async with free.acquire() as conn:
                return await run(conn, method, query, values)
        async with self.connection() as conn:
            return await run(conn, method, query, values)

    async def fetch_one(self, query: Query, **values: Any) -> asyncpg.Record | None:
        return await self._run("fetchrow", query, values)

    async def fetch_all(self, query: Query, **values: Any) -> list[asyncpg.Record]:
        return await self._run("fetch", query, values)

    async def fetch_val(self, query: Query, **values: Any) -> Any:
        return await self._run("fetchval", query, values)

    async def execute(self, query: Query, **values: Any) -> str:
        return await self._run("execute", query, values)


async def run(conn: asyncpg.Connection, method: Method, query: Query, values: Mapping[str, Any]) -> Any:
    """Runs a named query with asyncpg's `method` on a raw connection: the one runner behind Database's
    helpers, and the way to run a named query on a connection already held (a COPY's, a transaction's)."""
    args = query.args(values)
    if query.custom_plan and method == "fetch":
        # Not from asyncpg's statement cache: executed once, so planned with these values.
        return await (await conn.prepare(query.sql)).fetch(*args)
    return await getattr(conn, method)(query.sql, *args)
