"""GET /tasks: the list query for a combination of filters and sort, and its keyset cursor.

The statement is assembled from the fixed fragments of `sql/queries/tasks.sql` (one per filter, sort
and direction), never from request text, and compiled once per combination. Each combination is then a
plain `user_id = $1 AND <filters> AND (key, id) > ($k, $id) ORDER BY key, id LIMIT n` that a
(user_id, key, id) index answers without sorting; see the migration for the indexes.

Order is total: (sort key, id). A task without due date has the key 'infinity' (last when ascending,
first when descending). The cursor carries the last row's (key, id), so a page starts strictly after
it: rows added or deleted meanwhile never make the next page skip or repeat one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache, lru_cache
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from service import pagination
from service.db import Queries, Query, compose
from service.pagination import InvalidCursor
from service.tasks.schemas import TaskQuery

Q = Queries("tasks")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _created_to_json(row: asyncpg.Record) -> Any:
    return (row["created_at"] - _EPOCH) // _MICROSECOND


def _created_from_json(value: Any) -> datetime:
    if not isinstance(value, int):
        raise ValueError
    return _EPOCH + value * _MICROSECOND


def _due_to_json(row: asyncpg.Record) -> Any:
    due = row["due_date"]
    return None if due is None else due.isoformat()


def _due_from_json(value: Any) -> date:
    # date.max is what asyncpg sends as 'infinity', the key of a task without due date.
    return date.max if value is None else date.fromisoformat(value)


def _priority_to_json(row: asyncpg.Record) -> Any:
    return row["priority"]


def _priority_from_json(value: Any) -> int:
    if not isinstance(value, int):
        raise ValueError
    return value


@dataclass(frozen=True)
class SortKey:
    fragment: str  # the sort-* fragment naming the key expression
    to_json: Any  # row -> JSON-able key value for the cursor
    from_json: Any  # cursor value -> query parameter (ValueError when malformed)


SORT_KEYS = {
    "created_at": SortKey("sort_created_at", _created_to_json, _created_from_json),
    "due_date": SortKey("sort_due_date", _due_to_json, _due_from_json),
    "priority": SortKey("sort_priority", _priority_to_json, _priority_from_json),
}


# How many rows a page fetches: limit + 1 (the extra row tells whether there is a next page).
#
# Plans. asyncpg runs every statement as a prepared statement, and after five executions PostgreSQL
# may settle on one generic plan, made without the parameter values:
# - With no filter, or status/category/overdue filters only, the best plan never depends on the
#   values (an index on (user_id, [status|category_id,] sort key, id) gives rows in order), so a generic
#   plan is welcome: it saves planning, ~100 us of database CPU per request. `LIMIT $n` would prevent
#   it (a generic plan assumes it fetches 10% of the rows), so these statements say `LIMIT <literal>`,
#   rounded up to one of FETCH_SIZES (a fixed tuple, never text from the request).
# - With q, due_before or due_after the best plan depends on the values (trigram index vs sort index
#   for a rare vs common word; due-date range vs sort index for a narrow vs wide range), and a generic
#   plan chosen for one value can take a second for another (measured on 1M tasks). These statements
#   are planned on every execution with their values (Query.custom_plan).
FETCH_SIZES = (6, 11, 21, 26, 51, 101)
VALUE_DEPENDENT = frozenset({"filter_q", "filter_due_before", "filter_due_after"})


def fetch_size(limit: int) -> int:
    return next(size for size in FETCH_SIZES if size > limit)


@cache
def list_query(sort: str, filters: frozenset[str], after: bool, fetch: int | None) -> Query:
    """The statement for a sort (`-` prefix: descending), a set of filter-* fragment names, whether a
    cursor is given, and a literal fetch size (one of FETCH_SIZES) or None for a `:limit` parameter:
    a bounded set of statements (6 sorts x 3 x 2^6 filter sets x 2 x 7 limits at most)."""
    if fetch is not None and fetch not in FETCH_SIZES:
        raise ValueError(f"fetch size {fetch} is not one of {FETCH_SIZES}")
    descending = sort.startswith("-")
    key = Q.text(SORT_KEYS[sort.lstrip("-")].fragment)
    order = f"{key} DESC, t.id DESC" if descending else f"{key}, t.id"
    where = " ".join(Q.text(name) for name in sorted(filters))
    keyset = Q.text("after_desc" if descending else "after_asc").replace("{key}", key) if after else ""
    text = (
        Q.text("list_tasks")
        .replace("{filters}", where)
        .replace("{after}", keyset)
        .replace("{order}", order)
        .replace("{limit}", ":limit" if fetch is None else str(fetch))
    )
    name = f"list_tasks[{sort},{','.join(sorted(filters))},{after},{fetch}]"
    return compose(name, text, custom_plan=bool(filters & VALUE_DEPENDENT))


def search_pattern(text: str) -> str:
    """An ILIKE pattern matching `text` anywhere, its own % and _ (and the escape \\) taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True)
class Shape:
    """What a listing needs that depends on the query string alone (cached per distinct TaskQuery)."""

    sort_key: SortKey
    first_page: Query
    next_page: Query
    params: dict[str, Any]  # filter values; user_id and the cursor's key are added per request
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
    params: dict[str, Any] = {}
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
        params["pattern"] = search_pattern(q)
    if due_before is not None:
        filters.add("filter_due_before")
        params["due_before"] = due_before
    if due_after is not None:
        filters.add("filter_due_after")
        params["due_after"] = due_after
    if overdue is not None:
        filters.add("filter_overdue" if overdue else "filter_not_overdue")
    chosen = frozenset(filters)
    fetch: int | None = None
    if chosen & VALUE_DEPENDENT:
        params["limit"] = limit + 1
    else:
        fetch = fetch_size(limit)
    # The page size is not part of the scope: a client may change it from page to page.
    scope = orjson.dumps([sort, statuses, (category or "").lower(), q, due_before, due_after, overdue])
    return Shape(
        sort_key=SORT_KEYS[sort.lstrip("-")],
        first_page=list_query(sort, chosen, False, fetch),
        next_page=list_query(sort, chosen, True, fetch),
        params=params,
        scope=hashlib.blake2b(scope, digest_size=16).digest(),
    )


@dataclass(frozen=True)
class Plan:
    query: Query
    params: dict[str, Any]
    scope: bytes  # what a cursor of this listing is bound to: user, sort and filters
    sort_key: SortKey


def plan(secret: str, user_id: UUID, query: TaskQuery) -> Plan:
    """The statement and parameters answering `query` for `user_id`; InvalidCursor for a bad cursor."""
    found = shape(query)
    params = {**found.params, "user_id": user_id}
    scope = user_id.bytes + found.scope
    if query.cursor is None:
        return Plan(found.first_page, params, scope, found.sort_key)
    values = pagination.decode(secret, scope, query.cursor)
    try:
        key_json, id_json = values
        params["after_key"] = found.sort_key.from_json(key_json)
        params["after_id"] = UUID(id_json)
    except (ValueError, TypeError, OverflowError):
        # Signed by us yet unreadable: only possible across an incompatible change of format.
        raise InvalidCursor("The cursor is no longer valid; start from the first page") from None
    return Plan(found.next_page, params, scope, found.sort_key)


def next_cursor(secret: str, plan: Plan, last: asyncpg.Record) -> str:
    return pagination.encode(secret, plan.scope, [plan.sort_key.to_json(last), str(last["id"])])
