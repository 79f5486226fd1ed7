"""Throughput and peak memory of the import readers on 1,000,000-row files.

Run: `python -m tests.perf.bench_readers` (fixtures are generated once and cached under /tmp; the xlsx
takes about a minute to write; `--csv-only` skips it, BENCH_ROWS sets the size). Each figure is measured
in a fresh child process so peak RSS is its own. `main()` returns the figures as dicts {figure, tasklane,
baseline, ratio, goal} for a later report.

"Today's reader" is the reader as it is on the base commit (`git merge-base HEAD main`, or BENCH_BASE_REF):
its `service/` tree is extracted under var/ and run in its own child process, in the same run as the
current reader, on the same files. The current reader is measured on the plain file (exact header names,
canonical values) and on a file that goes through the synonym path: every header a synonym, statuses and
priorities as words, dates as `Dec 5, 2026` and month-first slash dates.
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
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))  # rounds of the matching figures; the best of each counts
CACHE = Path(os.environ.get("BENCH_CACHE", Path(tempfile.gettempdir()) / "tasklane-bench"))
ROOT = Path(__file__).resolve().parents[2]
STATUSES = ("todo", "in_progress", "done")
STATUS_WORDS = ("To Do", "In Progress", "Done", "open", "Closed")
PRIORITY_WORDS = ("Highest", "High", "Medium", "Low", "p1", "Lowest")


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


def synonym_fixture(rows: int = ROWS) -> Path:
    """The same tasks as `csv_fixture`, written the way other tools and people write them."""
    path = CACHE / f"tasks-synonyms-{rows}.csv"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write("Task Name,Notes,State,Importance,Deadline,List\r\n")
            for i in range(rows):
                t, d, _s, _p, due, c = _row(i)
                when = f"{due:%b} {due.day}, {due.year}" if i % 2 else f"{due:%m/%d/%Y}"
                f.write(f'{t},{d},{STATUS_WORDS[i % 5]},{PRIORITY_WORDS[i % 6]},"{when}",{c}\r\n')
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
    from service.imports.files import open_reader

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
    return _result(out.stdout)


def _result(stdout: str) -> dict[str, float]:
    result = json.loads(stdout.strip().splitlines()[-1])
    result["rows_per_s"] = result["rows"] / result["seconds"]
    return result


def baseline_tree() -> tuple[str, Path]:
    """The base commit's `service/` package, extracted once under var/ (its reader is "today's reader")."""
    ref = os.environ.get("BENCH_BASE_REF") or _git("merge-base", "HEAD", "main")
    sha = _git("rev-parse", ref)
    tree = ROOT / "var" / f"bench-baseline-{sha[:12]}"
    if not (tree / "service" / "imports").exists():
        tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", sha, "service"], check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return sha, tree


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True).stdout.strip()


def measure_baseline(tree: Path, path: Path, kind: str) -> dict[str, float]:
    """Today's reader, imported from `tree` (first on sys.path: the child runs there, with -c)."""
    code = (
        "import json, time\n"
        # The base commit may predate service/imports/files/ (the file side moved there in issue 15).
        "try:\n    from service.imports.files import open_reader\n"
        "except ImportError:\n    from service.imports import open_reader\n"
        "start = time.perf_counter(); n = 0\n"
        f"with open_reader({str(path)!r}, {kind!r}) as reader:\n"
        "    for chunk in reader.chunks(size=10_000):\n"
        "        n += len(chunk.valid) + chunk.failed\n"
        "seconds = time.perf_counter() - start\n"
        "status = open('/proc/self/status').read().splitlines()\n"
        "peak = next(int(l.split()[1]) for l in status if l.startswith('VmHWM')) / 1024\n"
        "import service.imports as m; assert m.__file__.startswith(" + repr(str(tree)) + "), m.__file__\n"
        "print(json.dumps({'rows': n, 'seconds': seconds, 'peak_mb': peak}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tree, check=True, capture_output=True, text=True)
    return _result(out.stdout)


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


def matching_figures() -> list[dict[str, Any]]:
    """The reader with header matching and value rules, against today's reader, in the same run."""
    csv_path, synonyms = csv_fixture(), synonym_fixture()
    sha, tree = baseline_tree()
    rounds: dict[str, list[dict[str, float]]] = {"today": [], "ours": [], "synonyms": []}
    for _ in range(REPEAT):  # interleaved, so a noisy neighbour slows every reader alike
        rounds["today"].append(measure_baseline(tree, csv_path, "csv"))
        rounds["ours"].append(measure("tasklane", csv_path, "csv"))
        rounds["synonyms"].append(measure("tasklane", synonyms, "csv"))
    today, ours, ours_synonyms = (max(r, key=lambda m: m["rows_per_s"]) for r in rounds.values())
    assert today["rows"] == ours["rows"] == ours_synonyms["rows"] == ROWS, (today, ours, ours_synonyms)
    base = f"today's reader, {sha[:7]}"
    return [
        _figure(f"CSV rows/s, exact headers (baseline: {base})", ours["rows_per_s"], today["rows_per_s"], ">= 0.9x"),
        _figure(
            f"CSV rows/s, synonym headers + word values + dates in words (baseline: {base})",
            ours_synonyms["rows_per_s"],
            today["rows_per_s"],
            ">= 0.9x",
        ),
        _figure(
            f"CSV peak RSS MB, synonym path (baseline: {base})", ours_synonyms["peak_mb"], today["peak_mb"], "flat"
        ),
    ]


def main(csv_only: bool = False) -> list[dict[str, Any]]:
    figures = matching_figures()
    if csv_only:
        return figures
    csv_path, xlsx_path = csv_fixture(), xlsx_fixture()
    ours_csv = measure("tasklane", csv_path, "csv")
    raw_csv = measure("csv", csv_path, "csv")
    ours_xlsx = measure("tasklane", xlsx_path, "xlsx")
    calamine = measure("calamine", xlsx_path, "xlsx")
    openpyxl = measure("openpyxl", xlsx_path, "xlsx")
    assert ours_csv["rows"] == ours_xlsx["rows"] == ROWS, (ours_csv, ours_xlsx)
    figures += [
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
        for f in main(csv_only="--csv-only" in sys.argv):
            ours, base, ratio = f["tasklane"], f["baseline"], f["ratio"]
            print(f"{f['figure']:60s} tasklane={ours:>12,} baseline={base!s:>12} ratio={ratio!s:>6} goal {f['goal']}")
