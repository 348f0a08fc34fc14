"""Request/reply (issue 19 item 4, PROTOCOL.md "Request/reply"): a request is
delivered to the topic's subscribers with "reply_to", an inbox only the
broker subscribes to; the first message a responder publishes there comes
back to the requester as {"type":"reply","id":…,"data":…,"from":…}; with no
subscriber anywhere the requester gets no_responders at once, otherwise
timeout. Clients cannot subscribe to "_inbox." and ">" never sees it."""
from __future__ import annotations

import asyncio
import json
import socket

from helpers import connect as _connect
from helpers import connect_spread, recv_json, request, run, send_json, subscribe, worker_of
from sectools import jwt_hs256, now

_open: list = []


async def connect(url):
    ws = await _connect(url)
    _open.append(ws)
    return ws


async def close_all():
    """Closes what connect() opened (an open one costs its close timeout at
    the end of asyncio.run)."""
    while _open:
        await _open.pop().close()


async def next_of(ws, kind, timeout=5.0):
    """The next frame of type `kind` (frames of other types in between are
    failures: a request gets no ack)."""
    m = await recv_json(ws, timeout)
    assert m["type"] == kind, m
    return m


async def responder_loop(ws, answer):
    """Answers every request `ws` receives with answer(data) on its reply_to."""
    while True:
        m = await recv_json(ws, 30)
        if m.get("type") == "message" and "reply_to" in m:
            await send_json(ws, {"type": "publish", "topic": m["reply_to"], "data": answer(m["data"])})


def test_reply_across_workers(broker_factory):
    b = broker_factory("--workers", "4")

    async def go():
        conns = await connect_spread(b.ws_url, 4, 1)
        resp = conns[0]
        req = next(c for c in conns if worker_of(c) != worker_of(resp))
        await subscribe(resp, "dev.d7.cmd")
        task = asyncio.ensure_future(responder_loop(resp, lambda d: {"echo": d}))
        await send_json(req, {"type": "request", "topic": "dev.d7.cmd", "data": {"op": "on"},
                              "id": 7, "timeout_ms": 5000})
        r = await next_of(req, "reply")
        assert r["id"] == 7 and r["data"] == {"echo": {"op": "on"}}, r
        assert r["from"] == {"client": resp.welcome["client_id"], "user": None}, r
        task.cancel()
        for c in conns:
            await c.close()
        await close_all()

    run(go())


def test_message_carries_an_unguessable_reply_to(broker):
    async def go():
        resp = await connect(broker.ws_url)
        await subscribe(resp, "dev.>")
        req = await connect(broker.ws_url)
        inboxes = set()
        for i in range(3):
            await send_json(req, {"type": "request", "topic": "dev.a", "data": i, "id": i, "timeout_ms": 100})
            m = await next_of(resp, "message")
            assert m["topic"] == "dev.a" and m["data"] == i, m
            assert m["reply_to"].startswith("_inbox.") and len(m["reply_to"]) >= len("_inbox.") + 32, m
            inboxes.add(m["reply_to"])
            e = await next_of(req, "error")
            assert e == {"type": "error", "id": i, "code": "timeout", "message": e["message"]}, e
        assert len(inboxes) == 3
        # A plain publish carries no reply_to.
        await send_json(req, {"type": "publish", "topic": "dev.a", "data": 9})
        m = await next_of(resp, "message")
        assert "reply_to" not in m, m
        await close_all()

    run(go())


def test_no_responders_at_once(broker_factory):
    b = broker_factory("--workers", "4")

    async def go():
        conns = await connect_spread(b.ws_url, 4, 1)
        req = conns[0]
        # A subscriber of another topic is no responder; the default timeout
        # (5 s) is far beyond the answer's bound below.
        await subscribe(conns[1], "dev.other")
        await send_json(req, {"type": "request", "topic": "dev.nobody", "data": 1, "id": 3})
        e = await next_of(req, "error", timeout=2.0)
        assert e["code"] == "no_responders" and e["id"] == 3, e
        for c in conns:
            await c.close()
        await close_all()

    run(go())


def test_timeout_when_nobody_answers(broker):
    async def go():
        mute = await connect(broker.ws_url)
        await subscribe(mute, "dev.mute")
        req = await connect(broker.ws_url)
        await send_json(req, {"type": "request", "topic": "dev.mute", "data": 1, "id": 4, "timeout_ms": 50})
        e = await next_of(req, "error")
        assert e["code"] == "timeout" and e["id"] == 4, e
        # A late reply after the timeout is not delivered as a reply.
        m = await next_of(mute, "message")
        await send_json(mute, {"type": "publish", "topic": m["reply_to"], "data": "late"})
        assert (await request(req, {"type": "ping", "id": 5})) == {"type": "pong", "id": 5}
        await close_all()

    run(go())


