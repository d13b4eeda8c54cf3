"""Durable background work: the outbox (agent replies to send) and fetches done after a webhook's answer.

Jobs live in the ``job`` table, written in the same transaction as the change that needs them.
Any process may run them: a job is claimed by a conditional update that sets a lease, so two
processes never work on one job at once, and a job whose process died is taken over when its
lease runs out (CONTRACT §8: a send in flight at a crash is sent again).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from desk.context import Context
from desk.events import Changes
from desk.store import Job, utcnow

log = logging.getLogger(__name__)

SEND = "send"
FETCH_ATTACHMENT = "attachment"
FETCH_PROFILE = "profile"
ACTION = "action"

# Jobs run at once per process: sends to different chats, downloads.
CONCURRENCY = 16
# How many due jobs one scan looks at.
BATCH = 64
# Longest wait for a rate limit slot while holding a claim; longer waits release the job.
MAX_HELD_WAIT = 5.0


@dataclass
class Retry:
    """Run the job again after ``delay`` seconds; ``counts`` says whether it used up an attempt."""

    delay: float
    error: str | None = None
    counts: bool = True


Handler = Callable[[Context, Job], Awaitable[Retry | None]]


def enqueue(ctx: Context, changes: Changes, kind: str, ref_id: int, *, chat_id: int | None = None,
            payload: str | None = None) -> Job:
    """Add a job in the current transaction and wake the worker once it commits."""
    job = Job.create(kind=kind, ref_id=ref_id, chat_id=chat_id, next_attempt_at=utcnow(), payload=payload)
    changes.after_commit.append(ctx.wake.set)
    return job


def pending(kind: str, ref_id: int) -> bool:
    """Whether a job of ``kind`` for ``ref_id`` is waiting."""
    return Job.select().where((Job.kind == kind) & (Job.ref_id == ref_id)).exists()


def drop(kind: str, ref_id: int) -> int:
    """Delete the jobs of ``kind`` for ``ref_id`` in the current transaction; return how many.

    A run in flight goes on, and finds its job gone when it ends: it is neither retried nor
    released (its lease renewal stops).
    """
    return Job.delete().where((Job.kind == kind) & (Job.ref_id == ref_id)).execute()


def backoff(attempts: int) -> float:
    """Return seconds to wait before attempt ``attempts + 1``: 2, 4, 8 … up to 5 minutes."""
    return float(min(2 ** max(attempts, 1), 300))


class RateLimiter:
    """Spaces sends per chat and per channel (CONTRACT §8: Telegram ~1/s per chat, 30/s per bot), in this process.

    A send takes the channel's next slot only once its chat may send (its previous send a
    ``per_chat_interval`` ago, no ``retry_after`` running): a chat that must wait holds no slot
    of the channel meanwhile, which the other chats' sends could have used.
    """

    def __init__(self) -> None:
        self._chat_next: dict[tuple[int, str], float] = {}
        self._channel_next: dict[int, float] = {}
        self._blocked_until: dict[tuple[int, str], float] = {}

    async def wait_turn(self, channel_id: int, chat_key: str, per_chat_interval: float, per_second: float,
                        max_wait: float = MAX_HELD_WAIT) -> float:
        """Wait until a send may go and take its slot; return 0, or the seconds to put it off if longer than ``max_wait``."""
        deadline = time.monotonic() + max_wait
        while True:
            left = max(deadline - time.monotonic(), 0.0)
            wait, taken = await self._take(channel_id, chat_key, per_chat_interval, per_second, left)
            if not taken and wait > left:
                return wait
            await asyncio.sleep(wait)  # until the slot, or until the chat may take one
            if taken:
                return 0.0

    async def _take(self, channel_id: int, chat_key: str, per_chat_interval: float, per_second: float,
                    max_wait: float) -> tuple[float, bool]:
        """Return (seconds until the slot, whether it was taken): not when the chat must wait first, nor past ``max_wait``."""
        now = time.monotonic()
        key = (channel_id, chat_key)
        ready = max(self._chat_next.get(key, 0.0), self._blocked_until.get(key, 0.0))
        if ready > now:
            return ready - now, False
        start = max(now, self._channel_next.get(channel_id, 0.0))
        if start - now > max_wait:
            return start - now, False
        if per_chat_interval:
            self._chat_next[key] = start + per_chat_interval
        if per_second:
            self._channel_next[channel_id] = start + 1.0 / per_second
        return start - now, True

    async def block(self, channel_id: int, chat_key: str, seconds: float) -> None:
        """Hold sends to a chat for ``seconds`` (a messenger's ``retry_after``)."""
        key = (channel_id, chat_key)
        self._blocked_until[key] = max(self._blocked_until.get(key, 0.0), time.monotonic() + seconds)

    async def aclose(self) -> None:
        """Release what the limiter holds (nothing, in one process)."""


# RateLimiter._take in Redis, on Redis's clock, in microseconds, in one atomic step for every
# process. KEYS: the chat's next slot, its block, the channel's next slot; ARGV: the spacing per
# chat and per channel, and the longest wait for which a slot is taken. Returns {wait, taken}.
# Each key lives until its time has passed.
TAKE_SCRIPT = """
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local ready = now
for i = 1, 2 do
  local at = tonumber(redis.call('GET', KEYS[i]))
  if at and at > ready then ready = at end
end
if ready > now then return {ready - now, 0} end
local start = tonumber(redis.call('GET', KEYS[3])) or now
if start < now then start = now end
local wait = start - now
if wait > tonumber(ARGV[3]) then return {wait, 0} end
local steps = {tonumber(ARGV[1]), 0, tonumber(ARGV[2])}
for i = 1, 3, 2 do
  if steps[i] > 0 then
    redis.call('SET', KEYS[i], string.format('%.0f', start + steps[i]), 'PX', math.ceil((wait + steps[i]) / 1000) + 1)
  end
end
return {wait, 1}
"""
# A chat's block (a messenger's retry_after) in Redis: KEYS[1] the block, ARGV[1] its length (µs).
BLOCK_SCRIPT = """
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local upto = tonumber(clock[1]) * 1000000 + tonumber(clock[2]) + tonumber(ARGV[1])
local at = tonumber(redis.call('GET', KEYS[1]))
if not at or at < upto then
  redis.call('SET', KEYS[1], string.format('%.0f', upto), 'PX', math.ceil(tonumber(ARGV[1]) / 1000) + 1)
end
return 0
"""
# Longest wait for Redis's answer to a reservation: past it the send goes by the process's own limits.
REDIS_TIMEOUT = 1.0
# After Redis failed to answer, sends are spaced by the process's own limiter for this many
# seconds before Redis is asked again, so that an outage does not cost every send a timeout.
REDIS_PAUSE = 2.0
MICROS = 1_000_000


class RedisRateLimiter(RateLimiter):
    """Spaces sends like RateLimiter, for every process together: the slots and blocks live in Redis.

    With several processes (``--redis``) each one sends for every bot; a bot's limits hold only
    if they count the sends of all of them. Each slot is taken by one script, atomic in Redis and
    timed by Redis's clock. When Redis does not answer, sends are spaced by this process's own
    slots meanwhile: a Redis outage loses no reply and holds none back, it only lets each process
    keep the limits on its own until Redis is back.
    """

    def __init__(self, client: Any) -> None:
        super().__init__()
        self.client = client
        self._take_script = client.register_script(TAKE_SCRIPT)
        self._block_script = client.register_script(BLOCK_SCRIPT)
        self._paused_until = 0.0

    @staticmethod
    def _keys(channel_id: int, chat_key: str) -> list[str]:
        # The braces put a channel's keys in one slot of a Redis Cluster, as a script's keys must be.
        prefix = f"desk:rate:{{{channel_id}}}"
        return [f"{prefix}:chat:{chat_key}", f"{prefix}:block:{chat_key}", f"{prefix}:channel"]

    async def _run(self, script: Any, keys: list[str], args: list[int]) -> Any:
        """Return the script's answer; None when Redis did not answer (or failed to, moments ago)."""
        if time.monotonic() < self._paused_until:
            return None
        try:
            answer = await script(keys=keys, args=args)
        except Exception as exc:  # Redis is away: the limits are kept by this process meanwhile
            if not self._paused_until:
                log.warning("Redis does not answer (%s): sends keep the rate limits of this process alone", exc)
            self._paused_until = time.monotonic() + REDIS_PAUSE
            return None
        if self._paused_until:
            log.info("Redis answers again: sends keep the rate limits of every process together")
            self._paused_until = 0.0
        return answer

    async def _take(self, channel_id: int, chat_key: str, per_chat_interval: float, per_second: float,
                    max_wait: float) -> tuple[float, bool]:
        # Rounded up: the spacing never allows more than per_second.
        args = [math.ceil(per_chat_interval * MICROS), math.ceil(MICROS / per_second) if per_second else 0,
                max(int(max_wait * MICROS), 0)]
        answer = await self._run(self._take_script, self._keys(channel_id, chat_key), args)
        if answer is None:
            return await super()._take(channel_id, chat_key, per_chat_interval, per_second, max_wait)
        wait, taken = answer
        return int(wait) / MICROS, bool(int(taken))

    async def block(self, channel_id: int, chat_key: str, seconds: float) -> None:
        """Hold sends to a chat for ``seconds`` in every process (a messenger's ``retry_after``)."""
        await super().block(channel_id, chat_key, seconds)
        await self._run(self._block_script, self._keys(channel_id, chat_key)[1:2], [math.ceil(seconds * MICROS)])

    async def aclose(self) -> None:
        """Close the connections to Redis."""
        with contextlib.suppress(Exception):
            await self.client.aclose()


class Worker:
    """Claims due jobs and runs their handlers; one per process."""

    def __init__(self, ctx: Context, handlers: dict[str, Handler]) -> None:
        self.ctx = ctx
        self.handlers = handlers
        self.owner = ctx.settings.worker_id or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._running: set[int] = set()
        self._busy_chats: set[int] = set()
        self._tasks: set[asyncio.Task] = set()
        self._slots = asyncio.Semaphore(CONCURRENCY)

    async def run(self) -> None:
        """Scan for due jobs whenever woken, and at least every ``job_poll`` seconds."""
        while True:
            try:
                await self.scan()
            except Exception:  # the database went away for a moment: try again on the next tick
                log.exception("job scan failed")
            try:
                await asyncio.wait_for(self.ctx.wake.wait(), timeout=self.ctx.settings.job_poll)
            except TimeoutError:
                pass
            self.ctx.wake.clear()

    async def scan(self) -> int:
        """Claim and start what is due now; return how many jobs were started."""
        now = utcnow()
        due = list(
            Job.select()
            .where((Job.next_attempt_at <= now) & (Job.lease_until.is_null() | (Job.lease_until < now)))
            .order_by(Job.id)
            .limit(BATCH)
        )
        started = 0
        seen_chats: set[int] = set()
        for job in due:
            if job.id in self._running:
                continue
            if job.kind == SEND:
                # One send at a time per chat, oldest first, so replies arrive in the order typed.
                if job.chat_id in seen_chats or job.chat_id in self._busy_chats:
                    continue
                seen_chats.add(job.chat_id)
                if Job.select().where((Job.kind == SEND) & (Job.chat_id == job.chat_id) & (Job.id < job.id)).exists():
                    continue
            if not self._claim(job, now):
                continue
            started += 1
            self._running.add(job.id)
            if job.kind == SEND:
                self._busy_chats.add(job.chat_id)
            task = asyncio.create_task(self._run(job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return started

    def _claim(self, job: Job, now: dt.datetime) -> bool:
        until = now + dt.timedelta(seconds=self.ctx.settings.job_lease)
        claimed = (
            Job.update(lease_owner=self.owner, lease_until=until)
            .where((Job.id == job.id) & (Job.lease_until.is_null() | (Job.lease_until < now)))
            .execute()
        )
        job.lease_owner, job.lease_until = self.owner, until
        return claimed == 1

    async def _run(self, job: Job) -> None:
        # A send may take longer than the lease (uploads, a slow messenger, a rate-limit wait):
        # keep the claim alive so that no other process sends the same reply meanwhile (R6).
        keeper = asyncio.create_task(self._keep_lease(job))
        try:
            async with self._slots:
                handler = self.handlers.get(job.kind)
                if handler is None:
                    log.error("no handler for job kind %s; dropping job %s", job.kind, job.id)
                    result: Retry | None = None
                else:
                    try:
                        result = await handler(self.ctx, job)
                    except Exception as exc:  # a bug or an unexpected failure: retry later, keep the job
                        log.exception("job %s (%s) failed", job.id, job.kind)
                        result = Retry(backoff(job.attempts + 1), error=repr(exc))
                keeper.cancel()
                self._finish(job, result)
        finally:
            keeper.cancel()
            self._running.discard(job.id)
            if job.kind == SEND:
                self._busy_chats.discard(job.chat_id)
                self.ctx.wake.set()  # the chat's next reply may go now

    async def _keep_lease(self, job: Job) -> None:
        lease = self.ctx.settings.job_lease
        while True:
            await asyncio.sleep(lease / 3)
            try:
                kept = (
                    Job.update(lease_until=utcnow() + dt.timedelta(seconds=lease))
                    .where((Job.id == job.id) & (Job.lease_owner == self.owner))
                    .execute()
                )
            except Exception:  # the database went away for a moment: try again on the next beat
                log.exception("renewing the lease of job %s failed", job.id)
                continue
            if not kept:
                log.warning("job %s is no longer claimed by this process", job.id)
                return

    def _finish(self, job: Job, result: Retry | None) -> None:
        mine = (Job.id == job.id) & (Job.lease_owner == self.owner)
        if result is None:
            Job.delete().where(mine).execute()
            return
        Job.update(
            attempts=Job.attempts + (1 if result.counts else 0),
            next_attempt_at=utcnow() + dt.timedelta(seconds=result.delay),
            lease_owner=None,
            lease_until=None,
            last_error=result.error,
        ).where(mine).execute()

    async def stop(self) -> None:
        """Cancel running jobs and release their claims, so that a restart or another process takes them at once."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            # A cancelled send may have reached the messenger: it goes again (at least once, CONTRACT §8).
            Job.update(lease_owner=None, lease_until=None).where(Job.lease_owner == self.owner).execute()
        except Exception:  # the database is gone too: the leases run out instead
            log.exception("releasing this process's jobs failed")
