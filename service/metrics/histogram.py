"""Latency histogram with fixed, log-spaced buckets: bounded memory whatever the traffic.

Bucket i holds latencies in [LOWEST_MS * GROWTH**i, LOWEST_MS * GROWTH**(i + 1)); anything below
LOWEST_MS lands in bucket 0 and anything above HIGHEST_MS in the last bucket. A quantile is reported as
the geometric midpoint of the bucket that holds it, so for a latency between 0.1 ms and 60 s the
reported value is within a factor sqrt(GROWTH) of the true one: a relative error of at most
sqrt(1.1) - 1 = 4.9 % (the quantile's rank itself is exact, it is only the value that is rounded).
Outside that range the error is unbounded (0.1 ms floor, 60 s ceiling), which no latency SLO cares about.

With GROWTH = 1.1 there are 140 buckets; a route only ever touches the few dozen around its latencies,
and Redis stores just those (sparse hashes).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

LOWEST_MS = 0.1
HIGHEST_MS = 60_000.0
GROWTH = 1.1
_LOG_GROWTH = math.log(GROWTH)
BUCKETS = math.ceil(math.log(HIGHEST_MS / LOWEST_MS) / _LOG_GROWTH)  # 140
MAX_RELATIVE_ERROR = math.sqrt(GROWTH) - 1


def bucket_of(ms: float) -> int:
    """The bucket index for a latency in milliseconds."""
    if ms <= LOWEST_MS:
        return 0
    return min(int(math.log(ms / LOWEST_MS) / _LOG_GROWTH), BUCKETS - 1)


def bucket_value(index: int) -> float:
    """The value a bucket stands for: its geometric midpoint, in milliseconds."""
    return LOWEST_MS * GROWTH ** (index + 0.5)


def quantiles(counts: Mapping[int, int], qs: Iterable[float]) -> dict[float, float | None]:
    """Quantiles (0 < q <= 1) of a histogram {bucket index: count}, in ms; None when it is empty.

    The q-quantile is the value of rank ceil(q * n) (nearest rank), as a sorted list would give."""
    total = sum(counts.values())
    out: dict[float, float | None] = {}
    ordered = sorted((i, n) for i, n in counts.items() if n > 0)
    for q in qs:
        if total <= 0:
            out[q] = None
            continue
        rank = max(1, math.ceil(q * total - 1e-9))  # 0.95 * 100 is 95.00000000000001
        seen = 0
        for index, n in ordered:
            seen += n
            if seen >= rank:
                out[q] = bucket_value(index)
                break
    return out
