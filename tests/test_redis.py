"""Redis outages with several processes: two real ``python run.py`` processes (websocket-only, as
docs/deploy.md recommends) on one PostgreSQL database and a Redis server of the test's own.

When Redis restarts, or a process's subscription silently stops carrying anything, every
process is subscribed again within 10 s (TARGETS R5), and an agent whose socket missed events
meanwhile heals by replaying its log from the last ``seq`` it saw (CONTRACT §7).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from desk.app import create_app
from tests.conftest import eventually
from tests.servers import (
    ADMIN, PASSWORD, Client, DeskProcess, RedisServer, create_admin, postgres_database, redis_server, setup_channel,
    text_update,
)
from tests.servers import api  # noqa: F401  (pytest fixture)

# TARGETS R5: every process is subscribed again within 10 s of Redis being back.
RESUBSCRIBE_WITHIN = 10.0


class Partition:
    """A TCP relay to Redis; ``cut()`` makes the connections open now swallow what they carry,
    as a silent network partition does, while new connections pass."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.links: list[dict] = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                near, _ = self.listener.accept()
            except OSError:
                return
            try:
                far = socket.create_connection(("127.0.0.1", self.target), timeout=2)
                far.settimeout(None)
            except OSError:
                near.close()
                continue
            link = {"cut": False, "sockets": (near, far)}
            self.links.append(link)
            threading.Thread(target=self._pipe, args=(near, far, link), daemon=True).start()
            threading.Thread(target=self._pipe, args=(far, near, link), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, link: dict) -> None:
        try:
            while data := source.recv(65536):
                if not link["cut"]:
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in link["sockets"]:
                _close(sock)

    def cut(self) -> None:
        """Silence every connection open now."""
        for link in self.links:
            link["cut"] = True

    def close(self) -> None:
        self.closed = True
        self.listener.close()
        for link in self.links:
            for sock in link["sockets"]:
                _close(sock)


def _close(sock: socket.socket) -> None:
    # shutdown() first: close() alone neither wakes the other thread's recv() nor sends a FIN.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


@dataclasses.dataclass
class Pair:
    """Processes A and B; B reaches Redis through ``partition``."""

    redis: RedisServer
    partition: Partition
    a: DeskProcess
    b: DeskProcess


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """Start A and B on a new database and a Redis server of their own."""
    workdir: Path = tmp_path_factory.mktemp("redis")
    with postgres_database() as database_url, redis_server(workdir) as redis:
        partition = Partition(redis.port)
        common = ("--db", database_url, "--public-url", "http://desk.test", "--transports", "websocket")
        a = DeskProcess("a", workdir, *common, "--redis", redis.url)
        b = DeskProcess("b", workdir, *common, "--redis", f"redis://127.0.0.1:{partition.port}/0")
        try:
            a.start()
            b.start()
            create_admin(database_url, workdir, ADMIN, PASSWORD)
            yield Pair(redis, partition, a, b)
        finally:
            for process in (a, b):
                print(f"--- log of process {process.name} ---\n{process.stop()}")
            partition.close()


async def both_subscribed(api: Client, pair: Pair) -> bool:
    """Whether Redis counts two subscribers and both processes say they hear it."""
    try:
        if pair.redis.numsub() != 2:
            return False
    except OSError:
        return False
    for process in (pair.a, pair.b):
        health = await api.call(process, "GET", "/healthz")
        if health["redis"] != "subscribed":
            return False
    return True


async def assert_view_heals(api: Client, process: DeskProcess, token: str, events: list, texts: set[str]) -> None:
    """Replay from the last ``seq`` seen without a gap, as the desk does; the view must equal the log."""
    seqs = [data["seq"] for _, data in events]
    assert len(seqs) == len(set(seqs)), "the socket delivered a seq twice"
    view = {data["seq"]: (name, data) for name, data in events}
    last = 0
    while last + 1 in view:
        last += 1
    for event in await api.events(process, token, after=last):
        view.setdefault(event["seq"], (event["event"], event["data"]))
    log = await api.events(process, token)
    assert sorted(view) == [event["seq"] for event in log]
    assert all(view[event["seq"]] == (event["event"], event["data"]) for event in log)
    shown = {data["text"] for name, data in view.values() if name == "message.created"}
    assert shown == texts


async def test_healthz_says_whether_the_process_hears_redis(aiohttp_client, settings, pair):
    alone = await aiohttp_client(create_app(settings))
    response = await alone.get("/healthz")
    assert await response.json() == {"status": "ok"}

    client = await aiohttp_client(create_app(dataclasses.replace(settings, redis_url=pair.redis.url)))

    async def healthy() -> bool:
        response = await client.get("/healthz")
        body = await response.json()
        # A, B and this app: three subscribers once the first check has counted them.
        return response.status == 200 and body == {"status": "ok", "redis": "subscribed", "redis_subscribers": 3}

    await eventually(healthy, timeout=RESUBSCRIBE_WITHIN)


