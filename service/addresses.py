"""Email addresses: the one form in which they are stored, compared, rate-limited and looked up. Below both
accounts (which stores them) and notifications (whose development inbox is searched by one), so that
neither has to know the other to agree on it."""

from __future__ import annotations


def canonical_email(value: str) -> str:
    """Without surrounding spaces, in lower case. The one place that says so; everything else calls this."""
    return value.strip().lower()
