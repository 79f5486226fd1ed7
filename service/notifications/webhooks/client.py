"""The HTTP client a worker delivers webhooks with: no redirects, no environment proxies, and connections
only to the addresses url_policy allows, checked on the address actually connected to (so a DNS answer
that changed since the URL was checked, DNS rebinding, is refused too)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from service.config import Settings
from service.notifications.webhooks.url_policy import addresses, is_forbidden_address

USER_AGENT = "tasklane-webhooks/0.1"


class ForbiddenAddress(Exception):
    """Raised by the worker's HTTP client when a connection would go to an address that is not allowed."""


class AddressGuard(httpcore.AsyncNetworkBackend):
    """Resolves the host itself, refuses the connection if any address is not allowed, and connects to
    the checked address: what was checked is what is called."""

    def __init__(self, allow_private: bool, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.allow_private = allow_private
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        found = addresses(infos)
        if not self.allow_private:
            for ip in found:
                if is_forbidden_address(ip):
                    raise ForbiddenAddress(f"refused to connect to {host} ({ip}): not a public address")
        last: Exception = httpcore.ConnectError(f"no address for {host}")
        for ip in found:
            try:
                return await self._inner.connect_tcp(
                    str(ip), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise ForbiddenAddress("webhooks never connect to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport, with its connection pool built on an AddressGuard (httpx has no public
    parameter for the pool's network backend, so the pool it built is replaced)."""

    def __init__(self, *, allow_private: bool, limits: httpx.Limits) -> None:
        super().__init__(trust_env=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=AddressGuard(allow_private),
        )


def make_http_client(settings: Settings) -> httpx.AsyncClient:
    """The client a worker process shares for every delivery. Close it with `await client.aclose()`."""
    return httpx.AsyncClient(
        transport=GuardedTransport(
            allow_private=settings.webhook_allow_private,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=30),
        ),
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(settings.webhook_timeout),
        headers={"User-Agent": USER_AGENT},
    )
