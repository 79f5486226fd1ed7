"""The API as its clients see it, against real processes (uvicorn + a Dramatiq worker, as the Procfile runs
them, with APP_ENV=development and no SMTP_HOST, so the development inbox is part of the contract too):

- schemathesis runs every check it has, in every phase (examples, coverage, fuzzing, and the stateful
  phase that follows the document's links from a created or listed resource to what can be done with
  it), with an account, a task, a category and a finished import (rows refused, webhook delivered) in
  place, so the `{id}` operations are sent ids that exist as well as ids that do not;
- a client generated with openapi-python-client from the served document, with no warning, runs the
  README's flow: register, read the code at /dev/mail, activate, log in, tasks, an import, its errors.

SCHEMATHESIS_EXAMPLES sets the examples per operation (`make test-all` runs 300); SCHEMATHESIS_SEED
another seed (the default one keeps CI reproducible).
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.processes import BIN, ROOT, Stack, stack_env
from tests.receiver import WebhookReceiver
from tests.support import PASSWORD, wait_until

pytestmark = pytest.mark.slow
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "25"))
SEED = os.environ.get("SCHEMATHESIS_SEED", "14")
METRICS_TOKEN = "metrics-token-for-the-contract-run"
SAMPLE = ROOT / "examples" / "tasks.csv"
CODE = re.compile(r"activation code is (\d{4})")


@dataclass
class Live:
    url: str
    email: str
    bearer: str
    doomed: str  # the access token of an account for DELETE /api/v1/users/me to delete
    ids: dict[str, str]  # what exists: task, category, import


def code_from_dev_mail(http: httpx.Client, address: str) -> str:
    """The activation code of the email to `address` in the development inbox."""

    def code() -> str | None:
        items = http.get("/dev/mail", params={"to": address}).json()["items"]
        return next((match[1] for item in items if (match := CODE.search(item["body"]))), None)

    return wait_until(code, f"an activation email to {address} at /dev/mail")


def signup(http: httpx.Client, address: str) -> str:
    """Register, activate with the code from /dev/mail, log in: the access token."""
    assert http.post("/api/v1/users", json={"email": address, "password": PASSWORD}).status_code == 201
    code = code_from_dev_mail(http, address)
    assert http.post("/api/v1/users/activate", json={"code": code}, auth=(address, PASSWORD)).status_code == 200
    response = http.post("/api/v1/auth/login", json={"email": address, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


@pytest.fixture(scope="module")
def live(database: str, redis_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    redis_client.flushdb()
    receiver = WebhookReceiver().start()
    env = stack_env(APP_ENV="development", SMTP_HOST="", RATE_LIMITS="relaxed", METRICS_TOKEN=METRICS_TOKEN)
    stack = Stack(env, tmp_path_factory.mktemp("contract"))
    try:
        _, url = stack.web()
        stack.worker(processes=1, threads=4)
        email = f"contract-{os.getpid()}@example.com"
        with httpx.Client(base_url=url, timeout=30) as http:
            token = signup(http, email)
            # Made now: the run exhausts even the relaxed login limit of this client address.
            doomed = signup(http, f"doomed-{os.getpid()}@example.com")
            auth = {"Authorization": f"Bearer {token}"}
            task = http.post("/api/v1/tasks", json={"title": "Contract", "category": "Work"}, headers=auth).json()
            [category] = http.get("/api/v1/categories", headers=auth).json()["items"]
            upload = http.post(
                "/api/v1/imports",
                files={"file": ("tasks.csv", SAMPLE.read_bytes(), "text/csv")},
                data={"webhook_url": receiver.url},
                headers=auth,
            )
            assert upload.status_code == 202, upload.text
            job = upload.json()["id"]
            wait_until(
                lambda: http.get(f"/api/v1/imports/{job}", headers=auth).json()["status"] == "completed", "import"
            )
            wait_until(lambda: http.get(f"/api/v1/imports/{job}/deliveries", headers=auth).json()["items"], "webhook")
        yield Live(url, email, token, doomed, {"task": task["id"], "category": category["id"], "import": job})
    finally:
        stack.stop_all()
        receiver.stop()


@pytest.fixture
def fresh_limits(redis_client: Any) -> None:
    """Every test here sends from 127.0.0.1: each starts with that address' whole allowance."""
    keys = list(redis_client.scan_iter(match="tasklane:rl:*"))
    if keys:
        redis_client.delete(*keys)


