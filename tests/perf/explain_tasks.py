"""Which index answers each combination of GET /tasks filters and sort: EXPLAIN over generated data.

    python -m tests.perf.explain_tasks [--tasks 1000000] [--analyze]

Creates its own database (`tasklane_explain`, dropped at the end unless --keep-database), seeds one
user with --tasks tasks plus ten other users with 2% of that each (COPY), ANALYZEs, then EXPLAINs the
exact statements the service runs (service/tasks/listing.py, statements.py) for every filter combination x sort x
first/next page, both as the custom plan PostgreSQL makes for the first executions of a prepared
statement and as the generic plan it may settle on. Prints per sort and filter the indexes used on
tasks, the sequential scans of tasks (expected: none) and, with --analyze, execution times.
`tests/tasks/test_query_plans.py` runs `survey()` on a small database as a test.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import orjson

from service.db import Queries
from service.tasks import listing, search
from service.tasks.schemas import TaskQuery
from service.tasks.statements import WINDOW_PER_ROW
from tests.perf.common import database_url
from tests.perf.seed import CATEGORIES, RARE_WORD, create_database, create_user, seed_tasks
from tests.support import drop_database

Q = Queries("tasks")
SECRET = "explain-secret-key-that-is-long-enough-0123456789"
SORTS = ("-created_at", "created_at", "due_date", "-due_date", "priority", "-priority")


def filter_choices(today: date) -> dict[str, list[Any]]:
    return {
        "status": [(), ("todo",), ("todo", "in_progress")],
        "category": [None, CATEGORIES[7]],  # about 2% of a user's tasks
        "q": [None, RARE_WORD],  # in about 1% of them
        "due_before": [None, today + timedelta(days=30)],
        "due_after": [None, today - timedelta(days=30)],
        "overdue": [None, True],
    }


def combinations(today: date) -> list[dict[str, Any]]:
    """Every combination of the filter choices (96), each as TaskQuery fields."""
    choices = filter_choices(today)
    out = []
    for values in itertools.product(*choices.values()):
        out.append({name: value for name, value in zip(choices, values, strict=True) if value not in (None, ())})
    return out


def label(filters: dict[str, Any]) -> str:
    if not filters:
        return "(none)"
    parts = []
    for name, value in filters.items():
        if name == "status":
            parts.append(f"status={'+'.join(value)}")
        elif name == "overdue":
            parts.append(f"overdue={str(value).lower()}")
        else:
            parts.append(name)
    return " ".join(parts)


@dataclass
class Plan:
    sort: str
    filters: str
    page: str  # "first" or "next"
    step: str  # "list" (the one statement), "window" (read in order first) or "rest" (then, if needed)
    mode: str  # "custom" or "generic"
    indexes: list[str]
    seq_scan: bool
    sorts_tasks: int | None  # rows of tasks sorted (the planner's estimate), None when read in index order
    ms: float | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


def literal(value: Any) -> str:
    """A value as an SQL literal, for EXECUTE (which takes no bind parameters). Our own values only."""
    if value is None:
        return "NULL"
    if isinstance(value, (list, tuple)):
        value = "{" + ",".join(f'"{v}"' for v in value) + "}"
    elif isinstance(value, (date, datetime)):
        value = value.isoformat()
    return "'" + str(value).replace("'", "''") + "'"


def _walk(node: dict[str, Any]):
    yield node
    for child in node.get("Plans", []):
        yield from _walk(child)


def _reads_tasks(node: dict[str, Any]) -> bool:
    return any(n.get("Relation Name") == "tasks" or n.get("Node Type") == "CTE Scan" for n in _walk(node))


def analyse(plan_json: Any) -> tuple[list[str], bool, int | None, float | None]:
    top = plan_json[0]
    indexes: list[str] = []
    seq_scan = False
    sorts = None
    for node in _walk(top["Plan"]):
        if node.get("Node Type") == "Seq Scan" and node.get("Relation Name") == "tasks":
            seq_scan = True
        if node.get("Node Type") == "Sort" and _reads_tasks(node):
            sorts = max(sorts or 0, node["Plans"][0]["Plan Rows"])
        name = node.get("Index Name")
        if name and name.startswith("tasks_") and name not in indexes:
            indexes.append(name)
    return indexes, seq_scan, sorts, top.get("Execution Time")


async def _mid_row(conn: asyncpg.Connection, user_id: uuid.UUID) -> asyncpg.Record:
    count = await conn.fetchval("SELECT count(*) FROM tasks WHERE user_id = $1", user_id)
    return await conn.fetchrow(
        "SELECT id::text AS id, created_at, due_date, priority FROM tasks "
        "WHERE user_id = $1 ORDER BY id OFFSET $2 LIMIT 1",
        user_id,
        count // 2,
    )


async def _values(conn: asyncpg.Connection, user_id: uuid.UUID, filters: dict[str, Any]) -> dict[str, Any]:
    """What the service looks up before it runs a list's statements: the words of q, the category's id."""
    values: dict[str, Any] = {}
    if "q" in filters:
        row = await conn.fetchrow(Q.search_words.sql, filters["q"])
        words = search.Words(row["query"], row["patterns"], row["word_queries"], row["shares"])
        values.update(words.params())
    if "category" in filters:
        values["category_id"] = await conn.fetchval(Q.category_id.sql, user_id, filters["category"])
    return values


async def survey(conn: asyncpg.Connection, user_id: uuid.UUID, *, analyze: bool = False) -> list[Plan]:
    """EXPLAIN every filter combination x sort x first/next page x statement, custom and generic plans."""
    today = datetime.now(UTC).date()
    middle = await _mid_row(conn, user_id)
    plans: list[Plan] = []
    options = "ANALYZE, FORMAT JSON" if analyze else "FORMAT JSON"
    for sort in SORTS:
        for filters in combinations(today):
            query = TaskQuery.model_construct(**{"sort": sort, "limit": 20, "status": (), **filters})
            first = listing.plan(SECRET, user_id, query)
            cursor = listing.next_cursor(SECRET, first, middle)
            following = listing.plan(SECRET, user_id, query.model_copy(update={"cursor": cursor}))
            values = await _values(conn, user_id, filters)
            for page, chosen in (("first", first), ("next", following)):
                statements = chosen.statements
                steps = [("list" if statements.rest is None else "window", statements.first, {})]
                if statements.probe:  # read on from a first window's last row (here: the middle)
                    after = {"after_key": chosen.sort_key.param(middle), "after_id": uuid.UUID(middle["id"])}
                    steps.append(("window", statements.then(WINDOW_PER_ROW * statements.fetch), after))
                if statements.rest is not None:
                    steps.append(("rest", statements.rest, {}))
                for step, statement, extra in steps:
                    args = statement.args({**chosen.params, **values, **extra})
                    async with conn.transaction():
                        if step == "window":  # as the service reads a window (service/tasks/pages.py)
                            await conn.execute(Q.read_in_index_order.sql)
                        custom = orjson.loads(await conn.fetchval(f"EXPLAIN ({options}) {statement.sql}", *args))
                        plans.append(Plan(sort, label(filters), page, step, "custom", *analyse(custom), raw=custom[0]))
                        if statement.custom_plan:
                            continue  # planned with its values on every execution: no generic plan to fear
                        blank = Plan(sort, label(filters), page, step, "generic", [], False, None)
                        plans.append(await _generic(conn, statement.sql, args, options, blank))
    return plans


async def _generic(conn: asyncpg.Connection, sql: str, args: list[Any], options: str, plan: Plan) -> Plan:
    """The generic plan, as a prepared statement may end up using it."""
    values = ", ".join(literal(arg) for arg in args)
    await conn.execute(f"PREPARE survey AS {sql}")
    try:
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        generic = orjson.loads(await conn.fetchval(f"EXPLAIN ({options}) EXECUTE survey({values})"))
    finally:
        await conn.execute("RESET plan_cache_mode")
        await conn.execute("DEALLOCATE survey")
    plan.indexes, plan.seq_scan, plan.sorts_tasks, plan.ms = analyse(generic)
    plan.raw = generic[0]
    return plan


def summarise(plans: list[Plan]) -> str:
    lines = []
    seq = [p for p in plans if p.seq_scan]
    custom = sum(p.mode == "custom" for p in plans)
    lines.append(
        f"{len(plans)} plans: {custom} custom (every filter/sort combination x first/next page x statement) and "
        f"{len(plans) - custom} generic (the statements allowed to use one)"
    )
    lines.append(f"sequential scans of tasks: {len(seq)}")
    for p in seq[:20]:
        lines.append(f"  SEQ SCAN: sort={p.sort} filters={p.filters} page={p.page} {p.step} {p.mode}")
    unordered = [p for p in plans if p.sorts_tasks is not None and p.step != "rest"]
    lines.append(f"lists and windows not read in index order (a Sort of tasks rows): {len(unordered)}")
    for p in unordered[:20]:
        lines.append(
            f"  SORT of ~{p.sorts_tasks} rows: sort={p.sort} filters={p.filters} page={p.page} {p.step} {p.mode}"
        )

    lines.append("\nIndexes on tasks, by sort (all filter combinations, both pages, both plan kinds):")
    by_sort: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for p in plans:
        by_sort[p.sort][" + ".join(p.indexes) or "(none)"] += 1
    for sort in SORTS:
        uses = ", ".join(f"{name} x{n}" for name, n in sorted(by_sort[sort].items(), key=lambda kv: -kv[1]))
        lines.append(f"  {sort:<12} {uses}")

    lines.append("\nBy filter, first page, custom plan; index per sort, in the order " + " ".join(SORTS) + ":")
    singles = [
        p
        for p in plans
        if p.page == "first" and p.mode == "custom" and p.step != "rest" and " " not in p.filters.strip()
    ]
    by_filter: dict[str, dict[str, Plan]] = defaultdict(dict)
    for p in singles:
        by_filter[p.filters][p.sort] = p
    for name, per_sort in by_filter.items():
        cells = []
        for sort in SORTS:
            p = per_sort.get(sort)
            if p is None:
                continue
            cell = "+".join(i.removeprefix("tasks_") for i in p.indexes) or "-"
            if p.ms is not None:
                cell += f" {p.ms:.1f}ms"
            cells.append(cell)
        lines.append(f"  {name:<28} {' | '.join(cells)}")

    timed = [p.ms for p in plans if p.ms is not None]
    if timed:
        timed.sort()
        lines.append(
            f"\nexecution time over all plans: median {statistics.median(timed):.2f} ms, "
            f"p95 {timed[int(len(timed) * 0.95)]:.2f} ms, max {timed[-1]:.2f} ms"
        )
        slow = sorted((p for p in plans if p.ms is not None), key=lambda p: -(p.ms or 0))[:8]
        for p in slow:
            lines.append(
                f"  {p.ms:8.2f} ms  sort={p.sort} filters={p.filters} page={p.page} {p.step} {p.mode}: "
                + " + ".join(p.indexes)
            )
    return "\n".join(lines)


async def run(url: str, tasks: int, analyze: bool, keep: bool) -> list[Plan]:
    started = time.monotonic()
    await create_database(url)
    conn = await asyncpg.connect(url)
    try:
        user_id = await create_user(conn, "main@example.com")
        await seed_tasks(conn, user_id, tasks)
        for i in range(10):
            other = await create_user(conn, f"other{i}@example.com")
            await seed_tasks(conn, other, max(tasks // 50, 1), seed=i + 2)
        await conn.execute("VACUUM ANALYZE")
        print(f"seeded {tasks:,} tasks (+{10 * max(tasks // 50, 1):,} of others) in {time.monotonic() - started:.0f} s")
        plans = await survey(conn, user_id, analyze=analyze)
    finally:
        await conn.close()
        if not keep:
            await drop_database(url)
    return plans


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url", default=os.environ.get("EXPLAIN_DATABASE_URL", database_url("tasklane_explain"))
    )
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--analyze", action="store_true", help="EXPLAIN ANALYZE: run every query, report times")
    parser.add_argument("--keep-database", action="store_true")
    args = parser.parse_args(argv)
    plans = asyncio.run(run(args.database_url, args.tasks, args.analyze, args.keep_database))
    print(summarise(plans))
    return [{k: v for k, v in p.__dict__.items() if k != "raw"} for p in plans]


if __name__ == "__main__":
    main()
