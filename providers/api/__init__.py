"""API: any system posts customer messages as signed JSON and receives agent replies at a callback URL."""

from providers.api.provider import ApiProvider

__all__ = ["ApiProvider"]
