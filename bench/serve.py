"""Serve Desk exactly as ``python run.py`` does, plus the bench's event-loop lag probe.

The probe is bench code: with ``DESK_BENCH_LAG_PROBE=FILE`` set, a task samples how late the loop
wakes up and the samples are written to FILE when the server stops (SIGINT). With
``DESK_BENCH_ASYNCIO_DEBUG=1`` the loop also runs in asyncio debug mode with
``slow_callback_duration = 0.05`` and the slow-callback warnings are counted into the same file.
With ``DESK_BENCH_EMITS=1`` the time of each committed batch's emits goes there too.
Nothing under ``desk/`` knows about either.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp import web  # noqa: E402

from bench.common import LAG_ENV, lag_probe, memory_probe, write_lag_samples  # noqa: E402
from desk.app import create_app  # noqa: E402
from desk.settings import add_arguments, from_env  # noqa: E402

DEBUG_ENV = "DESK_BENCH_ASYNCIO_DEBUG"
PROFILE_ENV = "DESK_BENCH_PROFILE"
EMITS_ENV = "DESK_BENCH_EMITS"
SLOW_CALLBACK = 0.05


class SlowCallbacks(logging.Handler):
    """Count asyncio's "Executing <...> took N seconds" warnings."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the warning's monotonic time and text."""
        text = record.getMessage()
        if "took" in text:
            # Keep the head (which callback) and the tail ("took 0.061 seconds").
            self.messages.append((time.monotonic(), text if len(text) < 400 else f"{text[:200]} ... {text[-120:]}"))


def time_emits(emits: list[tuple[float, float, float, int]]) -> None:
    """Wrap the listener's emit of one committed batch to keep (start, wall seconds, CPU seconds, events).

    A batch is every event of one transaction (a webhook's message for each operator who sees
    it): its time is the server time of emitting one message to its watchers (TARGETS P7).
    python-socketio awaits each emit's per-socket sends, so the batch passes through the loop
    once per emit: the wall time includes whatever else the loop ran meanwhile, and the CPU time
    (of the loop's thread) too; both are the batch's own only when nothing else is going on.
    """
    from desk.realtime.listener import Listener

    original = Listener._emit

    async def timed(self: Listener, records: list) -> None:
        start, cpu = time.perf_counter(), time.thread_time()
        at = time.monotonic()
        await original(self, records)
        emits.append((at, time.perf_counter() - start, time.thread_time() - cpu, len(records)))

    Listener._emit = timed  # type: ignore[method-assign]


def probe_ctx(path: str, slow: SlowCallbacks | None, emits: list[tuple[float, float, float, int]] | None = None):
    """Return a cleanup context that runs the lag probe and writes its samples at shutdown."""

    async def ctx(_: web.Application) -> AsyncIterator[None]:
        samples: list[tuple[float, float]] = []
        loop = asyncio.get_running_loop()
        if slow is not None:
            loop.set_debug(True)
            loop.slow_callback_duration = SLOW_CALLBACK
        task = asyncio.create_task(lag_probe(samples))
        memory: list = []
        heap_task = asyncio.create_task(memory_probe(memory))
        yield
        task.cancel()
        heap_task.cancel()
        extra: dict = {"slow_callbacks": slow.messages} if slow is not None else {}
        if emits is not None:
            extra["emits"] = emits
        extra["memory"] = memory
        write_lag_samples(path, samples, extra)

    return ctx


def profile_ctx(path: str):
    """Return a cleanup context that profiles the server with cProfile and writes the stats at shutdown.

    The profile covers the whole run, set-up included, unless the bench sends SIGUSR1: from then
    on only what runs between a SIGUSR1 and the next SIGUSR2 is profiled (ingest.py sends them
    around each measured phase).
    """

    async def ctx(_: web.Application) -> AsyncIterator[None]:
        import cProfile
        import signal

        profiler = cProfile.Profile()
        windowed = False

        def start() -> None:
            nonlocal windowed
            if not windowed:  # drop the set-up profiled so far
                profiler.disable()
                profiler.clear()
                windowed = True
            profiler.enable()

        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, start)
        loop.add_signal_handler(signal.SIGUSR2, profiler.disable)
        profiler.enable()
        yield
        profiler.disable()
        profiler.dump_stats(path)

    return ctx


def main() -> None:
    """Parse run.py's serve flags and serve, with the probe when asked."""
    parser = argparse.ArgumentParser(prog="bench/serve.py")
    add_arguments(parser)
    args = parser.parse_args()
    # The same logging as run.py, so the access log costs what it costs in production (off
    # unless --access-log / DESK_ACCESS_LOG, as in run.py).
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = from_env(args)
    app = create_app(settings)
    slow = None
    if os.environ.get(DEBUG_ENV):
        slow = SlowCallbacks()
        logging.getLogger("asyncio").addHandler(slow)
    emits: list[tuple[float, float, float, int]] | None = None
    if os.environ.get(EMITS_ENV):
        emits = []
        time_emits(emits)
    if os.environ.get(LAG_ENV):
        app.cleanup_ctx.append(probe_ctx(os.environ[LAG_ENV], slow, emits))
    if os.environ.get(PROFILE_ENV):
        app.cleanup_ctx.append(profile_ctx(os.environ[PROFILE_ENV]))
    print(f"Desk (bench) on http://{settings.host}:{settings.port}", flush=True)
    access_log = logging.getLogger("aiohttp.access") if settings.access_log else None
    web.run_app(app, host=settings.host, port=settings.port, print=None, access_log=access_log)


if __name__ == "__main__":
    main()
