"""One JSON object per log line, carrying the request id (and user id) of whatever caused it."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
user_id_var: ContextVar[str | None] = ContextVar("user_id", default=None)

# LogRecord attributes that are not extra fields of the call.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": os.getpid(),
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        user_id = user_id_var.get()
        if user_id:
            entry["user_id"] = user_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return orjson.dumps(entry, default=str).decode()


_request_log = logging.getLogger("tasklane.request")


def log_request(fields: dict[str, Any]) -> None:
    """The one line per request, written without the logging machinery: a single os.write of a whole
    line spares this hot path a record, the filters, a formatter and the handler's lock, and a write of
    under PIPE_BUF bytes to a pipe is atomic, so lines of concurrent processes never interleave."""
    if not _request_log.isEnabledFor(logging.INFO):
        return
    entry = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "level": "info",
        "logger": "tasklane.request",
        "pid": os.getpid(),
        "message": "request",
        "request_id": request_id_var.get(),
        **fields,
    }
    with contextlib.suppress(OSError):  # stdout gone (closed pipe): never fail a request over its log line
        os.write(1, orjson.dumps(entry, default=str) + b"\n")


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JSONFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's own access log would duplicate our request line (and log raw query strings).
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error", "dramatiq"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("databases").setLevel(logging.WARNING)
    # httpx logs every request's full URL at INFO; a webhook URL can hold a secret. Webhook deliveries
    # log their own line, with scheme and host only.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # Skip per-record work no JSON line shows (source location: a stack walk; thread and process
    # names): the request log is written on every request, so this is on every hot path.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
