"""Settings read from the environment: what each name means, what production refuses, what is documented."""

from __future__ import annotations

import ipaddress

import pytest

from service.config import ConfigError, Settings

WHSEC = "whsec_" + "QUJD" * 8  # base64 of 24 bytes


def test_production_refuses_to_start_without_a_secret_key():
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        Settings.from_env({"APP_ENV": "production", "WEBHOOK_SECRET": WHSEC})
    with pytest.raises(ConfigError, match="32"):
        Settings.from_env({"APP_ENV": "production", "SECRET_KEY": "short", "WEBHOOK_SECRET": WHSEC})
    s = Settings.from_env({"APP_ENV": "production", "SECRET_KEY": "k" * 40, "WEBHOOK_SECRET": WHSEC})
    assert s.secret_key == "k" * 40


def test_production_refuses_to_start_without_a_valid_webhook_secret():
    env = {"APP_ENV": "production", "SECRET_KEY": "k" * 40}
    with pytest.raises(ConfigError, match="WEBHOOK_SECRET must be set"):
        Settings.from_env(env)
    for bad, why in [
        ("QUJD" * 8, "whsec_"),
        ("whsec_not base64!", "base64"),
        ("whsec_QUJD", "24 to 64 bytes"),
        ("whsec_" + "QUJD" * 30, "24 to 64 bytes"),
    ]:
        with pytest.raises(ConfigError, match=why):
            Settings.from_env({**env, "WEBHOOK_SECRET": bad})
        # A malformed secret is refused in development too: it would only fail later, at delivery
        with pytest.raises(ConfigError, match=why):
            Settings.from_env({"WEBHOOK_SECRET": bad})
    assert Settings.from_env({**env, "WEBHOOK_SECRET": WHSEC}).webhook_secret == WHSEC
    # Development works without one; the secret never shows in repr
    dev = Settings.from_env({})
    assert dev.webhook_secret.startswith("whsec_")
    assert dev.webhook_secret not in repr(dev)


def test_webhook_settings_have_spec_defaults_and_read_their_names():
    s = Settings.from_env({})
    assert (s.webhook_timeout, s.webhook_retry_base, s.webhook_retry_after_cap, s.webhook_allow_private) == (
        5.0,
        2.0,
        300.0,
        False,
    )
    s = Settings.from_env(
        {
            "WEBHOOK_TIMEOUT": "2.5",
            "WEBHOOK_RETRY_BASE": "0.5",
            "WEBHOOK_RETRY_AFTER_CAP": "60",
            "WEBHOOK_ALLOW_PRIVATE": "true",
        }
    )
    assert (s.webhook_timeout, s.webhook_retry_base, s.webhook_retry_after_cap, s.webhook_allow_private) == (
        2.5,
        0.5,
        60.0,
        True,
    )
    for name in ("WEBHOOK_TIMEOUT", "WEBHOOK_RETRY_BASE", "WEBHOOK_RETRY_AFTER_CAP"):
        with pytest.raises(ConfigError, match=name):
            Settings.from_env({name: "0"})


def test_development_has_working_local_defaults():
    s = Settings.from_env({})
    assert s.app_env == "development"
    assert s.database_url.startswith("postgresql://")
    assert s.redis_url.startswith("redis://")
    assert s.bcrypt_rounds == 12
    assert s.smtp_host == ""


def test_settings_read_the_documented_names():
    s = Settings.from_env(
        {
            "SMTP_HOST": "mail",
            "SMTP_PORT": "2525",
            "SMTP_USER": "u",
            "SMTP_PASSWORD": "pw-0xdeadbeef",
            "SMTP_STARTTLS": "true",
            "EMAIL_FROM": "x@y.z",
            "PUBLIC_BASE_URL": "https://t.example/",
            "BCRYPT_ROUNDS": "10",
            "TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.1",
        }
    )
    assert (s.smtp_host, s.smtp_port, s.smtp_user, s.smtp_password, s.smtp_starttls) == (
        "mail",
        2525,
        "u",
        "pw-0xdeadbeef",
        True,
    )
    assert s.public_base_url == "https://t.example"
    assert s.bcrypt_rounds == 10
    assert ipaddress.ip_address("10.1.2.3") in s.trusted_proxies[0]
    # Secrets stay out of repr, so logging the settings never leaks them
    assert "pw-0xdeadbeef" not in repr(s)
    assert s.secret_key not in repr(s)


def test_every_env_name_is_documented_in_env_example():
    from pathlib import Path

    documented = {
        line.split("=", 1)[0]
        for line in (Path(__file__).parents[2] / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    for name in [
        "DATABASE_URL",
        "REDIS_URL",
        "SECRET_KEY",
        "SMTP_HOST",
        "SMTP_PORT",
        "SMTP_USER",
        "SMTP_PASSWORD",
        "SMTP_STARTTLS",
        "EMAIL_FROM",
        "PUBLIC_BASE_URL",
        "BCRYPT_ROUNDS",
        "TRUSTED_PROXIES",
        "WEBHOOK_SECRET",
        "WEBHOOK_TIMEOUT",
        "WEBHOOK_RETRY_BASE",
        "WEBHOOK_RETRY_AFTER_CAP",
        "WEBHOOK_ALLOW_PRIVATE",
        "METRICS_ENABLED",
        "METRICS_TOKEN",
        "METRICS_FLUSH_INTERVAL",
    ]:
        assert name in documented


def test_metrics_settings():
    assert Settings.from_env({}).metrics_enabled is True
    assert Settings.from_env({}).metrics_token == ""
    s = Settings.from_env(
        {"METRICS_ENABLED": "false", "METRICS_TOKEN": "tok-0xfeedface", "METRICS_FLUSH_INTERVAL": "0.5"}
    )
    assert (s.metrics_enabled, s.metrics_token, s.metrics_flush_interval) == (False, "tok-0xfeedface", 0.5)
    assert "tok-0xfeedface" not in repr(s)
