"""Subscribe / publish / unsubscribe with the `websockets` client: wildcards,
once-per-connection delivery, acks and per-topic sequence numbers."""
from __future__ import annotations

import pytest

from helpers import barrier, connect, publish, recv_json, request, run, send_json, subscribe


def pubsub(broker, patterns, topics, data=None):
    """Subscribes one connection to `patterns`, publishes each of `topics` from
    another, and returns the topics the subscriber received (in order)."""

    async def go():
        sub = await connect(broker.ws_url)
        pub = await connect(broker.ws_url)
        for i, p in enumerate(patterns):
            await subscribe(sub, p, i + 1)
        for i, t in enumerate(topics):
            await publish(pub, t, data if data is not None else i, 100 + i)
        got = await barrier(sub)
        await sub.close()
        await pub.close()
        return got

    msgs = run(go())
    for m in msgs:
        assert m["type"] == "message", m
    return [m["topic"] for m in msgs]


TOPICS = ["a", "a.b", "a.c", "a.b.c", "a.b.c.d", "b.b", "x.a.b", "a.x.c"]


@pytest.mark.parametrize("pattern,expected", [
    ("a.b", ["a.b"]),
    ("a.*", ["a.b", "a.c"]),
    ("a.>", ["a.b", "a.c", "a.b.c", "a.b.c.d", "a.x.c"]),
    ("*.b", ["a.b", "b.b"]),
    ("a.*.c", ["a.b.c", "a.x.c"]),
    ("*", ["a"]),
    (">", TOPICS),
    ("a.b.>", ["a.b.c", "a.b.c.d"]),
    ("*.*.*", ["a.b.c", "x.a.b", "a.x.c"]),
    ("*.>", ["a.b", "a.c", "a.b.c", "a.b.c.d", "b.b", "x.a.b", "a.x.c"]),
    ("nomatch", []),
])
def test_wildcard_pattern_matches(broker, pattern, expected):
    assert pubsub(broker, [pattern], TOPICS) == expected


def test_message_delivered_once_per_connection_with_overlapping_patterns(broker):
    patterns = ["a.b", "a.*", "a.>", "*.b", ">", "*.*", "a.b.>"]
    got = pubsub(broker, patterns, ["a.b", "a.b.c", "z"])
    assert got == ["a.b", "a.b.c", "z"]


def test_duplicate_subscribe_is_acked_and_still_delivers_once(broker):
    assert pubsub(broker, ["a.b", "a.b", "a.b"], ["a.b"]) == ["a.b"]


def test_message_frame_shape_and_data_roundtrip(broker):
    values = [None, True, False, 0, -17, 2 ** 53, 1.5, "text", "héllo € 😀 \u2028",
              [1, [2, {"x": None}]], {"nested": {"k": [1, 2, 3]}, "e": {}}, [], ""]

    async def go():
        sub = await connect(broker.ws_url)
        pub = await connect(broker.ws_url)
        await subscribe(sub, "data.>", 1)
        for i, v in enumerate(values):
            ack = await publish(pub, f"data.t{i}", v, i + 1)
            m = await recv_json(sub)
            assert m == {"type": "message", "topic": f"data.t{i}", "seq": ack["seq"], "data": v}, m
        await sub.close()
        await pub.close()

    run(go())


def test_unsubscribe_stops_delivery(broker):
    async def go():
        sub = await connect(broker.ws_url)
        pub = await connect(broker.ws_url)
        await subscribe(sub, "u.*", 1)
        await publish(pub, "u.x", 1, 1)
        assert (await recv_json(sub))["data"] == 1
        r = await request(sub, {"type": "unsubscribe", "topic": "u.*", "id": 2})
        assert r == {"type": "ack", "id": 2}
        await publish(pub, "u.x", 2, 2)
        assert await barrier(sub) == []
        await sub.close()
        await pub.close()

    run(go())


def test_unsubscribing_one_of_two_overlapping_patterns_keeps_the_other(broker):
    async def go():
        sub = await connect(broker.ws_url)
        pub = await connect(broker.ws_url)
        await subscribe(sub, "o.*", 1)
        await subscribe(sub, "o.>", 2)
        assert (await request(sub, {"type": "unsubscribe", "topic": "o.*", "id": 3}))["type"] == "ack"
        await publish(pub, "o.x", "still", 1)
        got = await barrier(sub)
        assert [m["data"] for m in got] == ["still"]
        assert (await request(sub, {"type": "unsubscribe", "topic": "o.>", "id": 4}))["type"] == "ack"
        await publish(pub, "o.x", "gone", 2)
        assert await barrier(sub) == []
        await sub.close()
        await pub.close()

    run(go())


def test_unsubscribe_unknown_pattern_is_not_subscribed_with_id(broker):
    async def go():
        ws = await connect(broker.ws_url)
        r = await request(ws, {"type": "unsubscribe", "topic": "never.subscribed", "id": 42})
        assert r["type"] == "error" and r["id"] == 42 and r["code"] == "not_subscribed", r
        await ws.close()

    run(go())


