"""Telegram: a bot's webhook, replies, files and profiles through the Bot API."""

from providers.telegram.provider import TelegramProvider

__all__ = ["TelegramProvider"]
