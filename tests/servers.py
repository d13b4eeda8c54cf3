"""Real servers for the multi-process tests: a PostgreSQL database of their own, a Redis server of
their own, and Desk processes started with ``python run.py`` as an operator would start them.

PostgreSQL: the server of ``DESK_TEST_POSTGRES_URL``, else of ``DESK_TEST_DATABASE_URL`` when that
is PostgreSQL, else ``postgresql://postgres@127.0.0.1:5432/postgres``; a database is created for
the test and dropped after it, so the tests never touch another database. Redis: a
``redis-server`` started on a free port (the machine's Redis is never used). Missing servers skip
the test, or fail it when ``DESK_TEST_SERVICES=1``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import pytest
import socketio

ROOT = Path(__file__).resolve().parent.parent
RUN_PY = ROOT / "run.py"
RUN_LIMITED = ROOT / "tests" / "run_limited.py"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
# A process imports, migrates and starts in about a second; allow for a loaded CI machine.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
ADMIN = "boss"
PASSWORD = "correct horse battery"
_bots = itertools.count(1)
_updates = itertools.count(900_000_001)


def unavailable(message: str) -> None:
    """Skip the test because a server is missing, or fail it when DESK_TEST_SERVICES=1."""
    if os.environ.get("DESK_TEST_SERVICES") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    """Return a TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def postgres_server_url() -> str:
    """Return the URL of a database on the PostgreSQL server the tests may use (to create others)."""
    url = os.environ.get("DESK_TEST_POSTGRES_URL")
    if not url:
        candidate = os.environ.get("DESK_TEST_DATABASE_URL", "")
        url = _with_database(candidate, "postgres") if candidate.startswith("postgres") else DEFAULT_POSTGRES
    return url


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """Create an empty PostgreSQL database for one test module; yield its URL; drop it afterwards."""
    try:
        import psycopg2
    except ImportError:
        unavailable("psycopg2 is not installed: pip install -e '.[test]'")
    server = postgres_server_url()
    try:
        admin = psycopg2.connect(server, connect_timeout=5)
    except psycopg2.Error as exc:
        unavailable(f"PostgreSQL is not reachable at {server} ({str(exc).strip()}); start it, or set DESK_TEST_POSTGRES_URL")
    admin.autocommit = True
    name = f"desk_test_{secrets.token_hex(4)}"
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        yield _with_database(server, name)
    finally:
        with contextlib.suppress(psycopg2.Error), admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def sql(url: str, query: str, params: tuple = ()) -> list[tuple]:
    """Run one query on a PostgreSQL database and return its rows (to look at what the processes stored)."""
    import psycopg2

    with contextlib.closing(psycopg2.connect(url)) as conn, conn.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall() if cursor.description else []


