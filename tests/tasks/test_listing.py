"""GET /tasks: filters, sorts, keyset pagination and its cursor, and bad query strings."""

from __future__ import annotations

import asyncio
import base64
import random
from datetime import UTC, date, datetime, timedelta

import pytest

from service.tasks import listing, search, statements
from tests.support import assert_problem, db_execute
from tests.tasks.conftest import ids

SORTS = ["created_at", "-created_at", "due_date", "-due_date", "priority", "-priority"]
INFINITY = date.max


def expected_order(tasks: list[dict], sort: str) -> list[str]:
    """The documented order: by key then id; no due date counts as after every date."""
    field = sort.lstrip("-")

    def key(task: dict):
        value = task[field]
        if field == "due_date":
            value = date.fromisoformat(value) if value else INFINITY
        elif field == "created_at":
            value = datetime.fromisoformat(value)
        return (value, task["id"])

    return ids(sorted(tasks, key=key, reverse=sort.startswith("-")))


async def seed(user, count: int, rng: random.Random) -> list[dict]:
    """Tasks with clashing priorities and due dates (a third without), for total-order tests."""
    tasks = []
    for i in range(count):
        due = None if rng.random() < 0.35 else str(date(2030, 1, 1) + timedelta(days=rng.randint(0, 4)))
        tasks.append(await user.create(title=f"task {i}", priority=rng.randint(1, 3), due_date=due))
    return tasks


async def test_the_default_is_newest_first_twenty_per_page(alice):
    tasks = [await alice.create(title=f"t{i}") for i in range(25)]

    first = (await alice.list()).json()

    assert ids(first["items"]) == expected_order(tasks, "-created_at")[:20]
    assert first["next_cursor"]
    second = (await alice.list(cursor=first["next_cursor"])).json()
    assert ids(second["items"]) == expected_order(tasks, "-created_at")[20:]
    assert second["next_cursor"] is None


async def test_an_empty_list(alice):
    response = await alice.list()
    assert response.status_code == 200
    assert response.json() == {"items": [], "next_cursor": None}


async def test_a_page_that_ends_exactly_at_the_last_task_has_no_cursor(alice):
    for i in range(3):
        await alice.create(title=f"t{i}")
    page = (await alice.list(limit=3)).json()
    assert len(page["items"]) == 3 and page["next_cursor"] is None


@pytest.mark.parametrize("sort", SORTS)
@pytest.mark.parametrize("limit", [1, 4, 7])
async def test_paging_through_any_sort_yields_every_task_once_in_order(alice, sort, limit):
    tasks = await seed(alice, 17, random.Random(f"{sort}{limit}"))

    seen = await alice.page_through(sort=sort, limit=limit)

    assert ids(seen) == expected_order(tasks, sort)


@pytest.mark.parametrize("sort", ["due_date", "-due_date"])
async def test_tasks_without_due_date_come_last_ascending_and_first_descending(alice, sort):
    dated = [await alice.create(title=f"d{i}", due_date=f"2030-0{i + 1}-01") for i in range(3)]
    undated = [await alice.create(title=f"u{i}") for i in range(3)]

    # Pages of 2 cross the boundary between dated and undated tasks in the middle of a page.
    seen = await alice.page_through(sort=sort, limit=2)

    got = ids(seen)
    if sort == "due_date":
        assert got[:3] == ids(dated) and set(got[3:]) == set(ids(undated))
    else:
        assert set(got[:3]) == set(ids(undated)) and got[3:] == ids(dated)[::-1]
    assert got == expected_order(dated + undated, sort)


async def test_status_filter_takes_one_or_several_statuses(alice):
    todo = await alice.create(title="a")
    doing = await alice.create(title="b", status="in_progress")
    done = await alice.create(title="c", status="done")

    assert ids((await alice.list(status="done")).json()["items"]) == [done["id"]]
    several = (await alice.list(status=["todo", "in_progress"])).json()["items"]
    assert set(ids(several)) == {todo["id"], doing["id"]}
    every = (await alice.list(status=["todo", "in_progress", "done"])).json()["items"]
    assert len(every) == 3


async def test_category_filter_matches_the_name_case_insensitively(alice):
    work = await alice.create(title="a", category="Work")
    await alice.create(title="b", category="Home")
    await alice.create(title="c")

    assert ids((await alice.list(category="wORK")).json()["items"]) == [work["id"]]
    assert (await alice.list(category="Garden")).json()["items"] == []


