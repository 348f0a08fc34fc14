"""Last value on wildcards in a cluster (PROTOCOL.md 3.1a, 13.1): with
clustered history, `history` N on a pattern replays the last N of every
matching topic Redis knows (whichever node published it), each in seq
order, then live with no gap and no duplicate per topic; more matching
topics than max_history_topics_per_subscribe is limit_exceeded with nothing
subscribed; a topic whose history expired in Redis is not replayed (and
leaves the index)."""
from __future__ import annotations

import json
import time

import pytest

from helpers import wait_for

RULES = json.dumps([
    {"pattern": "prices.>", "size": 5},
    {"pattern": "fast.>", "size": 10, "ttl": "300ms"},
    {"pattern": "load.>", "size": 1000},
])


def start(cluster, n=3, *extra):
    return cluster(n, "--history", RULES, *extra)


def reply_of(c, req):
    """Sends `req`; its ack or error (messages before it are failures)."""
    c.send_json(req)
    m = c.recv_json()
    assert m.get("type") in ("ack", "error") and m.get("id") == req["id"], m
    return m


def publish(node, topic, items):
    """Publishes over HTTP on `node`; returns the seqs Redis assigned."""
    seqs = []
    for data in items:
        r = node.post("/api/publish", {"topic": topic, "data": data})
        assert r.status == 200, (r.status, r.body)
        seqs.append(r.json()["seq"])
    return seqs


def messages_until(c, topic, data, timeout=10.0):
    """Messages up to and including the first on `topic` with `data`."""
    out = []
    while True:
        m = c.recv_json(timeout=timeout)
        assert m["type"] == "message", m
        out.append(m)
        if m["topic"] == topic and m["data"] == data:
            return out


@pytest.mark.parametrize("mode", [(), ("--redis-sharded", "true")], ids=["classic", "sharded"])
def test_pattern_history_replays_topics_of_every_node_then_live(cluster, mode):
    a, b, c = start(cluster, 3, *mode)
    assert publish(a, "prices.btc.usd", [1, 2, 3]) == [1, 2, 3]
    assert publish(b, "prices.eth.usd", [10, 20]) == [1, 2]
    publish(b, "prices.eth.eur", [99])       # does not match
    publish(a, "prices.btc.usd.x", [98])     # one token more: does not match
    sub = c.raw_ws()
    ack = reply_of(sub, {"type": "subscribe", "topic": "prices.*.usd", "id": 1, "history": 2})
    assert ack["type"] == "ack" and "seq" not in ack and "epoch" not in ack, ack
    replay = [sub.recv_json() for _ in range(4)]
    by_topic = {}
    for m in replay:
        assert m["type"] == "message" and m["epoch"], m
        by_topic.setdefault(m["topic"], []).append((m["seq"], m["data"]))
    assert by_topic == {"prices.btc.usd": [(2, 2), (3, 3)], "prices.eth.usd": [(1, 10), (2, 20)]}
    # Live: the next of each topic, from either node, once; a new topic too.
    publish(b, "prices.btc.usd", [4])
    publish(a, "prices.eth.usd", [30])
    publish(b, "prices.sol.usd", [7])
    publish(a, "prices.end.usd", ["end"])
    live = messages_until(sub, "prices.end.usd", "end")
    assert [(m["topic"], m["seq"], m["data"]) for m in live] == [
        ("prices.btc.usd", 4, 4), ("prices.eth.usd", 3, 30), ("prices.sol.usd", 1, 7),
        ("prices.end.usd", 1, "end")], live
    # history larger than the rule's size: the size bounds the replay.
    sub2 = b.raw_ws()
    assert reply_of(sub2, {"type": "subscribe", "topic": "prices.btc.*", "id": 1,
                           "history": 100})["type"] == "ack"
    got = [sub2.recv_json() for _ in range(4)]
    assert [(m["topic"], m["seq"]) for m in got] == [("prices.btc.usd", s) for s in (1, 2, 3, 4)], got


