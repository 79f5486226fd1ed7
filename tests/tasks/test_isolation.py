"""Nobody ever sees, changes or even detects another user's tasks and categories: every route answers
404 (never 403, never data), exactly as for ids that do not exist."""

from __future__ import annotations

import uuid

from tests.support import assert_problem, db_value
from tests.tasks.conftest import API, ids


async def test_another_user_s_task_is_404_on_every_route_and_stays_untouched(alice, bob, client):
    task = await alice.create(title="Alice's secret", description="diary", category="Private")
    url = f"{API}/tasks/{task['id']}"
    unknown = f"{API}/tasks/{uuid.uuid4()}"

    for method, kwargs in (("GET", {}), ("PATCH", {"json": {"title": "pwned"}}), ("DELETE", {})):
        theirs = await client.request(method, url, headers=bob.headers, **kwargs)
        missing = await client.request(method, unknown, headers=bob.headers, **kwargs)
        assert_problem(theirs, 404)
        assert "secret" not in theirs.text and "diary" not in theirs.text
        # Indistinguishable from an id that does not exist.
        assert theirs.json() == missing.json()

    assert (await client.get(url, headers=alice.headers)).json() == task


async def test_lists_show_only_one_s_own_tasks_whatever_the_filters(alice, bob):
    mine = await alice.create(title="shared word", category="Work", due_date="2030-01-01")
    await bob.create(title="shared word", category="Work", due_date="2030-01-01")

    for params in ({}, {"q": "shared"}, {"category": "work"}, {"status": "todo"}, {"due_before": "2031-01-01"}):
        for sort in ("-created_at", "due_date", "priority"):
            assert ids((await alice.list(**params, sort=sort)).json()["items"]) == [mine["id"]]


async def test_categories_are_per_user(alice, bob, client, ctx):
    a = await alice.create(title="a", category="Work")
    b = await bob.create(title="b", category="work")
    assert a["category"] == "Work" and b["category"] == "work"  # each user got their own
    assert await db_value(ctx, "SELECT count(*) FROM categories") == 2

    alice_categories = (await client.get(f"{API}/categories", headers=alice.headers)).json()["items"]
    bob_categories = (await client.get(f"{API}/categories", headers=bob.headers)).json()["items"]
    assert [c["name"] for c in alice_categories] == ["Work"] and alice_categories[0]["task_count"] == 1
    assert [c["name"] for c in bob_categories] == ["work"] and bob_categories[0]["task_count"] == 1


async def test_another_user_s_category_is_404_for_rename_and_delete(alice, bob, client):
    await alice.create(title="a", category="Work")
    category = (await client.get(f"{API}/categories", headers=alice.headers)).json()["items"][0]
    url = f"{API}/categories/{category['id']}"

    assert_problem(await client.patch(url, json={"name": "Hacked"}, headers=bob.headers), 404)
    assert_problem(await client.delete(url, headers=bob.headers), 404)

    assert (await client.get(f"{API}/categories", headers=alice.headers)).json()["items"] == [category]


async def test_a_cursor_of_one_user_is_refused_for_another(alice, bob):
    for i in range(3):
        await alice.create(title=f"t{i}")
        await bob.create(title=f"t{i}")
    alice_cursor = (await alice.list(limit=1)).json()["next_cursor"]

    problem = assert_problem(await bob.list(limit=1, cursor=alice_cursor), 400)
    assert "t" not in [item["title"] for item in problem.get("items", [])]


async def test_patching_a_category_onto_one_s_task_never_uses_another_user_s_category(alice, bob, client, ctx):
    await bob.create(title="b", category="Shared name")
    task = await alice.create(title="a")
    response = await client.patch(f"{API}/tasks/{task['id']}", json={"category": "shared NAME"}, headers=alice.headers)
    assert response.json()["category"] == "shared NAME"  # a new category of alice's
    owners = await db_value(
        ctx,
        "SELECT count(DISTINCT c.user_id) FROM tasks t "
        "JOIN categories c ON c.id = t.category_id AND c.user_id = t.user_id",
    )
    assert owners == 2
