"""Settings: a frozen dataclass built from flags and environment variables (flag wins).

This is the only module that reads ``os.environ``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Webhook bodies: the contract allows 1 to 8 MiB; Facebook batches up to 1,000 updates.
DEFAULT_WEBHOOK_LIMIT = 4 * 1024 * 1024
# Agent uploads on the messages route: Facebook's cap is 25 MB, Telegram's upload cap 50 MB.
DEFAULT_UPLOAD_LIMIT = 25 * 1024 * 1024
TRANSPORTS = ("polling", "websocket")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything the app needs to start: where to listen, store, and which secrets to use."""

    host: str = "127.0.0.1"
    port: int = 8080
    database_url: str = "sqlite:///desk.db"
    media_dir: Path = Path("media")
    public_url: str = ""
    redis_url: str | None = None
    # Socket.IO transports served: "websocket" alone needs no sticky sessions behind a balancer.
    transports: tuple[str, ...] = TRANSPORTS
    # One log line per request costs about a tenth of a webhook's CPU (bench/RESULTS.md).
    access_log: bool = False
    secret_key: str | None = None
    embed_origins: tuple[str, ...] = ()
    embed_secret: str | None = None
    webhook_limit: int = DEFAULT_WEBHOOK_LIMIT
    upload_limit: int = DEFAULT_UPLOAD_LIMIT
    templates_dir: Path = ROOT / "templates"
    static_dir: Path = ROOT / "static"
    # Workers that send replies and download attachments; tests may turn them off.
    run_workers: bool = True
    # Seconds a claimed send or download stays claimed before another process may take it over.
    job_lease: float = 20.0
    # Seconds between scans for due jobs when nothing wakes the worker.
    job_poll: float = 1.0
    worker_id: str = ""

    @property
    def base_url(self) -> str:
        """Return the URL messengers reach, without a trailing slash."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip().rstrip("/") for part in (value or "").split(",") if part.strip())


def _transports(value: str | None) -> tuple[str, ...]:
    chosen = tuple(part.strip().lower() for part in (value or "").split(",") if part.strip())
    if not chosen:
        return TRANSPORTS
    unknown = [name for name in chosen if name not in TRANSPORTS]
    if unknown:
        raise ValueError(f"unknown Socket.IO transport {unknown[0]!r}: use polling, websocket or both")
    return chosen


def add_arguments(parser: argparse.ArgumentParser, *, default: object = None) -> None:
    """Add the serve flags of CONTRACT §1 to ``parser``.

    A subcommand's parser passes ``default=argparse.SUPPRESS``, so that a flag given before the
    subcommand is not overwritten by the subcommand's own unset default.
    """
    parser.add_argument("--host", default=default)
    parser.add_argument("--port", type=int, default=default)
    parser.add_argument("--db", dest="database_url", default=default)
    parser.add_argument("--media", dest="media_dir", default=default)
    parser.add_argument("--public-url", dest="public_url", default=default)
    parser.add_argument("--redis", dest="redis_url", default=default)
    parser.add_argument("--transports", dest="transports", default=default,
                        help="Socket.IO transports: polling,websocket (default) or websocket")
    parser.add_argument("--embed-origins", dest="embed_origins", default=default)
    parser.add_argument("--access-log", dest="access_log", action="store_const", const="1", default=default,
                        help="log every HTTP request (off by default: a proxy in front usually logs them)")


def from_env(args: argparse.Namespace | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from parsed flags and the environment; a flag wins over its variable."""
    env = os.environ if environ is None else environ
    flags = vars(args) if args is not None else {}

    def pick(flag: str, var: str, default: str | None = None) -> str | None:
        value = flags.get(flag)
        if value is not None:
            return str(value)
        return env.get(var, default)

    return Settings(
        host=pick("host", "DESK_HOST", "127.0.0.1") or "127.0.0.1",
        port=int(pick("port", "DESK_PORT", "8080") or 8080),
        database_url=pick("database_url", "DESK_DATABASE_URL", "sqlite:///desk.db") or "sqlite:///desk.db",
        media_dir=Path(pick("media_dir", "DESK_MEDIA_DIR", "media") or "media"),
        public_url=pick("public_url", "DESK_PUBLIC_URL", "") or "",
        redis_url=pick("redis_url", "DESK_REDIS_URL") or None,
        transports=_transports(pick("transports", "DESK_TRANSPORTS", "")),
        access_log=(pick("access_log", "DESK_ACCESS_LOG", "") or "").lower() in ("1", "true", "yes", "on"),
        secret_key=env.get("DESK_SECRET_KEY") or None,
        embed_origins=_split(pick("embed_origins", "DESK_EMBED_ORIGINS", "")),
        embed_secret=env.get("DESK_EMBED_SECRET") or None,
    )


def env_value(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """Return one environment variable (for the CLI's password prompt)."""
    return (os.environ if environ is None else environ).get(name)


def parse_origin_list(values: Sequence[str]) -> tuple[str, ...]:
    """Normalise a list of origins (no trailing slash, no blanks)."""
    return _split(",".join(values))
