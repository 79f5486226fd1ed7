"""Reading one page of GET /tasks by the statements its plan chose (listing.py): one list statement, or
windows of the sort's index read in its order, read on from their last row as a search's strategy says
(search.py), and the matches collected when the windows hold too few."""

from __future__ import annotations

from typing import Any

import asyncpg

from service.context import Context
from service.db import Queries, Query
from service.tasks import listing, search

Q = Queries("tasks")


def _window_ended(rows: list[asyncpg.Record]) -> bool:
    return bool(rows) and rows[-1]["last"]


async def _window(ctx: Context, query: Query, params: dict[str, Any]) -> list[asyncpg.Record]:
    """The rows of a window, read in the order of the sort's index (see read-in-index-order)."""
    async with ctx.db.transaction():
        await ctx.db.execute(Q.read_in_index_order)
        return await ctx.db.fetch_all(query, **params)


async def page_rows(ctx: Context, plan: listing.Plan, limit: int) -> list[asyncpg.Record]:
    """The rows of a page (and the one after it, if any) by the plan's statements: see listing.Statements."""
    statements = plan.statements
    if statements.rest is None:
        return await ctx.db.fetch_all(statements.first, **plan.params)
    start = statements.start(plan.words)
    if start is not None:
        rows = await _read_on(ctx, plan, limit, *start)
        if rows is not None:
            return rows
    # Too rare a filter to read on: collect its matches (from the cursor the client gave).
    params = plan.params
    if "category" in params:
        params = {**params, "category_id": await ctx.db.fetch_val(Q.category_id, **params)}
        if params["category_id"] is None:
            return []
    if not statements.collects:
        return await ctx.db.fetch_all(statements.rest, **params)
    async with ctx.db.transaction():
        await ctx.db.execute(Q.collect_in_one_process)
        return await ctx.db.fetch_all(statements.rest, **params)


async def _read_on(
    ctx: Context, plan: listing.Plan, limit: int, first: Query, size: int
) -> list[asyncpg.Record] | None:
    """The rows of a page read through windows of the sort's index from `first` (of `size` rows) on, or
    None when they show the matches better collected."""
    statements = plan.statements
    rows = await _window(ctx, first, plan.params)
    hits = [row for row in rows if row["hit"]]
    if len(hits) > limit or not _window_ended(rows):
        return hits
    read, passed = size, rows[-1]["passed"]
    for _ in range(search.SEARCH_WINDOWS - 1 if statements.probe else 0):
        size = search.next_window(limit, read, len(hits), passed, plan.words)
        if size is None:
            break
        # Matches common enough to read on in order, from the last window's last row.
        last = rows[-1]
        after = {"after_key": plan.sort_key.param(last), "after_id": last["id"]}
        rows = await _window(ctx, statements.then(size), {**plan.params, **after})
        hits += [row for row in rows if row["hit"]]
        if len(hits) > limit or not _window_ended(rows):
            return hits
        read, passed = read + size, passed + rows[-1]["passed"]
    return None