def _wait(check, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log else ""
            raise RuntimeError(f"{what}: the process exited with {proc.returncode}\n{tail}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not ready after {timeout:.0f} s")
        time.sleep(0.05)


class RedisServer:
    """A ``redis-server`` of the test's own on a free port, without persistence; it can be killed and started again."""

    def __init__(self, workdir: Path) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            unavailable("redis-server is not installed (apt-get install redis-server)")
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server (again, on the same port) and wait until it answers."""
        log = open(self.workdir / f"redis-{self.port}.log", "ab")
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--dir", str(self.workdir)],
            stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        _wait(self._answers, START_TIMEOUT, "redis-server", self.proc)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT)

    def numsub(self, channel: str = "desk") -> int:
        """Return how many connections are subscribed to ``channel`` (PUBSUB NUMSUB)."""
        name = channel.encode()
        command = b"*3\r\n$6\r\nPUBSUB\r\n$6\r\nNUMSUB\r\n$%d\r\n%s\r\n" % (len(name), name)
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as conn:
            conn.sendall(command)
            data = b""
            while data.count(b"\r\n") < 4:
                chunk = conn.recv(256)
                if not chunk:
                    break
                data += chunk
        # *2, $len, the channel, :count
        return int(data.split(b"\r\n")[3].lstrip(b":"))


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[RedisServer]:
    """Run a Redis server for the block; kill it afterwards."""
    server = RedisServer(workdir)
    try:
        server.start()
        yield server
    finally:
        server.kill()


class DeskProcess:
    """``python run.py`` with the given flags on a free port, its output in a log file.

    ``bot_limit``: Telegram's limit per bot (sends a second) lowered to this, through
    ``tests/run_limited.py``.
    """

    def __init__(self, name: str, workdir: Path, *flags: str, bot_limit: float | None = None) -> None:
        self.name = name
        self.port = free_port()
        self.workdir = workdir
        self.log = workdir / f"{name}.log"
        self.flags = flags
        self.bot_limit = bot_limit
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, wait: bool = True) -> DeskProcess:
        """Start the process; with ``wait``, return once GET /healthz answers 200."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("DESK_")}
        env["PYTHONUNBUFFERED"] = "1"
        media = self.workdir / f"media-{self.name}"
        program = [str(RUN_PY)] if self.bot_limit is None else [str(RUN_LIMITED), str(self.bot_limit)]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, *program, "--host", "127.0.0.1", "--port", str(self.port), "--media", str(media),
                 *self.flags],
                cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self) -> None:
        """Wait until GET /healthz answers 200."""
        _wait(lambda: self.health() is not None, START_TIMEOUT, f"desk process {self.name}", self.proc, self.log)

    def health(self) -> dict | None:
        """Return GET /healthz's body when it answers 200, else None."""
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=2) as response:
                return json.loads(response.read())
        except (OSError, urllib.error.URLError, ValueError):
            return None

    def stop(self) -> str:
        """Stop the process (SIGTERM, then SIGKILL); return the end of its log."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT)
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


def create_admin(database_url: str, workdir: Path, login: str, password: str) -> None:
    """Create the first admin with ``python run.py create-operator`` (it also creates the schema)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("DESK_")}
    env["DESK_PASSWORD"] = password
    done = subprocess.run(
        [sys.executable, str(RUN_PY), "create-operator", login, "--name", login.title(), "--admin", "--db", database_url],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=START_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr


# --- driving the processes as their users do ---------------------------------------------------

class Client:
    """HTTP and Socket.IO calls to any process of the cluster."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http = http
        self.sockets: list[socketio.AsyncClient] = []

    async def call(self, process: DeskProcess, method: str, path: str, token: str | None = None, body=None,
                   status: int = 200):
        """Call ``process``'s API (bearer token when given); check the status; return the JSON body."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.request(method, process.url + path, json=body, headers=headers) as response:
            text = await response.text()
            assert response.status == status, f"{process.name} {method} {path}: {response.status} {text}"
            return json.loads(text) if text else None

    async def login(self, process: DeskProcess, login: str) -> str:
        """Sign in through ``process``; return the bearer token."""
        session = await self.call(process, "POST", "/api/session", body={"login": login, "password": PASSWORD})
        return session["token"]

    async def agent(self, process: DeskProcess, admin: str, login: str, queue_id: int, *, max_chats: int = 5,
                    online: bool = False) -> tuple[dict, str]:
        """Create an agent in ``queue_id`` through ``process``; sign in; optionally go online."""
        op = await self.call(process, "POST", "/api/operators", admin,
                             {"login": login, "name": login.title(), "password": PASSWORD, "queue_ids": [queue_id],
                              "max_chats": max_chats}, status=201)
        token = await self.login(process, login)
        if online:
            await self.call(process, "PUT", "/api/operators/me/status", token, {"status": "online"})
        return op, token

    async def socket(self, process: DeskProcess, token: str, events: list) -> socketio.AsyncClient:
        """Connect a websocket-only Socket.IO client to ``process``; record (name, payload) of each event."""
        sio = socketio.AsyncClient(reconnection=False)

        @sio.on("*")
        async def any_event(name, data):  # noqa: ANN001
            events.append((name, data))

        await sio.connect(process.url, auth={"token": token}, transports=["websocket"], wait_timeout=10)
        self.sockets.append(sio)
        return sio

    async def webhook(self, process: DeskProcess, channel: dict, secret: str, update: dict) -> None:
        """Post a Telegram update to ``process``, as Telegram does behind the load balancer."""
        async with self.http.post(f"{process.url}/webhooks/{channel['id']}", data=json.dumps(update).encode(),
                                  headers={"Content-Type": "application/json",
                                           "X-Telegram-Bot-Api-Secret-Token": secret}) as response:
            assert response.status == 200, f"{process.name}: {response.status} {await response.text()}"

    async def events(self, process: DeskProcess, token: str, after: int = 0) -> list[dict]:
        """Return the operator's whole event log after ``after``, page by page."""
        found = []
        while True:
            page = await self.call(process, "GET", f"/api/events?after={after}", token)
            found += page["events"]
            if not page["events"] or page["events"][-1]["seq"] >= page["seq"]:
                return found
            after = page["events"][-1]["seq"]


@pytest.fixture
async def api() -> AsyncIterator[Client]:
    """An HTTP session for the test; its sockets are closed at the end."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        made = Client(http)
        try:
            yield made
        finally:
            for sio in made.sockets:
                await sio.disconnect()


async def setup_channel(client: Client, a: DeskProcess, b: DeskProcess, fake,
                        routing: str = "manual") -> tuple[str, dict, dict, str]:
    """Sign in the admin on A; make a queue on A and a Telegram bot channel in it on B.

    Return (admin token, queue, channel, the webhook secret Telegram was given).
    """
    admin = await client.login(a, ADMIN)
    number = next(_bots)
    queue = await client.call(a, "POST", "/api/queues", admin,
                              {"name": f"Queue {number}", "routing": routing}, status=201)
    token = f"70100000{number:02d}:AAH-multiprocess-{number}"
    fake.add_token(token)
    channel = await client.call(b, "POST", "/api/channels", admin,
                                {"provider": "telegram", "name": f"Bot {number}", "queue_id": queue["id"],
                                 "config": {"token": token, "api_base": fake.base_url}}, status=201)
    assert channel["registered"] is True, channel
    webhook = fake.webhook_for(token)
    assert webhook["url"] == f"http://desk.test/webhooks/{channel['id']}"
    return admin, queue, channel, webhook["secret_token"]


def text_update(user_id: int, text: str, first_name: str = "Customer") -> dict:
    """Return a Telegram private-chat text update."""
    update_id = next(_updates)
    person = {"id": user_id, "is_bot": False, "first_name": first_name}
    return {"update_id": update_id, "message": {"message_id": update_id % 100_000, "from": person,
                                                "chat": {**person, "type": "private"}, "date": 1782900101,
                                                "text": text}}
