"""List and run chat actions: the built-in accept / transfer / close, and ``desk.chat_actions`` plug-ins.

A plug-in's work that must reach outside (post a transcript, open a ticket) is handed to
``ActionRun.later``: a durable job that calls the action's ``deliver`` and retries it with backoff.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from desk import events, payloads
from desk.actions import ActionRun, ChatAction
from desk.context import Context
from desk.events import Changes
from desk.services import assignment, jobs, notify
from desk.services.errors import Invalid, NotFound
from desk.store import Chat, Job, Message, Operator, Queue, queries

log = logging.getLogger(__name__)

# A plug-in delivery that keeps failing is given up after this many attempts, with a note in the chat.
MAX_DELIVERY_ATTEMPTS = 8


def known_codes(ctx: Context) -> dict[str, str]:
    """Return every action code an admin may enable on a queue, with its title."""
    return {**assignment.BUILTIN_ACTIONS, **{code: a.title for code, a in ctx.actions.items()}}


def default_codes(ctx: Context) -> list[str]:
    """Return the actions a new queue gets: every one shipped with Desk (plug-ins are enabled per queue)."""
    shipped = [code for code, a in ctx.actions.items() if type(a).__module__.startswith("desk.")]
    return [*assignment.BUILTIN_ACTIONS, *sorted(shipped)]


def available(ctx: Context, chat: Chat) -> list[dict[str, str]]:
    """Return ``[{code, title}]``: what the chat's queue and state allow; never empty for an active chat."""
    listed = assignment.actions(chat)
    queue = Queue.get_or_none(Queue.id == chat.queue_id) if chat.queue_id else None
    enabled = set(json.loads(queue.actions)) if queue is not None else set(ctx.actions)
    for code, action in ctx.actions.items():
        if code in enabled and chat.status in action.states:
            listed.append({"code": code, "title": action.title})
    return listed


def _note(ctx: Context, chat_id: int, text: str) -> None:
    """Add a system note to a chat and push it."""
    with ctx.write() as changes:
        chat = Chat.get_by_id(chat_id)
        message = Message.create(chat=chat.id, channel_id=chat.channel_id, direction="in", text=text,
                                 author_type="system", author_name="Desk", status="received")
        notify.message_event(changes, events.MESSAGE_CREATED, message, queries.watchers(chat))


async def run(ctx: Context, op: Operator, chat: Chat, code: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run action ``code`` on ``chat``; return ``{chat, note}``."""
    if code not in {a["code"] for a in available(ctx, chat)}:
        raise NotFound("this action is not available for the chat")
    if code == "accept":
        return {"chat": payloads.chat(assignment.accept(ctx, op, chat.id)), "note": None}
    if code == "close":
        return {"chat": payloads.chat(assignment.close(ctx, op, chat)), "note": None}
    if code == "transfer":
        ids = {key: params.get(key) for key in ("operator_id", "queue_id")}
        return {"chat": payloads.chat(assignment.transfer(ctx, op, chat, **ids)), "note": None}
    action: ChatAction = ctx.actions[code]
    deliveries: list[dict[str, Any]] = []

    def messages() -> list[dict[str, Any]]:
        rows = list(Message.select().where(Message.chat == chat.id).order_by(Message.id))
        return payloads.messages(rows)

    action_run = ActionRun(chat=payloads.chat(chat), operator=payloads.operator(op), params=params,
                           http=ctx.http, messages=messages, later=deliveries.append)
    try:
        note = await action.run(action_run)
    except ValueError as exc:
        raise Invalid(str(exc)) from exc
    if deliveries:

        def enqueue(changes: Changes) -> None:
            for data in deliveries:
                jobs.enqueue(ctx, changes, jobs.ACTION, chat.id, payload=json.dumps({"code": code, "data": data}))

        # Retried here, not with the request: the plug-in's run is not repeated (it may have called out).
        ctx.write_retrying(enqueue)
    return {"chat": payloads.chat(Chat.get_by_id(chat.id)), "note": note}


async def action_job(ctx: Context, job: Job) -> jobs.Retry | None:
    """Deliver a plug-in action's deferred work; retry with backoff, give up with a note."""
    payload = json.loads(job.payload or "{}")
    action = ctx.actions.get(payload.get("code"))
    if action is None:
        log.error("job %s names an action that is not installed: %s", job.id, payload.get("code"))
        return None
    try:
        note = await action.deliver(payload.get("data") or {}, ctx.http)
    except Exception as exc:  # the outside system failed: retry, then tell the agents
        if job.attempts + 1 < MAX_DELIVERY_ATTEMPTS:
            return jobs.Retry(jobs.backoff(job.attempts + 1), error=str(exc)[:500])
        _note(ctx, job.ref_id, f"{action.title} failed: {exc}")
        return None
    if note:
        _note(ctx, job.ref_id, note)
    return None