async def test_q_finds_words_beginning_with_it_in_titles_case_insensitively(alice):
    in_title = await alice.create(title="Call the PLUMBER")
    await alice.create(title="Groceries", description="milk")

    found = (await alice.list(q="plumb")).json()["items"]
    assert ids(found) == [in_title["id"]]
    # The beginning of a word, not any piece of one (search is by word since issue 16).
    assert (await alice.list(q="umber")).json()["items"] == []
    assert (await alice.list(q="zzz")).json()["items"] == []


async def test_q_does_not_search_descriptions(alice):
    # Titles only since migration 0012: the description's words cost most of a task's write (README).
    await alice.create(title="House", description="ask the plumber about the boiler")
    in_both = await alice.create(title="Plumber visit", description="ask the plumber about the boiler")

    assert ids((await alice.list(q="plumber")).json()["items"]) == [in_both["id"]]
    assert (await alice.list(q="boiler")).json()["items"] == []
    assert (await alice.list(q="plumber boiler")).json()["items"] == []


async def test_q_ignores_accents_and_needs_every_word(alice):
    resume = await alice.create(title="Résumé for ACME by Friday", description="send before Friday")
    cafe = await alice.create(title="Café crème with Acme", description="with the Acme team")
    await alice.create(title="Resumable upload")

    assert ids((await alice.list(q="resume for")).json()["items"]) == [resume["id"]]
    assert ids((await alice.list(q="RÉSUMÉ")).json()["items"]) == [resume["id"]]
    assert ids((await alice.list(q="creme cafe")).json()["items"]) == [cafe["id"]]
    # Words may be anywhere in the title, in any order.
    assert set(ids((await alice.list(q="acme")).json()["items"])) == {resume["id"], cafe["id"]}
    assert ids((await alice.list(q="friday acme")).json()["items"]) == [resume["id"]]


async def test_q_is_made_of_words_so_punctuation_alone_matches_nothing(alice):
    raise_10 = await alice.create(title="Raise 10% more")
    raise_100 = await alice.create(title="Raise 100 more")
    file_name = await alice.create(title="rename file_name")

    assert set(ids((await alice.list(q="10%")).json()["items"])) == {raise_10["id"], raise_100["id"]}
    assert ids((await alice.list(q="file_name")).json()["items"]) == [file_name["id"]]
    for nothing in ("%", "_", "\\", "-- !"):
        assert (await alice.list(q=nothing)).json() == {"items": [], "next_cursor": None}


async def test_due_before_and_due_after_are_strict_and_skip_undated_tasks(alice):
    t1 = await alice.create(title="1", due_date="2030-01-01")
    t2 = await alice.create(title="2", due_date="2030-01-02")
    t3 = await alice.create(title="3", due_date="2030-01-03")
    await alice.create(title="none")

    assert set(ids((await alice.list(due_before="2030-01-03")).json()["items"])) == {t1["id"], t2["id"]}
    assert set(ids((await alice.list(due_after="2030-01-01")).json()["items"])) == {t2["id"], t3["id"]}
    both = (await alice.list(due_after="2030-01-01", due_before="2030-01-03")).json()["items"]
    assert ids(both) == [t2["id"]]


async def test_overdue_means_due_before_today_and_not_done_and_false_means_the_others(alice):
    today = datetime.now(UTC).date()
    late = await alice.create(title="late", due_date=str(today - timedelta(days=1)))
    await alice.create(title="late but done", due_date=str(today - timedelta(days=3)), status="done")
    due_today = await alice.create(title="today", due_date=str(today))
    undated = await alice.create(title="no due date")

    assert ids((await alice.list(overdue="true")).json()["items"]) == [late["id"]]
    assert ids((await alice.list(overdue="1", sort="due_date")).json()["items"]) == [late["id"]]
    everything = ids((await alice.list()).json()["items"])
    assert len(everything) == 4 and {due_today["id"], undated["id"]} <= set(everything)
    # A boolean filter: false is its opposite (as a generated client sends it), not "no filter".
    others = ids((await alice.list(overdue="false")).json()["items"])
    assert len(others) == 3 and late["id"] not in others and {due_today["id"], undated["id"]} <= set(others)


