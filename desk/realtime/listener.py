"""The one place that emits: committed event records go to each operator's room."""

from __future__ import annotations

import asyncio
import logging

import socketio

from desk.events import Record
from desk.realtime.packets import event_packet, send_here
from desk.realtime.redis import DeskRedisManager
from desk.realtime.rooms import operator_room, token_room

log = logging.getLogger(__name__)


class Listener:
    """Emits each committed record to its operator's room, with that operator's ``seq``."""

    def __init__(self, sio: socketio.AsyncServer) -> None:
        self.sio = sio
        self._tasks: set[asyncio.Task] = set()

    def __call__(self, records: list[Record]) -> None:
        """Schedule the emits of one committed batch (called by the bus after the commit)."""
        task = asyncio.get_running_loop().create_task(self._emit(records))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _emit(self, records: list[Record]) -> None:
        # Each payload's JSON comes from the event log's text (``Record.payload_json``), not
        # from encoding the payload again for every operator.
        if isinstance(self.sio.manager, DeskRedisManager):
            # One publish for the whole change rather than one per event.
            try:
                await self.sio.manager.emit_encoded(
                    [(record.name, record.payload_json(), operator_room(record.operator_id)) for record in records])
            except Exception:  # a manager outage: the clients heal by replay (CONTRACT §7)
                log.exception("emit of %d events failed", len(records))
            return
        for record in records:
            try:
                pkt = event_packet(record.name, record.payload_json())
                await send_here(self.sio, operator_room(record.operator_id), pkt)
            except Exception:  # a manager outage: the client heals by replay (CONTRACT §7)
                log.exception("emit of %s to operator %s failed", record.name, record.operator_id)

    async def disconnect_room(self, room: str) -> None:
        """Disconnect every socket in ``room``, on every process when they share Redis."""
        if isinstance(self.sio.manager, DeskRedisManager):
            await self.sio.manager.disconnect_room(room)
            return
        participants = list(self.sio.manager.get_participants("/", room))
        for sid, _eio_sid in participants:
            await self.sio.disconnect(sid)

    async def disconnect_operator(self, operator_id: int) -> None:
        """Drop an operator's sockets (disabled, deleted, password reset)."""
        await self.disconnect_room(operator_room(operator_id))

    async def disconnect_token(self, token: str) -> None:
        """Drop the sockets opened with a revoked token."""
        from desk.services.auth import token_hash

        await self.disconnect_room(token_room(token_hash(token)))

    async def drain(self) -> None:
        """Wait for scheduled emits (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
