"""The import graph stays one-way: no two parts of the code import each other. A part is a package of service/
(accounts, tasks, imports, notifications, metrics, http, ...), a top-level module of service/ (config, db,
outbox, ...) or workers/. Read statically (ast) from the source, imports inside functions included: a
deferred import is still a dependency."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def part_of(module: str) -> str | None:
    """The part a dotted module name belongs to: `service.<package or module>`, `workers`, or None."""
    names = module.split(".")
    if names[0] == "workers":
        return "workers"
    if names[0] == "service" and len(names) > 1:
        return f"service.{names[1]}"
    return None


def module_name(path: Path) -> str:
    names = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(names[:-1] if names[-1] == "__init__" else names)


def imported(path: Path) -> Iterator[str]:
    """Every module `path` imports (for `from x import y`, both x and x.y: y may be a module)."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def dependencies() -> dict[str, set[str]]:
    """part -> the other parts it imports."""
    graph: dict[str, set[str]] = {}
    for path in sorted([*(ROOT / "service").rglob("*.py"), *(ROOT / "workers").rglob("*.py")]):
        source = part_of(module_name(path)) or "service"  # service/__init__.py: the package's own docstring
        targets = {part_of(name) for name in imported(path)}
        graph.setdefault(source, set()).update(t for t in targets if t and t != source)
    return graph


def test_the_graph_is_read_from_the_source():
    # Given what is known of the house: the app imports every domain's routes, workers import the service
    graph = dependencies()
    assert {"service.accounts", "service.tasks", "service.imports", "service.http"} <= graph["service.app"]
    assert "service.imports" in graph["workers"]


def test_no_two_parts_import_each_other():
    graph = dependencies()
    both_ways = sorted(
        f"{a} <-> {b}" for a, targets in graph.items() for b in targets if a < b and a in graph.get(b, set())
    )
    assert not both_ways, (
        "these parts import each other (one must not know the other; move what both need to one of them "
        "or below both): " + ", ".join(both_ways)
    )
