"""`$sys` topics across nodes (issue 18 item 5): a subscriber on node A sees
node B's statistics and connection events, which travel the Redis bus like
any message."""
from __future__ import annotations

import time

from helpers import connect, recv_json, request, run


async def sys_message(ws, topic_prefix, pred=lambda m: True, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"nothing on {topic_prefix}* within {timeout}s"
        m = await recv_json(ws, left)
        if m.get("type") == "message" and m["topic"].startswith(topic_prefix) and pred(m):
            return m


def test_node_stats_and_connection_events_cross_nodes(cluster):
    a, b = cluster(2, "--sys-stats-interval", "1s", "--auth-anonymous-subscribe", ">,$sys.>")

    async def go():
        watcher = await connect(a.ws_url)
        r = await request(watcher, {"type": "subscribe", "topic": "$sys.>", "id": 1})
        assert r["type"] == "ack", r
        # B's stats reach A (published every second once A's interest is in Redis).
        m = await sys_message(watcher, "$sys.node.B.", timeout=20)
        assert m["topic"] == "$sys.node.B.stats" and m["data"]["node"] == "B", m
        assert {"connections", "subscriptions", "topics", "messages_in_per_s",
                "messages_out_per_s", "slow_consumer_closes", "workers"} <= set(m["data"])
        # A connection on B is announced on A, and so is its end.
        c = await connect(b.ws_url)
        cid = c.welcome["client_id"]
        m = await sys_message(watcher, "$sys.conn.connect", lambda m: m["data"]["client"] == cid)
        assert m["data"] == {"client": cid, "user": None, "node": "B"}, m
        await c.close()
        m = await sys_message(watcher, "$sys.conn.disconnect",
                              lambda m: m["data"]["client"] == cid)
        assert m["data"]["node"] == "B", m
        await watcher.close()

    run(go(), 60)
