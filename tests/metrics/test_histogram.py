"""The latency histogram's bucket math, without Redis."""

from __future__ import annotations

import random

from service.metrics import histogram
from service.metrics.histogram import BUCKETS, MAX_RELATIVE_ERROR, bucket_of, bucket_value, quantiles


def _histogram(values_ms: list[float]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for v in values_ms:
        counts[bucket_of(v)] = counts.get(bucket_of(v), 0) + 1
    return counts


def _close(reported: float | None, true: float) -> bool:
    assert reported is not None
    return abs(reported - true) / true <= MAX_RELATIVE_ERROR + 1e-12


def test_bucket_scheme_is_bounded_and_within_its_stated_error():
    assert BUCKETS == 140
    assert 0.048 < MAX_RELATIVE_ERROR < 0.049
    assert bucket_of(0) == bucket_of(0.01) == 0
    assert bucket_of(10**9) == BUCKETS - 1
    rng = random.Random(7)
    for _ in range(20_000):
        ms = 10 ** rng.uniform(-1, 4.77)  # 0.1 ms .. 59 s
        assert _close(bucket_value(bucket_of(ms)), ms), ms


def test_quantiles_of_known_latencies():
    values = [float(ms) for ms in range(1, 1001)]  # 1 .. 1000 ms, once each
    q = quantiles(_histogram(values), (0.5, 0.95, 0.99, 1.0))
    assert _close(q[0.5], 500)
    assert _close(q[0.95], 950)
    assert _close(q[0.99], 990)
    assert _close(q[1.0], 1000)


def test_quantiles_follow_the_nearest_rank_and_a_slow_tail():
    # 98 fast requests at 2 ms and 2 slow ones at 800 ms: p95 is fast, p99 is slow.
    q = quantiles(_histogram([2.0] * 98 + [800.0] * 2), (0.5, 0.95, 0.99))
    assert _close(q[0.5], 2) and _close(q[0.95], 2)
    assert _close(q[0.99], 800)
    # Exactly on a boundary: 95 of 100 at 1 ms, so the 95th value is still 1 ms.
    q = quantiles(_histogram([1.0] * 95 + [50.0] * 5), (0.95,))
    assert _close(q[0.95], 1)


def test_empty_histogram_has_no_quantiles():
    assert quantiles({}, (0.5, 0.99)) == {0.5: None, 0.99: None}
    assert quantiles({3: 0}, (0.5,)) == {0.5: None}


def test_summed_histograms_give_the_quantiles_of_the_union():
    rng = random.Random(3)
    a = [rng.lognormvariate(1, 1) for _ in range(5000)]
    b = [rng.lognormvariate(3, 0.5) for _ in range(5000)]
    ha, hb = _histogram(a), _histogram(b)
    summed = {i: ha.get(i, 0) + hb.get(i, 0) for i in ha.keys() | hb.keys()}
    ordered = sorted(a + b)
    for q, reported in quantiles(summed, (0.5, 0.95, 0.99)).items():
        assert _close(reported, ordered[round(q * len(ordered)) - 1])
    assert histogram.LOWEST_MS == 0.1 and histogram.HIGHEST_MS == 60_000
