"""Several workers (one event loop per thread, SO_REUSEPORT listeners): every
subscriber, whichever worker holds it, gets every message exactly once and in
order; seq stays unique and increasing per topic across workers; the workers
default to one per online CPU; across workers a publisher is paused while some
inbox is behind, and a full inbox drops instead of blocking the publisher."""
from __future__ import annotations

import asyncio
import json
import os
import re
import threading
import time
from pathlib import Path

import pytest

import wsraw
from helpers import (connect, connect_spread, metric_names_from_text, publish, recv_json, run,
                     send_json, subscribe, wait_for, worker_of)

WORKERS = 4
PER_WORKER = 3  # subscribers on each worker, at least


def connections_per_worker(broker) -> list:
    per = broker.metrics()
    return [per.get(f'wsbroker_worker_connections{{worker="{i}"}}', 0.0) for i in range(WORKERS)]


async def open_subscribers(broker, patterns):
    """Subscribers on every worker: at least PER_WORKER each (connect_spread
    opens connections until the kernel has put that many on each)."""
    subs = await connect_spread(broker.ws_url, WORKERS, PER_WORKER)
    for ws in subs:
        for i, p in enumerate(patterns):
            await subscribe(ws, p, i + 1)
    on = {worker_of(ws) for ws in subs}
    assert on == set(range(WORKERS)), on
    # The broker's own per-worker gauges agree that every worker holds some.
    assert all(n >= PER_WORKER for n in connections_per_worker(broker)), connections_per_worker(broker)
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
        # Publishers on every worker too: each worker takes seqs from the shared table.
        pubs = await connect_spread(broker.ws_url, WORKERS, 1)

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
        # A drop is counted for the worker that missed the message, never the
        # publisher's own (it delivers its own inbox as it publishes); the
        # total is the sum of the per-worker series.
        m = broker.metrics()
        per = [m[f'wsbroker_worker_inbox_dropped_total{{worker="{i}"}}'] for i in range(WORKERS)]
        assert sum(per) == m["wsbroker_inbox_dropped_total"], (per, m["wsbroker_inbox_dropped_total"])
        assert per[worker_of(pub)] == 0, (worker_of(pub), per)
        # Each subscriber gets an increasing subsequence; a final message
        # published once the flood is over reaches everyone. When the flood is
        # over depends on the machine's speed (an inbox still full drops a
        # "last" too, by the policy under test), so "last" is published again
        # until each subscriber has seen one, instead of after a fixed pause.
        lasts = 0

        async def publish_last():
            nonlocal lasts
            lasts += 1
            await publish(pub, "flood", "last", 10**7 + lasts)

        await publish_last()
        for ws in subs:
            last_seq = 0
            while True:
                try:
                    m = await recv_json(ws, 0.5)
                except asyncio.TimeoutError:
                    assert lasts < 200, "no \"last\" reached a subscriber after the flood"
                    await publish_last()
                    continue
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


def test_workers_default_to_the_online_cpus(broker_factory, monkeypatch):
    """`workers` unset (or 0): one worker per online CPU, each with its own
    listener, all alive; every one of them accepts connections."""
    monkeypatch.delenv("WSBROKER_TEST_WORKERS", raising=False)  # no --workers at all
    cpus = os.sysconf("SC_NPROCESSORS_ONLN")
    b = broker_factory()
    argv = open(f"/proc/{b.pid}/cmdline").read().split("\0")
    assert not any(a.startswith("--workers") for a in argv), argv
    assert b.metric("wsbroker_workers") == cpus
    body = b.get("/healthz").json()
    assert [w["id"] for w in body["workers"]] == list(range(cpus))
    assert all(w["alive"] for w in body["workers"])

    async def go():
        conns = await connect_spread(b.ws_url, cpus, 1)
        for ws in conns:
            await ws.close()

    run(go(), 60)


