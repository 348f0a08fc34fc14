"""Request/reply across federated nodes (PROTOCOL.md 3.7 and 13.3), three
nodes on a real redis-server, in classic and sharded mode: a request made on
node A reaches responders on the other nodes, the reply to its inbox comes
back to A only (the inbox names A's node tag; A alone subscribes to its
inbox channel), no subscriber on any node is no_responders at once (the
local tries plus the receiver count Redis returns for the PUBLISH, less the
requester node's own subscriptions), and a responder that dies before it
answers is a timeout. `_inbox.` traffic reaches no `>` subscriber on any
node."""
from __future__ import annotations

import asyncio
import time

import pytest

from helpers import connect, recv_json, request, run, send_json, wait_for

MODES = {
    "classic": (),
    "sharded": ("--redis-sharded", "true"),
    "sharded_no_patterns": ("--redis-sharded", "true", "--redis-sharded-patterns", "false"),
}


def sharded(mode: str) -> bool:
    return mode != "classic"


def wait_exact(redis_server, mode, topic, n=1):
    """Until `n` nodes subscribe to `topic`'s channel in Redis."""
    name = "wsb:" + topic
    count = (lambda: redis_server.shardnumsub(name)) if sharded(mode) else (lambda: redis_server.numsub(name))
    wait_for(lambda: count() == n, 10.0, 0.02, f"{n} node(s) subscribed to {name}")


def wait_inboxes(redis_server, mode, n):
    """Until every node subscribed to its own inbox channel (a reply sent
    before that is lost like any message published before a subscribe)."""
    r = redis_server.client()

    def chans():
        if sharded(mode):
            return r.execute_command("PUBSUB", "SHARDCHANNELS", "wsb:_inbox.*")
        return r.pubsub_channels("wsb:_inbox.*")

    wait_for(lambda: len(chans()) == n, 10.0, 0.02, f"{n} inbox channels")


async def sub(ws, topic, i=1):
    a = await request(ws, {"type": "subscribe", "topic": topic, "id": i})
    assert a["type"] == "ack", a


async def responder_on(redis_server, mode, node, topic):
    """A connection on `node` subscribed to `topic`, once Redis has the
    node's subscription (a request sent before that could not reach it)."""
    ws = await connect(node.ws_url)
    await sub(ws, topic)
    wait_exact(redis_server, mode, topic)
    return ws


async def error_within(ws, code, rid, bound):
    """The next frame is error `code` for request `rid`, within `bound` s."""
    t0 = time.monotonic()
    e = await recv_json(ws, bound)
    assert e["type"] == "error" and e["code"] == code and e["id"] == rid, e
    return time.monotonic() - t0


@pytest.mark.parametrize("mode", list(MODES))
def test_request_on_a_answered_on_c(redis_server, cluster, mode):
    a, b, c = cluster(3, *MODES[mode])
    wait_inboxes(redis_server, mode, 3)

    async def go():
        responder = await responder_on(redis_server, mode, c, "dev.c7.cmd")
        req = await connect(a.ws_url)
        await send_json(req, {"type": "request", "topic": "dev.c7.cmd", "data": {"op": "on"},
                              "id": 7, "timeout_ms": 30000})
        m = await recv_json(responder, 10)
        assert m["type"] == "message" and m["topic"] == "dev.c7.cmd" and m["data"] == {"op": "on"}, m
        inbox = m["reply_to"]
        assert inbox.startswith("_inbox.") and len(inbox.split(".")) == 3, inbox
        await send_json(responder, {"type": "publish", "topic": inbox, "data": {"ok": True}})
        r = await recv_json(req, 10)
        assert r == {"type": "reply", "id": 7, "data": {"ok": True},
                     "from": {"client": responder.welcome["client_id"], "user": None}}, r
        # A second reply to the same inbox is dropped; the next frame of the
        # requester is the answer to its next request.
        await send_json(responder, {"type": "publish", "topic": inbox, "data": "late"})
        # HTTP POST /api/request on B (a backend), answered on C.
        task = asyncio.ensure_future(answer_all(responder))
        r = await asyncio.to_thread(b.post, "/api/request",
                                    {"topic": "dev.c7.cmd", "data": 5, "timeout_ms": 30000})
        assert r.status == 200 and r.json()["data"] == {"echo": 5}, (r.status, r.body)
        await send_json(req, {"type": "request", "topic": "dev.c7.cmd", "data": 6, "id": 8,
                              "timeout_ms": 30000})
        r = await recv_json(req, 10)
        assert r["type"] == "reply" and r["id"] == 8 and r["data"] == {"echo": 6}, r
        task.cancel()
        for ws in (responder, req):
            await ws.close()

    run(go())


