"""Clustered history (issue 10, item 4): with redis.url and history rules, seq,
epoch and history live in Redis, so three nodes agree on one sequence per
topic and any node serves a recovery. A subscriber whose TCP connection dies
recovers exactly what it missed on another node, with no gap and no duplicate
at the switch-over; a window exceeded gives recovered:false; Redis losing its
data gives a new epoch; Redis down refuses publishes with `unavailable`."""
from __future__ import annotations

import json
import threading
import time

import pytest

from helpers import wait_for

RULES = json.dumps([
    {"pattern": "chat.>", "size": 1000},
    {"pattern": "small.>", "size": 10},
    {"pattern": "fast.>", "size": 100, "ttl": "300ms"},
    {"pattern": "load.>", "size": 100000},
])


def start(cluster, n=3):
    return cluster(n, "--history", RULES)


def ack_of(c, req):
    c.send_json(req)
    while True:
        m = c.recv_json()
        if m.get("type") in ("ack", "error") and m.get("id") == req["id"]:
            return m
        assert m.get("type") == "message", m


def publish_many(pub, topic, items, first_id=1):
    """Publishes each item with an id (pipelined) and returns the acks' seqs."""
    for k, data in enumerate(items):
        pub.send_json({"type": "publish", "topic": topic, "data": data, "id": first_id + k})
    seqs = []
    for k, _ in enumerate(items):
        ack = pub.recv_json()
        assert ack["type"] == "ack" and ack["id"] == first_id + k, ack
        seqs.append(ack["seq"])
    return seqs


def messages(c, n, timeout=10.0):
    out = []
    while len(out) < n:
        m = c.recv_json(timeout=timeout)
        assert m["type"] == "message", m
        out.append(m)
    return out


def nothing_more(c, wait=0.3):
    try:
        m = c.recv_json(timeout=wait)
    except AssertionError:
        return None
    return m


@pytest.mark.parametrize("back_on", ["C", "B"])
def test_recover_50_published_on_a_and_b_then_live_without_gap_or_duplicate(cluster, back_on):
    a, b, c = start(cluster)
    nodes = {"A": a, "B": b, "C": c}
    topic = "chat.room1"
    sub = c.raw_ws()
    ack = ack_of(sub, {"type": "subscribe", "topic": topic, "id": 1})
    assert ack["seq"] == 0 and len(ack["epoch"]) == 12 and "recovered" not in ack, ack
    epoch = ack["epoch"]
    pa, pb = a.raw_ws(), b.raw_ws()
    publish_many(pa, topic, [{"i": 0}, {"i": 1}])
    publish_many(pb, topic, [{"i": 2}, {"i": 3}, {"i": 4}])
    got = messages(sub, 5)
    assert [m["seq"] for m in got] == [1, 2, 3, 4, 5]
    assert [m["data"]["i"] for m in got] == [0, 1, 2, 3, 4]
    assert all(m["epoch"] == epoch for m in got)

    sub.close()  # the network goes away: no close frame
    seqs = []
    for k in range(25):
        seqs += publish_many(pa, topic, [{"i": 5 + 2 * k}], first_id=100 + k)
        seqs += publish_many(pb, topic, [{"i": 6 + 2 * k}], first_id=200 + k)
    assert seqs == list(range(6, 56))

    back = nodes[back_on].raw_ws()
    ack = ack_of(back, {"type": "subscribe", "topic": topic, "id": 7,
                        "since": {"epoch": epoch, "seq": 5}})
    assert ack == {"type": "ack", "id": 7, "seq": 55, "epoch": epoch, "recovered": True}
    replay = messages(back, 50)
    assert [m["seq"] for m in replay] == list(range(6, 56))
    assert [m["data"]["i"] for m in replay] == list(range(5, 55))
    publish_many(pa, topic, [{"i": i} for i in range(55, 60)], first_id=300)
    live = messages(back, 5)
    assert [m["seq"] for m in live] == list(range(56, 61))
    assert nothing_more(back) is None


