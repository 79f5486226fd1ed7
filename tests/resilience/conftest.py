"""Fault injection on real processes: uvicorn web workers and `dramatiq workers` started from the Procfile,
PostgreSQL and Redis. Scenarios that stop PostgreSQL or Redis use instances of their own
(tests/faults.py), never the shared ones. Each scenario reports what it checked and what it found."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.processes import Stack, running_stack
from tests.reporting import report, terminal_summary  # noqa: F401  (the `report` fixture)

# Fast relay and takeover for every scenario: a lost message or a dead worker's job is re-driven within
# about a second, so the figures measure the product, not the defaults' patience.
FAST = {
    "RELAY_INTERVAL": "0.3",
    "RELAY_GRACE": "1",
    "BROKER_HEARTBEAT_TIMEOUT_MS": "2000",
    "IMPORT_STALE_AFTER": "3",
    "IMPORT_CHUNK_ROWS": "2000",
    "METRICS_FLUSH_INTERVAL": "0.2",
    "LOG_LEVEL": "INFO",
    # Many registrations come from 127.0.0.1 with distinct X-Forwarded-For (the per-IP limit is 5/hour).
    "TRUSTED_PROXIES": "127.0.0.1",
}


@pytest.fixture
def stack(clean: None, tmp_path: Path) -> Iterator[Stack]:
    """Real web and worker processes (test database, Redis and SMTP sink unless a test overrides them);
    every process is stopped after the test, whatever happened."""
    with running_stack(tmp_path, graceful=False, **FAST) as s:
        yield s


def pytest_terminal_summary(terminalreporter: Any) -> None:
    terminal_summary(terminalreporter, "resilience findings", "tests/resilience/")
