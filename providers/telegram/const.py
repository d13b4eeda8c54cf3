"""Telegram Bot API constants: URLs, header names, limits and config keys."""

from __future__ import annotations

from typing import Final

CODE: Final = "telegram"
NAME: Final = "Telegram"

# Config keys, in the order the settings form shows them.
CONF_TOKEN: Final = "token"
CONF_API_BASE: Final = "api_base"

DEFAULT_API_BASE: Final = "https://api.telegram.org"

# Sent back by Telegram on every webhook delivery; holds the secret_token given to setWebhook.
SECRET_HEADER: Final = "X-Telegram-Bot-Api-Secret-Token"

# The update types the desk asks for (setWebhook keeps the previous list when this is omitted).
ALLOWED_UPDATES: Final = ("message", "edited_message", "callback_query", "my_chat_member")
# Telegram's default; the allowed range is 1-100.
MAX_CONNECTIONS: Final = 40

# sendMessage text is 1-4096 characters and media captions 0-1024; counted here in UTF-16 code
# units (as Telegram counts entity offsets), which is never more than Python's character count.
MAX_TEXT: Final = 4096
MAX_CAPTION: Final = 1024
# Uploaded photos above 10 MB are refused by sendPhoto; such images go as documents.
MAX_PHOTO_UPLOAD: Final = 10 * 1024 * 1024
# Bots may download files up to 20 MB through getFile.
MAX_DOWNLOAD: Final = 20 * 1024 * 1024

# Seconds: one whole Bot API call; an upload of up to 50 MB; a download's connect and read gaps.
REQUEST_TIMEOUT: Final = 10.0
UPLOAD_TIMEOUT: Final = 300.0
CONNECT_TIMEOUT: Final = 10.0
READ_TIMEOUT: Final = 30.0

# Health: a webhook with a larger backlog, or a delivery error this recent (seconds), is unhealthy.
HEALTH_MAX_PENDING: Final = 100
HEALTH_ERROR_WINDOW: Final = 5 * 60

FILE_TOO_LARGE: Final = "file too large to download from Telegram; open it in Telegram"

# Chat member statuses of the bot in a private chat: the user blocked it, or unblocked it.
STATUS_BLOCKED: Final = "kicked"
STATUS_UNBLOCKED: Final = "member"
