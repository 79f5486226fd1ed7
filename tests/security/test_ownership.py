"""Another user's ids, on every route that takes one: 404, byte for byte the answer for an id that does not
exist, nothing of the owner's data in it, and nothing of the owner's changed afterwards.

The sweep walks the route table: a new route with a path parameter fails the test until KINDS says which
resource it names. Lists, search, filters and Idempotency-Keys are checked for leaks too."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.security.conftest import route_table
from tests.support import db_value, eventually, running_worker

pytestmark = pytest.mark.security

API = "/api/v1"
# The collection a path parameter belongs to -> the kind of resource it names.
KINDS = {"tasks": "task", "categories": "category", "imports": "import"}
BODIES = {("PATCH", "task"): {"title": "pwned"}, ("PATCH", "category"): {"name": "pwned"}}
IGNORED_HEADERS = {"x-request-id", "date", "content-length"}
SECRETS = ("Alice secret", "alice-diary", "AlicePrivate", "secret bad row", "alice@example.com")


# Path parameters that name no one's resource.
NOT_OWNED = {"/docs/assets/{path}": "a static file of the API viewer"}


def kind_of(path: str) -> str:
    parts = path.removeprefix(API + "/").split("/")
    assert parts[0] in KINDS, f"{path} takes an id, but the ownership sweep does not know what it names: add it"
    return KINDS[parts[0]]


async def snapshot(ctx: Any) -> dict[str, Any]:
    """Everything of alice's a request by bob could have changed."""
    queries = {
        "tasks": "SELECT id, title, description, status, priority, category_id, updated_at FROM tasks ORDER BY id",
        "categories": "SELECT id, name FROM categories ORDER BY id",
        "imports": "SELECT id, status, cancel_requested, rows_imported, file_removed_at FROM import_jobs ORDER BY id",
        "errors": "SELECT count(*) FROM import_errors",
        "events": "SELECT id, status, attempts FROM webhook_events ORDER BY id",
    }
    out = {}
    async with ctx.db.connection() as conn:
        for name, sql in queries.items():
            out[name] = [tuple(r) for r in await conn.fetch(sql)]
    return out


async def test_another_users_ids_are_404_on_every_route_and_leak_nothing(
    alice, bob, client, ctx, webhook_receiver, report
):
    receiver = webhook_receiver()
    task = await alice.create(title="Alice secret task", description="alice-diary", category="AlicePrivate")
    category = (await client.get(f"{API}/categories", headers=alice.headers)).json()["items"][0]
    csv = b"title,priority\nAlice secret one,1\nsecret bad row,9\n"
    with running_worker():
        done = await client.post(
            f"{API}/imports",
            files={"file": ("alice.csv", csv, "text/csv")},
            data={"webhook_url": receiver.url},
            headers=alice.headers,
        )
        finished = done.json()["id"]
        await receiver.wait_for(1, timeout=20)

        async def recorded() -> list[Any]:
            return (await client.get(f"{API}/imports/{finished}/deliveries", headers=alice.headers)).json()["items"]

        await eventually(recorded, 10, "the delivery to be recorded")
    # A second import stays queued (no worker now): cancel and delete must not touch it either.
    queued = (
        await client.post(f"{API}/imports", files={"file": ("q.csv", csv, "text/csv")}, headers=alice.headers)
    ).json()["id"]
    ids = {"task": [task["id"]], "category": [category["id"]], "import": [finished, queued]}
    own = {
        path: (await client.get(path, headers=alice.headers)).status_code
        for path in (
            f"{API}/imports/{finished}/errors",
            f"{API}/imports/{finished}/errors.csv",
            f"{API}/imports/{finished}/deliveries",
        )
    }
    assert set(own.values()) == {200}, own  # alice does see her errors and deliveries
    before = await snapshot(ctx)

    routes = [(m, p) for m, p in route_table(ctx.settings) if "{" in p and p not in NOT_OWNED]
    # Destructive methods last, so every read is tried against intact data.
    routes.sort(key=lambda r: r[0] in ("DELETE", "POST", "PATCH"))
    checked = []
    for method, template in routes:
        kind = kind_of(template)
        body = BODIES.get((method, kind))
        for owned in ids[kind]:
            theirs = await client.request(
                method, template.replace("{id}", owned), json=body, headers=bob.headers, timeout=5
            )
            unknown = await client.request(
                method, template.replace("{id}", str(uuid.uuid4())), json=body, headers=bob.headers, timeout=5
            )
            label = f"{method} {template}"
            assert theirs.status_code == 404, (label, theirs.status_code, theirs.text[:200])
            assert theirs.headers["content-type"].startswith("application/problem+json"), label
            assert theirs.content == unknown.content, (label, theirs.text, unknown.text)
            same = {k: v for k, v in theirs.headers.items() if k not in IGNORED_HEADERS}
            assert same == {k: v for k, v in unknown.headers.items() if k not in IGNORED_HEADERS}, label
            assert not any(s in theirs.text for s in (*SECRETS, owned)), (label, theirs.text)
            checked.append(label)
    after = await snapshot(ctx)
    assert after == before, "a request with another user's id changed something"

    # Lists, search and filters show bob nothing of alice's.
    leaks = []
    for path in (
        f"{API}/tasks",
        f"{API}/tasks?q=Alice",
        f"{API}/tasks?category=AlicePrivate",
        f"{API}/categories",
        f"{API}/imports",
    ):
        response = await client.get(path, headers=bob.headers)
        assert response.status_code == 200, (path, response.text)
        if response.json()["items"] or any(s in response.text for s in SECRETS):
            leaks.append(path)
    # An Idempotency-Key is per user: bob reusing alice's key gets his own task, not her stored answer.
    key = {"Idempotency-Key": "shared-key-1"}
    first = await client.post(f"{API}/tasks", json={"title": "same"}, headers={**alice.headers, **key})
    second = await client.post(f"{API}/tasks", json={"title": "same"}, headers={**bob.headers, **key})
    replayed = second.headers.get("idempotent-replayed")
    report(
        "bob with alice's ids",
        routes=len({c for c in checked}),
        requests=len(checked) * 2,
        answers="404, identical to an unknown id",
        alice_data_changed=after != before,
    )
    report("lists and search", leaked_paths=leaks, idempotency_key_replayed_across_users=replayed)
    assert not leaks, leaks
    assert second.status_code == 201 and second.json()["id"] != first.json()["id"] and replayed is None
    assert await db_value(ctx, "SELECT count(*) FROM tasks WHERE title = 'same'") == 2
