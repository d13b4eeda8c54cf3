"""Durability with real processes (CONTRACT §8, TARGETS R1): a customer message answered 200 by the
webhook survives a ``kill -9`` right after the answer, with its chat and its events."""

from __future__ import annotations

import asyncio
import copy
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp

from tests.conftest import PASSWORD, TELEGRAM_TOKEN, fixture_json

ROOT = Path(__file__).resolve().parent.parent
# Webhooks answered before the kill: a burst, so that the kill lands right behind fresh commits.
BURST = 12


def free_port() -> int:
    """Return a TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def desk_env() -> dict[str, str]:
    """Return the environment the desk runs with: the admin's password, nothing else of ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESK_")}
    env["DESK_PASSWORD"] = PASSWORD
    return env


@contextmanager
def running_desk(args: list[str], log: Path) -> Iterator[subprocess.Popen]:
    """Run ``python run.py ARGS``; always kill it on the way out."""
    with open(log, "ab") as out:
        process = subprocess.Popen([sys.executable, "run.py", *args], cwd=ROOT, env=desk_env(),
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


async def wait_healthy(http: aiohttp.ClientSession, base: str, process: subprocess.Popen, log: Path) -> None:
    """Wait until the desk answers /healthz (it has its database and routes)."""
    for _ in range(300):
        if process.poll() is not None:
            raise AssertionError(f"the desk exited with {process.returncode}:\n{log.read_text()}")
        try:
            async with http.get(f"{base}/healthz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"the desk did not come up:\n{log.read_text()}")


async def sign_in(http: aiohttp.ClientSession, base: str) -> dict[str, str]:
    """Sign in as the admin created on the command line; return the bearer header."""
    async with http.post(f"{base}/api/session", json={"login": "boss", "password": PASSWORD}) as response:
        assert response.status == 200, await response.text()
        return {"Authorization": f"Bearer {(await response.json())['token']}"}


async def get(http: aiohttp.ClientSession, url: str, headers: dict[str, str]):
    """GET a JSON route and return its body."""
    async with http.get(url, headers=headers) as response:
        assert response.status == 200, await response.text()
        return await response.json()


def update(number: int) -> dict:
    """Return the captured text update, made the ``number``-th of the conversation."""
    body = copy.deepcopy(fixture_json("telegram", "telegram_update_text.json"))
    body["update_id"] += number
    body["message"]["message_id"] += number
    body["message"]["text"] = f"message {number}"
    return body


async def test_messages_answered_200_survive_kill_9(tmp_path, fake_telegram):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    db = f"sqlite:///{tmp_path / 'desk.db'}"
    serve = ["--port", str(port), "--db", db, "--media", str(tmp_path / "media"), "--public-url", base]
    log = tmp_path / "desk.log"
    made = await asyncio.to_thread(
        subprocess.run, [sys.executable, "run.py", "create-operator", "boss", "--name", "Boss", "--admin", "--db", db],
        cwd=ROOT, env=desk_env(), capture_output=True, text=True, timeout=60, check=False)
    assert made.returncode == 0, made.stderr

    async with aiohttp.ClientSession() as http:
        with running_desk(serve, log) as desk:
            await wait_healthy(http, base, desk, log)
            auth = await sign_in(http, base)
            async with http.post(f"{base}/api/channels", headers=auth, json={
                    "provider": "telegram", "name": "Support bot",
                    "config": {"token": TELEGRAM_TOKEN, "api_base": fake_telegram.base_url}}) as response:
                assert response.status == 201, await response.text()
                channel = await response.json()
            assert channel["registered"] is True
            hook = fake_telegram.webhook
            assert hook["url"] == f"{base}/webhooks/{channel['id']}"
            headers = {"X-Telegram-Bot-Api-Secret-Token": hook["secret_token"]}
            for number in range(BURST):
                async with http.post(hook["url"], json=update(number), headers=headers) as response:
                    assert response.status == 200, await response.text()
            desk.send_signal(signal.SIGKILL)  # right after the last 200: no shutdown, no flush
            assert desk.wait(timeout=10) == -signal.SIGKILL

        with running_desk(serve, log) as desk:
            await wait_healthy(http, base, desk, log)
            auth = await sign_in(http, base)
            chats = await get(http, f"{base}/api/chats", auth)
            assert len(chats) == 1
            chat = chats[0]
            assert chat["channel_id"] == channel["id"] and chat["status"] == "new"
            assert chat["contact"]["external_id"] == "5123456789"
            assert chat["unread"] == BURST
            page = await get(http, f"{base}/api/chats/{chat['id']}/messages?limit=100", auth)
            assert [m["text"] for m in page["messages"]] == [f"message {n}" for n in range(BURST)]
            assert all(m["direction"] == "in" and m["status"] == "received" for m in page["messages"])

            log_page = await get(http, f"{base}/api/events?after=0", auth)
            events = log_page["events"]
            assert [e["seq"] for e in events] == list(range(1, log_page["seq"] + 1))
            created = [e["data"]["text"] for e in events
                       if e["event"] == "message.created" and e["data"]["chat_id"] == chat["id"]]
            assert created == [f"message {n}" for n in range(BURST)]
            assert [e["data"]["id"] for e in events if e["event"] == "chat.created"] == [chat["id"]]

            # Telegram retries what it was not sure of: an update stored before the kill is not stored twice.
            async with http.post(hook["url"], json=update(BURST - 1), headers=headers) as response:
                assert response.status == 200
            page = await get(http, f"{base}/api/chats/{chat['id']}/messages?limit=100", auth)
            assert len(page["messages"]) == BURST
