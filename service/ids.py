"""Ids: time-ordered UUIDs (version 7, RFC 9562) for rows written in bulk, and ids read from a path.

Random (v4) keys scatter a million inserted rows across every page of the primary key and of each
(..., id) index; v7 keys grow with time, so a bulk insert appends to a few hot pages instead (fewer
pages read, split and written per row). Python 3.11 has no uuid7, hence this.
"""

from __future__ import annotations

import os
import time
from uuid import UUID

_VERSION_VARIANT = (0x7 << 76) | (0b10 << 62)
_RAND_B = (1 << 62) - 1


def uuid7_batch(n: int) -> list[UUID]:
    """`n` v7 UUIDs in increasing order: a 48-bit millisecond timestamp, a 12-bit sequence (rand_a,
    used as a counter so ids made within one millisecond stay ordered) and 62 random bits."""
    ids = []
    ms = time.time_ns() // 1_000_000
    random = os.urandom(8 * n)
    for i in range(n):
        if i and i % 4096 == 0:
            ms += 1  # the 12-bit counter wrapped: borrow the next millisecond
        rand_b = int.from_bytes(random[8 * i : 8 * i + 8], "big") & _RAND_B
        ids.append(UUID(int=(ms << 80) | _VERSION_VARIANT | ((i % 4096) << 64) | rand_b))
    return ids


def parse_id(value: str) -> UUID | None:
    """An id from a path as a UUID; None when malformed (the caller answers 404, as for an unknown id)."""
    try:
        return UUID(value)
    except ValueError:
        return None
