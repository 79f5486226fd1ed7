"""scripts/walkthrough.sh, the README's walk-through as a script, runs against real processes started as
`make run` starts them (APP_ENV=development, no SMTP_HOST, relaxed rate limits) and succeeds; so a new
user's first hour works as written, and CI says so."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.processes import ROOT, Stack

MAKE_RUN = {"APP_ENV": "development", "SMTP_HOST": "", "RATE_LIMITS": "relaxed"}


def walkthrough(url: str) -> subprocess.CompletedProcess[str]:
    script = ROOT / "scripts" / "walkthrough.sh"
    env = {**os.environ, "BASE_URL": url}
    return subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.slow
def test_the_walkthrough_script_runs_end_to_end(stack: Stack):
    _, url = stack.web(extra_env=MAKE_RUN)
    stack.worker(processes=1, threads=2, extra_env=MAKE_RUN)
    done = walkthrough(url)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Walk-through complete." in output
    assert "rows imported: 7, failed: 3" in output
    assert "POST /api/v1/imports -> 202" in output and "DELETE /api/v1/users/me -> 204" in output


@pytest.mark.slow
def test_the_walkthrough_script_stops_at_the_first_unexpected_answer(stack: Stack):
    # A service without the development inbox (SMTP_HOST set): step 2 cannot find the code.
    _, url = stack.web()
    done = walkthrough(url)
    assert done.returncode != 0
    assert "expected 200 from GET /dev/mail" in done.stderr
    assert "Walk-through complete." not in done.stdout