async def test_filters_combine(alice):
    match = await alice.create(title="Pay rent", category="Home", priority=5, due_date="2030-01-05")
    await alice.create(title="Pay rent", category="Home", priority=5, due_date="2030-02-05")  # too late
    await alice.create(title="Pay rent", category="Work", priority=5, due_date="2030-01-05")  # other category
    await alice.create(title="Pay rent", category="Home", status="done", due_date="2030-01-05")  # done
    await alice.create(title="Clean", category="Home", due_date="2030-01-05")  # no match for q

    found = (
        await alice.list(status=["todo"], category="home", q="rent", due_before="2030-02-01", sort="-priority")
    ).json()
    assert ids(found["items"]) == [match["id"]]


@pytest.mark.parametrize(
    ("params", "fields"),
    [
        ({"limit": "0"}, {"limit"}),
        ({"limit": "101"}, {"limit"}),
        ({"limit": "ten"}, {"limit"}),
        ({"sort": "foo"}, {"sort"}),
        ({"sort": "title"}, {"sort"}),
        ({"status": "closed"}, {"status.0"}),
        ({"due_before": "yesterday"}, {"due_before"}),
        ({"due_after": "2030-13-01"}, {"due_after"}),
        ({"overdue": "maybe"}, {"overdue"}),
        ({"q": "x" * 201}, {"q"}),
        ({"q": "a\u0000b"}, {"q"}),
        ({"category": "c\u0000"}, {"category"}),
        ({"page": "2"}, {"page"}),
        ({"limit": ["5", "6"]}, {"limit"}),
        ({"sort": "foo", "limit": "0", "colour": "red"}, {"sort", "limit", "colour"}),
    ],
)
async def test_bad_query_strings_are_422_naming_the_parameter(alice, params, fields):
    problem = assert_problem(await alice.list(**params), 422)
    assert {error["field"] for error in problem["errors"]} == fields


async def test_a_tampered_cursor_is_400(alice):
    for i in range(3):
        await alice.create(title=f"t{i}")
    cursor = (await alice.list(limit=1)).json()["next_cursor"]
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    flipped = base64.urlsafe_b64encode(raw[:5] + bytes([raw[5] ^ 1]) + raw[6:]).rstrip(b"=").decode()

    for bad in (flipped, cursor[:-2], cursor + "AA", "garbage", "!!!!", "é", "x" * 512):
        problem = assert_problem(await alice.list(limit=1, cursor=bad), 400)
        assert problem["type"] == "/problems/invalid-cursor"
    assert_problem(await alice.list(limit=1, cursor="x" * 513), 422)  # longer than any cursor


async def test_a_cursor_only_works_with_the_sort_and_filters_it_was_made_for(alice):
    for i in range(3):
        await alice.create(title=f"t{i}", priority=2)
    cursor = (await alice.list(limit=1, sort="priority", status="todo")).json()["next_cursor"]

    assert (await alice.list(limit=1, sort="priority", status="todo", cursor=cursor)).status_code == 200
    assert (await alice.list(limit=5, sort="priority", status="todo", cursor=cursor)).status_code == 200
    for other in (
        {"sort": "-priority", "status": "todo"},
        {"sort": "created_at", "status": "todo"},
        {"sort": "priority"},
        {"sort": "priority", "status": "done"},
        {"sort": "priority", "status": "todo", "q": "t"},
    ):
        assert_problem(await alice.list(limit=1, cursor=cursor, **other), 400)


async def test_paging_never_skips_or_repeats_while_tasks_are_added_and_deleted(alice, client, ctx):
    """Between every two pages another client adds tasks and deletes some already listed or not yet
    listed: each task that exists throughout is listed exactly once, in order."""
    rng = random.Random(7)
    original = await seed(alice, 30, rng)
    survivors = {t["id"] for t in original}
    sort, limit = "due_date", 4
    seen: list[dict] = []
    cursor = None
    while True:
        page = (await alice.list(sort=sort, limit=limit, **({"cursor": cursor} if cursor else {}))).json()
        seen.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        # Concurrent activity: new tasks (some sort before the cursor, some after) and deletions.
        await asyncio.gather(
            *(
                alice.create(title="new", due_date=rng.choice([None, "2030-01-01", "2030-01-03", "2031-01-01"]))
                for _ in range(3)
            )
        )
        victim = rng.choice(sorted(survivors))
        survivors.discard(victim)
        await client.delete(f"/api/v1/tasks/{victim}", headers=alice.headers)

    seen_ids = ids(seen)
    assert len(seen_ids) == len(set(seen_ids)), "a task was listed twice"
    assert survivors <= set(seen_ids), "a task that existed all along was skipped"
    assert seen_ids == expected_order(seen, sort), "pages are out of order"


