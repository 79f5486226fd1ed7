"""Oversized bodies sent to a real uvicorn process over a raw socket, 2 GiB each from a generator: with an
honest Content-Length over the limit, chunked with no length at all, and with a Content-Length that lies
(smaller than what follows). The server answers (413, or 400 for the truncated multipart) after reading
at most about the limit, then stops reading: the connection is closed, the client cannot push the rest.
The web process's memory stays flat throughout (no buffering), and it keeps serving."""

from __future__ import annotations

import select
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass

import httpx
import pytest

from tests.faults import RSSSampler
from tests.support import signup

pytestmark = pytest.mark.security

API = "/api/v1"
TWO_GIB = 2 << 30
UPLOAD_LIMIT = 32 << 20
JSON_LIMIT = 1 << 20
BLOCK = b"title,priority\n" + b"a task that goes on,3\n" * 24_000  # ~530 KB of plausible CSV
# What may pass before the server stops us: the limit, plus what the kernel buffers on both sides.
SLACK = 16 << 20
WEB_RSS_GROWTH_MB = 64


@dataclass
class Flood:
    name: str
    status_line: str
    sent: int
    seconds: float
    closed: bool  # the server closed the connection while we still had body to send


def flood(port: int, head: bytes, chunked: bool, total: int = TWO_GIB) -> tuple[str, int, float, bool]:
    """Send `head`, then up to `total` body bytes as fast as the server takes them; stop at its answer."""
    started = time.monotonic()
    sent = 0
    answer = b""
    closed = False
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head)
        s.setblocking(False)
        chunk = BLOCK if not chunked else f"{len(BLOCK):x}\r\n".encode() + BLOCK + b"\r\n"
        pending = memoryview(chunk)
        answered_at = None
        while True:
            readable, writable, _ = select.select([s], [s] if sent < total else [], [], 10)
            if not readable and not writable:
                break  # 10 s of silence: neither reading nor answering
            if readable:
                try:
                    data = s.recv(65536)
                except ConnectionResetError:
                    closed = True
                    break
                if not data:
                    closed = True
                    break
                answer += data
                answered_at = answered_at or time.monotonic()
            if writable:
                try:
                    n = s.send(pending)
                except (BrokenPipeError, ConnectionResetError):
                    # The server closed while we were still sending; its answer may have arrived between
                    # select() and send() and still wait in our receive buffer: read it before leaving.
                    closed = True
                    answer += _leftover(s)
                    break
                sent += n
                pending = pending[n:] if n < len(pending) else memoryview(chunk)
            # After the answer, keep pushing for at most 3 s: a server still reading would take it all.
            if answered_at and time.monotonic() - answered_at > 3:
                break
    status_line = answer.split(b"\r\n", 1)[0].decode(errors="replace")
    return status_line, sent, time.monotonic() - started, closed


def _leftover(s: socket.socket) -> bytes:
    data = b""
    s.settimeout(1)
    try:
        while chunk := s.recv(65536):
            data += chunk
    except OSError:  # reset, or nothing more within a second
        pass
    return data


