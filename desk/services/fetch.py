"""Fetches done after a webhook's answer: attachment downloads and customer profiles."""

from __future__ import annotations

import asyncio
import json
import logging

import aiohttp

from desk import events
from desk.context import Context
from desk.files import FileTooLarge, store_stream
from desk.services import jobs, notify
from desk.store import Attachment, Channel, Chat, Contact, Job, Message, queries, utcnow
from providers.base import FetchError, IncomingAttachment

log = logging.getLogger(__name__)

MAX_FETCH_ATTEMPTS = 5
TRANSIENT = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


async def _download(ctx: Context, channel: Channel, incoming: IncomingAttachment) -> tuple[str, int, str | None]:
    provider = ctx.provider(channel)
    download = await provider.fetch_attachment(incoming)
    limit = min(provider.max_download, ctx.settings.upload_limit * 4)
    path, size = await store_stream(ctx.settings.media_dir, download.chunks, limit=limit,
                                    file_name=incoming.file_name, mime=download.mime or incoming.mime)
    return path, size, download.mime


async def attachment_job(ctx: Context, job: Job) -> jobs.Retry | None:
    """Download an incoming attachment into the media folder and mark it ready."""
    attachment = Attachment.get_or_none(Attachment.id == job.ref_id)
    if attachment is None or attachment.ready or attachment.message_id is None:
        return None
    message = Message.get_by_id(attachment.message_id)
    channel = Channel.get_by_id(message.channel_id)
    incoming = IncomingAttachment(kind=attachment.kind, ref=attachment.ref, file_name=attachment.file_name,
                                  mime=attachment.mime, size=attachment.size, meta=json.loads(attachment.meta))
    error = None
    try:
        path, size, mime = await _download(ctx, channel, incoming)
    except (FetchError, FileTooLarge) as exc:
        error = str(exc)
    except TRANSIENT as exc:
        if job.attempts + 1 < MAX_FETCH_ATTEMPTS:
            return jobs.Retry(jobs.backoff(job.attempts + 1), error=repr(exc))
        error = "the messenger did not hand over the file"
    with ctx.write() as changes:
        attachment = Attachment.get_by_id(attachment.id)
        if error is None:
            attachment.path, attachment.size, attachment.ready = path, size, True
            if mime and not attachment.mime:
                attachment.mime = mime.split(";")[0].strip()
        else:
            attachment.error = error
        attachment.save()
        message = Message.get_by_id(attachment.message_id)
        notify.message_event(changes, events.MESSAGE_UPDATED, message, queries.watchers(Chat.get_by_id(message.chat_id)))
    return None


async def profile_job(ctx: Context, job: Job) -> jobs.Retry | None:
    """Ask the messenger for the customer's name and picture, and push the chats that show them."""
    contact = Contact.get_or_none(Contact.id == job.ref_id)
    if contact is None:
        return None
    channel = Channel.get_by_id(contact.channel_id)
    chat = Chat.get_or_none(Chat.id == job.chat_id) if job.chat_id else None
    provider = ctx.provider(channel)
    try:
        profile = await provider.fetch_profile(contact.external_id, chat.external_id if chat else contact.external_id)
    except TRANSIENT as exc:
        if job.attempts + 1 < MAX_FETCH_ATTEMPTS:
            return jobs.Retry(jobs.backoff(job.attempts + 1), error=repr(exc))
        profile = None
    avatar_path = None
    if profile is not None and profile.avatar is not None:
        try:
            avatar_path, _, _ = await _download(ctx, channel, profile.avatar)
        except (FetchError, FileTooLarge, *TRANSIENT) as exc:
            log.info("avatar of contact %s not fetched: %s", contact.id, exc)
    with ctx.write() as changes:
        contact = Contact.get_by_id(contact.id)
        changed = False
        if profile is not None:
            if profile.name and profile.name != contact.name:
                contact.name, changed = profile.name, True
            if profile.username and profile.username != contact.username:
                contact.username, changed = profile.username, True
        if avatar_path:
            contact.avatar_path, changed = avatar_path, True
        contact.profile_checked_at = utcnow()
        contact.save()
        if changed:
            for open_chat in Chat.select().where((Chat.contact == contact.id) & Chat.status.in_(queries.OPEN)):
                notify.chat_changed(changes, open_chat, counters=False)
    return None
