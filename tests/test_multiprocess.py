"""Several processes serving one desk: two real ``python run.py`` processes on one PostgreSQL
database and one Redis, driven over HTTP and Socket.IO as an agent, an admin and a messenger would.

The processes run with the default transports (long-polling and websocket) and no load balancer:
the websocket works whichever process a client reaches; a polling session lives in one process,
which is why docs/deploy.md asks for websocket-only (or sticky sessions).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

import run

from desk.app import create_app
from desk.settings import from_env
from tests.conftest import eventually
from tests.servers import (
    ADMIN, PASSWORD, DeskProcess, create_admin, postgres_database, redis_server, setup_channel, sql, text_update,
)
from tests.servers import api  # noqa: F401  (pytest fixture)


class Cluster:
    """Two Desk processes, A and B, sharing a PostgreSQL database and a Redis server."""

    def __init__(self, database_url: str, a: DeskProcess, b: DeskProcess) -> None:
        self.database_url = database_url
        self.a = a
        self.b = b


@contextlib.contextmanager
def start_cluster(workdir: Path, *, bot_limit: float | None = None) -> Iterator[Cluster]:
    """Start A and B together (as systemd would) on a new database and a Redis of their own."""
    with postgres_database() as database_url, redis_server(workdir) as redis:
        flags = ("--db", database_url, "--redis", redis.url, "--public-url", "http://desk.test")
        a = DeskProcess("a", workdir, *flags, bot_limit=bot_limit)
        b = DeskProcess("b", workdir, *flags, bot_limit=bot_limit)
        try:
            # Both on the empty database at once: they create the schema between them.
            a.start(wait=False)
            b.start(wait=False)
            a.wait_ready()
            b.wait_ready()
            create_admin(database_url, workdir, ADMIN, PASSWORD)
            yield Cluster(database_url, a, b)
        finally:
            for process in (a, b):
                print(f"--- log of process {process.name} ---\n{process.stop()}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A and B with Telegram's limits as they are."""
    with start_cluster(tmp_path_factory.mktemp("cluster")) as started:
        yield started


async def test_both_processes_start_together_on_one_database(cluster):
    assert cluster.a.health()["redis"] == "subscribed"
    assert cluster.b.health()["redis"] == "subscribed"
    # Both migrated at once without a clash, and made one default queue between them.
    assert sql(cluster.database_url, "SELECT name FROM queue") == [("General",)]
    assert sql(cluster.database_url, "SELECT count(*) FROM schema_migrations")[0][0] >= 1


async def test_a_webhook_on_one_process_reaches_an_agent_on_the_other(cluster, api, fake_telegram):
    admin, queue, channel, secret = await setup_channel(api, cluster.a, cluster.b, fake_telegram)
    agent, token = await api.agent(cluster.a, admin, "mp-anna", queue["id"])
    events: list = []
    await api.socket(cluster.b, token, events)

    await api.webhook(cluster.a, channel, secret, text_update(5200001, "Where is my parcel?"))

    await eventually(lambda: any(name == "message.created" for name, _ in events), timeout=10)
    log = await api.events(cluster.b, token)
    names = [name for name, _ in sorted(events, key=lambda event: event[1]["seq"])]
    assert names[:2] == ["chat.created", "message.created"]
    message = next(data for name, data in events if name == "message.created")
    assert message["text"] == "Where is my parcel?" and message["direction"] == "in"
    logged = next(event for event in log if event["event"] == "message.created")
    # The socket got the payload of the log entry, with the seq the log gave it.
    assert message["seq"] == logged["seq"] and message == logged["data"]
    await eventually(lambda: len(events) >= len(log), timeout=10)
    assert [data["seq"] for _, data in sorted(events, key=lambda e: e[1]["seq"])] == [e["seq"] for e in log]


