"""Ingestion benchmark (TARGETS P1, P2, P3, P4, P11): the real Desk server against minimal references.

One run, for each scenario asked:

1. starts a fake Telegram Bot API (in this process) and the real Desk server (bench/serve.py:
   run.py's serve path plus a loop-lag probe) on a fresh SQLite database, pinned to CPU 0;
2. sets the desk up as an admin would: ``run.py create-operator`` for the admin, then queues,
   agents, a Telegram channel (registered against the fake, which hands over the webhook
   secret) and the scenario's chats, all through the HTTP API;
3. connects every operator with a python-socketio AsyncClient (websocket) in a process of its own;
4. fires Telegram updates at ``/webhooks/{id}`` from a keep-alive HTTP/1.1 load generator (CPU 1):
   as fast as a fixed number of connections allows, then at fixed rates; counts and time bounded;
5. does the same against bench/reference.py (``log``: the §7 per-operator job by hand; ``room``:
   one room emit without a log) with the same operators, chats, clients and load;
6. measures a bare aiohttp POST (parse + reply) with the same generator (P2's baseline);
7. prints one table (Desk beside each baseline, with the ratio) and writes it as JSON to bench/out/.

Scenarios (fan-out = operators who get each message; each gets message.created, chat.updated
and unread.updated, so Desk writes and emits 3 x fan-out events per webhook):

- ``assigned``: every chat accepted by one agent first: a message reaches its agent and the admin;
- ``queue``: ``--agents`` agents in one queue, chats left ``new``: a message reaches all of them and
  the admin;
- ``queues``: ``--agents`` agents in ``--queues`` queues, chats ``new`` spread over the queues (P4:
  ``--agents 500 --queues 50 --rates 100``).

All traffic stays on 127.0.0.1. Run: ``python bench/ingest.py --agents 20 --seconds 10``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import json
import multiprocessing
import os
import random
import secrets
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp import web  # noqa: E402

from bench import clients as clients_mod  # noqa: E402
from bench.common import (  # noqa: E402
    BENCH,
    CLIENT_CPU,
    HOST,
    ROOT,
    HttpConnection,
    ServerProcess,
    cpu_seconds,
    free_port,
    lag_in,
    machine,
    machine_busy,
    pin,
    run_queue_wait,
    summary_ms,
)

BOT_TOKEN = "7012345678:AAH-bench-token"
BOT_ID = 7012345678
PASSWORD = "bench-password-123"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
CHAT_BASE = 500_000_000
# Connections the load generator keeps open (Telegram's default max_connections is 40).
CONNECTIONS = 32
# Open-loop phases: requests in flight at most; beyond it the offered rate falls and is reported.
MAX_IN_FLIGHT = 256
# Seeding agents straight into the database above this many (argon2 costs ~150 ms per operator).
API_AGENTS_MAX = 40
# bench/serve.py's cProfile output; with it set, only the measured phases are profiled.
PROFILE_ENV = "DESK_BENCH_PROFILE"


# --- the fake Bot API ----------------------------------------------------------------------------


class FakeBotApi:
    """The few Bot API methods Desk calls while a channel is set up and profiles are fetched."""

    def __init__(self) -> None:
        self.base_url = ""
        self.webhook_secret: str | None = None
        self.webhook_url: str | None = None
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        """Answer one Bot API call."""
        if request.match_info["token"] != BOT_TOKEN:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        params: dict[str, Any] = dict(request.query)
        if request.can_read_body and request.content_type == "application/json":
            params.update(await request.json())
        method = request.match_info["method"].lower()
        if method == "getme":
            result: Any = {"id": BOT_ID, "is_bot": True, "first_name": "Bench", "username": "bench_bot"}
        elif method == "setwebhook":
            self.webhook_url, self.webhook_secret = params.get("url"), params.get("secret_token")
            result = True
        elif method == "deletewebhook":
            result = True
        elif method == "getwebhookinfo":
            result = {"url": self.webhook_url or "", "pending_update_count": 0}
        elif method == "getchat":
            result = {"id": int(params.get("chat_id", 0)), "type": "private", "first_name": "Customer"}
        elif method == "getuserprofilephotos":
            result = {"total_count": 0, "photos": []}
        else:
            return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
        return web.json_response({"ok": True, "result": result})

    async def start(self) -> None:
        """Serve on a free loopback port."""
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, HOST, port).start()
        self.base_url = f"http://{HOST}:{port}"

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()


# --- the scenario ----------------------------------------------------------------------------------


@dataclass
class Scenario:
    """Who is connected, which chats messages go to, and who sees each message."""

    name: str
    agents: int
    queues: int
    chats: int

    def agent_queue(self, index: int) -> int:
        """Return the queue index (0-based) of agent ``index``."""
        return index % self.queues if self.name == "queues" else 0

    def chat_queue(self, index: int) -> int:
        """Return the queue index of chat ``index``."""
        return index % self.queues if self.name == "queues" else 0

    def chat_agent(self, index: int) -> int | None:
        """Return the agent index that accepted chat ``index`` (assigned scenario only)."""
        return index % self.agents if self.name == "assigned" else None

    def fanout(self) -> float:
        """Return how many operators (admin included) see each message."""
        if self.name == "assigned":
            return 2.0
        if self.name == "queue":
            return self.agents + 1.0
        return self.agents / self.queues + 1.0

    def external_id(self, index: int) -> int:
        """Return the Telegram chat id of chat ``index``."""
        return CHAT_BASE + index


@dataclass
class Target:
    """A server ready for load: URL, webhook path and secret, operator tokens (admin first)."""

    name: str
    server: ServerProcess
    path: str
    secret: str
    tokens: list[str]
    next_update: int = 1


def update_body(update_id: int, chat_external: int, text: str) -> bytes:
    """Return a Telegram text-message update."""
    sender = {"id": chat_external, "is_bot": False, "first_name": "Customer", "language_code": "en"}
    return json.dumps(
        {
            "update_id": update_id,
            "message": {
                "message_id": update_id,
                "from": sender,
                "chat": {"id": chat_external, "first_name": "Customer", "type": "private"},
                "date": int(time.time()),
                "text": text,
            },
        }
    ).encode()


# --- setting Desk up through its API ------------------------------------------------------------------


class Api:
    """JSON calls to the server under test."""

    def __init__(self, port: int) -> None:
        self.conn = HttpConnection(HOST, port)

    async def call(
        self, method: str, path: str, token: str | None = None, body: Any = None, expect: tuple[int, ...] = (200, 201)
    ) -> Any:
        """Call ``path`` and return its JSON; raise on an unexpected status."""
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else b""
        status, raw = await self.conn.request(method, path, data, headers)
        if status not in expect:
            raise RuntimeError(f"{method} {path}: {status} {raw[:300]!r}")
        return json.loads(raw) if raw else None

    async def login(self, login: str) -> str:
        """Open an API session and return its token."""
        return (await self.call("POST", "/api/session", body={"login": login, "password": PASSWORD}))["token"]


def seed_agents(db_path: Path, scenario: Scenario, queue_ids: list[int]) -> list[str]:
    """Insert agents and their tokens straight into Desk's database; return the tokens in order.

    Used above API_AGENTS_MAX agents: argon2 hashing through the API would take minutes. The
    agents share the admin's password hash; the bench never logs them in by password.
    """
    import hashlib

    conn = sqlite3.connect(db_path, timeout=30)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")
    password_hash = conn.execute("SELECT password_hash FROM operator WHERE login = 'admin'").fetchone()[0]
    tokens = []
    with conn:
        for index in range(scenario.agents):
            cur = conn.execute(
                "INSERT INTO operator(login, name, password_hash, role, status, max_chats, enabled, last_seq, created_at)"
                " VALUES (?, ?, ?, 'agent', 'online', 1000, 1, 0, ?)",
                (f"agent{index}", f"Agent {index}", password_hash, now),
            )
            conn.execute(
                "INSERT INTO operator_queue(operator_id, queue_id) VALUES (?, ?)",
                (cur.lastrowid, queue_ids[scenario.agent_queue(index)]),
            )
            token = secrets.token_urlsafe(32)
            conn.execute(
                "INSERT INTO token(operator_id, token_hash, kind, created_at) VALUES (?, ?, 'api', ?)",
                (cur.lastrowid, hashlib.sha256(token.encode()).hexdigest(), now),
            )
            tokens.append(token)
    conn.close()
    return tokens


async def gather_limited(coros: list, limit: int) -> list:
    """Run coroutines with at most ``limit`` at once."""
    slots = asyncio.Semaphore(limit)

    async def one(coro):  # noqa: ANN001, ANN202
        async with slots:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros))


async def start_desk(scenario: Scenario, workdir: Path, fake: FakeBotApi, debug: bool = False) -> Target:
    """Start Desk and set it up for ``scenario`` through run.py and the API."""
    port = free_port()
    db_path = workdir / "desk.db"
    db_url = f"sqlite:///{db_path}"
    flags = [
        "--host",
        HOST,
        "--port",
        str(port),
        "--db",
        db_url,
        "--media",
        str(workdir / "media"),
        "--public-url",
        f"http://{HOST}:{port}",
    ]
    env = {"DESK_PASSWORD": PASSWORD}
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "run.py"),
            "create-operator",
            "admin",
            "--name",
            "Admin",
            "--admin",
            "--db",
            db_url,
        ],
        check=True,
        env={**os.environ, **env},
        cwd=workdir,
        capture_output=True,
    )
    server = ServerProcess(
        "desk",
        [str(BENCH / "serve.py"), *flags],
        workdir,
        port,
        env={"DESK_BENCH_ASYNCIO_DEBUG": "1"} if debug else None,
    )
    await server.wait_ready()
    api = Api(port)
    admin = await api.login("admin")
    queue_ids = []
    for index in range(scenario.queues):
        queue = await api.call("POST", "/api/queues", admin, {"name": f"Bench {index}", "routing": "manual"})
        queue_ids.append(queue["id"])
    if scenario.agents <= API_AGENTS_MAX:

        async def agent(index: int) -> str:
            conn = Api(port)
            await conn.call(
                "POST",
                "/api/operators",
                admin,
                {
                    "login": f"agent{index}",
                    "name": f"Agent {index}",
                    "password": PASSWORD,
                    "max_chats": 1000,
                    "queue_ids": [queue_ids[scenario.agent_queue(index)]],
                },
            )
            token = await conn.login(f"agent{index}")
            conn.conn.close()
            return token

        agent_tokens = await gather_limited([agent(i) for i in range(scenario.agents)], 4)
    else:
        agent_tokens = seed_agents(db_path, scenario, queue_ids)
    channel = await api.call(
        "POST",
        "/api/channels",
        admin,
        {
            "provider": "telegram",
            "name": "Bench bot",
            "queue_id": queue_ids[0],
            "config": {"token": BOT_TOKEN, "api_base": fake.base_url},
        },
    )
    if not channel["registered"] or not fake.webhook_secret:
        raise RuntimeError(f"the channel did not register: {channel}")
    secret = fake.webhook_secret
    path = f"/webhooks/{channel['id']}"
    # The scenario's chats: each opened by a first message, then accepted or moved to its queue.
    for index in range(scenario.chats):
        body = update_body(index + 1, scenario.external_id(index), f"hello from chat {index}")
        status, raw = await api.conn.request(
            "POST", path, body, {SECRET_HEADER: secret, "Content-Type": "application/json"}
        )
        if status != 200:
            raise RuntimeError(f"setup webhook: {status} {raw[:200]!r}")
    chat_ids: dict[str, int] = {}
    before = None
    while True:
        page = await api.call("GET", "/api/chats?status=new&limit=100" + (f"&before={before}" if before else ""), admin)
        for chat in page:
            chat_ids[chat["external_id"]] = chat["id"]
        if len(page) < 100:
            break
        before = page[-1]["id"]
    actions = []
    for index in range(scenario.chats):
        chat_id = chat_ids[str(scenario.external_id(index))]
        agent = scenario.chat_agent(index)
        if agent is not None:
            actions.append(api.call("POST", f"/api/chats/{chat_id}/accept", agent_tokens[agent]))
        elif scenario.chat_queue(index) != 0:
            actions.append(
                api.call(
                    "POST", f"/api/chats/{chat_id}/transfer", admin, {"queue_id": queue_ids[scenario.chat_queue(index)]}
                )
            )
    for action in actions:  # one connection: one call at a time
        await action
    api.conn.close()
    await wait_jobs(db_path)
    return Target("desk", server, path, secret, [admin, *agent_tokens], next_update=scenario.chats + 1)


async def wait_jobs(db_path: Path, timeout: float = 30.0) -> None:
    """Wait until Desk's job table is empty (profile look-ups of the new contacts)."""
    deadline = time.monotonic() + timeout
    conn = sqlite3.connect(db_path, timeout=30)
    try:
        while time.monotonic() < deadline:
            if conn.execute("SELECT COUNT(*) FROM job").fetchone()[0] == 0:
                return
            await asyncio.sleep(0.2)
    finally:
        conn.close()


