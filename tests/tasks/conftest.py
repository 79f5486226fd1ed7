"""Two real, active users per test (alice and bob), helpers that speak the tasks API, and a spy of the
statements a listing runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from service.db import Database
from tests.support import active_account, bearer

API = "/api/v1"


@dataclass
class User:
    email: str
    headers: dict[str, str]
    http: httpx.AsyncClient

    async def create(self, expect: int = 201, **fields: Any) -> dict[str, Any]:
        response = await self.http.post(f"{API}/tasks", json=fields, headers=self.headers)
        assert response.status_code == expect, response.text
        return response.json()

    async def list(self, **params: Any) -> httpx.Response:
        return await self.http.get(f"{API}/tasks", params=params, headers=self.headers)

    async def page_through(self, **params: Any) -> list[dict[str, Any]]:
        """Every task the listing yields, following next_cursor to the end."""
        items: list[dict[str, Any]] = []
        cursor = None
        for _ in range(10_000):
            response = await self.list(**params, **({"cursor": cursor} if cursor else {}))
            assert response.status_code == 200, response.text
            page = response.json()
            items.extend(page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                return items
        raise AssertionError("the listing never ended")


async def make_user(client: httpx.AsyncClient, ctx: Any, smtp: Any, email: str) -> User:
    tokens = await active_account(client, ctx, smtp, email)
    return User(email, bearer(tokens), client)


@pytest.fixture
def statements(monkeypatch) -> list[str]:
    """The names of the statements that fetch rows (Database.fetch_all), as they run."""
    names: list[str] = []
    fetch_all = Database.fetch_all

    async def spy(self, query, **values):
        names.append(query.name)
        return await fetch_all(self, query, **values)

    monkeypatch.setattr(Database, "fetch_all", spy)
    return names


@pytest.fixture
async def alice(client, ctx, smtp) -> User:
    return await make_user(client, ctx, smtp, "alice@example.com")


@pytest.fixture
async def bob(client, ctx, smtp) -> User:
    return await make_user(client, ctx, smtp, "bob@example.com")


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for item in items]
