"""Publisher identity across nodes (issue 18 item 4): the origin's "from"
stamp travels in the Redis envelope, so a subscriber on another node sees the
same "from" as one on the publishing node."""
from __future__ import annotations

import asyncio
import json

from helpers import connect, recv_json, request, run, send_json

RULES = json.dumps([{"pattern": "support.>", "publisher": True}])


async def first_message(ws, timeout=10.0):
    while True:
        m = await recv_json(ws, timeout)
        if m["type"] == "message":
            return m


def test_from_stamp_crosses_nodes(cluster, redis_server):
    a, b = cluster(2, "--topics", RULES)

    async def go():
        remote = await connect(b.ws_url)
        assert (await request(remote, {"type": "subscribe", "topic": "support.>", "id": 1}))["type"] == "ack"
        local = await connect(a.ws_url)
        assert (await request(local, {"type": "subscribe", "topic": "support.>", "id": 1}))["type"] == "ack"
        pub = await connect(a.ws_url)
        # B's Redis interest may still be on its way: publish until B has one.
        n = 0
        while True:
            n += 1
            await send_json(pub, {"type": "publish", "topic": "support.r", "from": "forged",
                                  "data": {"from": "agent", "n": n}})
            try:
                m = await first_message(remote, 0.5)
                break
            except asyncio.TimeoutError:
                assert n < 40, "node B never received node A's message"
        expected = {"client": pub.welcome["client_id"], "user": None}
        assert m["from"] == expected and m["data"]["from"] == "agent", m
        seen = await first_message(local)
        assert seen["from"] == expected, seen
        # A malformed "from" in an envelope (not an object) is dropped, not delivered.
        env = json.dumps({"v": 1, "node": "X", "topic": "support.r", "seq": 1,
                          "from": "agent1", "data": "x"})
        redis_server.client().publish("wsb:support.r", env)
        while True:
            m = await first_message(remote)
            if m["data"] == "x":
                assert "from" not in m, m
                break
        for ws in (remote, local, pub):
            await ws.close()

    run(go(), 60)
