"""Constants of the Facebook Messenger provider: Graph base, header names, limits, field keys."""

from __future__ import annotations

CODE = "facebook"
NAME = "Facebook Messenger"

# Config keys, in the order the settings form shows them.
CONF_PAGE_ID = "page_id"
CONF_PAGE_TOKEN = "page_token"
CONF_APP_SECRET = "app_secret"
CONF_VERIFY_TOKEN = "verify_token"
CONF_GRAPH_BASE = "graph_base"

DEFAULT_GRAPH_BASE = "https://graph.facebook.com/v25.0"

# Webhook signature: "sha256=" + lowercase hex HMAC-SHA256(app secret, raw body).
SIGNATURE_HEADER = "X-Hub-Signature-256"
SIGNATURE_PREFIX = "sha256="

# Verification handshake query parameters (the names contain dots).
HUB_MODE = "hub.mode"
HUB_VERIFY_TOKEN = "hub.verify_token"
HUB_CHALLENGE = "hub.challenge"
HUB_MODE_SUBSCRIBE = "subscribe"

# Fields the page is subscribed to; only fields subscribed at both app and page level arrive.
SUBSCRIBED_FIELDS = (
    "messages",
    "messaging_postbacks",
    "message_deliveries",
    "message_reads",
    "message_echoes",
)

MESSAGING_TYPE_RESPONSE = "RESPONSE"
# The Send API refuses message.text of more than 2000 characters.
MAX_TEXT_LENGTH = 2000
# Our outbound id goes in message.metadata so the echo can be matched, with the part it is of the
# reply: "desk:<message id>:<part>/<parts>" (from 1; "1/1" for a reply in one message). The echo
# then confirms exactly that part even when the Send API's answer was lost. A bare
# "desk:<message id>" (sends before the part was added) is recognised and confirms nothing.
METADATA_PREFIX = "desk:"
METADATA_PART_SEPARATOR = ":"
# Longer ids are not ours (and would not fit a 64-bit column): the echo is another sender's.
METADATA_ID_MAX_DIGITS = 18
# A reply is at most 20,000 characters (10 texts) and one file: more parts are not ours.
METADATA_PART_MAX_DIGITS = 3
SEND_ATTACHMENT_TYPES = frozenset({"image", "video", "audio", "file"})

# Largest asset the Messenger Platform takes or serves (25 MB).
MAX_DOWNLOAD = 25 * 1024 * 1024
# Hosts files are downloaded from. A CDN URL may redirect (profile pictures go
# lookaside.fbsbx.com -> scontent.*.fbcdn.net); every hop is checked against these.
CDN_HOSTS = (".fbcdn.net", ".fbsbx.com", "fbcdn.net", "fbsbx.com", ".facebook.com")

# Seconds: Graph calls answer fast; an upload of up to 25 MB needs longer.
# (CDN downloads use providers.common's timeouts.)
REQUEST_TIMEOUT = 10.0
UPLOAD_TIMEOUT = 120.0

# Graph error codes (Common Error Codes, Messenger rate limits).
ERROR_TOKEN = 190
RATE_LIMIT_CODES = frozenset({4, 17, 32, 613})
TRANSIENT_CODES = frozenset({1, 2}) | RATE_LIMIT_CODES
# Graph gives no Retry-After; throttling extends while calls continue, so wait a minute.
RATE_LIMIT_RETRY_AFTER = 60.0

PROFILE_FIELDS = "first_name,last_name,profile_pic"
ME_FIELDS = "id,name"

UNSUPPORTED_TEXT = "(unsupported attachment)"
