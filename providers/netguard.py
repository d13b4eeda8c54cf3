"""Guard for fetching URLs that arrived in webhooks: the messenger's hosts only, no private addresses."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from providers.base import FetchError


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


def host_matches(host: str, patterns: Iterable[str]) -> bool:
    """Whether ``host`` equals a pattern, or is a subdomain of a pattern that starts with a dot."""
    for pattern in patterns:
        pattern = pattern.lower()
        if pattern.startswith("."):
            if host.endswith(pattern):
                return True
        elif host == pattern:
            return True
    return False


async def check_url(url: str, *, allowed_hosts: Iterable[str], configured_base: str | None) -> None:
    """Raise FetchError unless ``url`` may be fetched.

    A URL on the configured base (same scheme, host and port: a local Bot API server, a test
    fake) is trusted as the admin set it. Otherwise it must be https, on one of the messenger's
    hosts, and resolve only to public addresses.
    """
    scheme, host, port = _origin(url)
    if configured_base and (scheme, host, port) == _origin(configured_base):
        return
    if scheme != "https" or not host_matches(host, allowed_hosts):
        raise FetchError(f"refused to fetch from {host or url!r}: not one of the messenger's hosts")
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise FetchError(f"cannot resolve {host}: {exc}") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise FetchError(f"refused to fetch from {host}: it resolves to a private address")
