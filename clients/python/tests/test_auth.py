"""Tokens: get_token before each connection, the refresh of a token before its
`exp` on the open connection (an `auth` request), refused tokens (HTTP 403
without Origin, close 4001 with one) and never reconnecting with the token the
broker just refused (PROTOCOL.md 3.4a, 8, 10)."""
from __future__ import annotations

import json
import time

import pytest

import wsbroker
from conftest import jwt_hs256, run, wait_until

SECRET = "python-client-secret-0123456789abcdef"
FAST = wsbroker.Reconnect(min_delay=0.05, max_delay=0.5)


def token(publish, exp_in=600.0, secret=SECRET, sub="alice", subscribe=(">",)):
    now = int(time.time())
    return jwt_hs256({"sub": sub, "iat": now, "exp": now + exp_in, "subscribe": list(subscribe),
                      "publish": publish}, secret)


def auth_broker(broker_factory):
    return broker_factory("--auth-required", "true", "--auth-jwt-secret", SECRET)


def test_get_token_refreshes_before_exp_on_the_open_connection(broker_factory):
    b = auth_broker(broker_factory)
    calls = []

    async def get_token():  # an async callback (a sync one works too)
        calls.append(1)
        # The first token lives 4 s and may publish to a.>; the client asks
        # for the next one at 85% of that, and the next one also allows b.>.
        return token(["a.>"], exp_in=4) if len(calls) == 1 else token(["a.>", "b.>"])

    async def main():
        c = await wsbroker.connect(b.ws_url, get_token=get_token, reconnect=FAST)
        assert c.welcome["user"] == "alice"
        first = c.client_id
        assert await c.publish("a.x", 1) == 1
        with pytest.raises(wsbroker.Forbidden):
            await c.publish("b.x", 1)
        await wait_until(lambda: c.stats["token_refreshes"] == 1, timeout=15, what="the token refresh")
        assert len(calls) == 2
        # The new token's rights, on the same connection.
        assert await c.publish("b.x", 2) == 1
        assert c.client_id == first and c.stats["connects"] == 1
        await c.close()
    run(main())


def test_refresh_token_on_demand(broker_factory):
    b = auth_broker(broker_factory)
    tokens = iter([token(["a.>"]), token([]), token(["a.>"], secret="wrong-secret-0123456789")])

    async def main():
        c = await wsbroker.connect(b.ws_url, get_token=lambda: next(tokens))
        assert await c.publish("a.x", 1) == 1
        await c.refresh_token()
        with pytest.raises(wsbroker.Forbidden):
            await c.publish("a.x", 2)
        with pytest.raises(wsbroker.Unauthorized):
            await c.refresh_token()  # a refused auth keeps the previous credentials
        assert c.state == "open"
        await c.close()
    run(main())


@pytest.mark.parametrize("origin", [None, "http://app.example"])
def test_a_refused_token_asks_get_token_again(broker_factory, origin):
    b = auth_broker(broker_factory)
    tokens = [token(["a.>"], secret="wrong-secret-0123456789"), token(["a.>"])]
    calls = []

    def get_token():
        calls.append(1)
        return tokens[len(calls) - 1]

    async def main():
        errors = []
        c = wsbroker.Client(b.ws_url, get_token=get_token, reconnect=FAST, origin=origin)
        c.on("error", errors.append)
        await c.wait_open()
        assert len(calls) == 2
        assert isinstance(errors[0], wsbroker.InvalidToken)
        # Without Origin the broker answers HTTP 403; with one, close 4001.
        assert (errors[0].status, errors[0].close_code) == ((403, 4001) if origin is None else (None, 4001))
        assert await c.publish("a.x", 1) == 1
        await c.close()
    run(main())


def test_the_refused_token_again_closes_for_good(broker_factory):
    b = auth_broker(broker_factory)
    bad = token(["a.>"], secret="wrong-secret-0123456789")

    async def main():
        with pytest.raises(wsbroker.TokenError):
            await wsbroker.connect(b.ws_url, get_token=lambda: bad, reconnect=FAST)
        # A fixed token the broker refuses: no reconnect at all.
        c = wsbroker.Client(b.ws_url, token=bad, reconnect=FAST, origin="http://app.example")
        with pytest.raises(wsbroker.InvalidToken) as e:
            await c.wait_open()
        assert e.value.close_code == 4001 and c.state == "closed"
    run(main())


def test_a_narrower_token_ends_the_subscriptions_it_does_not_cover(broker_factory):
    b = auth_broker(broker_factory)
    tokens = iter([token(["a.>"]), token(["a.>"], subscribe=["a.>"])])

    async def main():
        c = await wsbroker.connect(b.ws_url, get_token=lambda: next(tokens), reconnect=FAST)
        notices = []
        c.on("unsubscribed", notices.append)
        kept = await c.subscribe("a.x")
        lost = await c.subscribe("b.>")
        await c.refresh_token()
        # The notice comes before the auth ack (PROTOCOL.md 3.4a).
        assert notices == [{"topic": "b.>", "code": "forbidden", "message": notices[0]["message"]}]
        assert lost.closed and not kept.closed
        with pytest.raises(wsbroker.Forbidden):
            async for _ in lost:
                pass
        await c.publish("a.x", 1)
        assert (await kept.__anext__()).data == 1
        await c.close()
    run(main())


def test_broker_closes_an_expired_session_and_the_client_recovers(broker_factory):
    """The broker closes a session whose token expired (4002, 1 s leeway); the
    client asks get_token for a new one, reconnects and recovers with `since`
    what was published while it was away (published from the `disconnect`
    listener, which runs before the client can reconnect)."""
    rules = json.dumps([{"pattern": "chat.>", "size": 100}])
    b = broker_factory("--auth-required", "true", "--auth-jwt-secret", SECRET, "--auth-leeway", "1s",
                       "--history", rules, "--api-keys", "k-backend-0123456789abcdef")
    http = wsbroker.HttpPublisher(b.url, api_key="k-backend-0123456789abcdef")
    short = token(["chat.>"], exp_in=2)
    state = {}
    calls = []

    def get_token():
        calls.append(time.monotonic())
        # The short token for the first connection and while it is open (so
        # its refresh gets the same token and sends nothing), a fresh one to
        # reconnect.
        c = state["client"]
        first = c.stats["connects"] == 0
        return short if first or c.state == "open" else token(["chat.>"])

    async def main():
        c = wsbroker.Client(b.ws_url, get_token=get_token, reconnect=FAST)
        state["client"] = c
        errors, got, recoveries, missed = [], [], [], []
        c.on("error", errors.append)
        c.on("recovered", recoveries.append)
        c.on("disconnect", lambda d: missed.extend(http.publish("chat.room1", f"missed{i}") for i in (1, 2)))
        await c.wait_open()
        await c.subscribe("chat.room1", got.append)
        await c.publish("chat.room1", "before")
        await wait_until(lambda: recoveries, timeout=30, what="the session to expire and be recovered")
        assert isinstance(errors[0], wsbroker.TokenExpired) and errors[0].close_code == 4002
        assert recoveries[0].recovered is True and missed == [2, 3]
        await wait_until(lambda: len(got) == 3, what="the replay")
        assert [m.data for m in got] == ["before", "missed1", "missed2"]
        assert c.stats["connects"] == 2
        # After exp, a get_token that keeps returning the same token is asked
        # again at most about once a second, not in a tight loop (the broker
        # closes only after its leeway).
        assert len(calls) < 20, len(calls)
        await c.close()
    run(main())
