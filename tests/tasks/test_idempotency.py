"""Idempotency-Key on POST /tasks: a script may retry a create, even concurrently, without duplicates."""

from __future__ import annotations

import asyncio

import pytest

from tests.support import assert_problem, db_execute, db_value, worker_broker
from tests.tasks.conftest import API

BODY = {"title": "Pay invoice", "priority": 4, "category": "Bills"}


async def post(user, body, key: str | None = "key-1", **kwargs):
    headers = {**user.headers, **({"Idempotency-Key": key} if key is not None else {})}
    return await user.http.post(f"{API}/tasks", json=body, headers=headers, **kwargs)


async def task_count(ctx) -> int:
    return await db_value(ctx, "SELECT count(*) FROM tasks")


async def test_a_retry_with_the_same_key_returns_the_first_response_and_creates_nothing(alice, ctx):
    first = await post(alice, BODY)
    again = await post(alice, BODY)

    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert await task_count(ctx) == 1


async def test_the_same_body_formatted_differently_is_the_same_request(alice, ctx):
    first = await post(alice, BODY)
    reordered = await alice.http.post(
        f"{API}/tasks",
        content=b'{"category":"Bills",  "priority":4,\n "title":"Pay invoice"}',
        headers={**alice.headers, "Idempotency-Key": "key-1", "Content-Type": "application/json"},
    )
    assert reordered.status_code == 201 and reordered.content == first.content
    assert await task_count(ctx) == 1


async def test_the_same_key_with_a_different_body_is_422(alice, ctx):
    await post(alice, BODY)
    response = await post(alice, {**BODY, "priority": 5})
    assert assert_problem(response, 422)["type"] == "/problems/idempotency-key-reused"
    assert await task_count(ctx) == 1


async def test_keys_are_per_user(alice, bob, ctx):
    a = await post(alice, BODY)
    b = await post(bob, BODY)
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]
    assert await task_count(ctx) == 2


async def test_different_keys_or_no_key_create_new_tasks(alice, ctx):
    await post(alice, BODY, key="a")
    await post(alice, BODY, key="b")
    await post(alice, BODY, key=None)
    await post(alice, BODY, key=None)
    assert await task_count(ctx) == 4


async def test_concurrent_requests_with_one_key_create_exactly_one_task(alice, ctx):
    responses = await asyncio.gather(*(post(alice, BODY, key="burst") for _ in range(8)))

    assert [r.status_code for r in responses] == [201] * 8
    assert len({r.content for r in responses}) == 1
    assert sum("idempotent-replayed" in r.headers for r in responses) == 7
    assert await task_count(ctx) == 1
    assert await db_value(ctx, "SELECT count(*) FROM categories") == 1


async def test_concurrent_requests_with_one_key_and_different_bodies(alice, ctx):
    bodies = [BODY, {**BODY, "title": "Other"}] * 3
    responses = await asyncio.gather(*(post(alice, body, key="mixed") for body in bodies))

    statuses = sorted(r.status_code for r in responses)
    assert 201 in statuses and set(statuses) <= {201, 422}
    winners = {r.content for r in responses if r.status_code == 201}
    assert len(winners) == 1
    assert await task_count(ctx) == 1


async def test_a_failed_request_leaves_the_key_free(alice, ctx):
    invalid = await post(alice, {"title": ""})
    assert_problem(invalid, 422)
    valid = await post(alice, BODY)
    assert valid.status_code == 201
    assert await task_count(ctx) == 1


async def test_a_key_expires_after_24_hours(alice, ctx):
    first = await post(alice, BODY)
    await db_execute(ctx, "UPDATE idempotency_keys SET created_at = now() - interval '24 hours 1 second'")

    later = await post(alice, {**BODY, "title": "Another"})

    assert later.status_code == 201 and later.json()["id"] != first.json()["id"]
    assert "idempotent-replayed" not in later.headers
    assert await task_count(ctx) == 2


async def test_a_key_is_bound_to_the_endpoint(alice, client):
    # The same key on another route is another request (uploads will share this mechanism).
    from service import idempotency

    one = idempotency.fingerprint("POST", "/api/v1/tasks", b"{}")
    assert one != idempotency.fingerprint("POST", "/api/v1/imports", b"{}")
    assert one != idempotency.fingerprint("PUT", "/api/v1/tasks", b"{}")
    assert one == idempotency.fingerprint("post", "/api/v1/tasks", b"{}")


@pytest.mark.parametrize("key", ["", "x" * 256, "with space", "tab\tkey", "ünïcode"])
async def test_malformed_keys_are_400(alice, ctx, key):
    response = await alice.http.post(
        f"{API}/tasks", json=BODY, headers=[*alice.headers.items(), ("Idempotency-Key", key.encode("utf-8"))]
    )
    assert assert_problem(response, 400)["type"] == "/problems/invalid-idempotency-key"
    assert await task_count(ctx) == 0


async def test_a_key_sent_twice_in_one_request_is_400(alice):
    response = await alice.http.post(
        f"{API}/tasks",
        json=BODY,
        headers=[*alice.headers.items(), ("Idempotency-Key", "a"), ("Idempotency-Key", "b")],
    )
    assert_problem(response, 400)


async def test_a_key_of_255_visible_characters_is_fine(alice):
    assert (await post(alice, BODY, key="K" * 254 + "~")).status_code == 201


async def test_a_claim_committed_without_a_response_is_409_until_stored(alice, ctx):
    from service import idempotency

    user_id = await db_value(ctx, "SELECT id FROM accounts WHERE email = $1", alice.email)
    canonical = b'{"category":"Bills","priority":4,"title":"Pay invoice"}'
    digest = idempotency.fingerprint("POST", "/api/v1/tasks", canonical)
    async with ctx.db.transaction():  # e.g. an upload that commits its claim before streaming
        assert await idempotency.claim(ctx, user_id, "slow", digest) is None

    assert assert_problem(await post(alice, BODY, key="slow"), 409)["type"] == "/problems/idempotency-key-in-use"

    async with ctx.db.transaction():
        await idempotency.store(ctx, user_id, "slow", idempotency.Outcome.json(202, {"ok": True}, {"Location": "/x"}))
    replay = await post(alice, BODY, key="slow")
    assert replay.status_code == 202 and replay.json() == {"ok": True} and replay.headers["location"] == "/x"


async def test_purge_deletes_only_expired_keys(alice, ctx):
    from service import idempotency

    await post(alice, BODY, key="old")
    await post(alice, BODY, key="new")
    await db_execute(ctx, "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'old'")
    assert await idempotency.purge_expired(ctx) == 1
    assert await db_value(ctx, "SELECT array_agg(key) FROM idempotency_keys") == ["new"]


async def test_the_relay_purges_expired_keys_on_its_sweeps(alice, ctx):
    from service.relay import sweep

    broker = worker_broker()

    await post(alice, BODY, key="old")
    await db_execute(ctx, "UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")
    await sweep(ctx, broker)
    assert await db_value(ctx, "SELECT count(*) FROM idempotency_keys") == 0


async def test_a_claim_for_an_account_deleted_meanwhile_is_401_not_500(client, ctx):
    import uuid

    from service import idempotency
    from service.errors import Unauthorized

    with pytest.raises(Unauthorized):
        async with ctx.db.transaction():
            await idempotency.claim(ctx, uuid.uuid4(), "k", idempotency.fingerprint("POST", "/x", b"{}"))
