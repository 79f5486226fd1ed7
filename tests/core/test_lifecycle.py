"""Pure pieces of the process lifecycle: broker settings, queue names, what preflight prints, the web setup."""

from __future__ import annotations

import pytest

from service.config import ConfigError, Settings
from service.messages import Redis, make_broker, queue_of
from service.preflight import shown
from service.serve import web_config

BASE = {"APP_ENV": "test"}


def test_broker_url_must_name_a_broker_dramatiq_speaks():
    assert Settings.from_env({**BASE, "BROKER_URL": "amqp://u:p@mq:5672/v"}).broker_url == "amqp://u:p@mq:5672/v"
    assert Settings.from_env(BASE).broker_url == ""  # Redis at REDIS_URL
    with pytest.raises(ConfigError, match="BROKER_URL"):
        Settings.from_env({**BASE, "BROKER_URL": "kafka://mq:9092"})


@pytest.mark.parametrize("name", ["WEB_MAX_REQUESTS", "WEB_MAX_REQUESTS_JITTER", "WORKER_NOTIFICATION_THREADS"])
def test_counts_refuse_negative_and_non_numbers(name):
    for bad in ("-1", "ten"):
        with pytest.raises(ConfigError, match=name):
            Settings.from_env({**BASE, name: bad})


def test_queue_names_carry_the_prefix():
    settings = Settings.from_env({**BASE, "BROKER_QUEUE_PREFIX": "staging."})
    assert queue_of("imports.process", settings) == "staging.imports"
    assert queue_of("emails.send", Settings.from_env(BASE)) == "emails"


def test_a_consumer_takes_its_queue_s_own_prefetch():
    broker = make_broker(Settings.from_env(BASE))
    assert isinstance(broker, Redis)
    broker.prefetch = {"imports": 2}
    assert broker.consume("imports", prefetch=8).prefetch == 2
    assert broker.consume("emails", prefetch=8).prefetch == 8  # not listed: what the worker asked
    broker.client.close()


def test_rabbitmq_urls_make_a_rabbitmq_broker_without_connecting():
    broker = make_broker(Settings.from_env({**BASE, "BROKER_URL": "amqp://guest:guest@127.0.0.1:1/%2F"}))
    assert type(broker).__name__ == "RabbitMQ" and broker.confirm_delivery
    assert broker.parameters.blocked_connection_timeout == 30
    cluster = "amqp://a:1/%2F;amqp://b:1/%2F?blocked_connection_timeout=5"
    broker = make_broker(Settings.from_env({**BASE, "BROKER_URL": cluster}))
    assert [p.blocked_connection_timeout for p in broker.parameters] == [30, 5]


def test_printed_urls_keep_no_credentials():
    assert shown("rediss://:s3cret@redis.example:6380/0?ssl_cert_reqs=none") == "rediss://redis.example:6380/0"
    assert shown("amqp://user:pw@mq/vhost") == "amqp://mq/vhost"


def test_the_web_command_reads_the_process_model_from_the_environment(monkeypatch):
    monkeypatch.setenv("WEB_MAX_REQUESTS", "1000")
    monkeypatch.setenv("WEB_MAX_REQUESTS_JITTER", "100")
    from service.config import get_settings

    get_settings.cache_clear()
    try:
        env = {"HOST": "127.0.0.1", "PORT": "8123", "WEB_CONCURRENCY": "3", "GRACEFUL_TIMEOUT": "7"}
        config = web_config(env)
    finally:
        get_settings.cache_clear()
    assert (config.host, config.port, config.workers, config.timeout_graceful_shutdown) == ("127.0.0.1", 8123, 3, 7)
    assert (config.limit_max_requests, config.limit_max_requests_jitter) == (1000, 100)
    assert not config.server_header and not config.access_log and config.proxy_headers


def test_recycling_is_off_by_default():
    assert Settings.from_env(BASE).web_max_requests == 0
