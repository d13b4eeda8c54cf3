"""Facebook Messenger: a Facebook Page's conversations through the Graph API."""

from providers.facebook.provider import FacebookProvider

__all__ = ["FacebookProvider"]