def test_only_the_first_reply_counts(broker):
    async def go():
        a = await connect(broker.ws_url)
        c = await connect(broker.ws_url)
        await subscribe(a, "svc.x")
        await subscribe(c, "svc.x")
        req = await connect(broker.ws_url)
        await send_json(req, {"type": "request", "topic": "svc.x", "data": 0, "id": 1})
        ma = await next_of(a, "message")
        mc = await next_of(c, "message")
        assert ma["reply_to"] == mc["reply_to"]  # one shared frame per message
        await send_json(a, {"type": "publish", "topic": ma["reply_to"], "data": "a"})
        r = await next_of(req, "reply")
        assert r["data"] == "a", r
        await send_json(c, {"type": "publish", "topic": mc["reply_to"], "data": "c"})
        assert (await request(req, {"type": "ping", "id": 2})) == {"type": "pong", "id": 2}
        await close_all()

    run(go())


def test_inbox_is_the_brokers_only(broker):
    async def go():
        spy = await connect(broker.ws_url)
        for i, pattern in enumerate(["_inbox.abc", "_inbox.>", "_inbox.*", "_inbox"]):
            r = await request(spy, {"type": "subscribe", "topic": pattern, "id": i})
            assert r["type"] == "error" and r["code"] == "forbidden", (pattern, r)
        # Wildcards that match any topic never see inbox traffic.
        await subscribe(spy, ">", id=10)
        await subscribe(spy, "*.*", id=11)
        resp = await connect(broker.ws_url)
        await subscribe(resp, "q.ask")
        req = await connect(broker.ws_url)
        await send_json(req, {"type": "request", "topic": "q.ask", "data": "?", "id": 1})
        m = await next_of(resp, "message")
        await send_json(resp, {"type": "publish", "topic": m["reply_to"], "data": "!"})
        assert (await next_of(req, "reply"))["data"] == "!"
        await send_json(resp, {"type": "publish", "topic": "_inbox.forged", "data": "x"})
        seen = [m for m in await _drain(spy)]
        assert [m["topic"] for m in seen if m["type"] == "message"] == ["q.ask"], seen
        # A request to an inbox is refused.
        r = await request(req, {"type": "request", "topic": m["reply_to"], "data": 1, "id": 2})
        assert r["type"] == "error" and r["code"] == "forbidden", r
        await close_all()

    run(go())


async def _drain(ws):
    out = []
    await send_json(ws, {"type": "ping", "id": 999})
    while True:
        m = await recv_json(ws)
        if m == {"type": "pong", "id": 999}:
            return out
        out.append(m)


def test_timeout_ms_is_bounded(broker):
    async def go():
        ws = await connect(broker.ws_url)
        for bad in (0, -1, 60001, "1", 1.5):
            r = await request(ws, {"type": "request", "topic": "a", "data": 1, "id": 1, "timeout_ms": bad})
            assert r["type"] == "error" and r["code"] == "bad_field", (bad, r)
        r = await request(ws, {"type": "request", "topic": "a", "id": 2})
        assert r["code"] == "missing_field", r
        await close_all()

    run(go())


def test_pending_requests_per_connection_are_bounded(broker):
    async def go():
        mute = await connect(broker.ws_url)
        await subscribe(mute, "slow.svc")
        req = await connect(broker.ws_url)
        for i in range(100):
            await send_json(req, {"type": "request", "topic": "slow.svc", "data": i, "id": i,
                                  "timeout_ms": 60000})
        r = await request(req, {"type": "request", "topic": "slow.svc", "data": 0, "id": 100})
        assert r["type"] == "error" and r["code"] == "limit_exceeded" and r["id"] == 100, r
        # The refused one was not published: the subscriber got exactly 100.
        got = [(await next_of(mute, "message"))["data"] for _ in range(100)]
        assert got == list(range(100))
        assert await _drain(mute) == []
        await close_all()

    run(go())


def test_requester_gone_before_the_reply(broker):
    async def go():
        resp = await connect(broker.ws_url)
        await subscribe(resp, "dev.slow")
        for _ in range(20):
            req = await connect(broker.ws_url)
            await send_json(req, {"type": "request", "topic": "dev.slow", "data": 1, "id": 1,
                                  "timeout_ms": 60000})
            m = await next_of(resp, "message")
            await req.close()
            await send_json(resp, {"type": "publish", "topic": m["reply_to"], "data": "too late"})
        # Still serving requests.
        req = await connect(broker.ws_url)
        task = asyncio.ensure_future(responder_loop(resp, lambda d: d))
        await send_json(req, {"type": "request", "topic": "dev.slow", "data": "ok", "id": 2})
        assert (await next_of(req, "reply"))["data"] == "ok"
        task.cancel()
        await close_all()

    run(go())
    broker.assert_healthy()