async def test_replies_through_both_processes_are_sent_once_each_in_order(cluster, api, fake_telegram):
    admin, queue, channel, secret = await setup_channel(api, cluster.a, cluster.b, fake_telegram)
    agent, token = await api.agent(cluster.a, admin, "mp-boris", queue["id"])
    await api.webhook(cluster.b, channel, secret, text_update(5200002, "Hello?"))
    chats = await api.call(cluster.a, "GET", "/api/chats?status=new", token)
    chat_id = next(chat["id"] for chat in chats if chat["channel_id"] == channel["id"])
    await api.call(cluster.b, "POST", f"/api/chats/{chat_id}/accept", token)

    texts = [f"reply {n}" for n in range(4)]
    created = []
    for n, text in enumerate(texts):
        process = (cluster.a, cluster.b)[n % 2]
        created.append(await api.call(process, "POST", f"/api/chats/{chat_id}/messages", token,
                                      {"text": text, "client_id": f"mp-{n}"}, status=201))
    # A retry of the same reply through the other process sends nothing more.
    again = await api.call(cluster.a, "POST", f"/api/chats/{chat_id}/messages", token,
                           {"text": texts[1], "client_id": "mp-1"}, status=200)
    assert again["id"] == created[1]["id"]

    async def all_sent() -> bool:
        page = await api.call(cluster.a, "GET", f"/api/chats/{chat_id}/messages?limit=50", token)
        out = [m for m in page["messages"] if m["direction"] == "out"]
        return len(out) == len(texts) and all(m["status"] == "sent" for m in out)

    await eventually(all_sent, timeout=30)
    # Nothing is left to send, so nothing more will reach the messenger.
    assert sql(cluster.database_url, "SELECT count(*) FROM job WHERE kind = 'send'") == [(0,)]
    sent = [m["text"] for m in fake_telegram.sent_messages if m["chat_id"] in (5200002, "5200002")]
    assert sent == texts


# Telegram's limit per bot, lowered for ``limited_cluster`` (sends a second): kept by both
# processes together, the last of 32 sends goes 6.2 s after the first slot; kept by each process
# alone, half as late.
BOT_LIMIT = 5.0
# Clocks: the processes time their slots by Redis's clock, the fake by this machine's monotonic one.
CLOCK_SLACK = 0.05


@pytest.fixture(scope="module")
def limited_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A and B with Telegram's limit per bot lowered to BOT_LIMIT sends a second."""
    with start_cluster(tmp_path_factory.mktemp("limited"), bot_limit=BOT_LIMIT) as started:
        yield started


async def test_a_bots_rate_limits_hold_for_both_processes_together(limited_cluster, api, fake_telegram):
    cluster = limited_cluster
    admin, queue, channel, secret = await setup_channel(api, cluster.a, cluster.b, fake_telegram)
    _, token = await api.agent(cluster.a, admin, "mp-rates", queue["id"])
    customers = [5800000 + n for n in range(30)]
    await asyncio.gather(*(api.webhook((cluster.a, cluster.b)[n % 2], channel, secret, text_update(user, "hello"))
                           for n, user in enumerate(customers)))
    listed = await api.call(cluster.a, "GET", "/api/chats?limit=100", token)
    chats = {int(chat["external_id"]): chat["id"] for chat in listed if chat["channel_id"] == channel["id"]}
    assert sorted(chats) == customers

    # One reply to each customer, and two more to the first, through both processes at once:
    # both send for the bot.
    first = customers[0]
    replies = [(user, f"reply to {user}") for user in customers] + [(first, "second"), (first, "third")]

    async def reply(n: int, user: int, text: str) -> None:
        await api.call((cluster.a, cluster.b)[n % 2], "POST", f"/api/chats/{chats[user]}/messages", token,
                       {"text": text}, status=201)

    start = time.monotonic()  # before any slot was taken
    others = asyncio.gather(*(reply(n, user, text) for n, (user, text) in enumerate(replies) if user != first))
    for n, text in enumerate(text for user, text in replies if user == first):  # in the order typed
        await reply(n, first, text)
    await others

    def sends() -> list[tuple[float, int, str]]:
        return sorted((at, int(params["chat_id"]), params["text"])
                      for (method, params), at in zip(fake_telegram.calls, fake_telegram.call_times)
                      if method.lower() == "sendmessage" and int(params["chat_id"]) in chats)

    await eventually(lambda: len(sends()) == len(replies), timeout=60)
    sent = sends()
    assert sorted((user, text) for _, user, text in sent) == sorted(replies)  # each once
    # Every slot of the bot is 1/BOT_LIMIT s after the one before, whichever process took it, and
    # no send goes before its slot: the n-th send cannot be earlier than n slots after the start.
    # (Kept by each process alone, two sends share each slot.) A loaded machine only sends later.
    early = [(n, round(at - start, 2)) for n, (at, _, _) in enumerate(sent) if at < start + n / BOT_LIMIT - CLOCK_SLACK]
    assert early == []
    # The first customer's replies: in the order typed, each a chat's slot (a second) after the
    # one before, wherever each was sent from.
    mine = [(at, text) for at, user, text in sent if user == first]
    assert [text for _, text in mine] == [f"reply to {first}", "second", "third"]
    assert [n for n, (at, _) in enumerate(mine) if at < start + n * 1.0 - CLOCK_SLACK] == []


