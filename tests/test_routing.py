"""Routing of new chats: manual, round_robin, least_busy; capacity and oldest-first."""

from __future__ import annotations

import asyncio


def update(update_id: int, user_id: int, text: str) -> dict:
    """Return a private-chat Telegram text update from customer ``user_id``."""
    user = {"id": user_id, "is_bot": False, "first_name": f"Customer{user_id}"}
    return {"update_id": update_id, "message": {"message_id": update_id, "from": user,
            "chat": {"id": user_id, "type": "private", "first_name": f"Customer{user_id}"},
            "date": 1782900101, "text": text}}


async def setup_queue(desk, fake_telegram, routing: str, agents: int, max_chats: int):
    _, admin_token = await desk.operator("boss", role="admin")
    queue = await desk.call("POST", "/api/queues", admin_token, {"name": "Sales", "routing": routing}, status=201)
    channel = await desk.telegram_channel(admin_token, fake_telegram, queue_id=queue["id"])
    tokens = []
    for n in range(agents):
        op, token = await desk.operator(f"agent{n}", queue_ids=[queue["id"]], max_chats=max_chats)
        tokens.append((op, token))
    return admin_token, queue, channel, tokens


async def test_fifty_chats_at_once_never_over_assign(desk, fake_telegram):
    admin_token, queue, channel, agents = await setup_queue(desk, fake_telegram, "least_busy", 5, 3)
    for _, token in agents:
        await desk.call("PUT", "/api/operators/me/status", token, {"status": "online"})
    await asyncio.gather(*(desk.telegram_update(channel, update(1000 + n, 5000 + n, "hello")) for n in range(50)))
    chats = await desk.get("/api/chats?limit=100", admin_token)
    assert len(chats) == 50
    active = [c for c in chats if c["status"] == "active"]
    assert len(active) == 15
    per_agent = {}
    for c in active:
        per_agent[c["operator_id"]] = per_agent.get(c["operator_id"], 0) + 1
    assert sorted(per_agent.values()) == [3, 3, 3, 3, 3]
    # Oldest first: the 15 assigned chats are the 15 oldest.
    waiting = sorted(c["id"] for c in chats if c["status"] == "new")
    assert max(c["id"] for c in active) < min(waiting)

    # Closing a chat frees a place: the oldest waiting chat goes to that agent.
    op, token = agents[0]
    mine = await desk.get("/api/chats?mine=1&status=active", token)
    await desk.call("POST", f"/api/chats/{mine[0]['id']}/close", token)
    chat = await desk.get(f"/api/chats/{waiting[0]}", admin_token)
    assert chat["status"] == "active" and chat["operator_id"] == op["id"]


async def test_offline_and_busy_agents_get_nothing_until_online(desk, fake_telegram):
    admin_token, queue, channel, agents = await setup_queue(desk, fake_telegram, "round_robin", 2, 2)
    (first, first_token), (second, second_token) = agents
    await desk.call("PUT", "/api/operators/me/status", second_token, {"status": "busy"})
    await desk.telegram_update(channel, update(1, 501, "one"))
    await desk.telegram_update(channel, update(2, 502, "two"))
    chats = await desk.get("/api/chats", admin_token)
    assert {c["status"] for c in chats} == {"new"}

    await desk.call("PUT", "/api/operators/me/status", first_token, {"status": "online"})
    chats = {c["external_id"]: c for c in await desk.get("/api/chats", admin_token)}
    assert chats["501"]["operator_id"] == first["id"] and chats["502"]["operator_id"] == first["id"]

    await desk.call("PUT", "/api/operators/me/status", second_token, {"status": "online"})
    await desk.telegram_update(channel, update(3, 503, "three"))
    chats = {c["external_id"]: c for c in await desk.get("/api/chats", admin_token)}
    # The first agent is full (max 2): the new chat goes to the second.
    assert chats["503"]["operator_id"] == second["id"]


