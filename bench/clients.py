"""The agents: python-socketio AsyncClients (websocket transport) in a process of their own.

They run apart from the load generator so that handling thousands of socket events a second does
not delay the webhook requests (both share the client CPU; the server has the other one). Each
event is recorded with its receive time; ``message.created`` also with the send time that the
load generator wrote into the message text (``bench <monotonic time> <n>``).
"""

from __future__ import annotations

import asyncio
import time
from multiprocessing.connection import Connection
from typing import Any

import socketio

from bench.common import CLIENT_CPU, pin

CONNECT_BATCH = 25


def send_time(payload: Any) -> float:
    """Return the send time written into a bench message's text, or 0."""
    text = payload.get("text") if isinstance(payload, dict) else None
    if isinstance(text, str) and text.startswith("bench "):
        try:
            return float(text.split(" ", 2)[1])
        except (IndexError, ValueError):
            return 0.0
    return 0.0


async def _run(pipe: Connection, url: str, tokens: list[str]) -> None:
    # One flat list of (receive time, client index, event name, send time) for the whole run.
    events: list[tuple[float, int, str, float]] = []
    clients: list[socketio.AsyncClient] = []
    failures: list[str] = []

    def make(index: int) -> socketio.AsyncClient:
        client = socketio.AsyncClient(reconnection=False)

        @client.on("*")
        async def any_event(name: str, data: Any) -> None:  # noqa: ANN401
            events.append((time.monotonic(), index, name, send_time(data) if name == "message.created" else 0.0))

        return client

    async def connect(index: int, token: str) -> None:
        client = make(index)
        try:
            await client.connect(url, auth={"token": token}, transports=["websocket"], wait_timeout=20)
            clients.append(client)
        except Exception as exc:  # reported to the bench, which stops
            failures.append(f"{index}: {exc!r}")

    for start in range(0, len(tokens), CONNECT_BATCH):
        await asyncio.gather(*(connect(i, t) for i, t in enumerate(tokens[start : start + CONNECT_BATCH], start)))
    pipe.send(("ready", len(clients), failures))
    loop = asyncio.get_running_loop()
    while True:
        command = await loop.run_in_executor(None, pipe.recv)
        if command == "count":
            pipe.send(("count", len(events)))
        elif command == "take":
            pipe.send(("events", events[:]))
            events.clear()
        elif command == "stop":
            break
    await asyncio.gather(*(c.disconnect() for c in clients), return_exceptions=True)
    pipe.send(("stopped", len(clients)))


def run(pipe: Connection, url: str, tokens: list[str]) -> None:
    """Connect one client per token to ``url`` and serve the bench's commands until "stop"."""
    pin(CLIENT_CPU)
    asyncio.run(_run(pipe, url, tokens))
