"""Light Socket.IO clients for the scale bench: the v5 protocol by hand over aiohttp's websocket client.

python-socketio's ``AsyncClient`` costs about a millisecond of CPU and tens of KB per connection;
thousands of them would load the client CPU more than the server under test. Here a connection
is one aiohttp websocket and one reader task that:

- opens ``/socket.io/?EIO=4&transport=websocket``, reads engine.io's OPEN packet (``0{...}``),
  sends the Socket.IO CONNECT with the auth object (``40{"token": ...}``) and waits for
  ``40{...}`` (accepted) or ``44{...}`` (refused);
- answers each engine.io PING (``2``) with a PONG (``3``), so idle sockets stay open for as long
  as the bench wants (the servers ping every 25 s);
- for each event (``42["name", ...]``) counts the name and, for ``message.created`` whose text is
  ``bench <monotonic send time> <n> <tag>``, keeps (receive time, send time, n, tag of the server
  the webhook went to, tag of the server this socket is connected to). Nothing else is parsed.

Many clients run in one process (``run``), several processes in a ``Fleet`` driven by the bench
over pipes. Every time is ``time.monotonic()``, one clock for every process of the machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import time
from collections import Counter
from multiprocessing.connection import Connection

import aiohttp

from bench.common import CLIENT_CPU, pin, rss_mb

BENCH_TEXT = re.compile(r"bench (\d+\.\d+) (\d+) (\w+)")
CREATED = '42["message.created"'
CONNECT_CONCURRENCY = 50
CONNECT_TIMEOUT = 30.0


class Sock:
    """One connection: its token, the tag of its server, the websocket and its reader task."""

    __slots__ = ("url", "token", "tag", "ws", "task")

    def __init__(self, url: str, token: str, tag: str) -> None:
        self.url = url
        self.token = token
        self.tag = tag
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.task: asyncio.Task | None = None


class Swarm:
    """The connections of one client process and what they received."""

    def __init__(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, enable_cleanup_closed=False),
            timeout=aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT),
        )
        self.socks: list[Sock] = []
        # (receive time, send time, n, webhook's server tag, this socket's server tag)
        self.records: list[tuple[float, float, int, str, str]] = []
        self.counts: Counter[str] = Counter()
        self.failures: list[str] = []
        self.dropped = 0  # connections the server closed
        self.churn_task: asyncio.Task | None = None
        self.churned = Counter()

    async def open(self, sock: Sock) -> bool:
        """Connect one socket; return whether the server accepted it."""
        ws = None
        try:
            ws = await self.session.ws_connect(
                sock.url.rstrip("/") + "/socket.io/?EIO=4&transport=websocket",
                autoping=True,
                heartbeat=None,
                max_msg_size=0,
                compress=0,
            )
            first = await asyncio.wait_for(ws.receive(), CONNECT_TIMEOUT)
            if first.type != aiohttp.WSMsgType.TEXT or not first.data.startswith("0"):
                raise ConnectionError(f"no engine.io OPEN: {first.type} {str(first.data)[:80]}")
            await ws.send_str("40" + json.dumps({"token": sock.token}))
            while True:
                answer = await asyncio.wait_for(ws.receive(), CONNECT_TIMEOUT)
                if answer.type != aiohttp.WSMsgType.TEXT:
                    raise ConnectionError(f"closed during CONNECT: {answer.type}")
                if answer.data == "2":
                    await ws.send_str("3")
                    continue
                if answer.data.startswith("40"):
                    break
                raise ConnectionError(f"refused: {answer.data[:120]}")
        except Exception as exc:  # reported to the bench
            if len(self.failures) < 50:
                self.failures.append(f"{sock.tag}: {exc!r}"[:200])
            if ws is not None:
                await ws.close()
            return False
        sock.ws = ws
        sock.task = asyncio.get_running_loop().create_task(self.read(sock))
        self.socks.append(sock)
        return True

    async def read(self, sock: Sock) -> None:
        """Answer pings and record events until the connection ends."""
        ws = sock.ws
        assert ws is not None
        records, counts, here = self.records, self.counts, sock.tag
        text_type = aiohttp.WSMsgType.TEXT
        try:
            while True:
                msg = await ws.receive()
                if msg.type is not text_type:
                    break
                data = msg.data
                if data[0] == "4":
                    if data.startswith(CREATED):
                        counts["message.created"] += 1
                        found = BENCH_TEXT.search(data)
                        if found is not None:
                            records.append(
                                (time.monotonic(), float(found[1]), int(found[2]), found[3], here)
                            )
                    elif data.startswith('42["'):
                        counts[data[4 : data.find('"', 4)]] += 1
                    elif data.startswith("41"):
                        break
                elif data == "2":
                    await ws.send_str("3")
                elif data[0] == "1":
                    break
        except (asyncio.CancelledError, ConnectionError):
            pass
        finally:
            if sock in self.socks:
                self.socks.remove(sock)
                self.dropped += 1

    async def close(self, sock: Sock, graceful: bool = True) -> None:
        """Close one socket: with a Socket.IO DISCONNECT first, or only the websocket (a closed tab)."""
        if sock in self.socks:
            self.socks.remove(sock)
        ws = sock.ws
        if ws is not None and not ws.closed:
            try:
                if graceful:
                    await ws.send_str("41")
                await ws.close()
            except Exception:
                pass
        if sock.task is not None:
            sock.task.cancel()
            await asyncio.gather(sock.task, return_exceptions=True)

    async def connect(self, specs: list[tuple[str, str, str]]) -> tuple[int, float]:
        """Connect ``(url, token, tag)`` specs, CONNECT_CONCURRENCY at a time; return (accepted, seconds)."""
        start = time.monotonic()
        slots = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def one(spec: tuple[str, str, str]) -> bool:
            async with slots:
                return await self.open(Sock(*spec))

        done = await asyncio.gather(*(one(s) for s in specs))
        return sum(done), time.monotonic() - start

    async def churn(self, rate: float) -> None:
        """Close a random socket and open one with the same token, ``rate`` times a second.

        Every other close is graceful (Socket.IO DISCONNECT); the others drop the websocket only.
        """
        rng = random.Random(7)
        interval = 1.0 / rate
        nxt = time.monotonic()
        tick = 0
        tasks: set[asyncio.Task] = set()

        async def cycle(sock: Sock, graceful: bool) -> None:
            await self.close(sock, graceful)
            self.churned["disconnects"] += 1
            if await self.open(Sock(sock.url, sock.token, sock.tag)):
                self.churned["connects"] += 1
            else:
                self.churned["failed"] += 1

        while True:
            nxt += interval
            await asyncio.sleep(max(0.0, nxt - time.monotonic()))
            if not self.socks:
                continue
            tick += 1
            task = asyncio.get_running_loop().create_task(cycle(rng.choice(self.socks), tick % 2 == 0))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    async def close_all(self) -> int:
        """Close every socket gracefully; return how many there were."""
        socks = list(self.socks)
        slots = asyncio.Semaphore(CONNECT_CONCURRENCY * 4)

        async def one(sock: Sock) -> None:
            async with slots:
                await self.close(sock)

        await asyncio.gather(*(one(s) for s in socks))
        return len(socks)


async def _serve(pipe: Connection) -> None:
    swarm = Swarm()
    loop = asyncio.get_running_loop()
    pipe.send(("ready",))
    try:
        while True:
            command, *args = await loop.run_in_executor(None, pipe.recv)
            if command == "connect":
                accepted, seconds = await swarm.connect(args[0])
                pipe.send(("connected", accepted, swarm.failures[:5], seconds))
                swarm.failures.clear()
            elif command == "count":
                pipe.send(("count", sum(swarm.counts.values())))
            elif command == "take":
                # Cleared in place: every reader task holds these two objects.
                pipe.send(("taken", swarm.records, dict(swarm.counts), len(swarm.socks), swarm.dropped))
                swarm.records.clear()
                swarm.counts.clear()
            elif command == "churn":
                swarm.churned = Counter()
                swarm.churn_task = loop.create_task(swarm.churn(args[0]))
                pipe.send(("churning",))
            elif command == "churn_stop":
                if swarm.churn_task is not None:
                    swarm.churn_task.cancel()
                    await asyncio.gather(swarm.churn_task, return_exceptions=True)
                pipe.send(("churned", dict(swarm.churned), swarm.failures[:5]))
                swarm.failures.clear()
            elif command == "stats":
                pipe.send(("stats", len(swarm.socks), rss_mb(os.getpid()), swarm.dropped))
            elif command == "close_all":
                pipe.send(("closed", await swarm.close_all()))
            elif command == "stop":
                break
    finally:
        await swarm.close_all()
        await swarm.session.close()
    pipe.send(("stopped",))


def run(pipe: Connection) -> None:
    """Serve the bench's commands in this process (pinned to the client CPU) until "stop"."""
    pin(CLIENT_CPU)
    asyncio.run(_serve(pipe))


