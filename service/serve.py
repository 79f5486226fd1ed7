"""The web process (the Procfile's `web`): uvicorn serving create_app, set up from the environment.

Two things the bare `uvicorn` command does not do:
- WEB_MAX_REQUESTS recycles a process after that many requests, plus up to WEB_MAX_REQUESTS_JITTER drawn
  per process so that processes do not restart together (uvicorn's --limit-max-requests[-jitter]).
  uvicorn's supervisor starts a fresh process in its place while the listening socket stays open, so
  no connection is refused; with recycling on, a single process runs under the supervisor too (the
  bare command only starts one for two or more, and its single process would simply exit).
- A stop ends with exit code 0. uvicorn re-raises the SIGTERM it handled once its graceful shutdown is
  done, so a platform would see a process killed by a signal after a clean stop.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Mapping

import uvicorn
from uvicorn.supervisors import Multiprocess

from service.config import ConfigError, get_settings

APP = "service.app:create_app"
STARTUP_FAILURE = 3  # uvicorn's exit code when the app cannot start


def web_config(env: Mapping[str, str] = os.environ) -> uvicorn.Config:
    settings = get_settings()  # a configuration error stops the process before any worker starts
    return uvicorn.Config(
        APP,
        factory=True,
        host=env.get("HOST", "0.0.0.0"),  # noqa: S104 (a container's port is published by the platform)
        port=int(env.get("PORT", "8000")),
        workers=int(env.get("WEB_CONCURRENCY", "1")),
        server_header=False,
        access_log=False,
        proxy_headers=True,
        forwarded_allow_ips=env.get("TRUSTED_PROXIES", ""),
        timeout_graceful_shutdown=int(env.get("GRACEFUL_TIMEOUT", "25")),
        limit_max_requests=settings.web_max_requests or None,
        limit_max_requests_jitter=settings.web_max_requests_jitter,
    )


def _stopped(signum: int, frame: object) -> None:
    """Where uvicorn's re-raised stop signal lands once it has shut down gracefully: nothing left to do."""


def main() -> int:
    try:
        config = web_config()
    except (ConfigError, ValueError) as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 1
    if config.workers > 1 or config.limit_max_requests:
        # The supervisor handles SIGTERM/SIGINT itself: it stops its processes, waits, and returns.
        Multiprocess(config, sockets=[config.bind_socket()]).run()
        return 0
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stopped)
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else STARTUP_FAILURE


if __name__ == "__main__":
    sys.exit(main())
