"""Operators, passwords (Argon2id, hashed off the event loop), tokens and sessions."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import secrets
import time
from collections import defaultdict, deque

import argon2
import peewee as pw

from desk.services.errors import Conflict, Invalid
from desk.store import Operator, OperatorQueue, Queue, Setting, Token, atomic, utcnow

# argon2-cffi's defaults are Argon2id, t=3, m=64 MiB, p=4: above OWASP's minimum.
HASHER = argon2.PasswordHasher()
ROLES = ("agent", "admin")
SESSION_DAYS = 14
# Login throttle: this many failures for one login or one address within the window answer 429.
MAX_FAILURES = 10
FAILURE_WINDOW = 300.0
# A hash of a random password, verified when the login is unknown so both cases take as long.
_DUMMY_HASH = HASHER.hash(secrets.token_urlsafe(16))


async def hash_password(password: str) -> str:
    """Hash a password with Argon2id in a worker thread (about 100 ms: never on the loop)."""
    return await asyncio.get_running_loop().run_in_executor(None, HASHER.hash, password)


async def verify_password(password_hash: str, password: str) -> bool:
    """Check a password against its hash in a worker thread."""
    def check() -> bool:
        try:
            return HASHER.verify(password_hash, password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False
    return await asyncio.get_running_loop().run_in_executor(None, check)


def token_hash(token: str) -> str:
    """Return the stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def setting(key: str, default_factory) -> str:
    """Return a setting kept in the database, creating it with ``default_factory()`` the first time."""
    row = Setting.get_or_none(Setting.key == key)
    if row is None:
        try:
            with atomic():
                row = Setting.create(key=key, value=default_factory())
        except pw.IntegrityError:  # another process created it first
            row = Setting.get(Setting.key == key)
    return row.value


def embed_secret(from_env: str | None) -> str:
    """Return the embed secret: DESK_EMBED_SECRET, else the one kept in the database.

    Read on each use, so that a secret rotated through one process is the one every process checks.
    """
    return from_env or setting("embed_secret", lambda: secrets.token_urlsafe(48))


def validate_operator_fields(data: dict, *, partial: bool) -> dict[str, str]:
    """Return per-field errors of an operator body."""
    errors: dict[str, str] = {}
    if not partial or "login" in data:
        login = data.get("login")
        if not isinstance(login, str) or not login.strip() or len(login) > 150:
            errors["login"] = "a login of 1 to 150 characters is required"
    if not partial or "name" in data:
        name = data.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            errors["name"] = "a name of 1 to 200 characters is required"
    if not partial or "password" in data:
        password = data.get("password")
        if not isinstance(password, str) or len(password) < 8 or len(password) > 1024:
            errors["password"] = "a password of at least 8 characters is required"
    if "role" in data and data["role"] not in ROLES:
        errors["role"] = "role is agent or admin"
    if "max_chats" in data and (not isinstance(data["max_chats"], int) or isinstance(data["max_chats"], bool) or not 0 <= data["max_chats"] <= 1000):
        errors["max_chats"] = "max_chats is a whole number from 0 to 1000"
    if "queue_ids" in data:
        ids = data["queue_ids"]
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            errors["queue_ids"] = "queue_ids is a list of queue ids"
        elif Queue.select().where(Queue.id.in_(ids)).count() != len(set(ids)):
            errors["queue_ids"] = "unknown queue"
    if "enabled" in data and not isinstance(data["enabled"], bool):
        errors["enabled"] = "enabled is true or false"
    return errors


async def create_operator(login: str, name: str, password: str, *, role: str = "agent", max_chats: int = 5,
                          queue_ids: list[int] | None = None) -> Operator:
    """Create an operator; raise Invalid per field, Conflict for a login in use."""
    data = {"login": login, "name": name, "password": password, "role": role, "max_chats": max_chats}
    if queue_ids is not None:
        data["queue_ids"] = queue_ids
    errors = validate_operator_fields(data, partial=False)
    if errors:
        raise Invalid("the operator is not valid", fields=errors)
    if Operator.select().where(Operator.login == login.strip()).exists():
        raise Conflict(f"an operator with login {login!r} exists", code="login_taken", fields={"login": "taken"})
    password_hash = await hash_password(password)
    try:
        with atomic():
            op = Operator.create(login=login.strip(), name=name.strip(), password_hash=password_hash, role=role,
                                 max_chats=max_chats)
            for queue_id in sorted(set(queue_ids or [])):
                OperatorQueue.create(operator=op.id, queue=queue_id)
    except pw.IntegrityError as exc:
        raise Conflict(f"an operator with login {login!r} exists", code="login_taken", fields={"login": "taken"}) from exc
    return op


class LoginThrottle:
    """Counts recent login failures per login and per address."""

    def __init__(self) -> None:
        self._failures: dict[str, deque[float]] = defaultdict(deque)

    def _recent(self, key: str) -> deque[float]:
        entries = self._failures[key]
        cutoff = time.monotonic() - FAILURE_WINDOW
        while entries and entries[0] < cutoff:
            entries.popleft()
        return entries

    def blocked(self, login: str, address: str) -> bool:
        """Whether too many failures were seen for this login or address."""
        return any(len(self._recent(k)) >= MAX_FAILURES for k in (f"l:{login}", f"a:{address}"))

    def fail(self, login: str, address: str) -> None:
        """Count a failure."""
        now = time.monotonic()
        for key in (f"l:{login}", f"a:{address}"):
            self._recent(key).append(now)


async def authenticate(login: str, password: str) -> Operator | None:
    """Return the enabled operator with these credentials, taking as long for an unknown login."""
    op = Operator.get_or_none(Operator.login == login)
    if op is None:
        await verify_password(_DUMMY_HASH, password)
        return None
    if not await verify_password(op.password_hash, password) or not op.enabled:
        return None
    return op


def issue_token(op: Operator, kind: str = "api", *, days: int | None = None) -> str:
    """Create a token for ``op`` and return its secret (stored only as a hash)."""
    token = secrets.token_urlsafe(32)
    expires = utcnow() + dt.timedelta(days=days) if days else None
    Token.create(operator=op.id, token_hash=token_hash(token), kind=kind, expires_at=expires)
    return token


def operator_for_token(token: str) -> Operator | None:
    """Return the enabled operator a token belongs to, if it is valid."""
    if not token or len(token) > 200:
        return None
    row = (
        Token.select(Token, Operator).join(Operator)
        .where((Token.token_hash == token_hash(token)) & (Operator.enabled == True))  # noqa: E712
        .first()
    )
    if row is None or (row.expires_at is not None and row.expires_at < utcnow()):
        return None
    return row.operator


def revoke_token(token: str) -> None:
    """Delete a token."""
    Token.delete().where(Token.token_hash == token_hash(token)).execute()


def csrf_token(secret_key: str, session_token: str) -> str:
    """Return the CSRF token that goes with a session: an HMAC of it under the secret key."""
    return hmac.new(secret_key.encode(), b"csrf:" + session_token.encode(), hashlib.sha256).hexdigest()