async def test_concurrent_new_chats_on_both_processes_fill_capacity_exactly(cluster, api, fake_telegram):
    admin, queue, channel, secret = await setup_channel(api, cluster.a, cluster.b, fake_telegram, routing="round_robin")
    agents = [await api.agent(cluster.a, admin, f"mp-rr-{n}", queue["id"], max_chats=2, online=True)
              for n in range(3)]

    updates = [text_update(5300000 + n, f"new chat {n}", first_name=f"C{n}") for n in range(20)]
    await asyncio.gather(*(api.webhook((cluster.a, cluster.b)[n % 2], channel, secret, update)
                           for n, update in enumerate(updates)))

    chats = await api.call(cluster.b, "GET", "/api/chats?limit=100", admin)
    ours = [chat for chat in chats if chat["channel_id"] == channel["id"]]
    assert len(ours) == 20
    active = [chat for chat in ours if chat["status"] == "active"]
    assert len(active) == 6
    assert all(chat["operator_id"] is None for chat in ours if chat["status"] == "new")
    per_agent = {op["id"]: sum(chat["operator_id"] == op["id"] for chat in active) for op, _ in agents}
    assert per_agent == {op["id"]: 2 for op, _ in agents}
    # No chat was ever given to two agents: each agent's log names the chats handed to them.
    handed: dict[int, int] = {}
    for op, token in agents:
        for event in await api.events(cluster.a, token):
            data = event["data"]
            if event["event"] in ("chat.created", "chat.updated") and data.get("operator_id") == op["id"]:
                assert handed.setdefault(data["id"], op["id"]) == op["id"], f"chat {data['id']} assigned twice"
    assert sorted(handed) == sorted(chat["id"] for chat in active)


async def test_two_messages_of_a_new_customer_at_once_on_both_processes_open_one_chat(cluster, api, fake_telegram):
    admin, queue, channel, secret = await setup_channel(api, cluster.a, cluster.b, fake_telegram)
    customers = range(5500100, 5500105)
    # Each new customer's first two messages reach A and B at the same moment (Facebook, or a
    # Telegram retry racing the original): one of the two transactions clashes on the new contact.
    await asyncio.gather(*(api.webhook(process, channel, secret, text_update(user, f"{user} via {process.name}"))
                           for user in customers for process in (cluster.a, cluster.b)))

    chats = [chat for chat in await api.call(cluster.a, "GET", "/api/chats?limit=100", admin)
             if chat["channel_id"] == channel["id"]]
    assert sorted(int(chat["contact"]["external_id"]) for chat in chats) == list(customers)
    for chat in chats:
        page = await api.call(cluster.b, "GET", f"/api/chats/{chat['id']}/messages", admin)
        user = chat["contact"]["external_id"]
        assert sorted(m["text"] for m in page["messages"]) == [f"{user} via a", f"{user} via b"]
        assert chat["unread"] == 2


class RowLocks:
    """A transaction of the test's own on the cluster's database: it takes row locks and holds them until released."""

    def __init__(self, database_url: str) -> None:
        import psycopg2

        self.conn = psycopg2.connect(database_url)
        self.pid = self.conn.get_backend_pid()

    def execute(self, query: str, params: tuple = ()) -> None:
        with self.conn.cursor() as cursor:
            cursor.execute(query, params)

    def release(self) -> None:
        """End the transaction (nothing in it is kept): whoever waits for its rows goes on."""
        self.conn.rollback()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.cancel()  # a statement still waiting in another thread
            self.conn.close()


def lock_waits(database_url: str) -> dict[int, list[int]]:
    """Return the backends of the database waiting for a lock, each with the backends it waits for."""
    return dict(sql(database_url, "SELECT pid, pg_blocking_pids(pid) FROM pg_stat_activity "
                                  "WHERE datname = current_database() AND wait_event_type = 'Lock'"))


