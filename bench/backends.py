"""PostgreSQL databases and Redis servers of the bench's own, and the CPU they use.

PostgreSQL: the server of ``DESK_BENCH_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``); the bench creates ``desk_bench_<name>``, uses
it, and drops it, so it never touches another database (the tests' ``test`` among them). Redis: a
``redis-server`` started on a free loopback port without persistence, never the machine's Redis.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bench.common import HOST, cpu_seconds, free_port

POSTGRES_ENV = "DESK_BENCH_POSTGRES_URL"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


def postgres_server() -> str:
    """Return the URL of a database on the PostgreSQL server the bench may create databases on."""
    return os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES)


def with_database(url: str, name: str) -> str:
    """Return ``url`` pointing at database ``name``."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@contextlib.contextmanager
def pg_database(name: str) -> Iterator[str]:
    """Create the empty database ``desk_bench_<name>`` (dropping a leftover first); yield its URL; drop it."""
    import psycopg2

    database = f"desk_bench_{name}"
    admin = psycopg2.connect(postgres_server(), connect_timeout=5)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            cur.execute(f'CREATE DATABASE "{database}"')
        yield with_database(postgres_server(), database)
    finally:
        with contextlib.suppress(psycopg2.Error), admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()


def pg_available() -> str | None:
    """Return why PostgreSQL cannot be used, or None when it can."""
    try:
        import psycopg2
    except ImportError:
        return "psycopg2 is not installed (pip install -e '.[test]')"
    try:
        psycopg2.connect(postgres_server(), connect_timeout=5).close()
    except psycopg2.Error as exc:
        return f"PostgreSQL is not reachable at {postgres_server()}: {str(exc).strip()}"
    return None


class PgBackends:
    """The server processes serving one database's connections, for their CPU seconds."""

    def __init__(self, url: str) -> None:
        import psycopg2

        self.name = urlsplit(url).path.lstrip("/")
        self.conn = psycopg2.connect(postgres_server())
        self.conn.autocommit = True

    def pids(self) -> list[int]:
        """Return the backends connected to the database now."""
        with self.conn.cursor() as cur:
            cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.name,))
            return [row[0] for row in cur.fetchall()]

    def close(self) -> None:
        """Close the bench's own connection (it is to the maintenance database, never counted)."""
        self.conn.close()


class RedisServer:
    """A ``redis-server`` on a free loopback port, without persistence."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.port = free_port()
        self.url = f"redis://{HOST}:{self.port}/0"
        self._log = open(workdir / f"redis-{self.port}.log", "wb")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", HOST, "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--dir", str(workdir)],
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    def _answers(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def cpu(self) -> float:
        """Return the server's CPU seconds so far."""
        return cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        """Stop the server."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[RedisServer]:
    """Run a Redis server of the bench's own for the block."""
    server = RedisServer(workdir)
    try:
        yield server
    finally:
        server.stop()
