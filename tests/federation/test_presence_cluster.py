"""Presence across nodes (issue 18, item 7) with a real redis-server: every
node answers `presence` with the members of every node, join/leave reach
subscribers on other nodes, a SIGKILLed node's members leave within
presence.node_ttl, a node restarted with the same node id leaves no ghosts,
and a Redis restart resyncs (members that left meanwhile are gone, the
others are back).

Waits are bounded polls of the broker's own answers or reads of events; no
sleep decides an outcome."""
from __future__ import annotations

import asyncio
import json

import pytest

from helpers import connect, recv_json, run, send_json, wait_for

RULES = json.dumps([{"pattern": "chat.>", "presence": True, "join_leave": True}])
TTL = ["--topics", RULES, "--presence-node-ttl", "2s"]
BUS = "wsb: presence"


def member(ws) -> dict:
    return {"client": ws.welcome["client_id"], "user": ws.welcome["user"]}


def key(members):
    return sorted(m["client"] for m in members)


async def request(ws, obj, timeout=10.0):
    """The reply with the request's id; join/leave frames in between are kept
    in ws.events, in order."""
    await send_json(ws, obj)
    while True:
        m = await recv_json(ws, timeout)
        if m.get("type") in ("join", "leave"):
            ws.__dict__.setdefault("events", []).append(m)
            continue
        return m


async def subscribe(ws, topic, id):
    r = await request(ws, {"type": "subscribe", "topic": topic, "id": id})
    assert r == {"type": "ack", "id": id}, r


async def members_of(ws, topic, id=[1000]):
    id[0] += 1
    r = await request(ws, {"type": "presence", "topic": topic, "id": id[0]})
    assert r["type"] == "presence", r
    return r["members"]


async def until_members(ws, topic, want, timeout=15.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got = await members_of(ws, topic)
        if key(got) == key(want):
            assert sorted(got, key=lambda m: m["client"]) == sorted(want, key=lambda m: m["client"])
            return
        assert loop.time() < deadline, f"members {got} never became {want}"
        await asyncio.sleep(0.05)


async def next_event(ws, timeout=15.0):
    kept = ws.__dict__.get("events", [])
    if kept:
        return kept.pop(0)
    m = await recv_json(ws, timeout)
    assert m["type"] in ("join", "leave"), m
    return m


def bus_ready(redis_server, n, sharded=False):
    count = redis_server.shardnumsub if sharded else redis_server.numsub
    wait_for(lambda: count(BUS) == n, 10.0, 0.02, f"{n} nodes on the presence bus")


@pytest.mark.parametrize("mode", [[], ["--redis-sharded", "true"]], ids=["classic", "sharded"])
def test_members_of_every_node_and_join_leave_across_nodes(redis_server, cluster, mode):
    a, b, c = cluster(3, *TTL, *mode)
    bus_ready(redis_server, 3, sharded=bool(mode))

    async def main():
        watcher = await connect(a.ws_url)
        await subscribe(watcher, "chat.>", 1)  # a pattern: told, but no member
        wa = await connect(a.ws_url)
        wb = await connect(b.ws_url)
        wc = await connect(c.ws_url)
        for ws in (wa, wb, wc):
            await subscribe(ws, "chat.room", 1)
            ev = await next_event(watcher)
            assert ev == {"type": "join", "topic": "chat.room", "member": member(ws)}, ev
        everyone = [member(w) for w in (wa, wb, wc)]
        for ws in (wa, wb, wc):
            await until_members(ws, "chat.room", everyone)
        r = await request(wb, {"type": "presence_stats", "topic": "chat.room", "id": 5})
        assert (r["clients"], r["users"]) == (3, 0), r
        # A leave on C reaches A's watcher and B's member.
        r = await request(wc, {"type": "unsubscribe", "topic": "chat.room", "id": 6})
        assert r == {"type": "ack", "id": 6}, r
        leave = {"type": "leave", "topic": "chat.room", "member": member(wc)}
        assert await next_event(watcher) == leave
        # B's member saw C's join (after its own subscribe; A's may come too:
        # a remote join is not ordered with a local subscribe), then the leave.
        seen = []
        while leave not in seen:
            seen.append(await next_event(wb))
        joins = [{"type": "join", "topic": "chat.room", "member": member(w)} for w in (wa, wc)]
        assert seen[-1] == leave and joins[1] in seen and all(e in joins for e in seen[:-1]), seen
        await until_members(wa, "chat.room", everyone[:2])
        for ws in (watcher, wa, wb, wc):
            await ws.close()

    run(main(), 60)


def test_sigkilled_node_members_leave_and_restart_leaves_no_ghosts(redis_server, cluster,
                                                                    node_class, tmp_path):
    a, b = cluster(2, *TTL)
    bus_ready(redis_server, 2)

    async def main():
        watcher = await connect(a.ws_url)
        await subscribe(watcher, "chat.k", 1)
        wb = await connect(b.ws_url)
        await subscribe(wb, "chat.k", 1)
        assert await next_event(watcher) == {"type": "join", "topic": "chat.k", "member": member(wb)}
        await until_members(watcher, "chat.k", [member(watcher), member(wb)])
        b.kill()
        b.killed = True
        # No leave frame could come from B: A's view of it times out.
        assert await next_event(watcher) == {"type": "leave", "topic": "chat.k", "member": member(wb)}
        await until_members(watcher, "chat.k", [member(watcher)])
        # B comes back with the same node id: its new member joins, nothing
        # of the old one comes back.
        b2 = node_class(tmp_path, ["--redis-url", redis_server.url, "--node-id", "B",
                                   "--redis-reconnect-max", "500ms", *TTL], "B2").start()
        try:
            bus_ready(redis_server, 2)
            wb2 = await connect(b2.ws_url)
            await subscribe(wb2, "chat.k", 1)
            ev = await next_event(watcher)
            assert ev == {"type": "join", "topic": "chat.k", "member": member(wb2)}, ev
            await until_members(watcher, "chat.k", [member(watcher), member(wb2)])
            await until_members(wb2, "chat.k", [member(watcher), member(wb2)])
            await wb2.close()
            await until_members(watcher, "chat.k", [member(watcher)])
        finally:
            b2.stop()
        await watcher.close()

    run(main(), 60)


def test_redis_restart_resyncs_presence(redis_server, cluster):
    a, b, c = cluster(3, *TTL)
    bus_ready(redis_server, 3)

    async def main():
        wa = await connect(a.ws_url)
        wb = await connect(b.ws_url)
        wc = await connect(c.ws_url)
        for ws in (wa, wb, wc):
            await subscribe(ws, "chat.r", 1)
        await until_members(wa, "chat.r", [member(w) for w in (wa, wb, wc)])
        redis_server.kill()
        # C's member leaves while nobody can hear it.
        r = await request(wc, {"type": "unsubscribe", "topic": "chat.r", "id": 2})
        assert r == {"type": "ack", "id": 2}, r
        redis_server.start()
        bus_ready(redis_server, 3)
        for ws in (wa, wb, wc):
            await until_members(ws, "chat.r", [member(wa), member(wb)])
        for ws in (wa, wb, wc):
            await ws.close()

    run(main(), 90)