async def answer_all(ws, only_first=False):
    """Answers each request `ws` receives ({"echo": data}); `only_first`:
    the first one only, the others stay in flight."""
    answered = False
    while True:
        m = await recv_json(ws, 60)
        if m.get("type") == "message" and "reply_to" in m and not (only_first and answered):
            await send_json(ws, {"type": "publish", "topic": m["reply_to"], "data": {"echo": m["data"]}})
            answered = True


@pytest.mark.parametrize("mode", list(MODES))
def test_no_responder_on_any_node_is_no_responders_at_once(redis_server, cluster, mode):
    a, b, c = cluster(3, *MODES[mode])
    wait_inboxes(redis_server, mode, 3)

    async def go():
        req = await connect(a.ws_url)
        # Nobody anywhere: no_responders, long before the 30 s timeout.
        await send_json(req, {"type": "request", "topic": "dev.none", "data": 1, "id": 1,
                              "timeout_ms": 30000})
        await error_within(req, "no_responders", 1, 10)
        # A's own Redis subscriptions that Redis counts for the channel but
        # whose tries do not match the topic (an exact channel of A's own
        # subscriber of the topic on another connection counts as local; a
        # glob "dev.*.x" is looser than the pattern) are not other nodes.
        local = await connect(a.ws_url)
        if mode != "sharded_no_patterns":
            await sub(local, "dev.*.x")
            wait_for(lambda: redis_server.psubs() >= 1, 10.0, 0.02, "A's glob in Redis")
            await send_json(req, {"type": "request", "topic": "dev.a.b.x", "data": 1, "id": 2,
                                  "timeout_ms": 30000})
            await error_within(req, "no_responders", 2, 10)
        # A subscriber on B only: the request reaches it (no no_responders).
        other = await connect(b.ws_url)
        await sub(other, "dev.b")
        wait_exact(redis_server, mode, "dev.b")
        await send_json(req, {"type": "request", "topic": "dev.b", "data": 2, "id": 3,
                              "timeout_ms": 30000})
        m = await recv_json(other, 10)
        assert m["type"] == "message" and m["data"] == 2, m
        await send_json(other, {"type": "publish", "topic": m["reply_to"], "data": "here"})
        r = await recv_json(req, 10)
        assert r["type"] == "reply" and r["id"] == 3 and r["data"] == "here", r
        # It leaves: no_responders again once B's unsubscribe reached Redis.
        assert (await request(other, {"type": "unsubscribe", "topic": "dev.b", "id": 9}))["type"] == "ack"
        wait_exact(redis_server, mode, "dev.b", 0)
        await send_json(req, {"type": "request", "topic": "dev.b", "data": 2, "id": 4,
                              "timeout_ms": 30000})
        await error_within(req, "no_responders", 4, 10)
        # HTTP on C: 404 no_responders.
        r = await asyncio.to_thread(c.post, "/api/request", {"topic": "dev.none", "data": 1,
                                                            "timeout_ms": 30000})
        assert r.status == 404 and r.json()["error"]["code"] == "no_responders", (r.status, r.body)
        for ws in (req, local, other):
            await ws.close()

    run(go())


@pytest.mark.parametrize("mode", ["classic", "sharded"])
def test_responder_node_killed_before_it_answers_is_timeout(redis_server, cluster, mode):
    a, b, c = cluster(3, *MODES[mode])
    wait_inboxes(redis_server, mode, 3)

    async def go():
        responder = await responder_on(redis_server, mode, c, "dev.k")
        req = await connect(a.ws_url)
        await send_json(req, {"type": "request", "topic": "dev.k", "data": 1, "id": 1,
                              "timeout_ms": 1000})
        m = await recv_json(responder, 10)
        assert m["type"] == "message" and "reply_to" in m, m
        c.kill()  # SIGKILL by PID: the responder never answers
        e = await recv_json(req, 10)
        assert e["type"] == "error" and e["code"] == "timeout" and e["id"] == 1, e
        # Redis dropped C's subscriptions with its connection: nobody is left.
        wait_exact(redis_server, mode, "dev.k", 0)
        await send_json(req, {"type": "request", "topic": "dev.k", "data": 1, "id": 2,
                              "timeout_ms": 30000})
        await error_within(req, "no_responders", 2, 10)
        await req.close()

    run(go())


