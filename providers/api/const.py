"""Constants of the API channel: config keys, header names, the signature scheme, limits."""

from __future__ import annotations

from typing import Final

CODE: Final = "api"
NAME: Final = "API"

# Config keys, in the order the settings form shows them.
CONF_CALLBACK_URL: Final = "callback_url"
CONF_HMAC_SECRET: Final = "hmac_secret"
CONF_ACCOUNT_ID: Final = "account_id"

# Shorter secrets are refused: 16 characters is the least that makes guessing hopeless.
MIN_SECRET_LENGTH: Final = 16
MAX_URL_LENGTH: Final = 2000
# The unique key is stored in a 200-character column.
MAX_ACCOUNT_ID_LENGTH: Final = 200
# The default unique key: "callback:" and this many hex digits of SHA-256(callback_url).
ACCOUNT_HASH_DIGITS: Final = 32

# Both directions: "sha256=" + lowercase hex HMAC-SHA256 with the channel's hmac_secret. Inbound
# the HMAC is over the raw body; outbound over f"{timestamp}.{body}", the timestamp (Unix
# seconds) being sent in its own header so that a captured callback cannot be replayed later.
SIGNATURE_HEADER: Final = "X-Desk-Signature"
TIMESTAMP_HEADER: Final = "X-Desk-Timestamp"
SIGNATURE_PREFIX: Final = "sha256="
USER_AGENT: Final = "Desk API channel"

# What the desk POSTs to the callback URL ("type").
TYPE_MESSAGE: Final = "message"
TYPE_PING: Final = "ping"

# Inbound limits, from the store's columns: ids 200 characters; names 300; usernames 200; file
# names 300; MIME types 150. Ids longer than that are refused, display text is cut.
MAX_ID_LENGTH: Final = 200
MAX_NAME_LENGTH: Final = 300
MAX_USERNAME_LENGTH: Final = 200
MAX_FILE_NAME_LENGTH: Final = 300
MAX_MIME_LENGTH: Final = 150
# Attachment kinds a system may post; location and contact have no file to fetch.
INBOUND_KINDS: Final = frozenset({"image", "video", "audio", "file", "sticker"})

# Outbound files travel base64-encoded inside the signed JSON body, so they are capped.
MAX_SEND_FILE: Final = 25 * 1024 * 1024
# A 4xx answer's text shown to the agent is cut to this many characters.
MAX_REASON_LENGTH: Final = 300
# A Retry-After longer than this (seconds) is taken as this.
MAX_RETRY_AFTER: Final = 3600.0

# Seconds: a callback answers a message or a ping quickly; one with a file gets longer.
# (Attachment downloads use providers.common's timeouts.)
REQUEST_TIMEOUT: Final = 10.0
UPLOAD_TIMEOUT: Final = 120.0
