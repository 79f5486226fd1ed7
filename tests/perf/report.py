"""`make bench`: run every tests/perf/bench_*.py and write one Markdown report (var/bench-report.md)."""

from __future__ import annotations

import importlib
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

from tests.perf.common import ROOT


def _cell(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"
    return f"{text} {unit}".strip()


def main(names: list[str] | None = None) -> Path:
    modules = names or sorted(p.stem for p in Path(__file__).parent.glob("bench_*.py"))
    lines = [
        f"Benchmarks run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} "
        f"({platform.processor() or platform.machine()}, {_cores()} cores, Python {platform.python_version()}).",
        "",
        "| figure | tasklane | baseline (same run) | ratio | goal |",
        "|---|---|---|---|---|",
    ]
    for name in modules:
        module = importlib.import_module(f"tests.perf.{name}")
        sys.argv = [name]  # scripts with options of their own run with their defaults
        for row in module.main():
            unit = row.get("unit", "")
            lines.append(
                f"| {row['figure']} | {_cell(row['tasklane'], unit)} | {_cell(row['baseline'], unit)} "
                f"| {_cell(row['ratio'])} | {row['goal']} |"
            )
    out = ROOT / "var" / "bench-report.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"\nreport written to {out}\n\n" + "\n".join(lines))
    return out


def _cores() -> int:
    import os

    return os.cpu_count() or 1


if __name__ == "__main__":
    main(sys.argv[1:] or None)