def test_one_sequence_per_topic_across_nodes(cluster):
    nodes = start(cluster)
    topic = "chat.agree"
    subs = [n.raw_ws() for n in nodes]
    for s in subs:
        ack_of(s, {"type": "subscribe", "topic": topic, "id": 1})
    pubs = [n.raw_ws() for n in nodes]
    seqs = []
    for k in range(30):
        seqs += publish_many(pubs[k % 3], topic, [{"k": k}], first_id=k + 1)
    assert seqs == list(range(1, 31))
    for s in subs:
        got = messages(s, 30)
        assert [m["seq"] for m in got] == list(range(1, 31))
        assert [m["data"]["k"] for m in got] == list(range(30))
        assert len({m["epoch"] for m in got}) == 1
    # Every node reports the same position.
    for n in nodes:
        c = n.raw_ws()
        ack = ack_of(c, {"type": "subscribe", "topic": topic, "id": 9, "history": 3})
        assert ack["seq"] == 30
        assert [m["seq"] for m in messages(c, 3)] == [28, 29, 30]


def test_concurrent_publishers_on_two_nodes_get_distinct_increasing_seqs(cluster):
    a, b, c = start(cluster)
    topic = "chat.race"
    sub = c.raw_ws()
    ack_of(sub, {"type": "subscribe", "topic": topic, "id": 1})
    result = {}

    def run(node, name):
        p = node.raw_ws()
        result[name] = publish_many(p, topic, [{"n": name, "i": i} for i in range(100)])

    ts = [threading.Thread(target=run, args=(n, name)) for n, name in ((a, "A"), (b, "B"))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert sorted(result["A"] + result["B"]) == list(range(1, 201))
    assert result["A"] == sorted(result["A"]) and result["B"] == sorted(result["B"])
    got = messages(sub, 200)
    assert [m["seq"] for m in got] == list(range(1, 201))
    for name in ("A", "B"):
        assert [m["data"]["i"] for m in got if m["data"]["n"] == name] == list(range(100))


def test_window_exceeded_is_recovered_false_then_live(cluster):
    a, b, c = start(cluster)
    topic = "small.t"
    sub = c.raw_ws()
    epoch = ack_of(sub, {"type": "subscribe", "topic": topic, "id": 1})["epoch"]
    pub = a.raw_ws()
    publish_many(pub, topic, [{"i": i} for i in range(5)])
    sub.close()
    publish_many(pub, topic, [{"i": i} for i in range(5, 30)], first_id=100)
    back = b.raw_ws()
    ack = ack_of(back, {"type": "subscribe", "topic": topic, "id": 2,
                        "since": {"epoch": epoch, "seq": 5}})
    assert ack == {"type": "ack", "id": 2, "seq": 30, "epoch": epoch, "recovered": False}
    # Within the window (the last 10) it still recovers.
    ok = c.raw_ws()
    ack = ack_of(ok, {"type": "subscribe", "topic": topic, "id": 3,
                      "since": {"epoch": epoch, "seq": 20}})
    assert ack["recovered"] is True
    assert [m["seq"] for m in messages(ok, 10)] == list(range(21, 31))
    publish_many(pub, topic, [{"i": 30}], first_id=200)
    assert messages(back, 1)[0]["seq"] == 31
    assert messages(ok, 1)[0]["seq"] == 31
    # A wrong epoch, or a seq from the future, is not recovered either.
    for since in ({"epoch": "000000000000", "seq": 29}, {"epoch": epoch, "seq": 99}):
        x = a.raw_ws()
        assert ack_of(x, {"type": "subscribe", "topic": topic, "id": 4,
                          "since": since})["recovered"] is False


def test_ttl_expired_history_is_not_recovered(cluster):
    a, b, c = start(cluster)
    topic = "fast.t"
    pub = a.raw_ws()
    s = b.raw_ws()
    epoch = ack_of(s, {"type": "subscribe", "topic": topic, "id": 1})["epoch"]
    publish_many(pub, topic, [{"i": i} for i in range(3)])
    time.sleep(0.5)
    x = c.raw_ws()
    ack = ack_of(x, {"type": "subscribe", "topic": topic, "id": 2,
                     "since": {"epoch": epoch, "seq": 1}})
    assert ack["recovered"] is False, ack


def test_redis_restart_with_data_loss_changes_the_epoch(redis_server, cluster):
    a, b, c = start(cluster)
    topic = "chat.restart"
    sub = c.raw_ws()
    epoch = ack_of(sub, {"type": "subscribe", "topic": topic, "id": 1})["epoch"]
    pub = a.raw_ws()
    publish_many(pub, topic, [{"i": i} for i in range(3)])
    assert [m["seq"] for m in messages(sub, 3)] == [1, 2, 3]
    redis_server.kill()
    redis_server.start()  # no persistence: the data is gone
    for n in (a, b, c):
        wait_for(lambda n=n: n.health().get("redis") == "ok", 15.0, 0.05, f"{n.name} back")
    back = b.raw_ws()
    ack = ack_of(back, {"type": "subscribe", "topic": topic, "id": 2,
                        "since": {"epoch": epoch, "seq": 3}})
    assert ack["recovered"] is False and ack["epoch"] != epoch and ack["seq"] == 0, ack
    new_epoch = ack["epoch"]
    pub2 = a.raw_ws()
    assert publish_many(pub2, topic, [{"i": 9}], first_id=50) == [1]
    m = messages(back, 1)[0]
    assert m["seq"] == 1 and m["epoch"] == new_epoch


def test_redis_down_publish_is_unavailable_and_recovery_false(redis_server, cluster):
    a, b, c = start(cluster)
    topic = "chat.down"
    pub = a.raw_ws()
    assert publish_many(pub, topic, [{"i": 0}]) == [1]
    sub = c.raw_ws()
    epoch = ack_of(sub, {"type": "subscribe", "topic": topic, "id": 1})["epoch"]
    redis_server.kill()
    wait_for(lambda: a.health().get("redis") != "ok", 10.0, 0.05, "A sees redis down")
    wait_for(lambda: c.health().get("redis") != "ok", 10.0, 0.05, "C sees redis down")
    r = ack_of(pub, {"type": "publish", "topic": topic, "data": 1, "id": 5})
    assert r["type"] == "error" and r["code"] == "unavailable", r
    # Later requests are still answered, in order.
    pub.send_json({"type": "publish", "topic": topic, "data": 2, "id": 6})
    pub.send_json({"type": "ping", "id": 7})
    assert pub.recv_json()["id"] == 6
    assert pub.recv_json() == {"type": "pong", "id": 7}
    x = c.raw_ws()
    ack = ack_of(x, {"type": "subscribe", "topic": topic, "id": 2,
                     "since": {"epoch": epoch, "seq": 0}})
    assert ack == {"type": "ack", "id": 2, "recovered": False}, ack
    h = a.post("/api/publish", {"topic": topic, "data": 3})
    assert h.status == 503, h
    non_history = a.raw_ws()
    assert ack_of(non_history, {"type": "publish", "topic": "plain.t", "data": 1,
                                "id": 1})["type"] == "ack"


def test_replies_keep_request_order_around_clustered_publishes(cluster):
    a, b, c = start(cluster)
    pub = a.raw_ws()
    for i in range(20):
        pub.send_json({"type": "publish", "topic": "chat.order", "data": i, "id": 3 * i})
        pub.send_json({"type": "publish", "topic": "plain.order", "data": i, "id": 3 * i + 1})
        pub.send_json({"type": "ping", "id": 3 * i + 2})
    ids = [pub.recv_json()["id"] for _ in range(60)]
    assert ids == list(range(60))


def test_resp_publish_gets_the_redis_seq_and_http_is_refused(cluster):
    a, b, c = start(cluster)
    topic = "chat.ingress"
    sub = c.raw_ws()
    ack_of(sub, {"type": "subscribe", "topic": topic, "id": 1})
    pub = a.raw_ws()
    assert publish_many(pub, topic, [{"via": "ws"}]) == [1]
    resp = b.resp()
    assert resp.publish(topic, '{"via":"resp"}') == 2
    assert resp.publish(topic, '{"via":"resp2"}') == 3
    assert resp.ping() is True  # pipelined requests behind a clustered PUBLISH go on
    # HTTP cannot wait for Redis's seq yet: refused, not numbered locally.
    r = a.post("/api/publish", {"topic": topic, "data": {"via": "http"}})
    assert r.status == 503 and r.json()["error"]["code"] == "unavailable", r
    r = b.post("/api/publish", [{"topic": topic, "data": 1}, {"topic": "plain.x", "data": 1}])
    res = r.json()["results"]
    assert res[0]["error"]["code"] == "unavailable" and "seq" in res[1], res
    got = messages(sub, 3)
    assert [m["seq"] for m in got] == [1, 2, 3]
    assert [m["data"]["via"] for m in got] == ["ws", "resp", "resp2"]
    assert nothing_more(sub) is None


def test_switch_over_under_load_has_no_gap_and_no_duplicate(cluster):
    a, b, c = start(cluster)
    topic = "load.x"
    stop = threading.Event()
    counts = {}

    def publisher(node, name):
        p = node.raw_ws()
        i = 0
        deadline = time.monotonic() + 20
        while not stop.is_set() and time.monotonic() < deadline and i < 3000:
            publish_many(p, topic, [{"i": i}] * 1, first_id=i + 1)
            i += 1
        counts[name] = i

    pubs = [threading.Thread(target=publisher, args=(n, name)) for n, name in ((a, "A"), (b, "B"))]
    first = c.raw_ws()
    epoch = ack_of(first, {"type": "subscribe", "topic": topic, "id": 1})["epoch"]
    for t in pubs:
        t.start()
    try:
        for round_ in range(5):
            time.sleep(0.1)
            last = messages(first, 1)[0]["seq"]
            first.close()
            time.sleep(0.05)
            node = (a, b, c)[round_ % 3]
            first = node.raw_ws()
            first.send_json({"type": "subscribe", "topic": topic, "id": 10 + round_,
                             "since": {"epoch": epoch, "seq": last}})
            ack = first.recv_json()
            assert ack["type"] == "ack" and ack["recovered"] is True, ack
            expect = last + 1
            # Replay, then live: consecutive seqs across the switch-over.
            for _ in range(ack["seq"] - last + 50):
                m = first.recv_json()
                assert m["type"] == "message" and m["seq"] == expect, (m, expect)
                expect += 1
    finally:
        stop.set()
        for t in pubs:
            t.join(30)


@pytest.mark.parametrize("patterns", ["true", "false"])
def test_sharded_mode_clustered_history(cluster, patterns):
    """With redis.sharded the script publishes on the shard channel (and, when
    wildcards are served, on the classic bus too): exact subscribers on every
    node get each message once, in Redis's seq, and recovery still works."""
    a, b = cluster(2, "--history", RULES, "--redis-sharded", "true",
                   "--redis-sharded-patterns", patterns)
    topic = "chat.sharded"
    sub_b = b.raw_ws()
    epoch = ack_of(sub_b, {"type": "subscribe", "topic": topic, "id": 1})["epoch"]
    wild = None
    if patterns == "true":
        # A wildcard and an exact subscription on one node: still once each.
        wild = b.raw_ws()
        assert ack_of(wild, {"type": "subscribe", "topic": "chat.*", "id": 1})["type"] == "ack"
        assert ack_of(wild, {"type": "subscribe", "topic": topic, "id": 2})["type"] == "ack"
    sub_a = a.raw_ws()
    ack_of(sub_a, {"type": "subscribe", "topic": topic, "id": 1})
    pa, pb = a.raw_ws(), b.raw_ws()
    seqs = publish_many(pa, topic, [{"i": 0}, {"i": 1}]) + \
        publish_many(pb, topic, [{"i": 2}], first_id=10)
    assert seqs == [1, 2, 3]
    for s in [sub_a, sub_b] + ([wild] if wild else []):
        assert [m["seq"] for m in messages(s, 3)] == [1, 2, 3]
        assert nothing_more(s) is None
    back = a.raw_ws()
    ack = ack_of(back, {"type": "subscribe", "topic": topic, "id": 5,
                        "since": {"epoch": epoch, "seq": 1}})
    assert ack["recovered"] is True and ack["seq"] == 3, ack
    assert [m["data"]["i"] for m in messages(back, 2)] == [1, 2]
