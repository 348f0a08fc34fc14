"""The synchronous HTTP client (urllib only): POST /api/publish and
POST /api/request with API keys, its typed errors (401, 403, 404, 504, 400),
and GET /api/presence (PROTOCOL.md 11)."""
from __future__ import annotations

import asyncio
import json

import pytest

import wsbroker
from conftest import run, wait_until

KEY = "k-all-0123456789abcdef"
LIMITED = "k-orders-0123456789abcdef"
KEYS = f"{KEY}:> name=backend,{LIMITED}:orders.> name=orders"
RULES = json.dumps([{"pattern": "orders.>", "presence": True, "publisher": True}])


def test_publish_without_keys(broker):
    assert wsbroker.publish_http(broker.url, "a.b", {"x": 1}) == 1
    # The WebSocket URL works too.
    assert wsbroker.publish_http(broker.ws_url, "a.b", None) == 2


def test_publish_with_api_keys_and_errors(broker_factory):
    b = broker_factory("--api-keys", KEYS, "--topics", RULES)

    async def main():
        async with wsbroker.connect(b.ws_url) as c:
            got = []
            await c.subscribe("orders.>", got.append)
            # The synchronous publisher blocks: run it off the loop, as a WSGI app would.
            seq = await asyncio.to_thread(wsbroker.publish_http, b.url, "orders.42", {"state": "filled"},
                                          api_key=LIMITED)
            assert seq == 1
            await wait_until(lambda: got, what="the HTTP publish")
            assert got[0].data == {"state": "filled"}
            assert got[0].from_ == wsbroker.Member(None, "orders")  # the key's name

            pub = wsbroker.HttpPublisher(b.url, api_key=LIMITED)
            p = await asyncio.to_thread(pub.presence, "orders.42")
            assert p.members == []  # a pattern subscription makes no member
    run(main())

    with pytest.raises(wsbroker.Unauthorized) as e:
        wsbroker.publish_http(b.url, "orders.1", 1)
    assert (e.value.status, e.value.code, e.value.topic) == (401, "unauthorized", "orders.1")
    with pytest.raises(wsbroker.Unauthorized):
        wsbroker.publish_http(b.url, "orders.1", 1, api_key="not-a-key")
    with pytest.raises(wsbroker.Forbidden) as f:
        wsbroker.publish_http(b.url, "billing.1", 1, api_key=LIMITED)
    assert f.value.status == 403
    with pytest.raises(wsbroker.BadTopic) as t:
        wsbroker.publish_http(b.url, "orders.*", 1, api_key=KEY)
    assert t.value.status == 400
    results = wsbroker.HttpPublisher(b.url, KEY).publish_many([("orders.1", 1), {"topic": "$sys.x", "data": 2},
                                                               ("billing.1", 3)])
    assert results[0] == 1 and results[2] == 1
    assert isinstance(results[1], wsbroker.Forbidden) and results[1].topic == "$sys.x"


def test_request_http(broker_factory):
    b = broker_factory("--api-keys", KEYS)

    async def main():
        async with wsbroker.connect(b.ws_url) as device:
            await device.subscribe("orders.price", lambda m: device.reply(m, {"price": 42, "for": m.data}))
            await device.subscribe("orders.silent")
            pub = wsbroker.HttpPublisher(b.url, api_key=KEY)
            r = await asyncio.to_thread(pub.request, "orders.price", "widget", timeout=5)
            assert r.data == {"price": 42, "for": "widget"} and r.from_ == wsbroker.Member(device.client_id, None)
            r2 = await asyncio.to_thread(wsbroker.request_http, b.url, "orders.price", 1, api_key=LIMITED)
            assert r2.data["for"] == 1
            with pytest.raises(wsbroker.NoResponders) as e:
                await asyncio.to_thread(pub.request, "orders.nobody", 1)
            assert e.value.status == 404
            with pytest.raises(wsbroker.RequestTimeout) as t:
                await asyncio.to_thread(pub.request, "orders.silent", 1, timeout=0.05)
            assert t.value.status == 504
            with pytest.raises(wsbroker.Forbidden):
                await asyncio.to_thread(wsbroker.request_http, b.url, "billing.x", 1, api_key=LIMITED)
    run(main())


def test_unreachable_broker_is_a_connect_error(broker_factory):
    b = broker_factory()
    url = b.url
    b.stop()
    with pytest.raises(wsbroker.ConnectError) as e:
        wsbroker.publish_http(url, "a.b", 1, timeout=5)
    assert isinstance(e.value, ConnectionError)
    with pytest.raises(ValueError):
        wsbroker.HttpPublisher("ftp://x/")
