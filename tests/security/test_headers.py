"""Response headers of the real server (the Procfile's uvicorn command): every answer of every route, errors
included, carries `X-Content-Type-Options: nosniff` and names no server or framework version."""

from __future__ import annotations

import re
import socket
import uuid

import httpx
import pytest

from tests.security.conftest import route_table
from tests.support import signup

pytestmark = pytest.mark.security

API = "/api/v1"
LEAKY_HEADERS = ("server", "x-powered-by", "x-aspnet-version", "via")
VERSION = re.compile(r"(uvicorn|starlette|python|asyncpg|httptools|h11)[/ ]?\d", re.IGNORECASE)


def raw_request(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks):
                break
        return b"".join(chunks)


async def test_every_answer_has_nosniff_and_no_version(stack, smtp, settings, report):
    _web, url = stack.web()
    stack.worker(processes=1, threads=2)
    problems: list[str] = []
    seen: dict[int, int] = {}
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        headers = await signup(http, smtp, "headers@example.com")
        task = (await http.post(f"{API}/tasks", json={"title": "t", "category": "c"}, headers=headers)).json()
        job = (
            await http.post(f"{API}/imports", files={"file": ("t.csv", b"title\nx\n", "text/csv")}, headers=headers)
        ).json()
        category = (await http.get(f"{API}/categories", headers=headers)).json()["items"][0]
        ids = {"tasks": task["id"], "categories": category["id"], "imports": job["id"]}

        requests: list[tuple[str, str, dict]] = []
        for method, template in route_table(settings):
            if template.endswith("/events") or (method == "DELETE" and template == f"{API}/users/me"):
                continue  # a stream that lasts (checked below on a finished job), and the test's own account
            collection = template.removeprefix(f"{API}/").split("/")[0]
            path = template.replace("{id}", ids.get(collection, str(uuid.uuid4())))
            path = path.replace("{path}", "swagger-ui.css")
            for auth in (headers, {}):  # each route answered normally, and refused
                requests.append((method, path, {"headers": auth, "json": {} if method in ("POST", "PATCH") else None}))
        # Errors the framework produces before any handler: unmatched path, wrong method, body too large.
        requests += [
            ("GET", "/nowhere", {}),
            ("PUT", f"{API}/tasks", {"headers": headers}),
            ("POST", f"{API}/tasks", {"headers": {**headers, "Content-Type": "text/plain"}, "content": b"x"}),
        ]
        for method, path, kwargs in requests:
            response = await http.request(method, path, **{k: v for k, v in kwargs.items() if v is not None})
            seen[response.status_code] = seen.get(response.status_code, 0) + 1
            label = f"{method} {path} -> {response.status_code}"
            if response.headers.get("x-content-type-options") != "nosniff":
                problems.append(f"{label}: no nosniff")
            for name in LEAKY_HEADERS:
                if name in response.headers:
                    problems.append(f"{label}: {name}: {response.headers[name]}")
            if VERSION.search(response.text[:2000]):
                problems.append(f"{label}: a version in the body")
        # A streamed answer (server-sent events of a finished job) gets the same headers.
        await http.get(f"{API}/imports/{job['id']}", headers=headers)
        async with http.stream("GET", f"{API}/imports/{job['id']}/events", headers=headers, timeout=5) as stream:
            if stream.headers.get("x-content-type-options") != "nosniff" or "server" in stream.headers:
                problems.append("events stream headers")

    # A body over the limit, announced by its Content-Length: refused at once (413) from the headers alone.
    port = int(url.rsplit(":", 1)[1])
    too_large = raw_request(
        port,
        f"POST {API}/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: {headers['Authorization']}\r\n"
        "Content-Type: application/json\r\nContent-Length: 2000000\r\n\r\n".encode(),
    ).decode(errors="replace")
    head = too_large.split("\r\n\r\n", 1)[0].lower()
    seen[413] = seen.get(413, 0) + 1
    if not head.startswith("http/1.1 413") or "x-content-type-options: nosniff" not in head or "\nserver:" in head:
        problems.append(f"413 for a declared 2 MB body: {head!r}")
    # uvicorn's own answer to a request it cannot parse never reaches the application: no version either.
    garbage = raw_request(port, b"GARBAGE / HTTP/1.1\r\nHost: x\r\n\r\n").decode(errors="replace")
    garbage_head = garbage.split("\r\n\r\n", 1)[0]
    report(
        "answers checked",
        requests=len(requests) + 1,
        by_status=dict(sorted(seen.items())),
        problems=len(problems),
        unparseable_request_answer=garbage_head.splitlines()[0] if garbage_head else "(closed)",
        # Not the application's answer: uvicorn's own, without the application's headers.
        unparseable_request_has_nosniff="nosniff" in garbage_head.lower(),
    )
    assert not problems, "\n".join(problems[:20])
    assert not re.search(r"^server:", garbage_head, re.IGNORECASE | re.MULTILINE), garbage_head
    assert not VERSION.search(garbage), garbage