async def test_round_robin_takes_turns_and_returning_customer_goes_back(desk, fake_telegram):
    admin_token, queue, channel, agents = await setup_queue(desk, fake_telegram, "round_robin", 2, 10)
    for _, token in agents:
        await desk.call("PUT", "/api/operators/me/status", token, {"status": "online"})
    for n in range(4):
        await desk.telegram_update(channel, update(10 + n, 600 + n, "hi"))
    chats = sorted(await desk.get("/api/chats", admin_token), key=lambda c: c["id"])
    owners = [c["operator_id"] for c in chats]
    assert owners[0] != owners[1] and owners[0] == owners[2] and owners[1] == owners[3]

    # Customer 600's chat is closed; when they write again they go back to the same agent.
    first_owner = chats[0]["operator_id"]
    token = next(t for op, t in agents if op["id"] == first_owner)
    await desk.call("POST", f"/api/chats/{chats[0]['id']}/close", token)
    await desk.telegram_update(channel, update(20, 600, "me again"))
    reopened = [c for c in await desk.get("/api/chats?status=active", admin_token) if c["external_id"] == "600"]
    assert reopened and reopened[0]["operator_id"] == first_owner


async def test_manual_queue_two_agents_accept_exactly_one_wins(desk, fake_telegram):
    admin_token, queue, channel, agents = await setup_queue(desk, fake_telegram, "manual", 2, 5)
    await desk.telegram_update(channel, update(1, 700, "hello"))
    chat = (await desk.get("/api/chats", admin_token))[0]
    assert chat["status"] == "new"
    results = await asyncio.gather(*(
        desk.client.post(f"/api/chats/{chat['id']}/accept", headers=desk.headers(token)) for _, token in agents
    ))
    assert sorted(r.status for r in results) == [200, 409]


async def test_room_freed_in_one_queue_goes_to_the_oldest_chat_waiting_in_any_queue_of_the_agent(desk, fake_telegram):
    _, admin_token = await desk.operator("boss", role="admin")
    first = await desk.call("POST", "/api/queues", admin_token, {"name": "Sales", "routing": "round_robin"}, status=201)
    second = await desk.call("POST", "/api/queues", admin_token, {"name": "Billing", "routing": "least_busy"}, status=201)
    parked = await desk.call("POST", "/api/queues", admin_token, {"name": "Later", "routing": "manual"}, status=201)
    sales = await desk.telegram_channel(admin_token, fake_telegram, queue_id=first["id"])
    fake_telegram.add_token("7099999999:AAH-billing-bot")
    billing = await desk.call("POST", "/api/channels", admin_token, {
        "provider": "telegram", "name": "Billing bot", "queue_id": second["id"],
        "config": {"token": "7099999999:AAH-billing-bot", "api_base": fake_telegram.base_url}}, status=201)
    agent, token = await desk.operator("agent", queue_ids=[first["id"], second["id"]], max_chats=1)
    await desk.call("PUT", "/api/operators/me/status", token, {"status": "online"})

    async def chat_of(customer: int) -> dict:
        return next(c for c in await desk.get("/api/chats?limit=100", admin_token) if c["external_id"] == str(customer))

    await desk.telegram_update(sales, update(1, 801, "sales, first"))
    await desk.telegram_update(billing, update(2, 802, "billing, waits"))
    await desk.telegram_update(sales, update(3, 803, "sales, waits"))
    mine, billing_chat, sales_chat = [await chat_of(customer) for customer in (801, 802, 803)]
    assert mine["status"] == "active" and mine["operator_id"] == agent["id"]
    assert billing_chat["status"] == "new" and sales_chat["status"] == "new"  # max_chats is 1

    # Closing the Sales chat frees the agent's place: the chat that has waited longest, in Billing,
    # is theirs at once (not the younger one of Sales, the closed chat's own queue).
    await desk.call("POST", f"/api/chats/{mine['id']}/close", token)
    billing_chat, sales_chat = await chat_of(802), await chat_of(803)
    assert billing_chat["status"] == "active" and billing_chat["operator_id"] == agent["id"]
    assert sales_chat["status"] == "new"

    # Giving the Billing chat away to a queue the agent is not in frees the place again: the Sales chat is theirs.
    await desk.call("POST", f"/api/chats/{billing_chat['id']}/transfer", token, {"queue_id": parked["id"]})
    sales_chat = await chat_of(803)
    assert sales_chat["status"] == "active" and sales_chat["operator_id"] == agent["id"]
    assert (await chat_of(802))["status"] == "new"
