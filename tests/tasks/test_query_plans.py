"""Every combination of GET /tasks filters and sort is answered through an index, never a sequential scan
of tasks, and read in the sort's index order (status, category and q through a window of it first):
EXPLAIN of the service's exact statements over a realistically analysed table.

This runs on 30,000 tasks to stay quick; `python -m tests.perf.explain_tasks` runs the same survey on
1,000,000 with timings (see its output in the branch's report).
"""

from __future__ import annotations

import asyncpg
import pytest

from tests.perf.explain_tasks import SORTS, _walk, survey
from tests.support import insert_account

SEED = """
WITH cats AS (
    INSERT INTO categories (user_id, name)
    SELECT $1, 'Category ' || lpad(i::text, 2, '0') FROM generate_series(0, 19) AS i
    RETURNING id, name
), ids AS (SELECT array_agg(id ORDER BY name) AS c FROM cats)
INSERT INTO tasks (user_id, title, description, status, priority, due_date, category_id, created_at)
SELECT $1,
       'task ' || i,
       CASE WHEN i % 3 = 0 THEN NULL
            ELSE 'words ' || md5(i::text) || CASE WHEN i % 150 = 0 THEN ' zanzibar' ELSE '' END END,
       (ARRAY['todo', 'todo', 'in_progress', 'done', 'done'])[1 + i % 5],
       1 + (i / 7) % 5,
       CASE WHEN i % 10 < 3 THEN NULL ELSE current_date + (i % 730 - 365) END,
       CASE WHEN i % 5 = 0 THEN NULL ELSE ids.c[1 + (i * 7) % 20] END,
       now() - make_interval(mins => i)
FROM generate_series(1, $2) AS i, ids
"""


@pytest.fixture
async def planned_user(client, ctx, settings) -> tuple[asyncpg.Connection, object]:
    conn = await asyncpg.connect(settings.database_url)
    users = []
    for n, count in ((0, 20_000), *((i, 2_500) for i in range(1, 5))):
        user_id = await insert_account(conn, f"planner{n}@example.com")
        await conn.execute(SEED, user_id, count)
        users.append(user_id)
    # As autovacuum keeps them: statistics, and the visibility map index-only scans rely on.
    await conn.execute("VACUUM ANALYZE tasks")
    await conn.execute("ANALYZE categories; ANALYZE accounts")
    yield conn, users[0]
    await conn.close()


async def test_every_filter_and_sort_combination_uses_an_index(planned_user):
    conn, user_id = planned_user

    plans = await survey(conn, user_id)

    # Every combination x sort x page has a plan of its first statement (a list or a window).
    firsts = {(p.sort, p.filters, p.page) for p in plans if p.mode == "custom" and p.step != "rest"}
    assert len(firsts) == 6 * 96 * 2
    seq = [f"{p.sort} [{p.filters}] {p.page} {p.step} {p.mode}" for p in plans if p.seq_scan]
    assert seq == [], f"sequential scans of tasks: {seq[:10]}"
    assert all(p.indexes for p in plans)
    # A window is read in the sort's index order, never gathered and sorted (service/tasks/pages.py).
    unordered = [
        f"{p.sort} [{p.filters}] {p.page} {p.mode}: {p.sorts_tasks} rows"
        for p in plans
        if p.sorts_tasks is not None and p.step == "window"
    ]
    assert unordered == [], f"windows not read in index order: {unordered[:5]}"
    expected = {"created_at": "tasks_list_created", "due_date": "tasks_list_due", "priority": "tasks_list_priority"}
    collected = []
    for p in plans:
        own = expected[p.sort.lstrip("-")]
        if p.filters == "(none)":
            # Unfiltered, each sort reads its own index, in order (no sort of the user's tasks).
            assert p.indexes == [own], p
        elif p.step == "window":
            # A window reads the sort's index in order (then the page's rows by id).
            assert p.indexes[0] == own and set(p.indexes) <= {own, "tasks_pkey"}, p
        elif p.step == "rest" and "q" in p.filters.split():
            # The matches of a rare search are found through its words (or a smaller category's tasks).
            assert {"tasks_user_title_words", "tasks_category_tasks"} & set(p.indexes), p
        elif p.step == "rest" and "category" in p.filters.split():
            # A category's tasks are collected from its index (or a narrow due date range's in the sort's).
            assert {"tasks_category_tasks", own} & set(p.indexes), p
            collected.append(p)
        elif p.step == "list" and "category" in p.filters.split() and "q" not in p.filters.split():
            # Sorted by due date, a category's list is read in the order of the category's own index.
            assert p.sort.lstrip("-") == "due_date" and "tasks_category_tasks" in p.indexes, p
            assert p.sorts_tasks is None, p
            collected.append(p)
    # ... from that index alone: only the page's rows are read from the table (migration 0011).
    scans = {(n["Node Type"], n["Index Name"]) for p in collected for n in _walk(p.raw["Plan"]) if "Index Name" in n}
    assert ("Index Only Scan", "tasks_category_tasks") in scans
    assert ("Index Scan", "tasks_category_tasks") not in scans and (
        "Bitmap Index Scan",
        "tasks_category_tasks",
    ) not in scans
    assert {p.sort for p in plans} == set(SORTS)
    assert {p.step for p in plans} == {"list", "window", "rest"}
