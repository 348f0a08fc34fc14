"""The client against a scripted WebSocket server, for what the real broker
does rarely or must never do: another protocol version, close codes after
which the client must not reconnect, a refused `since`, unknown message types,
a server that never says welcome."""
from __future__ import annotations

import asyncio
import json
from typing import Any, Callable, List

import pytest
import websockets

import wsbroker
from conftest import run, wait_until

FAST = wsbroker.Reconnect(min_delay=0.01, max_delay=0.05)
WELCOME = {"type": "welcome", "protocol": 1, "client_id": "n-0-1", "user": None, "node_id": "n",
           "version": "0", "limits": {"max_message_size": 65536, "max_subscriptions": 1000,
                                      "ping_interval_ms": 0}}


class Scripted:
    """A server whose `script(ws, n)` runs each connection (n counts from 1);
    every request it reads is kept in `requests`."""

    def __init__(self, script: Callable[[Any, int], Any]) -> None:
        self.script = script
        self.connections = 0
        self.requests: List[dict] = []

    async def handler(self, ws, *_):
        self.connections += 1
        await self.script(ws, self.connections)

    async def recv(self, ws) -> dict:
        req = json.loads(await ws.recv())
        self.requests.append(req)
        return req

    async def __aenter__(self) -> str:
        self.server = await websockets.serve(self.handler, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}/ws"

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        await self.server.wait_closed()


def test_another_protocol_version_is_refused():
    async def script(ws, n):
        await ws.send(json.dumps({**WELCOME, "protocol": 2}))
        await ws.wait_closed()

    async def main():
        async with Scripted(script) as url:
            with pytest.raises(wsbroker.ProtocolError):
                await wsbroker.connect(url, reconnect=FAST)
    run(main())


@pytest.mark.parametrize("code,error", [(1009, wsbroker.ProtocolError), (1002, wsbroker.ProtocolError),
                                        (4003, wsbroker.OriginNotAllowed), (4050, wsbroker.Refused),
                                        (4001, wsbroker.InvalidToken)])
def test_close_codes_that_forbid_reconnecting(code, error):
    srv: Scripted

    async def script(ws, n):
        await ws.send(json.dumps(WELCOME))
        await ws.close(code, "scripted")

    async def main():
        nonlocal srv
        srv = Scripted(script)
        async with srv as url:
            c = await wsbroker.connect(url, reconnect=FAST, token="fixed")
            closes, errors = [], []
            c.on("close", closes.append)
            c.on("error", errors.append)
            await wait_until(lambda: closes, what="the client to close for good")
            assert c.state == "closed" and isinstance(closes[0].error, error)
            assert closes[0].error.close_code == code and closes[0].error.close_reason == "scripted"
            assert srv.connections == 1
            with pytest.raises(wsbroker.Closed):
                await c.publish("a", 1)
    run(main())


def test_a_slow_consumer_close_reconnects_and_resubscribes():
    srv: Scripted

    async def script(ws, n):
        await ws.send(json.dumps(WELCOME))
        req = await srv.recv(ws)
        await ws.send(json.dumps({"type": "ack", "id": req["id"]}))
        if n == 1:
            await ws.close(1013, "slow consumer")
        else:
            await ws.send(json.dumps({"type": "message", "topic": "a.b", "seq": 1, "data": "again"}))
            await ws.wait_closed()

    async def main():
        nonlocal srv
        srv = Scripted(script)
        async with srv as url:
            c = await wsbroker.connect(url, reconnect=FAST)
            got, disconnects = [], []
            c.on("disconnect", disconnects.append)
            await c.subscribe("a.*", got.append)
            await wait_until(lambda: got, what="the message after the reconnect")
            assert disconnects[0].code == 1013 and srv.connections == 2
            assert [r["topic"] for r in srv.requests] == ["a.*", "a.*"]
            await c.close()
    run(main())


def test_a_refused_since_subscribes_again_without_it_and_unknown_types_are_ignored():
    srv: Scripted

    async def script(ws, n):
        await ws.send(json.dumps(WELCOME))
        req = await srv.recv(ws)
        await ws.send(json.dumps({"type": "error", "id": req["id"], "code": "bad_since", "message": "no"}))
        req = await srv.recv(ws)
        await ws.send(json.dumps({"type": "ack", "id": req["id"], "future_member": 1}))
        await ws.send(json.dumps({"type": "from_the_future", "x": 1}))
        await ws.send(json.dumps({"type": "message", "topic": "t", "seq": 8, "data": 1, "future_member": 2}))
        await ws.wait_closed()

    async def main():
        nonlocal srv
        srv = Scripted(script)
        async with srv as url:
            c = await wsbroker.connect(url, reconnect=FAST)
            got = []
            res = await c.subscribe("t", got.append, since={"epoch": "e", "seq": 7}).ready
            assert res.recovered is None
            await wait_until(lambda: got, what="the message")
            assert got[0].data == 1 and got[0].raw["future_member"] == 2
            assert srv.requests[0]["since"] == {"epoch": "e", "seq": 7} and "since" not in srv.requests[1]
            await c.close()
    run(main())


def test_a_server_that_never_says_welcome_is_abandoned():
    async def script(ws, n):
        if n > 1:
            await ws.send(json.dumps(WELCOME))
        await ws.wait_closed()

    async def main():
        srv = Scripted(script)
        async with srv as url:
            disconnects = []
            c = wsbroker.Client(url, reconnect=FAST, connect_timeout=0.2)
            c.on("disconnect", disconnects.append)
            await c.wait_open()
            assert srv.connections == 2 and disconnects[0].reason == "connect timeout"
            await c.close()
    run(main())


def test_the_offline_queue_is_bounded_and_sent_in_order_after_welcome():
    srv: Scripted
    go = None

    async def script(ws, n):
        await go.wait()  # no welcome until the test has queued its publishes
        await ws.send(json.dumps(WELCOME))
        for _ in range(2):
            req = await srv.recv(ws)
            await ws.send(json.dumps({"type": "ack", "id": req["id"], "seq": req["data"]}))
        await ws.wait_closed()

    async def main():
        nonlocal srv, go
        go = asyncio.Event()
        srv = Scripted(script)
        async with srv as url:
            c = wsbroker.Client(url, reconnect=FAST, max_queue=2)
            first = asyncio.ensure_future(c.publish("a", 1))
            second = asyncio.ensure_future(c.publish("a", 2))
            await wait_until(lambda: c.queued == 2, what="two queued publishes")
            with pytest.raises(wsbroker.QueueFull):
                await c.publish("a", 3)
            go.set()
            assert (await first, await second) == (1, 2)
            assert [r["data"] for r in srv.requests] == [1, 2]
            await c.close()
    run(main())
