"""What a fault-injection or hostile-input test checked and found, printed at the end of the run.

    def test_x(report):
        report("killed the worker 3 times", chunks=[12, 40, 77])

Lines are printed as they come (visible with -s) and gathered in a "findings" section of the terminal
summary, so even a quiet run (-q) shows the figures each scenario measured.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

FINDINGS: dict[str, list[str]] = {}


def _format(message: str, figures: dict[str, Any]) -> str:
    if not figures:
        return message
    return message + ": " + ", ".join(f"{name}={value}" for name, value in figures.items())


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Callable[..., None]:
    lines = FINDINGS.setdefault(request.node.nodeid, [])

    def add(message: str, **figures: Any) -> None:
        line = _format(message, figures)
        lines.append(line)
        print(f"[{request.node.name}] {line}")

    return add


def terminal_summary(terminalreporter: Any, title: str, prefix: str) -> None:
    sections = {node: lines for node, lines in FINDINGS.items() if node.startswith(prefix) and lines}
    if not sections:
        return
    terminalreporter.section(title)
    for node, lines in sections.items():
        terminalreporter.write_line(node.split("::", 1)[-1])
        for line in lines:
            terminalreporter.write_line(f"    {line}")
