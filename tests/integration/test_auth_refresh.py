"""Credential refresh revokes what the new credentials do not allow (issue 15,
item 2): on a successful `auth`, every subscription the new token does not
cover is removed, as an unsubscribe would, and the client gets one
`unsubscribed` notice per pattern before the auth ack (PROTOCOL.md 3.4a, 4.7).

Delivery checks are deterministic: one publisher sends the forbidden topic
first and an allowed one after it; a topic's messages and the publisher's
order are kept, so once the allowed message arrived the forbidden one would
have arrived before it."""
from __future__ import annotations

from helpers import connect, publish, recv_json, request, run, send_json, subscribe
from sectools import jwt_hs256, now

SECRET = "auth-refresh-secret-0123456789abcdef"


def token(subscribe_patterns, publish_patterns=(), exp_in=3600):
    return jwt_hs256({"sub": "t", "exp": now() + exp_in, "subscribe": list(subscribe_patterns),
                      "publish": list(publish_patterns)}, SECRET)


def auth_broker(broker_factory, *extra, env=None):
    return broker_factory("--auth-required", "true", "--auth-jwt-secret", SECRET, *extra, env=env)


async def auth_collect(ws, tok, id):
    """Sends auth and returns (notices before the reply, the reply)."""
    await send_json(ws, {"type": "auth", "token": tok, "id": id})
    before = []
    while True:
        m = await recv_json(ws)
        if m.get("id") == id:
            return before, m
        before.append(m)


async def first_message(ws):
    while True:
        m = await recv_json(ws)
        if m.get("type") == "message":
            return m


async def publisher(b):
    return await connect(b.ws_url + "?token=" + token([], [">"]))


def test_narrower_token_removes_uncovered_subscriptions_and_says_so(broker_factory):
    b = auth_broker(broker_factory)

    async def go():
        pub = await publisher(b)
        ws = await connect(b.ws_url + "?token=" + token(["chat.>", "news.>"]))
        await subscribe(ws, "chat.>", 1)
        await subscribe(ws, "chat.room1", 2)
        await subscribe(ws, "news.a", 3)
        before, ack = await auth_collect(ws, token(["chat.room1", "news.>"]), 4)
        assert ack == {"type": "ack", "id": 4}, ack
        # chat.> is not narrowed to chat.room1: it goes whole; chat.room1 is
        # covered exactly and news.a by news.>: they stay.
        assert len(before) == 1, before
        n = before[0]
        assert n["type"] == "unsubscribed" and n["topic"] == "chat.>" and n["code"] == "forbidden", n
        assert isinstance(n["message"], str) and n["message"], n
        await publish(pub, "chat.secret", "secret", 10)
        await publish(pub, "chat.room1", "ok", 11)
        await publish(pub, "news.a", "news", 12)
        got = [await first_message(ws), await first_message(ws)]
        assert [(m["topic"], m["data"]) for m in got] == [("chat.room1", "ok"), ("news.a", "news")], got
        # The record is gone: unsubscribing again says so, and the new token
        # does not allow subscribing to chat.> again.
        r = await request(ws, {"type": "unsubscribe", "topic": "chat.>", "id": 13})
        assert r["type"] == "error" and r["code"] == "not_subscribed", r
        r = await request(ws, {"type": "subscribe", "topic": "chat.>", "id": 14})
        assert r["type"] == "error" and r["code"] == "forbidden", r
        await ws.close()
        await pub.close()

    run(go(), 30)


