"""GET /tasks: which statements answer a page for a combination of filters and sort, and its keyset
cursor. The statements themselves are assembled in statements.py; how a search (q) is read in search.py.

Order is total: (sort key, id). A task without due date has the key 'infinity' (last when ascending,
first when descending). The cursor carries the last row's (key, id), so a page starts strictly after
it: rows added or deleted meanwhile never make the next page skip or repeat one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from service import pagination
from service.db import Query
from service.pagination import InvalidCursor
from service.tasks import search, statements
from service.tasks.schemas import TaskQuery
from service.tasks.search import Words
from service.tasks.statements import (
    SORT_KEYS,
    SortKey,
    fetch_size,
    keys_query,
    list_query,
    matches_query,
    window_query,
)

# Windows. Status, category and q filters may keep 50% of a user's tasks or 0.01%: reading the sort's
# index in order finds a page fast for the former, collecting the matches from the filter's own index
# (tasks_category_tasks, tasks_user_title_words: migrations 0011, 0012) then sorting them is fast for the
# latter, neither in between, and PostgreSQL's planner cannot tell where a filter stands (it took a word
# in 0.1% of 1M tasks for 1% and read the due date index for it: 250 ms). So such a list first reads a
# window of the sort's index, a bounded number of rows in order (list-tasks-window), and collects the
# matches only when the window holds too few for the page; the filter is then rare, and collecting them
# cheap. Status, category and due date are in the sort indexes, so their window is read from the index
# alone (statements.FILTER_WINDOW_PER_ROW rows per row of the page); q needs the table, and a search's
# windows are sized from what is known of its words (search.py). A category sorted by due date needs no
# window: its own index is in that order (list-tasks-by-keys).
WINDOWED = frozenset({"filter_status", "filter_statuses", "filter_category", "filter_q"})
# What a window's filters become when the matches are collected: planned with the values (the category
# by its id, whose share of the table the planner knows), in a form the filter's index answers.
FINISHING = {"filter_category": "filter_category_id", "filter_q": "filter_q_indexed"}


@dataclass(frozen=True)
class Statements:
    """What answers one page: `first`; when `first` reads a window, what finishes the page if the window
    holds too few matches: for a search, a larger window read on from the last row of the first (`then`,
    of the size search.next_window says), and `rest`, planned with the values."""

    first: Query
    rest: Query | None = None
    sort: str = ""
    filters: frozenset[str] = frozenset()
    fetch: int = 0
    probe: int = 0  # rows of a search's first window (0: no second window)
    after: bool = False
    collects: bool = False  # `rest` collects the matches (list-tasks-matches), then sorts them

    def then(self, size: int) -> Query:
        return window_query(self.sort, self.filters, True, self.fetch, size)

    def start(self, words: Words | None) -> tuple[Query, int] | None:
        """The first window to read and its size, or None when the matches of a search are better
        collected from the start (search.first_window)."""
        if not self.probe:
            return self.first, statements.FILTER_WINDOW_PER_ROW * self.fetch
        size = search.first_window(self.filters, self.fetch, self.probe, words)
        if size is None:
            return None
        if size == self.probe:
            return self.first, size
        return window_query(self.sort, self.filters, self.after, self.fetch, size), size


def _statements(sort: str, filters: frozenset[str], after: bool, limit: int) -> Statements:
    fetch = fetch_size(limit)
    if not filters & WINDOWED:
        return Statements(list_query(sort, filters, after, None if filters & statements.VALUE_DEPENDENT else fetch))
    finishing = frozenset(FINISHING.get(name, name) for name in filters)
    if "filter_q" not in filters:
        category = "filter_category" in filters
        if category and sort.lstrip("-") == "due_date":
            # The category's own index is in this order (and holds what the other filters test): read at once.
            return Statements(keys_query(sort, filters, after, fetch))
        window = window_query(sort, filters, after, fetch, statements.FILTER_WINDOW_PER_ROW * fetch)
        if category:
            # A category's tasks are filtered and sorted from its own index alone (tasks_category_tasks,
            # migration 0011): only the page's rows are then read from the table.
            return Statements(window, rest=matches_query(sort, finishing, after), collects=True)
        return Statements(window, rest=list_query(sort, finishing, after, None))
    probe = search.PROBE_PER_ROW * fetch
    return Statements(
        window_query(sort, filters, after, fetch, probe),
        rest=matches_query(sort, finishing, after),
        sort=sort,
        filters=filters,
        fetch=fetch,
        probe=probe,
        after=after,
        collects=True,
    )


@dataclass(frozen=True)
class Shape:
    """What a listing needs that depends on the query string alone (cached per distinct TaskQuery)."""

    sort_key: SortKey
    filters: frozenset[str]  # names of the filter-* fragments
    first_page: Statements
    next_page: Statements
    params: dict[str, Any]  # filter values; user_id, the words of q and the cursor's key are added per request
    scope: bytes  # digest of sort and filters, to which a cursor is bound (with the user)


def shape(query: TaskQuery) -> Shape:
    return _shape(
        query.status, query.category, query.q, query.due_before, query.due_after, query.overdue, query.sort, query.limit
    )


@lru_cache(maxsize=512)
def _shape(
    status: tuple[str, ...],
    category: str | None,
    q: str | None,
    due_before: date | None,
    due_after: date | None,
    overdue: bool | None,
    sort: str,
    limit: int,
) -> Shape:
    filters: set[str] = set()
    params: dict[str, Any] = {"limit": limit + 1}
    statuses = sorted(set(status))
    if len(statuses) == 3:  # all three is no filter at all
        statuses = []
    if len(statuses) == 1:
        filters.add("filter_status")
        params["status"] = statuses[0]
    elif statuses:
        filters.add("filter_statuses")
        params["statuses"] = statuses
    if category is not None:
        filters.add("filter_category")
        params["category"] = category
    if q is not None:
        filters.add("filter_q")
    if due_before is not None:
        filters.add("filter_due_before")
        params["due_before"] = due_before
    if due_after is not None:
        filters.add("filter_due_after")
        params["due_after"] = due_after
    if overdue is not None:
        filters.add("filter_overdue" if overdue else "filter_not_overdue")
    chosen = frozenset(filters)
    # The page size is not part of the scope: a client may change it from page to page.
    scope = orjson.dumps([sort, statuses, (category or "").lower(), q, due_before, due_after, overdue])
    return Shape(
        sort_key=SORT_KEYS[sort.lstrip("-")],
        filters=chosen,
        first_page=_statements(sort, chosen, False, limit),
        next_page=_statements(sort, chosen, True, limit),
        params=params,
        scope=hashlib.blake2b(scope, digest_size=16).digest(),
    )


@dataclass(frozen=True)
class Plan:
    statements: Statements
    params: dict[str, Any]
    scope: bytes  # what a cursor of this listing is bound to: user, sort and filters
    sort_key: SortKey
    words: Words | None = None


def plan(secret: str, user_id: UUID, query: TaskQuery, words: Words | None = None) -> Plan:
    """The statements and parameters answering `query` for `user_id` (`words`: those of query.q, from
    search-words); InvalidCursor for a bad cursor."""
    found = shape(query)
    params = {**found.params, "user_id": user_id}
    if words is not None:
        params.update(words.params())
    scope = user_id.bytes + found.scope
    if query.cursor is None:
        return Plan(found.first_page, params, scope, found.sort_key, words)
    values = pagination.decode(secret, scope, query.cursor)
    try:
        key_json, id_json = values
        params["after_key"] = found.sort_key.from_json(key_json)
        params["after_id"] = UUID(id_json)
    except (ValueError, TypeError, OverflowError):
        # Signed by us yet unreadable: only possible across an incompatible change of format.
        raise InvalidCursor("The cursor is no longer valid; start from the first page") from None
    return Plan(found.next_page, params, scope, found.sort_key, words)


def next_cursor(secret: str, plan: Plan, last: asyncpg.Record) -> str:
    return pagination.encode(secret, plan.scope, [plan.sort_key.to_json(last), str(last["id"])])
