"""The store's models. Relations carry a comment and an explicit backref."""

from __future__ import annotations

import datetime as dt

import peewee as pw

from desk.store.db import database


def utcnow() -> dt.datetime:
    """Return the current UTC time, naive (the store keeps UTC without a zone)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class BaseModel(pw.Model):
    class Meta:
        database = database
        legacy_table_names = False


class Setting(BaseModel):
    """A value kept by the desk itself: generated secrets, the embed allow-list."""

    key = pw.CharField(primary_key=True, max_length=64)
    value = pw.TextField()


class Queue(BaseModel):
    name = pw.CharField(max_length=200, unique=True)
    routing = pw.CharField(max_length=20, default="manual")
    actions = pw.TextField(default="[]")  # JSON list of action codes
    created_at = pw.DateTimeField(default=utcnow)


class Operator(BaseModel):
    login = pw.CharField(max_length=150, unique=True)
    name = pw.CharField(max_length=200)
    password_hash = pw.TextField()
    role = pw.CharField(max_length=10, default="agent")
    status = pw.CharField(max_length=10, default="offline")
    max_chats = pw.IntegerField(default=5)
    enabled = pw.BooleanField(default=True)
    # The seq of the last event recorded for this operator (CONTRACT §7).
    last_seq = pw.BigIntegerField(default=0)
    created_at = pw.DateTimeField(default=utcnow)


class OperatorQueue(BaseModel):
    # membership: an operator belongs to many queues, a queue has many members
    operator = pw.ForeignKeyField(Operator, backref="memberships", on_delete="CASCADE")
    queue = pw.ForeignKeyField(Queue, backref="memberships", on_delete="CASCADE")

    class Meta:
        indexes = ((("operator", "queue"), True), (("queue", "operator"), False))


class Token(BaseModel):
    """An API bearer token or a browser session (kind), stored as a SHA-256 of the secret."""

    # the operator the token authenticates
    operator = pw.ForeignKeyField(Operator, backref="tokens", on_delete="CASCADE")
    token_hash = pw.CharField(max_length=64, unique=True)
    kind = pw.CharField(max_length=10, default="api")
    created_at = pw.DateTimeField(default=utcnow)
    expires_at = pw.DateTimeField(null=True)


class Channel(BaseModel):
    provider = pw.CharField(max_length=50)
    name = pw.CharField(max_length=200)
    enabled = pw.BooleanField(default=True)
    # new chats of the channel wait in this queue
    queue = pw.ForeignKeyField(Queue, backref="channels", null=True, on_delete="SET NULL")
    config = pw.TextField(default="{}")  # JSON, secrets included: never returned by the API
    secret = pw.CharField(max_length=64)  # the per-channel webhook secret
    unique_key = pw.CharField(max_length=200, null=True)  # bot id, page id
    registered = pw.BooleanField(default=False)
    registration_error = pw.TextField(null=True)
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("provider", "unique_key"), True),)


class Contact(BaseModel):
    # the channel the customer wrote on
    channel = pw.ForeignKeyField(Channel, backref="contacts", on_delete="CASCADE")
    external_id = pw.CharField(max_length=200)
    name = pw.CharField(max_length=300, default="")
    username = pw.CharField(max_length=200, null=True)
    avatar_path = pw.CharField(max_length=300, null=True)
    profile_checked_at = pw.DateTimeField(null=True)

    class Meta:
        indexes = ((("channel", "external_id"), True),)


class Chat(BaseModel):
    # the channel the conversation happens on
    channel = pw.ForeignKeyField(Channel, backref="chats", on_delete="RESTRICT")
    # the customer (in a Telegram group: the first member who wrote)
    contact = pw.ForeignKeyField(Contact, backref="chats", on_delete="RESTRICT")
    external_id = pw.CharField(max_length=200)
    title = pw.CharField(max_length=300, null=True)
    # the queue it waits in or was routed through
    queue = pw.ForeignKeyField(Queue, backref="chats", null=True, on_delete="SET NULL")
    status = pw.CharField(max_length=10, default="new")
    # the agent who has it
    operator = pw.ForeignKeyField(Operator, backref="chats", null=True, on_delete="SET NULL")
    unread = pw.IntegerField(default=0)
    assigned_at = pw.DateTimeField(null=True)
    last_message_id = pw.BigIntegerField(null=True)
    last_message_at = pw.DateTimeField(default=utcnow)
    created_at = pw.DateTimeField(default=utcnow)
    closed_at = pw.DateTimeField(null=True)

    class Meta:
        indexes = (
            (("channel", "external_id", "status"), False),
            (("status", "queue", "last_message_at"), False),
            (("operator", "status", "last_message_at"), False),
            (("last_message_at", "id"), False),
            (("queue", "assigned_at"), False),
        )


class Message(BaseModel):
    # the conversation it belongs to
    chat = pw.ForeignKeyField(Chat, backref="messages", on_delete="CASCADE")
    channel_id = pw.IntegerField()  # denormalised for the per-channel dedupe index
    direction = pw.CharField(max_length=3)
    text = pw.TextField(default="")
    author_type = pw.CharField(max_length=10)
    author_id = pw.IntegerField(null=True)
    author_name = pw.CharField(max_length=300, default="")
    status = pw.CharField(max_length=10)
    error = pw.TextField(null=True)
    external_id = pw.CharField(max_length=300, null=True)
    client_id = pw.CharField(max_length=100, null=True)
    created_at = pw.DateTimeField(default=utcnow)
    edited_at = pw.DateTimeField(null=True)

    class Meta:
        indexes = (
            (("channel_id", "direction", "external_id"), True),
            (("chat", "client_id"), True),
            (("chat", "id"), False),
        )


class MessagePart(BaseModel):
    """One message of a reply the messenger took as several (a long text split, a file then its text).

    Written as soon as the messenger accepts each part, so a retried send skips the parts already
    delivered, and an id the messenger reports for any part leads back to the one reply.
    """

    # the reply it is a part of
    message = pw.ForeignKeyField(Message, backref="parts", on_delete="CASCADE")
    external_id = pw.CharField(max_length=300)

    class Meta:
        indexes = ((("external_id",), False),)


class Attachment(BaseModel):
    # the message it came with (null for a contact's avatar)
    message = pw.ForeignKeyField(Message, backref="attachments", null=True, on_delete="CASCADE")
    kind = pw.CharField(max_length=10)
    file_name = pw.CharField(max_length=300, null=True)
    mime = pw.CharField(max_length=150, null=True)
    size = pw.BigIntegerField(null=True)
    ref = pw.TextField(null=True)  # what the provider needs to download it
    path = pw.CharField(max_length=300, null=True)  # relative to the media dir
    ready = pw.BooleanField(default=False)
    error = pw.TextField(null=True)
    meta = pw.TextField(default="{}")  # JSON: coordinates, shared contact


class Receipt(BaseModel):
    """A webhook delivery already stored (Telegram update_id): the same key again is a duplicate."""

    # the channel that received it
    channel = pw.ForeignKeyField(Channel, backref="receipts", on_delete="CASCADE")
    key = pw.CharField(max_length=200)
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("channel", "key"), True),)


class Event(BaseModel):
    """One event sent to one operator, kept for replay (CONTRACT §7)."""

    # the operator it was addressed to
    operator = pw.ForeignKeyField(Operator, backref="events", on_delete="CASCADE")
    seq = pw.BigIntegerField()
    name = pw.CharField(max_length=40)
    data = pw.TextField()  # the payload as emitted, JSON, without seq
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("operator", "seq"), True),)


class Job(BaseModel):
    """Durable work done after the answer: a reply to send (the outbox), a file or profile to fetch."""

    kind = pw.CharField(max_length=20)
    ref_id = pw.BigIntegerField()  # the message, attachment or contact it works on
    chat_id = pw.BigIntegerField(null=True)  # sends of one chat go out one at a time, in order
    attempts = pw.IntegerField(default=0)
    next_attempt_at = pw.DateTimeField(default=utcnow)
    lease_owner = pw.CharField(max_length=64, null=True)
    lease_until = pw.DateTimeField(null=True)
    last_error = pw.TextField(null=True)
    payload = pw.TextField(null=True)  # JSON, for jobs that need more than ref_id
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("next_attempt_at",), False), (("kind", "chat_id"), False))


MODELS = [
    Setting, Queue, Operator, OperatorQueue, Token, Channel, Contact, Chat, Message, MessagePart, Attachment,
    Receipt, Event, Job,
]
