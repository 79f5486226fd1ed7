"""HTTP endpoints of the tasks API: parse, call the service, answer."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service import idempotency, metrics
from service.accounts.auth import current_account, token_user_id, unauthorized
from service.errors import Unprocessable
from service.http.bodies import read_json, read_json_object
from service.http.openapi import operation
from service.http.routing import API_PREFIX
from service.json import json_response
from service.tasks import service
from service.tasks.schemas import (
    CategoryList,
    CategoryOut,
    CategoryPatch,
    TaskIn,
    TaskOut,
    TaskPage,
    TaskPatch,
    TaskQuery,
)

REPEATABLE = frozenset({"status"})


def _limit(request: Request) -> int:
    return request.state.settings.max_json_bytes


def query_params(query_string: bytes | str) -> dict[str, Any]:
    """The query string as a dict for a model: repeatable names as lists, any other given twice is an error."""
    data: dict[str, Any] = {}
    repeated: list[str] = []
    for name, value in QueryParams(query_string).multi_items():
        if name in REPEATABLE:
            data.setdefault(name, []).append(value)
        elif name in data:
            repeated.append(name)
        else:
            data[name] = value
    if repeated:
        names = sorted(set(repeated))
        raise Unprocessable(
            f"Give each of these parameters once: {', '.join(names)}",
            errors=[{"field": name, "message": "Given more than once"} for name in names],
        )
    return data


def task_location(task: dict[str, Any]) -> str:
    return f"{API_PREFIX}/tasks/{task['id']}"


def parse_task_query(query_string: bytes) -> TaskQuery:
    return TaskQuery.model_validate(query_params(query_string))


# The few query strings that first pages use over and over, parsed once. A string with a cursor is
# different for every page: not worth a slot. Only valid strings are kept (errors are not cached).
_parse_common_query = lru_cache(maxsize=256)(parse_task_query)


@operation(
    summary="List tasks (filters, sort, keyset pages)",
    tag="tasks",
    query=TaskQuery,
    responses={200: TaskPage},
    errors=(400,),
    description="Follow next_cursor to page: no task is skipped or repeated while tasks are added or deleted. "
    "A tampered cursor is refused with 400.",
)
async def list_tasks(request: Request) -> Response:
    # The hot path: the token names the user, and the list query itself checks the account is active.
    user_id = token_user_id(request)
    raw = request.scope["query_string"]
    query = parse_task_query(raw) if b"cursor" in raw else _parse_common_query(raw)
    page = await service.list_tasks(request.state.ctx, user_id, query)
    if page is None:
        raise unauthorized()
    return json_response(page)


@operation(
    summary="Create a task",
    tag="tasks",
    body=TaskIn,
    responses={201: TaskOut},
    headers={201: {"Location": "The new task"}},
    idempotent=True,
    description="A category named here is found or created (case-insensitively).",
)
async def create_task(request: Request) -> Response:
    user_id = token_user_id(request)
    ctx = request.state.ctx
    key = idempotency.key_from(request)
    payload = await read_json_object(request, _limit(request))
    try:
        data = TaskIn.model_validate(payload)
    except ValidationError:
        # The account is checked by the insert, which a bad body never reaches: a token of a deleted
        # account must still answer 401 before anything about the body.
        await current_account(request)
        raise

    async def create() -> idempotency.Outcome:
        # The account check is part of the insert: one round trip.
        task = await service.create_task(ctx, user_id, data)
        if task is None:
            raise unauthorized()
        return idempotency.Outcome.json(201, task, {"Location": task_location(task)})

    if key is not None:
        await current_account(request)  # the stored key belongs to the account: check it first
    outcome = await idempotency.once(
        ctx, user_id, key, lambda: orjson.dumps(payload, option=orjson.OPT_SORT_KEYS), create
    )
    if not outcome.replayed:  # counted once committed: a replay created nothing
        metrics.count("tasks_created")
    return outcome.response()


@operation(summary="One task", tag="tasks", responses={200: TaskOut}, errors=(404,))
async def get_task(request: Request) -> Response:
    account = await current_account(request)
    task = await service.get_task(request.state.ctx, account.id, request.path_params["id"])
    return json_response(task)


@operation(
    summary="Change some fields of a task",
    tag="tasks",
    body=TaskPatch,
    responses={200: TaskOut},
    errors=(404,),
    description="Only the fields sent change; null clears description, due_date and category.",
)
async def update_task(request: Request) -> Response:
    account = await current_account(request)
    patch = await read_json(request, TaskPatch, _limit(request))
    task = await service.update_task(request.state.ctx, account.id, request.path_params["id"], patch)
    return json_response(task)


@operation(summary="Delete a task", tag="tasks", responses={204: None}, errors=(404,))
async def delete_task(request: Request) -> Response:
    account = await current_account(request)
    await service.delete_task(request.state.ctx, account.id, request.path_params["id"])
    return Response(status_code=204)


@operation(summary="The user's categories with task counts", tag="categories", responses={200: CategoryList})
async def list_categories(request: Request) -> Response:
    account = await current_account(request)
    return json_response(await service.list_categories(request.state.ctx, account.id))


@operation(
    summary="Rename a category", tag="categories", body=CategoryPatch, responses={200: CategoryOut}, errors=(404, 409)
)
async def rename_category(request: Request) -> Response:
    account = await current_account(request)
    data = await read_json(request, CategoryPatch, _limit(request))
    category = await service.rename_category(request.state.ctx, account.id, request.path_params["id"], data)
    return json_response(category)


@operation(
    summary="Delete a category (its tasks stay, uncategorised)", tag="categories", responses={204: None}, errors=(404,)
)
async def delete_category(request: Request) -> Response:
    account = await current_account(request)
    await service.delete_category(request.state.ctx, account.id, request.path_params["id"])
    return Response(status_code=204)


routes = [
    Route("/tasks", list_tasks, methods=["GET"]),
    Route("/tasks", create_task, methods=["POST"]),
    Route("/tasks/{id}", get_task, methods=["GET"]),
    Route("/tasks/{id}", update_task, methods=["PATCH"]),
    Route("/tasks/{id}", delete_task, methods=["DELETE"]),
    Route("/categories", list_categories, methods=["GET"]),
    Route("/categories/{id}", rename_category, methods=["PATCH"]),
    Route("/categories/{id}", delete_category, methods=["DELETE"]),
]
