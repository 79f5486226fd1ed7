"""GET /tasks: the list statements for a combination of filters and sort, and its keyset cursor.

Statements are assembled from the fixed fragments of `sql/queries/tasks.sql` (one per filter, sort and
direction), never from request text, and compiled once per combination. Each is a form of
`user_id = $1 AND <filters> AND (key, id) > ($k, $id) ORDER BY key, id LIMIT n`, read in order from
the sort's (user_id, key, id) index; filters that may keep few tasks are read through a bounded window
of it first (see "Windows" below, and migration 0010 for the indexes).

Order is total: (sort key, id). A task without due date has the key 'infinity' (last when ascending,
first when descending). The cursor carries the last row's (key, id), so a page starts strictly after
it: rows added or deleted meanwhile never make the next page skip or repeat one.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache, lru_cache
from typing import Any, cast
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
# - A list with no filter, or read through a window (below), is answered the same way whatever the
#   values (the sort's index gives rows in order), so a generic plan is welcome: it saves planning,
#   ~100 us of database CPU per request. `LIMIT $n` would prevent it (a generic plan assumes it fetches
#   10% of the rows), so these statements say `LIMIT <literal>`, rounded up to one of FETCH_SIZES (a
#   fixed tuple, never text from the request).
# - With due_before or due_after alone, and for the matches that a window could not find, the best plan
#   depends on the values (due date range vs sort index for a narrow vs wide range; a small vs large
#   category), and a generic plan chosen for one value can take a second for another (measured on 1M
#   tasks). These statements are planned on every execution with their values (Query.custom_plan).
#
# Windows. Status, category and q filters may keep 50% of a user's tasks or 0.01%: reading the sort's
# index in order finds a page fast for the former, collecting the matches from the filter's own index
# (tasks_category, tasks_user_words: migration 0010) then sorting them is fast for the latter, neither
# in between, and PostgreSQL's planner cannot tell where a filter stands (it took a word in 0.1% of 1M
# tasks for 1% and read the due date index for it: 250 ms). So such a list first reads a window of the
# sort's index, a bounded number of rows in order (list-tasks-window), and collects the matches only
# when the window holds too few for the page; the filter is then rare, and collecting them cheap.
# - Status, category and due date are in the sort indexes, so the window is read from the index alone:
#   WINDOW_PER_ROW rows per row of the page (52,500 for a page of 20; ~0.1 us each).
# - q needs the table (~4-6 us a row at 1M tasks, as the sort's order is not the table's; only rows that
#   pass the other filters are read from it). So a search starts from what ANALYZE knows of its words
#   (search-words: the share of tasks with a word beginning with each, among the search index's most
#   common words): with a rare word (under COLLECT_SHARE, or not among them), it collects the matches
#   from the start, through that word alone (filter-q-indexed); else it reads a first window, sized from
#   the share of tasks with every word when q is the only filter, of PROBE_PER_ROW rows per row of the
#   page otherwise (or without statistics). If that holds too few matches, it reads on from there in
#   windows sized from the rate of matches found and the statistics (next_window), up to SEARCH_WINDOWS,
#   unless that rate says the matches are rare, and then collecting them costs less.
# Measured at 1M tasks: tests/perf/bench_lists (figures in README.md).
FETCH_SIZES = (6, 11, 21, 26, 51, 101)
# Rows per row of the page: of a window read from the index alone; at most of the table in a search's
# windows; of a search's first window.
WINDOW_PER_ROW = 2500
WINDOW_PER_ROW_READING_TABLE = 250
PROBE_PER_ROW = 25
# How many windows a search reads at most before it collects the matches (each is sized from the rate of
# matches in those before it, so a second seldom falls short; a third finishes the page when it does).
SEARCH_WINDOWS = 3
# How many rows of the table the statistics' share of tasks with every word of q weighs as, against the
# rate of matches that windows found (which is that user's own, but from few rows: a first window with
# none of a word in 1% of tasks would otherwise send it to collect 10,000 matches).
PRIOR_ROWS = 2000
# A search whose rarest word is in fewer tasks than this collects its matches from the start (Statements.
# start): measured at 1M tasks, a window costs ~4-6 us a row (the table, read in the sort's order) and
# collecting ~10-15 us a match (the search index, then the table for the sort key), even at ~0.3%.
COLLECT_SHARE = 0.003
VALUE_DEPENDENT = frozenset({"filter_due_before", "filter_due_after"})
WINDOWED = frozenset({"filter_status", "filter_statuses", "filter_category", "filter_q"})
# For a due date sort, the due date filters are where the window starts and ends in the index.
DUE_BOUNDS = {"filter_due_before": "filter_due_before", "filter_due_after": "filter_due_after",
              "filter_overdue": "bound_overdue"}  # fmt: skip


def fetch_size(limit: int) -> int:
    return next(size for size in FETCH_SIZES if size > limit)


def _check_fetch(fetch: int | None) -> None:
    if fetch is not None and fetch not in FETCH_SIZES:
        raise ValueError(f"fetch size {fetch} is not one of {FETCH_SIZES}")


def _assemble(template: str, sort: str, filters: frozenset[str], after: bool, **parts: str) -> str:
    """A template with the sort's fragments and the filters' (by name, from the SQL file only)."""
    descending = sort.startswith("-")
    direction = " DESC" if descending else ""
    matches = template == "list_tasks_matches"

    def order(alias: str) -> str:
        return f"{alias}.key{direction}, {alias}.id{direction}"

    fields = {
        "source": parts.pop("source", ""),
        "item": Q.text("task_item"),
        "filters": " ".join(Q.text(name) for name in sorted(filters)),
        "words_anywhere": Q.text("words_anywhere"),
        "words_match": Q.text("words_match"),
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
        window=str(window),
        fetch=str(fetch + 1),  # room for the window's last row
    )
    return compose(_name("list_tasks_window", sort, filters, after, fetch) + f"[{window}]", text)


def next_window(limit: int, read: int, hits: int, passed: int, words: Words | None = None) -> int | None:
    """The size of the window a search reads on with, after windows of `read` rows in all, in which
    `passed` rows passed the filters other than q and `hits` matched q too; None when the matches are
    better collected. From the rate of matches found (one more than found, so a window with none still
    tells something of how rare they are; with statistics of the words, their share weighs as much as
    PRIOR_ROWS rows more), the window is made to hold 1.5 times the matches still needed, of a fixed set
    of sizes, and must read at most WINDOW_PER_ROW rows and WINDOW_PER_ROW_READING_TABLE of the table per
    row of the page (beyond, collecting the matches costs less; unless the statistics say that every
    word is common: then collecting costs more, and the largest window that fits is read if two such
    would hold the matches needed, within 4 times the bound of the table's rows)."""
    fetch = fetch_size(limit)
    if words is not None and words.known:
        rate = (hits + words.share * PRIOR_ROWS) / (passed + PRIOR_ROWS)
    else:
        rate = (hits + 1) / max(passed, 1)
    table_rows = 1.5 * (limit + 1 - hits) / rate  # rows read from the table
    rows = table_rows * read / max(passed, 1)
    bound = WINDOW_PER_ROW_READING_TABLE * fetch
    within = [size for size in window_sizes(fetch) if size * passed <= bound * read]
    fits = [size for size in within if size >= rows]
    if fits:
        return fits[0]
    common = words is not None and words.known and cast(float, words.shares[words.rarest]) >= COLLECT_SHARE
    # Reading on costs ~0.3-1 us a row of the index and ~5-40 us one of the table (more when read by id,
    # after other filters): with other filters keeping few rows, more than collecting even common words.
    return within[-1] if common and within and rows <= min(2 * within[-1], 4 * bound) else None


def window_sizes(fetch: int) -> list[int]:
    """The sizes a search's windows after the first may have (a fixed set: each is a statement of its own)."""
    size = PROBE_PER_ROW * fetch
    sizes = {size, WINDOW_PER_ROW_READING_TABLE * fetch, WINDOW_PER_ROW * fetch}
    while size < WINDOW_PER_ROW * fetch:
        size *= 2
        sizes.add(min(size, WINDOW_PER_ROW * fetch))
    return sorted(sizes)


@cache
def matches_query(sort: str, filters: frozenset[str], after: bool) -> Query:
    """list-tasks-matches: every match of a search collected through the search index, then sorted."""
    text = _assemble("list_tasks_matches", sort, filters, after, limit=":limit")
    return compose(_name("list_tasks_matches", sort, filters, after, None), text, custom_plan=True)


# What a window's filters become when the matches are collected: planned with the values (the category
# by its id, whose share of the table the planner knows), in a form the filter's index answers.
FINISHING = {"filter_category": "filter_category_id", "filter_q": "filter_q_indexed"}


@dataclass(frozen=True)
class Statements:
    """What answers one page: `first`; when `first` reads a window, what finishes the page if the window
    holds too few matches: for a search, a larger window read on from the last row of the first (`then`,
    of the size next_window says), and `rest`, planned with the values."""

    first: Query
    rest: Query | None = None
    sort: str = ""
    filters: frozenset[str] = frozenset()
    fetch: int = 0
    probe: int = 0  # rows of a search's first window (0: no second window)
    after: bool = False

    def then(self, size: int) -> Query:
        return window_query(self.sort, self.filters, True, self.fetch, size)

    def start(self, words: Words | None) -> tuple[Query, int] | None:
        """The first window to read and its size, or None when the matches of a search are better
        collected from the start: its rarest word is in under COLLECT_SHARE of tasks, by the statistics
        of the search index. A search by q alone with statistics sizes its first window from them, to
        hold 1.5 times the page by the share of tasks with every word (up to WINDOW_PER_ROW_READING_TABLE
        rows per row of the page: it reads on if need be, as after a first window); with other filters,
        whose share is unknown, it reads PROBE_PER_ROW rows per row of the page first."""
        if not self.probe or words is None or not words.known:
            return self.first, self.probe or WINDOW_PER_ROW * self.fetch
        if cast(float, words.shares[words.rarest]) < COLLECT_SHARE:
            return None
        if self.filters != {"filter_q"}:
            return self.first, self.probe
        wanted = 1.5 * self.fetch / max(words.share, 1e-9)
        sizes = [size for size in window_sizes(self.fetch) if size <= WINDOW_PER_ROW_READING_TABLE * self.fetch]
        size = next((size for size in sizes if size >= wanted), sizes[-1])
        return window_query(self.sort, self.filters, self.after, self.fetch, size), size


def _statements(sort: str, filters: frozenset[str], after: bool, limit: int) -> Statements:
    fetch = fetch_size(limit)
    if not filters & WINDOWED:
        return Statements(list_query(sort, filters, after, None if filters & VALUE_DEPENDENT else fetch))
    finishing = frozenset(FINISHING.get(name, name) for name in filters)
    if "filter_q" not in filters:
        window = window_query(sort, filters, after, fetch, WINDOW_PER_ROW * fetch)
        return Statements(window, rest=list_query(sort, finishing, after, None))
    probe = PROBE_PER_ROW * fetch
    return Statements(
        window_query(sort, filters, after, fetch, probe),
        rest=matches_query(sort, finishing, after),
        sort=sort,
        filters=filters,
        fetch=fetch,
        probe=probe,
        after=after,
    )


@dataclass(frozen=True)
class Words:
    """The words of a `q` as the search index holds them (sql/queries/tasks.sql, search-words)."""

    query: str | None  # a tsquery; None when q has no word at all (nothing can match)
    patterns: list[str]
    word_queries: list[str] = field(default_factory=list)  # each word's own tsquery
    shares: list[float | None] = field(default_factory=list)  # each word's share of tasks (None: unknown)

    @property
    def known(self) -> bool:
        """Whether there are statistics of the words (then share and rarest are estimates)."""
        return bool(self.shares) and all(share is not None for share in self.shares)

    @property
    def share(self) -> float:
        """The share of tasks with every word, taken as independent (when known)."""
        return math.prod(cast(list[float], self.shares))

    @property
    def rarest(self) -> int:
        return min(range(len(self.shares)), key=lambda i: cast(float, self.shares[i])) if self.known else -1

    def params(self) -> dict[str, Any]:
        """The parameters of filter-q and filter-q-indexed: only the rarest word is looked up in the index
        when it is rare (under COLLECT_SHARE), the others are tested on the rows it gives; else (or without
        statistics) all are looked up in the index, whose entries of common words cost less to intersect
        than their rows to test."""
        rarest = self.rarest
        if rarest < 0 or len(self.word_queries) < 2 or cast(float, self.shares[rarest]) >= COLLECT_SHARE:
            indexed, others = self.query, None
        else:
            indexed = self.word_queries[rarest]
            others = " & ".join(q for i, q in enumerate(self.word_queries) if i != rarest)
        return {"words": self.query, "patterns": self.patterns, "indexed_words": indexed, "other_words": others}


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