async def no_job_left(cluster: Cluster) -> None:
    """Wait until the processes have run every job (profile fetches), so that only the requests of the test write."""
    await eventually(lambda: sql(cluster.database_url, "SELECT count(*) FROM job") == [(0,)], timeout=30)


async def test_an_agent_of_two_queues_routed_at_once_on_both_processes_stays_within_max_chats(cluster, api, fake_telegram):
    admin, first, first_channel, first_secret = await setup_channel(api, cluster.a, cluster.b, fake_telegram,
                                                                    routing="round_robin")
    _, second, second_channel, second_secret = await setup_channel(api, cluster.a, cluster.b, fake_telegram,
                                                                   routing="least_busy")
    agent, token = await api.agent(cluster.a, admin, "mp-two-queues", first["id"], max_chats=1)
    await api.call(cluster.b, "PATCH", f"/api/operators/{agent['id']}", admin,
                   {"queue_ids": [first["id"], second["id"]]})
    await api.call(cluster.a, "PUT", "/api/operators/me/status", token, {"status": "online"})
    await no_job_left(cluster)

    # A new chat in each queue, one through each process, and both routings inside their
    # transactions at once: the test holds the admin's row, which each routing takes (for the
    # events of its assignment) and waits for; then it lets them go.
    held = RowLocks(cluster.database_url)
    posts = asyncio.gather(
        api.webhook(cluster.a, first_channel, first_secret, text_update(5600001, "via the first queue")),
        api.webhook(cluster.b, second_channel, second_secret, text_update(5600002, "via the second queue")),
    )
    try:
        held.execute("SELECT id FROM operator WHERE login = %s FOR NO KEY UPDATE", (ADMIN,))

        def both_wait() -> bool:
            waits = lock_waits(cluster.database_url)
            return len(waits) == 2 and all(set(by) <= {held.pid, *waits} for by in waits.values())

        await eventually(both_wait, timeout=20)
        held.release()
        await posts
    finally:
        held.close()

    chats = [chat for chat in await api.call(cluster.a, "GET", "/api/chats?limit=100", admin)
             if chat["channel_id"] in (first_channel["id"], second_channel["id"])]
    assert len(chats) == 2
    # max_chats is 1: one of the two chats is the agent's, the other waits in its queue.
    assert sorted(chat["status"] for chat in chats) == ["active", "new"]
    assert [chat["operator_id"] for chat in chats if chat["status"] == "active"] == [agent["id"]]
    assert sql(cluster.database_url, "SELECT count(*) FROM chat WHERE operator_id = %s AND status = 'active'",
               (agent["id"],)) == [(1,)]


async def test_an_accept_that_deadlocks_is_run_again_and_its_events_are_recorded_once(cluster, api, fake_telegram):
    admin, queue, channel, secret = await setup_channel(api, cluster.a, cluster.b, fake_telegram)
    agent, token = await api.agent(cluster.a, admin, "mp-dora", queue["id"])
    await api.webhook(cluster.b, channel, secret, text_update(5600010, "Anyone there?"))
    chat = next(chat for chat in await api.call(cluster.a, "GET", "/api/chats?status=new", token)
                if chat["channel_id"] == channel["id"])
    await no_job_left(cluster)

    # Two transactions of the test's own make a deadlock with the accept on A: one holds the
    # admin's row, the other the agent's (and never gives up first: its deadlock check waits a minute).
    admin_row, agent_row = RowLocks(cluster.database_url), RowLocks(cluster.database_url)
    accept = asyncio.ensure_future(api.call(cluster.a, "POST", f"/api/chats/{chat['id']}/accept", token))
    try:
        admin_row.execute("SELECT id FROM operator WHERE login = %s FOR NO KEY UPDATE", (ADMIN,))
        agent_row.execute("SET LOCAL deadlock_timeout = '60s'")
        agent_row.execute("SELECT id FROM operator WHERE id = %s FOR NO KEY UPDATE", (agent["id"],))
        # A has taken the chat and waits for the admin's row (its events are for the admin and the agent).
        await eventually(lambda: any(admin_row.pid in by for by in lock_waits(cluster.database_url).values()),
                         timeout=20)
        # The agent's row's holder asks for the chat: it waits for A.
        asks_chat = asyncio.ensure_future(asyncio.to_thread(
            agent_row.execute, "UPDATE chat SET unread = unread WHERE id = %s", (chat["id"],)))
        await eventually(lambda: agent_row.pid in lock_waits(cluster.database_url), timeout=20)
        # A gets the admin's row and asks for the agent's: a deadlock, and PostgreSQL aborts A.
        admin_row.release()
        await asks_chat
        agent_row.release()
        accepted = await accept
    finally:
        admin_row.close()
        agent_row.close()
        await asyncio.gather(accept, return_exceptions=True)

    # The accept was run again and answered as if nothing had happened, and recorded its events once.
    assert accepted["status"] == "active" and accepted["operator_id"] == agent["id"]
    taken = [event for event in await api.events(cluster.b, token)
             if event["data"].get("id") == chat["id"] and event["data"].get("status") == "active"]
    assert [event["event"] for event in taken] == ["chat.updated"]