async def start_reference(mode: str, scenario: Scenario, workdir: Path) -> Target:
    """Start bench/reference.py in ``mode`` with the scenario's operators and chats."""
    port = free_port()
    secret = secrets.token_urlsafe(24)
    queue_ids = list(range(1, scenario.queues + 1))
    operators = [{"id": 1, "role": "admin", "token": secrets.token_urlsafe(32), "queues": []}]
    for index in range(scenario.agents):
        operators.append(
            {
                "id": index + 2,
                "role": "agent",
                "token": secrets.token_urlsafe(32),
                "queues": [queue_ids[scenario.agent_queue(index)]],
            }
        )
    chats = []
    for index in range(scenario.chats):
        agent = scenario.chat_agent(index)
        chats.append(
            {
                "id": index + 1,
                "external_id": str(scenario.external_id(index)),
                "queue_id": queue_ids[scenario.chat_queue(index)],
                "operator_id": agent + 2 if agent is not None else None,
                "status": "active" if agent is not None else "new",
            }
        )
    setup = {"channel_id": 1, "secret": secret, "queue_id": queue_ids[0], "operators": operators, "chats": chats}
    setup_path = workdir / f"reference-{mode}.json"
    setup_path.write_text(json.dumps(setup))
    server = ServerProcess(
        f"ref-{mode}",
        [
            str(BENCH / "reference.py"),
            "--mode",
            mode,
            "--port",
            str(port),
            "--db",
            str(workdir / f"reference-{mode}.db"),
            "--setup",
            str(setup_path),
        ],
        workdir,
        port,
    )
    await server.wait_ready()
    return Target(f"ref-{mode}", server, "/webhooks/1", secret, [op["token"] for op in operators])


