"""Socket.IO event packets built from payloads already encoded as JSON, and their sending in this process.

python-socketio's ``emit`` encodes the payload on every call, walks it looking for binary
parts and makes a task per recipient. Desk emits each event to one operator's room, with a
payload whose JSON the event log already holds (``Record.payload_json``): building the packet
from that text costs a fraction of it (bench/RESULTS.md, "Where a webhook's time goes").
"""

from __future__ import annotations

import functools
import json
import logging

import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet

log = logging.getLogger(__name__)

NAMESPACE = "/"


@functools.lru_cache(maxsize=256)
def _event_prefix(event: str, namespace: str) -> str:
    """Return the head of an EVENT packet up to its payload: type, namespace (but the default) and name."""
    head = "" if namespace == NAMESPACE else namespace + ","
    return f"{sio_packet.EVENT}{head}[{json.dumps(event)},"


def event_packet(event: str, payload_json: str, namespace: str = NAMESPACE) -> eio_packet.Packet:
    """Return the engine.io packet that ``emit(event, payload)`` sends, from the payload's JSON text."""
    return eio_packet.Packet(eio_packet.MESSAGE, f"{_event_prefix(event, namespace)}{payload_json}]")


async def send_here(sio: socketio.AsyncServer, room: str, pkt: eio_packet.Packet, namespace: str = NAMESPACE) -> None:
    """Send ``pkt`` to the sockets of ``room`` connected to this process, one after another.

    As python-socketio's own emit does (its manager, with ``ignore_queue``): one packet object
    for every recipient, through engine.io's queue of each socket, and a socket that fails does
    not keep the packet from the others (an operator's other tabs).
    """
    for _sid, eio_sid in sio.manager.get_participants(namespace, room):
        try:
            await sio.eio.send_packet(eio_sid, pkt)
        except Exception:  # the client heals by replay (CONTRACT §7)
            log.exception("sending to socket %s of %s failed", eio_sid, room)