async def test_a_user_with_thousands_of_tasks_pages_through_them_all(alice, ctx):
    await db_execute(
        ctx,
        """INSERT INTO tasks (user_id, title, priority, due_date, created_at)
           SELECT a.id, 'bulk ' || i, 1 + i % 5, CASE WHEN i % 3 = 0 THEN NULL ELSE DATE '2030-01-01' + i % 50 END,
                  now() - make_interval(secs => i % 100)
           FROM accounts a, generate_series(1, 2500) AS i WHERE a.email = $1""",
        alice.email,
    )
    for sort in ("-created_at", "due_date", "-priority"):
        seen = await alice.page_through(sort=sort, limit=100)
        assert len(seen) == 2500 and len(set(ids(seen))) == 2500
        assert ids(seen) == expected_order(seen, sort)


@pytest.fixture
def window(monkeypatch):
    """Sets how many rows per row of the page a filtered list reads in order before it collects the
    filter's matches from the filter's own index instead (service/tasks/listing.py, search.py). Whatever the
    statistics of the search index say (ANALYZE may have run), no search collects from the start."""

    def set_window(per_row: int) -> None:
        for name in ("WINDOW_PER_ROW", "FILTER_WINDOW_PER_ROW"):
            monkeypatch.setattr(statements, name, per_row)
        for name in ("WINDOW_PER_ROW_READING_TABLE", "PROBE_PER_ROW"):
            monkeypatch.setattr(search, name, per_row)
        monkeypatch.setattr(search, "COLLECT_SHARE", 0.0)
        listing._shape.cache_clear()

    yield set_window
    listing._shape.cache_clear()


WORDS = ("alpha", "beta", "gamma", "delta")


async def seed_filtered(user, count: int, rng: random.Random) -> list[dict]:
    today = datetime.now(UTC).date()
    tasks = []
    for i in range(count):
        words = rng.sample(WORDS, rng.randint(0, 3))
        tasks.append(
            await user.create(
                title=" ".join([f"task {i}", *words]),
                # Not searched (titles only, migration 0012): a description with the words finds nothing.
                description=" ".join(rng.sample(WORDS, rng.randint(0, 2))) or None,
                status=rng.choice(["todo", "in_progress", "done"]),
                priority=rng.randint(1, 3),
                due_date=rng.choice([None, str(today - timedelta(days=rng.randint(1, 3))), "2030-01-01"]),
                category=rng.choice([None, "Work", "Home"]),
            )
        )
    return tasks


def matches(task: dict, params: dict) -> bool:
    text = task["title"].split()
    statuses = params.get("status", [])
    return (
        all(word in text for word in params.get("q", "").split())
        and (not statuses or task["status"] in ([statuses] if isinstance(statuses, str) else statuses))
        and ("category" not in params or (task["category"] or "").lower() == params["category"].lower())
        and (
            "overdue" not in params
            or (
                (task["due_date"] is not None and task["due_date"] < str(datetime.now(UTC).date()))
                and task["status"] != "done"
            )
        )
    )


@pytest.mark.parametrize(
    "params",
    [
        {"q": "alpha"},
        {"status": "todo"},
        {"category": "work"},
        {"q": "beta gamma", "status": ["todo", "in_progress"]},
        {"q": "delta", "category": "Home"},
        {"status": "todo", "overdue": "true"},
    ],
    ids=lambda p: "+".join(p),
)
async def test_filtered_pages_are_the_same_read_in_order_or_collected_through_the_filter_s_index(
    alice, window, params, statements
):
    tasks = await seed_filtered(alice, 60, random.Random(str(params)))
    wanted = [t for t in tasks if matches(t, params)]
    assert 3 < len(wanted) < len(tasks)

    # A window of one row per row of the page: pages are mostly finished from the filter's index. One far
    # larger than the list: every page is read in the sort's order.
    for per_row, collected in ((1, True), (10_000, False)):
        window(per_row)
        statements.clear()
        for sort in SORTS:
            seen = await alice.page_through(sort=sort, limit=3, **params)
            assert ids(seen) == expected_order(wanted, sort), (per_row, sort)
        # (A category sorted by due date is read in order from its own index: no window, nothing collected.)
        collecting = [name for name in statements if not name.startswith(("list_tasks_window", "list_tasks_by_keys"))]
        assert bool(collecting) is collected, statements