async def start_bare(workdir: Path) -> Target:
    """Start the bare aiohttp POST server."""
    port = free_port()
    server = ServerProcess("bare", [str(BENCH / "reference.py"), "--mode", "bare", "--port", str(port)], workdir, port)
    await server.wait_ready()
    return Target("bare", server, "/webhooks/1", "", [])


# --- the socket clients --------------------------------------------------------------------------------


class Clients:
    """The client process and the pipe to it."""

    def __init__(self, url: str, tokens: list[str]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipe, child = ctx.Pipe()
        self.proc = ctx.Process(target=clients_mod.run, args=(child, url, tokens), daemon=True)
        self.proc.start()

    def ask(self, command: str, timeout: float = 120.0) -> tuple:
        """Send a command and wait for its answer."""
        self.pipe.send(command)
        return self.recv(timeout)

    def recv(self, timeout: float) -> tuple:
        """Wait for a message from the client process."""
        if not self.pipe.poll(timeout):
            raise RuntimeError("the socket clients did not answer")
        return self.pipe.recv()

    def stop(self) -> None:
        """Disconnect every client and end the process."""
        try:
            self.ask("stop", 60)
        finally:
            self.proc.join(10)
            if self.proc.is_alive():
                self.proc.kill()


async def settle(clients: Clients | None, quiet: float = 0.5, timeout: float = 90.0) -> None:
    """Wait until no socket event has arrived for ``quiet`` seconds (pushes of a phase drained)."""
    if clients is None:
        await asyncio.sleep(0.2)
        return
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        count = (await asyncio.to_thread(clients.ask, "count"))[1]
        if count == last:
            return
        last = count
        await asyncio.sleep(quiet)


# --- the load generator --------------------------------------------------------------------------------


@dataclass
class PhaseResult:
    """What one phase measured."""

    target: str
    scenario: str
    phase: str
    offered: float | None
    seconds: float
    sent: int
    ok: int
    errors: dict[str, int]
    http: dict[str, float]
    rate: float
    push: dict[str, float] = field(default_factory=dict)
    fanout: float = 0.0
    events_per_webhook: float = 0.0
    events_per_s: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    others_cpu: float = 0.0
    # Share of the phase the server's loop thread was ready to run but waited for its CPU.
    server_cpu_wait: float = 0.0
    lag: dict[str, float] = field(default_factory=dict)
    slow_callbacks: list[str] | None = None
    # Seconds from the end of the load until the last push arrived: how far pushes fell behind.
    drain_s: float = 0.0

    @property
    def delivered_rate(self) -> float:
        """Webhooks per second counted until their last push arrived (the full path, emits included)."""
        return self.ok / (self.seconds + self.drain_s) if self.seconds else 0.0

    @property
    def per_cpu_second(self) -> float:
        """Webhooks answered per CPU-second of the server: its capacity on one whole core."""
        return self.rate / self.server_cpu if self.server_cpu > 0 else float("nan")


async def load(
    target: Target, scenario: Scenario, rate: float | None, seconds: float, max_count: int, rng: random.Random
) -> tuple[list[tuple[float, float, int]], float, float]:
    """Send updates for ``seconds`` (at ``rate``/s, or as fast as CONNECTIONS allow); return samples, start, end."""
    port = target.server.port
    headers = {"Content-Type": "application/json"}
    if target.secret:
        headers[SECRET_HEADER] = target.secret
    samples: list[tuple[float, float, int]] = []
    pool: asyncio.Queue[HttpConnection] = asyncio.Queue()
    for _ in range(CONNECTIONS if rate is None else MAX_IN_FLIGHT):
        pool.put_nowait(HttpConnection(HOST, port))

    async def one() -> None:
        update_id = target.next_update
        target.next_update += 1
        chat = scenario.external_id(rng.randrange(scenario.chats))
        conn = await pool.get()
        try:
            sent_at = time.monotonic()
            body = update_body(update_id, chat, f"bench {sent_at:.6f} {update_id}")
            try:
                status, _ = await conn.request("POST", target.path, body, headers)
            except (OSError, asyncio.IncompleteReadError):
                conn.close()
                status = -1
            samples.append((sent_at, time.monotonic(), status))
        finally:
            pool.put_nowait(conn)

    start = time.monotonic()
    deadline = start + seconds
    sent = 0
    if rate is None:

        async def worker() -> None:
            nonlocal sent
            while time.monotonic() < deadline and sent < max_count:
                sent += 1
                await one()

        await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
    else:
        tasks: set[asyncio.Task] = set()
        while True:
            now = time.monotonic()
            if now >= deadline or sent >= max_count:
                break
            due = min(int((now - start) * rate) + 1, max_count) - sent
            for _ in range(due):
                if len(tasks) >= MAX_IN_FLIGHT:
                    break  # the server is that far behind: the offered rate falls, and the result says so
                sent += 1
                task = asyncio.create_task(one())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.sleep(0.001)
        if tasks:
            await asyncio.gather(*list(tasks))
    end = time.monotonic()
    while not pool.empty():
        pool.get_nowait().close()
    return samples, start, end


async def run_phase(
    target: Target,
    scenario: Scenario,
    clients: Clients | None,
    phase: str,
    seconds: float,
    max_count: int,
    rng: random.Random,
) -> PhaseResult:
    """Run one phase against ``target`` and summarise it."""
    rate = None if phase == "max" else float(phase)
    client_pid = clients.proc.pid if clients is not None else None

    def ours() -> tuple[float, float, float]:
        client = cpu_seconds(client_pid) if client_pid else 0.0
        return target.server.cpu(), _self_cpu() + client, machine_busy()

    profiling = target.name == "desk" and bool(os.environ.get(PROFILE_ENV))
    if profiling:  # bench/serve.py profiles only the phases from now on
        os.kill(target.server.proc.pid, signal.SIGUSR1)
    wait0 = run_queue_wait(target.server.proc.pid)
    cpu0, ccpu0, busy0 = ours()
    samples, start, end = await load(target, scenario, rate, seconds, max_count, rng)
    cpu1, ccpu1, busy1 = ours()
    wait1 = run_queue_wait(target.server.proc.pid)
    elapsed = end - start
    ok = [s for s in samples if s[2] == 200]
    errors: dict[str, int] = {}
    for s in samples:
        if s[2] != 200:
            errors[str(s[2])] = errors.get(str(s[2]), 0) + 1
    result = PhaseResult(
        target=target.name,
        scenario=scenario.name,
        phase=phase,
        offered=rate,
        seconds=elapsed,
        sent=len(samples),
        ok=len(ok),
        errors=errors,
        http=summary_ms([s[1] - s[0] for s in samples]),
        rate=len(ok) / elapsed,
        server_cpu=(cpu1 - cpu0) / elapsed,
        client_cpu=(ccpu1 - ccpu0) / elapsed,
        others_cpu=max(0.0, (busy1 - busy0) - (cpu1 - cpu0) - (ccpu1 - ccpu0)) / elapsed,
        server_cpu_wait=(wait1 - wait0) / elapsed,
    )
    if clients is not None:
        await settle(clients)
    if profiling:  # the phase's pushes included
        os.kill(target.server.proc.pid, signal.SIGUSR2)
    if clients is not None:
        events = (await asyncio.to_thread(clients.ask, "take"))[1]
        created = [e for e in events if e[2] == "message.created" and start - 0.001 <= e[3] <= end]
        result.push = summary_ms([e[0] - e[3] for e in created])
        result.fanout = len(created) / max(len(ok), 1)
        result.events_per_webhook = len(events) / max(len(ok), 1)
        result.events_per_s = len(events) / elapsed
        result.drain_s = max(0.0, max((e[0] for e in events), default=end) - end)
    result.lag = {"start": start, "end": end}
    return result


def _self_cpu() -> float:
    times = os.times()
    return times.user + times.system


# --- the run -----------------------------------------------------------------------------------------------


async def bench_target(
    make, scenario: Scenario, phases: list[str], args: argparse.Namespace, rng: random.Random
) -> list[PhaseResult]:
    """Start a target, connect its clients, run the phases, stop it; return the phase results."""
    target: Target = await make()
    results: list[PhaseResult] = []
    clients = None
    try:
        if target.tokens:
            clients = Clients(target.server.url, target.tokens)
            ready = await asyncio.to_thread(clients.recv, 300)
            if ready[1] != len(target.tokens):
                raise RuntimeError(
                    f"{target.name}: {ready[1]} of {len(target.tokens)} sockets connected: {ready[2][:3]}"
                )
            print(
                f"  {target.name}: {ready[1]} sockets connected (server RSS {target.server.rss():.0f} MiB)", flush=True
            )
        # Warm-up: a short burst that is not measured.
        await load(target, scenario, None, 1.0, 2000, rng)
        await settle(clients)
        if clients is not None:
            await asyncio.to_thread(clients.ask, "take")
        for phase in phases:
            result = await run_phase(target, scenario, clients, phase, args.seconds, args.max_count, rng)
            results.append(result)
            print("  " + row(result), flush=True)
    finally:
        if clients is not None:
            await asyncio.to_thread(clients.stop)
        lag = target.server.stop()
        slow = _slow_callbacks(target.server.lag_path)
    for result in results:
        window = result.lag
        result.lag = lag_in(lag, window["start"], window["end"])
        if slow is not None:
            end = window["end"] + result.drain_s
            result.slow_callbacks = [text for t, text in slow if window["start"] <= t <= end]
            print(
                f"  {target.name} {result.phase}: asyncio debug mode, slow callbacks (> 50 ms) during the phase: "
                f"{len(result.slow_callbacks)} (whole run, set-up included: {len(slow)})",
                flush=True,
            )
            for text in result.slow_callbacks[:5]:
                print(f"    {text}", flush=True)
    return results


def _slow_callbacks(path: Path) -> list[tuple[float, str]] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    slow = data.get("slow_callbacks")
    return None if slow is None else [(t, text) for t, text in slow]


def fmt(value: float, digits: int = 1) -> str:
    """Format a number, with '-' for nan."""
    return "-" if value != value else f"{value:,.{digits}f}"


def row(r: PhaseResult) -> str:
    """Return a one-line summary of a phase."""
    offered = "max" if r.offered is None else f"{r.offered:.0f}/s"
    push = (
        f"push p50 {fmt(r.push.get('p50', float('nan')))} p99 {fmt(r.push.get('p99', float('nan')))} ms"
        if r.push
        else "no sockets"
    )
    errors = f" errors {r.errors}" if r.errors else ""
    return (
        f"{r.target:9} {r.scenario:9} {offered:>7}: {r.rate:8,.0f} webhooks/s, HTTP p50 {fmt(r.http['p50'])} "
        f"p99 {fmt(r.http['p99'])} ms, {push}, fan-out {r.fanout:.1f} ops ({r.events_per_webhook:.0f} events), "
        f"pushes done {r.drain_s:.1f} s after the load ({r.delivered_rate:,.0f} webhooks/s delivered), "
        f"server CPU {r.server_cpu:.0%} ({r.per_cpu_second:,.0f}/CPU-s, waited for CPU {r.server_cpu_wait:.0%}), "
        f"bench CPU {r.client_cpu:.0%}, "
        f"others {r.others_cpu:.0%}{errors}"
    )


def table(results: list[PhaseResult]) -> str:
    """Return the results as a Markdown table, with ratios of Desk to each baseline."""
    lines = [
        "| server | scenario | load | webhooks/s | per server CPU-s | HTTP p50 / p99 ms | push p50 / p99 ms "
        "| pushes done after load s (delivered webhooks/s) | fan-out ops (events/webhook) "
        "| server / bench / other CPU (server waited for CPU) | loop lag p99 / max ms "
        "| errors |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        offered = "max" if r.offered is None else f"{r.offered:.0f}/s"
        push = f"{fmt(r.push['p50'])} / {fmt(r.push['p99'])}" if r.push else "-"
        fan = f"{r.fanout:.1f} ({r.events_per_webhook:.0f})" if r.push else "-"
        lag = f"{fmt(r.lag.get('p99', float('nan')))} / {fmt(r.lag.get('max', float('nan')))}"
        errors = ", ".join(f"{k}: {v}" for k, v in r.errors.items()) or "0"
        if r.slow_callbacks is not None:
            errors += f"; asyncio slow callbacks > 50 ms: {len(r.slow_callbacks)}"
        lines.append(
            f"| {r.target} | {r.scenario} | {offered} | {r.rate:,.0f} | {r.per_cpu_second:,.0f} "
            f"| {fmt(r.http['p50'])} / {fmt(r.http['p99'])} | {push} | {r.drain_s:.1f} ({r.delivered_rate:,.0f}) | {fan} "
            f"| {r.server_cpu:.0%} / {r.client_cpu:.0%} / {r.others_cpu:.0%} ({r.server_cpu_wait:.0%}) "
            f"| {lag} | {errors} |"
        )
    desk = {(r.scenario, r.phase): r for r in results if r.target == "desk"}
    bare = next((r for r in results if r.target == "bare"), None)
    ratios = []
    for r in results:
        if r.target in ("desk", "bare"):
            continue
        mine = desk.get((r.scenario, r.phase))
        if mine is not None and r.phase == "max":
            ratios.append(
                f"- {r.scenario}, max: Desk {mine.rate:,.0f}/s vs {r.target} {r.rate:,.0f}/s = "
                f"**{mine.rate / r.rate:.2f}x**; per server CPU-second {mine.per_cpu_second:,.0f} vs "
                f"{r.per_cpu_second:,.0f} = **{mine.per_cpu_second / r.per_cpu_second:.2f}x**"
            )
    if bare is not None:
        for (scenario, phase), mine in desk.items():
            if phase == "max":
                ratios.append(
                    f"- {scenario}, max: Desk vs bare aiohttp POST: {mine.rate:,.0f}/s vs {bare.rate:,.0f}/s "
                    f"= **{mine.rate / bare.rate:.1%}**; per server CPU-second {mine.per_cpu_second:,.0f} vs "
                    f"{bare.per_cpu_second:,.0f} = **{mine.per_cpu_second / bare.per_cpu_second:.1%}** "
                    f"(P2 wants >= 6%)"
                )
    return "\n".join(lines + [""] + ratios)


async def main_async(args: argparse.Namespace) -> int:
    """Run the scenarios asked for and print the table."""
    pin(CLIENT_CPU)
    rng = random.Random(args.seed)
    out = BENCH / "out"
    out.mkdir(exist_ok=True)
    all_results: list[PhaseResult] = []
    info = machine()
    print(f"machine: {info}", flush=True)
    fake = FakeBotApi()
    await fake.start()
    try:
        for name in args.scenario:
            agents = args.agents
            queues = args.queues if name == "queues" else 1
            chats = args.chats or (max(agents * 5, 100) if name == "assigned" else max(queues * 2, 100))
            scenario = Scenario(name, agents, queues, chats)
            rates = args.rates or (["max", "200", "1000"] if name == "assigned" else ["max", "200"])
            print(
                f"scenario {name}: {agents} agents, {queues} queue(s), {chats} chats, fan-out "
                f"{scenario.fanout():.0f} operators per message; phases {rates}, {args.seconds:.0f} s each",
                flush=True,
            )
            for server in args.servers:
                if server == "bare":
                    continue
                with tempfile.TemporaryDirectory(prefix=f"bench-{server}-") as tmp:
                    workdir = Path(tmp)
                    if server == "desk":
                        make = functools.partial(start_desk, scenario, workdir, fake, args.asyncio_debug)
                    else:
                        make = functools.partial(start_reference, server.removeprefix("ref-"), scenario, workdir)
                    all_results += await bench_target(make, scenario, rates, args, rng)
                    if args.keep_logs:
                        for log in workdir.glob("*.log"):
                            (out / f"{name}-{log.name}").write_bytes(log.read_bytes())
        if "bare" in args.servers:
            with tempfile.TemporaryDirectory(prefix="bench-bare-") as tmp:
                bare = Scenario("bare", 0, 1, 100)
                all_results += await bench_target(functools.partial(start_bare, Path(tmp)), bare, ["max"], args, rng)
    finally:
        await fake.stop()
    text = table(all_results)
    print()
    print(text)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (out / f"ingest-{stamp}.json").write_text(
        json.dumps(
            {
                "machine": info,
                "args": vars(args),
                "results": [
                    {**r.__dict__, "per_cpu_second": r.per_cpu_second, "delivered_rate": r.delivered_rate}
                    for r in all_results
                ],
            },
            indent=1,
            default=str,
        )
    )
    (out / f"ingest-{stamp}.md").write_text(text + "\n")
    print(f"\nwritten: bench/out/ingest-{stamp}.json and .md")
    return 0


def main() -> int:
    """Parse the flags and run."""
    parser = argparse.ArgumentParser(prog="bench/ingest.py", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--scenario", nargs="+", choices=("assigned", "queue", "queues"), default=["assigned", "queue"])
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--queues", type=int, default=50, help="queues of the 'queues' scenario")
    parser.add_argument("--chats", type=int, default=0, help="chats the messages go to (default: by scenario)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--max-count", type=int, default=100_000, help="most webhooks per phase")
    parser.add_argument("--rates", nargs="+", help="phases: 'max' and/or webhooks per second (default: by scenario)")
    parser.add_argument(
        "--servers",
        nargs="+",
        default=["desk", "ref-log", "ref-room", "bare"],
        choices=("desk", "ref-log", "ref-room", "bare"),
    )
    parser.add_argument(
        "--asyncio-debug", action="store_true", help="run Desk in asyncio debug mode and count slow callbacks (> 50 ms)"
    )
    parser.add_argument("--keep-logs", action="store_true", help="copy the servers' logs to bench/out/")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