def multipart_head(boundary: str, headers: dict[str, str], length: str | None) -> bytes:
    lines = [
        f"POST {API}/imports HTTP/1.1",
        "Host: 127.0.0.1",
        f"Content-Type: multipart/form-data; boundary={boundary}",
    ]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append(f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked")
    part = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n\r\n'
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (part.encode() if length is not None else b"")


def json_head(headers: dict[str, str], length: str | None) -> bytes:
    lines = [f"POST {API}/tasks HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append(f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def test_two_gib_bodies_are_cut_at_the_limit_without_buffering(stack, smtp, report, tmp_path):
    web, url = stack.web(extra_env={"MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT)})
    stack.worker(processes=1, threads=2)
    port = int(url.rsplit(":", 1)[1])
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        headers = await signup(http, smtp, "flood@example.com")
    auth = {"Authorization": headers["Authorization"]}
    boundary = uuid.uuid4().hex
    chunked_part = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n\r\n'.encode()
    cases = [
        # name, head, chunked, expected status, the most the server may take
        ("upload, honest Content-Length of 2 GiB", multipart_head(boundary, auth, str(TWO_GIB)), False, 413, SLACK),
        ("upload, chunked, no length", multipart_head(boundary, auth, None), True, 413, UPLOAD_LIMIT + SLACK),
        ("upload without a token, Content-Length 2 GiB", multipart_head(boundary, {}, str(TWO_GIB)), False, 401, SLACK),
        ("upload, Content-Length 1 MiB then 2 GiB", multipart_head(boundary, auth, str(1 << 20)), False, 400, SLACK),
        (
            "upload, Content-Length just under the limit then 2 GiB",
            multipart_head(boundary, auth, str(UPLOAD_LIMIT - 1024)),
            False,
            400,
            UPLOAD_LIMIT + SLACK,
        ),
        ("JSON, honest Content-Length of 2 GiB", json_head(auth, str(TWO_GIB)), False, 413, SLACK),
        ("JSON, chunked, no length", json_head(auth, None), True, 413, JSON_LIMIT + SLACK),
        ("JSON, Content-Length 100 bytes then 2 GiB", json_head(auth, "100"), False, 400, SLACK),
    ]
    problems: list[str] = []
    with RSSSampler({"web": web.popen.pid}, interval=0.02) as rss:
        baseline = rss.peak["web"]
        for name, head, chunked, expected, most in cases:
            if chunked and b"multipart" in head:
                head += f"{len(chunked_part):x}\r\n".encode() + chunked_part + b"\r\n"
            status_line, sent, seconds, closed = flood(port, head, chunked)
            status = int(status_line.split()[1]) if len(status_line.split()) > 1 else 0
            report(name, answer=status_line, body_bytes_taken=sent, seconds=round(seconds, 2), closed=closed)
            if status != expected:
                problems.append(f"{name}: answered {status_line!r}, expected {expected}")
            if sent > most:
                problems.append(f"{name}: the server took {sent} bytes (at most {most} expected)")
            if not closed:
                problems.append(f"{name}: the connection stayed open after the answer")
    # A well-behaved client (curl sends `Expect: 100-continue` for a large body) gets the 413 without
    # sending the body at all: the answer comes from the headers, before uvicorn asks for the body.
    big = tmp_path / "big.csv"
    with big.open("wb") as f:
        f.truncate(UPLOAD_LIMIT * 2)
    t0 = time.monotonic()
    curl = subprocess.run(
        ["curl", "-s", "-o", "-", "-w", "\n%{http_code} %{size_upload}",
         "-H", f"Authorization: {headers['Authorization']}",
         "-F", f"file=@{big};filename=big.csv", f"{url}{API}/imports"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    curl_status, curl_sent = curl.stdout.rsplit("\n", 1)[-1].split()
    report("curl upload of 64 MiB (Expect: 100-continue)", answer=curl_status, body_bytes_sent=curl_sent,
           seconds=round(time.monotonic() - t0, 2))  # fmt: skip
    if curl_status != "413" or float(curl_sent) > SLACK:
        problems.append(f"curl: {curl_status}, sent {curl_sent}: {curl.stdout[:200]} {curl.stderr[:200]}")
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        alive = (await http.get("/health/ready")).status_code
        jobs = (await http.get(f"{API}/imports", headers=headers)).json()["items"]
        # The control: a body read to its end keeps the connection open for the next request.
        normal = await http.post(f"{API}/tasks", json={"title": "fine"}, headers=headers)
        assert normal.status_code == 201 and normal.headers.get("connection") != "close", normal.headers
    growth = rss.peak["web"] - baseline
    report("web process", rss_before_mb=round(baseline), rss_peak_mb=round(rss.peak["web"]), ready_after=alive,
           jobs_created=len(jobs))  # fmt: skip
    assert not problems, "\n".join(problems)
    assert growth < WEB_RSS_GROWTH_MB, f"the web process grew by {growth:.0f} MB"
    assert alive == 200 and web.popen.poll() is None
    assert jobs == []  # nothing half-received became a job