def test_unsubscribe_is_exact_pattern_not_match(broker):
    # Unsubscribing "a.b" does not remove the subscription "a.*".
    async def go():
        ws = await connect(broker.ws_url)
        await subscribe(ws, "a.*", 1)
        r = await request(ws, {"type": "unsubscribe", "topic": "a.b", "id": 2})
        assert r["code"] == "not_subscribed", r
        await ws.close()

    run(go())


def test_publish_ack_seq_increases_per_topic(broker):
    async def go():
        sub = await connect(broker.ws_url)
        pub = await connect(broker.ws_url)
        await subscribe(sub, "seq.>", 1)
        seqs = {"seq.a": [], "seq.b": []}
        order = ["seq.a", "seq.a", "seq.b", "seq.a", "seq.b", "seq.b", "seq.b"]
        for i, t in enumerate(order):
            seqs[t].append((await publish(pub, t, i, i + 1))["seq"])
        assert seqs["seq.a"] == [1, 2, 3]
        assert seqs["seq.b"] == [1, 2, 3, 4]
        got = await barrier(sub)
        assert [(m["topic"], m["seq"], m["data"]) for m in got] == [
            (t, (seqs[t][order[: i + 1].count(t) - 1]), i) for i, t in enumerate(order)]
        await sub.close()
        await pub.close()

    run(go())


def test_seq_is_shared_between_websocket_and_http_publishers(broker):
    async def go():
        pub = await connect(broker.ws_url)
        assert (await publish(pub, "mixed", 1, 1))["seq"] == 1
        return pub

    async def go2(pub):
        assert (await publish(pub, "mixed", 3, 2))["seq"] == 3
        await pub.close()

    async def both():
        pub = await go()
        r = broker.post("/api/publish", {"topic": "mixed", "data": 2})
        assert r.status == 200 and r.json()["seq"] == 2, r
        await go2(pub)

    run(both())


def test_publish_without_id_gets_no_ack(broker):
    async def go():
        sub = await connect(broker.ws_url)
        pub = await connect(broker.ws_url)
        await subscribe(sub, "noid", 1)
        await send_json(pub, {"type": "publish", "topic": "noid", "data": "x"})
        await send_json(pub, {"type": "subscribe", "topic": "noid2"})
        await send_json(pub, {"type": "unsubscribe", "topic": "noid2"})
        # Nothing but the pong comes back to the publisher.
        assert await barrier(pub) == []
        assert [m["data"] for m in await barrier(sub)] == ["x"]
        await sub.close()
        await pub.close()

    run(go())


def test_ping_pong_with_and_without_id(broker):
    async def go():
        ws = await connect(broker.ws_url)
        await send_json(ws, {"type": "ping", "id": 0})
        assert await recv_json(ws) == {"type": "pong", "id": 0}
        await send_json(ws, {"type": "ping"})
        assert await recv_json(ws) == {"type": "pong"}
        await send_json(ws, {"type": "ping", "id": 2 ** 53 - 1, "extra": "ignored"})
        assert await recv_json(ws) == {"type": "pong", "id": 2 ** 53 - 1}
        await ws.close()

    run(go())


def test_publisher_subscribed_to_its_own_topic_receives_its_message(broker):
    async def go():
        ws = await connect(broker.ws_url)
        await subscribe(ws, "self.>", 1)
        await send_json(ws, {"type": "publish", "topic": "self.x", "data": 7, "id": 2})
        got = [await recv_json(ws), await recv_json(ws)]
        types = sorted(m["type"] for m in got)
        assert types == ["ack", "message"], got
        await ws.close()

    run(go())


def test_many_messages_arrive_in_publish_order(broker):
    n = 500

    async def go():
        sub = await connect(broker.ws_url)
        pub = await connect(broker.ws_url)
        await subscribe(sub, "order", 1)
        for i in range(n):
            await send_json(pub, {"type": "publish", "topic": "order", "data": i})
        await barrier(pub)
        got = []
        while len(got) < n:
            got.append(await recv_json(sub))
        assert [m["data"] for m in got] == list(range(n))
        assert [m["seq"] for m in got] == list(range(1, n + 1))
        await sub.close()
        await pub.close()

    run(go())


def test_every_subscriber_gets_the_message(broker):
    async def go():
        subs = [await connect(broker.ws_url) for _ in range(20)]
        for i, s in enumerate(subs):
            await subscribe(s, "fan.*" if i % 2 else "fan.>", 1)
        pub = await connect(broker.ws_url)
        await publish(pub, "fan.out", {"hello": "all"}, 1)
        for s in subs:
            m = await recv_json(s)
            assert m == {"type": "message", "topic": "fan.out", "seq": 1, "data": {"hello": "all"}}
        for s in subs + [pub]:
            await s.close()

    run(go())


