"""The store: peewee models, the database proxy and named queries."""

from desk.store.db import atomic, database, is_conflict, is_sqlite, open_database, ping
from desk.store.models import (
    MODELS, Attachment, Channel, Chat, Contact, Event, Job, Message, MessagePart, Operator, OperatorQueue,
    Queue, Receipt, Setting, Token, utcnow,
)

__all__ = [
    "MODELS", "Attachment", "Channel", "Chat", "Contact", "Event", "Job", "Message", "MessagePart", "Operator",
    "OperatorQueue", "Queue", "Receipt", "Setting", "Token", "atomic", "database", "is_conflict", "is_sqlite",
    "open_database", "ping", "utcnow",
]
