"""A bare python-socketio server on aiohttp: the scale bench's baseline for sockets, fan-out and churn.

What Desk's socket side does, minus Desk: websocket transport, the same ping settings, each
connection put in two rooms (its own, named by the ``token`` of its auth, as Desk's operator room,
and ``all``), and the emits the bench asks for over HTTP:

- ``POST /emit?mode=room&events=E``: E emits to the room ``all`` (every socket): P7's "one message
  to a room of N sockets";
- ``POST /emit?mode=rooms&rooms=K&events=E``: E emits to each of K rooms picked at random among the
  connected tokens (all of them when K is at least their number): Desk's one emit per operator.

The body is the message text (``bench <send time> <n> <tag>``, as Desk's webhooks carry); the
events are ``message.created`` (with the text), then ``chat.updated`` and ``unread.updated``
(small payloads). The wall and CPU time each request spends in its emits is kept, and written with the
loop-lag samples to the file of ``DESK_BENCH_LAG_PROBE`` when the server stops (SIGINT), with
``--time-emits``.
With ``--redis URL`` the server uses python-socketio's ``AsyncRedisManager``, as Desk does.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import socketio  # noqa: E402
from aiohttp import web  # noqa: E402

from bench.common import LAG_ENV, lag_probe, memory_probe, write_lag_samples  # noqa: E402

NAMES = ("message.created", "chat.updated", "unread.updated")


def create(redis_url: str | None, time_emits: bool = False) -> web.Application:
    """Build the bare server."""
    manager = socketio.AsyncRedisManager(redis_url, channel="bench") if redis_url else None
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        client_manager=manager,
        transports=["websocket"],
        ping_interval=25,
        ping_timeout=20,
        max_http_buffer_size=1_000_000,
    )
    app = web.Application()
    sio.attach(app)
    tokens: dict[str, int] = {}
    by_sid: dict[str, str] = {}
    emits: list[tuple[float, float, float, int]] = []
    rng = random.Random(3)

    @sio.event
    async def connect(sid: str, environ: dict, auth: object = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        token = token if isinstance(token, str) else sid
        by_sid[sid] = token
        tokens[token] = tokens.get(token, 0) + 1
        await sio.enter_room(sid, f"op:{token}")
        await sio.enter_room(sid, "all")

    @sio.event
    async def disconnect(sid: str, *reason: object) -> None:
        token = by_sid.pop(sid, None)
        if token is not None:
            left = tokens.get(token, 0) - 1
            if left > 0:
                tokens[token] = left
            else:
                tokens.pop(token, None)

    async def emit(request: web.Request) -> web.Response:
        text = (await request.read()).decode()
        mode = request.query.get("mode", "room")
        events = int(request.query.get("events", "1"))
        at, start, cpu = time.monotonic(), time.perf_counter(), time.thread_time()
        sent = 0
        if mode == "room":
            for index in range(events):
                await sio.emit(NAMES[index % 3], {"text": text, "id": index} if index % 3 == 0 else {"n": index}, room="all")
                sent += 1
        else:
            wanted = int(request.query.get("rooms", "1"))
            names = list(tokens)
            chosen = names if wanted >= len(names) else rng.sample(names, wanted)
            for index in range(events):
                payload = {"text": text, "id": index} if index % 3 == 0 else {"n": index}
                for token in chosen:
                    await sio.emit(NAMES[index % 3], payload, room=f"op:{token}")
                    sent += 1
        if time_emits:  # kept only when asked: a soak would count the list as the server's growth
            emits.append((at, time.perf_counter() - start, time.thread_time() - cpu, sent))
        return web.json_response({"ok": True, "emits": sent})

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "sockets": len(by_sid)})

    async def probe(_: web.Application) -> AsyncIterator[None]:
        samples: list[tuple[float, float]] = []
        task = asyncio.create_task(lag_probe(samples))
        memory: list = []
        heap_task = asyncio.create_task(memory_probe(memory))
        if manager is not None:
            sio.manager_initialized = True
            manager.initialize()
        yield
        task.cancel()
        heap_task.cancel()
        if os.environ.get(LAG_ENV):
            write_lag_samples(os.environ[LAG_ENV], samples, {"emits": emits, "memory": memory})

    app.router.add_post("/emit", emit)
    app.router.add_get("/healthz", healthz)
    app.cleanup_ctx.append(probe)
    return app


def main() -> None:
    """Serve until SIGINT."""
    parser = argparse.ArgumentParser(prog="bench/bare_sio.py")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis")
    parser.add_argument("--time-emits", action="store_true", help="keep the time of each request's emits")
    args = parser.parse_args()
    web.run_app(create(args.redis, args.time_emits), host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
