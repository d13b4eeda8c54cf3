"""Scale benchmark (TARGETS P5, P6, P7, P8 on PostgreSQL, P12): Desk beyond one process, in one run.

Parts (``--parts``, all by default, in this order), each beside its baseline from the same run:

- ``ingest`` (P4/P5): bench/ingest.py's ``queues`` load (500 agents in 50 queues of 10, fan-out 11
  operators, 33 events per webhook) at ``--rates`` (default ``max`` and 100 webhooks/s) against
  Desk on SQLite (1 process, the baseline), PostgreSQL (1 process), PostgreSQL + Redis (1 process)
  and PostgreSQL + Redis in 2 processes A and B: webhooks alternate between A and B, the admin and
  the first half of the agents are connected to A, the other half to B; push latency is kept per
  pair (webhook to A, socket on B is "A->B": P5);
- ``sockets`` (P6): ``--sockets`` websocket Socket.IO connections (one agent each) to one Desk
  process (PostgreSQL + Redis), server RSS before, with them, and after they closed; the same
  clients against a bare python-socketio server (bench/bare_sio.py);
- ``fanout`` (P7): one message to 100 sockets. Desk: 99 agents and the admin in one queue, one
  socket each, messages to ``new`` chats of the queue (each message: 3 events to each of 100
  operators = 300 emits); the server time of each message's emits is timed inside the server
  (bench/serve.py, ``DESK_BENCH_EMITS``). Bare python-socketio: one emit to a room of 100
  sockets, and 100 emits to 100 rooms of one socket (Desk's per-operator addressing), without
  and with the Redis manager. At ``--fanout-rate`` (timing) and as fast as 32 connections allow
  (deliveries per server CPU-second);
- ``store`` (P8, P9 on PostgreSQL): bench/store_pg.py (1M messages, 100k in one chat);
- ``soak`` (P12): one Desk process (PostgreSQL + Redis), 1,000 agent sockets in 100 queues of 10,
  ``--churn`` reconnects a second (one socket closed, one opened), ``--soak-rate`` webhooks a
  second, for ``--soak-seconds`` (600); server RSS and open fds every 10 s. Then the same churn and
  the same emits (11 rooms x 3 events per message) against the bare python-socketio server for
  ``--soak-bare-seconds``.

Processes: Desk and bare servers pinned to CPU 0 (process B of the two-process deployment to
``--b-cpu``, 1 by default: one process per core), the load generator and the socket clients
(bench/wsclients.py: the Socket.IO protocol by hand over aiohttp's websocket client, several
processes) to CPU 1; PostgreSQL and the bench's own redis-server are not pinned. Each phase
reports the CPU seconds of the servers, of PostgreSQL's backends for the bench's database, of
redis-server, of the bench, and of everything else on the machine ("others": the contention),
and how long the servers waited for a CPU.

Everything stays on 127.0.0.1; PostgreSQL databases are ``desk_bench_<part>`` (created and
dropped); Redis is a server of the bench's own on a free port. Results: the terminal and
``bench/out/scale-<time>.md`` and ``.json``. Run: ``python bench/scale.py`` (about 25 minutes);
``python bench/scale.py --quick`` (about 5 minutes, smaller everything).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import itertools
import json
import os
import random
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import store_pg  # noqa: E402
from bench.backends import PgBackends, pg_available, pg_database, redis_server  # noqa: E402
from bench.common import (  # noqa: E402
    BENCH,
    CLIENT_CPU,
    HOST,
    LAG_SAMPLES_ENV,
    ROOT,
    SERVER_CPU,
    HttpConnection,
    ServerProcess,
    cpu_seconds,
    free_port,
    machine,
    machine_busy,
    pin,
    run_queue_wait,
    summary_ms,
)
from bench.ingest import PASSWORD, SECRET_HEADER, Api, FakeBotApi, Scenario, update_body  # noqa: E402
from bench.wsclients import Fleet  # noqa: E402

# Connections of the "max" phases (Telegram's default max_connections is 40), and requests in
# flight at most in the fixed-rate phases (beyond it the offered rate falls, and is reported).
CONNECTIONS = 32
MAX_IN_FLIGHT = 256
SAMPLE_EVERY = 10.0
# Update ids of the measured webhooks start above the set-up's.
UPDATE_BASE = 10_000_000

CONFIGS: dict[str, dict[str, Any]] = {
    "sqlite": {"db": "sqlite", "redis": False, "procs": 1},
    "pg": {"db": "pg", "redis": False, "procs": 1},
    "pg-redis": {"db": "pg", "redis": True, "procs": 1},
    "pg-redis-2": {"db": "pg", "redis": True, "procs": 2},
}
TAGS = "AB"


# --- the database, straight (seeding agents, waiting for jobs) -------------------------------------


class Db:
    """A plain connection to Desk's database (SQLite or PostgreSQL), ``?`` placeholders."""

    def __init__(self, url: str) -> None:
        self.pg = url.startswith("postgres")
        if self.pg:
            import psycopg2

            self.conn: Any = psycopg2.connect(url)
        else:
            self.conn = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30)

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.pg else sql

    def rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Run one statement, commit, return its rows."""
        cur = self.conn.cursor()
        cur.execute(self._sql(sql), params)
        found = cur.fetchall() if cur.description else []
        self.conn.commit()
        return found

    def many(self, sql: str, rows: list[tuple]) -> None:
        """Run one statement for many rows, commit."""
        cur = self.conn.cursor()
        if self.pg:
            from psycopg2.extras import execute_batch

            execute_batch(cur, self._sql(sql), rows, page_size=500)
        else:
            cur.executemany(sql, rows)
        self.conn.commit()

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


def seed_agents(db: Db, count: int, queue_of: Callable[[int], int]) -> list[str]:
    """Insert ``count`` online agents, their queue memberships and API tokens; return the tokens in order.

    Straight into the database: argon2 through the API costs ~150 ms per operator. The agents
    share the admin's password hash; the bench never signs them in by password.
    """
    import hashlib

    now = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")
    password_hash = db.rows("SELECT password_hash FROM operator WHERE login = 'admin'")[0][0]
    db.many(
        "INSERT INTO operator(login, name, password_hash, role, status, max_chats, enabled, last_seq, created_at)"
        " VALUES (?, ?, ?, 'agent', 'online', 1000, ?, 0, ?)",
        [(f"agent{i}", f"Agent {i}", password_hash, True, now) for i in range(count)],
    )
    ids = dict(db.rows("SELECT login, id FROM operator WHERE role = 'agent'"))
    db.many(
        "INSERT INTO operator_queue(operator_id, queue_id) VALUES (?, ?)",
        [(ids[f"agent{i}"], queue_of(i)) for i in range(count)],
    )
    tokens = [secrets.token_urlsafe(32) for _ in range(count)]
    db.many(
        "INSERT INTO token(operator_id, token_hash, kind, created_at) VALUES (?, ?, 'api', ?)",
        [(ids[f"agent{i}"], hashlib.sha256(t.encode()).hexdigest(), now) for i, t in enumerate(tokens)],
    )
    return tokens


# --- deployments ---------------------------------------------------------------------------------------


@dataclass
class Deployment:
    """Desk processes (or the bare server) with their database, Redis and PostgreSQL backends."""

    name: str
    servers: list[ServerProcess]
    db_url: str | None = None
    redis: Any = None
    pg: PgBackends | None = None
    emits: dict[str, list[tuple[float, float, float, int]]] = field(default_factory=dict)
    # Each server's heap samples (bench.common.heap) taken by the server itself.
    memory: dict[str, list[tuple[float, dict[str, float]]]] = field(default_factory=dict)

    @property
    def a(self) -> ServerProcess:
        return self.servers[0]


def _read_extra(server: ServerProcess, dep: Deployment) -> None:
    try:
        data = json.loads(server.lag_path.read_text())
    except (OSError, ValueError):
        return
    dep.emits[server.name] = [tuple(e) for e in data.get("emits", [])]
    dep.memory[server.name] = [(t, m) for t, m in data.get("memory", [])]


@contextlib.asynccontextmanager
async def desk(config: str, purpose: str, workdir: Path, args: argparse.Namespace, emits: bool = False,
               lag: bool = True) -> AsyncIterator[Deployment]:
    """Run Desk in ``config`` (see CONFIGS) with a fresh database; yield the deployment; stop it all.

    ``emits``: time the emits of each change; ``lag``: run the loop-lag probe (it keeps every sample).
    """
    spec = CONFIGS[config]
    with contextlib.ExitStack() as stack:
        if spec["db"] == "pg":
            db_url = stack.enter_context(pg_database(purpose))
        else:
            db_url = f"sqlite:///{workdir / 'desk.db'}"
        redis = stack.enter_context(redis_server(workdir)) if spec["redis"] else None
        subprocess.run(
            [sys.executable, str(ROOT / "run.py"), "create-operator", "admin", "--name", "Admin", "--admin",
             "--db", db_url],
            check=True, env={**os.environ, "DESK_PASSWORD": PASSWORD}, cwd=workdir, capture_output=True,
        )
        servers: list[ServerProcess] = []
        dep = Deployment(config, servers, db_url, redis)
        try:
            for index in range(spec["procs"]):
                port = free_port()
                flags = ["--host", HOST, "--port", str(port), "--db", db_url, "--media", str(workdir / "media"),
                         "--public-url", f"http://{HOST}:{port}", "--transports", "websocket"]
                if redis is not None:
                    flags += ["--redis", redis.url]
                env = {"DESK_BENCH_EMITS": "1"} if emits else {}
                if not lag:
                    env[LAG_SAMPLES_ENV] = "0"
                server = ServerProcess(f"desk-{config}-{TAGS[index]}", [str(BENCH / "serve.py"), *flags], workdir, port,
                                       env=env, cpu=SERVER_CPU if index == 0 else args.b_cpu)
                servers.append(server)
                await server.wait_ready()
            if spec["db"] == "pg":
                dep.pg = PgBackends(db_url)
            yield dep
        finally:
            for server in servers:
                server.stop()
                _read_extra(server, dep)
                keep_log(server, purpose, args)
            if dep.pg is not None:
                dep.pg.close()


def keep_log(server: ServerProcess, purpose: str, args: argparse.Namespace) -> None:
    """Copy a server's log to bench/out/ when --keep-logs was given."""
    if args.keep_logs and server.log_path.exists():
        out = BENCH / "out"
        out.mkdir(exist_ok=True)
        (out / f"scale-{purpose}-{server.name}.log").write_bytes(server.log_path.read_bytes())


