"""Presence and join/leave (issue 18, items 2 and 3) on one node: members are
the connections subscribed to the exact topic, on every worker; `presence`
and `presence_stats` answer with the pinned shapes, need subscribe
permission, and say `not_available` on a topic without presence; join and
leave reach the topic's subscribers (not the joiner itself) on subscribe,
unsubscribe and a dropped connection; the bounds answer `limit_exceeded`;
`GET /api/presence` follows the publish API's key rules.

No sleeps: every wait is for a reply or an event, or a bounded wait_for on
the broker's own answer."""
from __future__ import annotations

import asyncio
import json
import time

import pytest

from helpers import (barrier, connect, connect_spread, recv_json, request, run, send_json,
                     subscribe, wait_for, worker_of)
from sectools import jwt_hs256, now

RULES = json.dumps([
    {"pattern": "chat.>", "presence": True, "join_leave": True},
    {"pattern": "lobby.*", "presence": True},
    {"pattern": "quiet.*", "join_leave": True},
])
SECRET = "presence-secret-0123456789abcdef"


def member(ws) -> dict:
    return {"client": ws.welcome["client_id"], "user": ws.welcome["user"]}


def sort_members(members):
    return sorted(members, key=lambda m: m["client"])


async def presence(ws, topic, id=50):
    r = await request(ws, {"type": "presence", "topic": topic, "id": id})
    assert r["type"] == "presence" and r["id"] == id and r["topic"] == topic, r
    return r


async def stats(ws, topic, id=51):
    r = await request(ws, {"type": "presence_stats", "topic": topic, "id": id})
    assert r == {"type": "presence_stats", "id": id, "topic": topic,
                 "clients": r.get("clients"), "users": r.get("users")}, r
    return r


async def next_event(ws, timeout=5.0):
    """The next join/leave frame (messages in between are not expected here)."""
    m = await recv_json(ws, timeout)
    assert m["type"] in ("join", "leave"), m
    return m


async def no_event_before_pong(ws, id=999):
    before = await barrier(ws, id)
    assert [m for m in before if m.get("type") in ("join", "leave")] == [], before


@pytest.mark.broker_args("--topics", RULES, "--workers", "2")
def test_members_of_every_worker_and_not_pattern_subscribers(broker):
    async def go():
        conns = await connect_spread(broker.ws_url, workers=2, per_worker=2)
        members = conns[:]
        # Every connection on either worker is a member once, whatever worker asks.
        for i, ws in enumerate(members):
            await subscribe(ws, "lobby.main", 1)
            await subscribe(ws, "lobby.main", 2)  # twice: still one member
        watcher = await connect(broker.ws_url)
        await subscribe(watcher, "lobby.*", 1)  # a pattern: no member
        want = sort_members([member(ws) for ws in members])
        assert {worker_of(ws) for ws in members} == {0, 1}
        for asker in (members[0], members[-1], watcher):
            r = await presence(asker, "lobby.main")
            assert sort_members(r["members"]) == want, r
            assert set(r) == {"type", "id", "topic", "members"}, r
        s = await stats(watcher, "lobby.main")
        assert s["clients"] == len(members) and s["users"] == 0, s
        # Nobody there: an empty list, not an error.
        r = await presence(watcher, "lobby.empty")
        assert r["members"] == [], r
        assert (await stats(watcher, "lobby.empty"))["clients"] == 0
        # An unsubscribe and a close leave at once (the next request sees it).
        r = await request(members[0], {"type": "unsubscribe", "topic": "lobby.main", "id": 3})
        assert r == {"type": "ack", "id": 3}, r
        await members[1].close()
        await wait_for_members(watcher, "lobby.main", sort_members([member(ws) for ws in members[2:]]))
        for ws in members[2:] + [watcher]:
            await ws.close()

    run(go())


