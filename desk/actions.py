"""Chat actions (the seed's GetChatActions): the built-in ones and those from other packages.

A package adds an action by declaring a ``ChatAction`` subclass in the ``desk.chat_actions``
entry-point group. An admin enables it per queue (the queue's ``actions`` list); the desk lists it
for chats of that queue in the states it names, and runs it with ``POST
/api/chats/{id}/actions/{code}``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, ClassVar

import aiohttp

ENTRY_POINT_GROUP = "desk.chat_actions"
log = logging.getLogger(__name__)


@dataclasses.dataclass
class ActionRun:
    """What an action gets: the chat and who runs it (as API objects), the request body, an HTTP client."""

    chat: dict[str, Any]
    operator: dict[str, Any]
    params: dict[str, Any]
    http: aiohttp.ClientSession
    messages: Callable[[], list[dict[str, Any]]]
    # Hand work that reaches outside to a durable job: ``deliver(data)`` runs later, retried.
    later: Callable[[dict[str, Any]], None]


class ChatAction:
    """An action an agent can run on a chat; ``run`` returns a note shown to the agent."""

    code: ClassVar[str]
    title: ClassVar[str]
    # Chat states in which the action is offered.
    states: ClassVar[tuple[str, ...]] = ("active",)

    async def run(self, run: ActionRun) -> str | None:
        """Do the action; raise ``ValueError`` with a message for bad input."""
        raise NotImplementedError

    async def deliver(self, data: dict[str, Any], http: aiohttp.ClientSession) -> str | None:
        """Do work handed to ``ActionRun.later``; raise to have it retried; return a note for the chat."""
        raise NotImplementedError


def discover() -> dict[str, ChatAction]:
    """Return the actions declared in the ``desk.chat_actions`` entry-point group, by code."""
    found: dict[str, ChatAction] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            action = entry.load()()
        except Exception:  # a broken package must not stop the desk
            log.exception("chat action %s could not be loaded", entry.name)
            continue
        found[action.code] = action
    return found