class BurstPublisher:
    """Publishes a burst of messages in one write: WebSocket frames, or one
    POST /api/publish with an array (on a keep-alive connection)."""

    def __init__(self, broker, ingress):
        self.ingress = ingress
        self.conn = broker.raw_ws() if ingress == "ws" else broker.conn()

    def send(self, items) -> None:
        if self.ingress == "ws":
            blob = b"".join(wsraw.text_frame({"type": "publish", "topic": "press.t", "data": d})
                            for d in items[:-1])
            blob += wsraw.text_frame({"type": "publish", "topic": "press.t", "data": items[-1], "id": 1})
            self.conn.send(blob)
            ack = self.conn.recv_json(60)
            assert ack["type"] == "ack" and ack["id"] == 1, ack
            return
        body = json.dumps([{"topic": "press.t", "data": d} for d in items]).encode()
        self.conn.send(b"POST /api/publish HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                       b"Content-Length: %d\r\n\r\n" % len(body) + body)
        r = wsraw.read_response(self.conn, 60)
        assert r.status == 200 and all("seq" in x for x in r.json()["results"]), r


def pin_to_one_cpu(broker):
    """Puts every thread of the broker on one CPU, so that while one worker
    runs the others do not: their inboxes fill while publishers on the
    running one go on, whatever the machine's core count."""
    cpu = min(os.sched_getaffinity(0))
    tasks = Path(f"/proc/{broker.pid}/task")
    wait_for(lambda: len(list(tasks.iterdir())) >= WORKERS, 10, what="the worker threads")
    for tid in tasks.iterdir():
        os.sched_setaffinity(int(tid.name), {cpu})


@pytest.mark.parametrize("ingress", ["ws", "http"])
@pytest.mark.broker_args("--workers", "4", "--worker-queue-size", "16384")
def test_flooding_publishers_are_paused_not_dropped(broker, ingress):
    """Policy, the normal case: a publisher (WebSocket or HTTP keep-alive)
    that leaves some worker more than 256 messages behind stops being read
    (counted in wsbroker_publisher_pauses_total) until every worker is back
    under 64, so nothing is dropped: every subscriber on every worker gets
    every publisher's burst whole and in order.

    Publishers on several workers each send a burst of 1,500 publishes in one
    write (HTTP: one request) while the broker's threads share one CPU, so
    inboxes fill. An inbox then holds at most, per publisher, the high mark
    plus what it had already read (one 64 KiB read, ~1,300 WebSocket
    publishes, or one request): far under the 16,384-message inboxes, so a
    paused publisher cannot overflow one. Bursts go on (at most 10) until
    the broker has paused a publisher."""
    burst, max_bursts = 1500, 10
    pin_to_one_cpu(broker)

    async def scenario():
        subs = await open_subscribers(broker, ["press.t"])
        pubs = [BurstPublisher(broker, ingress) for _ in range(2 * WORKERS)]
        bursts = 0
        while bursts < max_bursts and broker.metric("wsbroker_publisher_pauses_total") == 0:
            sent = [[[k, bursts, i] for i in range(burst)] + [[k, bursts, "end"]] for k in range(len(pubs))]
            await asyncio.gather(*(asyncio.to_thread(p.send, items) for p, items in zip(pubs, sent)))
            for ws in subs:
                data = [m["data"] for m in await collect(ws, len(pubs) * (burst + 1), 60)]
                for k, items in enumerate(sent):
                    mine = [d for d in data if d[0] == k]
                    assert mine == items, f"burst {bursts}, publisher {k}: {len(mine)} on worker {worker_of(ws)}"
            bursts += 1
        for ws in subs:
            await ws.close()
        for p in pubs:
            p.conn.close()

    run(scenario(), 300)
    m = broker.metrics()
    assert m["wsbroker_publisher_pauses_total"] > 0, f"no pause in {max_bursts} bursts"
    assert m["wsbroker_inbox_dropped_total"] == 0


def test_readme_threads_section_cites_metrics_that_exist(broker):
    """The metric names README.md's "Threads and performance" section gives
    for the workers are rendered by /metrics."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Threads and performance", 1)[1].split("\n## ", 1)[0]
    cited = set(re.findall(r"\b(wsbroker_[a-z_]+)", section))
    assert "wsbroker_publisher_pauses_total" in cited, cited
    rendered = metric_names_from_text(broker.get("/metrics").body.decode())
    assert sorted(cited - rendered) == []


@pytest.mark.broker_args("--workers", "1")
def test_a_pipelining_publisher_yields_to_the_other_connections(broker):
    """A connection that has read 128 KiB in a row is not read again before
    the end of its worker's loop turn (wsbroker_read_yields_total), and its
    publishes are all still taken, in order. Its topic has no subscriber, so
    no inbox fills and nothing else would pause it; meanwhile another
    connection's requests are answered and the publisher's last publish is
    acknowledged after all of its others. Bursts of 1 MiB go on until the
    broker has yielded once (the kernel hands the broker 128 KiB in a row as
    soon as it reads slower than the publisher writes)."""
    flood = wsraw.ws_connect(broker.host, broker.port)
    other = wsraw.ws_connect(broker.host, broker.port)
    frame = wsraw.text_frame({"type": "publish", "topic": "nobody.here", "data": "x" * 64})
    burst = frame * (1024 * 1024 // len(frame))
    deadline = time.monotonic() + 60
    rid = 0
    while broker.metric("wsbroker_read_yields_total") == 0 and time.monotonic() < deadline:
        rid += 1
        sender = threading.Thread(target=flood.send, args=(burst,))
        sender.start()
        other.send_json({"type": "publish", "topic": "other.topic", "data": rid, "id": rid})
        ack = other.recv_json(timeout=60)
        assert ack["type"] == "ack" and ack["id"] == rid, ack
        sender.join(60)
        flood.send_json({"type": "publish", "topic": "nobody.here", "data": rid, "id": rid})
        ack = flood.recv_json(timeout=60)
        assert ack["type"] == "ack" and ack["id"] == rid, ack
    assert broker.metric("wsbroker_read_yields_total") > 0
    flood.close()
    other.close()