@contextlib.asynccontextmanager
async def bare(workdir: Path, redis: bool, lag: bool = True, emits: bool = False) -> AsyncIterator[Deployment]:
    """Run the bare python-socketio server (with its own Redis when asked); yield it; stop it."""
    with contextlib.ExitStack() as stack:
        server_redis = stack.enter_context(redis_server(workdir)) if redis else None
        port = free_port()
        argv = [str(BENCH / "bare_sio.py"), "--port", str(port)]
        if server_redis is not None:
            argv += ["--redis", server_redis.url]
        if emits:
            argv.append("--time-emits")
        name = "bare-redis" if redis else "bare"
        server = ServerProcess(name, argv, workdir, port, env=None if lag else {LAG_SAMPLES_ENV: "0"})
        dep = Deployment(name, [server], redis=server_redis)
        try:
            await server.wait_ready()
            yield dep
        finally:
            server.stop()
            _read_extra(server, dep)


@dataclass
class Setup:
    """What the load needs: the webhook path and secret, operator tokens (admin first), chat ids."""

    path: str = ""
    secret: str = ""
    tokens: list[str] = field(default_factory=list)
    externals: list[int] = field(default_factory=list)


async def populate(dep: Deployment, scenario: Scenario, fake: FakeBotApi) -> Setup:
    """Set Desk up for ``scenario`` through process A: queues, seeded agents, a channel, the chats."""
    api = Api(dep.a.port)
    admin = await api.login("admin")
    queue_ids = []
    for index in range(scenario.queues):
        queue = await api.call("POST", "/api/queues", admin, {"name": f"Bench {index}", "routing": "manual"})
        queue_ids.append(queue["id"])
    db = Db(dep.db_url or "")
    try:
        agent_tokens = seed_agents(db, scenario.agents, lambda i: queue_ids[scenario.agent_queue(i)])
        setup = Setup(tokens=[admin, *agent_tokens])
        if not scenario.chats:
            return setup
        channel = await api.call("POST", "/api/channels", admin, {
            "provider": "telegram", "name": "Bench bot", "queue_id": queue_ids[0],
            "config": {"token": "7012345678:AAH-bench-token", "api_base": fake.base_url}})
        if not channel["registered"] or not fake.webhook_secret:
            raise RuntimeError(f"the channel did not register: {channel}")
        setup.path, setup.secret = f"/webhooks/{channel['id']}", fake.webhook_secret
        headers = {SECRET_HEADER: setup.secret, "Content-Type": "application/json"}
        for index in range(scenario.chats):
            body = update_body(index + 1, scenario.external_id(index), f"hello from chat {index}")
            status, raw = await api.conn.request("POST", setup.path, body, headers)
            if status != 200:
                raise RuntimeError(f"setup webhook: {status} {raw[:200]!r}")
        chat_ids: dict[str, int] = {}
        before = None
        while True:
            page = await api.call("GET", "/api/chats?status=new&limit=100" + (f"&before={before}" if before else ""),
                                  admin)
            for chat in page:
                chat_ids[chat["external_id"]] = chat["id"]
            if len(page) < 100:
                break
            before = page[-1]["id"]
        for index in range(scenario.chats):
            chat_id = chat_ids[str(scenario.external_id(index))]
            agent = scenario.chat_agent(index)
            if agent is not None:
                await api.call("POST", f"/api/chats/{chat_id}/accept", agent_tokens[agent])
            elif scenario.chat_queue(index) != 0:
                await api.call("POST", f"/api/chats/{chat_id}/transfer", admin,
                               {"queue_id": queue_ids[scenario.chat_queue(index)]})
        setup.externals = [scenario.external_id(i) for i in range(scenario.chats)]
        deadline = time.monotonic() + 60
        while db.rows("SELECT COUNT(*) FROM job")[0][0] and time.monotonic() < deadline:
            await asyncio.sleep(0.2)  # the new contacts' profile look-ups
        return setup
    finally:
        db.close()
        api.conn.close()


