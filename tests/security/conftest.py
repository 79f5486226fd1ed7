"""Hostile input against the API (in process, and through real uvicorn/dramatiq processes where the
server itself matters): ownership, tokens, uploads, brute force, injection, response headers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.routing import Mount, Route

from service.app import create_app
from tests.processes import Stack, running_stack
from tests.reporting import report, terminal_summary  # noqa: F401  (the `report` fixture)
from tests.tasks.conftest import alice, bob  # noqa: F401  (the same two users as the tasks tests)


def route_table(settings: Any) -> list[tuple[str, str]]:
    """Every (method, path template) the application serves, HEAD aside: what the sweeps iterate over. A
    mounted application (static files) appears as GET <mount>/{path}."""
    app = create_app(settings)
    out = []
    for route in app.routes:
        if isinstance(route, Mount):
            out.append(("GET", f"{route.path}/{{path}}"))
            continue
        assert isinstance(route, Route), f"a sweep does not know how to test {route!r}"
        for method in sorted((route.methods or set()) - {"HEAD"}):
            out.append((method, route.path))
    return out


@pytest.fixture
def stack(clean: None, tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path, graceful=False, LOG_LEVEL="INFO", METRICS_FLUSH_INTERVAL="0.2") as s:
        yield s


def pytest_terminal_summary(terminalreporter: Any) -> None:
    terminal_summary(terminalreporter, "security findings", "tests/security/")
