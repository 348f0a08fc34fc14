"""Several workers (one event loop per thread, SO_REUSEPORT listeners): every
subscriber, whichever worker holds it, gets every message exactly once and in
order; seq stays unique and increasing per topic across workers; a full worker
inbox drops instead of blocking the publisher."""
from __future__ import annotations

import asyncio
import json

import pytest

from helpers import connect, publish, recv_json, run, send_json, subscribe, wait_for

N_SUBS = 24


def workers_with_connections(broker) -> int:
    text = broker.get("/metrics").body.decode()
    busy = 0
    for line in text.splitlines():
        if line.startswith("wsbroker_worker_connections{") and float(line.split()[-1]) > 0:
            busy += 1
    return busy


async def open_subscribers(broker, patterns):
    subs = []
    for _ in range(N_SUBS):
        ws = await connect(broker.ws_url)
        for i, p in enumerate(patterns):
            await subscribe(ws, p, i + 1)
        subs.append(ws)
    return subs


async def collect(ws, n, timeout=20.0):
    out = []
    while len(out) < n:
        m = await recv_json(ws, timeout)
        if m["type"] == "message":
            out.append(m)
    return out


@pytest.mark.broker_args("--workers", "4")
def test_subscribers_on_every_worker_get_each_message_once_in_order(broker):
    n_msgs = 400

    async def scenario():
        # Overlapping patterns: each message must still arrive once per connection.
        subs = await open_subscribers(broker, ["order.t", "order.*", "order.>"])
        assert workers_with_connections(broker) >= 2, "connections did not spread over workers"
        pub = await connect(broker.ws_url)
        for i in range(n_msgs):
            await send_json(pub, {"type": "publish", "topic": "order.t", "data": i})
        await publish(pub, "order.t", "end", 10**6)
        results = await asyncio.gather(*(collect(ws, n_msgs + 1) for ws in subs))
        for got in results:
            assert [m["data"] for m in got] == list(range(n_msgs)) + ["end"]
            seqs = [m["seq"] for m in got]
            assert seqs == list(range(1, n_msgs + 2)), seqs[:10]
        for ws in subs + [pub]:
            await ws.close()

    run(scenario(), 60)


@pytest.mark.broker_args("--workers", "4")
def test_publishers_on_different_workers_share_one_increasing_seq(broker):
    per_pub = 300

    async def scenario():
        subs = await open_subscribers(broker, ["shared.topic"])
        pubs = [await connect(broker.ws_url) for _ in range(6)]
        assert workers_with_connections(broker) >= 2

        async def pump(k, ws):
            for i in range(per_pub):
                await send_json(ws, {"type": "publish", "topic": "shared.topic", "data": [k, i]})
            await publish(ws, "shared.topic", [k, "done"], 10**6 + k)

        await asyncio.gather(*(pump(k, ws) for k, ws in enumerate(pubs)))
        total = len(pubs) * (per_pub + 1)
        results = await asyncio.gather(*(collect(ws, total) for ws in subs))
        first = [m["seq"] for m in results[0]]
        assert sorted(first) == list(range(1, total + 1)), "seq not unique or has gaps"
        for got in results:
            seqs = [m["seq"] for m in got]
            # The shard lock orders every worker's inbox the same way: all
            # subscribers see one sequence, strictly increasing.
            assert seqs == first
            for k in range(len(pubs)):
                mine = [m["data"][1] for m in got if m["data"][0] == k]
                assert mine == list(range(per_pub)) + ["done"], f"publisher {k} out of order"
        for ws in subs + pubs:
            await ws.close()

    run(scenario(), 90)


@pytest.mark.broker_args("--workers", "4")
def test_http_publish_reaches_subscribers_on_every_worker(broker):
    async def scenario():
        subs = await open_subscribers(broker, ["http.>"])
        for i in range(5):
            r = broker.post("/api/publish", {"topic": "http.x", "data": {"i": i}})
            assert r.status == 200 and r.json() == {"seq": i + 1}, r
        for ws in subs:
            got = await collect(ws, 5)
            assert [m["data"]["i"] for m in got] == [0, 1, 2, 3, 4]
            await ws.close()

    run(scenario(), 60)


@pytest.mark.broker_args("--workers", "4")
def test_healthz_reports_every_worker_alive(broker):
    r = broker.get("/healthz")
    assert r.status == 200
    body = r.json()
    assert body["status"] == "ok"
    assert [w["id"] for w in body["workers"]] == [0, 1, 2, 3]
    assert all(w["alive"] for w in body["workers"])
    assert broker.metric("wsbroker_workers") == 4


@pytest.mark.broker_args("--workers", "4", "--worker-queue-size", "16")
def test_full_worker_inbox_drops_instead_of_blocking_the_publisher(broker):
    """Policy: a worker whose inbox is full does not get the message (counted
    in wsbroker_inbox_dropped_total); the publisher is never blocked, every
    publish is acked, and what each subscriber does get stays in seq order."""
    n_msgs = 20000

    async def scenario():
        subs = await open_subscribers(broker, ["flood"])
        pub = await connect(broker.ws_url)
        # One burst: the publishing worker pushes far faster than the others
        # wake up to drain 16-slot inboxes.
        for i in range(n_msgs):
            await pub.send(json.dumps({"type": "publish", "topic": "flood", "data": i, "id": i}))
        acks = 0
        while acks < n_msgs:
            m = await recv_json(pub, 30)
            if m["type"] == "ack":
                acks += 1
        assert acks == n_msgs
        wait_for(lambda: broker.metric("wsbroker_inbox_dropped_total") > 0, 5, 0.05,
                 "an inbox drop")
        # Each subscriber gets an increasing subsequence; a final message
        # published once the flood is over reaches everyone.
        await asyncio.sleep(0.5)
        await publish(pub, "flood", "last", 10**7)
        for ws in subs:
            last_seq = 0
            while True:
                m = await recv_json(ws, 20)
                if m["type"] != "message":
                    continue
                assert m["seq"] > last_seq
                last_seq = m["seq"]
                if m["data"] == "last":
                    break
            await ws.close()
        await pub.close()

    run(scenario(), 120)
    broker.assert_healthy()