async def test_redis_restart_while_webhooks_flow(pair, api, fake_telegram):
    admin, queue, channel, secret = await setup_channel(api, pair.a, pair.b, fake_telegram)
    agent, token = await api.agent(pair.a, admin, "rd-anna", queue["id"])
    events: list = []
    await api.socket(pair.b, token, events)
    posted: list[str] = []
    stop = asyncio.Event()

    async def flow() -> None:
        while not stop.is_set():
            text = f"flow {len(posted)}"
            await api.webhook(pair.a, channel, secret, text_update(5400000 + len(posted) % 3, text))
            posted.append(text)
            await asyncio.sleep(0.05)

    writer = asyncio.create_task(flow())
    try:
        await eventually(lambda: sum(name == "message.created" for name, _ in events) >= 3, timeout=10)
        pair.redis.kill()

        async def serving_without_redis() -> bool:
            # The desk keeps working without Redis (200), and says it does not hear it.
            healths = [await api.call(process, "GET", "/healthz") for process in (pair.a, pair.b)]
            return all(health["status"] == "ok" and health["redis"] == "unsubscribed" for health in healths)

        await eventually(serving_without_redis, timeout=RESUBSCRIBE_WITHIN)
        await asyncio.sleep(1.0)  # webhooks keep coming while Redis is away
        await asyncio.to_thread(pair.redis.start)
        await eventually(lambda: both_subscribed(api, pair), timeout=RESUBSCRIBE_WITHIN)
        await asyncio.sleep(0.3)
    finally:
        stop.set()
        await writer

    # Live again: a message after the restart reaches the agent's socket on B without replay.
    await api.webhook(pair.a, channel, secret, text_update(5400000, "after the restart"))
    posted.append("after the restart")
    await eventually(lambda: any(name == "message.created" and data["text"] == "after the restart"
                                 for name, data in events), timeout=10)
    await assert_view_heals(api, pair.b, token, events, set(posted))


async def test_a_process_whose_subscription_goes_silent_subscribes_again(pair, api, fake_telegram):
    admin, queue, channel, secret = await setup_channel(api, pair.a, pair.b, fake_telegram)
    agent, token = await api.agent(pair.a, admin, "rd-boris", queue["id"])
    events: list = []
    await api.socket(pair.b, token, events)
    posted: list[str] = []

    async def post_and_hear() -> bool:
        text = f"message {len(posted)}"
        await api.webhook(pair.a, channel, secret, text_update(5500000, text))
        posted.append(text)
        await asyncio.sleep(0.2)
        return any(name == "message.created" and data["text"] == text for name, data in events)

    await eventually(post_and_hear, timeout=10)
    # B's connections to Redis stay open but carry nothing: nothing tells B it went deaf, but
    # its health check does not hear its own ping, so it subscribes again on a new connection.
    pair.partition.cut()
    assert not await post_and_hear()
    await eventually(post_and_hear, timeout=RESUBSCRIBE_WITHIN)
    await eventually(lambda: both_subscribed(api, pair), timeout=RESUBSCRIBE_WITHIN)
    await assert_view_heals(api, pair.b, token, events, set(posted))


async def test_replies_are_sent_while_redis_is_away(pair, api, fake_telegram):
    admin, queue, channel, secret = await setup_channel(api, pair.a, pair.b, fake_telegram)
    _, token = await api.agent(pair.a, admin, "rd-carla", queue["id"])
    await api.webhook(pair.a, channel, secret, text_update(5600100, "Hello?"))
    chat = next(chat for chat in await api.call(pair.a, "GET", "/api/chats?status=new", token)
                if chat["channel_id"] == channel["id"])
    pair.redis.kill()
    try:
        # The bots' rate limits are kept in Redis; while it is away each process keeps them on
        # its own, and replies still go (in the order typed).
        for process in (pair.a, pair.b):
            await api.call(process, "POST", f"/api/chats/{chat['id']}/messages", token,
                           {"text": f"via {process.name}"}, status=201)
        await eventually(lambda: [m["text"] for m in fake_telegram.sent_messages if str(m["chat_id"]) == "5600100"]
                         == ["via a", "via b"], timeout=20)
    finally:
        await asyncio.to_thread(pair.redis.start)
        await eventually(lambda: both_subscribed(api, pair), timeout=RESUBSCRIBE_WITHIN)