def test_anonymous_session_that_authenticates_loses_what_the_token_does_not_allow(broker_factory):
    # Anonymous clients may subscribe to anything (the default), a token less.
    b = broker_factory("--auth-jwt-secret", SECRET)

    async def go():
        pub = await connect(b.ws_url)
        ws = await connect(b.ws_url)
        await subscribe(ws, "a.>", 1)
        await subscribe(ws, "b.x", 2)
        await subscribe(ws, "b.*", 3)
        before, ack = await auth_collect(ws, token(["b.>"]), 4)
        assert ack == {"type": "ack", "id": 4}, ack
        assert [(m["type"], m["topic"], m["code"]) for m in before] == [
            ("unsubscribed", "a.>", "forbidden")], before
        await publish(pub, "a.1", 1, 10)
        await publish(pub, "b.x", 2, 11)
        m = await first_message(ws)
        assert (m["topic"], m["data"]) == ("b.x", 2), m
        await ws.close()
        await pub.close()

    run(go(), 30)
    b.assert_healthy()


def test_token_to_a_token_with_nothing_revokes_every_subscription(broker_factory):
    b = auth_broker(broker_factory)

    async def go():
        pub = await publisher(b)
        ws = await connect(b.ws_url + "?token=" + token(["x.>", "y.1"]))
        await subscribe(ws, "x.>", 1)
        await subscribe(ws, "y.1", 2)
        before, ack = await auth_collect(ws, token([]), 3)
        assert ack == {"type": "ack", "id": 3}, ack
        assert sorted(m["topic"] for m in before) == ["x.>", "y.1"], before
        assert all(m["type"] == "unsubscribed" for m in before), before
        await publish(pub, "x.1", 1, 10)
        await publish(pub, "y.1", 2, 11)
        # Nothing is delivered: a ping answered after both publishes proves it.
        r = await request(ws, {"type": "ping", "id": 12})
        assert r == {"type": "pong", "id": 12}, r
        assert not ws.__dict__.get("pending_messages"), ws.pending_messages
        await ws.close()
        await pub.close()

    run(go(), 30)


def test_wider_token_or_refused_token_keeps_every_subscription(broker_factory):
    b = auth_broker(broker_factory)

    async def go():
        pub = await publisher(b)
        ws = await connect(b.ws_url + "?token=" + token(["chat.room1", "chat.*"]))
        await subscribe(ws, "chat.room1", 1)
        await subscribe(ws, "chat.*", 2)
        before, ack = await auth_collect(ws, token(["chat.>"]), 3)
        assert (before, ack) == ([], {"type": "ack", "id": 3})
        # A refused token changes nothing either.
        before, err = await auth_collect(ws, jwt_hs256({"subscribe": []}, "wrong-secret"), 4)
        assert before == [] and err["type"] == "error" and err["code"] == "unauthorized", err
        await publish(pub, "chat.room2", "r2", 10)
        m = await first_message(ws)
        assert (m["topic"], m["data"]) == ("chat.room2", "r2"), m
        await ws.close()
        await pub.close()

    run(go(), 30)


def test_auth_require_exp_refuses_tokens_without_exp(broker_factory):
    no_exp = jwt_hs256({"sub": "t", "subscribe": ["a.>"]}, SECRET)
    with_exp = token(["a.>"])

    async def handshake_refused(b, tok):
        try:
            ws = await connect(b.ws_url + "?token=" + tok)
        except Exception as e:  # websockets: InvalidStatusCode 403
            return getattr(e, "status_code", None) == 403
        await ws.close()
        return False

    async def go(b, required):
        assert await handshake_refused(b, no_exp) is required
        ws = await connect(b.ws_url + "?token=" + with_exp)
        before, r = await auth_collect(ws, no_exp, 1)
        assert before == [], before
        if required:
            assert r["type"] == "error" and r["code"] == "unauthorized", r
        else:
            assert r == {"type": "ack", "id": 1}, r
        assert (await auth_collect(ws, with_exp, 2))[1] == {"type": "ack", "id": 2}
        await ws.close()

    # The option from the environment, as documented; off by default.
    on = auth_broker(broker_factory, env={"WSB_AUTH_REQUIRE_EXP": "true"})
    run(go(on, True), 30)
    off = auth_broker(broker_factory)
    run(go(off, False), 30)