@pytest.mark.broker_args("--max-subscriptions", "2")
def test_max_subscriptions_gives_limit_exceeded_with_id(broker):
    async def go():
        ws = await connect(broker.ws_url)
        assert ws.welcome["limits"]["max_subscriptions"] == 2
        await subscribe(ws, "l.1", 1)
        await subscribe(ws, "l.2", 2)
        r = await request(ws, {"type": "subscribe", "topic": "l.3", "id": 3})
        assert r["type"] == "error" and r["id"] == 3 and r["code"] == "limit_exceeded", r
        # Re-subscribing an existing pattern is not a new subscription.
        await subscribe(ws, "l.1", 4)
        # After an unsubscribe there is room again.
        assert (await request(ws, {"type": "unsubscribe", "topic": "l.2", "id": 5}))["type"] == "ack"
        await subscribe(ws, "l.3", 6)
        await ws.close()

    run(go())


def test_reserved_topics_may_be_subscribed_but_not_published(broker):
    async def go():
        ws = await connect(broker.ws_url)
        await subscribe(ws, "$sys.node.>", 1)  # the default anonymous permissions
        r = await request(ws, {"type": "publish", "topic": "$sys.x", "data": 1, "id": 2})
        assert r["type"] == "error" and r["id"] == 2 and r["code"] == "forbidden", r
        await ws.close()

    run(go())


def test_topic_length_and_depth_limits(broker):
    async def go():
        ws = await connect(broker.ws_url)
        ok256 = ".".join(["a" * 127, "b" * 128])
        assert len(ok256) == 256
        await subscribe(ws, ok256, 1)
        r = await request(ws, {"type": "subscribe", "topic": ok256 + "c", "id": 2})
        assert r["code"] == "bad_topic" and r["id"] == 2, r
        await subscribe(ws, ".".join(["t"] * 32), 3)
        r = await request(ws, {"type": "subscribe", "topic": ".".join(["t"] * 33), "id": 4})
        assert r["code"] == "bad_topic" and r["id"] == 4, r
        await ws.close()

    run(go())


def test_unicode_topic_tokens_work(broker):
    assert pubsub(broker, ["prix.*"], ["prix.€uro", "prix.日本"]) == ["prix.€uro", "prix.日本"]


def test_subscriptions_die_with_the_connection(broker):
    async def go():
        sub = await connect(broker.ws_url)
        await subscribe(sub, "gone.>", 1)
        await sub.close()

    run(go())
    from helpers import wait_for
    wait_for(lambda: broker.metric("wsbroker_subscriptions") == 0, 5, 0.05, "subscriptions to drop to 0")
    assert broker.metric("wsbroker_subscription_patterns") == 0
    before = broker.metric("wsbroker_messages_delivered_total")
    r = broker.post("/api/publish", {"topic": "gone.x", "data": 1})
    assert r.status == 200 and r.json() == {"seq": 1}, r
    assert broker.metric("wsbroker_messages_delivered_total") == before


def test_since_on_exact_topic_without_history_acks_recovered_false_and_delivers_live(broker):
    async def go():
        sub = await connect(broker.ws_url)
        pub = await connect(broker.ws_url)
        r = await request(sub, {"type": "subscribe", "topic": "hist.t", "id": 1,
                                "since": {"epoch": "abc", "seq": 41}})
        assert r == {"type": "ack", "id": 1, "recovered": False}, r
        await publish(pub, "hist.t", "live", 2)
        m = await recv_json(sub)
        assert m["data"] == "live" and m["seq"] == 1
        await sub.close()
        await pub.close()

    run(go())


@pytest.mark.broker_args("--workers", "1")
def test_frames_of_one_loop_turn_go_out_in_one_write_per_subscriber(broker):
    """Corking: the 100 messages of one HTTP array publish are fanned out in
    one loop turn, so each subscriber gets them in one socket write (one
    uv_try_write / writev), not 100. And chunks (issue 17 item 1): the
    frames of that run of one topic share chunks, so the write is a handful
    of iovecs, not 100. Counted with wsbroker_write_calls_total and the
    buffers-per-write histogram."""
    subs = []
    for _ in range(3):
        s = broker.raw_ws()
        s.send_json({"type": "subscribe", "topic": "cork.t", "id": 1})
        assert s.recv_json() == {"type": "ack", "id": 1}
        subs.append(s)
    before = broker.metrics()
    r = broker.post("/api/publish", [{"topic": "cork.t", "data": i} for i in range(100)])
    assert r.status == 200 and len(r.json()["results"]) == 100, r
    for s in subs:
        assert [s.recv_json()["data"] for _ in range(100)] == list(range(100))
    after = broker.metrics()
    writes = after["wsbroker_write_calls_total"] - before["wsbroker_write_calls_total"]
    # 3 subscribers + the publish response + the first /metrics response.
    assert writes <= 8, f"{writes} socket writes for 3 x 100 deliveries: frames are not corked"
    def over(m, le):
        return m['wsbroker_write_batch_frames_bucket{le="+Inf"}'] - m[f'wsbroker_write_batch_frames_bucket{{le="{le}"}}']

    # 100 frames of ~40 bytes: the first on its own, the rest in chunks of
    # 1, 2 and 4 KiB: about 4 buffers per subscriber's write, not 100.
    assert over(after, 8) - over(before, 8) == 0, "a write of 100 frames took more than 8 iovecs"
    assert over(after, 1) - over(before, 1) >= 3, "each subscriber's write carries several buffers"
