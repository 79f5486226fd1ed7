"""The client address a request comes from: X-Forwarded-For counts only when a trusted proxy appended it."""

from __future__ import annotations

import ipaddress

from starlette.requests import Request

from service.http.clients import client_ip


def _request(peer: str, forwarded: str | None = None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return Request({"type": "http", "client": (peer, 1234), "headers": headers, "method": "GET", "path": "/"})


def test_forwarded_for_is_ignored_from_untrusted_peers():
    assert client_ip(_request("203.0.113.9", "1.2.3.4"), ()) == "203.0.113.9"
    trusted = (ipaddress.ip_network("10.0.0.0/8"),)
    assert client_ip(_request("203.0.113.9", "1.2.3.4"), trusted) == "203.0.113.9"


def test_forwarded_for_from_a_trusted_proxy_names_the_first_untrusted_hop():
    trusted = (ipaddress.ip_network("10.0.0.0/8"),)
    # The client can prepend anything; only what our proxies appended counts
    assert client_ip(_request("10.0.0.2", "6.6.6.6, 198.51.100.7, 10.0.0.5"), trusted) == "198.51.100.7"
    assert client_ip(_request("10.0.0.2", "not-an-ip"), trusted) == "10.0.0.2"
    assert client_ip(_request("10.0.0.2"), trusted) == "10.0.0.2"
