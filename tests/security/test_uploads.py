"""Hostile uploads through the real web and worker processes: zip bombs (one renamed .xlsx, two posing as
workbooks), a workbook lying about its sizes, a billion-cell dimension claim, a cell at XFD1048576 (and at
IV65536 in an .xls), NUL
escapes in cells, a CSV with a 100 MB line, NUL bytes, bytes that are no text, formula cells. Each is
refused at upload (415) or fails its job with a clear error, or imports only what is valid; errors.csv
defuses formulas; both processes stay up with bounded memory (RSS sampled from /proc throughout)."""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass

import httpx
import pytest

from tests.faults import RSSSampler, tree_pids
from tests.security import hostile_files as hostile
from tests.support import eventually, signup

pytestmark = pytest.mark.security

API = "/api/v1"
WEB_RSS_MB = 250
WORKER_RSS_MB = 450
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Case:
    name: str
    filename: str
    build: object  # () -> bytes
    upload_status: int = 202
    job_status: str | None = None
    error: str | None = None  # a phrase the job's error must contain
    imported: int | None = None
    failed: int | None = None


CASES = [
    Case("classic zip bomb renamed .xlsx", "bomb.xlsx", lambda: hostile.zip_bomb(as_workbook=False), 415),
    Case("zip bomb posing as a workbook (2 GiB sheet)", "bomb2g.xlsx", lambda: hostile.zip_bomb(2 * hostile.GIB),
         job_status="failed", error="unpacks to 2.0 GB"),
    Case("zip bomb posing as a workbook (1 GiB sheet, ratio 500)", "bomb1g.xlsx", lambda: hostile.zip_bomb(hostile.GIB),
         job_status="failed", error="unpacks to 1024 MB"),
    Case("workbook lying about its sheet's size", "lie.xlsx", hostile.lying_workbook,
         job_status="failed", error="declared"),
    Case("billion-cell <dimension> claim, 3 rows", "dimension.xlsx",
         lambda: hostile.workbook(hostile.sheet([["title"], ["a"], ["b"]], dimension="A1:XFD1048576")),
         job_status="completed", imported=2, failed=0),
    Case("cells at A1 and XFD1048576", "far.xlsx",
         lambda: hostile.workbook(hostile.sheet([["title"], ["a"]], extra=b'<row r="1048576">'
                                                + hostile.cell("XFD1048576", "x") + b"</row>")),
         job_status="failed", error="17,179,869,184 cells"),
    Case("xls with one cell at IV65536 on its second sheet", "far.xls", hostile.far_xls,
         job_status="failed", error="16,777,218 cells"),
    Case("NUL escapes (_x0000_) in workbook cells", "nul.xlsx",
         lambda: hostile.workbook(hostile.sheet([["title", "n_x0000_"], ["bad_x0000_title", "d_x0000_"], ["ok", ""]])),
         job_status="completed", imported=1, failed=1),
    Case("CSV with a 100 MB line", "long.csv", hostile.csv_long_line, job_status="failed", error="longer than 4 MiB"),
    Case("NUL bytes at the start of a CSV", "nulhead.csv", lambda: b"title\nbad\x00row\n", 415),
    Case("NUL bytes deep in a CSV", "nul.csv", hostile.csv_nul_after_head, job_status="failed", error="NUL bytes"),
    Case("bytes that are neither UTF-8 nor Windows-1252 (start)", "bin.csv", lambda: b"title\n\xff\xfe\x81\n", 415),
    Case("bytes that are neither UTF-8 nor Windows-1252 (deep)", "bin2.csv", hostile.csv_not_text_after_head,
         job_status="failed", error="not text in UTF-8 or Windows-1252 (around line 2002)"),
    Case("formula cells", "formulas.csv", hostile.csv_formulas, job_status="completed", imported=0,
         failed=len(hostile.FORMULAS)),
]  # fmt: skip


