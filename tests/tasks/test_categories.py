"""Categories: found or created by name (case-insensitively, even under concurrent creates), listed
with task counts, renamed and deleted without losing their tasks."""

from __future__ import annotations

import asyncio
import uuid

from service.tasks.service import category_ids
from tests.support import assert_problem, db_value
from tests.tasks.conftest import API


async def categories(user) -> list[dict]:
    response = await user.http.get(f"{API}/categories", headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def test_a_category_is_created_once_and_then_found_by_any_casing(alice, ctx):
    first = await alice.create(title="a", category="Work")
    second = await alice.create(title="b", category="  WORK ")
    third = await alice.create(title="c", category="work")

    assert first["category"] == second["category"] == third["category"] == "Work"
    assert await db_value(ctx, "SELECT count(*) FROM categories") == 1


async def test_a_blank_category_means_none(alice, ctx):
    task = await alice.create(title="a", category="   ")
    assert task["category"] is None
    assert await db_value(ctx, "SELECT count(*) FROM categories") == 0


async def test_categories_are_listed_by_name_with_their_task_counts(alice, client):
    for name, count in (("work", 3), ("Home", 1), ("garden", 0)):
        for i in range(count):
            await alice.create(title=f"{name} {i}", category=name)
    # A category whose tasks were all moved away still exists, with 0 tasks.
    task = await alice.create(title="moved", category="garden")
    await client.patch(f"{API}/tasks/{task['id']}", json={"category": None}, headers=alice.headers)

    listed = await categories(alice)

    assert [(c["name"], c["task_count"]) for c in listed] == [("garden", 0), ("Home", 1), ("work", 3)]
    assert all(set(c) == {"id", "name", "task_count", "created_at"} for c in listed)


async def test_concurrent_creates_with_a_new_category_make_exactly_one(alice, client, ctx):
    responses = await asyncio.gather(
        *(
            client.post(
                f"{API}/tasks",
                json={"title": f"t{i}", "category": "Groceries" if i % 2 else "GROCERIES"},
                headers=alice.headers,
            )
            for i in range(10)
        )
    )

    assert [r.status_code for r in responses] == [201] * 10
    assert await db_value(ctx, "SELECT count(*) FROM categories") == 1
    assert len({r.json()["category"] for r in responses}) == 1
    assert (await categories(alice))[0]["task_count"] == 10


async def test_category_ids_resolves_many_names_at_once_for_the_importer(alice, ctx):
    user_id = await db_value(ctx, "SELECT id FROM accounts WHERE email = $1", alice.email)
    await alice.create(title="a", category="Work")

    found = await category_ids(ctx, user_id, ["Work", "work", "Home", "HOME", "Garden"])

    assert set(found) == {"work", "home", "garden"}
    assert len(set(found.values())) == 3
    names = {c["name"]: c["id"] for c in await categories(alice)}
    assert names == {"Work": str(found["work"]), "Home": str(found["home"]), "Garden": str(found["garden"])}
    assert await category_ids(ctx, user_id, []) == {}


async def test_category_ids_is_race_free_and_works_on_a_transaction_s_connection(alice, ctx):
    user_id = await db_value(ctx, "SELECT id FROM accounts WHERE email = $1", alice.email)
    names = [f"Cat {i}" for i in range(20)]

    async def resolve(order: list[str]) -> dict:
        return await category_ids(ctx, user_id, order)

    results = await asyncio.gather(*(resolve(names[::-1] if i % 2 else names) for i in range(6)))

    assert all(result == results[0] for result in results)
    assert await db_value(ctx, "SELECT count(*) FROM categories") == 20

    async with ctx.db.transaction(), ctx.db.connection() as conn:
        in_transaction = await category_ids(conn, user_id, ["cat 3", "Brand new"])
    assert in_transaction["cat 3"] == results[0]["cat 3"]
    assert await db_value(ctx, "SELECT count(*) FROM categories") == 21


async def test_rename_keeps_the_tasks(alice, client):
    task = await alice.create(title="a", category="Wrok")
    category = (await categories(alice))[0]

    response = await client.patch(f"{API}/categories/{category['id']}", json={"name": " Work "}, headers=alice.headers)

    assert response.status_code == 200
    assert response.json() == {**category, "name": "Work"}
    assert (await client.get(f"{API}/tasks/{task['id']}", headers=alice.headers)).json()["category"] == "Work"
    assert (await alice.create(title="b", category="work"))["category"] == "Work"


async def test_rename_to_another_casing_of_itself_is_fine(alice, client):
    await alice.create(title="a", category="work")
    category = (await categories(alice))[0]
    response = await client.patch(f"{API}/categories/{category['id']}", json={"name": "Work"}, headers=alice.headers)
    assert response.status_code == 200 and response.json()["name"] == "Work"


async def test_rename_onto_an_existing_name_is_409(alice, client):
    await alice.create(title="a", category="Work")
    await alice.create(title="b", category="Home")
    home = next(c for c in await categories(alice) if c["name"] == "Home")

    response = await client.patch(f"{API}/categories/{home['id']}", json={"name": "WORK"}, headers=alice.headers)

    assert assert_problem(response, 409)["type"] == "/problems/category-exists"
    assert {c["name"] for c in await categories(alice)} == {"Work", "Home"}


async def test_rename_validates_the_name(alice, client):
    await alice.create(title="a", category="Work")
    url = f"{API}/categories/{(await categories(alice))[0]['id']}"
    for body in (
        {"name": ""},
        {"name": "   "},
        {"name": None},
        {"name": "x" * 101},
        {},
        {"name": "ok", "colour": "red"},
    ):
        assert_problem(await client.patch(url, json=body, headers=alice.headers), 422)


async def test_unknown_and_malformed_category_ids_are_404(alice, client):
    for category_id in (str(uuid.uuid4()), "nope"):
        url = f"{API}/categories/{category_id}"
        assert_problem(await client.patch(url, json={"name": "x"}, headers=alice.headers), 404)
        assert_problem(await client.delete(url, headers=alice.headers), 404)


async def test_deleting_a_category_keeps_its_tasks_uncategorised(alice, client):
    a = await alice.create(title="a", category="Work")
    b = await alice.create(title="b", category="Work")
    other = await alice.create(title="c", category="Home")
    work = next(c for c in await categories(alice) if c["name"] == "Work")

    response = await client.delete(f"{API}/categories/{work['id']}", headers=alice.headers)

    assert response.status_code == 204
    for task in (a, b):
        fetched = (await client.get(f"{API}/tasks/{task['id']}", headers=alice.headers)).json()
        assert fetched["category"] is None and fetched["title"] == task["title"]
    assert (await client.get(f"{API}/tasks/{other['id']}", headers=alice.headers)).json()["category"] == "Home"
    assert [c["name"] for c in await categories(alice)] == ["Home"]
    assert_problem(await client.delete(f"{API}/categories/{work['id']}", headers=alice.headers), 404)
    # The name is free again, for a new category that holds only its own tasks.
    assert (await alice.create(title="d", category="work"))["category"] == "work"
    assert {c["name"]: c["task_count"] for c in await categories(alice)} == {"Home": 1, "work": 1}
    listed = (await alice.list(category="work")).json()["items"]
    assert [task["title"] for task in listed] == ["d"]
    everything = {task["title"]: task["category"] for task in (await alice.list()).json()["items"]}
    assert everything == {"a": None, "b": None, "c": "Home", "d": "work"}


async def test_deleting_a_category_while_tasks_are_created_in_it_never_fails(alice, client):
    await alice.create(title="seed", category="Busy")
    category = (await categories(alice))[0]

    creates = [
        client.post(f"{API}/tasks", json={"title": f"t{i}", "category": "busy"}, headers=alice.headers)
        for i in range(8)
    ]
    delete = client.delete(f"{API}/categories/{category['id']}", headers=alice.headers)
    responses = await asyncio.gather(*creates[:4], delete, *creates[4:])

    assert responses[4].status_code == 204
    assert all(r.status_code == 201 for r in responses[:4] + responses[5:])
    # Each task is either uncategorised (created before the delete) or in a live "busy" category, which
    # counts exactly the tasks that show it.
    shown = [task["category"] for task in (await alice.list(limit=100)).json()["items"]]
    assert len(shown) == 9 and set(shown) <= {None, "busy"}
    live = {c["name"]: c["task_count"] for c in await categories(alice)}
    assert live.get("busy", 0) == shown.count("busy")