async def test_revoking_a_token_on_one_process_drops_its_socket_on_the_other(cluster, api, fake_telegram):
    admin, queue, channel, secret = await setup_channel(api, cluster.a, cluster.b, fake_telegram)
    agent, token = await api.agent(cluster.a, admin, "mp-carla", queue["id"])
    sio = await api.socket(cluster.b, token, [])
    assert sio.connected

    await api.call(cluster.a, "DELETE", "/api/session", token, status=204)

    await eventually(lambda: not sio.connected, timeout=10)


async def test_an_embed_secret_rotated_through_one_process_is_the_one_every_process_checks(cluster, api):
    admin = await api.login(cluster.a, ADMIN)
    old = (await api.call(cluster.b, "GET", "/api/settings", admin))["embed_secret"]
    new = (await api.call(cluster.a, "POST", "/api/settings/embed-secret", admin))["embed_secret"]
    assert new != old
    assert (await api.call(cluster.b, "GET", "/api/settings", admin))["embed_secret"] == new

    def link(secret: str) -> str:
        token = jwt.encode({"sub": ADMIN, "exp": int(time.time()) + 300}, secret, algorithm="HS256")
        return f"{cluster.b.url}/embed?token={token}"

    async with api.http.get(link(new)) as response:
        assert response.status == 200
    async with api.http.get(link(old)) as response:
        assert response.status == 403


async def test_a_polling_session_lives_in_one_process_only(cluster, api):
    # Why several processes need websocket-only or sticky sessions: the long-polling session
    # opened on A is unknown to B, so a balancer that sends its next request to B breaks it.
    async with api.http.get(f"{cluster.a.url}/socket.io/?EIO=4&transport=polling") as response:
        assert response.status == 200
        body = await response.text()
    sid = json.loads(body[body.index("{"):])["sid"]
    path = f"/socket.io/?EIO=4&transport=polling&sid={sid}"
    async with api.http.post(cluster.a.url + path, data="40") as response:
        assert response.status == 200  # A knows the session
    async with api.http.post(cluster.b.url + path, data="40") as response:
        assert response.status == 400  # B does not
    async with api.http.post(cluster.a.url + path, data="1") as response:  # engine.io CLOSE
        assert response.status == 200


async def test_websocket_only_serves_no_long_polling(aiohttp_client, settings):
    # The setting docs/deploy.md recommends for several processes: no polling, no sticky sessions.
    app = create_app(dataclasses.replace(settings, transports=("websocket",)))
    server = await aiohttp_client(app)
    response = await server.get("/socket.io/?EIO=4&transport=polling")
    assert response.status == 400
    default = await aiohttp_client(create_app(settings))
    response = await default.get("/socket.io/?EIO=4&transport=polling")
    assert response.status == 200


def test_the_transports_come_from_a_flag_or_the_environment():
    assert from_env(None, {}).transports == ("polling", "websocket")
    assert from_env(None, {"DESK_TRANSPORTS": "websocket"}).transports == ("websocket",)
    flag = run.build_parser().parse_args(["--transports", "websocket"])
    assert from_env(flag, {"DESK_TRANSPORTS": "polling"}).transports == ("websocket",)
    with pytest.raises(ValueError, match="carrier-pigeon"):
        from_env(None, {"DESK_TRANSPORTS": "websocket,carrier-pigeon"})