def _config(live: Live, path: Path, *, bearer: str) -> Path:
    ids = ", ".join(json.dumps(value) for value in live.ids.values())
    basic = {"username": live.email, "password": PASSWORD}
    path.write_text(
        f"""
hooks = "tests.schemathesis_hooks"
[auth.openapi.bearer]
bearer = "{bearer}"
[auth.openapi.basic]
username = {json.dumps(basic["username"])}
password = {json.dumps(basic["password"])}
[auth.openapi.metrics]
bearer = "{METRICS_TOKEN}"
[dictionaries.ids]
values = [{ids}]
# Ids that exist, half of the time, everywhere but on DELETE (which would take them away from the rest
# of the run: the stateful phase deletes what it created itself).
[[operations]]
include-path-regex = "\\\\{{id\\\\}}"
exclude-method = "DELETE"
parameters = {{ "path.id" = {{ dictionary = "ids", probability = 0.5 }} }}
# A page cursor is a signed token only the server makes (like a credential): a made-up one is refused with
# 400, as these operations document. Schema-valid data they may refuse with it, and nothing else.
[[operations]]
include-operation-id = ["get_api_v1_tasks", "get_api_v1_imports", "get_api_v1_imports_id_errors"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]
"""
    )
    return path


def run_schemathesis(live: Live, workdir: Path, *args: str, bearer: str | None = None) -> dict[str, Any]:
    """One `st run` with every check; returns its JSON report, and the checks' outcomes from its events."""
    config = _config(live, workdir / "schemathesis.toml", bearer=bearer or live.bearer)
    command = [
        str(BIN / "st"),
        "--config-file",
        str(config),
        "run",
        f"{live.url}/openapi.json",
        "--checks",
        "all",
        "--seed",
        SEED,
        "--no-color",
        "--report",
        "json,ndjson",
        "--report-dir",
        str(workdir),
        *args,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=1200, check=False)
    (workdir / "output.txt").write_text(done.stdout + done.stderr)
    [json_report] = workdir.glob("*.json")
    result = json.loads(json_report.read_text())
    checks: Counter[tuple[str, str]] = Counter()
    [events] = workdir.glob("*.ndjson")
    for line in events.read_text().splitlines():
        _collect_checks(json.loads(line), checks)
    result["checks"] = checks
    result["output"] = done.stdout + done.stderr
    return result


def _collect_checks(node: Any, into: Counter[tuple[str, str]]) -> None:
    """Every check outcome in an event, wherever the event nests it: {"name": ..., "status": ...}."""
    if isinstance(node, dict):
        if isinstance(node.get("name"), str) and node.get("status") in ("success", "failure", "skip"):
            into[(node["name"], node["status"])] += 1
        for value in node.values():
            _collect_checks(value, into)
    elif isinstance(node, list):
        for value in node:
            _collect_checks(value, into)


def test_schemathesis_finds_no_failure_with_every_check_and_the_stateful_phase(
    live: Live, fresh_limits: None, tmp_path: Path, report
):
    main = tmp_path / "main"
    main.mkdir()
    # Everything but deleting the account every other request acts for; it gets a run of its own below.
    result = run_schemathesis(
        live, main, "-n", str(EXAMPLES), "--exclude-operation-id", "delete_api_v1_users_me", "--exclude-deprecated"
    )
    checks = result["checks"]
    names = sorted({name for name, _ in checks})
    report(
        "schemathesis",
        operations=result["operations"]["tested"],
        cases=result["test_cases"]["generated"],
        phases=",".join(f"{p}:{v['status']}" for p, v in result["phases"].items()),
        seconds=round(result["running_time"], 1),
    )
    for name in names:
        report(name, passed=checks[(name, "success")], failed=checks[(name, "failure")])
    failures = [(f["code"], f["title"], f["operations"]) for f in result["failures"]]
    assert not failures and not result["errors"], result["output"][-20000:]
    assert result["operations"]["tested"] == result["operations"]["selected"] == result["operations"]["total"] - 1
    assert all(phase["status"] in ("success", "skip") for phase in result["phases"].values())
    assert result["phases"]["stateful"]["status"] == "success"
    for check in ("positive_data_acceptance", "negative_data_rejection", "response_headers_conformance",
                  "use_after_free", "ensure_resource_availability", "ignored_auth", "not_a_server_error"):  # fmt: skip
        assert checks[(check, "success")] > 0, f"{check} never ran"

    # DELETE /api/v1/users/me, for an account of its own.
    alone = tmp_path / "delete-me"
    alone.mkdir()
    result = run_schemathesis(
        live, alone, "-n", "5", "--include-operation-id", "delete_api_v1_users_me", "--phases", "coverage,fuzzing",
        bearer=live.doomed,
    )  # fmt: skip
    report("schemathesis DELETE /api/v1/users/me", cases=result["test_cases"]["generated"])
    assert not result["failures"] and not result["errors"], result["output"][-20000:]
    assert result["operations"]["tested"] == 1


