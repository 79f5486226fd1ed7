"""The statements of GET /tasks, and the sort keys their cursor is made of.

Statements are assembled from the fixed fragments of `sql/queries/tasks.sql` (one per filter, sort and
direction), never from request text, and compiled once per combination. Each is a form of
`user_id = $1 AND <filters> AND (key, id) > ($k, $id) ORDER BY key, id LIMIT n`, read in order from
the sort's (user_id, key, id) index: the whole list (list_query), a bounded window of the index
(window_query) or a search's matches collected from its own index (matches_query). Which of them
answers a page is the listing's choice (listing.py), and for a search the search's (search.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any

import asyncpg

from service.db import Queries, Query, compose

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

    def param(self, row: asyncpg.Record) -> Any:
        """A row's key as a query parameter (to read on after that row)."""
        return self.from_json(self.to_json(row))


SORT_KEYS = {
    "created_at": SortKey("sort_created_at", _created_to_json, _created_from_json),
    "due_date": SortKey("sort_due_date", _due_to_json, _due_from_json),
    "priority": SortKey("sort_priority", _priority_to_json, _priority_from_json),
}


# How many rows a page fetches: limit + 1 (the extra row tells whether there is a next page).
#
# Plans. asyncpg runs every statement as a prepared statement, and after five executions PostgreSQL
# may settle on one generic plan, made without the parameter values:
# - A list with no filter, or read through a window (listing.py), is answered the same way whatever the
#   values (the sort's index gives rows in order), so a generic plan is welcome: it saves planning,
#   ~100 us of database CPU per request. `LIMIT $n` would prevent it (a generic plan assumes it fetches
#   10% of the rows), so these statements say `LIMIT <literal>`, rounded up to one of FETCH_SIZES (a
#   fixed tuple, never text from the request).
# - With due_before or due_after alone, and for the matches that a window could not find, the best plan
#   depends on the values (due date range vs sort index for a narrow vs wide range; a small vs large
#   category), and a generic plan chosen for one value can take a second for another (measured on 1M
#   tasks). These statements are planned on every execution with their values (Query.custom_plan).
FETCH_SIZES = (6, 11, 21, 26, 51, 101)
# Rows per row of the page of a window of a list filtered by status or category (read from the sort's
# index alone, which includes status, category and due date): 4,200 for a page of 20. Measured at 1M
# tasks, such a window costs ~0.6 us a row (the index ~0.3, numbering the rows the rest), where the
# collection that follows a window too short costs ~0.26 us per task of a category (its covering index,
# migration 0011) or reads on through the sort's index (a status, list-tasks planned with the values):
# a larger window (it was 52,500 rows, ~40 ms) only delays the collection.
FILTER_WINDOW_PER_ROW = 200
# Rows per row of the page of the largest window of a search (q needs the table, whose rows cost more
# than the window's own: search.py).
WINDOW_PER_ROW = 2500
VALUE_DEPENDENT = frozenset({"filter_due_before", "filter_due_after"})
# For a due date sort, the due date filters are where the window starts and ends in the index.
DUE_BOUNDS = {"filter_due_before": "filter_due_before", "filter_due_after": "filter_due_after",
              "filter_overdue": "bound_overdue"}  # fmt: skip


def fetch_size(limit: int) -> int:
    return next(size for size in FETCH_SIZES if size > limit)


def _check_fetch(fetch: int | None) -> None:
    if fetch is not None and fetch not in FETCH_SIZES:
        raise ValueError(f"fetch size {fetch} is not one of {FETCH_SIZES}")


def _assemble(template: str, sort: str, filters: frozenset[str], after: bool, **parts: str) -> str:
    """A template with the sort's fragments and the filters' (by name, from the SQL file only; the fragments
    a text names itself, such as task-item, are already in place: service/db.py)."""
    descending = sort.startswith("-")
    direction = " DESC" if descending else ""
    matches = template == "list_tasks_matches"

    def order(alias: str) -> str:
        return f"{alias}.key{direction}, {alias}.id{direction}"

    fields = {
        "source": parts.pop("source", ""),
        "filters": " ".join(Q.text(name) for name in sorted(filters)),
        "after": Q.text(("after_desc" if descending else "after_asc") + ("_matches" if matches else ""))
        if after
        else "",
        "order": f"{{key}}{direction}, t.id{direction}",
        "window_order": order("s"),
        "page_order": order("w" if template == "list_tasks_window" else "m"),
        **parts,
    }
    text = Q.text(template)
    for name, value in fields.items():
        text = text.replace(f"{{{name}}}", value)
    return text.replace("{key}", Q.text(SORT_KEYS[sort.lstrip("-")].fragment))


def _name(kind: str, sort: str, filters: frozenset[str], after: bool, fetch: int | None) -> str:
    return f"{kind}[{sort},{','.join(sorted(filters))},{after},{fetch}]"


@cache
def list_query(sort: str, filters: frozenset[str], after: bool, fetch: int | None) -> Query:
    """The plain statement for a sort (`-` prefix: descending), a set of filter-* fragment names, whether
    a cursor is given, and a literal fetch size (one of FETCH_SIZES) or None for a `:limit` parameter
    (then planned with its values): a bounded set of statements."""
    _check_fetch(fetch)
    text = _assemble("list_tasks", sort, filters, after, limit=":limit" if fetch is None else str(fetch))
    return compose(_name("list_tasks", sort, filters, after, fetch), text, custom_plan=fetch is None)


@cache
def keys_query(sort: str, filters: frozenset[str], after: bool, fetch: int) -> Query:
    """list-tasks-by-keys: the page's ids and keys read in order from an index alone, then its rows."""
    _check_fetch(fetch)
    text = _assemble("list_tasks_by_keys", sort, filters, after, limit=str(fetch))
    return compose(
        _name("list_tasks_by_keys", sort, filters, after, fetch), text, custom_plan=bool(filters & VALUE_DEPENDENT)
    )


@cache
def window_query(sort: str, filters: frozenset[str], after: bool, fetch: int, window: int) -> Query:
    """list-tasks-window for these filters: `fetch` matches at most, out of `window` rows."""
    _check_fetch(fetch)
    bounds = {name: DUE_BOUNDS[name] for name in filters & DUE_BOUNDS.keys()} if sort.lstrip("-") == "due_date" else {}
    tested = filters - {name for name in bounds if name != "filter_overdue"}
    if "filter_q" not in filters:
        source = "window_in_index"
    elif tested - {"filter_q"}:
        source = "window_in_index_then_table"
    else:
        source = "window_in_table"
    text = _assemble(
        "list_tasks_window",
        sort,
        tested - {"filter_q"},
        after,
        source=Q.text(source).replace("{words}", Q.text("filter_q")),
        bounds=" ".join(Q.text(fragment) for _, fragment in sorted(bounds.items())),
        # Where every row of the window passes the filters other than q, `passed` is the row's number
        # (counting them costs ~0.2 us a row).
        passed="count(*) FILTER (WHERE s.passed)" if source == "window_in_index_then_table" else "row_number()",
        window=str(window),
        fetch=str(fetch + 1),  # room for the window's last row
    )
    return compose(_name("list_tasks_window", sort, filters, after, fetch) + f"[{window}]", text)


@cache
def matches_query(sort: str, filters: frozenset[str], after: bool) -> Query:
    """list-tasks-matches: every match of a search collected through the search index, then sorted."""
    text = _assemble("list_tasks_matches", sort, filters, after, limit=":limit")
    return compose(_name("list_tasks_matches", sort, filters, after, None), text, custom_plan=True)
