"""Request/reply on federated nodes (PROTOCOL.md 3.7, known limit): a request
is delivered on its own node only, and since subscribers of other nodes
cannot be counted there, a federated node never answers no_responders: a
request whose only subscriber is on another node ends with timeout, never
with a wrong no_responders."""
from __future__ import annotations

import asyncio

from helpers import connect, recv_json, request, run, send_json


def test_federated_node_replies_locally_and_never_says_no_responders(cluster):
    a, b = cluster(2)

    async def go():
        remote = await connect(b.ws_url)
        assert (await request(remote, {"type": "subscribe", "topic": "dev.r", "id": 1}))["type"] == "ack"
        req = await connect(a.ws_url)
        await send_json(req, {"type": "request", "topic": "dev.r", "data": 1, "id": 2, "timeout_ms": 200})
        e = await recv_json(req, 10)
        assert e["type"] == "error" and e["code"] == "timeout" and e["id"] == 2, e
        # A responder on the requester's node answers as on a lone node.
        local = await connect(a.ws_url)
        assert (await request(local, {"type": "subscribe", "topic": "dev.l", "id": 1}))["type"] == "ack"
        await send_json(req, {"type": "request", "topic": "dev.l", "data": "q", "id": 3, "timeout_ms": 5000})
        m = await recv_json(local, 10)
        assert m["type"] == "message" and m["reply_to"].startswith("_inbox."), m
        await send_json(local, {"type": "publish", "topic": m["reply_to"], "data": "a"})
        r = await recv_json(req, 10)
        assert r["type"] == "reply" and r["id"] == 3 and r["data"] == "a", r
        for ws in (remote, req, local):
            await ws.close()

    run(go())
