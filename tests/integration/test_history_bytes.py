"""history_max_bytes (issue 15, item 3): the audit's repro, scaled down. One
anonymous client publishes ~60 KB messages to many topics under a history
rule; the history never holds more than the bound (the
wsbroker_history_bytes gauges after every publish ack: the broker drops what
is over the bound before it acks), the least recently published topic loses
its history first, and that topic keeps its seq and epoch: a recovery into
the dropped part answers recovered:false, never a wrong replay."""
from __future__ import annotations

import asyncio
import json

from helpers import (connect, connect_spread, publish, recv_json, request, run, subscribe,
                     worker_of)

RULES = json.dumps([{"pattern": "chat.>", "size": 100}])
BOUND = 1024 * 1024
BIG = "x" * 60_000


def history_bytes(b) -> float:
    return sum(v for k, v in b.metrics().items() if k.startswith("wsbroker_history_bytes{"))


def test_history_bytes_stay_under_the_bound_and_the_lru_topic_goes_first(broker_factory):
    b = broker_factory("--history", RULES, "--history-max-bytes", "1MiB")

    async def go():
        pub = await connect(b.ws_url)
        for i in range(3):
            await publish(pub, "chat.victim", BIG, i + 1)
        sub = await connect(b.ws_url)
        ack = await request(sub, {"type": "subscribe", "topic": "chat.victim", "id": 1})
        assert ack["seq"] == 3, ack
        epoch = ack["epoch"]
        await sub.close()
        held_max = 0.0
        for i in range(40):
            await publish(pub, f"chat.t{i}", {"n": i, "pad": BIG}, 100 + i)
            held = history_bytes(b)
            held_max = max(held_max, held)
            assert held <= BOUND, (i, held)
        assert held_max > BOUND - 2 * len(BIG), held_max  # the bound was reached
        m = b.metrics()
        assert m["wsbroker_history_evicted_messages_total"] >= 3 + 1, m
        assert m["wsbroker_history_evicted_topics_total"] >= 2, m
        # The victim's history is gone, its seq and epoch are not.
        c = await connect(b.ws_url)
        r = await request(c, {"type": "subscribe", "topic": "chat.victim", "id": 2,
                              "since": {"epoch": epoch, "seq": 0}})
        assert r == {"type": "ack", "id": 2, "seq": 3, "epoch": epoch, "recovered": False}, r
        await c.close()
        c = await connect(b.ws_url)
        r = await request(c, {"type": "subscribe", "topic": "chat.victim", "id": 3,
                              "since": {"epoch": epoch, "seq": 3}})
        assert r == {"type": "ack", "id": 3, "seq": 3, "epoch": epoch, "recovered": True}, r
        # The most recently published topics still have theirs.
        r = await request(c, {"type": "subscribe", "topic": "chat.t39", "id": 4, "history": 5})
        assert r["type"] == "ack" and r["seq"] == 1, r
        m = await recv_json(c)
        assert m["type"] == "message" and m["topic"] == "chat.t39" and m["data"]["n"] == 39, m
        # The oldest of the t-topics was evicted before the newer ones: it
        # replays nothing (the pong comes first), chat.t38 still replays.
        r = await request(c, {"type": "subscribe", "topic": "chat.t0", "id": 5, "history": 5})
        assert r["type"] == "ack" and r["seq"] == 1, r
        assert await request(c, {"type": "ping", "id": 6}) == {"type": "pong", "id": 6}
        assert not c.__dict__.get("pending_messages"), c.pending_messages
        r = await request(c, {"type": "subscribe", "topic": "chat.t38", "id": 7, "history": 5})
        assert r["type"] == "ack" and r["seq"] == 1, r
        m = await recv_json(c)
        assert m["topic"] == "chat.t38" and m["data"]["n"] == 38, m
        await c.close()
        await pub.close()

    run(go(), 60)
    b.assert_healthy()