def test_pattern_history_over_the_limit_is_refused_and_subscribes_nothing(cluster):
    a, b, c = start(cluster, 3, "--max-history-topics-per-subscribe", "2")
    for t in ("prices.a.usd", "prices.b.usd", "prices.c.usd"):
        publish(a, t, [1])
    sub = c.raw_ws()
    err = reply_of(sub, {"type": "subscribe", "topic": "prices.*.usd", "id": 1, "history": 1})
    assert err["type"] == "error" and err["code"] == "limit_exceeded", err
    # Nothing subscribed: the next message this connection gets is the one
    # of the topic it subscribes to next, not prices.a.usd. (A clustered
    # topic: its ack waits for the node's SUBSCRIBE in Redis, so the mark
    # published on B cannot overtake it.)
    assert reply_of(sub, {"type": "subscribe", "topic": "prices.mark", "id": 2})["type"] == "ack"
    publish(a, "prices.a.usd", [2])
    publish(b, "prices.mark", ["mark"])
    m = sub.recv_json()
    assert m["topic"] == "prices.mark", m
    # Narrower: within the bound.
    assert reply_of(sub, {"type": "subscribe", "topic": "prices.a.*", "id": 3,
                          "history": 1})["type"] == "ack"
    m = sub.recv_json()
    assert (m["topic"], m["seq"], m["data"]) == ("prices.a.usd", 2, 2), m


def test_expired_topics_are_not_replayed_and_leave_the_index(redis_server, cluster):
    a, c = start(cluster, 2)
    publish(a, "fast.t1", ["old"])
    r = redis_server.client()
    assert r.zscore("wsb:topics", "fast.t1") == 0
    wait_for(lambda: not r.exists("wsb:hist:fast.t1"), 10.0, 0.02, "fast.t1's ttl")
    publish(a, "fast.t2", ["new"])
    sub = c.raw_ws()
    assert reply_of(sub, {"type": "subscribe", "topic": "fast.>", "id": 1,
                          "history": 5})["type"] == "ack"
    m = sub.recv_json()
    assert (m["topic"], m["data"]) == ("fast.t2", "new"), m
    assert r.zscore("wsb:topics", "fast.t1") is None


def test_switch_over_under_load_no_gap_no_duplicate(cluster):
    """Publishers on A and B keep writing to load.k<i>.x while C subscribes
    to load.*.x with history: per topic, the seqs C gets (replay then live)
    are consecutive up to the last one published."""
    a, b, c = start(cluster)
    topics = [f"load.k{i}.x" for i in range(6)]
    for i, t in enumerate(topics):
        publish(a if i % 2 else b, t, [0])
    pubs = [a.raw_ws(), b.raw_ws()]
    sub = c.raw_ws()
    sent = 0
    subscribed = False
    deadline = time.monotonic() + 20
    # Publish in rounds (pipelined, acks read back later), subscribing
    # after a few: the read runs in Redis while publishes of both nodes
    # are in flight around it.
    rounds = 0
    while rounds < 40 and time.monotonic() < deadline:
        for k, t in enumerate(topics):
            p = pubs[k % 2]
            p.send_json({"type": "publish", "topic": t, "data": sent, "id": sent + 1})
            sent += 1
        rounds += 1
        if not subscribed and rounds == 5:
            sub.send_json({"type": "subscribe", "topic": "load.*.x", "id": 1, "history": 3})
            subscribed = True
    for p in pubs:
        n = 0
        while True:
            m = p.recv_json()
            if m.get("type") == "ack":
                n += 1
                if n == (sent + 1) // 2 if p is pubs[0] else n == sent // 2:
                    break
    last = {t: max(publish(a, t, ["end"])) for t in topics}
    seen = {t: [] for t in topics}
    ack = None
    while any(not seen[t] or seen[t][-1] < last[t] for t in topics):
        m = sub.recv_json(timeout=10)
        if m.get("type") == "ack":
            ack = m
            continue
        assert m["type"] == "message", m
        seen[m["topic"]].append(m["seq"])
    assert ack is not None
    for t in topics:
        s = seen[t]
        assert s == list(range(s[0], last[t] + 1)), (t, s)
