from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import Stack, running_stack


@pytest.fixture
def stack(clean: None, tmp_path: Path) -> Iterator[Stack]:
    """Real web and worker processes on the test database, Redis and SMTP sink; stopped after the test."""
    with running_stack(tmp_path) as s:
        yield s