def test_a_topic_evicted_over_history_max_topics_keeps_its_seq(broker_factory):
    """The audit published to 1,100 fresh names: the victim's next subscribe
    saw seq 0. Now it loses its history and epoch, not its seq."""
    b = broker_factory("--history", RULES, "--history-max-topics", "64")

    async def go():
        pub = await connect(b.ws_url)
        for i in range(3):
            await publish(pub, "chat.victim", i, i + 1)
        c = await connect(b.ws_url)
        ack = await request(c, {"type": "subscribe", "topic": "chat.victim", "id": 1})
        epoch = ack["epoch"]
        await c.close()
        for i in range(1100):
            await publish(pub, f"chat.fresh{i}", i, 10 + i)
        assert b.metric("wsbroker_history_evictions_total") >= 1100 - 64
        c = await connect(b.ws_url)
        r = await request(c, {"type": "subscribe", "topic": "chat.victim", "id": 2,
                              "since": {"epoch": epoch, "seq": 3}})
        assert r["type"] == "ack" and r["seq"] == 3 and r["recovered"] is False, r
        assert r["epoch"] != epoch, r
        # The sequence goes on under the new epoch.
        assert (await publish(pub, "chat.victim", "next", 2000))["seq"] == 4
        m = await recv_json(c)
        assert (m["seq"], m["epoch"], m["data"]) == (4, r["epoch"], "next"), m
        await c.close()
        await pub.close()

    run(go(), 60)
    b.assert_healthy()


def test_bound_holds_with_publishers_on_every_worker(broker_factory):
    """Publishers on four workers append to topics of many shards at once;
    each publish's trim runs with no shard lock held, so the shards' drops
    interleave. After the last ack the total is within the bound, and live
    delivery is untouched by eviction: a chat.> subscriber gets everything."""
    b = broker_factory("--history", json.dumps([{"pattern": "chat.>", "size": 50}]),
                       "--history-max-bytes", "256KiB", "--workers", "4",
                       # Everything published (4 x 200 x 8 KB) fits: the Python
                       # subscriber may lag behind the publishers.
                       "--max-outbound-bytes", "16MiB")
    per_publisher, topics = 200, 40
    pad = "y" * 8000

    async def pump(ws, k):
        for i in range(per_publisher):
            await ws.send(json.dumps({"type": "publish", "topic": f"chat.s{(i * 7 + k) % topics}",
                                      "data": {"k": k, "i": i, "pad": pad}, "id": i + 1}))
        acks = 0
        while acks < per_publisher:
            m = await recv_json(ws, 30)
            acks += m.get("type") == "ack"

    async def recover_meanwhile(url, stop):
        c = await connect(url)
        n = 0
        while not stop.is_set():
            n += 1
            r = await request(c, {"type": "subscribe", "topic": f"chat.s{n % topics}", "id": n,
                                  "history": 10})
            assert r["type"] == "ack", r
            await request(c, {"type": "unsubscribe", "topic": f"chat.s{n % topics}", "id": 100000 + n})
        await c.close()

    async def go():
        sub = await connect(b.ws_url)
        await subscribe(sub, "chat.>", 1)
        # One publisher per worker (connect_spread may open extras: closed).
        spread = await connect_spread(b.ws_url, 4, 1)
        pubs = [next(ws for ws in spread if worker_of(ws) == w) for w in range(4)]
        for ws in spread:
            if ws not in pubs:
                await ws.close()
        async def count_live():
            got = 0
            while got < per_publisher * len(pubs):
                m = await recv_json(sub, 30)
                got += m.get("type") == "message"

        live = asyncio.create_task(count_live())
        stop = asyncio.Event()
        rec = asyncio.create_task(recover_meanwhile(b.ws_url, stop))
        await asyncio.gather(*(pump(ws, k) for k, ws in enumerate(pubs)))
        stop.set()
        await rec
        await live
        assert history_bytes(b) <= 256 * 1024
        assert b.metric("wsbroker_history_evicted_messages_total") > 0
        for ws in (sub, *pubs):
            await ws.close()

    run(go(), 120)
    b.assert_healthy()
