"""Process-local metric deltas and their flush to Redis.

Recording is a few dict increments on the caller's thread: no I/O, no await. `flush()` (run about once
a second by `flush_forever`, and once more at shutdown) applies the deltas to Redis in one Lua script,
which Redis runs atomically like a MULTI/EXEC block: every delta of a batch is applied, or none is.

Exactly once, even when a reply is lost: each batch carries this process's next sequence number and the
script applies it only if that number is above the last one applied for this process (one small key
per process). A flush that fails keeps its batch frozen and the next flush resends the very same batch:
if the first attempt did reach Redis (timeout after EXEC), the resend is a no-op; if it did not, the
resend applies it. MULTI/EXEC alone cannot tell those two cases apart, hence the script.

Memory stays bounded while Redis is away: per-route counters are bounded by the route table (requests
that match no route share the "<unmatched>" label, unknown methods share "OTHER"), business counters by
COUNTERS, and latency deltas older than the read window are dropped (Redis would expire them anyway).

Redis layout (prefix `tasklane:metrics`):
    :http                  hash  "<METHOD> <route> <class>" -> requests        (cumulative)
    :http:duration_us      hash  "<METHOD> <route>" -> total latency in µs     (cumulative, Prometheus _sum)
    :counters              hash  business counter name -> value               (cumulative)
    :latency:<minute>      hash  "<METHOD> <route> <bucket>" -> requests       (expires ~7 minutes later)
    :applied:<process id>  string  last batch sequence number applied          (expires after an hour idle)
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from service import metrics
from service.metrics import histogram

log = logging.getLogger("tasklane.metrics")

PREFIX = "tasklane:metrics"
WINDOW_MINUTES = 5  # quantiles cover the current minute and the 5 before it: the last 5 to 6 minutes
LATENCY_TTL_MINUTES = WINDOW_MINUTES + 2  # a minute's hash outlives its last read by at least a minute
APPLIED_TTL = 3600
WARN_EVERY = 60  # failed flushes between two warnings (one a minute at the default interval)

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Index by status // 100 (clamped to 5): informational answers never end a request here.
STATUS_CLASSES = ("2xx", "2xx", "2xx", "3xx", "4xx", "5xx")

APPLY = """
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
if last >= tonumber(ARGV[2]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[1])
local a = 3
for i = 2, #KEYS do
  local expire_at = tonumber(ARGV[a])
  local n = tonumber(ARGV[a + 1])
  a = a + 2
  for _ = 1, n do
    redis.call('HINCRBY', KEYS[i], ARGV[a], ARGV[a + 1])
    a = a + 2
  end
  if expire_at > 0 then
    redis.call('EXPIREAT', KEYS[i], expire_at)
  end
