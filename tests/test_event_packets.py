"""The webhook path's shortcuts give what the libraries would: the Socket.IO packet built from the
event log's JSON, and model rows read without peewee's per-query column mapping."""

from __future__ import annotations

import json

import pytest
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from desk.events import Record
from desk.realtime.packets import event_packet
from desk.store import Channel, Chat, Contact, Message, queries

PAYLOADS = [
    {"id": 7, "text": "Привет 👋 <script>alert(1)</script> \"quoted\" \\ \n", "author": {"type": "contact", "id": None},
     "attachments": [{"meta": {"w": 1.5}}], "ready": True, "edited_at": None},
    {"chats": 0, "messages": 0},
    {},
]


def python_socketio_packet(name: str, payload: dict, namespace: str = "/") -> str:
    """Return what python-socketio's emit sends for ``payload``: its packet, in an engine.io message."""
    encoded = sio_packet.Packet(sio_packet.EVENT, namespace=namespace, data=[name, payload]).encode()
    return eio_packet.Packet(eio_packet.MESSAGE, encoded).encode()


@pytest.mark.parametrize("data", PAYLOADS)
@pytest.mark.parametrize("namespace", ["/", "/desk"])
def test_an_event_packet_from_the_logged_json_is_the_one_python_socketio_sends(data, namespace):
    record = Record(3, 41, "message.created", data, json.dumps(data, separators=(",", ":")))

    ours = event_packet(record.name, record.payload_json(), namespace).encode()

    assert ours == python_socketio_packet(record.name, record.payload(), namespace)
    assert json.loads(record.payload_json()) == {**data, "seq": 41}


async def test_rows_read_by_hand_equal_peewee_s_models(desk, fake_telegram):
    _, admin_token = await desk.operator("boss", role="admin")
    channel = await desk.telegram_channel(admin_token, fake_telegram)
    update = {"update_id": 1, "message": {"message_id": 5, "date": 1782900101, "text": "hi",
                                          "from": {"id": 77, "is_bot": False, "first_name": "Ivan", "username": "ivan"},
                                          "chat": {"id": 77, "first_name": "Ivan", "type": "private"}}}
    await desk.telegram_update(channel, update)

    chat = queries.open_chat(channel["id"], "77")
    contact = queries.contact_by_external_id(channel["id"], "77")
    message = queries.message_by_external_id(channel["id"], "77:5")
    found = queries.channel_by_id(channel["id"])

    for row, model in ((chat, Chat), (contact, Contact), (message, Message), (found, Channel)):
        assert isinstance(row, model)
        assert row.__data__ == model.get_by_id(row.id).__data__
        assert not row.is_dirty()
    assert chat.channel_id == channel["id"] and chat.contact_id == contact.id and message.chat_id == chat.id
    assert queries.open_chat(channel["id"], "78") is None