def test_inbox_traffic_reaches_no_wildcard_subscriber_on_any_node(redis_server, cluster):
    a, b, c = cluster(3)
    wait_inboxes(redis_server, "classic", 3)

    async def go():
        watchers = [await connect(n.ws_url) for n in (a, b, c)]
        for w in watchers:
            await sub(w, ">")
        wait_for(lambda: redis_server.psubs() >= 3, 10.0, 0.02, "three '>' globs")
        responder = await responder_on(redis_server, "classic", c, "dev.w")
        req = await connect(a.ws_url)
        await send_json(req, {"type": "request", "topic": "dev.w", "data": 1, "id": 1,
                              "timeout_ms": 30000})
        m = await recv_json(responder, 10)
        await send_json(responder, {"type": "publish", "topic": m["reply_to"], "data": "r"})
        r = await recv_json(req, 10)
        assert r["type"] == "reply", r
        # A marker after the reply: each watcher sees the request (">"
        # matches dev.w) and the marker, never the inbox.
        await send_json(responder, {"type": "publish", "topic": "dev.end", "data": 0})
        for w in watchers:
            seen = []
            while True:
                f = await recv_json(w, 10)
                seen.append(f)
                if f.get("topic") == "dev.end":
                    break
            assert [f["topic"] for f in seen] == ["dev.w", "dev.end"], seen
        for ws in (*watchers, responder, req):
            await ws.close()

    run(go())


@pytest.mark.parametrize("victim", ["responder", "requester"])
def test_node_killed_with_requests_in_flight(redis_server, cluster, victim):
    """A's client has 20 requests in flight to dev.many, whose only
    responder is on C; one node is killed by SIGKILL meanwhile. Responder
    (C) killed, having answered only the first: every other request ends
    exactly once, with timeout (or no_responders if it reached Redis after
    C's connection was gone), never a reply; then nothing is left to
    answer. Requester (A) killed: C's replies go to a channel nobody
    listens to, and C and B serve the next requests."""
    a, b, c = cluster(3)
    wait_inboxes(redis_server, "classic", 3)

    async def go():
        responder = await responder_on(redis_server, "classic", c, "dev.many")
        task = asyncio.ensure_future(answer_all(responder, only_first=victim == "responder"))
        req = await connect(a.ws_url)
        ends = {}
        sent = 0
        killed = False
        for rid in range(1, 21):
            await send_json(req, {"type": "request", "topic": "dev.many", "data": rid, "id": rid,
                                  "timeout_ms": 1500})
            sent += 1
        # The first reply proves requests are flowing; then the kill.
        first = await recv_json(req, 10)
        assert first["type"] == "reply", first
        ends[first["id"]] = first["type"]
        if victim == "responder":
            c.kill()
            killed = True
            while len(ends) < sent:
                e = await recv_json(req, 10)
                code = e["type"] if e["type"] == "reply" else e.get("code")
                assert code in ("timeout", "no_responders"), e
                assert e["id"] not in ends, ("ended twice", e)
                ends[e["id"]] = code
            wait_exact(redis_server, "classic", "dev.many", 0)
            await send_json(req, {"type": "request", "topic": "dev.many", "data": 0, "id": 99,
                                  "timeout_ms": 30000})
            await error_within(req, "no_responders", 99, 10)
            await req.close()
        else:
            a.kill()
            killed = True
            other = await connect(b.ws_url)
            await send_json(other, {"type": "request", "topic": "dev.many", "data": "b", "id": 1,
                                    "timeout_ms": 30000})
            r = await recv_json(other, 10)
            assert r["type"] == "reply" and r["data"] == {"echo": "b"}, r
            assert c.health()["status"] == "ok" and b.health()["status"] == "ok"
            await other.close()
            task.cancel()
            await responder.close()
        assert killed

    run(go())