# ---- HTTP POST /api/request (backends) ------------------------------------------------------


def test_http_request_gets_the_reply(broker):
    async def go():
        resp = await connect(broker.ws_url)
        await subscribe(resp, "dev.h")
        task = asyncio.ensure_future(responder_loop(resp, lambda d: {"got": d}))
        r = await asyncio.to_thread(broker.post, "/api/request",
                                    {"topic": "dev.h", "data": [1, 2], "timeout_ms": 5000})
        assert r.status == 200, r
        assert r.json() == {"data": {"got": [1, 2]},
                            "from": {"client": resp.welcome["client_id"], "user": None}}, r.json()
        task.cancel()
        await close_all()

    run(go())


def test_http_request_errors(broker):
    async def go():
        mute = await connect(broker.ws_url)
        await subscribe(mute, "dev.mute")
        r = await asyncio.to_thread(broker.post, "/api/request", {"topic": "dev.none", "data": 1})
        assert r.status == 404 and r.json()["error"]["code"] == "no_responders", r
        r = await asyncio.to_thread(broker.post, "/api/request",
                                    {"topic": "dev.mute", "data": 1, "timeout_ms": 50})
        assert r.status == 504 and r.json()["error"]["code"] == "timeout", r
        m = await next_of(mute, "message")
        assert m["reply_to"].startswith("_inbox."), m
        for body in ({"topic": "dev.mute", "data": 1, "timeout_ms": 0},
                     {"topic": "dev.mute", "data": 1, "timeout_ms": 60001},
                     {"topic": "dev.mute"}, {"data": 1}):
            r = broker.post("/api/request", body)
            assert r.status == 400, (body, r)
        r = broker.post("/api/request", {"topic": m["reply_to"], "data": 1})
        assert r.status == 403 and r.json()["error"]["code"] == "forbidden", r
        assert broker.get("/api/request").status == 405
        await close_all()

    run(go())


def test_http_request_needs_the_api_key(broker_factory):
    key = "reqkey-0123456789abcdef"
    b = broker_factory("--api-keys", f"{key}:dev.>")
    r = b.post("/api/request", {"topic": "dev.x", "data": 1})
    assert r.status == 401, r
    r = b.post("/api/request", {"topic": "other.x", "data": 1}, headers={"X-API-Key": key})
    assert r.status == 403, r
    r = b.post("/api/request", {"topic": "dev.x", "data": 1}, headers={"X-API-Key": key})
    assert r.status == 404 and r.json()["error"]["code"] == "no_responders", r


def test_http_client_gone_while_waiting(broker):
    async def go():
        mute = await connect(broker.ws_url)
        await subscribe(mute, "dev.mute")
        body = json.dumps({"topic": "dev.mute", "data": 1, "timeout_ms": 60000}).encode()
        for _ in range(5):
            with socket.create_connection((broker.host, broker.port), timeout=5) as s:
                s.sendall(b"POST /api/request HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                m = await next_of(mute, "message")  # published: the request waits
            await send_json(mute, {"type": "publish", "topic": m["reply_to"], "data": "late"})
        await close_all()

    run(go())
    broker.assert_healthy()


def test_a_responder_needs_no_publish_right_to_answer(broker_factory):
    secret = "request-test-secret-0123456789ab"
    b = broker_factory("--auth-jwt-secret", secret)

    def tok(sub, **claims):
        return jwt_hs256({"sub": sub, "exp": now() + 600, **claims}, secret)

    async def go():
        # The device may only listen; the inbox name is its right to answer.
        dev = await connect(b.ws_url + "?token=" + tok("dev7", subscribe=["dev.d7.>"], publish=[]))
        await subscribe(dev, "dev.d7.cmd")
        op = await connect(b.ws_url + "?token=" + tok("op", subscribe=[], publish=["dev.>"]))
        await send_json(op, {"type": "request", "topic": "dev.d7.cmd", "data": "reboot", "id": 1})
        m = await next_of(dev, "message")
        r = await request(dev, {"type": "publish", "topic": m["reply_to"], "data": "ok", "id": 2})
        assert r["type"] == "ack", r
        r = await next_of(op, "reply")
        assert r["data"] == "ok" and r["from"] == {"client": dev.welcome["client_id"], "user": "dev7"}, r
        # Still no right to publish elsewhere.
        r = await request(dev, {"type": "publish", "topic": "dev.d7.state", "data": 1, "id": 3})
        assert r["code"] == "forbidden", r
        await close_all()

    run(go())
