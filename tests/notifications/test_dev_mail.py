"""The first hour: with APP_ENV=development and no SMTP_HOST, emails are printed (one line each) and kept
for GET /dev/mail; RATE_LIMITS=relaxed keeps a person trying things out from being locked out. Neither
exists in any other environment."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator

import pytest

from service.config import ConfigError, Settings
from service.notifications.emails import LogMailer
from tests.support import AppClient, assert_problem, db_value, register, send_email


@pytest.fixture
async def dev(settings: Settings, database: str, clean: None) -> AsyncIterator[AppClient]:
    development = dataclasses.replace(settings, app_env="development", smtp_host="", rate_limits="relaxed")
    async with AppClient.start(development) as app:
        yield app


async def _print_pending(app: AppClient) -> None:
    ids = await db_value(app.ctx, "SELECT array_agg(id ORDER BY created_at) FROM emails WHERE status = 'pending'")
    for email_id in ids or []:
        assert await send_email(app.ctx, email_id, LogMailer(app.ctx.settings)) == "printed"


async def test_printed_emails_are_listed_newest_first_filtered_by_address(dev, caplog):
    for address in ("ada@example.com", "bob&co@example.com"):
        assert (await register(dev.http, address)).status_code == 201
    with caplog.at_level(logging.INFO, logger="tasklane.emails"):
        await _print_pending(dev)
    # One line per email, saying what happened to it, its text included
    lines = [r for r in caplog.records if r.name == "tasklane.emails"]
    assert [r.getMessage() for r in lines] == ["email printed, not sent (no SMTP_HOST)"] * 2
    assert "activation code is" in lines[0].body

    everything = (await dev.http.get("/dev/mail")).json()["items"]
    assert [m["to"] for m in everything] == ["bob&co@example.com", "ada@example.com"]
    assert {"id", "to", "subject", "body", "created_at"} <= everything[0].keys()
    mine = (await dev.http.get("/dev/mail", params={"to": "ADA@example.com"})).json()["items"]
    assert [m["to"] for m in mine] == ["ada@example.com"] and "activation code is" in mine[0]["body"]
    assert (await dev.http.get("/dev/mail", params={"to": "nobody@example.com"})).json() == {"items": []}

    page = await dev.http.get("/dev/mail", headers={"Accept": "text/html,application/xhtml+xml"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "bob&amp;co@example.com" in page.text and "bob&co@" not in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert_problem(await dev.http.get("/dev/mail", params={"sender": "x"}), 422)


@pytest.mark.parametrize(
    "environment",
    [{"app_env": "test", "smtp_host": ""}, {"app_env": "production", "smtp_host": ""},
     {"app_env": "development", "smtp_host": "mail.example.com"}],
)  # fmt: skip
async def test_there_is_no_dev_mail_anywhere_else(settings, database, clean, environment):
    async with AppClient.start(dataclasses.replace(settings, **environment)) as app:
        assert_problem(await app.http.get("/dev/mail"), 404)


async def test_relaxed_rate_limits_let_a_developer_register_again_and_again(dev):
    for n in range(8):  # the standard limit is 5 an hour per address
        response = await register(dev.http, f"try{n}@example.com")
        assert response.status_code == 201, response.text
    assert response.headers["RateLimit-Policy"] == '"register";q=100;w=3600'


def test_relaxed_rate_limits_are_for_development_only():
    base = {"APP_ENV": "development"}
    assert Settings.from_env(base).rate_limit_factor == 1
    assert Settings.from_env({**base, "RATE_LIMITS": "relaxed"}).rate_limit_factor == 20
    with pytest.raises(ConfigError, match="development only"):
        Settings.from_env({"APP_ENV": "test", "RATE_LIMITS": "relaxed"})
    production = {
        "APP_ENV": "production",
        "SECRET_KEY": "s" * 40,
        "WEBHOOK_SECRET": "whsec_dGVzdC13ZWJob29rLXNlY3JldC0wMTIzNDU2Nzg5YWI=",
        "RATE_LIMITS": "relaxed",
    }
    with pytest.raises(ConfigError, match="development only"):
        Settings.from_env(production)
    with pytest.raises(ConfigError, match="standard or relaxed"):
        Settings.from_env({**base, "RATE_LIMITS": "off"})
