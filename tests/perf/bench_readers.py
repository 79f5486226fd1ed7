"""Throughput and peak memory of the import readers on 1,000,000-row files.

Run: `python -m tests.perf.bench_readers` (fixtures are generated once and cached under /tmp; the xlsx
takes about a minute to write). Each figure is measured in a fresh child process so peak RSS is its own.
`main()` returns the figures as dicts {figure, tasklane, baseline, ratio, goal} for a later report.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))
CACHE = Path(os.environ.get("BENCH_CACHE", Path(tempfile.gettempdir()) / "tasklane-bench"))
STATUSES = ("todo", "in_progress", "done")


def _row(i: int) -> tuple[str, str, str, int, datetime.date, str]:
    due = datetime.date(2025, 1, 1) + datetime.timedelta(days=i % 365)
    return f"Task number {i}", f"Description of task {i}", STATUSES[i % 3], i % 5 + 1, due, f"cat{i % 10}"


def csv_fixture(rows: int = ROWS) -> Path:
    path = CACHE / f"tasks-{rows}.csv"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write("title,description,status,priority,due_date,category\r\n")
            for i in range(rows):
                t, d, s, p, due, c = _row(i)
                f.write(f"{t},{d},{s},{p},{due.isoformat()},{c}\r\n")
        tmp.rename(path)
    return path


def xlsx_fixture(rows: int = ROWS) -> Path:
    path = CACHE / f"tasks-{rows}.xlsx"
    if not path.exists():
        from openpyxl import Workbook

        CACHE.mkdir(parents=True, exist_ok=True)
        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet("Tasks")
        sheet.append(["title", "description", "status", "priority", "due_date", "category"])
        for i in range(rows):
            sheet.append(list(_row(i)))
        tmp = path.with_suffix(".tmp.xlsx")
        workbook.save(tmp)
        tmp.rename(path)
    return path


# --- what each child process runs ---------------------------------------------------------------------


def _run_tasklane(path: str, kind: str) -> int:
    from service.imports import open_reader

    n = 0
    with open_reader(path, kind) as reader:
        for chunk in reader.chunks(size=10_000):
            n += len(chunk.valid) + chunk.failed
    return n


def _run_csv_module(path: str, _kind: str) -> int:
    import csv

    with open(path, encoding="utf-8", newline="") as f:
        return sum(1 for _ in csv.reader(f)) - 1


def _run_calamine(path: str, _kind: str) -> int:
    from python_calamine import CalamineWorkbook

    sheet = CalamineWorkbook.from_path(path).get_sheet_by_index(0)
    return sum(1 for _ in sheet.iter_rows()) - 1


def _run_openpyxl(path: str, _kind: str) -> int:
    from openpyxl import load_workbook

    workbook = load_workbook(path, read_only=True)
    n = sum(1 for _ in workbook.worksheets[0].iter_rows(values_only=True)) - 1
    workbook.close()
    return n


RUNNERS = {"tasklane": _run_tasklane, "csv": _run_csv_module, "calamine": _run_calamine, "openpyxl": _run_openpyxl}


def _peak_rss_mb() -> float:
    # VmHWM of this process; ru_maxrss would keep the forking parent's peak across exec.
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024


def _child(runner: str, path: str, kind: str) -> None:
    start = time.perf_counter()
    rows = RUNNERS[runner](path, kind)
    seconds = time.perf_counter() - start
    print(json.dumps({"rows": rows, "seconds": seconds, "peak_mb": _peak_rss_mb()}))


def measure(runner: str, path: Path, kind: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "tests.perf.bench_readers", "--child", runner, str(path), kind],
        check=True,
        capture_output=True,
        text=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["rows_per_s"] = result["rows"] / result["seconds"]
    return result


def _figure(name: str, ours: float, baseline: float | None, goal: str) -> dict[str, Any]:
    unit = "MB" if "RSS" in name else "rows/s"
    ratio = round(ours / baseline, 2) if baseline else None
    return {
        "figure": name,
        "tasklane": round(ours, 1),
        "baseline": baseline and round(baseline, 1),
        "ratio": ratio,
        "unit": unit,
        "goal": goal,
    }


def main() -> list[dict[str, Any]]:
    csv_path, xlsx_path = csv_fixture(), xlsx_fixture()
    ours_csv = measure("tasklane", csv_path, "csv")
    raw_csv = measure("csv", csv_path, "csv")
    ours_xlsx = measure("tasklane", xlsx_path, "xlsx")
    calamine = measure("calamine", xlsx_path, "xlsx")
    openpyxl = measure("openpyxl", xlsx_path, "xlsx")
    assert ours_csv["rows"] == ours_xlsx["rows"] == ROWS, (ours_csv, ours_xlsx)
    figures = [
        _figure(
            "CSV rows/s, read+validate (baseline: csv.reader alone)",
            ours_csv["rows_per_s"],
            raw_csv["rows_per_s"],
            ">= 500000",
        ),
        _figure("CSV peak RSS MB (baseline: csv.reader alone)", ours_csv["peak_mb"], raw_csv["peak_mb"], "flat, < 100"),
        _figure(
            "XLSX rows/s, guard+read+validate (baseline: raw calamine)",
            ours_xlsx["rows_per_s"],
            calamine["rows_per_s"],
            ">= 100000",
        ),
        _figure("XLSX peak RSS MB (baseline: raw calamine)", ours_xlsx["peak_mb"], calamine["peak_mb"], "< 768"),
        _figure("XLSX rows/s vs openpyxl read-only", ours_xlsx["rows_per_s"], openpyxl["rows_per_s"], ">= 100000"),
        _figure("XLSX peak RSS MB vs openpyxl read-only", ours_xlsx["peak_mb"], openpyxl["peak_mb"], "< 768"),
    ]
    return figures


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        print(f"{ROWS:,} rows; fixtures in {CACHE}")
        for f in main():
            ours, base, ratio = f["tasklane"], f["baseline"], f["ratio"]
            print(f"{f['figure']:60s} tasklane={ours:>12,} baseline={base!s:>12} ratio={ratio!s:>6} goal {f['goal']}")
