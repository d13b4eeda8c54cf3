"""The full URL table, in one place."""

from __future__ import annotations

from aiohttp import web

from desk.web.views import admin, chats, pages, session, settings, system, webhooks

# The routes that change chats and operators, run again whole when the database aborted their
# transaction for a concurrent one (``middlewares.rerun_middleware``): each reads a JSON body
# (kept for the next run), writes in one transaction and reaches nothing outside before it
# commits. A plug-in chat action may call out, so ``run_action`` marks such a run as not to be
# repeated. Not here: sending a reply (its multipart file is read once; it retries its own
# transaction), and the webhook (``Context.write_retrying``).
RERUN_ON_CONFLICT = frozenset({
    chats.accept, chats.mark_read, chats.close, chats.transfer, chats.run_action, chats.retry,
    session.set_my_status, admin.create_operator, admin.update_operator, admin.delete_operator,
})


def setup_routes(app: web.Application) -> None:
    """Add every route of the app, named."""
    r = app.router
    r.add_get("/healthz", system.healthz, name="healthz")
    r.add_post("/webhooks/{channel_id}", webhooks.receive, name="webhook")
    r.add_get("/webhooks/{channel_id}", webhooks.verify, name="webhook-verify")

    r.add_post("/api/session", session.create_session, name="api-session")
    r.add_delete("/api/session", session.delete_session)
    r.add_get("/api/operators/me", session.me, name="api-me")
    r.add_put("/api/operators/me/status", session.set_my_status, name="api-my-status")
    r.add_get("/api/unread", chats.unread, name="api-unread")
    r.add_get("/api/events", system.events, name="api-events")

    r.add_get("/api/chats", chats.list_chats, name="api-chats")
    r.add_get("/api/chats/{id}", chats.get_chat, name="api-chat")
    r.add_post("/api/chats/{id}/accept", chats.accept, name="api-chat-accept")
    r.add_post("/api/chats/{id}/read", chats.mark_read, name="api-chat-read")
    r.add_post("/api/chats/{id}/close", chats.close, name="api-chat-close")
    r.add_post("/api/chats/{id}/transfer", chats.transfer, name="api-chat-transfer")
    r.add_get("/api/chats/{id}/actions", chats.actions, name="api-chat-actions")
    r.add_post("/api/chats/{id}/actions/{code}", chats.run_action, name="api-chat-action")
    r.add_get("/api/chats/{id}/messages", chats.list_messages, name="api-chat-messages")
    r.add_post("/api/chats/{id}/messages", chats.send, name="api-chat-send")
    r.add_post("/api/chats/{id}/messages/{message_id}/retry", chats.retry, name="api-message-retry")
    r.add_get("/api/attachments/{id}", chats.attachment, name="api-attachment")
    r.add_get("/api/contacts/{id}/avatar", chats.avatar, name="api-avatar")

    r.add_get("/api/providers", admin.list_providers, name="api-providers")
    r.add_get("/api/channels", admin.list_channels, name="api-channels")
    r.add_post("/api/channels", admin.create_channel)
    r.add_patch("/api/channels/{id}", admin.update_channel, name="api-channel")
    r.add_delete("/api/channels/{id}", admin.delete_channel)
    r.add_post("/api/channels/{id}/register", admin.register_channel, name="api-channel-register")
    r.add_get("/api/channels/{id}/health", admin.channel_health, name="api-channel-health")
    r.add_get("/api/channels/{id}/config", admin.channel_config, name="api-channel-config")
    r.add_get("/api/actions", admin.list_actions, name="api-actions")
    r.add_get("/api/queues", admin.list_queues, name="api-queues")
    r.add_post("/api/queues", admin.create_queue)
    r.add_patch("/api/queues/{id}", admin.update_queue, name="api-queue")
    r.add_delete("/api/queues/{id}", admin.delete_queue)
    r.add_get("/api/operators", admin.list_operators, name="api-operators")
    r.add_post("/api/operators", admin.create_operator)
    r.add_patch("/api/operators/{id}", admin.update_operator, name="api-operator")
    r.add_delete("/api/operators/{id}", admin.delete_operator)
    r.add_get("/api/settings", admin.get_settings, name="api-settings")
    r.add_patch("/api/settings", admin.update_settings)
    r.add_post("/api/settings/embed-secret", admin.rotate_embed_secret, name="api-embed-secret")

    # The browser pages (CONTRACT §2).
    r.add_get("/", pages.desk_page, name="desk")
    r.add_get("/setup", pages.setup_form, name="setup")
    r.add_post("/setup", pages.setup_submit)
    r.add_get("/login", pages.login_form, name="login")
    r.add_post("/login", pages.login_submit)
    r.add_post("/logout", pages.logout, name="logout")
    r.add_get("/embed", pages.embed_page, name="embed")
    r.add_get("/settings", settings.settings_page, name="settings")