# --- load -------------------------------------------------------------------------------------------


@dataclass
class Endpoint:
    """Where one stream of requests goes: the server's tag and port, and how to build a request."""

    tag: str
    port: int
    build: Callable[[int, str], tuple[str, bytes, dict[str, str]]]


def webhook_endpoint(tag: str, server: ServerProcess, setup: Setup, rng: random.Random) -> Endpoint:
    """Telegram text updates to a random chat of the set-up."""
    headers = {"Content-Type": "application/json", SECRET_HEADER: setup.secret}

    def build(n: int, text: str) -> tuple[str, bytes, dict[str, str]]:
        return setup.path, update_body(n, rng.choice(setup.externals), text), headers

    return Endpoint(tag, server.port, build)


def emit_endpoint(server: ServerProcess, query: str) -> Endpoint:
    """The bare server's ``POST /emit?<query>`` with the text as body."""
    path = f"/emit?{query}"

    def build(n: int, text: str) -> tuple[str, bytes, dict[str, str]]:
        return path, text.encode(), {}

    return Endpoint("A", server.port, build)


async def fire(endpoints: list[Endpoint], rate: float | None, seconds: float, counter: itertools.count,
               limit: int = 10**9) -> tuple[list[tuple[float, float, int, str]], float, float]:
    """Send requests for ``seconds`` (``limit`` at most), alternating the endpoints: at ``rate``/s, or back to back.

    Each request's text is ``bench <monotonic send time> <n> <endpoint tag>``. Return the
    samples ``(sent, answered, status, tag)``, the start and the end.
    """
    samples: list[tuple[float, float, int, str]] = []
    pools: list[asyncio.Queue[HttpConnection]] = []
    size = CONNECTIONS if rate is None else MAX_IN_FLIGHT
    for ep in endpoints:
        pool: asyncio.Queue[HttpConnection] = asyncio.Queue()
        for _ in range(max(1, size // len(endpoints))):
            pool.put_nowait(HttpConnection(HOST, ep.port))
        pools.append(pool)

    async def one(index: int) -> None:
        ep, pool = endpoints[index], pools[index]
        conn = await pool.get()
        try:
            n = next(counter)
            sent = time.monotonic()
            path, body, headers = ep.build(n, f"bench {sent:.6f} {n} {ep.tag}")
            try:
                status, _ = await conn.request("POST", path, body, headers)
            except (OSError, asyncio.IncompleteReadError):
                conn.close()
                status = -1
            samples.append((sent, time.monotonic(), status, ep.tag))
        finally:
            pool.put_nowait(conn)

    start = time.monotonic()
    deadline = start + seconds
    started = 0
    if rate is None:

        async def worker(index: int) -> None:
            nonlocal started
            while time.monotonic() < deadline and started < limit:
                started += 1
                await one(index)

        await asyncio.gather(*(worker(i % len(endpoints)) for i in range(CONNECTIONS)))
    else:
        tasks: set[asyncio.Task] = set()
        sent = 0
        while (now := time.monotonic()) < deadline and sent < limit:
            due = min(int((now - start) * rate) + 1, limit) - sent
            for _ in range(due):
                if len(tasks) >= MAX_IN_FLIGHT:
                    break
                task = asyncio.create_task(one(sent % len(endpoints)))
                sent += 1
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.sleep(0.001)
        if tasks:
            await asyncio.gather(*list(tasks))
    end = time.monotonic()
    for pool in pools:
        while not pool.empty():
            pool.get_nowait().close()
    return samples, start, end


# --- measuring ---------------------------------------------------------------------------------------


class Meter:
    """CPU seconds of each party, the servers' wait for a CPU, and the machine's busy time."""

    def __init__(self, dep: Deployment, fleet: Fleet | None) -> None:
        self.dep = dep
        self.fleet = fleet

    def snap(self) -> dict[str, Any]:
        """Take a snapshot."""
        times = os.times()
        pg = {pid: cpu_seconds(pid) for pid in self.dep.pg.pids()} if self.dep.pg is not None else {}
        return {
            "t": time.monotonic(),
            "server": {s.name: s.cpu() for s in self.dep.servers},
            "wait": sum(run_queue_wait(s.proc.pid) for s in self.dep.servers),
            "pg": pg,
            "redis": self.dep.redis.cpu() if self.dep.redis is not None else 0.0,
            "clients": sum(cpu_seconds(pid) for pid in self.fleet.pids) if self.fleet is not None else 0.0,
            "bench": times.user + times.system,
            "busy": machine_busy(),
        }

    @staticmethod
    def diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        """Return CPU seconds used between two snapshots, per party, and the elapsed time."""
        servers = {name: b["server"][name] - a["server"].get(name, 0.0) for name in b["server"]}
        pg = sum(cpu - a["pg"].get(pid, 0.0) for pid, cpu in b["pg"].items() if cpu == cpu)
        server = sum(servers.values())
        used = {
            "elapsed": b["t"] - a["t"],
            "server": server,
            "servers": servers,
            "wait": b["wait"] - a["wait"],
            "pg": pg,
            "redis": b["redis"] - a["redis"],
            "clients": b["clients"] - a["clients"],
            "bench": b["bench"] - a["bench"],
            "busy": b["busy"] - a["busy"],
        }
        ours = server + pg + used["redis"] + used["clients"] + used["bench"]
        used["others"] = max(0.0, used["busy"] - ours)
        return used


async def settle(fleet: Fleet, quiet: float = 0.5, timeout: float = 300.0) -> None:
    """Wait until no socket event has arrived for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        count = await asyncio.to_thread(fleet.count)
        if count == last:
            return
        last = count
        await asyncio.sleep(quiet)


async def measure(label: str, endpoints: list[Endpoint], fleet: Fleet, meter: Meter, phase: str, seconds: float,
                  counter: itertools.count, limit: int = 10**9) -> dict[str, Any]:
    """Run one phase of load and summarise it: HTTP, pushes (per server pair), fan-out, CPU, contention."""
    rate = None if phase == "max" else float(phase)
    m0 = meter.snap()
    samples, start, end = await fire(endpoints, rate, seconds, counter, limit)
    m1 = meter.snap()
    await settle(fleet)
    m2 = meter.snap()
    records, counts, open_, dropped = await asyncio.to_thread(fleet.take)
    elapsed = end - start
    ok = [s for s in samples if s[2] == 200]
    errors: dict[str, int] = defaultdict(int)
    for s in samples:
        if s[2] != 200:
            errors[str(s[2])] += 1
    created = [r for r in records if start - 0.001 <= r[1] <= end]
    pairs: dict[str, list[float]] = defaultdict(list)
    per_message: dict[int, list[float]] = defaultdict(list)
    for recv, sent, n, src, dst in created:
        pairs[f"{src}->{dst}"].append(recv - sent)
        per_message[n].append(recv - sent)
    events = sum(counts.values())
    load_cpu, full_cpu = Meter.diff(m0, m1), Meter.diff(m0, m2)
    stack = load_cpu["server"] + load_cpu["pg"] + load_cpu["redis"]
    result = {
        "label": label,
        "phase": phase,
        "seconds": elapsed,
        "sent": len(samples),
        "ok": len(ok),
        "errors": dict(errors),
        "rate": len(ok) / elapsed,
        "http": summary_ms([s[1] - s[0] for s in samples]),
        "push": summary_ms([r[0] - r[1] for r in created]),
        "pairs": {k: summary_ms(v) for k, v in sorted(pairs.items())},
        "last_delivery": summary_ms([max(v) for v in per_message.values()]),
        "fanout": len(created) / max(len(ok), 1),
        "events": events,
        "events_per_request": events / max(len(ok), 1),
        "drain_s": max(0.0, max((r[0] for r in records), default=end) - end),
        "cpu": load_cpu,
        "cpu_full": full_cpu,
        "per_server_cpu_s": len(ok) / load_cpu["server"] if load_cpu["server"] > 0 else float("nan"),
        "per_stack_cpu_s": len(ok) / stack if stack > 0 else float("nan"),
        "deliveries_per_server_cpu_s": events / full_cpu["server"] if full_cpu["server"] > 0 else float("nan"),
        "deliveries_per_s": events / (full_cpu["elapsed"] or 1),
        "sockets_open": open_,
        "sockets_dropped": dropped,
        "start": start,
        "end": end,
        "settled": m2["t"],
        "rss": {s.name: s.rss() for s in meter.dep.servers},
    }
    print("    " + line(result), flush=True)
    return result


def fmt(value: float, digits: int = 1) -> str:
    """Format a number, '-' for nan."""
    return "-" if value != value else f"{value:,.{digits}f}"


def contention(cpu: dict[str, Any]) -> str:
    """Return 'server x% (waited y%), pg, redis, clients+bench, others' shares of the elapsed time."""
    e = cpu["elapsed"] or 1
    return (f"server {cpu['server'] / e:.0%} (waited {cpu['wait'] / e:.0%}), pg {cpu['pg'] / e:.0%}, "
            f"redis {cpu['redis'] / e:.0%}, clients+bench {(cpu['clients'] + cpu['bench']) / e:.0%}, "
            f"others {cpu['others'] / e:.0%}")


def line(r: dict[str, Any]) -> str:
    """Return a one-line summary of a phase."""
    pairs = ", ".join(f"{k} p50 {fmt(v['p50'])} p99 {fmt(v['p99'])}" for k, v in r["pairs"].items())
    errors = f", errors {r['errors']}" if r["errors"] else ""
    return (f"{r['label']} {r['phase']}: {r['rate']:,.0f}/s ({r['per_server_cpu_s']:,.0f} per server CPU-s, "
            f"{r['per_stack_cpu_s']:,.0f} per server+pg+redis CPU-s), HTTP p50 {fmt(r['http']['p50'])} "
            f"p99 {fmt(r['http']['p99'])} ms, push p50 {fmt(r['push']['p50'])} p99 {fmt(r['push']['p99'])} ms "
            f"[{pairs}], fan-out {r['fanout']:.1f}, {r['events_per_request']:.0f} events/request, "
            f"{r['deliveries_per_server_cpu_s']:,.0f} deliveries per server CPU-s, drained {r['drain_s']:.1f} s after; "
            f"{contention(r['cpu'])}{errors}")


# --- part: ingest (P4/P5) ------------------------------------------------------------------------------


async def part_ingest(args: argparse.Namespace, fake: FakeBotApi) -> list[dict[str, Any]]:
    """The queues load against each deployment."""
    scenario = Scenario("queues", args.agents, args.queues, max(args.queues * 2, 100))
    print(f"ingest: {scenario.agents} agents in {scenario.queues} queues, {scenario.chats} new chats, fan-out "
          f"{scenario.fanout():.0f} operators; phases {args.rates}, {args.seconds:.0f} s each", flush=True)
    results = []
    rng = random.Random(args.seed)
    for config in args.configs:
        with tempfile.TemporaryDirectory(prefix=f"bench-scale-{config}-") as tmp:
            async with desk(config, "ingest", Path(tmp), args) as dep:
                setup = await populate(dep, scenario, fake)
                fleet = Fleet(args.client_procs)
                try:
                    half = 1 + scenario.agents // 2  # the admin and the first half of the agents
                    specs = [(dep.servers[0 if i < half or len(dep.servers) == 1 else 1].url, token,
                              TAGS[0 if i < half or len(dep.servers) == 1 else 1])
                             for i, token in enumerate(setup.tokens)]
                    accepted, failures, took = await asyncio.to_thread(fleet.connect, specs)
                    if accepted != len(specs):
                        raise RuntimeError(f"{config}: {accepted} of {len(specs)} sockets: {failures}")
                    print(f"  {config}: {accepted} sockets in {took:.1f} s, RSS "
                          + ", ".join(f"{s.name} {s.rss():.0f} MiB" for s in dep.servers), flush=True)
                    endpoints = [webhook_endpoint(TAGS[i], s, setup, rng) for i, s in enumerate(dep.servers)]
                    counter = itertools.count(UPDATE_BASE)
                    meter = Meter(dep, fleet)
                    await fire(endpoints, None, 1.0, counter)  # warm-up, not measured
                    await settle(fleet)
                    await asyncio.to_thread(fleet.take)
                    for phase in args.rates:
                        results.append(await measure(config, endpoints, fleet, meter, phase, args.seconds, counter))
                finally:
                    await asyncio.to_thread(fleet.stop)
    return results


# --- part: sockets (P6) -------------------------------------------------------------------------------


def fds(pid: int) -> int:
    """Return how many file descriptors a process has open."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


async def socket_memory(label: str, dep: Deployment, tokens: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Open one socket per token to the server, and measure its RSS before, with them, and after."""
    server = dep.a
    fleet = Fleet(args.socket_procs)
    try:
        warm = [(server.url, t, "A") for t in tokens[:100]]
        await asyncio.to_thread(fleet.connect, warm)
        await asyncio.to_thread(fleet.close_all)
        await asyncio.sleep(3)
        meter = Meter(dep, fleet)
        before, fds_before = server.rss(), fds(server.proc.pid)
        m0 = meter.snap()
        accepted, failures, took = await asyncio.to_thread(fleet.connect, [(server.url, t, "A") for t in tokens])
        m1 = meter.snap()
        await asyncio.sleep(5)
        open_, client_rss = await asyncio.to_thread(fleet.stats)
        with_sockets, fds_with = server.rss(), fds(server.proc.pid)
        idle = Meter.diff(m1, meter.snap())
        closed = await asyncio.to_thread(fleet.close_all)
        await asyncio.sleep(5)
        after = server.rss()
    finally:
        await asyncio.to_thread(fleet.stop)
    cpu = Meter.diff(m0, m1)
    result = {
        "label": label,
        "wanted": len(tokens),
        "accepted": accepted,
        "open": open_,
        "closed": closed,
        "failures": failures[:5],
        "connect_s": took,
        "connects_per_s": accepted / took if took else float("nan"),
        "server_cpu_ms_per_connect": cpu["server"] * 1000 / max(accepted, 1),
        "pg_cpu_ms_per_connect": cpu["pg"] * 1000 / max(accepted, 1),
        "rss_before": before,
        "rss_with": with_sockets,
        "rss_after_close": after,
        "kb_per_socket": (with_sockets - before) * 1024 / max(open_, 1),
        "fds_before": fds_before,
        "fds_with": fds_with,
        "client_rss": client_rss,
        "idle_server_cpu": idle["server"] / (idle["elapsed"] or 1),
        "cpu": cpu,
    }
    print(f"  {label}: {accepted}/{len(tokens)} sockets in {took:.1f} s ({result['connects_per_s']:,.0f}/s, "
          f"server {result['server_cpu_ms_per_connect']:.2f} CPU-ms each); RSS {before:.1f} -> {with_sockets:.1f} MiB "
          f"= {result['kb_per_socket']:.1f} KB per socket; after closing {after:.1f} MiB; fds {fds_before} -> "
          f"{fds_with}; idle server CPU with them {result['idle_server_cpu']:.1%}; {contention(cpu)}"
          + (f"; failures {failures[:3]}" if failures else ""), flush=True)
    return result


async def part_sockets(args: argparse.Namespace, fake: FakeBotApi) -> list[dict[str, Any]]:
    """P6 against Desk (PostgreSQL + Redis) and the bare python-socketio server."""
    print(f"sockets: {args.sockets} websocket connections, one agent each, from {args.socket_procs} client processes",
          flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-sockets-") as tmp:
        async with desk(args.socket_config, "sockets", Path(tmp), args) as dep:
            setup = await populate(dep, Scenario("queues", args.sockets, 50, 0), fake)
            results.append(await socket_memory(f"desk ({args.socket_config})", dep, setup.tokens[1:], args))
    with tempfile.TemporaryDirectory(prefix="bench-scale-bare-") as tmp:
        async with bare(Path(tmp), redis=False) as dep:
            tokens = [secrets.token_urlsafe(32) for _ in range(args.sockets)]
            results.append(await socket_memory("bare python-socketio", dep, tokens, args))
    return results


# --- part: fan-out (P7) -------------------------------------------------------------------------------


def emit_times(dep: Deployment, result: dict[str, Any]) -> dict[str, Any]:
    """Return the server-side time of the emits of each message sent during a phase (wall and CPU)."""
    batches = [e for times in dep.emits.values() for e in times if result["start"] <= e[0] <= result["end"]]
    emits = sum(e[3] for e in batches)
    return {
        "messages": len(batches),
        "wall": summary_ms([e[1] for e in batches]),
        "cpu": summary_ms([e[2] for e in batches]),
        "emits_per_message": emits / len(batches) if batches else float("nan"),
        "cpu_per_emit_us": sum(e[2] for e in batches) / emits * 1e6 if emits else float("nan"),
    }


async def part_fanout(args: argparse.Namespace, fake: FakeBotApi) -> list[dict[str, Any]]:
    """P7: Desk (99 agents + admin in one queue) and bare python-socketio, 100 sockets."""
    size = args.fanout_sockets
    phases = [str(args.fanout_rate), "max"]
    print(f"fanout: messages to {size} sockets; phases {phases}, {args.fanout_seconds:.0f} s each", flush=True)
    results = []
    for config in args.fanout_configs:
        with tempfile.TemporaryDirectory(prefix=f"bench-scale-fanout-{config}-") as tmp:
            phase_results = []
            async with desk(config, "fanout", Path(tmp), args, emits=True) as dep:
                scenario = Scenario("queue", size - 1, 1, 50)
                setup = await populate(dep, scenario, fake)
                fleet = Fleet(1)
                try:
                    accepted, failures, _ = await asyncio.to_thread(
                        fleet.connect, [(dep.a.url, t, "A") for t in setup.tokens])
                    if accepted != size:
                        raise RuntimeError(f"fanout {config}: {accepted} of {size} sockets: {failures}")
                    endpoints = [webhook_endpoint("A", dep.a, setup, random.Random(args.seed))]
                    counter = itertools.count(UPDATE_BASE)
                    meter = Meter(dep, fleet)
                    await fire(endpoints, float(args.fanout_rate), 1.0, counter)
                    await settle(fleet)
                    await asyncio.to_thread(fleet.take)
                    for phase in phases:
                        limit = args.fanout_max_deliveries // (3 * size) if phase == "max" else 10**9
                        phase_results.append(await measure(f"desk ({config})", endpoints, fleet, meter, phase,
                                                           args.fanout_seconds, counter, limit))
                finally:
                    await asyncio.to_thread(fleet.stop)
            for r in phase_results:
                r["emit"] = emit_times(dep, r)
            results += phase_results
    for mode, redis in (("room", False), ("rooms", False), ("rooms", True)):
        with tempfile.TemporaryDirectory(prefix="bench-scale-fanout-bare-") as tmp:
            phase_results = []
            async with bare(Path(tmp), redis, emits=True) as dep:
                fleet = Fleet(1)
                try:
                    tokens = [secrets.token_urlsafe(16) for _ in range(size)]
                    await asyncio.to_thread(fleet.connect, [(dep.a.url, t, "A") for t in tokens])
                    query = "mode=room&events=1" if mode == "room" else f"mode=rooms&rooms={size}&events=1"
                    endpoints = [emit_endpoint(dep.a, query)]
                    counter = itertools.count(1)
                    meter = Meter(dep, fleet)
                    label = f"bare python-socketio, {'one room of ' + str(size) if mode == 'room' else str(size) + ' rooms of 1'}"
                    label += ", Redis manager" if redis else ""
                    await fire(endpoints, float(args.fanout_rate), 1.0, counter)
                    await settle(fleet)
                    await asyncio.to_thread(fleet.take)
                    for phase in phases:
                        limit = args.fanout_max_deliveries // size if phase == "max" else 10**9
                        phase_results.append(await measure(label, endpoints, fleet, meter, phase, args.fanout_seconds,
                                                           counter, limit))
                finally:
                    await asyncio.to_thread(fleet.stop)
            for r in phase_results:
                r["emit"] = emit_times(dep, r)
            results += phase_results
    for r in results:
        e = r["emit"]
        print(f"  {r['label']} {r['phase']}: one message's emits ({fmt(e['emits_per_message'], 0)} emits) took "
              f"p50 {fmt(e['wall']['p50'], 2)} p95 {fmt(e['wall']['p95'], 2)} ms, CPU p50 {fmt(e['cpu']['p50'], 2)} "
              f"p95 {fmt(e['cpu']['p95'], 2)} ms ({fmt(e['cpu_per_emit_us'], 0)} µs per emit); last socket got it p50 "
              f"{fmt(r['last_delivery']['p50'])} p95 {fmt(r['last_delivery']['p95'])} ms after the send; "
              f"{r['deliveries_per_server_cpu_s']:,.0f} deliveries per server CPU-s", flush=True)
    return results


# --- part: soak (P12) ---------------------------------------------------------------------------------


async def soak(label: str, dep: Deployment, fleet: Fleet, endpoints: list[Endpoint], args: argparse.Namespace,
               seconds: float) -> dict[str, Any]:
    """Churn sockets and send messages for ``seconds``; sample the server every SAMPLE_EVERY seconds."""
    server = dep.a
    meter = Meter(dep, fleet)
    samples: list[dict[str, Any]] = []
    counter = itertools.count(UPDATE_BASE * 2)
    start = time.monotonic()

    async def sample(previous: dict[str, Any]) -> dict[str, Any]:
        snap = meter.snap()
        records, counts, open_, dropped = await asyncio.to_thread(fleet.take)
        cpu = Meter.diff(previous, snap)
        row = {
            "t": snap["t"] - start,
            "rss": server.rss(),
            "fds": fds(server.proc.pid),
            "open": open_,
            "dropped": dropped,
            "events": sum(counts.values()),
            "push": summary_ms([r[0] - r[1] for r in records]),
            "server_cpu": cpu["server"] / (cpu["elapsed"] or 1),
            "waited": cpu["wait"] / (cpu["elapsed"] or 1),
            "others": cpu["others"] / (cpu["elapsed"] or 1),
        }
        samples.append(row)
        return snap

    snap = await sample(meter.snap())
    if args.churn > 0:
        await asyncio.to_thread(fleet.churn, args.churn)
    load = asyncio.create_task(fire(endpoints, float(args.soak_rate), seconds, counter))
    while not load.done():
        await asyncio.wait({load}, timeout=SAMPLE_EVERY)
        snap = await sample(snap)
        last = samples[-1]
        print(f"    {label} t={last['t']:.0f} s: RSS {last['rss']:.1f} MiB, fds {last['fds']}, sockets {last['open']}, "
              f"push p50 {fmt(last['push']['p50'])} p99 {fmt(last['push']['p99'])} ms, server CPU "
              f"{last['server_cpu']:.0%} (waited {last['waited']:.0%}), others {last['others']:.0%}", flush=True)
    requests, _, _ = load.result()
    churned, failures = await asyncio.to_thread(fleet.churn_stop) if args.churn > 0 else ({}, [])
    await settle(fleet)
    await sample(snap)
    ok = sum(1 for s in requests if s[2] == 200)
    warm = next((s for s in samples if s["t"] >= args.soak_warmup), samples[0])
    last = samples[-1]
    half = [s for s in samples if s["t"] >= last["t"] / 2]
    slope = _slope([(s["t"], s["rss"]) for s in half])
    result = {
        "label": label,
        "start": start,
        "seconds": seconds,
        "requests_ok": ok,
        "requests": len(requests),
        "churned": dict(churned),
        "churn_failures": failures[:5],
        "samples": samples,
        "rss_first": samples[0]["rss"],
        "rss_warm": warm["rss"],
        "warm_t": warm["t"],
        "rss_last": last["rss"],
        "rss_max": max(s["rss"] for s in samples),
        "growth_from_warm": (last["rss"] - warm["rss"]) / warm["rss"],
        "growth_from_first": (last["rss"] - samples[0]["rss"]) / samples[0]["rss"],
        "slope_mib_per_h": slope * 3600,
        "fds_first": samples[0]["fds"],
        "fds_last": last["fds"],
        "fds_max": max(s["fds"] for s in samples),
        "others_mean": sum(s["others"] for s in samples[1:]) / max(len(samples) - 1, 1),
        "waited_mean": sum(s["waited"] for s in samples[1:]) / max(len(samples) - 1, 1),
        "server_cpu_mean": sum(s["server_cpu"] for s in samples[1:]) / max(len(samples) - 1, 1),
    }
    print(f"  {label}: {seconds:.0f} s, {ok}/{len(requests)} requests, churn {dict(churned)}; RSS {result['rss_first']:.1f}"
          f" (start) / {result['rss_warm']:.1f} (t={warm['t']:.0f} s) -> {result['rss_last']:.1f} MiB (max "
          f"{result['rss_max']:.1f}): growth {result['growth_from_warm']:+.1%} from t={warm['t']:.0f} s, "
          f"{result['growth_from_first']:+.1%} from the start; second half slope {result['slope_mib_per_h']:+.1f} MiB/h; "
          f"fds {result['fds_first']} -> {result['fds_last']} (max {result['fds_max']})", flush=True)
    return result


def heap_growth(result: dict[str, Any], dep: Deployment, args: argparse.Namespace) -> None:
    """Add the server's own heap figures (Python blocks, malloc used and free) at warm-up and at the end."""
    samples = [(t - result["start"], m) for t, m in dep.memory.get(dep.a.name, []) if t >= result["start"]]
    samples = [s for s in samples if s[0] <= result["seconds"] + SAMPLE_EVERY]
    if len(samples) < 2:
        return
    warm = next((s for s in samples if s[0] >= args.soak_warmup), samples[0])
    last = samples[-1]
    result["heap"] = {"warm_t": warm[0], "warm": warm[1], "last_t": last[0], "last": last[1]}
    w, e = warm[1], last[1]
    print(f"  {result['label']}: from t={warm[0]:.0f} s to t={last[0]:.0f} s Python blocks {w['blocks']:,.0f} -> "
          f"{e['blocks']:,.0f} ({(e['blocks'] - w['blocks']) / w['blocks']:+.1%}), malloc in use "
          f"{w.get('malloc_used', float('nan')):.1f} -> {e.get('malloc_used', float('nan')):.1f} MiB, malloc free but "
          f"held {w.get('malloc_free', float('nan')):.1f} -> {e.get('malloc_free', float('nan')):.1f} MiB", flush=True)


def _slope(points: list[tuple[float, float]]) -> float:
    if len(points) < 2:
        return float("nan")
    mx = sum(p[0] for p in points) / len(points)
    my = sum(p[1] for p in points) / len(points)
    den = sum((p[0] - mx) ** 2 for p in points)
    return sum((p[0] - mx) * (p[1] - my) for p in points) / den if den else float("nan")


async def soak_desk(args: argparse.Namespace, fake: FakeBotApi, scenario: Scenario) -> dict[str, Any]:
    """The soak against one Desk process."""
    with tempfile.TemporaryDirectory(prefix="bench-scale-soak-") as tmp:
        async with desk(args.soak_config, "soak", Path(tmp), args, lag=False) as dep:
            setup = await populate(dep, scenario, fake)
            fleet = Fleet(args.client_procs)
            try:
                accepted, failures, _ = await asyncio.to_thread(
                    fleet.connect, [(dep.a.url, t, "A") for t in setup.tokens[1:]])
                if accepted != scenario.agents:
                    raise RuntimeError(f"soak: {accepted} of {scenario.agents} sockets: {failures}")
                endpoints = [webhook_endpoint("A", dep.a, setup, random.Random(args.seed))]
                result = await soak(f"desk ({args.soak_config})", dep, fleet, endpoints, args, args.soak_seconds)
            finally:
                await asyncio.to_thread(fleet.stop)
    heap_growth(result, dep, args)
    return result


async def part_soak(args: argparse.Namespace, fake: FakeBotApi) -> list[dict[str, Any]]:
    """P12 against Desk, then the bare python-socketio server."""
    agents, queues = args.soak_sockets, max(1, args.soak_sockets // 10)
    scenario = Scenario("queues", agents, queues, max(queues * 2, 100))
    print(f"soak: {agents} agent sockets in {queues} queues of 10, {args.churn} reconnects/s, {args.soak_rate} "
          f"webhooks/s (fan-out {scenario.fanout():.0f}), {args.soak_seconds:.0f} s; bare python-socketio "
          f"{args.soak_bare_seconds:.0f} s", flush=True)
    results: list[dict[str, Any]] = []
    if args.soak_seconds > 0:
        results.append(await soak_desk(args, fake, scenario))
    if args.soak_bare_seconds > 0:
        with tempfile.TemporaryDirectory(prefix="bench-scale-soak-bare-") as tmp:
            async with bare(Path(tmp), redis=CONFIGS[args.soak_config]["redis"], lag=False) as dep:
                fleet = Fleet(args.client_procs)
                try:
                    tokens = [secrets.token_urlsafe(32) for _ in range(agents)]
                    await asyncio.to_thread(fleet.connect, [(dep.a.url, t, "A") for t in tokens])
                    fan = round(scenario.fanout())
                    endpoints = [emit_endpoint(dep.a, f"mode=rooms&rooms={fan}&events=3")]
                    label = "bare python-socketio" + (" (Redis manager)" if dep.redis is not None else "")
                    results.append(await soak(label, dep, fleet, endpoints, args, args.soak_bare_seconds))
                finally:
                    await asyncio.to_thread(fleet.stop)
            heap_growth(results[-1], dep, args)
    return results


# --- report --------------------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    """Return the versions of what the figures depend on."""
    from importlib.metadata import version

    found = {name: version(name) for name in ("aiohttp", "python-socketio", "python-engineio", "peewee", "psycopg2-binary",
                                               "redis") if _has(name)}
    for name, argv in (("postgresql", ["psql", "--version"]), ("redis-server", ["redis-server", "--version"])):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            found[name] = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
    found["sqlite"] = sqlite3.sqlite_version
    return found


def _has(name: str) -> bool:
    from importlib.metadata import PackageNotFoundError, version

    try:
        version(name)
        return True
    except PackageNotFoundError:
        return False


def report(run: dict[str, Any]) -> str:
    """Return the run's results as Markdown tables."""
    out = [f"Machine: {run['machine']}; load average at start {run['loadavg']}", f"Versions: {run['versions']}", ""]
    ingest = run.get("ingest") or []
    if ingest:
        out += ["### ingest (P4/P5)", "",
                "| deployment | load | webhooks/s | per Desk CPU-s | per Desk+PG+Redis CPU-s | HTTP p50 / p99 ms "
                "| push p50 / p99 ms | per pair p50 / p99 ms | fan-out (events/webhook) | pushes done after s "
                "| CPU: Desk (waited) / PG / Redis / clients+bench / others | errors |",
                "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---|---|"]
        for r in ingest:
            c, e = r["cpu"], r["cpu"]["elapsed"] or 1
            pairs = "; ".join(f"{k} {fmt(v['p50'])} / {fmt(v['p99'])}" for k, v in r["pairs"].items())
            out.append(
                f"| {r['label']} | {r['phase']} | {r['rate']:,.0f} | {fmt(r['per_server_cpu_s'], 0)} "
                f"| {fmt(r['per_stack_cpu_s'], 0)} | {fmt(r['http']['p50'])} / {fmt(r['http']['p99'])} "
                f"| {fmt(r['push']['p50'])} / {fmt(r['push']['p99'])} | {pairs} "
                f"| {r['fanout']:.1f} ({r['events_per_request']:.0f}) | {r['drain_s']:.1f} "
                f"| {c['server'] / e:.0%} ({c['wait'] / e:.0%}) / {c['pg'] / e:.0%} / {c['redis'] / e:.0%} / "
                f"{(c['clients'] + c['bench']) / e:.0%} / {c['others'] / e:.0%} "
                f"| {', '.join(f'{k}: {v}' for k, v in r['errors'].items()) or '0'} |")
        out.append("")
    sockets = run.get("sockets") or []
    if sockets:
        out += ["### sockets (P6)", "",
                "| server | sockets open / wanted | RSS before / with / after closing MiB | KB per socket "
                "| connects/s (server CPU-ms each) | fds | idle server CPU with them | CPU while connecting |",
                "|---|---:|---:|---:|---:|---:|---:|---|"]
        for r in sockets:
            out.append(
                f"| {r['label']} | {r['open']:,} / {r['wanted']:,} | {r['rss_before']:.1f} / {r['rss_with']:.1f} / "
                f"{r['rss_after_close']:.1f} | {r['kb_per_socket']:.1f} | {r['connects_per_s']:,.0f} "
                f"({r['server_cpu_ms_per_connect']:.2f}) | {r['fds_before']} / {r['fds_with']} "
                f"| {r['idle_server_cpu']:.1%} | {contention(r['cpu'])} |")
        out.append("")
    fanout = run.get("fanout") or []
    if fanout:
        out += ["### fan-out (P7)", "",
                "| server | load | messages/s | emits per message | one message's emits: wall p50 / p95 ms "
                "| CPU p50 / p95 ms | CPU per emit µs | last socket got it p50 / p95 ms | deliveries/s "
                "| deliveries per server CPU-s | CPU: server (waited) / PG / Redis / clients+bench / others |",
                "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in fanout:
            e = r["emit"]
            out.append(
                f"| {r['label']} | {r['phase']} | {r['rate']:,.0f} | {fmt(e['emits_per_message'], 0)} "
                f"| {fmt(e['wall']['p50'], 2)} / {fmt(e['wall']['p95'], 2)} "
                f"| {fmt(e['cpu']['p50'], 2)} / {fmt(e['cpu']['p95'], 2)} | {fmt(e['cpu_per_emit_us'], 0)} "
                f"| {fmt(r['last_delivery']['p50'])} / {fmt(r['last_delivery']['p95'])} | {r['deliveries_per_s']:,.0f} "
                f"| {fmt(r['deliveries_per_server_cpu_s'], 0)} | {contention(r['cpu_full'])} |")
        out.append("")
    store = run.get("store")
    if store:
        out += ["### store on PostgreSQL (P8, P9)", "", f"Build: {store['built']}", "",
                store_pg.table(store["results"]), ""]
    soaks = run.get("soak") or []
    if soaks:
        out += ["### soak (P12)", "",
                "| server | seconds | requests ok | churn | RSS start / at warm-up / end / max MiB | growth from warm-up "
                "(from start) | second-half slope MiB/h | fds start / end / max | server CPU (waited) | others |",
                "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
        for r in soaks:
            out.append(
                f"| {r['label']} | {r['seconds']:.0f} | {r['requests_ok']:,} / {r['requests']:,} | {r['churned']} "
                f"| {r['rss_first']:.1f} / {r['rss_warm']:.1f} (t={r['warm_t']:.0f} s) / {r['rss_last']:.1f} / "
                f"{r['rss_max']:.1f} | {r['growth_from_warm']:+.1%} ({r['growth_from_first']:+.1%}) "
                f"| {r['slope_mib_per_h']:+.1f} | {r['fds_first']} / {r['fds_last']} / {r['fds_max']} "
                f"| {r['server_cpu_mean']:.0%} ({r['waited_mean']:.0%}) | {r['others_mean']:.0%} |")
        for r in soaks:
            h = r.get("heap")
            if h:
                w, e = h["warm"], h["last"]
                out.append(f"- {r['label']}, the server's own heap from t={h['warm_t']:.0f} s to t={h['last_t']:.0f} s: "
                           f"Python blocks {w['blocks']:,.0f} -> {e['blocks']:,.0f} "
                           f"({(e['blocks'] - w['blocks']) / w['blocks']:+.1%}); malloc in use "
                           f"{w.get('malloc_used', float('nan')):.1f} -> {e.get('malloc_used', float('nan')):.1f} MiB; "
                           f"malloc free but held {w.get('malloc_free', float('nan')):.1f} -> "
                           f"{e.get('malloc_free', float('nan')):.1f} MiB")
        out += ["", "Samples (t s: RSS MiB, fds, sockets, push p99 ms, others CPU):", ""]
        for r in soaks:
            cells = [f"{s['t']:.0f}: {s['rss']:.1f}, {s['fds']}, {s['open']}, {fmt(s['push']['p99'], 0)}, "
                     f"{s['others']:.0%}" for s in r["samples"]]
            out.append(f"- {r['label']}: " + "; ".join(cells))
        out.append("")
    return "\n".join(out)


async def main_async(args: argparse.Namespace) -> int:
    """Run the parts asked for, print and write the report."""
    pin(CLIENT_CPU)
    why = pg_available()
    if why is not None:
        raise SystemExit(f"bench/scale.py needs PostgreSQL: {why}")
    run: dict[str, Any] = {"machine": machine(), "versions": versions(), "args": vars(args),
                           "loadavg": os.getloadavg(), "started": dt.datetime.now(dt.UTC).isoformat()}
    print(f"machine: {run['machine']}, load average {run['loadavg']}", flush=True)
    fake = FakeBotApi()
    await fake.start()
    began = time.monotonic()
    try:
        for part in args.parts:
            t0 = time.monotonic()
            if part == "ingest":
                run["ingest"] = await part_ingest(args, fake)
            elif part == "sockets":
                run["sockets"] = await part_sockets(args, fake)
            elif part == "fanout":
                run["fanout"] = await part_fanout(args, fake)
            elif part == "store":
                print("store: P8/P9 on PostgreSQL", flush=True)
                run["store"] = await asyncio.to_thread(store_pg.run, args)
            elif part == "soak":
                run["soak"] = await part_soak(args, fake)
            print(f"  ({part}: {time.monotonic() - t0:.0f} s)", flush=True)
    finally:
        await fake.stop()
    run["seconds"] = time.monotonic() - began
    text = report(run)
    print()
    print(text)
    out = BENCH / "out"
    out.mkdir(exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (out / f"scale-{stamp}.md").write_text(text + "\n")
    (out / f"scale-{stamp}.json").write_text(json.dumps(run, indent=1, default=str))
    print(f"\nwritten: bench/out/scale-{stamp}.md and .json ({run['seconds']:.0f} s)")
    return 0


def main() -> int:
    """Parse the flags and run."""
    parser = argparse.ArgumentParser(prog="bench/scale.py", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--parts", nargs="+", default=["ingest", "sockets", "fanout", "store", "soak"],
                        choices=("ingest", "sockets", "fanout", "store", "soak"))
    parser.add_argument("--quick", action="store_true",
                        help="a short run: 5 s phases, 2,000 sockets, 200k messages, a 60 s soak")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS),
                        help="deployments of the ingest part")
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--queues", type=int, default=50)
    parser.add_argument("--rates", nargs="+", default=["max", "100", "30"], help="ingest phases: 'max' and/or webhooks/s")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each ingest phase")
    parser.add_argument("--b-cpu", type=int, default=1, help="CPU of process B (0: share A's core)")
    parser.add_argument("--client-procs", type=int, default=2, help="socket-client processes (ingest, soak)")
    parser.add_argument("--sockets", type=int, default=5000, help="P6: sockets to one process")
    parser.add_argument("--socket-procs", type=int, default=4, help="P6: socket-client processes")
    parser.add_argument("--socket-config", default="pg-redis", choices=list(CONFIGS))
    parser.add_argument("--fanout-sockets", type=int, default=100)
    parser.add_argument("--fanout-rate", type=float, default=5.0,
                        help="P7: messages/s of the timing phase (slow enough that one message's emits run alone)")
    parser.add_argument("--fanout-seconds", type=float, default=8.0)
    parser.add_argument("--fanout-max-deliveries", type=int, default=60_000,
                        help="P7: the max phase stops after this many deliveries' worth of messages (its pushes "
                             "can fall far behind its answers)")
    parser.add_argument("--fanout-configs", nargs="+", default=["pg", "pg-redis"], choices=list(CONFIGS))
    store_pg.add_arguments(parser, prefix="store-")
    parser.add_argument("--soak-seconds", type=float, default=600.0)
    parser.add_argument("--soak-bare-seconds", type=float, default=180.0)
    parser.add_argument("--soak-warmup", type=float, default=60.0,
                        help="P12: growth is counted from the sample at this time (caches and pools filled)")
    parser.add_argument("--soak-sockets", type=int, default=1000)
    parser.add_argument("--soak-rate", type=float, default=50.0)
    parser.add_argument("--churn", type=float, default=10.0, help="P12: reconnects (one close + one open) per second")
    parser.add_argument("--soak-config", default="pg-redis", choices=list(CONFIGS))
    parser.add_argument("--keep-logs", action="store_true", help="copy the Desk servers' logs to bench/out/")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.fanout_seconds = 5.0, 5.0
        args.sockets = min(args.sockets, 2000)
        args.messages, args.chat_messages, args.repeat = 200_000, 20_000, 100
        args.soak_seconds, args.soak_bare_seconds, args.soak_warmup = 60.0, 30.0, 20.0
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
