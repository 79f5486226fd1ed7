"""Settings in the shapes platforms hand out: DATABASE_URL with `postgres://` and `?sslmode=`, and
UPLOAD_STORE_URL. (The end-to-end proof that a whole stack runs on such a URL is in tests/e2e.)"""

from __future__ import annotations

import os

import pytest

from service.config import ConfigError, Settings
from service.db import Database
from service.storage import LocalFolderStore, ObjectStore, open_store

BASE = {"APP_ENV": "test"}


def settings(**env: str) -> Settings:
    return Settings.from_env({**BASE, **env})


def test_a_postgres_scheme_url_is_taken_as_postgresql_and_keeps_its_sslmode():
    url = settings(DATABASE_URL="postgres://u:p@db.example.com:5432/app?sslmode=require").database_url
    assert url == "postgresql://u:p@db.example.com:5432/app?sslmode=require"


@pytest.mark.parametrize("url", ["mysql://u@h/db", "db.example.com/app", ""])
def test_a_database_url_that_is_not_postgresql_is_refused_at_start(url):
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        settings(DATABASE_URL=url)


def test_the_upload_store_defaults_to_the_upload_folder():
    chosen = settings(UPLOAD_DIR="var/somewhere")
    assert chosen.upload_store_url == "file://" + os.path.abspath("var/somewhere")
    store = open_store(chosen)
    assert isinstance(store, LocalFolderStore) and str(store.root) == os.path.abspath("var/somewhere")


def test_an_s3_url_gives_an_object_store():
    chosen = settings(UPLOAD_STORE_URL="s3://my-bucket/tasklane/uploads/", S3_ENDPOINT_URL="http://127.0.0.1:9000")
    assert chosen.upload_store_url == "s3://my-bucket/tasklane/uploads"
    assert isinstance(open_store(chosen), ObjectStore)


@pytest.mark.parametrize("url", ["s3://", "s3:///prefix", "ftp://host/x", "file://relative/folder", "gs://b"])
def test_an_upload_store_url_tasklane_cannot_use_is_refused_at_start(url):
    with pytest.raises(ConfigError, match="UPLOAD_STORE_URL"):
        settings(UPLOAD_STORE_URL=url)


def test_secrets_of_the_store_never_show_in_the_settings_repr():
    chosen = settings(AWS_SECRET_ACCESS_KEY="very-secret-key", AWS_SESSION_TOKEN="very-secret-token")
    assert "very-secret" not in repr(chosen)


async def test_sslmode_require_is_honoured_not_dropped(database):
    # The test server speaks no TLS: with sslmode=require the pool must refuse to talk to it in clear
    # text (`databases` alone passed the mode to nobody and connected anyway).
    db = Database(database + "?sslmode=require", min_size=0, max_size=1)
    await db.connect()
    try:
        with pytest.raises(ConnectionError, match="SSL"):
            async with db.connection() as conn:
                await conn.fetchval("SELECT 1")
    finally:
        await db.disconnect()
    db = Database(database.replace("postgresql://", "postgres://") + "?sslmode=disable", min_size=0, max_size=1)
    await db.connect()
    try:
        async with db.connection() as conn:
            assert await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") is False
    finally:
        await db.disconnect()
