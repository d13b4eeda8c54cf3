"""Connect and disconnect channels: validate the credentials live, block duplicates, (un)register.

Registration goes through the provider, never through a model save (Home Assistant's config flow).
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import peewee as pw

from desk.context import Context, UnknownProvider
from desk.services.errors import Conflict, Invalid, NotFound
from desk.store import Channel, Chat, Queue, atomic
from providers.base import CannotConnect, InvalidCredentials, Provider


def _check_config(cls: type[Provider], config: Any, *, partial: bool = False) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise Invalid("config must be an object", fields={"config": "must be an object"})
    errors = {}
    known = {field.name for field in cls.fields}
    for field in cls.fields:
        value = config.get(field.name)
        if value is not None and not isinstance(value, str):
            errors[f"config.{field.name}"] = "must be text"
        elif field.required and not partial and not (value or "").strip():
            errors[f"config.{field.name}"] = "required"
    for name in config:
        if name not in known:
            errors[f"config.{name}"] = "unknown field"
    if errors:
        raise Invalid("the channel settings are not valid", fields=errors)
    return {k: v.strip() for k, v in config.items() if isinstance(v, str) and v.strip()}


async def _validate(ctx: Context, code: str, config: dict[str, Any]) -> str:
    provider = ctx.provider_for_config(code, config)
    try:
        identity = await provider.validate()
    except InvalidCredentials as exc:
        field = f"config.{exc.field}" if exc.field else "config"
        raise Invalid(str(exc), code="invalid_credentials", fields={field: str(exc)}) from exc
    except CannotConnect as exc:
        raise Invalid(f"cannot reach the messenger: {exc}", code="cannot_connect") from exc
    return identity.unique_key


async def register(ctx: Context, channel: Channel) -> Channel:
    """Register the channel's webhook with the messenger and store the result."""
    result = await ctx.provider(channel).register(f"{ctx.settings.base_url}/webhooks/{channel.id}")
    Channel.update(registered=result.ok, registration_error=None if result.ok else result.error).where(Channel.id == channel.id).execute()
    return Channel.get_by_id(channel.id)


async def create(ctx: Context, data: dict[str, Any]) -> Channel:
    """Validate, store and register a new channel."""
    code = data.get("provider")
    cls = ctx.registry.get(code) if isinstance(code, str) else None
    if cls is None:
        raise Invalid("unknown provider", fields={"provider": "unknown provider"})
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise Invalid("a name is required", fields={"name": "required"})
    queue_id = data.get("queue_id")
    if queue_id is not None and not Queue.select().where(Queue.id == queue_id).exists():
        raise Invalid("no such queue", fields={"queue_id": "unknown queue"})
    if queue_id is None:
        first = Queue.select().order_by(Queue.id).first()
        queue_id = first.id if first else None
    config = _check_config(cls, data.get("config"))
    unique_key = await _validate(ctx, code, config)
    if Channel.select().where((Channel.provider == code) & (Channel.unique_key == unique_key)).exists():
        raise Conflict("this account is connected already", code="already_connected", fields={"config": "already connected"})
    try:
        with atomic():
            channel = Channel.create(provider=code, name=name.strip(), queue=queue_id, config=json.dumps(config),
                                     secret=secrets.token_urlsafe(32), unique_key=unique_key)
    except pw.IntegrityError as exc:
        raise Conflict("this account is connected already", code="already_connected") from exc
    return await register(ctx, channel)


async def update(ctx: Context, channel: Channel, data: dict[str, Any]) -> Channel:
    """Change a channel's name, queue, config or enabled flag; disabling deregisters it."""
    cls = ctx.registry.get(channel.provider)
    if cls is None:
        raise UnknownProvider(channel.provider)
    if "name" in data:
        if not isinstance(data["name"], str) or not data["name"].strip():
            raise Invalid("a name is required", fields={"name": "required"})
        channel.name = data["name"].strip()
    if "queue_id" in data:
        if data["queue_id"] is not None and not Queue.select().where(Queue.id == data["queue_id"]).exists():
            raise Invalid("no such queue", fields={"queue_id": "unknown queue"})
        channel.queue = data["queue_id"]
    reregister = False
    if "config" in data:
        merged = {**json.loads(channel.config), **_check_config(cls, data["config"], partial=True)}
        unique_key = await _validate(ctx, channel.provider, merged)
        if unique_key != channel.unique_key:
            raise Invalid("the new credentials belong to another account", fields={"config": "another account"})
        channel.config = json.dumps(merged)
        reregister = True
    if "enabled" in data:
        if not isinstance(data["enabled"], bool):
            raise Invalid("enabled is true or false", fields={"enabled": "true or false"})
        if data["enabled"] != channel.enabled:
            channel.enabled = data["enabled"]
            reregister = True
    channel.save()
    if reregister:
        if channel.enabled:
            return await register(ctx, channel)
        result = await ctx.provider(channel).unregister()
        Channel.update(registered=False, registration_error=None if result.ok else result.error).where(Channel.id == channel.id).execute()
    return Channel.get_by_id(channel.id)


async def delete(ctx: Context, channel: Channel) -> None:
    """Delete a channel without chats (one with chats is disabled instead: 409)."""
    if Chat.select().where(Chat.channel == channel.id).exists():
        raise Conflict("the channel has chats: disable it instead", code="has_chats")
    if channel.enabled:
        try:
            await ctx.provider(channel).unregister()
        except UnknownProvider:
            pass
    channel.delete_instance(recursive=True)


def get(channel_id: int) -> Channel:
    """Return a channel or raise NotFound."""
    channel = Channel.get_or_none(Channel.id == channel_id)
    if channel is None:
        raise NotFound("no such channel")
    return channel