async def wait_for_members(ws, topic, want, timeout=10.0):
    """A closed connection leaves on its worker's close path: poll the broker's
    answer (bounded) rather than assume when that ran."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    k = 100
    while True:
        k += 1
        r = await presence(ws, topic, k)
        if sort_members(r["members"]) == want:
            return
        assert loop.time() < deadline, f"members {r['members']} never became {want}"
        await asyncio.sleep(0.02)


def test_user_is_the_tokens_sub_and_users_are_counted_once(broker_factory):
    b = broker_factory("--topics", RULES, "--auth-jwt-secret", SECRET)

    def tok(sub):
        return jwt_hs256({"sub": sub, "exp": now() + 600, "subscribe": [">"]}, SECRET)

    async def go():
        a1 = await connect(b.ws_url + "?token=" + tok("alice"))
        a2 = await connect(b.ws_url + "?token=" + tok("alice"))
        bob = await connect(b.ws_url + "?token=" + tok("bob"))
        anon = await connect(b.ws_url)
        assert a1.welcome["user"] == "alice" and a2.welcome["user"] == "alice"
        assert a1.welcome["client_id"] != a2.welcome["client_id"]
        assert anon.welcome["user"] is None
        for ws in (a1, a2, bob, anon):
            await subscribe(ws, "lobby.x", 1)
        r = await presence(anon, "lobby.x")
        assert sort_members(r["members"]) == sort_members([member(w) for w in (a1, a2, bob, anon)])
        assert {m["user"] for m in r["members"]} == {"alice", "bob", None}
        s = await stats(anon, "lobby.x")
        assert (s["clients"], s["users"]) == (4, 2), s
        for ws in (a1, a2, bob, anon):
            await ws.close()

    run(go())


def test_errors_forbidden_not_available_bad_topic(broker_factory):
    b = broker_factory("--topics", RULES, "--auth-jwt-secret", SECRET)
    limited = jwt_hs256({"sub": "carol", "exp": now() + 600, "subscribe": ["lobby.a"]}, SECRET)

    async def go():
        ws = await connect(b.ws_url + "?token=" + limited)
        await subscribe(ws, "lobby.a", 1)
        assert (await presence(ws, "lobby.a"))["members"] == [member(ws)]

        async def err(req):
            r = await request(ws, req)
            assert r["type"] == "error" and r["id"] == req["id"], r
            return r["code"]

        assert await err({"type": "presence", "topic": "lobby.b", "id": 2}) == "forbidden"
        assert await err({"type": "presence_stats", "topic": "lobby.b", "id": 3}) == "forbidden"
        # No presence on the rule (or no rule): not_available, before any permission check.
        assert await err({"type": "presence", "topic": "quiet.a", "id": 4}) == "not_available"
        assert await err({"type": "presence", "topic": "nowhere", "id": 5}) == "not_available"
        assert await err({"type": "presence", "topic": "lobby.*", "id": 6}) == "bad_topic"
        assert await err({"type": "presence", "id": 7}) == "missing_field"
        await ws.close()

    run(go())
    assert b.metric('wsbroker_protocol_errors_total{code="not_available"}') == 2


@pytest.mark.broker_args("--topics", RULES, "--workers", "2")
def test_join_and_leave_reach_subscribers_not_the_joiner(broker):
    async def go():
        # Listeners on both workers, one exact and one pattern subscriber.
        conns = await connect_spread(broker.ws_url, workers=2, per_worker=2)
        exact = [ws for ws in conns if worker_of(ws) == 0][0]
        pattern = [ws for ws in conns if worker_of(ws) == 1][0]
        joiners = [ws for ws in conns if ws not in (exact, pattern)]
        await subscribe(pattern, "chat.>", 1)
        await subscribe(exact, "chat.room1", 1)
        assert await next_event(pattern) == {"type": "join", "topic": "chat.room1", "member": member(exact)}
        for j, ws in enumerate(joiners):
            await subscribe(ws, "chat.room1", 1)
            join = {"type": "join", "topic": "chat.room1", "member": member(ws)}
            assert await next_event(exact) == join
            assert await next_event(pattern) == join
            # The joiner gets no join for itself; earlier joiners get it.
            await no_event_before_pong(ws)
            for earlier in joiners[:j]:
                assert await next_event(earlier) == join
        # Leave on unsubscribe: everyone else is told, not the leaver.
        leaver = joiners[0]
        r = await request(leaver, {"type": "unsubscribe", "topic": "chat.room1", "id": 2})
        assert r == {"type": "ack", "id": 2}, r
        leave = {"type": "leave", "topic": "chat.room1", "member": member(leaver)}
        for ws in [exact, pattern] + joiners[1:]:
            assert await next_event(ws) == leave
        await no_event_before_pong(leaver)
        # Leave on a dropped connection (no close frame: the TCP socket goes).
        dropped = joiners[1]
        dropped.transport.abort()
        leave = {"type": "leave", "topic": "chat.room1", "member": member(dropped)}
        for ws in [exact, pattern] + joiners[2:]:
            assert await next_event(ws) == leave
        for ws in [exact, pattern, leaver] + joiners[2:]:
            await ws.close()

    run(go())
    assert broker.metric("wsbroker_presence_events_total") >= 4


@pytest.mark.broker_args("--topics", RULES)
def test_events_only_where_the_rule_says_join_leave(broker):
    async def go():
        a = await connect(broker.ws_url)
        b = await connect(broker.ws_url)
        await subscribe(a, "lobby.x", 1)  # presence without join_leave
        await subscribe(a, "quiet.x", 2)  # join_leave without presence
        await subscribe(b, "lobby.x", 1)
        await no_event_before_pong(a, 3)
        await subscribe(b, "quiet.x", 2)
        assert await next_event(a) == {"type": "join", "topic": "quiet.x", "member": member(b)}
        await b.close()
        assert await next_event(a) == {"type": "leave", "topic": "quiet.x", "member": member(b)}
        await no_event_before_pong(a, 4)
        await a.close()

    run(go())


def test_join_carries_the_user_and_leave_the_same_after_a_new_token(broker_factory):
    b = broker_factory("--topics", RULES, "--auth-jwt-secret", SECRET)

    def tok(sub):
        return jwt_hs256({"sub": sub, "exp": now() + 600, "subscribe": [">"]}, SECRET)

    async def go():
        watcher = await connect(b.ws_url)
        await subscribe(watcher, "chat.r", 1)
        ws = await connect(b.ws_url + "?token=" + tok("dave"))
        await subscribe(ws, "chat.r", 1)
        assert (await next_event(watcher))["member"] == {"client": ws.welcome["client_id"], "user": "dave"}
        r = await request(ws, {"type": "auth", "token": tok("erin"), "id": 2})
        assert r == {"type": "ack", "id": 2}, r
        await ws.close()
        leave = await next_event(watcher)
        assert leave == {"type": "leave", "topic": "chat.r",
                         "member": {"client": ws.welcome["client_id"], "user": "dave"}}, leave
        await watcher.close()

    run(go())


def test_limits_answer_limit_exceeded(broker_factory):
    b = broker_factory("--topics", RULES, "--presence-max-members", "2", "--presence-max-topics", "2")

    async def go():
        conns = [await connect(b.ws_url) for _ in range(3)]
        await subscribe(conns[0], "lobby.a", 1)
        await subscribe(conns[1], "lobby.a", 1)
        r = await request(conns[2], {"type": "subscribe", "topic": "lobby.a", "id": 1})
        assert r["type"] == "error" and r["code"] == "limit_exceeded" and r["id"] == 1, r
        assert "2 members per topic" in r["message"], r
        # Refused means not subscribed: unsubscribing says so, and no member was added.
        r = await request(conns[2], {"type": "unsubscribe", "topic": "lobby.a", "id": 2})
        assert r["code"] == "not_subscribed", r
        assert len((await presence(conns[0], "lobby.a"))["members"]) == 2
        await subscribe(conns[2], "lobby.b", 3)
        r = await request(conns[2], {"type": "subscribe", "topic": "lobby.c", "id": 4})
        assert r["code"] == "limit_exceeded", r
        # Topics without presence are not bounded by it.
        await subscribe(conns[2], "other.c", 5)
        # A topic that empties frees its place.
        r = await request(conns[2], {"type": "unsubscribe", "topic": "lobby.b", "id": 6})
        assert r == {"type": "ack", "id": 6}, r
        await subscribe(conns[2], "lobby.c", 7)
        for ws in conns:
            await ws.close()

    run(go())
    # The members leave on their workers' close paths, which may run after
    # the client saw its close complete: wait (bounded) for the gauges.
    deadline = time.monotonic() + 10
    while (b.metric("wsbroker_presence_topics"), b.metric("wsbroker_presence_members")) != (0, 0):
        assert time.monotonic() < deadline, "presence gauges never came back to 0"
        time.sleep(0.02)


APIKEY = "k-all-0123456789"
LOBBYKEY = "k-lobby-0123456789"


def test_http_presence_with_api_keys(broker_factory):
    b = broker_factory("--topics", RULES, "--api-keys", f"{APIKEY},{LOBBYKEY}:lobby.>")

    ws = b.raw_ws()
    for k, topic in enumerate(("lobby.h", "chat.h")):
        ws.send_json({"type": "subscribe", "topic": topic, "id": k})
        assert ws.recv_json() == {"type": "ack", "id": k}
    me = {"client": ws.welcome["client_id"], "user": None}
    r = b.get("/api/presence?topic=lobby.h")
    assert r.status == 401 and r.json()["error"]["code"] == "unauthorized", r
    r = b.get("/api/presence?topic=lobby.h", headers={"X-API-Key": LOBBYKEY})
    assert r.status == 200, r
    assert r.json() == {"topic": "lobby.h", "members": [me], "clients": 1, "users": 0}
    r = b.get("/api/presence?topic=chat.h", headers={"X-API-Key": LOBBYKEY})
    assert r.status == 403 and r.json()["error"]["code"] == "forbidden", r
    r = b.get("/api/presence?topic=chat.h", headers={"Authorization": f"Bearer {APIKEY}"})
    assert r.status == 200 and r.json()["members"] == [me], r
    r = b.get("/api/presence?topic=other.x", headers={"X-API-Key": APIKEY})
    assert r.status == 404 and r.json()["error"]["code"] == "not_available", r
    for q in ("", "?topic=", "?topic=lobby.*", "?topic=a%2", "?topic=" + "a" * 300):
        r = b.get("/api/presence" + q, headers={"X-API-Key": APIKEY})
        assert r.status == 400 and r.json()["error"]["code"] == "bad_topic", (q, r)
    r = b.post("/api/presence?topic=lobby.h", {}, headers={"X-API-Key": APIKEY})
    assert r.status == 405 and r.json()["error"]["code"] == "method_not_allowed", r
