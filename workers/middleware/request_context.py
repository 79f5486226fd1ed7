"""Carries the X-Request-ID of the request that caused a message into the worker's log lines.

Async actors see it too: their coroutine is scheduled from the worker thread and copies its context.
"""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.middleware import Middleware

from service.logs import request_id_var


class RequestContext(Middleware):
    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message[Any]) -> None:
        request_id_var.set(message.options.get("request_id"))

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: dramatiq.Message[Any],
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        request_id_var.set(None)

    after_skip_message = after_process_message
