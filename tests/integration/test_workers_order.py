"""Several worker threads (SO_REUSEPORT listeners, cross-worker fan-out):
ordering, once-per-connection delivery and replies-as-barriers must hold
whichever workers the publisher and the subscribers landed on (PROTOCOL.md
section 6). Connections are spread by the kernel (SO_REUSEPORT), so each
test opens connections until the broker's welcomes show that every worker
holds some of them (helpers.connect_spread)."""
from __future__ import annotations

import asyncio

import pytest

from helpers import barrier, connect, connect_spread, publish, recv_json, run, send_json, subscribe

WORKERS = ["1", "2", "4"]


@pytest.mark.parametrize("workers", WORKERS)
def test_all_subscribers_see_one_topic_in_the_same_seq_order(broker_factory, workers):
    b = broker_factory("--workers", workers)
    per_pub = 150

    async def go():
        subs = await connect_spread(b.ws_url, int(workers), 2)
        for s in subs:
            await subscribe(s, "race.t", 1)
        # A publisher on every worker: each takes seqs from the shared table.
        pubs = await connect_spread(b.ws_url, int(workers), 1)
        n_pubs = len(pubs)

        async def pump(k, ws):
            for i in range(per_pub):
                await send_json(ws, {"type": "publish", "topic": "race.t", "data": [k, i]})
            await barrier(ws)

        await asyncio.gather(*(pump(k, ws) for k, ws in enumerate(pubs)))
        total = n_pubs * per_pub
        seen = []
        for s in subs:
            got = [await recv_json(s, 10) for _ in range(total)]
            assert await barrier(s) == [], "more messages than published"
            seen.append(got)
        first = [(m["seq"], tuple(m["data"])) for m in seen[0]]
        # seq is 1..N in delivery order, and every subscriber saw the same sequence.
        assert [q for q, _ in first] == list(range(1, total + 1))
        for got in seen[1:]:
            assert [(m["seq"], tuple(m["data"])) for m in got] == first
        # Each publisher's messages keep their publish order.
        for k in range(n_pubs):
            assert [d[1] for _, d in first if d[0] == k] == list(range(per_pub))
        for ws in subs + pubs:
            await ws.close()

    run(go(), timeout=90)


@pytest.mark.parametrize("workers", WORKERS)
def test_ping_after_acked_publish_is_answered_after_the_message(broker_factory, workers):
    """Replies never overtake messages: once a publish is acked, a later ping
    from any subscriber on any worker is answered after that message."""
    b = broker_factory("--workers", workers)

    async def go():
        subs = await connect_spread(b.ws_url, int(workers), 2)
        for s in subs:
            await subscribe(s, "barrier.>", 1)
        pub = await connect(b.ws_url)
        for i in range(100):
            await publish(pub, f"barrier.{i % 3}", i, i + 1)
            for s in subs:
                got = await barrier(s, 10_000 + i)
                assert [m["data"] for m in got] == [i], (i, got)
        for ws in subs + [pub]:
            await ws.close()

    run(go(), timeout=90)


@pytest.mark.parametrize("workers", WORKERS)
def test_overlapping_patterns_once_per_connection_on_every_worker(broker_factory, workers):
    b = broker_factory("--workers", workers)

    async def go():
        subs = await connect_spread(b.ws_url, int(workers), 2)
        for s in subs:
            for j, p in enumerate(["w.x.y", "w.*.y", "w.>", ">", "*.x.*"]):
                await subscribe(s, p, j + 1)
        r = b.post("/api/publish", [{"topic": "w.x.y", "data": 1}, {"topic": "w.x.z", "data": 2},
                                    {"topic": "other", "data": 3}])
        assert r.status == 200 and r.json() == {"results": [{"seq": 1}, {"seq": 1}, {"seq": 1}]}, r
        for s in subs:
            got = [await recv_json(s) for _ in range(3)]
            assert [(m["topic"], m["data"]) for m in got] == [("w.x.y", 1), ("w.x.z", 2), ("other", 3)]
            assert await barrier(s) == []
        m = b.metrics()
        assert m["wsbroker_subscriptions"] == len(subs) * 5
        assert m["wsbroker_websocket_connections"] == len(subs)
        for s in subs:
            await s.close()

    run(go())


@pytest.mark.parametrize("workers", ["1", "3"])
def test_sigterm_with_clients_on_several_workers(broker_factory, workers):
    b = broker_factory("--workers", workers)

    async def go():
        clients = await connect_spread(b.ws_url, int(workers), 2)
        b.signal()
        for ws in clients:
            await asyncio.wait_for(ws.wait_closed(), 10)
        return {ws.close_code for ws in clients}

    assert run(go()) == {1001}
    b.wait_exit(10)
    b.check_exit(0)
