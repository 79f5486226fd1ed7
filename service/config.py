"""Settings, read once from the environment; `.env.example` documents every name."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
from dataclasses import dataclass, field
from functools import cache
from urllib.parse import urlsplit, urlunsplit

DEVELOPMENT_SECRET = "development-only-secret-key-change-me-0123456789"  # noqa: S105 (dev only)  # nosec B105
# base64 of b"tasklane-development-webhook-key": development and tests only.
DEVELOPMENT_WEBHOOK_SECRET = "whsec_dGFza2xhbmUtZGV2ZWxvcG1lbnQtd2ViaG9vay1rZXk="  # noqa: S105 (dev only)  # nosec B105
WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)  # nosec B105
# RATE_LIMITS=relaxed (development only) multiplies every rate limit by this, so that a person trying the
# API out (a few mistyped registrations, a walk-through run again and again) is not locked out for an hour.
RELAXED_FACTOR = 20
BROKER_SCHEMES = ("amqp", "amqps", "redis", "rediss")


class ConfigError(Exception):
    pass


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _positive(name: str, value: str) -> float:
    number = float(value)
    if not number > 0:
        raise ConfigError(f"{name} must be a positive number of seconds")
    return number


def _count(name: str, value: str, minimum: int) -> int:
    try:
        number = int(value or 0)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number") from None
    if number < minimum:
        raise ConfigError(f"{name} must be at least {minimum}")
    return number


def _networks(value: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in value.split(",") if part.strip())


def database_url(value: str) -> str:
    """DATABASE_URL as platforms hand it out: `postgres://` is the same as `postgresql://` (Heroku, Render and
    Fly still write the old scheme); `?sslmode=` is kept, for `service.db` to pass on to asyncpg."""
    parts = urlsplit(value.strip())
    if parts.scheme == "postgres":
        parts = parts._replace(scheme="postgresql")
    if parts.scheme != "postgresql":
        raise ConfigError("DATABASE_URL must be a postgresql:// (or postgres://) URL")
    return urlunsplit(parts)


def upload_store_url(value: str, upload_dir: str) -> str:
    """UPLOAD_STORE_URL, checked: `s3://bucket[/prefix]`, or `file:///folder` (empty: UPLOAD_DIR, as a URL)."""
    value = value.strip() or "file://" + os.path.abspath(upload_dir)
    parts = urlsplit(value)
    if parts.scheme == "s3" and parts.netloc:
        return value.rstrip("/")
    if parts.scheme == "file" and not parts.netloc and parts.path.startswith("/"):
        return value
    raise ConfigError("UPLOAD_STORE_URL must be s3://bucket[/prefix] or file:///absolute/folder")


def webhook_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: `whsec_` followed by base64 of 24 to 64 random bytes."""
    if not secret.startswith(WEBHOOK_SECRET_PREFIX):
        raise ValueError("WEBHOOK_SECRET must start with whsec_")
    encoded = secret[len(WEBHOOK_SECRET_PREFIX) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("WEBHOOK_SECRET must be whsec_ followed by base64") from None
    if not 24 <= len(key) <= 64:
        raise ValueError(f"WEBHOOK_SECRET must encode 24 to 64 bytes, not {len(key)}")
    return key


@dataclass(frozen=True)
class Settings:
    app_env: str = "development"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/tasklane"
    database_pool_min: int = 0
    database_pool_max: int = 10
    redis_url: str = "redis://127.0.0.1:6379/0"
    broker_url: str = ""  # empty: Dramatiq on Redis at redis_url; amqp(s)://: on RabbitMQ
    broker_queue_prefix: str = ""
    secret_key: str = field(default=DEVELOPMENT_SECRET, repr=False)
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_user: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_starttls: bool = False
    smtp_timeout: float = 10.0
    email_from: str = "tasklane <no-reply@tasklane.localhost>"
    public_base_url: str = "http://127.0.0.1:8000"
    bcrypt_rounds: int = 12
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    access_token_ttl: int = 15 * 60
    refresh_token_ttl: int = 14 * 24 * 3600
    activation_code_ttl: int = 60
    password_reset_ttl: int = 3600
    max_json_bytes: int = 1024 * 1024
    log_level: str = "INFO"
    relay_interval: float = 5.0
    relay_grace: float = 30.0
    broker_heartbeat_timeout_ms: int = 60_000
    webhook_secret: str = field(default=DEVELOPMENT_WEBHOOK_SECRET, repr=False)
    webhook_timeout: float = 5.0
    webhook_retry_base: float = 2.0
    webhook_retry_after_cap: float = 300.0
    webhook_allow_private: bool = False
    metrics_enabled: bool = True
    metrics_token: str = field(default="", repr=False)
    metrics_flush_interval: float = 1.0
    upload_dir: str = "var/uploads"
    upload_store_url: str = ""  # filled in from UPLOAD_DIR by from_env when unset
    s3_endpoint_url: str = ""
    aws_access_key_id: str = ""
    aws_secret_access_key: str = field(default="", repr=False)
    aws_session_token: str = field(default="", repr=False)
    aws_region: str = ""
    upload_store_retry_for: float = 900.0
    max_upload_bytes: int = 500 * 1024 * 1024
    upload_retention: int = 0
    import_chunk_rows: int = 10_000
    import_stale_after: int = 120
    rate_limits: str = "standard"
    worker_notification_threads: int = 4
    web_max_requests: int = 0
    web_max_requests_jitter: int = 0

    @property
    def is_development(self) -> bool:
        return self.app_env in {"development", "test"}

    @property
    def dev_inbox(self) -> bool:
        """Development without SMTP_HOST: emails are printed and kept for GET /dev/mail."""
        return self.app_env == "development" and not self.smtp_host

    @property
    def rate_limit_factor(self) -> int:
        return RELAXED_FACTOR if self.rate_limits == "relaxed" else 1

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        app_env = env.get("APP_ENV", cls.app_env).strip().lower()
        secret = env.get("SECRET_KEY", "")
        if not secret:
            if app_env not in {"development", "test"}:
                raise ConfigError(f"SECRET_KEY must be set when APP_ENV={app_env}")
            secret = DEVELOPMENT_SECRET
        elif len(secret) < 32:
            raise ConfigError("SECRET_KEY must be at least 32 characters long")
        webhook_secret = env.get("WEBHOOK_SECRET", "")
        if not webhook_secret:
            if app_env not in {"development", "test"}:
                raise ConfigError(f"WEBHOOK_SECRET must be set when APP_ENV={app_env}")
            webhook_secret = DEVELOPMENT_WEBHOOK_SECRET
        try:
            webhook_key(webhook_secret)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        rate_limits = env.get("RATE_LIMITS", cls.rate_limits).strip().lower() or cls.rate_limits
        if rate_limits not in {"standard", "relaxed"}:
            raise ConfigError("RATE_LIMITS must be standard or relaxed")
        if rate_limits == "relaxed" and app_env != "development":
            raise ConfigError(f"RATE_LIMITS=relaxed is for development only, not APP_ENV={app_env}")

        def get(name: str, default: object) -> str:
            return env.get(name, str(default))

        upload_dir = get("UPLOAD_DIR", cls.upload_dir)
        broker_url = get("BROKER_URL", cls.broker_url).strip()
        if broker_url and broker_url.partition("://")[0].lower() not in BROKER_SCHEMES:
            raise ConfigError(f"BROKER_URL must start with one of {', '.join(s + '://' for s in BROKER_SCHEMES)}")

        return cls(
            app_env=app_env,
            database_url=database_url(get("DATABASE_URL", cls.database_url)),
            database_pool_min=int(get("DATABASE_POOL_MIN", cls.database_pool_min)),
            database_pool_max=int(get("DATABASE_POOL_MAX", cls.database_pool_max)),
            redis_url=get("REDIS_URL", cls.redis_url),
            broker_url=broker_url,
            broker_queue_prefix=get("BROKER_QUEUE_PREFIX", cls.broker_queue_prefix),
            secret_key=secret,
            smtp_host=get("SMTP_HOST", cls.smtp_host),
            smtp_port=int(get("SMTP_PORT", cls.smtp_port)),
            smtp_user=get("SMTP_USER", cls.smtp_user),
            smtp_password=get("SMTP_PASSWORD", cls.smtp_password),
            smtp_starttls=_bool(get("SMTP_STARTTLS", cls.smtp_starttls)),
            smtp_timeout=float(get("SMTP_TIMEOUT", cls.smtp_timeout)),
            email_from=get("EMAIL_FROM", cls.email_from),
            public_base_url=get("PUBLIC_BASE_URL", cls.public_base_url).rstrip("/"),
            bcrypt_rounds=int(get("BCRYPT_ROUNDS", cls.bcrypt_rounds)),
            trusted_proxies=_networks(get("TRUSTED_PROXIES", "")),
            max_json_bytes=int(get("MAX_JSON_BYTES", cls.max_json_bytes)),
            log_level=get("LOG_LEVEL", cls.log_level).upper(),
            relay_interval=float(get("RELAY_INTERVAL", cls.relay_interval)),
            relay_grace=float(get("RELAY_GRACE", cls.relay_grace)),
            broker_heartbeat_timeout_ms=int(get("BROKER_HEARTBEAT_TIMEOUT_MS", cls.broker_heartbeat_timeout_ms)),
            webhook_secret=webhook_secret,
            webhook_timeout=_positive("WEBHOOK_TIMEOUT", get("WEBHOOK_TIMEOUT", cls.webhook_timeout)),
            webhook_retry_base=_positive("WEBHOOK_RETRY_BASE", get("WEBHOOK_RETRY_BASE", cls.webhook_retry_base)),
            webhook_retry_after_cap=_positive(
                "WEBHOOK_RETRY_AFTER_CAP", get("WEBHOOK_RETRY_AFTER_CAP", cls.webhook_retry_after_cap)
            ),
            webhook_allow_private=_bool(get("WEBHOOK_ALLOW_PRIVATE", cls.webhook_allow_private)),
            metrics_enabled=_bool(get("METRICS_ENABLED", cls.metrics_enabled)),
            metrics_token=get("METRICS_TOKEN", cls.metrics_token),
            metrics_flush_interval=float(get("METRICS_FLUSH_INTERVAL", cls.metrics_flush_interval)),
            upload_dir=upload_dir,
            upload_store_url=upload_store_url(get("UPLOAD_STORE_URL", ""), upload_dir),
            s3_endpoint_url=get("S3_ENDPOINT_URL", cls.s3_endpoint_url).strip(),
            aws_access_key_id=get("AWS_ACCESS_KEY_ID", cls.aws_access_key_id),
            aws_secret_access_key=get("AWS_SECRET_ACCESS_KEY", cls.aws_secret_access_key),
            aws_session_token=get("AWS_SESSION_TOKEN", cls.aws_session_token),
            aws_region=get("AWS_REGION", cls.aws_region),
            upload_store_retry_for=_positive(
                "UPLOAD_STORE_RETRY_FOR", get("UPLOAD_STORE_RETRY_FOR", cls.upload_store_retry_for)
            ),
            max_upload_bytes=int(get("MAX_UPLOAD_BYTES", cls.max_upload_bytes)),
            upload_retention=int(get("UPLOAD_RETENTION", cls.upload_retention)),
            import_chunk_rows=int(get("IMPORT_CHUNK_ROWS", cls.import_chunk_rows)),
            import_stale_after=int(get("IMPORT_STALE_AFTER", cls.import_stale_after)),
            rate_limits=rate_limits,
            worker_notification_threads=_count(
                "WORKER_NOTIFICATION_THREADS", get("WORKER_NOTIFICATION_THREADS", cls.worker_notification_threads), 1
            ),
            web_max_requests=_count("WEB_MAX_REQUESTS", get("WEB_MAX_REQUESTS", cls.web_max_requests), 0),
            web_max_requests_jitter=_count(
                "WEB_MAX_REQUESTS_JITTER", get("WEB_MAX_REQUESTS_JITTER", cls.web_max_requests_jitter), 0
            ),
        )


@cache
def get_settings() -> Settings:
    return Settings.from_env()
