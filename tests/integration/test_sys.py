"""`$sys` topics (PROTOCOL.md "$sys topics", issue 18 item 5): node statistics
every sys.stats_interval and connection events published by the broker.

Regression: before this, `$sys.>` subscribers never received anything.
"""
from __future__ import annotations

import asyncio
import time

import pytest

from helpers import connect, recv_json, request, run, send_json
from sectools import jwt_hs256, now

SECRET = "sys-test-secret-0123456789abcdef"
STATS_FIELDS = {"connections", "subscriptions", "topics", "messages_in_per_s",
                "messages_out_per_s", "slow_consumer_closes", "workers"}


async def next_message(ws, topic_prefix: str, timeout: float = 10.0):
    """The next `message` whose topic starts with topic_prefix (others skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no message on {topic_prefix}* within {timeout}s"
        m = await recv_json(ws, left)
        if m.get("type") == "message" and m["topic"].startswith(topic_prefix):
            return m


async def subscribe_ok(ws, topic, rid=1):
    r = await request(ws, {"type": "subscribe", "topic": topic, "id": rid})
    assert r["type"] == "ack", r


@pytest.mark.broker_args("--sys-stats-interval", "1s", "--node-id", "n1")
def test_node_stats_published_with_pinned_fields(broker):
    async def go():
        ws = await connect(broker.ws_url)
        await subscribe_ok(ws, "$sys.node.>")
        # Traffic the stats must see: a subscriber and publishes through it.
        other = await connect(broker.ws_url)
        await subscribe_ok(other, "t.a")
        deadline = time.monotonic() + 20
        while True:
            assert time.monotonic() < deadline, "stats never reported the traffic"
            for i in range(20):
                await send_json(other, {"type": "publish", "topic": "t.a", "data": i})
            m = await next_message(ws, "$sys.node.")
            assert m["topic"] == "$sys.node.n1.stats", m
            d = m["data"]
            assert STATS_FIELDS <= set(d), d
            assert d["node"] == "n1"
            assert isinstance(d["workers"], list) and d["workers"], d
            for w in d["workers"]:
                assert {"worker", "connections", "subscriptions", "messages_in_per_s",
                        "messages_out_per_s", "slow_consumer_closes"} <= set(w), w
            assert d["connections"] == sum(w["connections"] for w in d["workers"])
            assert d["subscriptions"] >= 2 and d["connections"] >= 2, d
            if d["messages_in_per_s"] > 0 and d["messages_out_per_s"] > 0 and d["topics"] >= 1:
                break
        await ws.close()
        await other.close()

    run(go(), 60)


@pytest.mark.broker_args("--sys-stats-interval", "0", "--auth-anonymous-subscribe", ">,$sys.>")
def test_stats_off_with_interval_zero_and_ordinary_wildcards_see_nothing(broker):
    async def go():
        ws = await connect(broker.ws_url)
        await subscribe_ok(ws, "$sys.>")
        gt = await connect(broker.ws_url)
        await subscribe_ok(gt, ">")
        # A connection event is a barrier: stats (had they been on) tick on the
        # heartbeat; wait for two connection events spaced over 2.5 s.
        for _ in range(2):
            c = await connect(broker.ws_url)
            cid = c.welcome["client_id"]
            await c.close()
            seen = []
            while seen[-1:] != [("$sys.conn.disconnect", cid)]:
                m = await next_message(ws, "$sys.")
                assert m["topic"].startswith("$sys.conn."), m  # no stats
                seen.append((m["topic"], m["data"]["client"]))
            assert ("$sys.conn.connect", cid) in seen, seen
            await asyncio.sleep(1.3)  # the pace of the check: heartbeats pass, not a sync
        # ">" never receives "$" topics: a message published after is the first it sees.
        await send_json(ws, {"type": "publish", "topic": "x.sentinel", "data": 1})
        m = await recv_json(gt, 5)
        assert m["topic"] == "x.sentinel", m

    run(go(), 30)


def test_connection_events_carry_client_user_node(broker_factory):
    b = broker_factory("--auth-jwt-secret", SECRET, "--node-id", "nodeX")
    admin = jwt_hs256({"sub": "ops", "subscribe": ["$sys.>"], "exp": now() + 600}, SECRET)
    alice = jwt_hs256({"sub": "alice", "subscribe": ["a.>"], "exp": now() + 600}, SECRET)

    async def go():
        watcher = await connect(b.ws_url + f"?token={admin}")
        await subscribe_ok(watcher, "$sys.conn.>")
        a = await connect(b.ws_url + f"?token={alice}")
        assert a.welcome["user"] == "alice"
        m = await next_message(watcher, "$sys.conn.")
        assert m["topic"] == "$sys.conn.connect"
        assert m["data"] == {"client": a.welcome["client_id"], "user": "alice", "node": "nodeX"}
        anon = await connect(b.ws_url)
        assert anon.welcome["user"] is None
        m = await next_message(watcher, "$sys.conn.")
        assert m["data"] == {"client": anon.welcome["client_id"], "user": None, "node": "nodeX"}
        await a.close()
        m = await next_message(watcher, "$sys.conn.")
        assert m["topic"] == "$sys.conn.disconnect"
        assert m["data"] == {"client": a.welcome["client_id"], "user": "alice", "node": "nodeX"}
        await anon.close()
        await watcher.close()

    run(go(), 30)


def test_connect_event_follows_a_late_auth(broker_factory):
    """With auth.required the session has no user until its `auth`: the
    connect event waits for the credentials and names the user."""
    b = broker_factory("--auth-jwt-secret", SECRET, "--auth-required", "true")
    admin = jwt_hs256({"sub": "ops", "subscribe": ["$sys.>"], "exp": now() + 600}, SECRET)
    bob = jwt_hs256({"sub": "bob", "exp": now() + 600}, SECRET)

    async def go():
        watcher = await connect(b.ws_url + f"?token={admin}")
        await subscribe_ok(watcher, "$sys.conn.connect")
        late = await connect(b.ws_url)
        r = await request(late, {"type": "auth", "token": bob, "id": 1})
        assert r["type"] == "ack", r
        m = await next_message(watcher, "$sys.conn.")
        assert m["data"]["user"] == "bob" and m["data"]["client"] == late.welcome["client_id"], m
        await late.close()
        await watcher.close()

    run(go(), 30)


def test_default_anonymous_permissions_serve_node_stats_not_connection_events(broker):
    async def go():
        ws = await connect(broker.ws_url)
        await subscribe_ok(ws, "$sys.node.>")
        await subscribe_ok(ws, f"$sys.node.{ws.welcome['node_id']}.stats", 2)
        for i, topic in enumerate(("$sys.conn.>", "$sys.conn.connect", "$sys.>", "$sys.*.connect")):
            r = await request(ws, {"type": "subscribe", "topic": topic, "id": 10 + i})
            assert r["type"] == "error" and r["code"] == "forbidden", (topic, r)
        await ws.close()

    run(go(), 30)


def test_clients_cannot_publish_to_sys_topics(broker_factory):
    b = broker_factory("--auth-anonymous-publish", ">,$sys.>")

    async def go():
        ws = await connect(b.ws_url)
        for topic in ("$sys.conn.connect", "$sys.node.x.stats"):
            r = await request(ws, {"type": "publish", "topic": topic, "data": {}, "id": 1})
            assert r["type"] == "error", r
        await ws.close()

    run(go(), 30)
