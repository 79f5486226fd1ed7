"""What the processes say, as an operator reads it: every line of every process is one JSON object (the
uvicorn supervisor's and the Dramatiq master's included), each email gets one truthful line, and a webhook
URL is logged as scheme and host only (its path and query can hold a secret)."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.processes import Stack
from tests.support import PASSWORD, wait_until

SECRET = "s3cret-in-the-query"
DEVELOPMENT = {"APP_ENV": "development", "SMTP_HOST": ""}


@pytest.mark.slow
def test_every_line_is_json_each_email_has_one_line_and_webhook_urls_are_cut(stack: Stack, webhook_receiver):
    web, url = stack.web(workers=2, extra_env=DEVELOPMENT)
    worker = stack.worker(processes=2, threads=2, extra_env=DEVELOPMENT)
    receiver = webhook_receiver()
    address = "logs@example.com"
    with httpx.Client(base_url=url, timeout=30) as http:
        assert http.post("/api/v1/users", json={"email": address, "password": PASSWORD}).status_code == 201
        mail = wait_until(lambda: http.get("/dev/mail", params={"to": address}).json()["items"], "the activation email")
        code = re.search(r"activation code is (\d{4})", mail[0]["body"]).group(1)
        assert http.post("/api/v1/users/activate", json={"code": code}, auth=(address, PASSWORD)).status_code == 200
        token = http.post("/api/v1/auth/login", json={"email": address, "password": PASSWORD}).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        upload = http.post(
            "/api/v1/imports",
            files={"file": ("t.csv", b"title\nLogged\n", "text/csv")},
            data={"webhook_url": f"{receiver.url}?token={SECRET}"},
            headers=auth,
        )
        assert upload.status_code == 202
        wait_until(lambda: receiver.requests, "the webhook")
        job = upload.json()["id"]
        wait_until(lambda: http.get(f"/api/v1/imports/{job}/deliveries", headers=auth).json()["items"], "its record")
    stack.stop_all()

    for process in (web, worker):
        lines = process.logs()
        assert lines, process.name
        assert [line for line in lines if "raw" in line] == [], f"{process.name} wrote lines that are not JSON"
        assert SECRET not in process.text()
    web_lines, worker_lines = web.logs(), worker.logs()
    assert any(line["message"].startswith("Started parent process") for line in web_lines)  # uvicorn's supervisor
    assert any(line["logger"] == "dramatiq.MainProcess" and "booting up" in line["message"] for line in worker_lines)

    emails = [line for line in worker_lines if line["logger"] == "tasklane.emails"]
    activation = [line for line in emails if line.get("to") == address and line.get("kind") == "activation"]
    assert [line["message"] for line in activation] == ["email printed, not sent (no SMTP_HOST)"]
    assert f"activation code is {code}" in activation[0]["body"]
    assert not [line for line in emails if "not sent" not in line["message"]], "no email was sent anywhere"

    [delivered] = [line for line in worker_lines if line["message"] == "webhook delivered"]
    assert delivered["endpoint"] == f"http://127.0.0.1:{receiver.port}"
    assert delivered["request_id"] == upload.headers["x-request-id"]
    assert not [line for line in worker_lines if line["logger"].startswith(("httpx", "httpcore"))]
