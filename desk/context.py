"""The context services run in: settings, the store's transaction helper, the bus, providers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import aiohttp

from desk.events import Bus, Changes
from desk.services.errors import ServiceError
from desk.settings import Settings
from desk.store import Channel, atomic, is_conflict
from providers import Registry
from providers.base import Provider

log = logging.getLogger(__name__)

T = TypeVar("T")
# Runs of a change that the database aborted for a concurrent transaction, before giving up.
WRITE_ATTEMPTS = 4
# Before running a request again, wait a random time of up to this many seconds times the runs so
# far: the two processes whose transactions deadlocked then come back apart, not in step.
RERUN_JITTER = 0.05


async def _nothing(*_: Any) -> None:
    return None


async def rerun_on_conflict(attempt: Callable[[], Awaitable[T]], *, unless: Callable[[], bool] = lambda: False) -> T:
    """Await ``attempt()``; when a concurrent transaction made the database abort it, again after a random pause.

    For work whose one lasting effect is its transaction (an agent's accept, close, transfer…):
    the aborted run was rolled back, and its events, jobs and pushes go out only after a commit,
    so they happen once, for the run that committed. ``unless()`` true after a failed run (it
    did something outside the database) gives up at once. A ``ServiceError`` is the work's own
    answer, even when a conflict led to it.
    """
    for run in range(1, WRITE_ATTEMPTS + 1):
        try:
            return await attempt()
        except Exception as exc:
            if run == WRITE_ATTEMPTS or isinstance(exc, ServiceError) or not is_conflict(exc) or unless():
                raise
            log.info("a concurrent transaction aborted this one (%s); running it again", str(exc).splitlines()[0])
        await asyncio.sleep(random.uniform(0, RERUN_JITTER * run))
    raise AssertionError("unreachable")


class UnknownProvider(Exception):
    """A channel names a provider that is not installed."""


class Context:
    """What every service needs, built once by ``create_app``."""

    def __init__(self, settings: Settings, registry: Registry, bus: Bus) -> None:
        self.settings = settings
        self.registry = registry
        self.bus = bus
        self.http: aiohttp.ClientSession | None = None
        self.secret_key = ""
        self.embed_secret = ""
        # Set to wake the job worker (a new reply to send, a file to fetch).
        self.wake = asyncio.Event()
        self._providers: dict[int, tuple[str, Provider]] = {}
        self.throttle: Any = None
        # Chat actions from the ``desk.chat_actions`` entry points, by code (the app fills it).
        self.actions: dict[str, Any] = {}
        self.worker: Any = None
        # Spaces the sends to messengers (jobs.RateLimiter; over Redis with --redis: the app sets it).
        self.limiter: Any = None
        # Set by the realtime layer: drop sockets of an operator or of a revoked token.
        self.disconnect_operator: Callable[[int], Awaitable[None]] = _nothing
        self.disconnect_token: Callable[[str], Awaitable[None]] = _nothing

    @contextlib.contextmanager
    def write(self) -> Iterator[Changes]:
        """Run a change in one transaction; its events are logged inside it and published after it."""
        changes = Changes()
        with atomic():
            yield changes
            records = changes.flush()
        self.bus.publish(records)
        for callback in changes.after_commit:
            callback()

    def write_retrying(self, change: Callable[[Changes], T]) -> T:
        """Run ``change(changes)`` in ``write()``, again when a concurrent transaction made the database abort it.

        Only for a change that may run twice as if once, such as a webhook's (deduplicated, and
        wholly inside the transaction). With several processes on PostgreSQL, two transactions
        can deadlock or insert the same new contact at once; one of them is aborted.
        """
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                with self.write() as changes:
                    return change(changes)
            except Exception as exc:
                if attempt == WRITE_ATTEMPTS or not is_conflict(exc):
                    raise
                log.info("a concurrent transaction aborted this one (%s); running it again", str(exc).splitlines()[0])
        raise AssertionError("unreachable")

    def provider(self, channel: Channel) -> Provider:
        """Return the provider instance serving ``channel`` (cached until its config changes)."""
        key = f"{channel.provider}|{channel.config}|{channel.secret}"
        cached = self._providers.get(channel.id)
        if cached is not None and cached[0] == key:
            return cached[1]
        cls = self.registry.get(channel.provider)
        if cls is None:
            raise UnknownProvider(channel.provider)
        assert self.http is not None, "the HTTP client session starts with the app"
        instance = cls(json.loads(channel.config), self.http, channel.secret)
        self._providers[channel.id] = (key, instance)
        return instance

    def provider_for_config(self, code: str, config: dict[str, Any]) -> Provider:
        """Return a provider instance for a config not yet saved (to validate it)."""
        cls = self.registry.get(code)
        if cls is None:
            raise UnknownProvider(code)
        assert self.http is not None
        return cls(config, self.http, "")