async def test_hostile_files_are_refused_or_fail_cleanly_with_bounded_memory(stack, smtp, report):
    env = {"MAX_UPLOAD_BYTES": str(128 << 20)}
    web, url = stack.web(extra_env=env)
    worker = stack.worker(processes=1, threads=2, extra_env=env)
    worker_pids = set(tree_pids(worker.popen.pid))
    problems: list[str] = []
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        headers = await signup(http, smtp, "hostile@example.com")
        with RSSSampler({"web": web.popen.pid, "worker": worker.popen.pid}) as rss:
            for case in CASES:
                content = case.build()  # type: ignore[operator]
                started = time.monotonic()
                response = await http.post(
                    f"{API}/imports", files={"file": (case.filename, content, "application/octet-stream")},
                    headers=headers,
                )  # fmt: skip
                outcome = f"upload {response.status_code}"
                if response.status_code != case.upload_status:
                    problems.append(f"{case.name}: upload answered {response.status_code}: {response.text[:200]}")
                    continue
                if response.status_code != 202:
                    assert response.headers["content-type"].startswith("application/problem+json")
                    report(case.name, size=len(content), outcome=outcome, detail=response.json()["detail"][:90])
                    continue
                job_id = response.json()["id"]

                async def ended(job_id: str = job_id) -> dict | None:
                    job = (await http.get(f"{API}/imports/{job_id}", headers=headers)).json()
                    return job if job["status"] in ("completed", "failed", "cancelled") else None

                try:
                    job = await eventually(ended, 60, f"{case.name}: the job to end", every=0.1)
                except AssertionError as exc:
                    problems.append(str(exc))
                    continue
                report(
                    case.name,
                    size=len(content),
                    outcome=f"{outcome}, job {job['status']}",
                    imported=job["rows_imported"],
                    failed=job["rows_failed"],
                    error=(job["error"] or "")[:90],
                    seconds=round(time.monotonic() - started, 1),
                )
                if job["status"] != case.job_status:
                    problems.append(f"{case.name}: job {job['status']} ({job['error']})")
                if case.error and case.error not in (job["error"] or ""):
                    problems.append(f"{case.name}: error {job['error']!r} lacks {case.error!r}")
                if case.imported is not None and (job["rows_imported"], job["rows_failed"]) != (
                    case.imported,
                    case.failed,
                ):
                    problems.append(f"{case.name}: imported {job['rows_imported']}, failed {job['rows_failed']}")
                if case.failed:
                    problems += await check_errors_csv(http, headers, job_id, case.name)
        ready = (await http.get("/health/ready")).status_code

    report(
        "processes",
        web_peak_rss_mb=round(rss.peak["web"]),
        worker_peak_rss_mb=round(rss.peak["worker"]),
        ready_after=ready,
        worker_processes_unchanged=set(tree_pids(worker.popen.pid)) == worker_pids,
    )
    assert not problems, "\n".join(problems)
    assert ready == 200 and web.popen.poll() is None and worker.popen.poll() is None
    assert set(tree_pids(worker.popen.pid)) == worker_pids, "a worker process died and was replaced"
    assert rss.peak["web"] < WEB_RSS_MB and rss.peak["worker"] < WORKER_RSS_MB, rss.peak


async def check_errors_csv(http: httpx.AsyncClient, headers: dict[str, str], job_id: str, name: str) -> list[str]:
    """errors.csv lists the failed rows with no cell a spreadsheet would run as a formula."""
    response = await http.get(f"{API}/imports/{job_id}/errors.csv", headers=headers)
    if response.status_code != 200:
        return [f"{name}: errors.csv answered {response.status_code}"]
    rows = list(csv.reader(io.StringIO(response.text.removeprefix("\ufeff"), newline="")))
    problems = []
    for row in rows[1:]:
        for value in row:
            if value.startswith(TRIGGERS):
                problems.append(f"{name}: errors.csv cell {value!r} would run as a formula")
            if "\x00" in value:
                problems.append(f"{name}: errors.csv holds a NUL")
    if name == "formula cells":
        titles = [row[0] for row in rows[1:]]
        if titles != ["'" + f for f in hostile.FORMULAS]:
            problems.append(f"{name}: errors.csv titles {titles!r}")
    return problems
