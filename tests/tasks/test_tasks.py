"""Creating, reading, changing and deleting one's tasks, and what invalid input gets back."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest

from tests.support import assert_problem, bearer, db_execute, db_value
from tests.tasks.conftest import API

TASK_FIELDS = {
    "id",
    "title",
    "description",
    "status",
    "priority",
    "due_date",
    "category",
    "created_at",
    "updated_at",
    "import_id",
}


def field_names(problem: dict) -> set[str]:
    return {error["field"] for error in problem["errors"]}


async def test_a_new_task_gets_defaults_an_id_and_a_location(alice, client):
    response = await client.post(f"{API}/tasks", json={"title": "  Buy milk  "}, headers=alice.headers)

    assert response.status_code == 201
    task = response.json()
    assert set(task) == TASK_FIELDS
    assert task["title"] == "Buy milk"  # trimmed
    assert task["status"] == "todo" and task["priority"] == 3
    assert task["description"] is None and task["due_date"] is None and task["category"] is None
    assert task["import_id"] is None
    assert task["created_at"] == task["updated_at"]
    assert response.headers["location"] == f"{API}/tasks/{task['id']}"
    fetched = await client.get(response.headers["location"], headers=alice.headers)
    assert fetched.status_code == 200 and fetched.json() == task


async def test_every_field_can_be_set_on_creation(alice):
    task = await alice.create(
        title="Tax return",
        description="Forms A and B",
        status="in_progress",
        priority=5,
        due_date="2030-04-30",
        category="Admin",
    )
    assert task["description"] == "Forms A and B"
    assert task["status"] == "in_progress" and task["priority"] == 5
    assert task["due_date"] == "2030-04-30" and task["category"] == "Admin"


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"title"}),
        ({"title": "   "}, {"title"}),
        ({"title": "x" * 201}, {"title"}),
        ({"title": None}, {"title"}),
        ({"title": 5}, {"title"}),
        ({"title": "ok", "description": "d" * 10_001}, {"description"}),
        ({"title": "ok", "status": "finished"}, {"status"}),
        ({"title": "ok", "priority": 0}, {"priority"}),
        ({"title": "ok", "priority": 6}, {"priority"}),
        ({"title": "ok", "priority": "3"}, {"priority"}),
        ({"title": "ok", "priority": 2.5}, {"priority"}),
        ({"title": "ok", "priority": True}, {"priority"}),
        ({"title": "ok", "due_date": "2030-02-30"}, {"due_date"}),
        ({"title": "ok", "due_date": "30/04/2030"}, {"due_date"}),
        ({"title": "ok", "due_date": "2030-04-30T10:00:00"}, {"due_date"}),
        ({"title": "ok", "category": "c" * 101}, {"category"}),
        # Lengths count what was sent, spaces included (as the schema's maxLength does)
        ({"title": " " + "x" * 199 + " "}, {"title"}),
        ({"title": "ok", "category": " " + "c" * 100 + " "}, {"category"}),
        ({"title": "ok", "category": "bad\u0000category"}, {"category"}),
        ({"title": "bad\u0000title"}, {"title"}),
        ({"title": "ok", "colour": "red"}, {"colour"}),
        ({"title": "", "priority": 9, "status": "x", "owner": "me"}, {"title", "priority", "status", "owner"}),
    ],
)
async def test_invalid_fields_are_named_in_a_422(alice, client, body, fields):
    response = await client.post(f"{API}/tasks", json=body, headers=alice.headers)
    problem = assert_problem(response, 422)
    assert field_names(problem) == fields
    assert all(error["message"] for error in problem["errors"])


async def test_what_the_document_allows_is_accepted(alice, client):
    # 5.0 is the integer 5 to JSON and to JSON Schema
    assert (await alice.create(title="Whole", priority=5.0))["priority"] == 5
    # At the bounds, spaces included; kept trimmed
    task = await alice.create(title=" " + "x" * 198 + " ", category=" " + "c" * 98 + " ")
    assert task["title"] == "x" * 198 and task["category"] == "c" * 98
    # A category of only spaces is none
    assert (await alice.create(title="No category", category="   "))["category"] is None


async def test_unknown_fields_are_rejected_not_dropped(alice, client, ctx):
    response = await client.post(
        f"{API}/tasks", json={"title": "ok", "user_id": str(uuid.uuid4())}, headers=alice.headers
    )
    problem = assert_problem(response, 422)
    assert problem["errors"] == [{"field": "user_id", "message": "Unknown field"}]
    assert await db_value(ctx, "SELECT count(*) FROM tasks") == 0


async def test_a_body_that_is_not_a_json_object_is_400(alice, client):
    for content in (b"[1, 2]", b"{not json", b""):
        response = await client.post(
            f"{API}/tasks", content=content, headers={**alice.headers, "Content-Type": "application/json"}
        )
        assert_problem(response, 400)


async def test_the_api_needs_a_valid_token(client):
    for method, path in (
        ("GET", "/tasks"),
        ("POST", "/tasks"),
        ("GET", f"/tasks/{uuid.uuid4()}"),
        ("PATCH", f"/tasks/{uuid.uuid4()}"),
        ("DELETE", f"/tasks/{uuid.uuid4()}"),
        ("GET", "/categories"),
        ("PATCH", f"/categories/{uuid.uuid4()}"),
        ("DELETE", f"/categories/{uuid.uuid4()}"),
    ):
        response = await client.request(method, API + path, headers={"Authorization": "Bearer nonsense"})
        assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_a_deleted_account_s_token_no_longer_works(alice, client):
    await alice.create(title="mine")
    assert (await client.delete(f"{API}/users/me", headers=alice.headers)).status_code == 204

    # The token is still a valid JWT: the list query itself notices the account is gone.
    assert_problem(await alice.list(), 401)
    assert_problem(await client.post(f"{API}/tasks", json={"title": "x"}, headers=alice.headers), 401)
    assert_problem(await client.get(f"{API}/categories", headers=alice.headers), 401)


async def test_an_inactive_account_s_token_no_longer_lists_or_creates(alice, client, ctx):
    await db_execute(ctx, "UPDATE accounts SET is_active = false WHERE email = $1", alice.email)
    assert_problem(await alice.list(), 401)
    for headers in (alice.headers, {**alice.headers, "Idempotency-Key": "k1"}):
        response = await client.post(f"{API}/tasks", json={"title": "x", "category": "New"}, headers=headers)
        assert_problem(response, 401)
    assert await db_value(ctx, "SELECT count(*) FROM tasks") == 0
    assert await db_value(ctx, "SELECT count(*) FROM categories") == 0
    assert await db_value(ctx, "SELECT count(*) FROM idempotency_keys") == 0


async def test_unknown_and_malformed_ids_are_404(alice, client):
    for task_id in (str(uuid.uuid4()), "not-a-uuid", "1", "%20"):
        for method in ("GET", "PATCH", "DELETE"):
            kwargs = {"json": {"title": "x"}} if method == "PATCH" else {}
            response = await client.request(method, f"{API}/tasks/{task_id}", headers=alice.headers, **kwargs)
            assert_problem(response, 404)


async def test_patch_changes_only_the_fields_sent(alice, client):
    task = await alice.create(
        title="Write report", description="draft", priority=2, due_date="2030-01-01", category="Work"
    )

    response = await client.patch(f"{API}/tasks/{task['id']}", json={"status": "done"}, headers=alice.headers)

    assert response.status_code == 200
    changed = response.json()
    assert changed["status"] == "done"
    for field in ("title", "description", "priority", "due_date", "category", "created_at", "id"):
        assert changed[field] == task[field]
    assert datetime.fromisoformat(changed["updated_at"]) > datetime.fromisoformat(task["updated_at"])
    assert (await client.get(f"{API}/tasks/{task['id']}", headers=alice.headers)).json() == changed


async def test_patch_with_null_clears_the_nullable_fields(alice, client):
    task = await alice.create(title="t", description="d", due_date="2030-01-01", category="Work")
    response = await client.patch(
        f"{API}/tasks/{task['id']}",
        json={"description": None, "due_date": None, "category": None},
        headers=alice.headers,
    )
    assert response.status_code == 200
    cleared = response.json()
    assert cleared["description"] is None and cleared["due_date"] is None and cleared["category"] is None
    assert cleared["title"] == "t"


async def test_patch_can_change_every_field(alice, client):
    task = await alice.create(title="t")
    new = {
        "title": " New title ",
        "description": "new",
        "status": "in_progress",
        "priority": 1,
        "due_date": "2031-12-31",
        "category": "Home",
    }
    response = await client.patch(f"{API}/tasks/{task['id']}", json=new, headers=alice.headers)
    assert response.status_code == 200
    changed = response.json()
    assert {field: changed[field] for field in new} == {**new, "title": "New title"}


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"title": None}, {"title"}),
        ({"status": None}, {"status"}),
        ({"priority": None}, {"priority"}),
        ({"title": ""}, {"title"}),
        ({"priority": 7}, {"priority"}),
        ({"id": str(uuid.uuid4())}, {"id"}),
        ({"created_at": "2020-01-01T00:00:00Z"}, {"created_at"}),
    ],
)
async def test_patch_refuses_nulls_for_required_fields_and_unknown_fields(alice, client, body, fields):
    task = await alice.create(title="keep me", priority=4)
    response = await client.patch(f"{API}/tasks/{task['id']}", json=body, headers=alice.headers)
    assert field_names(assert_problem(response, 422)) == fields
    assert (await client.get(f"{API}/tasks/{task['id']}", headers=alice.headers)).json() == task


async def test_an_empty_patch_changes_nothing(alice, client):
    task = await alice.create(title="t")
    response = await client.patch(f"{API}/tasks/{task['id']}", json={}, headers=alice.headers)
    assert response.status_code == 200 and response.json() == task


async def test_a_patch_of_a_missing_task_creates_no_category(alice, client, ctx):
    response = await client.patch(f"{API}/tasks/{uuid.uuid4()}", json={"category": "Ghost"}, headers=alice.headers)
    assert_problem(response, 404)
    assert await db_value(ctx, "SELECT count(*) FROM categories") == 0


async def test_delete_removes_the_task(alice, client):
    task = await alice.create(title="t")
    response = await client.delete(f"{API}/tasks/{task['id']}", headers=alice.headers)
    assert response.status_code == 204 and response.content == b""
    assert_problem(await client.get(f"{API}/tasks/{task['id']}", headers=alice.headers), 404)
    assert_problem(await client.delete(f"{API}/tasks/{task['id']}", headers=alice.headers), 404)
    assert (await alice.list()).json() == {"items": [], "next_cursor": None}


async def test_a_refreshed_token_works_as_well(alice, client, ctx, smtp):
    # Access tokens are verified once and remembered; a second token of the same user is its own entry.
    await alice.create(title="t")
    login = await client.post(f"{API}/auth/login", json={"email": alice.email, "password": "secret123"})
    other = bearer(login.json())
    assert other != alice.headers
    assert len((await client.get(f"{API}/tasks", headers=other)).json()["items"]) == 1


async def test_a_deleted_accounts_token_gets_401_even_with_a_bad_body(client, ctx, smtp):
    from tests.support import active_account, assert_problem, bearer

    headers = bearer(await active_account(client, ctx, smtp, "gone@example.com"))
    assert (await client.delete("/api/v1/users/me", headers=headers)).status_code == 204
    assert_problem(await client.post("/api/v1/tasks", json={"title": ""}, headers=headers), 401)
    assert_problem(await client.post("/api/v1/tasks", json={"title": "ok"}, headers=headers), 401)
