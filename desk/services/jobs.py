"""Durable background work: the outbox (agent replies to send) and fetches done after a webhook's answer.

Jobs live in the ``job`` table, written in the same transaction as the change that needs them.
Any process may run them: a job is claimed by a conditional update that sets a lease, so two
processes never work on one job at once, and a job whose process died is taken over when its
lease runs out (CONTRACT §8: a send in flight at a crash is sent again).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

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


def backoff(attempts: int) -> float:
    """Return seconds to wait before attempt ``attempts + 1``: 2, 4, 8 … up to 5 minutes."""
    return float(min(2 ** max(attempts, 1), 300))


class RateLimiter:
    """Spaces sends per chat and per channel (CONTRACT §8: Telegram ~1/s per chat, 30/s per bot)."""

    def __init__(self) -> None:
        self._chat_next: dict[tuple[int, str], float] = {}
        self._channel_next: dict[int, float] = {}
        self._blocked_until: dict[tuple[int, str], float] = {}

    def reserve(self, channel_id: int, chat_key: str, per_chat_interval: float, per_second: float) -> float:
        """Reserve the next slot for a send; return how many seconds from now it is."""
        now = time.monotonic()
        key = (channel_id, chat_key)
        start = max(now, self._chat_next.get(key, 0.0), self._channel_next.get(channel_id, 0.0),
                    self._blocked_until.get(key, 0.0))
        if per_chat_interval:
            self._chat_next[key] = start + per_chat_interval
        if per_second:
            self._channel_next[channel_id] = start + 1.0 / per_second
        return start - now

    def block(self, channel_id: int, chat_key: str, seconds: float) -> None:
        """Hold sends to a chat for ``seconds`` (a messenger's ``retry_after``)."""
        self._blocked_until[(channel_id, chat_key)] = time.monotonic() + seconds


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