def test_a_generated_client_runs_the_readme_flow(live: Live, fresh_limits: None, tmp_path: Path, report):
    document = httpx.get(f"{live.url}/openapi.json").json()
    (tmp_path / "openapi.json").write_text(json.dumps(document))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    generated = subprocess.run(
        [str(BIN / "openapi-python-client"), "generate", "--path", "openapi.json", "--meta", "none",
         "--output-path", "tasklane_client"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    output = generated.stdout + generated.stderr
    assert generated.returncode == 0, output
    assert "warning" not in output.lower() and "error" not in output.lower(), output
    sys.path.insert(0, str(tmp_path))
    try:
        steps = _run_flow(live.url, f"client-{os.getpid()}@example.com")
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == "tasklane_client" or m.startswith("tasklane_client.")]:
            del sys.modules[name]
    flow = [step for i, step in enumerate(steps) if i == 0 or step != steps[i - 1]]  # polls once each
    report("generated client", calls=len(steps), flow=" -> ".join(flow))


def _run_flow(url: str, address: str) -> list[str]:
    """register -> /dev/mail -> activate -> login -> tasks -> import -> errors, with the generated client."""
    client_module = importlib.import_module("tasklane_client")
    api = importlib.import_module("tasklane_client.api")
    models = importlib.import_module("tasklane_client.models")
    types = importlib.import_module("tasklane_client.types")

    def call(module: str, **kwargs: Any) -> Any:
        tag, name = module.split(".")
        response = importlib.import_module(f"{api.__name__}.{tag}.{name}").sync_detailed(**kwargs)
        steps.append(f"{name}:{response.status_code.value}")
        assert 200 <= response.status_code.value < 300, (name, response.status_code, response.content)
        return response.parsed

    steps: list[str] = []
    anonymous = client_module.Client(base_url=url, raise_on_unexpected_status=True)
    user = call(
        "accounts.post_api_v1_users", client=anonymous, body=models.RegisterIn(email=address, password=PASSWORD)
    )
    assert user.email == address and not user.is_active

    def emailed_code() -> str | None:
        inbox = call("development.get_dev_mail", client=anonymous, to=address)
        return next((match[1] for m in inbox.items if (match := CODE.search(m.body))), None)

    code = wait_until(emailed_code, "the activation email, through the generated client")
    basic = client_module.AuthenticatedClient(
        base_url=url, prefix="Basic", token=base64.b64encode(f"{address}:{PASSWORD}".encode()).decode()
    )
    assert call("accounts.post_api_v1_users_activate", client=basic, body=models.ActivateIn(code=code)).is_active
    tokens = call(
        "auth.post_api_v1_auth_login", client=anonymous, body=models.LoginIn(email=address, password=PASSWORD)
    )
    me = client_module.AuthenticatedClient(base_url=url, token=tokens.access_token)
    task = call("tasks.post_api_v1_tasks", client=me, body=models.TaskIn(title="Generated", priority=2))
    assert call("tasks.get_api_v1_tasks_id", client=me, id=task.id).title == "Generated"
    page = call("tasks.get_api_v1_tasks", client=me, overdue=False, limit=10)
    assert [t.id for t in page.items] == [task.id]
    upload = models.PostApiV1ImportsBody(
        file=types.File(payload=SAMPLE.open("rb"), file_name="tasks.csv", mime_type="text/csv")
    )
    job = call("imports.post_api_v1_imports", client=me, body=upload)
    done = wait_until(
        lambda: (j := call("imports.get_api_v1_imports_id", client=me, id=job.id)).status == "completed" and j,
        "the generated client's import",
    )
    assert (done.rows_imported, done.rows_failed) == (7, 3)
    errors = call("imports.get_api_v1_imports_id_errors", client=me, id=job.id)
    assert sorted(e.row for e in errors.items) == [7, 8, 9]
    csv = importlib.import_module(f"{api.__name__}.imports.get_api_v1_imports_id_errors_csv").sync_detailed(
        client=me, id=job.id
    )
    steps.append(f"get_api_v1_imports_id_errors_csv:{csv.status_code.value}")
    assert csv.status_code.value == 200 and csv.content.count(b"\n") == 4
    return steps
