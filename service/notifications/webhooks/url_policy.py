"""Where a webhook may be sent: the checks against server-side request forgery.

A URL is refused when its host resolves to any private, loopback, link-local, reserved, multicast or
unspecified address (unless WEBHOOK_ALLOW_PRIVATE), when the user gives it and again at every attempt.
The worker's HTTP client (client.py) also checks the addresses it actually connects to, so a DNS answer
that changes between the check and the connection (DNS rebinding) is refused too.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

import httpx

from service.errors import Unprocessable

MAX_URL_LENGTH = 2048
# URLs that pass the syntax checks below, as a JSON Schema pattern for the OpenAPI document: http(s), a
# host name or IPv4 address, an optional port, then visible ASCII. (The checks take a little more:
# IPv6 literals and international names; and where the host may point is checked apart.)
_LABEL = "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
URL_PATTERN = rf"^[Hh][Tt][Tt][Pp][Ss]?://{_LABEL}(\.{_LABEL})*(:[0-9]{{1,4}})?([/?#][\x21-\x7e]*)?$"
RESOLVE_TIMEOUT = 5.0  # seconds validate_url waits for DNS

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class InvalidWebhookURL(Unprocessable):
    """A webhook URL the service will not call (422)."""

    slug, title = "invalid-webhook-url", "Invalid webhook URL"

    def __init__(self, detail: str, *, field: str = "webhook_url") -> None:
        super().__init__(detail, errors=[{"field": field, "message": detail}])


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (IPv4-mapped, 6to4, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_forbidden_address(ip: IPAddress) -> bool:
    """True for anything but a public unicast address: private, loopback, link-local, reserved,
    multicast, unspecified, shared (CGNAT), documentation... IPv4 carried in IPv6 is judged as IPv4."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return is_forbidden_address(embedded)
        if ip.is_site_local:
            return True
    return (
        not ip.is_global
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
    )


def parse_url(url: str) -> httpx.URL:
    """Syntax checks, with the same parser the HTTP client uses (no parser differential)."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidWebhookURL("The webhook URL is empty")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidWebhookURL(f"The webhook URL is longer than {MAX_URL_LENGTH} characters")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise InvalidWebhookURL("The webhook URL contains spaces or control characters")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise InvalidWebhookURL(f"The webhook URL is not a valid URL ({exc})") from None
    if parsed.scheme not in {"http", "https"}:
        raise InvalidWebhookURL("The webhook URL must start with http:// or https://")
    if not parsed.host:
        raise InvalidWebhookURL("The webhook URL has no host")
    if parsed.userinfo:
        raise InvalidWebhookURL("The webhook URL must not contain a user name or password")
    return parsed


def endpoint(url: str) -> str:
    """What a log line may show of a webhook URL: scheme, host and port. Path, query and user info can
    hold secrets (tokens in a query string are common)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError):
        return "<invalid URL>"
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}"


def _host(parsed: httpx.URL) -> str:
    """The host as the HTTP client will look it up (IDNA-encoded by httpx, not by the socket module)."""
    return parsed.raw_host.decode("ascii")


def _port(parsed: httpx.URL) -> int:
    return parsed.port or (443 if parsed.scheme == "https" else 80)


def addresses(infos: Iterable[tuple[Any, ...]]) -> list[IPAddress]:
    """The distinct addresses in getaddrinfo's answer, in its order."""
    found: list[IPAddress] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if ip not in found:
            found.append(ip)
    return found


def _check_addresses(host: str, found: list[IPAddress]) -> None:
    if not found:
        raise InvalidWebhookURL(f"The webhook URL's host {host} has no address")
    for ip in found:
        if is_forbidden_address(ip):
            shown = host if host == str(ip) else f"{host} ({ip})"
            raise InvalidWebhookURL(
                f"The webhook URL points to {shown}, a private, loopback, link-local or otherwise "
                "non-public address; webhooks are only sent to public addresses"
            )


async def resolve_checked(parsed: httpx.URL, allow_private: bool) -> None:
    """Resolves off the event loop; raises OSError if the host does not resolve, InvalidWebhookURL if it
    resolves to an address that is not allowed. With allow_private nothing is checked (nor resolved)."""
    if allow_private:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(_host(parsed), _port(parsed), type=socket.SOCK_STREAM)
    except UnicodeError as exc:
        raise socket.gaierror(str(exc)) from exc
    _check_addresses(parsed.host, addresses(infos))


async def validate_url(url: str, allow_private: bool) -> str:
    """Check a webhook URL a user gave: http(s), a host, no user info, at most MAX_URL_LENGTH characters,
    and (unless allow_private) every address the host resolves to is public, the lookup off the event loop
    and bounded by RESOLVE_TIMEOUT seconds. Returns the URL as it will be called; raises InvalidWebhookURL
    (422). With allow_private the host is not resolved at all."""
    parsed = parse_url(url)
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT):
            await resolve_checked(parsed, allow_private)
    except TimeoutError:
        raise InvalidWebhookURL(f"The webhook URL's host {parsed.host} did not resolve in time") from None
    except OSError as exc:
        raise InvalidWebhookURL(f"The webhook URL's host {parsed.host} cannot be resolved ({exc})") from None
    return str(parsed)
