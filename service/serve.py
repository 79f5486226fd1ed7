"""The web process (the Procfile's `web`): uvicorn serving create_app, set up from the environment.

Three things the bare `uvicorn` command does not do:
- WEB_MAX_REQUESTS recycles a process after that many requests, plus up to WEB_MAX_REQUESTS_JITTER drawn
  per process so that processes do not restart together (uvicorn's --limit-max-requests[-jitter]).
  uvicorn's supervisor starts a fresh process in its place while the listening socket stays open, so
  no connection is refused; with recycling on, a single process runs under the supervisor too (the
  bare command only starts one for two or more, and its single process would simply exit).
- A stopping process drops no request it has accepted (`DrainingServer`). uvicorn closes, at once, every
  connection not in the middle of a request: one accepted a moment ago whose request it has not read yet,
  or a keep-alive one whose next request is on its way. Its client sees a reset, not an answer: a lost
  request on every recycle under load.
- A stop ends with exit code 0. uvicorn re-raises the SIGTERM it handled once its graceful shutdown is
  done, so a platform would see a process killed by a signal after a clean stop.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Mapping
from pathlib import Path

import uvicorn
from uvicorn.supervisors import Multiprocess, multiprocess

from service.config import ConfigError, get_settings

APP = "service.app:create_app"
LOG_CONFIG = Path(__file__).with_name("logging.json")  # every line JSON, the supervisor's included
STARTUP_FAILURE = 3  # uvicorn's exit code when the app cannot start
DRAIN_SECONDS = 1.0


def web_config(env: Mapping[str, str] = os.environ) -> uvicorn.Config:
    settings = get_settings()  # a configuration error stops the process before any worker starts
    return uvicorn.Config(
        APP,
        factory=True,
        host=env.get("HOST", "0.0.0.0"),  # noqa: S104 (a container's port is published by the platform)  # nosec B104
        port=int(env.get("PORT", "8000")),
        workers=int(env.get("WEB_CONCURRENCY", "1")),
        server_header=False,
        access_log=False,
        log_config=str(LOG_CONFIG),
        proxy_headers=True,
        forwarded_allow_ips=env.get("TRUSTED_PROXIES", ""),
        timeout_graceful_shutdown=int(env.get("GRACEFUL_TIMEOUT", "25")),
        limit_max_requests=settings.web_max_requests or None,
        limit_max_requests_jitter=settings.web_max_requests_jitter,
    )


class DrainingServer(uvicorn.Server):
    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Stop accepting, then give open connections DRAIN_SECONDS to bring the request already on its way
        # (answered with `Connection: close`); uvicorn's own shutdown then closes the idle ones (as its
        # keep-alive timeout would) and gives requests still running GRACEFUL_TIMEOUT.
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        deadline = asyncio.get_running_loop().time() + DRAIN_SECONDS
        while self.server_state.connections and asyncio.get_running_loop().time() < deadline:
            for connection in self.server_state.connections:
                cycle = getattr(connection, "cycle", None)
                if cycle is not None and not cycle.response_complete:
                    cycle.keep_alive = False
            await asyncio.sleep(0.05)
        await super().shutdown()


class DrainingProcess(multiprocess.Process):
    """A web process of the supervisor, serving with DrainingServer."""

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            self._server = DrainingServer(config=self.config)
        return self._server


class Supervisor(Multiprocess):
    def terminate_all(self) -> None:
        # Stopping for good: close this process's copy of the listening socket first. Once the web processes
        # have closed theirs, new connections are refused at once (a client or balancer tries elsewhere)
        # instead of waiting in a backlog that nobody will read.
        for sock in self.sockets:
            sock.close()
        super().terminate_all()


def _stopped(signum: int, frame: object) -> None:
    """Where uvicorn's re-raised stop signal lands once it has shut down gracefully: nothing left to do."""


def main() -> int:
    try:
        config = web_config()
    except (ConfigError, ValueError) as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 1
    if config.workers > 1 or config.limit_max_requests:
        # uvicorn's supervisor builds every web process it starts (at first, on a recycle, on SIGHUP) from
        # this module-level name. It handles SIGTERM/SIGINT itself: stops its processes, waits, returns.
        multiprocess.Process = DrainingProcess  # type: ignore[misc]
        Supervisor(config, sockets=[config.bind_socket()]).run()
        return 0
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stopped)
    server = DrainingServer(config)
    server.run()
    return 0 if server.started else STARTUP_FAILURE


if __name__ == "__main__":
    sys.exit(main())
