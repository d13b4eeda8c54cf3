"""Many emits at once through Redis: two Socket.IO servers with Desk's Redis manager, a Redis server
of the test's own, and a client connected to the second server.

Under a burst (more changes committed than their emits can be published at once) every event
still reaches the other process, in order, without the manager dropping its connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import socketio
from aiohttp import web

from desk.realtime.redis import DeskRedisManager
from tests.conftest import eventually
from tests.servers import free_port, redis_server

# More than redis-py's pool holds (100 connections): the burst that used to set off reconnections.
BURST = 150


class Node:
    """One Socket.IO server with Desk's Redis manager, serving on a loopback port."""

    def __init__(self, redis_url: str) -> None:
        self.manager = DeskRedisManager(redis_url)
        self.sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=self.manager, transports=["websocket"])
        self.app = web.Application()
        self.sio.attach(self.app)
        self.port = free_port()
        self.runner = web.AppRunner(self.app)

        @self.sio.event
        async def connect(sid: str, environ: dict, auth: object = None) -> None:
            await self.sio.enter_room(sid, "operator:1")

    async def start(self) -> None:
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        self.manager.start()
        await eventually(lambda: self.manager.subscribed, timeout=10)

    async def stop(self) -> None:
        await self.manager.stop()
        await self.runner.cleanup()


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[tuple[Node, Node, list]]:
    """Servers A and B on one Redis, and the events a client connected to B receives."""
    with redis_server(tmp_path) as redis:
        a, b = Node(redis.url), Node(redis.url)
        await a.start()
        await b.start()
        received: list = []
        client = socketio.AsyncClient(reconnection=False)

        @client.on("*")
        async def any_event(name: str, data: object) -> None:
            received.append((name, data))

        await client.connect(f"http://127.0.0.1:{b.port}", transports=["websocket"], wait_timeout=10)
        try:
            yield a, b, received
        finally:
            await client.disconnect()
            await a.stop()
            await b.stop()


async def test_a_burst_of_emits_reaches_the_other_process_without_reconnecting(nodes, caplog):
    a, _, received = nodes
    caplog.set_level(logging.ERROR, logger="socketio")

    async def change(number: int) -> None:
        await a.sio.emit("message.created", {"n": number}, room="operator:1")

    await change(-1)
    publisher = a.manager.redis
    await asyncio.gather(*(change(n) for n in range(BURST)))
    await eventually(lambda: len(received) > BURST, timeout=20)
    assert sorted(data["n"] for _, data in received) == list(range(-1, BURST))
    assert not [r.getMessage() for r in caplog.records if "publish" in r.getMessage()]
    assert a.manager.redis is publisher  # the publishing connection was never thrown away


async def test_the_events_of_one_change_arrive_in_order_in_the_other_process(nodes):
    a, _, received = nodes
    changes = [[("message.created", {"change": c, "i": i}, "operator:1") for i in range(30)] for c in range(BURST)]

    await asyncio.gather(*(a.manager.emit_many(events) for events in changes))
    await eventually(lambda: len(received) >= BURST * 30, timeout=20)
    assert len(received) == BURST * 30
    for c in range(BURST):
        assert [data["i"] for _, data in received if data["change"] == c] == list(range(30))