end
return 1
"""


def http_key(prefix: str = PREFIX) -> str:
    return f"{prefix}:http"


def duration_key(prefix: str = PREFIX) -> str:
    return f"{prefix}:http:duration_us"


def counters_key(prefix: str = PREFIX) -> str:
    return f"{prefix}:counters"


def latency_key(minute: int, prefix: str = PREFIX) -> str:
    return f"{prefix}:latency:{minute}"


def current_minute(now: float | None = None) -> int:
    return int(time.time() if now is None else now) // 60


@dataclass
class Batch:
    seq: int = 0
    http: dict[tuple[str, str, str], int] = field(default_factory=dict)
    latency: dict[tuple[int, str, str, int], int] = field(default_factory=dict)
    duration_us: dict[tuple[str, str], int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.http or self.latency or self.duration_us or self.counts)

    def size(self) -> int:
        return len(self.http) + len(self.latency) + len(self.duration_us) + len(self.counts)


def _prune(latency: dict[tuple[int, str, str, int], int], now: float | None = None) -> None:
    oldest = current_minute(now) - WINDOW_MINUTES
    for key in [k for k in latency if k[0] < oldest]:
        del latency[key]


class Recorder:
    """One per process (the web app makes its own; each worker process too). Not thread-safe for
    `observe`, which the HTTP middleware calls on the event loop; business counts go through the
    thread-safe `metrics.count` and are picked up at flush time."""

    def __init__(self, role: str = "web", prefix: str = PREFIX) -> None:
        self.prefix = prefix
        # Names this process's sequence in Redis; readable, for whoever looks at the keys.
        self.process_id = f"{role}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.pending = Batch()
        self.inflight: Batch | None = None
        self.failures = 0  # consecutive failed flushes
        self._seq = 0
        self._lock: asyncio.Lock | None = None

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one finished request. Called on the request path: dict increments only."""
        if method not in METHODS:
            method = "OTHER"
        pending = self.pending
        key = (method, route, STATUS_CLASSES[min(max(status // 100, 0), 5)])
        pending.http[key] = pending.http.get(key, 0) + 1
        ms = seconds * 1000.0
        lkey = (int(time.time()) // 60, method, route, histogram.bucket_of(ms))
        pending.latency[lkey] = pending.latency.get(lkey, 0) + 1
        dkey = (method, route)
        pending.duration_us[dkey] = pending.duration_us.get(dkey, 0) + int(ms * 1000.0)

    def _freeze(self) -> Batch | None:
        for name, n in metrics.take_counts().items():
            self.pending.counts[name] = self.pending.counts.get(name, 0) + n
        _prune(self.pending.latency)
        if not self.pending:
            return None
        batch, self.pending = self.pending, Batch()
        self._seq += 1
        batch.seq = self._seq
        return batch

    def _script_args(self, batch: Batch) -> tuple[list[str], list[int | str]]:
        groups: dict[str, tuple[int, list[tuple[str, int]]]] = {}

        def add(key: str, expire_at: int, name: str, delta: int) -> None:
            groups.setdefault(key, (expire_at, []))[1].append((name, delta))

        for (method, route, cls), n in batch.http.items():
            add(http_key(self.prefix), 0, f"{method} {route} {cls}", n)
        for (method, route), us in batch.duration_us.items():
            add(duration_key(self.prefix), 0, f"{method} {route}", us)
        for name, n in batch.counts.items():
            add(counters_key(self.prefix), 0, name, n)
        oldest = current_minute() - WINDOW_MINUTES
        for (minute, method, route, bucket), n in batch.latency.items():
            if minute >= oldest:  # an older minute is out of every window: no use writing it
                expire_at = (minute + 1 + LATENCY_TTL_MINUTES) * 60
                add(latency_key(minute, self.prefix), expire_at, f"{method} {route} {bucket}", n)

        keys = [f"{self.prefix}:applied:{self.process_id}"]
        args: list[int | str] = [APPLIED_TTL, batch.seq]
        for key, (expire_at, fields) in groups.items():
            keys.append(key)
            args.extend((expire_at, len(fields)))
            for name, delta in fields:
                args.extend((name, delta))
        return keys, args

    async def _apply(self, client: aioredis.Redis, batch: Batch) -> None:
        keys, args = self._script_args(batch)
        await client.register_script(APPLY)(keys=keys, args=args)

    async def flush(self, client: aioredis.Redis) -> bool:
        """Apply every delta recorded so far to Redis. True when it worked; False when Redis failed,
        in which case the deltas are kept for the next flush. Never raises (it can be cancelled,
        which keeps the deltas too)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            try:
                # The batch a failed flush left behind first (same sequence number), then what is new.
                for _ in range(2):
                    if self.inflight is None:
                        self.inflight = self._freeze()
                        if self.inflight is None:
                            break
                    await self._apply(client, self.inflight)
                    self.inflight = None
            except Exception as exc:
                _prune(self.pending.latency)
                self.failures += 1
                if self.failures % WARN_EVERY == 1:
                    log.warning(
                        "metrics flush failed; deltas kept for the next one",
                        extra={"error": repr(exc), "failures": self.failures, "pending": self.pending_size()},
                    )
                return False
            if self.failures:
                log.info("metrics flush works again", extra={"failures": self.failures})
                self.failures = 0
            return True

    def pending_size(self) -> int:
        return self.pending.size() + (self.inflight.size() if self.inflight else 0)


async def flush_forever(recorder: Recorder, client: aioredis.Redis, interval: float) -> None:
    """The background flusher: runs until cancelled (even if a library call swallowed the cancel)."""
    task = asyncio.current_task()
    while not (task and task.cancelling()):
        await asyncio.sleep(interval)
        await recorder.flush(client)


SHUTDOWN_WAIT = 2.0


async def final_flush(recorder: Recorder, client: aioredis.Redis) -> None:
    """Flush once more at shutdown, waiting at most SHUTDOWN_WAIT seconds."""
    try:
        await asyncio.wait_for(recorder.flush(client), SHUTDOWN_WAIT)
    except TimeoutError:
        log.warning("metrics not flushed at shutdown (Redis too slow)", extra={"pending": recorder.pending_size()})
