"""The worker process's own middlewares, pure: a stop signal taken once, a relay that cannot go on stops its process."""

from __future__ import annotations

import asyncio
import signal

from service.imports import pipeline
from workers.middleware.clean_stop import CleanStop


def test_only_the_first_stop_signal_starts_the_stop():
    # Given the Dramatiq CLI's own handler, which takes a second signal for "kill now"
    calls = []
    handler = CleanStop()._once(lambda signum, frame: calls.append(signum))
    try:
        # When the platform's SIGTERM and the master's forwarded one arrive, and then one more
        handler(signal.SIGTERM, None)
        handler(signal.SIGTERM, None)
        handler(signal.SIGHUP, None)
        # Then the CLI sees one, and imports were told at once to hand their jobs back
        assert calls == [signal.SIGTERM]
        assert pipeline.stopping.is_set()
    finally:
        pipeline.stopping.clear()


async def test_a_relay_whose_executor_is_gone_stops_its_process_instead_of_failing_forever(monkeypatch):
    import types

    from workers.middleware import relay as relay_middleware

    # Given a sweep that fails as it does once the interpreter has shut the executors down under the loop
    async def sweep(ctx: object, broker: object) -> int:
        raise RuntimeError("cannot schedule new futures after shutdown")

    signals = []
    monkeypatch.setattr(relay_middleware, "sweep", sweep)
    monkeypatch.setattr(relay_middleware.os, "kill", lambda pid, sig: signals.append(sig))
    settings = types.SimpleNamespace(relay_interval=0.01)
    monkeypatch.setattr(relay_middleware.resources, "ctx", types.SimpleNamespace(settings=settings), raising=False)
    relay = relay_middleware.Relay()
    # When its loop runs, then it asks for a clean stop of the process (once) and ends
    await asyncio.wait_for(relay._loop(None), 5)
    assert signals == [signal.SIGTERM]
