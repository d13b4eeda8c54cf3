"""The provider registry: every messenger, built-in or from another package, is found through the
``desk.providers`` entry-point group."""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

from providers.base import Provider

ENTRY_POINT_GROUP = "desk.providers"
log = logging.getLogger(__name__)


class Registry:
    """Provider classes by code."""

    def __init__(self) -> None:
        self._classes: dict[str, type[Provider]] = {}

    def add(self, cls: type[Provider]) -> None:
        """Register a provider class under its ``code``."""
        self._classes[cls.code] = cls

    def load_entry_points(self) -> None:
        """Register every provider declared in the ``desk.providers`` entry-point group."""
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            try:
                cls = entry.load()
            except Exception:  # a broken third-party package must not stop the desk
                log.exception("provider %s could not be loaded", entry.name)
                continue
            self.add(cls)

    def get(self, code: str) -> type[Provider] | None:
        """Return the provider class for ``code``, or None."""
        return self._classes.get(code)

    def all(self) -> list[type[Provider]]:
        """Return every provider class, by code."""
        return [self._classes[code] for code in sorted(self._classes)]


def discover() -> Registry:
    """Return a registry of every installed provider."""
    registry = Registry()
    registry.load_entry_points()
    return registry
