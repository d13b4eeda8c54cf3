"""A chat action shipped outside Desk: tag the customer in an outside system (a POST, retried by Desk)."""

from __future__ import annotations

from typing import Any

import aiohttp

from desk.actions import ActionRun, ChatAction


class TagAction(ChatAction):
    """Post ``{"tag", "chat_id", "contact"}`` to the URL given when the action is run."""

    code = "echo_tag"
    title = "Tag the customer"
    states = ("new", "active")

    async def run(self, run: ActionRun) -> str | None:
        """Check the input and hand the POST to Desk's retried jobs."""
        url = run.params.get("url")
        if not isinstance(url, str) or not url.startswith("http"):
            raise ValueError("give the URL to post the tag to")
        run.later({"url": url, "tag": run.params.get("tag", "vip"), "chat_id": run.chat["id"],
                   "contact": run.chat["contact"]["external_id"]})
        return "Tagging the customer"

    async def deliver(self, data: dict[str, Any], http: aiohttp.ClientSession) -> str | None:
        """POST the tag; anything but 2xx raises so Desk retries."""
        body = {k: data[k] for k in ("tag", "chat_id", "contact")}
        async with http.post(data["url"], json=body) as response:
            response.raise_for_status()
        return f"Tagged the customer {data['tag']}"