class Fleet:
    """Several client processes, commanded together; sockets are spread over them in turn."""

    def __init__(self, processes: int) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs = []
        for _ in range(processes):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=run, args=(child,), daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)
        for pipe in self.pipes:
            self._recv(pipe, 60)

    @property
    def pids(self) -> list[int]:
        """Return the client processes' ids."""
        return [p.pid for p in self.procs]

    @staticmethod
    def _recv(pipe: Connection, timeout: float) -> tuple:
        if not pipe.poll(timeout):
            raise RuntimeError("a socket-client process did not answer")
        return pipe.recv()

    def ask(self, command: tuple, timeout: float = 300.0) -> list[tuple]:
        """Send one command to every process and return their answers."""
        for pipe in self.pipes:
            pipe.send(command)
        return [self._recv(pipe, timeout) for pipe in self.pipes]

    def connect(self, specs: list[tuple[str, str, str]], timeout: float = 600.0) -> tuple[int, list[str], float]:
        """Connect ``(url, token, tag)`` specs spread over the processes; return (accepted, failures, seconds)."""
        parts: list[list[tuple[str, str, str]]] = [[] for _ in self.pipes]
        for index, spec in enumerate(specs):
            parts[index % len(parts)].append(spec)
        for pipe, part in zip(self.pipes, parts, strict=True):
            pipe.send(("connect", part))
        answers = [self._recv(pipe, timeout) for pipe in self.pipes]
        return (
            sum(a[1] for a in answers),
            [f for a in answers for f in a[2]],
            max(a[3] for a in answers),
        )

    def count(self) -> int:
        """Return how many events the clients have received since the last take."""
        return sum(a[1] for a in self.ask(("count",)))

    def take(self) -> tuple[list[tuple[float, float, int, str, str]], Counter[str], int, int]:
        """Return and clear (message.created records, event counts, open sockets, sockets the server dropped)."""
        records: list[tuple[float, float, int, str, str]] = []
        counts: Counter[str] = Counter()
        open_, dropped = 0, 0
        for answer in self.ask(("take",)):
            records += answer[1]
            counts.update(answer[2])
            open_ += answer[3]
            dropped += answer[4]
        return records, counts, open_, dropped

    def stats(self) -> tuple[int, float]:
        """Return (open sockets, client RSS MiB summed over the processes)."""
        answers = self.ask(("stats",))
        return sum(a[1] for a in answers), sum(a[2] for a in answers)

    def churn(self, rate: float) -> None:
        """Start churning: ``rate`` reconnects a second over all processes."""
        self.ask(("churn", rate / len(self.pipes)))

    def churn_stop(self) -> tuple[Counter[str], list[str]]:
        """Stop churning; return the counts and a few failures."""
        total: Counter[str] = Counter()
        failures: list[str] = []
        for answer in self.ask(("churn_stop",)):
            total.update(answer[1])
            failures += answer[2]
        return total, failures

    def close_all(self) -> int:
        """Close every socket; return how many were open."""
        return sum(a[1] for a in self.ask(("close_all",)))

    def stop(self) -> None:
        """Close everything and end the processes."""
        try:
            self.ask(("stop",), 120)
        except (RuntimeError, OSError, EOFError):
            pass
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
