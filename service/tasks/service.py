"""Task and category rules: every read and write is scoped to the calling user, and another user's
task or category is answered exactly like one that does not exist. A page of GET /tasks: its statements
are chosen in listing.py (a search's way in search.py, the SQL in statements.py) and read in pages.py."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from service.context import Context
from service.db import Queries
from service.errors import Conflict, NotFound
from service.ids import parse_id
from service.tasks import listing, pages, search
from service.tasks.schemas import CategoryPatch, TaskIn, TaskPatch, TaskQuery

Q = Queries("tasks")
CATEGORY_NAME_INDEX = "categories_user_name"


class TaskNotFound(NotFound):
    slug, title = "task-not-found", "Task not found"


class CategoryNotFound(NotFound):
    slug, title = "category-not-found", "Category not found"


class CategoryExists(Conflict):
    slug, title = "category-exists", "Category name taken"


def task_dict(row: asyncpg.Record) -> dict[str, Any]:
    return dict(row)


async def category_ids(db: Context | asyncpg.Connection, user_id: UUID, names: Iterable[str]) -> dict[str, UUID]:
    """{name.lower(): id} for every name, creating the user's missing categories, in one round trip.

    Names must already be clean (`rules.category`); they match existing ones case-insensitively. Safe
    under concurrency: a name created at the same time by another transaction resolves to that one
    category. Takes a Context, or the raw connection of a transaction (e.g. the bulk importer's).
    """
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return {}
    if isinstance(db, Context):
        rows = await db.db.fetch_all(Q.category_ids, user_id=user_id, names=wanted)
    else:
        rows = await db.fetch(Q.category_ids.sql, *Q.category_ids.args({"user_id": user_id, "names": wanted}))
    return {row["name"].lower(): row["id"] for row in rows}


async def create_task(ctx: Context, user_id: UUID, data: TaskIn) -> dict[str, Any] | None:
    """The new task; None (and nothing created) when the account is gone or inactive."""
    row = await ctx.db.fetch_one(
        Q.create_task,
        user_id=user_id,
        title=data.title,
        description=data.description,
        status=data.status,
        priority=data.priority,
        due_date=data.due_date,
        category=data.category,
    )
    return task_dict(row) if row is not None else None


async def get_task(ctx: Context, user_id: UUID, task_id: str) -> dict[str, Any]:
    tid = parse_id(task_id)
    row = await ctx.db.fetch_one(Q.get_task, id=tid, user_id=user_id) if tid else None
    if row is None:
        raise TaskNotFound("No task with this id")
    return task_dict(row)


async def update_task(ctx: Context, user_id: UUID, task_id: str, patch: TaskPatch) -> dict[str, Any]:
    tid = parse_id(task_id)
    if tid is None:
        raise TaskNotFound("No task with this id")
    sent = patch.model_fields_set
    if not sent:
        return await get_task(ctx, user_id, task_id)
    async with ctx.db.transaction():
        category_id = None
        if "category" in sent and patch.category is not None:
            category_id = (await category_ids(ctx, user_id, [patch.category]))[patch.category.lower()]
        row = await ctx.db.fetch_one(
            Q.update_task,
            id=tid,
            user_id=user_id,
            set_title="title" in sent,
            title=patch.title,
            set_description="description" in sent,
            description=patch.description,
            set_status="status" in sent,
            status=patch.status,
            set_priority="priority" in sent,
            priority=patch.priority,
            set_due_date="due_date" in sent,
            due_date=patch.due_date,
            set_category="category" in sent,
            category_id=category_id,
        )
        if row is None:
            # Rolls back a category created for a task that is not there.
            raise TaskNotFound("No task with this id")
    return task_dict(row)


async def delete_task(ctx: Context, user_id: UUID, task_id: str) -> None:
    tid = parse_id(task_id)
    if tid is None or await ctx.db.fetch_val(Q.delete_task, id=tid, user_id=user_id) is None:
        raise TaskNotFound("No task with this id")


async def search_words(ctx: Context, q: str) -> search.Words:
    """The words of a search as the search index holds them; computed by PostgreSQL (its parser and
    dictionaries define them) once per distinct q and process, as pages of one search all ask again. So
    are the shares of tasks ANALYZE found for them: they change slowly, and only guide the choice of
    strategy (search.py), which the rate of matches a window finds corrects."""
    words = _words.get(q)
    if words is None:
        row = await ctx.db.fetch_one(Q.search_words, q=q)
        words = search.Words(row["query"], list(row["patterns"]), list(row["word_queries"]), list(row["shares"]))
        if len(_words) >= WORDS_CACHED:
            del _words[next(iter(_words))]  # the oldest
        _words[q] = words
    return words


WORDS_CACHED = 1024
_words: dict[str, search.Words] = {}


async def list_tasks(ctx: Context, user_id: UUID, query: TaskQuery) -> dict[str, Any] | None:
    """One page of the user's tasks as {items, next_cursor}; None when the account is gone or inactive
    (checked by the list query itself: a page of tasks costs one round trip, authentication included)."""
    secret = ctx.settings.secret_key
    words = await search_words(ctx, query.q) if query.q is not None else None
    plan = listing.plan(secret, user_id, query, words)
    rows = [] if words is not None and words.query is None else await pages.page_rows(ctx, plan, query.limit)
    if not rows:
        if not await ctx.db.fetch_val(Q.account_is_active, user_id=user_id):
            return None
        return {"items": [], "next_cursor": None}
    cursor = None
    if len(rows) > query.limit:  # more rows than asked for: there is a next page
        rows = rows[: query.limit]
        cursor = listing.next_cursor(secret, plan, rows[-1])
    return {"items": [orjson.Fragment(row["item"]) for row in rows], "next_cursor": cursor}


async def list_categories(ctx: Context, user_id: UUID) -> dict[str, Any]:
    rows = await ctx.db.fetch_all(Q.list_categories, user_id=user_id)
    return {"items": [dict(row) for row in rows]}


async def rename_category(ctx: Context, user_id: UUID, category_id: str, data: CategoryPatch) -> dict[str, Any]:
    cid = parse_id(category_id)
    if cid is None:
        raise CategoryNotFound("No category with this id")
    try:
        row = await ctx.db.fetch_one(Q.rename_category, id=cid, user_id=user_id, name=data.name)
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name != CATEGORY_NAME_INDEX:
            raise
        raise CategoryExists("You already have a category with this name") from None
    if row is None:
        raise CategoryNotFound("No category with this id")
    return dict(row)


async def delete_category(ctx: Context, user_id: UUID, category_id: str) -> None:
    cid = parse_id(category_id)
    if cid is None or await ctx.db.fetch_val(Q.delete_category, id=cid, user_id=user_id) is None:
        raise CategoryNotFound("No category with this id")
